//! The traces signal's Python surface: provider, tracer, span, the processors and
//! exporters Python code composes, and what a `Context` holds for tracing.
//!
//! Files depend one way: `provider` → `tracer` → `current` → `span` → `core`/`context`.

pub(crate) mod context;
pub(crate) mod core;
pub(crate) mod current;
pub(crate) mod plugins;
pub(crate) mod processors;
pub(crate) mod provider;
pub(crate) mod sampling;
pub(crate) mod shapes;
pub(crate) mod span;
pub(crate) mod tracer;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(current::current_span_ids, m)?)?;
    m.add_class::<provider::TracerProvider>()?;
    m.add_class::<processors::BatchSpanProcessor>()?;
    m.add_class::<processors::SimpleSpanProcessor>()?;
    m.add_class::<processors::ConsoleSpanExporter>()?;
    m.add_class::<processors::InMemorySpanExporter>()?;
    m.add_class::<processors::OTLPSpanExporter>()?;
    m.add_class::<tracer::Tracer>()?;
    m.add_class::<tracer::CurrentSpan>()?;
    m.add_class::<span::Span>()?;
    Ok(())
}
