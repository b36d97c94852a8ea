//! `LoggerProvider`: its loggers, the `logging` handler's entry, flush, shutdown, stats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ferrotel_sdk::span::ScopeRef;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::core::LoggerCore;
use super::logger::Logger;
use super::record::convert_logging_record;
use crate::boundary::process::resource_facts;
use crate::boundary::value;
use crate::export::python::PythonProcessors;
use crate::export::{stats_dict, Pipelines, ProcessorRecipe};
use crate::runtime::lifecycle::{deadline_in, millis};
use crate::runtime::settings::config_with;

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
        let recipes =
            ProcessorRecipe::from_environment(py, "OTEL_LOGS_EXPORTER", &config.logs_processors, config.sdk_disabled);
        let facts = resource_facts(py, &config)?;
        let core = Arc::new(LoggerCore {
            limits: config.log_record_limits,
            pipelines: Pipelines::taking_part(config, facts, recipes),
            python: PythonProcessors::taking_part("log record processor"),
            scopes: Mutex::new(HashMap::new()),
            reentrant_drops: AtomicU64::new(0),
        });
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
        Logger::new(self.core.clone(), ScopeRef::new(scope))
    }

    /// Whether records are exported at all (some exporter is configured and running).
    #[getter]
    fn exporting(&self) -> bool {
        self.core.exporting()
    }

    /// The `logging` handler's path: one `logging.LogRecord`, converted and queued, with
    /// `code.*` attributes when `code_attributes`.
    #[pyo3(signature = (record, code_attributes=false))]
    fn _emit_logging_record(&self, py: Python<'_>, record: &Bound<'_, PyAny>, code_attributes: bool) -> PyResult<()> {
        self.core
            .guarded(py, || convert_logging_record(py, &self.core, record, code_attributes))
    }

    /// Exports everything emitted so far; `False` if the deadline passed first.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let python = self.core.python.force_flush(py, timeout_millis);
        self.core.pipelines.force_flush(py, millis(timeout_millis)) && python
    }

    /// A processor with the SDK's `LogRecordProcessor` methods (`on_emit`, `force_flush`,
    /// `shutdown`): called with each record, on the emitting thread, in the order added.
    fn add_log_record_processor(&self, processor: &Bound<'_, PyAny>) -> PyResult<()> {
        if !processor.hasattr("on_emit")? {
            return Err(PyTypeError::new_err(format!(
                "{} is not a log record processor (it has no on_emit method)",
                processor.get_type().name()?
            )));
        }
        self.core.python.add(processor)?;
        Ok(())
    }

    /// Flushes and stops within `timeout_millis`; idempotent. Records emitted afterwards
    /// are ignored.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn shutdown(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let deadline = deadline_in(timeout_millis);
        self.core.python.shutdown(py, deadline);
        self.core.pipelines.shutdown(py, deadline)
    }

    /// Exact counts: enqueued, dropped, exported, failed, pending, in_flight, and the
    /// records dropped because one was being emitted on the same thread (`reentrant`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = stats_dict(py, self.core.pipelines.counts())?;
        dict.set_item("reentrant", self.core.reentrant_drops.load(Ordering::Relaxed))?;
        Ok(dict)
    }
}
