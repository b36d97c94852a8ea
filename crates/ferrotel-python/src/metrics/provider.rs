//! `MeterProvider`: its meters, its readers (from the environment, or the upstream SDK's
//! `MetricReader`s user code gives it), the reader thread's collection, flush, shutdown,
//! stats.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ferrotel_config::{BatchConfig, Config, ExemplarFilter, Exporter as Configured, LogLevel, ProcessorConfig};
use ferrotel_sdk::metrics::{MetricData, View};
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::Scope;
use ferrotel_sdk::value::Attributes;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::core::MeterCore;
use super::instruments::Meter;
use super::readers::{add_python_reader, remove_python_reader, start_prometheus};
use super::views::views_from;
use crate::boundary::process::resource_facts;
use crate::boundary::{plugins, value};
use crate::export::python::PythonObject;
use crate::export::{stats_dict, ExporterRecipe, Pipelines, ProcessorRecipe};
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::{self, deadline_in, millis, Participant};
use crate::runtime::settings::config_with;

const VARIABLE: &str = "OTEL_METRICS_EXPORTER";

/// `MeterProvider(metric_readers=None, resource=None, exemplar_filter=None,
/// shutdown_on_exit=True, views=(), *, settings=None)`, upstream's signature: with
/// `metric_readers` (the SDK's `MetricReader`s) it reads metrics to exactly those; without,
/// to what `OTEL_METRICS_EXPORTER` names (otlp, console, prometheus, an entry point's
/// exporter or reader). Everything else comes from the environment, with `settings`
/// (variable name -> value) winning; a dict in first place is `settings`, as before.
#[pyclass(frozen, subclass, module = "ferrotel._native", name = "MeterProvider")]
pub(crate) struct MeterProvider {
    core: Arc<MeterCore>,
}

/// What `OTEL_METRICS_EXPORTER` asks for beyond the provider's own exporters: Python readers
/// made from entry points, and a Prometheus endpoint.
#[derive(Default)]
struct OtherReaders<'py> {
    python: Vec<Bound<'py, PyAny>>,
    prometheus: bool,
}

/// The provider's own exporters (behind native pipelines, collected by the reader thread)
/// and its other readers, as upstream's configurator sets them up: an entry point that is a
/// `MetricReader` is used as one, any other is an exporter.
fn from_environment<'py>(py: Python<'py>, config: &Config) -> (Vec<ProcessorRecipe<MetricData>>, OtherReaders<'py>) {
    let mut others = OtherReaders::default();
    if config.sdk_disabled {
        return (Vec::new(), others);
    }
    // Collections push their metrics and flush at once: the schedule never fires, and one
    // collection is one request.
    let batch = BatchConfig {
        schedule_delay: Duration::from_secs(24 * 3600),
        export_timeout: config.metric_reader.export_timeout,
        max_queue_size: 200_000,
        max_export_batch_size: 200_000,
    };
    let mut native = Vec::new();
    let mut recipes = Vec::new();
    for exporter in &config.metrics_exporters {
        match exporter {
            Configured::Prometheus => others.prometheus = true,
            Configured::EntryPoint(name) => {
                let group = "opentelemetry_metrics_exporter";
                let Some(made) = plugins::make(py, VARIABLE, group, name) else {
                    continue;
                };
                if made.hasattr("_set_collect_callback").unwrap_or(false) {
                    others.python.push(made);
                    continue;
                }
                match PythonObject::component(&made) {
                    Ok(exporter) => recipes.push(ProcessorRecipe {
                        batch: Some(batch),
                        exporter: ExporterRecipe::Python(exporter),
                    }),
                    Err(error) => emit(py, LogLevel::Warning, &format!("{VARIABLE}={name}: {error}; ignored")),
                }
            }
            other => native.push(ProcessorConfig {
                exporter: other.clone(),
                otlp: config.otlp_metrics.clone(),
                batch: Some(batch),
            }),
        }
    }
    let mut own = ProcessorRecipe::from_environment(py, VARIABLE, &native, false);
    own.append(&mut recipes);
    (own, others)
}

/// An upstream `ExemplarFilter` object as the filter it stands for.
fn known_exemplar_filter(py: Python<'_>, filter: &Bound<'_, PyAny>) -> Option<ExemplarFilter> {
    let name = filter.get_type().qualname().map(|n| n.to_string()).unwrap_or_default();
    let known = match name.as_str() {
        "AlwaysOnExemplarFilter" => Some(ExemplarFilter::AlwaysOn),
        "AlwaysOffExemplarFilter" => Some(ExemplarFilter::AlwaysOff),
        "TraceBasedExemplarFilter" => Some(ExemplarFilter::TraceBased),
        _ => None,
    };
    if known.is_none() {
        emit(
            py,
            LogLevel::Warning,
            &format!("MeterProvider(exemplar_filter={name}): only the SDK's three filters are known; ignored"),
        );
    }
    known
}

/// A resource object (the SDK's `Resource`, or anything with `.attributes`) as given.
fn given_resource(resource: &Bound<'_, PyAny>) -> PyResult<Resource> {
    let attributes = resource.getattr("attributes")?;
    let mut given = Attributes::default();
    for (k, v) in value::flat_attributes(Some(&attributes)) {
        given.set(k, v, usize::MAX, None);
    }
    let schema_url = resource
        .getattr("schema_url")
        .ok()
        .and_then(|s| s.extract::<Option<String>>().ok().flatten())
        .unwrap_or_default();
    Ok(Resource {
        attributes: given,
        schema_url,
    })
}

#[pymethods]
impl MeterProvider {
    #[new]
    #[pyo3(signature = (metric_readers=None, resource=None, exemplar_filter=None, shutdown_on_exit=true, views=None, *, settings=None))]
    fn new(
        py: Python<'_>,
        metric_readers: Option<&Bound<'_, PyAny>>,
        resource: Option<&Bound<'_, PyAny>>,
        exemplar_filter: Option<&Bound<'_, PyAny>>,
        shutdown_on_exit: bool,
        views: Option<&Bound<'_, PyAny>>,
        settings: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let (readers, settings) = match metric_readers.filter(|r| !r.is_none()) {
            Some(dict) if dict.cast::<PyDict>().is_ok() => {
                if settings.is_some() {
                    return Err(PyTypeError::new_err("MeterProvider got settings twice"));
                }
                (None, Some(dict.cast::<PyDict>()?.clone()))
            }
            readers => (readers, settings.cloned()),
        };
        let mut config = config_with(settings.as_ref())?.config;
        if let Some(filter) = exemplar_filter.filter(|f| !f.is_none()) {
            if let Some(known) = known_exemplar_filter(py, filter) {
                config.metric_reader.exemplar_filter = known;
            }
        }
        let mut views = views_from(views)?;
        if views.is_empty() {
            // A configuration file's views, for a provider given none of its own.
            views = config.views.iter().map(View::from_file).collect();
            views.retain(|view| match view.validate() {
                Ok(()) => true,
                Err(error) => {
                    emit(
                        py,
                        LogLevel::Warning,
                        &format!("OTEL_CONFIG_FILE: a view was ignored: {error}"),
                    );
                    false
                }
            });
        }
        let given = match resource.filter(|r| !r.is_none()) {
            Some(resource) => Some(given_resource(resource)?),
            None => None,
        };
        // A disabled SDK reads nothing, whoever asks (upstream's meters are no-ops then).
        let readers = readers.filter(|_| !config.sdk_disabled);
        let (recipes, others) = match readers {
            Some(_) => (Vec::new(), OtherReaders::default()),
            None => from_environment(py, &config),
        };
        let prometheus = config.prometheus.clone();
        let facts = resource_facts(py, &config)?;
        let core = Arc::new(MeterCore::new(
            config.metric_reader.clone(),
            Pipelines::with_resource(config, facts, given, recipes),
            shutdown_on_exit,
            views,
        ));
        lifecycle::register(Arc::downgrade(&core) as Weak<dyn Participant>);
        if others.prometheus {
            start_prometheus(py, &core, &prometheus);
        }
        for reader in &others.python {
            if let Err(error) = add_python_reader(py, &core, reader) {
                emit(py, LogLevel::Warning, &format!("{VARIABLE}: {error}; ignored"));
            }
        }
        if let Some(readers) = readers {
            for reader in readers.try_iter()? {
                add_python_reader(py, &core, &reader?)?;
            }
        }
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
        for (k, v) in value::flat_attributes(attributes) {
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

    /// Registers one more upstream `MetricReader`; one already registered is warned about
    /// and left alone, as upstream does.
    fn add_metric_reader(&self, py: Python<'_>, metric_reader: &Bound<'_, PyAny>) -> PyResult<()> {
        match add_python_reader(py, &self.core, metric_reader) {
            Err(error) if error.is_instance_of::<PyValueError>(py) => {
                emit(py, LogLevel::Warning, &error.value(py).to_string());
                Ok(())
            }
            other => other,
        }
    }

    /// Stops collecting for `metric_reader` and shuts it down.
    fn remove_metric_reader(&self, py: Python<'_>, metric_reader: &Bound<'_, PyAny>) {
        if !remove_python_reader(py, &self.core, metric_reader) {
            emit(
                py,
                LogLevel::Warning,
                &format!(
                    "{} is not registered with this MeterProvider",
                    PythonObject::new(metric_reader).name
                ),
            );
        }
    }

    /// Whether the provider's own exporters run (some is configured and not shut down).
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
        *ferrotel_sdk::sync::lock(&self.core.reader_restart) = Some(restart);
    }

    /// One collection, exported; the reader thread's tick.
    fn _collect_and_export(&self, py: Python<'_>) -> bool {
        self.core.collect_and_flush(py, self.core.reader.export_timeout)
    }

    /// Collects and exports now, and has every Python reader do the same; `False` if the
    /// deadline passed first (or a reader said so).
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let deadline = deadline_in(timeout_millis);
        let mut flushed = self.core.collect_and_flush(py, millis(timeout_millis));
        for reader in self.core.python_readers() {
            let remaining = deadline.saturating_duration_since(Instant::now()).as_secs_f64() * 1e3;
            let kwargs = PyDict::new(py);
            let answer = kwargs
                .set_item("timeout_millis", remaining)
                .and_then(|_| reader.object.bind(py).call_method("force_flush", (), Some(&kwargs)));
            match answer {
                Ok(answer) => flushed &= answer.is_truthy().unwrap_or(false),
                Err(error) => {
                    emit(
                        py,
                        LogLevel::Warning,
                        &format!("{}.force_flush() raised {error}", reader.name),
                    );
                    flushed = false;
                }
            }
        }
        flushed
    }

    /// A last collection and export within `timeout_millis`, every reader shut down, then
    /// nothing more; idempotent.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn shutdown(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let deadline = deadline_in(timeout_millis);
        self.core.finish(py, deadline);
        self.core.pipelines.shutdown(py, deadline)
    }

    /// Exact counts of data points the provider's own exporters handled: enqueued, dropped,
    /// exported, failed, pending, in_flight.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.core.pipelines.counts())
    }
}
