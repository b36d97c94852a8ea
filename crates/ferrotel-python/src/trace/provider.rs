//! `TracerProvider` and the processor / exporter specs Python code composes.
//!
//! A processor is kept as a recipe ([`ProcessorSpec`]) next to the running pipeline it made,
//! so a forked child can build fresh pipelines (new worker thread, empty queue, its own
//! pid in the resource) from the same recipes; the parent is untouched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ferrotel_sdk::sync::lock;
use std::time::Duration;

use ferrotel_config::{BatchConfig, Config, Exporter, LogLevel, OtlpConfig, Sampler, SpanLimits};
use ferrotel_otlp::OtlpExporter;
use ferrotel_sdk::export::console::ConsoleExporter;
use ferrotel_sdk::pipeline::{self, ExportResult, Pipeline};
use ferrotel_sdk::resource::{ProcessFacts, Resource};
use ferrotel_sdk::span::{Scope, SpanData};
use ferrotel_sdk::value::Attributes;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::tracer::Tracer;
use super::value;
use crate::diagnostics::emit;

/// Spans kept in memory, for tests and for code that inspects what it recorded.
type Memory = Arc<Mutex<Vec<(SpanData, Arc<Resource>)>>>;

#[derive(Clone)]
enum ExporterSpec {
    Console,
    Memory(Memory),
    Otlp(OtlpConfig),
}

struct MemoryExporter(Memory);

impl pipeline::Exporter<SpanData> for MemoryExporter {
    fn export(&mut self, batch: &[SpanData], resource: &Resource) -> ExportResult {
        let resource = Arc::new(resource.clone());
        lock(&self.0).extend(batch.iter().map(|s| (s.clone(), resource.clone())));
        ExportResult::Success
    }
}

impl ExporterSpec {
    fn build(&self) -> Box<dyn pipeline::Exporter<SpanData>> {
        match self {
            ExporterSpec::Console => Box::new(ConsoleExporter::stdout()),
            ExporterSpec::Memory(store) => Box::new(MemoryExporter(store.clone())),
            ExporterSpec::Otlp(config) => Box::new(OtlpExporter::new(config.clone())),
        }
    }
}

/// `ConsoleSpanExporter()`: one readable block per span on standard output.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct ConsoleSpanExporter;

#[pymethods]
impl ConsoleSpanExporter {
    #[new]
    fn new() -> Self {
        ConsoleSpanExporter
    }
}

/// `InMemorySpanExporter()`: keeps finished spans; `get_finished_spans()` returns them as dicts.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct InMemorySpanExporter {
    store: Memory,
}

#[pymethods]
impl InMemorySpanExporter {
    #[new]
    fn new() -> Self {
        InMemorySpanExporter {
            store: Memory::default(),
        }
    }

    fn get_finished_spans<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let spans = lock(&self.store).clone();
        let list = PyList::empty(py);
        for (span, resource) in &spans {
            list.append(super::span::span_dict(py, span, resource)?)?;
        }
        Ok(list)
    }

    fn clear(&self) {
        lock(&self.store).clear();
    }
}

#[derive(Clone)]
struct ProcessorSpec {
    /// `None`: simple (export on the calling thread).
    batch: Option<BatchConfig>,
    exporter: ExporterSpec,
}

impl ProcessorSpec {
    fn build(&self, resource: Resource) -> Pipeline {
        let exporters = vec![self.exporter.build()];
        match self.batch {
            Some(config) => Pipeline::batch(config, exporters, resource),
            None => Pipeline::simple(exporters, resource),
        }
    }
}

/// `OTLPSpanExporter(endpoint=None, headers=None, timeout=None, compression=None,
/// certificate_file=None, client_key_file=None, client_certificate_file=None, protocol=None)`:
/// arguments win over the `OTEL_EXPORTER_OTLP_*` variables, which fill in the rest (the
/// protocol defaults to grpc, as upstream's). An endpoint given here is used as it is.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct OTLPSpanExporter {
    config: OtlpConfig,
}

#[pymethods]
impl OTLPSpanExporter {
    #[new]
    #[pyo3(signature = (endpoint=None, headers=None, timeout=None, compression=None, certificate_file=None, client_key_file=None, client_certificate_file=None, protocol=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        endpoint: Option<String>,
        headers: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        compression: Option<String>,
        certificate_file: Option<String>,
        client_key_file: Option<String>,
        client_certificate_file: Option<String>,
        protocol: Option<String>,
    ) -> PyResult<Self> {
        let mut overrides: Vec<(&str, String)> = Vec::new();
        let mut set = |name, value: Option<String>| {
            if let Some(v) = value {
                overrides.push((name, v));
            }
        };
        set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint);
        set("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", timeout.map(|t| t.to_string()));
        set("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", compression);
        set("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", certificate_file);
        set("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", client_key_file);
        set("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", client_certificate_file);
        set(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            Some(protocol.unwrap_or_else(|| "http/protobuf".into())),
        );
        let parsed = Config::from_lookup(|name| {
            overrides
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        });
        for warning in parsed
            .warnings
            .iter()
            .filter(|w| w.var.starts_with("OTEL_EXPORTER_OTLP"))
        {
            emit(py, LogLevel::Warning, &warning.to_string());
        }
        let mut config = parsed.config.otlp_traces;
        if let Some(headers) = headers.filter(|h| !h.is_none()) {
            config.headers = headers
                .extract::<std::collections::HashMap<String, String>>()?
                .into_iter()
                .collect();
        }
        Ok(OTLPSpanExporter { config })
    }
}

fn exporter_spec(exporter: &Bound<'_, PyAny>) -> PyResult<ExporterSpec> {
    if exporter.cast::<ConsoleSpanExporter>().is_ok() {
        Ok(ExporterSpec::Console)
    } else if let Ok(otlp) = exporter.cast::<OTLPSpanExporter>() {
        Ok(ExporterSpec::Otlp(otlp.get().config.clone()))
    } else if let Ok(memory) = exporter.cast::<InMemorySpanExporter>() {
        Ok(ExporterSpec::Memory(memory.get().store.clone()))
    } else {
        Err(PyValueError::new_err(format!(
            "{} is not a ferrotel span exporter",
            exporter.get_type().name()?
        )))
    }
}

/// `BatchSpanProcessor(exporter, ...)`: the recipe of a batch pipeline.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct BatchSpanProcessor {
    spec: ProcessorSpec,
}

#[pymethods]
impl BatchSpanProcessor {
    #[new]
    #[pyo3(signature = (span_exporter, max_queue_size=None, schedule_delay_millis=None, max_export_batch_size=None, export_timeout_millis=None))]
    fn new(
        span_exporter: &Bound<'_, PyAny>,
        max_queue_size: Option<usize>,
        schedule_delay_millis: Option<f64>,
        max_export_batch_size: Option<usize>,
        export_timeout_millis: Option<f64>,
    ) -> PyResult<Self> {
        let defaults = Config::from_env().config.bsp;
        let millis = |v: Option<f64>, d: Duration| v.map_or(d, |ms| Duration::from_secs_f64(ms.max(0.0) / 1e3));
        let max_queue_size = max_queue_size.unwrap_or(defaults.max_queue_size).max(1);
        let config = BatchConfig {
            schedule_delay: millis(schedule_delay_millis, defaults.schedule_delay),
            export_timeout: millis(export_timeout_millis, defaults.export_timeout),
            max_queue_size,
            max_export_batch_size: max_export_batch_size
                .unwrap_or(defaults.max_export_batch_size)
                .clamp(1, max_queue_size),
        };
        Ok(BatchSpanProcessor {
            spec: ProcessorSpec {
                batch: Some(config),
                exporter: exporter_spec(span_exporter)?,
            },
        })
    }
}

/// `SimpleSpanProcessor(exporter)`: exports each span as it ends, on the caller's thread.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct SimpleSpanProcessor {
    spec: ProcessorSpec,
}

#[pymethods]
impl SimpleSpanProcessor {
    #[new]
    fn new(span_exporter: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(SimpleSpanProcessor {
            spec: ProcessorSpec {
                batch: None,
                exporter: exporter_spec(span_exporter)?,
            },
        })
    }
}

struct Processor {
    spec: ProcessorSpec,
    pipeline: Arc<Pipeline>,
}

/// What every tracer and span of one provider shares.
pub struct ProviderCore {
    pub sampler: Sampler,
    pub limits: SpanLimits,
    config: Config,
    facts: Mutex<ProcessFacts>,
    processors: Mutex<Vec<Processor>>,
    /// Pipelines as one cheap-to-clone list for the span-end path.
    pipelines: Mutex<Arc<Vec<Arc<Pipeline>>>>,
    shut_down: AtomicBool,
}

impl ProviderCore {
    fn resource(&self) -> Resource {
        Resource::from_config(&self.config, &lock(&self.facts))
    }

    fn add(&self, spec: ProcessorSpec) {
        let pipeline = Arc::new(spec.build(self.resource()));
        let mut processors = lock(&self.processors);
        processors.push(Processor { spec, pipeline });
        *lock(&self.pipelines) = Arc::new(processors.iter().map(|p| p.pipeline.clone()).collect());
    }

    /// Hands an ended span to every pipeline.
    pub fn on_end(&self, span: SpanData) {
        let pipelines = lock(&self.pipelines).clone();
        match pipelines.len() {
            0 => {}
            1 => pipelines[0].on_end(span),
            _ => {
                for p in pipelines.iter() {
                    p.on_end(span.clone());
                }
            }
        }
    }

    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Relaxed)
    }

    /// In a forked child: the parent's worker threads do not exist here, so every pipeline
    /// is rebuilt from its recipe with this process's pid in the resource.
    fn rebuild_after_fork(&self, pid: u32) {
        lock(&self.facts).pid = pid;
        let resource = self.resource();
        let mut processors = lock(&self.processors);
        for processor in processors.iter_mut() {
            processor.pipeline = Arc::new(processor.spec.build(resource.clone()));
        }
        *lock(&self.pipelines) = Arc::new(processors.iter().map(|p| p.pipeline.clone()).collect());
    }
}

/// Says on stderr, per pipeline, how many items (`noun`) were not delivered and why.
pub(crate) fn report_undelivered<T: Send + 'static>(py: Python<'_>, pipelines: &[Arc<Pipeline<T>>], noun: &str) {
    for pipeline in pipelines {
        let c = pipeline.counters();
        let queued = pipeline.pending() as u64 + c.in_flight;
        let lost = c.dropped + c.failed + queued;
        if lost > 0 {
            let to = pipeline.destinations().join(", ");
            let to = if to.is_empty() {
                String::new()
            } else {
                format!(" to {to}")
            };
            let message = format!(
                "{lost} {noun} were not delivered{to} ({} dropped from a full queue, {} failed to export, \
                 {queued} still queued or exporting at the exit deadline)",
                c.dropped, c.failed
            );
            emit(py, LogLevel::Warning, &message);
        }
    }
}

/// Every provider, for the after-fork rebuild.
static PROVIDERS: Mutex<Vec<Weak<ProviderCore>>> = Mutex::new(Vec::new());

/// Called in a forked child (registered with `os.register_at_fork` by the glue). Runs with
/// the GIL held, and every lock it takes is only ever taken with the GIL held, so none can
/// be held by a thread that did not survive the fork.
#[pyfunction]
pub fn _after_fork_in_child() {
    ferrotel_sdk::ids::after_fork();
    let pid = std::process::id();
    let providers: Vec<Arc<ProviderCore>> = lock(&PROVIDERS).iter().filter_map(Weak::upgrade).collect();
    for provider in providers {
        provider.rebuild_after_fork(pid);
    }
}

/// Shuts every provider down within `timeout_millis` in total: the exit path (atexit, and
/// `os._exit` in forked children, where atexit never runs).
#[pyfunction]
pub fn _shutdown_all(py: Python<'_>, timeout_millis: f64) {
    let providers: Vec<Arc<ProviderCore>> = lock(&PROVIDERS).iter().filter_map(Weak::upgrade).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3);
    // The metrics' last collection is queued and its export started first, so it runs beside
    // the spans' and logs' rather than taking the budget before them.
    crate::metrics::collect_for_exit(py);
    for core in providers {
        let remaining = deadline
            .saturating_duration_since(std::time::Instant::now())
            .as_secs_f64()
            * 1e3;
        TracerProvider { core }.shutdown(py, remaining);
    }
    let remaining = deadline.saturating_duration_since(std::time::Instant::now());
    crate::logs::shutdown_all(py, remaining);
    crate::metrics::shutdown_all(py, deadline);
}

pub(crate) fn process_facts(py: Python<'_>) -> PyResult<ProcessFacts> {
    let sys = py.import("sys")?;
    let version = py.version_info();
    Ok(ProcessFacts {
        pid: std::process::id(),
        executable: sys.getattr("executable")?.extract().unwrap_or_default(),
        command_args: sys.getattr("argv")?.extract().unwrap_or_default(),
        runtime_name: sys.getattr("implementation")?.getattr("name")?.extract()?,
        runtime_version: format!("{}.{}.{}", version.major, version.minor, version.patch),
        runtime_description: sys.getattr("version")?.extract()?,
    })
}

/// Reads the config: the environment, with `overrides` (variable name -> value) winning.
pub(crate) fn config_with(overrides: Option<&Bound<'_, PyDict>>) -> PyResult<ferrotel_config::Parsed> {
    let overrides: Vec<(String, String)> = match overrides {
        Some(d) => d
            .extract::<std::collections::HashMap<String, String>>()?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    Ok(Config::from_lookup(|name| {
        overrides
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    }))
}

/// `TracerProvider(settings=None)`: sampler, limits and resource from the environment (and
/// `settings`, variable name -> value, which win). Processors are added explicitly, or from
/// `OTEL_TRACES_EXPORTER` by `ferrotel.configure()`.
#[pyclass(frozen, module = "ferrotel._native", name = "TracerProvider", subclass)]
pub struct TracerProvider {
    pub core: Arc<ProviderCore>,
}

impl TracerProvider {
    fn build(py: Python<'_>, config: Config) -> PyResult<Self> {
        let core = Arc::new(ProviderCore {
            sampler: config.sampler,
            limits: config.span_limits,
            config,
            facts: Mutex::new(process_facts(py)?),
            processors: Mutex::new(Vec::new()),
            pipelines: Mutex::new(Arc::new(Vec::new())),
            shut_down: AtomicBool::new(false),
        });
        lock(&PROVIDERS).push(Arc::downgrade(&core));
        Ok(TracerProvider { core })
    }
}

#[pymethods]
impl TracerProvider {
    #[new]
    #[pyo3(signature = (settings=None))]
    fn new(py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let parsed = config_with(settings)?;
        Self::build(py, parsed.config)
    }

    /// A provider configured entirely from the environment (and `settings`): its exporters
    /// come from `OTEL_TRACES_EXPORTER`, each behind a batch processor, as upstream's
    /// configurator does. Configuration warnings are reported here.
    #[staticmethod]
    #[pyo3(signature = (settings=None))]
    fn from_environment(py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let parsed = config_with(settings)?;
        for warning in &parsed.warnings {
            emit(py, LogLevel::Warning, &warning.to_string());
        }
        let bsp = parsed.config.bsp;
        let exporters = if parsed.config.sdk_disabled {
            Vec::new()
        } else {
            parsed.config.traces_exporters.clone()
        };
        let otlp = parsed.config.otlp_traces.clone();
        let provider = Self::build(py, parsed.config)?;
        for exporter in exporters {
            match exporter {
                Exporter::Console => provider.core.add(ProcessorSpec {
                    batch: Some(bsp),
                    exporter: ExporterSpec::Console,
                }),
                Exporter::Otlp => provider.core.add(ProcessorSpec {
                    batch: Some(bsp),
                    exporter: ExporterSpec::Otlp(otlp.clone()),
                }),
                Exporter::EntryPoint(name) => emit(
                    py,
                    LogLevel::Warning,
                    &format!("OTEL_TRACES_EXPORTER={name}: not a ferrotel exporter (otlp, console, none); ignored"),
                ),
            }
        }
        Ok(provider)
    }

    #[pyo3(signature = (instrumenting_module_name, instrumenting_library_version=None, schema_url=None, attributes=None))]
    fn get_tracer(
        &self,
        instrumenting_module_name: Option<String>,
        instrumenting_library_version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> Tracer {
        let mut scope_attributes = Attributes::default();
        for (k, v) in value::attributes(attributes) {
            scope_attributes.set(k, v, usize::MAX, None);
        }
        let scope = Scope {
            name: instrumenting_module_name.unwrap_or_default(),
            version: instrumenting_library_version,
            schema_url,
            attributes: scope_attributes,
        };
        Tracer::new(self.core.clone(), Arc::new(scope))
    }

    fn add_span_processor(&self, span_processor: &Bound<'_, PyAny>) -> PyResult<()> {
        let spec = if let Ok(p) = span_processor.cast::<BatchSpanProcessor>() {
            p.get().spec.clone()
        } else if let Ok(p) = span_processor.cast::<SimpleSpanProcessor>() {
            p.get().spec.clone()
        } else {
            return Err(PyValueError::new_err(format!(
                "{} is not a ferrotel span processor (ferrotel.trace.export.BatchSpanProcessor or SimpleSpanProcessor)",
                span_processor.get_type().name()?
            )));
        };
        self.core.add(spec);
        Ok(())
    }

    /// Exports everything recorded so far; `False` if the deadline passed first.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let pipelines = lock(&self.core.pipelines).clone();
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3);
        py.detach(|| {
            pipelines
                .iter()
                .all(|p| p.force_flush(deadline.saturating_duration_since(std::time::Instant::now())))
        })
    }

    /// Flushes and stops every pipeline within `timeout_millis`; says on stderr how many
    /// spans were not delivered, if any. Idempotent.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn shutdown(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        if self.core.shut_down.swap(true, Ordering::AcqRel) {
            return true;
        }
        let pipelines = lock(&self.core.pipelines).clone();
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3);
        let complete = py.detach(|| {
            pipelines
                .iter()
                .all(|p| p.shutdown(deadline.saturating_duration_since(std::time::Instant::now())))
        });
        report_undelivered(py, &pipelines, "span(s)");
        complete
    }

    /// Exact counts, summed over pipelines: enqueued, dropped, exported, failed, pending.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let pipelines = lock(&self.core.pipelines).clone();
        let dict = PyDict::new(py);
        let (mut enqueued, mut dropped, mut exported, mut failed, mut pending, mut in_flight) =
            (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
        for p in pipelines.iter() {
            let c = p.counters();
            enqueued += c.enqueued;
            dropped += c.dropped;
            exported += c.exported;
            failed += c.failed;
            in_flight += c.in_flight;
            pending += p.pending() as u64;
        }
        dict.set_item("enqueued", enqueued)?;
        dict.set_item("dropped", dropped)?;
        dict.set_item("exported", exported)?;
        dict.set_item("failed", failed)?;
        dict.set_item("pending", pending)?;
        dict.set_item("in_flight", in_flight)?;
        Ok(dict)
    }

    /// The resource attributes, as a dict.
    #[getter]
    fn resource<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (k, v) in &self.core.resource().attributes.items {
            dict.set_item(k, value::to_python(py, v)?)?;
        }
        Ok(dict)
    }

    #[getter]
    fn sampler_description(&self) -> String {
        ferrotel_sdk::sampler::describe(&self.core.sampler)
    }
}
