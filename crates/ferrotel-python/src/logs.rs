//! The logs signal for Python: a `LoggerProvider` whose exporters come from
//! `OTEL_LOGS_EXPORTER` (batched per `OTEL_BLRP_*`), fed by ferrotel's `logging` handler and
//! by the Logs API (`Logger.emit`). Records are converted here, once, and then travel the
//! same pipeline as spans: queued under a short lock, encoded and sent on a worker thread.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrotel_config::{Config, LogRecordLimits};
use ferrotel_otlp::OtlpExporter;
use ferrotel_sdk::log::{severity_of_python_level, LogData};
use ferrotel_sdk::pipeline::Pipeline;
use ferrotel_sdk::span::Scope;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::signal::{ExporterSpec, Registry, SignalPipeline};
use crate::trace::provider::{config_with, process_facts, report_undelivered};
use crate::trace::span::{exception_attributes, span_ids_in};
use crate::trace::value;

/// Distinct logger names given their own scope; beyond it records share one, so a program
/// that names loggers after ids cannot grow this without bound.
const MAX_SCOPES: usize = 1000;

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

pub struct LoggerCore {
    limits: LogRecordLimits,
    /// Without an exporter, records are not even converted.
    signal: SignalPipeline<LogData>,
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
    fn pipeline(&self) -> Option<Arc<Pipeline<LogData>>> {
        if self.shut_down.load(Ordering::Relaxed) {
            return None;
        }
        self.signal.current()
    }

    fn scope(&self, name: &str, version: Option<String>, schema_url: Option<String>) -> Arc<Scope> {
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

    fn set(&self, attributes: &mut Attributes, key: String, value: Value) {
        attributes.set(
            key,
            value,
            self.limits.attribute_count,
            self.limits.attribute_value_length,
        );
    }

    /// Converts and queues one record, unless this thread is already inside an emit.
    fn guarded(&self, emit: impl FnOnce() -> PyResult<Option<LogData>>) -> PyResult<()> {
        let Some(pipeline) = self.pipeline() else { return Ok(()) };
        if EMITTING.with(|e| e.replace(true)) {
            self.reentrant_drops.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let record = emit();
        EMITTING.with(|e| e.set(false));
        if let Some(record) = record? {
            pipeline.on_end(record);
        }
        Ok(())
    }

    /// A `logging.LogRecord`, read in one pass over its `__dict__`.
    fn convert_logging_record(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<Option<LogData>> {
        let fields = record.getattr(intern!(py, "__dict__"))?;
        let fields = fields.cast::<PyDict>()?;
        let mut attributes = Attributes::with_capacity(8);
        let (mut name, mut level_name, mut level, mut created) = (String::new(), String::new(), 0i64, 0f64);
        let mut exception = None;
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
                "pathname" => "code.file.path",
                "funcName" => "code.function.name",
                "lineno" => "code.line.number",
                other if is_other_record_field(other) || other.starts_with('_') => continue,
                extra => extra,
            };
            if let Some(v) = value::to_value(&item) {
                self.set(&mut attributes, code_key.to_owned(), v);
            }
        }
        if let Some(exception) = exception {
            for (k, v) in exception_attributes(py, &exception)? {
                self.set(&mut attributes, k, v);
            }
        }
        let message: String = record.call_method0(intern!(py, "getMessage"))?.extract()?;
        let (trace_id, span_id, trace_flags) = span_ids_in(py, None)?.unwrap_or_default();
        Ok(Some(LogData {
            time_ns: (created * 1e9) as u64,
            observed_ns: ferrotel_sdk::now_ns(),
            severity_number: severity_of_python_level(level),
            // The data model's short name, as upstream's handler sends it too.
            severity_text: if level_name == "WARNING" {
                "WARN".to_owned()
            } else {
                level_name
            },
            body: Some(Value::Str(message)),
            attributes,
            trace_id,
            span_id,
            trace_flags,
            event_name: String::new(),
            scope: self.scope(&name, None, None),
        }))
    }
}

/// Every logger provider, for the after-fork rebuild and the exit flush.
static PROVIDERS: Registry<LoggerCore> = Registry::new();

/// In a forked child: fresh pipelines with the child's pid. Registered by `ferrotel.logs`
/// (traces have their own hook), under the GIL like it.
#[pyfunction]
pub fn _logs_after_fork_in_child() {
    for core in PROVIDERS.live() {
        core.signal.rebuild_after_fork(std::process::id());
    }
}

/// The exit path: every provider flushed and stopped within `budget` in total.
pub fn shutdown_all(py: Python<'_>, budget: Duration) {
    let deadline = Instant::now() + budget;
    for core in PROVIDERS.live() {
        LoggerProvider { core }.stop(py, deadline);
    }
}

/// `LoggerProvider(settings=None)`: resource, limits and exporters (`OTEL_LOGS_EXPORTER`:
/// otlp, console, none) from the environment, with `settings` (variable name -> value)
/// winning; records are batched per `OTEL_BLRP_*`.
#[pyclass(frozen, module = "ferrotel._native", name = "LoggerProvider")]
pub struct LoggerProvider {
    core: Arc<LoggerCore>,
}

impl LoggerProvider {
    /// Flushes and stops the pipeline by `deadline`; says how many records were not delivered.
    fn stop(&self, py: Python<'_>, deadline: Instant) -> bool {
        if self.core.shut_down.swap(true, Ordering::AcqRel) {
            return true;
        }
        let Some(pipeline) = self.core.signal.current() else {
            return true;
        };
        let complete = py.detach(|| pipeline.shutdown(deadline.saturating_duration_since(Instant::now())));
        report_undelivered(py, &[pipeline], "log record(s)");
        complete
    }
}

#[pymethods]
impl LoggerProvider {
    #[new]
    #[pyo3(signature = (settings=None))]
    fn new(py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let config = config_with(settings)?.config;
        let exporters = ExporterSpec::from_list(
            py,
            "OTEL_LOGS_EXPORTER",
            &config.logs_exporters,
            &config.otlp_logs,
            config.sdk_disabled,
        );
        let core = Arc::new(LoggerCore {
            limits: config.log_record_limits,
            signal: SignalPipeline::new(
                config.clone(),
                process_facts(py)?,
                exporters,
                config.blrp,
                OtlpExporter::for_logs,
            ),
            scopes: Mutex::new(HashMap::new()),
            reentrant_drops: AtomicU64::new(0),
            shut_down: AtomicBool::new(false),
        });
        PROVIDERS.add(&core);
        Ok(LoggerProvider { core })
    }

    #[pyo3(signature = (name, version=None, schema_url=None, attributes=None))]
    fn get_logger(
        &self,
        name: Option<String>,
        version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> Logger {
        let mut scope = (*self.core.scope(name.as_deref().unwrap_or(""), version, schema_url)).clone();
        for (k, v) in value::attributes(attributes) {
            scope.attributes.set(k, v, usize::MAX, None);
        }
        Logger {
            core: self.core.clone(),
            scope: Arc::new(scope),
        }
    }

    /// Whether records are exported at all (some exporter is configured and running).
    #[getter]
    fn exporting(&self) -> bool {
        self.core.pipeline().is_some()
    }

    /// The `logging` handler's path: one `logging.LogRecord`, converted and queued.
    fn _emit_logging_record(&self, py: Python<'_>, record: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core.guarded(|| self.core.convert_logging_record(py, record))
    }

    /// Exports everything emitted so far; `False` if the deadline passed first.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let Some(pipeline) = self.core.pipeline() else {
            return true;
        };
        let timeout = Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3);
        py.detach(|| pipeline.force_flush(timeout))
    }

    /// Flushes and stops within `timeout_millis`; idempotent. Records emitted afterwards
    /// are ignored.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn shutdown(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let deadline = Instant::now() + Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3);
        self.stop(py, deadline)
    }

    /// Exact counts: enqueued, dropped, exported, failed, pending, in_flight, reentrant.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        let pipeline = self.core.signal.current();
        let c = pipeline.as_ref().map(|p| p.counters()).unwrap_or_default();
        dict.set_item("enqueued", c.enqueued)?;
        dict.set_item("dropped", c.dropped)?;
        dict.set_item("exported", c.exported)?;
        dict.set_item("failed", c.failed)?;
        dict.set_item("pending", pipeline.as_ref().map_or(0, |p| p.pending()))?;
        dict.set_item("in_flight", c.in_flight)?;
        dict.set_item("reentrant", self.core.reentrant_drops.load(Ordering::Relaxed))?;
        Ok(dict)
    }
}

/// A Logs API `Logger`: `emit(record)` with an API `LogRecord`, or `emit(body=..., ...)`.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct Logger {
    core: Arc<LoggerCore>,
    scope: Arc<Scope>,
}

/// Fields of an API emit, whether they came as a `LogRecord` or as keywords.
struct Emitted<'py> {
    timestamp: Option<u64>,
    observed_timestamp: Option<u64>,
    ids: Option<(u128, u64, u8)>,
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
        let (trace_id, span_id, trace_flags) = match e.ids {
            Some(ids) => ids,
            None => span_ids_in(py, None)?.unwrap_or_default(),
        };
        Ok(Some(LogData {
            time_ns: e.timestamp.unwrap_or(0),
            observed_ns: e.observed_timestamp.unwrap_or_else(ferrotel_sdk::now_ns),
            severity_number,
            severity_text: e.severity_text.unwrap_or_default(),
            body,
            attributes,
            trace_id,
            span_id,
            trace_flags,
            event_name: e.event_name.unwrap_or_default(),
            scope: self.scope.clone(),
        }))
    }
}

#[pymethods]
impl Logger {
    #[pyo3(signature = (record=None, *, timestamp=None, observed_timestamp=None, context=None, severity_number=None, severity_text=None, body=None, attributes=None, event_name=None, exception=None))]
    #[allow(clippy::too_many_arguments)]
    fn emit<'py>(
        &self,
        py: Python<'py>,
        record: Option<Bound<'py, PyAny>>,
        timestamp: Option<u64>,
        observed_timestamp: Option<u64>,
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
                let (trace_id, span_id) = (id("trace_id"), id("span_id") as u64);
                Emitted {
                    timestamp: field("timestamp").and_then(|v| v.extract().ok()),
                    observed_timestamp: field("observed_timestamp").and_then(|v| v.extract().ok()),
                    ids: Some((trace_id, span_id, id("trace_flags") as u8)).filter(|_| trace_id != 0),
                    severity_number: field("severity_number"),
                    severity_text: field("severity_text").and_then(|v| v.extract().ok()),
                    body: field("body"),
                    attributes: field("attributes"),
                    event_name: field("event_name").and_then(|v| v.extract().ok()),
                    exception: field("exception"),
                }
            }
            None => Emitted {
                timestamp,
                observed_timestamp,
                ids: match present(context) {
                    Some(context) => Some(span_ids_in(py, Some(&context))?.unwrap_or_default()),
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
        self.core.guarded(|| self.convert(py, emitted))
    }

    #[pyo3(signature = (*, context=None, severity_number=None, event_name=None))]
    fn enabled(
        &self,
        context: Option<&Bound<'_, PyAny>>,
        severity_number: Option<&Bound<'_, PyAny>>,
        event_name: Option<&str>,
    ) -> bool {
        let _ = (context, severity_number, event_name);
        self.core.pipeline().is_some()
    }

    #[getter]
    fn name(&self) -> &str {
        &self.scope.name
    }
}

/// Whether ferrotel's configurator should attach its `logging` handler to the root logger:
/// `OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true`, some `OTEL_LOGS_EXPORTER`, and
/// the SDK not disabled, as upstream's configurator decides.
#[pyfunction]
pub fn logging_handler_wanted() -> bool {
    let config = Config::from_env().config;
    config.python.logging_auto_instrumentation && !config.logs_exporters.is_empty() && !config.sdk_disabled
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LoggerProvider>()?;
    m.add_class::<Logger>()?;
    m.add_function(wrap_pyfunction!(logging_handler_wanted, m)?)?;
    m.add_function(wrap_pyfunction!(_logs_after_fork_in_child, m)?)?;
    Ok(())
}
