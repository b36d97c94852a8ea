//! Span processors written in Python on a ferrotel provider: any object with the upstream
//! SDK's `SpanProcessor` methods (a user's, contrib's `BaggageSpanProcessor`, the SDK's own
//! Batch/Simple processors around a vendor exporter). `on_start(span, parent_context)` gets
//! the live span, `on_end(span)` a `ReadableSpan`.

use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::SpanData;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::shapes::readable_span;
use crate::export::python::PythonProcessors;

pub(crate) fn on_start(
    py: Python<'_>,
    processors: &PythonProcessors,
    span: &Bound<'_, PyAny>,
    parent_context: Option<&Bound<'_, PyAny>>,
) {
    let context = parent_context.map_or_else(|| py.None().into_bound(py), Clone::clone);
    processors.call_each(py, "on_start", || PyTuple::new(py, [span.clone(), context.clone()]));
}

pub(crate) fn on_end(
    py: Python<'_>,
    processors: &PythonProcessors,
    span: &SpanData,
    resource: impl FnOnce() -> Resource,
) {
    let readable = match processors
        .resource_object(py, resource)
        .and_then(|resource| readable_span(py, span, &resource))
    {
        Ok(readable) => readable,
        Err(error) => return processors.failed(py, "ferrotel", "on_end", error),
    };
    processors.call_each(py, "on_end", || PyTuple::new(py, [readable.clone()]));
}
