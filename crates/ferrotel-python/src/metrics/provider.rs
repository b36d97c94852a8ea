//! `MeterProvider`: its meters, the reader thread's collection, flush, shutdown, stats.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ferrotel_config::BatchConfig;
use ferrotel_sdk::span::Scope;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Attributes;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::core::MeterCore;
use super::instruments::Meter;
use crate::boundary::process::resource_facts;
use crate::boundary::value;
use crate::export::{stats_dict, Pipelines, ProcessorRecipe};
use crate::runtime::lifecycle::{self, deadline_in, millis, Participant};
use crate::runtime::settings::config_with;

/// `MeterProvider(settings=None)`: resource and exporters (`OTEL_METRICS_EXPORTER`: otlp,
/// console, none) from the environment, with `settings` (variable name -> value) winning;
/// temporality per `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
#[pyclass(frozen, subclass, module = "ferrotel._native", name = "MeterProvider")]
pub(crate) struct MeterProvider {
    core: Arc<MeterCore>,
}

#[pymethods]
impl MeterProvider {
    #[new]
    #[pyo3(signature = (settings=None))]
    fn new(py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let config = config_with(settings)?.config;
        // Collections push their metrics and flush at once: the schedule never fires, and
        // one collection is one request.
        let batch = BatchConfig {
            schedule_delay: Duration::from_secs(24 * 3600),
            export_timeout: config.metric_reader.export_timeout,
            max_queue_size: 200_000,
            max_export_batch_size: 200_000,
        };
        let recipes = ProcessorRecipe::from_environment(
            py,
            "OTEL_METRICS_EXPORTER",
            &config.metrics_exporters,
            &config.otlp_metrics,
            batch,
            config.sdk_disabled,
        );
        let facts = resource_facts(py, &config)?;
        let core = Arc::new(MeterCore {
            reader: config.metric_reader.clone(),
            pipelines: Pipelines::new(config, facts, recipes),
            instruments: Mutex::new(HashMap::new()),
            collecting: Mutex::new(()),
            collected_for_exit: AtomicBool::new(false),
            reader_restart: Mutex::new(None),
        });
        lifecycle::register(Arc::downgrade(&core) as Weak<dyn Participant>);
        Ok(MeterProvider { core })
    }

    #[pyo3(signature = (name, version=None, schema_url=None, attributes=None))]
    fn get_meter(
        &self,
        name: Option<&Bound<'_, PyAny>>,
        version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> Meter {
        let mut scope_attributes = Attributes::default();
        for (k, v) in value::attributes(attributes) {
            scope_attributes.set(k, v, usize::MAX, None);
        }
        Meter {
            core: self.core.clone(),
            scope: Arc::new(Scope {
                name: name.map(value::name_of).unwrap_or_default(),
                version,
                schema_url,
                attributes: scope_attributes,
            }),
        }
    }

    /// Whether metrics are exported at all (some exporter is configured and running).
    #[getter]
    fn exporting(&self) -> bool {
        self.core.exporting()
    }

    /// Seconds between collections (`OTEL_METRIC_EXPORT_INTERVAL`).
    #[getter]
    fn export_interval_seconds(&self) -> f64 {
        self.core.reader.export_interval.as_secs_f64()
    }

    /// `restart`: a callable returning the method that starts the reader thread (or `None`
    /// once the provider is gone), called in a forked child.
    fn _on_fork_restart_reader(&self, restart: Py<PyAny>) {
        *lock(&self.core.reader_restart) = Some(restart);
    }

    /// One collection, exported; the reader thread's tick.
    fn _collect_and_export(&self, py: Python<'_>) -> bool {
        self.core.collect_and_flush(py, self.core.reader.export_timeout)
    }

    /// Collects and exports now; `False` if the deadline passed first.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        self.core.collect_and_flush(py, millis(timeout_millis))
    }

    /// A last collection and export within `timeout_millis`, then nothing more; idempotent.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn shutdown(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let deadline: Instant = deadline_in(timeout_millis);
        self.core.before_exit(py, deadline);
        self.core.pipelines.shutdown(py, deadline)
    }

    /// Exact counts of data points: enqueued, dropped, exported, failed, pending, in_flight.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.core.pipelines.counts())
    }
}
