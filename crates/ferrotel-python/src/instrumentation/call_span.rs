//! What server, client and database calls do alike with their span.

use std::sync::Mutex;

use ferrotel_sdk::span::StatusCode;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use ferrotel_semconv as semconv;
use pyo3::prelude::*;

use crate::boundary::api;
use crate::trace::span::Span;

/// Semantic-convention attributes, owned.
pub(crate) fn owned(attrs: semconv::Attributes) -> Vec<(String, Value)> {
    attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Restores the context from before the span (once) and ends the span.
pub(crate) fn finish(py: Python<'_>, span: &Py<Span>, token: &Mutex<Option<Py<PyAny>>>) -> PyResult<()> {
    if let Some(token) = lock(token).take() {
        api::get(py)?.detach(py, token.bind(py));
    }
    span.get().finish(py, None);
    Ok(())
}

/// Sets response attributes; an exception recorded first keeps its `error.type` and
/// status description.
pub(crate) fn apply_response(span: &Span, attrs: semconv::Attributes, status: StatusCode) {
    span.with_record(|data, limits| {
        for (k, v) in owned(attrs) {
            if k == "error.type" && data.attributes.get("error.type").is_some() {
                continue;
            }
            data.set_attribute(k, v, limits);
        }
        if data.status.code != StatusCode::Error {
            data.set_status(status, None);
        }
    });
}
