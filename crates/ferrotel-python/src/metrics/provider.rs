//! `MeterProvider` and its collections: the observable callbacks run with the GIL, every
//! instrument's points gathered and queued on the provider's pipelines, one request per
//! collection and exporter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ferrotel_config::{BatchConfig, LogLevel, MetricReaderConfig};
use ferrotel_sdk::metrics::{Instrument, InstrumentKind, MetricData};
use ferrotel_sdk::span::Scope;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Attributes;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::instruments::{callback_options, observe, Meter};
use crate::boundary::value;
use crate::export::{stats_dict, Pipelines, ProcessorRecipe};
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::{self, deadline_in, Flush, Participant};
use crate::runtime::settings::{config_with, process_facts};

/// An instrument with, for observable ones, the callbacks that feed it at each collection.
pub(crate) struct Registered {
    pub(crate) instrument: Arc<Instrument>,
    pub(crate) callbacks: Vec<Py<PyAny>>,
}

/// What makes two instruments the same one (names compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct InstrumentKey {
    pub(crate) scope_name: String,
    pub(crate) scope_version: String,
    pub(crate) name: String,
    pub(crate) kind: InstrumentKind,
}

pub(crate) struct MeterCore {
    pub(crate) reader: MetricReaderConfig,
    pipelines: Pipelines<MetricData>,
    /// Asking twice for the same instrument gives the same one, as the API requires.
    pub(crate) instruments: Mutex<HashMap<InstrumentKey, Arc<Mutex<Registered>>>>,
    /// Held for a whole collection, so the reader thread and the exit path never interleave.
    collecting: Mutex<()>,
    /// The exit path's last collection is queued; shutting down need not collect again.
    collected_for_exit: AtomicBool,
    shut_down: AtomicBool,
    /// Restarts the provider's reader thread in a forked child (a weak method of the
    /// Python provider, so it does not keep the provider alive).
    reader_restart: Mutex<Option<Py<PyAny>>>,
}

impl MeterCore {
    fn exporting(&self) -> bool {
        !self.shut_down.load(Ordering::Relaxed) && !self.pipelines.is_empty()
    }

    /// Takes the collection lock without ever blocking while holding the GIL: the holder
    /// may need the GIL to finish (callbacks), so a waiter lets it go between attempts.
    fn collection_guard(&self, py: Python<'_>) -> MutexGuard<'_, ()> {
        loop {
            match self.collecting.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    py.detach(|| std::thread::sleep(Duration::from_millis(1)));
                }
            }
        }
    }

    /// Runs the callbacks, gathers every instrument's points and queues them for export.
    fn collect(&self, py: Python<'_>) {
        if self.pipelines.is_empty() {
            return;
        }
        let registered: Vec<Arc<Mutex<Registered>>> = lock(&self.instruments).values().cloned().collect();
        let now = ferrotel_sdk::now_ns();
        let timeout_millis = self.reader.export_timeout.as_secs_f64() * 1e3;
        let options = callback_options(py, timeout_millis);
        for entry in &registered {
            let (instrument, callbacks) = {
                let entry = lock(entry);
                let callbacks: Vec<Py<PyAny>> = entry.callbacks.iter().map(|c| c.clone_ref(py)).collect();
                (entry.instrument.clone(), callbacks)
            };
            for callback in callbacks {
                if let Err(error) = observe(py, &instrument, callback.bind(py), &options, now) {
                    emit(
                        py,
                        LogLevel::Warning,
                        &format!("the callback of {} failed and was skipped: {error}", instrument.name),
                    );
                }
            }
        }
        for entry in &registered {
            let instrument = lock(entry).instrument.clone();
            let temporality = instrument.kind.temporality(self.reader.temporality_preference);
            if let Some(data) = instrument.collect(temporality, now) {
                self.pipelines.on_end(data);
            }
        }
    }

    fn collect_and_flush(&self, py: Python<'_>, timeout: Duration) -> bool {
        if !self.exporting() {
            return true;
        }
        let _guard = self.collection_guard(py);
        self.collect(py);
        self.pipelines.force_flush(py, timeout)
    }
}

impl Participant for MeterCore {
    /// The last collection, queued before every signal's flush starts so its export runs
    /// beside theirs rather than taking the budget before them.
    fn before_exit(&self, py: Python<'_>) {
        let _guard = self.collection_guard(py);
        if self.shut_down.load(Ordering::Relaxed) || self.collected_for_exit.swap(true, Ordering::AcqRel) {
            return;
        }
        self.collect(py);
    }

    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        self.pipelines.begin_shutdown()
    }

    fn after_fork(&self, py: Python<'_>, pid: u32) {
        self.pipelines.rebuild_after_fork(pid);
        // The parent's reader thread does not exist here: a fresh one.
        let restart = lock(&self.reader_restart).as_ref().map(|r| r.clone_ref(py));
        if let Some(method) = restart
            .and_then(|weak| weak.bind(py).call0().ok())
            .filter(|m| !m.is_none())
        {
            if let Err(error) = method.call0() {
                emit(
                    py,
                    LogLevel::Warning,
                    &format!("the metrics reader could not restart after fork: {error}"),
                );
            }
        }
    }
}

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
        let core = Arc::new(MeterCore {
            reader: config.metric_reader.clone(),
            pipelines: Pipelines::new(config, process_facts(py)?, recipes),
            instruments: Mutex::new(HashMap::new()),
            collecting: Mutex::new(()),
            collected_for_exit: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
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
        let timeout = Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3);
        self.core.collect_and_flush(py, timeout)
    }

    /// A last collection and export within `timeout_millis`, then nothing more; idempotent.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn shutdown(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let deadline: Instant = deadline_in(timeout_millis);
        self.core.before_exit(py);
        let flushes = self.core.begin_shutdown();
        lifecycle::finish(py, &flushes, deadline, false)
    }

    /// Exact counts of data points: enqueued, dropped, exported, failed, pending, in_flight.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.core.pipelines.counts())
    }
}
