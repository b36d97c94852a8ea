//! The trace SDK's Python surface: provider, tracer, span, processors and exporters.

pub mod api;
pub mod provider;
pub mod span;
pub mod tracer;
pub mod value;

use pyo3::prelude::*;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(api::_bind_api, m)?)?;
    m.add_function(wrap_pyfunction!(provider::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(provider::_shutdown_all, m)?)?;
    m.add_function(wrap_pyfunction!(span::current_span_ids, m)?)?;
    m.add_class::<provider::TracerProvider>()?;
    m.add_class::<provider::BatchSpanProcessor>()?;
    m.add_class::<provider::SimpleSpanProcessor>()?;
    m.add_class::<provider::ConsoleSpanExporter>()?;
    m.add_class::<provider::InMemorySpanExporter>()?;
    m.add_class::<provider::OTLPSpanExporter>()?;
    m.add_class::<tracer::Tracer>()?;
    m.add_class::<tracer::CurrentSpan>()?;
    m.add_class::<span::Span>()?;
    Ok(())
}
