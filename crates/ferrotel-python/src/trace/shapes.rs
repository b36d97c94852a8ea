//! Finished spans as Python processors and exporters receive them: the upstream SDK's
//! `ReadableSpan` (or its look-alike without the SDK), built from one tuple per span.

use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::{EndedSpan, SpanData};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::boundary::shapes::{self, attributes_dict};
use crate::export::python::PythonShape;

/// `(trace_id, span_id, flags, trace_state, is_remote)`, as `_shapes.span_context` takes it.
type ContextFields<'a> = (u128, u64, u8, &'a str, bool);

fn fields<'py>(py: Python<'py>, span: &SpanData) -> PyResult<Bound<'py, PyTuple>> {
    let context: ContextFields<'_> = (span.trace_id, span.span_id, span.trace_flags, &span.trace_state, false);
    // The parent's own flags are not kept; a parent of a sampled span was sampled or remote.
    let parent: Option<ContextFields<'_>> = span
        .parent_span_id
        .map(|id| (span.trace_id, id, span.trace_flags, "", span.parent_is_remote));
    let events = PyList::empty(py);
    for event in &span.events {
        let attributes = attributes_dict(py, &event.attributes)?;
        events.append((event.name.as_str(), event.time_ns, attributes, event.attributes.dropped))?;
    }
    let links = PyList::empty(py);
    for link in &span.links {
        let context: ContextFields<'_> = (
            link.trace_id,
            link.span_id,
            link.trace_flags,
            &link.trace_state,
            link.is_remote,
        );
        links.append((context, attributes_dict(py, &link.attributes)?, link.attributes.dropped))?;
    }
    let items: Vec<Bound<'py, PyAny>> = vec![
        span.name.as_str().into_pyobject(py)?.into_any(),
        context.into_pyobject(py)?.into_any(),
        parent.into_pyobject(py)?.into_any(),
        (span.kind as i64).into_pyobject(py)?.into_any(),
        span.start_ns.into_pyobject(py)?.into_any(),
        span.end_ns.into_pyobject(py)?.into_any(),
        attributes_dict(py, &span.attributes)?.into_any(),
        span.attributes.dropped.into_pyobject(py)?.into_any(),
        events.into_any(),
        span.dropped_events.into_pyobject(py)?.into_any(),
        links.into_any(),
        span.dropped_links.into_pyobject(py)?.into_any(),
        (span.status.code as i64).into_pyobject(py)?.into_any(),
        span.status.description.as_str().into_pyobject(py)?.into_any(),
        shapes::scope(py, &span.scope)?,
    ];
    PyTuple::new(py, items)
}

/// One finished span as a `ReadableSpan`.
pub(crate) fn readable_span<'py>(
    py: Python<'py>,
    span: &SpanData,
    resource: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    shapes::module(py)?.call_method1("readable_span", (fields(py, span)?, resource))
}

impl PythonShape for EndedSpan {
    fn resource<'py>(py: Python<'py>, resource: &Resource) -> PyResult<Bound<'py, PyAny>> {
        shapes::resource(py, resource)
    }

    fn batch<'py>(py: Python<'py>, batch: &[EndedSpan], resource: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let spans = PyList::empty(py);
        for span in batch {
            spans.append(readable_span(py, span, resource)?)?;
        }
        Ok(spans.into_any())
    }
}
