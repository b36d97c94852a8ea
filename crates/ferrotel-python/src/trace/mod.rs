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

/// The classes `ferrotel._native` hands out on first access (see `lazy_class!`).
pub(crate) const CLASSES: &[crate::LazyClass] = &[
    crate::lazy_class!(provider::TracerProvider),
    crate::lazy_class!(processors::BatchSpanProcessor),
    crate::lazy_class!(processors::SimpleSpanProcessor),
    crate::lazy_class!(processors::ConsoleSpanExporter),
    crate::lazy_class!(processors::InMemorySpanExporter),
    crate::lazy_class!(processors::OTLPSpanExporter),
    crate::lazy_class!(tracer::Tracer),
    crate::lazy_class!(tracer::CurrentSpan),
    crate::lazy_class!(span::Span),
];

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(current::current_span_ids, m)?)?;
    Ok(())
}
