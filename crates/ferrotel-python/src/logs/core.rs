//! What a `LoggerProvider`'s loggers and its `logging` handler share: limits, scopes, the
//! pipelines, and the guard against a record emitted while another is being converted on
//! the same thread.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferrotel_config::LogRecordLimits;
use ferrotel_sdk::log::LogData;
use ferrotel_sdk::span::{Scope, ScopeRef};
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::shapes::fields;

use crate::boundary::shapes;
use crate::export::python::PythonProcessors;
use crate::export::Pipelines;

/// Distinct logger names given their own scope; beyond it records share one, so a program
/// that names loggers after ids cannot grow this without bound.
const MAX_SCOPES: usize = 1000;

pub(crate) struct LoggerCore {
    pub(crate) limits: LogRecordLimits,
    /// Without an exporter, records are not even converted. Taking part in exit and fork
    /// themselves.
    pub(crate) pipelines: Arc<Pipelines<LogData>>,
    /// Log record processors written in Python, called on the application's thread.
    pub(crate) python: Arc<PythonProcessors>,
    pub(crate) scopes: Mutex<HashMap<String, ScopeRef>>,
    /// Records dropped because one was being emitted on this thread already (a `__str__`
    /// or handler that logs while its record is converted).
    pub(crate) reentrant_drops: AtomicU64,
}

thread_local! {
    static EMITTING: Cell<bool> = const { Cell::new(false) };
}

impl LoggerCore {
    /// Whether records are exported at all.
    pub(crate) fn exporting(&self) -> bool {
        self.pipelines.exporting() || !self.python.is_empty()
    }

    pub(crate) fn scope(&self, name: &str, version: Option<String>, schema_url: Option<String>) -> ScopeRef {
        let mut scopes = lock(&self.scopes);
        if let Some(scope) = scopes.get(name).filter(|s| s.version == version) {
            return scope.clone();
        }
        let scope = ScopeRef::new(Scope {
            name: name.to_owned(),
            version,
            schema_url,
            attributes: Attributes::default(),
        });
        if scopes.len() < MAX_SCOPES {
            scopes.insert(name.to_owned(), scope.clone());
        }
        scope
    }

    /// Sets an attribute within the record limits.
    pub(crate) fn set(&self, attributes: &mut Attributes, key: String, value: Value) {
        attributes.set(
            key,
            value,
            self.limits.attribute_count,
            self.limits.attribute_value_length,
        );
    }

    /// Converts and queues one record, unless this thread is already inside an emit.
    pub(crate) fn guarded(&self, py: Python<'_>, emit: impl FnOnce() -> PyResult<Option<LogData>>) -> PyResult<()> {
        if !self.exporting() {
            return Ok(());
        }
        if EMITTING.with(|e| e.replace(true)) {
            self.reentrant_drops.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let record = emit();
        EMITTING.with(|e| e.set(false));
        if let Some(record) = record? {
            if !self.python.is_empty() {
                self.to_python_processors(py, &record);
            }
            self.pipelines.on_end(record);
        }
        Ok(())
    }

    /// Each Python processor's `on_emit`, with the record as the SDK's `ReadWriteLogRecord`.
    fn to_python_processors(&self, py: Python<'_>, record: &LogData) {
        let made = self
            .python
            .resource_object(py, || self.pipelines.resource())
            .and_then(|resource| {
                let scope = shapes::scope(py, &record.scope)?;
                let args = (fields(py, record)?, resource, scope, py.None());
                shapes::module(py)?.call_method1("writable_log_record", args)
            });
        match made {
            Ok(writable) => self
                .python
                .call_each(py, "on_emit", || PyTuple::new(py, [writable.clone()])),
            Err(error) => self.python.failed(py, "ferrotel", "on_emit", error),
        }
    }
}
