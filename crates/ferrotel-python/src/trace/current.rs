//! What the current (or a given) `Context` holds for tracing, read one way everywhere: the
//! span in it (ferrotel's, read directly, or any span of the API) as a parent or as ids.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::context::{read_span_context, Parent, SpanIds, TraceState};
use super::span::Span;
use crate::boundary::api::{self, Api};

/// The span object in `context` (the current context when `None`).
fn span_in<'py>(
    py: Python<'py>,
    api: &Api,
    context: Option<&Bound<'py, PyAny>>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let context = match context {
        Some(context) => context.clone(),
        None => api.current_context(py)?,
    };
    let Ok(dict) = context.cast::<PyDict>() else {
        return Ok(None);
    };
    dict.get_item(api.span_key.bind(py))
}

/// The parent a span started in `context` (the current one when `None`) would have: the
/// valid span context there, if any.
pub(crate) fn parent_in(py: Python<'_>, context: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Parent>> {
    let api = api::get(py)?;
    let Some(span) = span_in(py, api, context)? else {
        return Ok(None);
    };
    if let Ok(ours) = span.cast::<Span>() {
        let s = ours.get();
        return Ok(Some(Parent {
            ids: s.ids,
            trace_state: s.trace_state.as_ref().map(|t| t.clone_ref(py)),
            is_remote: s.is_remote,
        }));
    }
    let c = read_span_context(&span.call_method0("get_span_context")?)?;
    Ok(c.is_valid.then(|| Parent {
        ids: c.ids,
        trace_state: c.trace_state.map(TraceState::Api),
        is_remote: c.is_remote,
    }))
}

/// The ids of the valid span in `context` (the current one when `None`). Before the API is
/// imported there is none. Reads ferrotel's spans without building API objects: the log
/// correlation and the exemplars call this for every record and measurement.
pub(crate) fn ids_in(py: Python<'_>, context: Option<&Bound<'_, PyAny>>) -> PyResult<Option<SpanIds>> {
    let Ok(api) = api::get(py) else { return Ok(None) };
    let Some(span) = span_in(py, api, context)? else {
        return Ok(None);
    };
    if let Ok(ours) = span.cast::<Span>() {
        return Ok(Some(ours.get().ids));
    }
    let c = read_span_context(&span.call_method0("get_span_context")?)?;
    Ok(c.is_valid.then_some(c.ids))
}

/// `(trace_id, span_id, sampled)` of the current span as lower-case hex, or `None` when
/// there is none (or the API is not in use yet). For the logging correlation.
#[pyfunction]
pub(crate) fn current_span_ids(py: Python<'_>) -> PyResult<Option<(String, String, bool)>> {
    Ok(ids_in(py, None)?.map(|ids| {
        (
            format!("{:032x}", ids.trace_id),
            format!("{:016x}", ids.span_id),
            ids.sampled(),
        )
    }))
}
