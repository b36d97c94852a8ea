//! A Logs API `Logger`: `emit(record)` with an API `LogRecord`, or `emit(body=..., ...)`.

use std::sync::Arc;

use ferrotel_sdk::log::LogData;
use ferrotel_sdk::span::ScopeRef;
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::prelude::*;

use super::core::LoggerCore;
use crate::boundary::exception::exception_attributes;
use crate::boundary::value::{self, timestamp_of};
use crate::trace::context::SpanIds;
use crate::trace::current::ids_in;

#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct Logger {
    core: Arc<LoggerCore>,
    scope: ScopeRef,
}

/// Fields of an API emit, whether they came as a `LogRecord` or as keywords.
struct Emitted<'py> {
    timestamp: Option<u64>,
    observed_timestamp: Option<u64>,
    /// `None`: the current span's.
    ids: Option<SpanIds>,
    severity_number: Option<Bound<'py, PyAny>>,
    severity_text: Option<String>,
    body: Option<Bound<'py, PyAny>>,
    attributes: Option<Bound<'py, PyAny>>,
    event_name: Option<String>,
    exception: Option<Bound<'py, PyAny>>,
}

fn present<'py>(obj: Option<Bound<'py, PyAny>>) -> Option<Bound<'py, PyAny>> {
    obj.filter(|o| !o.is_none())
}

impl Logger {
    pub(crate) fn new(core: Arc<LoggerCore>, scope: ScopeRef) -> Logger {
        Logger { core, scope }
    }

    fn convert(&self, py: Python<'_>, e: Emitted<'_>) -> PyResult<Option<LogData>> {
        let mut attributes = Attributes::default();
        for (k, v) in value::attributes(e.attributes.as_ref()) {
            self.core.set(&mut attributes, k, v);
        }
        if let Some(exception) = &e.exception {
            for (k, v) in exception_attributes(py, exception)? {
                if attributes.get(&k).is_none() {
                    self.core.set(&mut attributes, k, v);
                }
            }
        }
        // SeverityNumber is an Enum: its value is the number.
        let severity_number = match &e.severity_number {
            Some(s) => s
                .getattr("value")
                .unwrap_or_else(|_| s.clone())
                .extract::<i64>()
                .unwrap_or(0)
                .clamp(0, 24) as u8,
            None => 0,
        };
        // A body OpenTelemetry cannot carry as is (a dict, an object) is kept as its text.
        let body = match &e.body {
            Some(b) => value::to_value(b).or_else(|| b.str().ok().map(|s| Value::Str(s.to_string()))),
            None => None,
        };
        let ids = match e.ids {
            Some(ids) => Some(ids),
            None => ids_in(py, None)?,
        };
        Ok(Some(LogData {
            time_ns: e.timestamp.unwrap_or(0),
            observed_ns: e.observed_timestamp.unwrap_or_else(ferrotel_sdk::now_ns),
            severity_number,
            severity_text: e.severity_text.unwrap_or_default(),
            body,
            attributes,
            trace_id: ids.map_or(0, |i| i.trace_id),
            span_id: ids.map_or(0, |i| i.span_id),
            trace_flags: ids.map_or(0, |i| i.flags),
            event_name: e.event_name.unwrap_or_default(),
            scope: self.scope.clone(),
        }))
    }
}

#[pymethods]
impl Logger {
    #[pyo3(signature = (record=None, *, timestamp=None, observed_timestamp=None, context=None, severity_number=None, severity_text=None, body=None, attributes=None, event_name=None, exception=None))]
    #[allow(clippy::too_many_arguments)] // the Logs API's signature
    fn emit<'py>(
        &self,
        py: Python<'py>,
        record: Option<Bound<'py, PyAny>>,
        timestamp: Option<Bound<'py, PyAny>>,
        observed_timestamp: Option<Bound<'py, PyAny>>,
        context: Option<Bound<'py, PyAny>>,
        severity_number: Option<Bound<'py, PyAny>>,
        severity_text: Option<String>,
        body: Option<Bound<'py, PyAny>>,
        attributes: Option<Bound<'py, PyAny>>,
        event_name: Option<String>,
        exception: Option<Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let emitted = match present(record) {
            Some(record) => {
                let field = |name: &str| present(record.getattr(name).ok());
                let id = |name: &str| field(name).and_then(|v| v.extract::<u128>().ok()).unwrap_or(0);
                let ids = SpanIds {
                    trace_id: id("trace_id"),
                    span_id: id("span_id") as u64,
                    flags: id("trace_flags") as u8,
                };
                Emitted {
                    timestamp: timestamp_of(field("timestamp").as_ref()),
                    observed_timestamp: timestamp_of(field("observed_timestamp").as_ref()),
                    ids: Some(ids).filter(|ids| ids.trace_id != 0),
                    severity_number: field("severity_number"),
                    severity_text: field("severity_text").and_then(|v| v.extract().ok()),
                    body: field("body"),
                    attributes: field("attributes"),
                    event_name: field("event_name").and_then(|v| v.extract().ok()),
                    exception: field("exception"),
                }
            }
            None => Emitted {
                timestamp: timestamp_of(timestamp.as_ref()),
                observed_timestamp: timestamp_of(observed_timestamp.as_ref()),
                ids: match present(context) {
                    Some(context) => Some(ids_in(py, Some(&context))?.unwrap_or_default()),
                    None => None,
                },
                severity_number: present(severity_number),
                severity_text,
                body: present(body),
                attributes: present(attributes),
                event_name,
                exception: present(exception),
            },
        };
        self.core.guarded(py, || self.convert(py, emitted))
    }

    #[pyo3(signature = (*, context=None, severity_number=None, event_name=None))]
    fn enabled(
        &self,
        context: Option<&Bound<'_, PyAny>>,
        severity_number: Option<&Bound<'_, PyAny>>,
        event_name: Option<&str>,
    ) -> bool {
        let _ = (context, severity_number, event_name);
        self.core.exporting()
    }

    #[getter]
    fn name(&self) -> &str {
        &self.scope.name
    }
}
