//! `LoggerProvider` and what its loggers and the `logging` handler share.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ferrotel_config::LogRecordLimits;
use ferrotel_sdk::log::LogData;
use ferrotel_sdk::span::Scope;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::logger::Logger;
use super::record::convert_logging_record;
use crate::boundary::value;
use crate::export::{stats_dict, Pipelines, ProcessorRecipe};
use crate::runtime::lifecycle::{self, deadline_in, Flush, Participant};
use crate::runtime::settings::{config_with, process_facts};

/// Distinct logger names given their own scope; beyond it records share one, so a program
/// that names loggers after ids cannot grow this without bound.
const MAX_SCOPES: usize = 1000;

pub(crate) struct LoggerCore {
    limits: LogRecordLimits,
    /// Without an exporter, records are not even converted.
    pub(crate) pipelines: Pipelines<LogData>,
    scopes: Mutex<HashMap<String, Arc<Scope>>>,
    /// Records dropped because one was being emitted on this thread already (a `__str__`
    /// or handler that logs while its record is converted).
    reentrant_drops: AtomicU64,
    shut_down: AtomicBool,
}

thread_local! {
    static EMITTING: Cell<bool> = const { Cell::new(false) };
}

impl LoggerCore {
    /// Whether records are exported at all.
    pub(crate) fn exporting(&self) -> bool {
        !self.shut_down.load(Ordering::Relaxed) && !self.pipelines.is_empty()
    }

    pub(crate) fn scope(&self, name: &str, version: Option<String>, schema_url: Option<String>) -> Arc<Scope> {
        let mut scopes = lock(&self.scopes);
        if let Some(scope) = scopes.get(name).filter(|s| s.version == version) {
            return scope.clone();
        }
        let scope = Arc::new(Scope {
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
    pub(crate) fn guarded(&self, emit: impl FnOnce() -> PyResult<Option<LogData>>) -> PyResult<()> {
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
            self.pipelines.on_end(record);
        }
        Ok(())
    }
}

impl Participant for LoggerCore {
    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        self.pipelines.begin_shutdown()
    }

    fn after_fork(&self, _py: Python<'_>, pid: u32) {
        self.pipelines.rebuild_after_fork(pid);
    }
}

/// `LoggerProvider(settings=None)`: resource, limits and exporters (`OTEL_LOGS_EXPORTER`:
/// otlp, console, none) from the environment, with `settings` (variable name -> value)
/// winning; records are batched per `OTEL_BLRP_*`.
#[pyclass(frozen, module = "ferrotel._native", name = "LoggerProvider")]
pub(crate) struct LoggerProvider {
    core: Arc<LoggerCore>,
}

#[pymethods]
impl LoggerProvider {
    #[new]
    #[pyo3(signature = (settings=None))]
    fn new(py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let config = config_with(settings)?.config;
        let recipes = ProcessorRecipe::from_environment(
            py,
            "OTEL_LOGS_EXPORTER",
            &config.logs_exporters,
            &config.otlp_logs,
            config.blrp,
            config.sdk_disabled,
        );
        let core = Arc::new(LoggerCore {
            limits: config.log_record_limits,
            pipelines: Pipelines::new(config, process_facts(py)?, recipes),
            scopes: Mutex::new(HashMap::new()),
            reentrant_drops: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
        });
        lifecycle::register(Arc::downgrade(&core) as Weak<dyn Participant>);
        Ok(LoggerProvider { core })
    }

    #[pyo3(signature = (name, version=None, schema_url=None, attributes=None))]
    fn get_logger(
        &self,
        name: Option<&Bound<'_, PyAny>>,
        version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> Logger {
        let name = name.map(value::name_of).unwrap_or_default();
        let mut scope = (*self.core.scope(&name, version, schema_url)).clone();
        for (k, v) in value::attributes(attributes) {
            scope.attributes.set(k, v, usize::MAX, None);
        }
        Logger::new(self.core.clone(), Arc::new(scope))
    }

    /// Whether records are exported at all (some exporter is configured and running).
    #[getter]
    fn exporting(&self) -> bool {
        self.core.exporting()
    }

    /// The `logging` handler's path: one `logging.LogRecord`, converted and queued.
    fn _emit_logging_record(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.guarded(|| convert_logging_record(py, &self.core, record))
    }

    /// Exports everything emitted so far; `False` if the deadline passed first.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        self.core
            .pipelines
            .force_flush(py, Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3))
    }

    /// Flushes and stops within `timeout_millis`; idempotent. Records emitted afterwards
    /// are ignored.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn shutdown(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let flushes = self.core.begin_shutdown();
        lifecycle::finish(py, &flushes, deadline_in(timeout_millis), false)
    }

    /// Exact counts: enqueued, dropped, exported, failed, pending, in_flight, and the
    /// records dropped because one was being emitted on the same thread (`reentrant`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = stats_dict(py, self.core.pipelines.counts())?;
        dict.set_item("reentrant", self.core.reentrant_drops.load(Ordering::Relaxed))?;
        Ok(dict)
    }
}
