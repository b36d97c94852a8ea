//! A Python exception as OpenTelemetry attributes: `exception.type` (module-qualified unless
//! builtin, which is also what `error.type` carries), `.message` and `.stacktrace`.

use ferrotel_sdk::value::Value;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::api;

/// `error_type(exception)`: its type as `error.type` gives it, for the Python glue.
#[pyfunction]
pub(crate) fn error_type(exception: &Bound<'_, PyAny>) -> PyResult<String> {
    exception_type(exception)
}

/// The exception's type as `exception.type` and `error.type` give it.
pub(crate) fn exception_type(exception: &Bound<'_, PyAny>) -> PyResult<String> {
    let kind = exception.get_type();
    let module: String = kind.getattr("__module__").and_then(|m| m.extract()).unwrap_or_default();
    let qualname: String = kind.getattr("__qualname__")?.extract()?;
    Ok(if module.is_empty() || module == "builtins" {
        qualname
    } else {
        format!("{module}.{qualname}")
    })
}

/// `exception.type`, `.message` and `.stacktrace`, as exception events and log records carry
/// them.
pub(crate) fn exception_attributes(py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Value)>> {
    let message = exception.str().map(|s| s.to_string()).unwrap_or_default();
    let format_exception = match api::get(py) {
        Ok(api) => api.format_exception.bind(py).clone(),
        Err(_) => py.import("traceback")?.getattr("format_exception")?,
    };
    let stacktrace: String = format_exception
        .call1((exception,))?
        .cast::<PyList>()
        .map(|l| l.iter().filter_map(|s| s.extract::<String>().ok()).collect())
        .unwrap_or_default();
    Ok(vec![
        ("exception.type".to_string(), Value::Str(exception_type(exception)?)),
        ("exception.message".to_string(), Value::Str(message)),
        ("exception.stacktrace".to_string(), Value::Str(stacktrace)),
    ])
}
