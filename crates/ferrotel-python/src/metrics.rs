//! The metrics signal for Python: a `MeterProvider` whose exporters come from
//! `OTEL_METRICS_EXPORTER`, its meters and the seven instrument kinds of the Metrics API.
//! Measurements aggregate in Rust ([`ferrotel_sdk::metrics`]); a collection (every
//! `OTEL_METRIC_EXPORT_INTERVAL`, driven by the Python reader thread, and at exit) runs the
//! observable instruments' callbacks, gathers every instrument's points and hands them to the
//! shared pipeline, whose worker encodes and sends them without the GIL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrotel_config::{BatchConfig, LogLevel, MetricReaderConfig};
use ferrotel_otlp::OtlpExporter;
use ferrotel_sdk::metrics::{
    valid_instrument_name, ExemplarFilter, Instrument, InstrumentKind, MetricData, Number, SpanOfMeasurement,
};
use ferrotel_sdk::pipeline::Pipeline;
use ferrotel_sdk::span::Scope;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Attributes;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt};

use crate::diagnostics::emit;
use crate::signal::{ExporterSpec, Registry, SignalPipeline};
use crate::trace::provider::{config_with, process_facts, report_undelivered};
use crate::trace::span::span_ids_in;
use crate::trace::value;

/// An instrument with, for observable ones, the callbacks that feed it at each collection.
struct Registered {
    instrument: Arc<Instrument>,
    callbacks: Vec<Py<PyAny>>,
}

/// (scope name, scope version, lower-cased instrument name, kind).
type InstrumentKey = (String, String, String, String);

pub struct MeterCore {
    reader: MetricReaderConfig,
    signal: SignalPipeline<MetricData>,
    /// Asking twice for the same instrument gives the same one, as the API requires.
    instruments: Mutex<HashMap<InstrumentKey, Arc<Mutex<Registered>>>>,
    /// Held for a whole collection, so the reader thread and the exit path never interleave.
    collecting: Mutex<()>,
    /// The exit path's last collection is queued; shutting down need not collect again.
    collected_for_exit: AtomicBool,
    shut_down: AtomicBool,
}

impl MeterCore {
    fn pipeline(&self) -> Option<Arc<Pipeline<MetricData>>> {
        self.signal.current()
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
    /// Returns the pipeline to flush, if anything was queued.
    fn collect(&self, py: Python<'_>) -> Option<Arc<Pipeline<MetricData>>> {
        let pipeline = self.pipeline()?;
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
                pipeline.on_end(data);
            }
        }
        Some(pipeline)
    }

    fn collect_and_flush(&self, py: Python<'_>, timeout: Duration) -> bool {
        if self.shut_down.load(Ordering::Relaxed) {
            return true;
        }
        let _guard = self.collection_guard(py);
        match self.collect(py) {
            Some(pipeline) => py.detach(|| pipeline.force_flush(timeout)),
            None => true,
        }
    }

    /// The last collection (unless the exit path made it already), then the pipeline
    /// stopped, by `deadline`. Idempotent.
    fn stop(&self, py: Python<'_>, deadline: Instant) -> bool {
        let _guard = self.collection_guard(py);
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return true;
        }
        let pipeline = if self.collected_for_exit.load(Ordering::Relaxed) {
            self.pipeline()
        } else {
            self.collect(py)
        };
        let Some(pipeline) = pipeline else { return true };
        let complete = py.detach(|| pipeline.shutdown(deadline.saturating_duration_since(Instant::now())));
        report_undelivered(py, &[pipeline], "metric(s)");
        complete
    }
}

/// `opentelemetry.metrics.CallbackOptions(timeout_millis=...)`, or `None` without the API.
fn callback_options(py: Python<'_>, timeout_millis: f64) -> Py<PyAny> {
    py.import("opentelemetry.metrics")
        .and_then(|m| m.getattr("CallbackOptions"))
        .and_then(|c| {
            let kwargs = PyDict::new(py);
            kwargs.set_item("timeout_millis", timeout_millis)?;
            c.call((), Some(&kwargs))
        })
        .map(Bound::unbind)
        .unwrap_or_else(|_| py.None())
}

/// Calls one callback and records what it observed: an iterable of `Observation`s (each
/// with `.value` and `.attributes`).
fn observe(
    py: Python<'_>,
    instrument: &Instrument,
    callback: &Bound<'_, PyAny>,
    options: &Py<PyAny>,
    now: u64,
) -> PyResult<()> {
    let observations = callback.call1((options.bind(py),))?;
    for observation in observations.try_iter()? {
        let observation = observation?;
        let Some(value) = number(&observation.getattr("value")?) else {
            continue;
        };
        let attributes = observation.getattr("attributes").ok().filter(|a| !a.is_none());
        instrument.record(value, value::attributes(attributes.as_ref()), now);
    }
    Ok(())
}

fn number(obj: &Bound<'_, PyAny>) -> Option<Number> {
    if obj.cast::<PyBool>().is_ok() {
        return None;
    }
    if obj.cast::<PyInt>().is_ok() {
        return obj
            .extract::<i64>()
            .ok()
            .map(Number::Int)
            .or_else(|| obj.extract::<f64>().ok().map(Number::Double));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Some(Number::Double(f.value()));
    }
    obj.extract::<f64>().ok().map(Number::Double)
}

/// The current span, for the exemplar filter; not looked up when no exemplar is kept.
fn current_span(py: Python<'_>, instrument: &Instrument) -> SpanOfMeasurement {
    if instrument.exemplar_filter == ExemplarFilter::AlwaysOff {
        return None;
    }
    span_ids_in(py, None)
        .ok()
        .flatten()
        .map(|(trace_id, span_id, flags)| (trace_id, span_id, flags & 1 == 1))
}

static PROVIDERS: Registry<MeterCore> = Registry::new();

/// In a forked child: fresh pipelines with the child's pid (the reader threads are restarted
/// by `ferrotel.metrics`). Registered by it; runs under the GIL.
#[pyfunction]
pub fn _metrics_after_fork_in_child() {
    for core in PROVIDERS.live() {
        core.signal.rebuild_after_fork(std::process::id());
    }
}

/// The exit path, first step: every provider's last collection queued and its export
/// started, without waiting for it.
pub fn collect_for_exit(py: Python<'_>) {
    for core in PROVIDERS.live() {
        let _guard = core.collection_guard(py);
        if core.shut_down.load(Ordering::Relaxed) || core.collected_for_exit.swap(true, Ordering::AcqRel) {
            continue;
        }
        if let Some(pipeline) = core.collect(py) {
            pipeline.force_flush(Duration::ZERO);
        }
    }
}

/// The exit path, last step: what was collected sent by `deadline`.
pub fn shutdown_all(py: Python<'_>, deadline: Instant) {
    for core in PROVIDERS.live() {
        core.stop(py, deadline);
    }
}

/// `MeterProvider(settings=None)`: resource and exporters (`OTEL_METRICS_EXPORTER`: otlp,
/// console, none) from the environment, with `settings` (variable name -> value) winning;
/// temporality per `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
#[pyclass(frozen, subclass, module = "ferrotel._native", name = "MeterProvider")]
pub struct MeterProvider {
    core: Arc<MeterCore>,
}

#[pymethods]
impl MeterProvider {
    #[new]
    #[pyo3(signature = (settings=None))]
    fn new(py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let config = config_with(settings)?.config;
        let exporters = ExporterSpec::from_list(
            py,
            "OTEL_METRICS_EXPORTER",
            &config.metrics_exporters,
            &config.otlp_metrics,
            config.sdk_disabled,
        );
        // Collections push their metrics and flush at once: the schedule never fires, and
        // one collection is one request.
        let batch = BatchConfig {
            schedule_delay: Duration::from_secs(24 * 3600),
            export_timeout: config.metric_reader.export_timeout,
            max_queue_size: 200_000,
            max_export_batch_size: 200_000,
        };
        let core = Arc::new(MeterCore {
            reader: config.metric_reader.clone(),
            signal: SignalPipeline::new(
                config.clone(),
                process_facts(py)?,
                exporters,
                batch,
                OtlpExporter::for_metrics,
            ),
            instruments: Mutex::new(HashMap::new()),
            collecting: Mutex::new(()),
            collected_for_exit: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
        });
        PROVIDERS.add(&core);
        Ok(MeterProvider { core })
    }

    #[pyo3(signature = (name, version=None, schema_url=None, attributes=None))]
    fn get_meter(
        &self,
        name: Option<String>,
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
                name: name.unwrap_or_default(),
                version,
                schema_url,
                attributes: scope_attributes,
            }),
        }
    }

    /// Whether metrics are exported at all (some exporter is configured and running).
    #[getter]
    fn exporting(&self) -> bool {
        self.core.pipeline().is_some() && !self.core.shut_down.load(Ordering::Relaxed)
    }

    /// Seconds between collections (`OTEL_METRIC_EXPORT_INTERVAL`).
    #[getter]
    fn export_interval_seconds(&self) -> f64 {
        self.core.reader.export_interval.as_secs_f64()
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
        let deadline = Instant::now() + Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3);
        self.core.stop(py, deadline)
    }

    /// Exact counts of metrics (one per instrument and collection): enqueued, dropped,
    /// exported, failed.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        let c = self.core.pipeline().map(|p| p.counters()).unwrap_or_default();
        dict.set_item("enqueued", c.enqueued)?;
        dict.set_item("dropped", c.dropped)?;
        dict.set_item("exported", c.exported)?;
        dict.set_item("failed", c.failed)?;
        Ok(dict)
    }
}

#[pyclass(frozen, module = "ferrotel._native")]
pub struct Meter {
    core: Arc<MeterCore>,
    scope: Arc<Scope>,
}

impl Meter {
    /// The instrument for this name and kind, created on first request. An invalid name
    /// gets one warning and an instrument that records nothing, as the API asks.
    #[allow(clippy::too_many_arguments)]
    fn instrument(
        &self,
        py: Python<'_>,
        name: &str,
        unit: &str,
        description: &str,
        kind: InstrumentKind,
        boundaries: Option<Vec<f64>>,
        callbacks: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Arc<Instrument>>> {
        if !valid_instrument_name(name) {
            emit(
                py,
                LogLevel::Warning,
                &format!("{name:?} is not a valid instrument name (a letter, then up to 254 of letters, digits, _ . - /); it records nothing"),
            );
            return Ok(None);
        }
        let key = (
            self.scope.name.clone(),
            self.scope.version.clone().unwrap_or_default(),
            name.to_ascii_lowercase(),
            format!("{kind:?}"),
        );
        let entry = lock(&self.core.instruments)
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Mutex::new(Registered {
                    instrument: Arc::new(Instrument::new(
                        name.to_owned(),
                        description.to_owned(),
                        unit.to_owned(),
                        kind,
                        self.scope.clone(),
                        boundaries,
                        ExemplarFilter::from_name(self.core.reader.exemplar_filter),
                    )),
                    callbacks: Vec::new(),
                }))
            })
            .clone();
        let mut entry = lock(&entry);
        if let Some(callbacks) = callbacks.filter(|c| !c.is_none()) {
            for callback in callbacks.try_iter()? {
                entry.callbacks.push(callback?.unbind());
            }
        }
        Ok(Some(entry.instrument.clone()))
    }
}

impl Meter {
    fn observable(
        &self,
        py: Python<'_>,
        name: &str,
        callbacks: Option<&Bound<'_, PyAny>>,
        unit: &str,
        description: &str,
        kind: InstrumentKind,
    ) -> PyResult<ObservableInstrument> {
        let instrument = self.instrument(py, name, unit, description, kind, None, callbacks)?;
        Ok(ObservableInstrument { instrument })
    }
}

macro_rules! synchronous_instrument {
    ($class:ident, $method:ident, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(frozen, module = "ferrotel._native")]
        pub struct $class {
            pub(crate) instrument: Option<Arc<Instrument>>,
            /// Said once: a counter given a negative amount.
            warned: AtomicBool,
        }

        #[pymethods]
        impl $class {
            #[pyo3(signature = (amount, attributes=None, context=None))]
            fn $method(
                &self,
                py: Python<'_>,
                amount: &Bound<'_, PyAny>,
                attributes: Option<&Bound<'_, PyAny>>,
                context: Option<&Bound<'_, PyAny>>,
            ) {
                let _ = context;
                let Some(instrument) = &self.instrument else {
                    return;
                };
                let Some(value) = number(amount) else { return };
                if $kind == InstrumentKind::Counter && value.as_f64() < 0.0 {
                    if !self.warned.swap(true, Ordering::Relaxed) {
                        emit(
                            py,
                            LogLevel::Warning,
                            &format!(
                                "counter {} was given a negative amount; such amounts are dropped",
                                instrument.name
                            ),
                        );
                    }
                    return;
                }
                let span = current_span(py, instrument);
                instrument.record_in(value, value::attributes(attributes), ferrotel_sdk::now_ns(), span);
            }

            #[getter]
            fn name(&self) -> &str {
                self.instrument.as_ref().map_or("", |i| i.name.as_str())
            }
        }
    };
}

synchronous_instrument!(
    Counter,
    add,
    InstrumentKind::Counter,
    "A monotonic sum: `add(amount >= 0, attributes)`."
);
synchronous_instrument!(
    UpDownCounter,
    add,
    InstrumentKind::UpDownCounter,
    "A sum that may go down."
);
synchronous_instrument!(
    Histogram,
    record,
    InstrumentKind::Histogram,
    "A distribution in explicit buckets."
);
synchronous_instrument!(Gauge, set, InstrumentKind::Gauge, "The last value set.");

/// An observable instrument: its callbacks report values at each collection.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct ObservableInstrument {
    instrument: Option<Arc<Instrument>>,
}

#[pymethods]
impl ObservableInstrument {
    #[getter]
    fn name(&self) -> &str {
        self.instrument.as_ref().map_or("", |i| i.name.as_str())
    }
}

#[pymethods]
impl Meter {
    #[getter]
    fn name(&self) -> &str {
        &self.scope.name
    }

    #[pyo3(signature = (name, unit="", description=""))]
    fn create_counter(&self, py: Python<'_>, name: &str, unit: &str, description: &str) -> PyResult<Counter> {
        let instrument = self.instrument(py, name, unit, description, InstrumentKind::Counter, None, None)?;
        Ok(Counter {
            instrument,
            warned: AtomicBool::new(false),
        })
    }

    #[pyo3(signature = (name, unit="", description=""))]
    fn create_up_down_counter(
        &self,
        py: Python<'_>,
        name: &str,
        unit: &str,
        description: &str,
    ) -> PyResult<UpDownCounter> {
        let instrument = self.instrument(py, name, unit, description, InstrumentKind::UpDownCounter, None, None)?;
        Ok(UpDownCounter {
            instrument,
            warned: AtomicBool::new(false),
        })
    }

    #[pyo3(signature = (name, unit="", description="", *, explicit_bucket_boundaries_advisory=None))]
    fn create_histogram(
        &self,
        py: Python<'_>,
        name: &str,
        unit: &str,
        description: &str,
        explicit_bucket_boundaries_advisory: Option<Vec<f64>>,
    ) -> PyResult<Histogram> {
        let kind = InstrumentKind::Histogram;
        let instrument = self.instrument(
            py,
            name,
            unit,
            description,
            kind,
            explicit_bucket_boundaries_advisory,
            None,
        )?;
        Ok(Histogram {
            instrument,
            warned: AtomicBool::new(false),
        })
    }

    #[pyo3(signature = (name, unit="", description=""))]
    fn create_gauge(&self, py: Python<'_>, name: &str, unit: &str, description: &str) -> PyResult<Gauge> {
        let instrument = self.instrument(py, name, unit, description, InstrumentKind::Gauge, None, None)?;
        Ok(Gauge {
            instrument,
            warned: AtomicBool::new(false),
        })
    }

    #[pyo3(signature = (name, callbacks=None, unit="", description=""))]
    fn create_observable_counter(
        &self,
        py: Python<'_>,
        name: &str,
        callbacks: Option<&Bound<'_, PyAny>>,
        unit: &str,
        description: &str,
    ) -> PyResult<ObservableInstrument> {
        self.observable(
            py,
            name,
            callbacks,
            unit,
            description,
            InstrumentKind::ObservableCounter,
        )
    }

    #[pyo3(signature = (name, callbacks=None, unit="", description=""))]
    fn create_observable_up_down_counter(
        &self,
        py: Python<'_>,
        name: &str,
        callbacks: Option<&Bound<'_, PyAny>>,
        unit: &str,
        description: &str,
    ) -> PyResult<ObservableInstrument> {
        self.observable(
            py,
            name,
            callbacks,
            unit,
            description,
            InstrumentKind::ObservableUpDownCounter,
        )
    }

    #[pyo3(signature = (name, callbacks=None, unit="", description=""))]
    fn create_observable_gauge(
        &self,
        py: Python<'_>,
        name: &str,
        callbacks: Option<&Bound<'_, PyAny>>,
        unit: &str,
        description: &str,
    ) -> PyResult<ObservableInstrument> {
        self.observable(py, name, callbacks, unit, description, InstrumentKind::ObservableGauge)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MeterProvider>()?;
    m.add_class::<Meter>()?;
    m.add_class::<Counter>()?;
    m.add_class::<UpDownCounter>()?;
    m.add_class::<Histogram>()?;
    m.add_class::<Gauge>()?;
    m.add_class::<ObservableInstrument>()?;
    m.add_function(wrap_pyfunction!(_metrics_after_fork_in_child, m)?)?;
    Ok(())
}
