//! A `logging.LogRecord` as an OpenTelemetry log record, read in one pass over its
//! `__dict__`: level, message, location, exception and `extra=` fields, and the ids of the
//! span current where it was logged.

use ferrotel_sdk::log::{severity_of_python_level, LogData};
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::core::LoggerCore;
use crate::boundary::exception::exception_attributes;
use crate::boundary::value;
use crate::trace::current::ids_in;

/// `logging.LogRecord` fields that are not user `extra=` attributes and are not read below:
/// derived (`message`, `asctime`, ...), left out as upstream leaves them out, or ferrotel's
/// correlation fields.
fn is_other_record_field(key: &str) -> bool {
    matches!(
        key,
        "msg"
            | "args"
            | "filename"
            | "module"
            | "exc_text"
            | "stack_info"
            | "msecs"
            | "relativeCreated"
            | "thread"
            | "threadName"
            | "processName"
            | "process"
            | "taskName"
            | "message"
            | "asctime"
            | "otelTraceID"
            | "otelSpanID"
            | "otelTraceSampled"
            | "otelServiceName"
    )
}

/// `code_attributes`: whether `code.*` attributes come from the record's location
/// (OTEL_PYTHON_LOG_CODE_ATTRIBUTES; always with the deprecated SDK-style handler).
pub(crate) fn convert_logging_record(
    py: Python<'_>,
    core: &LoggerCore,
    record: &Bound<'_, PyAny>,
    code_attributes: bool,
) -> PyResult<Option<LogData>> {
    let fields = record.getattr(intern!(py, "__dict__"))?;
    let fields = fields.cast::<PyDict>()?;
    let mut attributes = Attributes::with_capacity(8);
    let (mut name, mut level_name, mut level, mut created) = (String::new(), String::new(), 0i64, 0f64);
    let mut exception = None;
    // `otel.event.name` (or the deprecated `event.name`) is the record's event name, not an
    // attribute, as upstream's handler promotes it.
    let (mut event_name, mut deprecated_event_name) = (None, None);
    for (key, item) in fields.iter() {
        let Ok(key) = key.cast::<PyString>() else { continue };
        let code_key = match key.to_str()? {
            "name" => {
                name = item.extract().unwrap_or_default();
                continue;
            }
            "levelname" => {
                level_name = item.extract().unwrap_or_default();
                continue;
            }
            "levelno" => {
                level = item.extract().unwrap_or(0);
                continue;
            }
            "created" => {
                created = item.extract().unwrap_or(0.0);
                continue;
            }
            "exc_info" => {
                exception = item
                    .cast::<PyTuple>()
                    .ok()
                    .and_then(|info| info.get_item(1).ok())
                    .filter(|e| !e.is_none());
                continue;
            }
            "pathname" | "funcName" | "lineno" if !code_attributes => continue,
            "pathname" => "code.file.path",
            "funcName" => "code.function.name",
            "lineno" => "code.line.number",
            "otel.event.name" => {
                event_name = Some(item);
                continue;
            }
            "event.name" => {
                deprecated_event_name = Some(item);
                continue;
            }
            other if is_other_record_field(other) || other.starts_with('_') => continue,
            extra => extra,
        };
        core.set(&mut attributes, code_key.to_owned(), value::to_any_value(&item));
    }
    let event_name = event_name
        .or(deprecated_event_name)
        .and_then(|name| name.extract::<String>().ok())
        .unwrap_or_default();
    if let Some(exception) = exception {
        for (k, v) in exception_attributes(py, &exception)? {
            core.set(&mut attributes, k, v);
        }
    }
    let message: String = record.call_method0(intern!(py, "getMessage"))?.extract()?;
    let ids = ids_in(py, None)?;
    Ok(Some(LogData {
        time_ns: (created * 1e9) as u64,
        observed_ns: ferrotel_sdk::now_ns(),
        severity_number: severity_of_python_level(level),
        // The data model's short name, as upstream's handler sends it too.
        severity_text: match level_name.as_str() {
            "WARNING" => "WARN".to_owned(),
            "CRITICAL" => "FATAL".to_owned(),
            _ => level_name,
        },
        body: Some(Value::Str(message)),
        attributes,
        trace_id: ids.map_or(0, |i| i.trace_id),
        span_id: ids.map_or(0, |i| i.span_id),
        trace_flags: ids.map_or(0, |i| i.flags),
        event_name,
        scope: core.scope(&name, None, None),
    }))
}
