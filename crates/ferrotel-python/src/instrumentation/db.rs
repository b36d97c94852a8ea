//! One database statement: a CLIENT span under the current context (a leaf: never made
//! current), named and attributed by the semantic conventions, the query text recorded with
//! its literal values replaced by `?`.

use ferrotel_sdk::span::SpanKind;
use ferrotel_semconv as semconv;
use pyo3::prelude::*;

use super::call_span::owned;
use super::settings::settings;
use crate::boundary::api;
use crate::trace::current::parent_in;
use crate::trace::span::Span;
use crate::trace::tracer::{create, NewSpan, Tracer};

#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct DbCall {
    /// `None` when instrumentation is suppressed in the caller's context.
    span: Option<Py<Span>>,
}

/// Starts the span of a database call; `None` when `tracer` is not ferrotel's. In a
/// context that suppresses instrumentation nothing is recorded.
#[pyfunction]
pub(crate) fn start_db_call(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    system: &str,
    namespace: &str,
    query: &str,
) -> PyResult<Option<DbCall>> {
    let Ok(tracer) = tracer.cast::<Tracer>() else {
        return Ok(None);
    };
    let tracer = tracer.get();
    let api = api::get(py)?;
    let current = api.current_context(py)?;
    if api.suppressed(py, &current, false) {
        return Ok(Some(DbCall { span: None }));
    }
    let parent = parent_in(py, Some(&current))?;
    let (name, attributes) = semconv::db_call(system, namespace, query, settings().db_semconv);
    let new = NewSpan::instrumentation(name, SpanKind::Client, owned(attributes));
    Ok(Some(DbCall {
        span: Some(create(py, &tracer.core, &tracer.scope, parent, None, new)?),
    }))
}

#[pymethods]
impl DbCall {
    fn record_exception(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        match &self.span {
            Some(span) => span.get().record_error(py, exception),
            None => Ok(()),
        }
    }

    fn end(&self, py: Python<'_>) {
        if let Some(span) = &self.span {
            span.get().finish(py, None);
        }
    }
}
