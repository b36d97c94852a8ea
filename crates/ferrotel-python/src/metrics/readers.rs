//! The readers a `MeterProvider` takes besides its own exporters:
//!
//! - Python `MetricReader`s (upstream's `PeriodicExportingMetricReader`,
//!   `InMemoryMetricReader`, `PrometheusMetricReader`, a vendor's), driven as upstream's
//!   provider drives them: each gets a collect callback (`_set_collect_callback`) that
//!   returns a collection for it alone, in its preferred temporality, as the SDK's
//!   `MetricsData`;
//! - the native Prometheus endpoint (`OTEL_METRICS_EXPORTER=prometheus`), whose scrapes
//!   collect and render in Rust.

use std::sync::{Arc, Weak};

use ferrotel_config::{LogLevel, PrometheusConfig};
use ferrotel_prometheus::{Endpoint, Gather};
use ferrotel_sdk::metrics::{InstrumentKind, MetricData, ReaderSlot, Temporality};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::core::{Aggregations, MeterCore, ReaderKind, Temporalities};
use super::views::aggregation_from;
use crate::export::python::{PythonObject, PythonShape};
use crate::runtime::diagnostics::emit;

/// What a Python reader calls to collect: `callback(reader, timeout_millis=...)` returns its
/// collection as the SDK's `MetricsData`, or `None` when there is nothing to report (or the
/// provider is gone), as upstream's provider answers.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct CollectCallback {
    core: Weak<MeterCore>,
    slot: ReaderSlot,
}

#[pymethods]
impl CollectCallback {
    #[pyo3(signature = (reader, timeout_millis=10000.0))]
    fn __call__(&self, py: Python<'_>, reader: &Bound<'_, PyAny>, timeout_millis: f64) -> PyResult<Py<PyAny>> {
        let _ = reader;
        let Some(core) = self.core.upgrade() else {
            return Ok(py.None());
        };
        let (collected, resource) = core.collect_for(py, self.slot, timeout_millis);
        if collected.is_empty() {
            return Ok(py.None());
        }
        let resource = MetricData::resource(py, &resource)?;
        Ok(MetricData::batch(py, &collected, &resource)?.unbind())
    }
}

/// The instrument kind an SDK instrument class stands for (`_Counter` and `Counter` alike).
fn kind_named(name: &str) -> Option<InstrumentKind> {
    Some(match name.trim_start_matches('_') {
        "Counter" => InstrumentKind::Counter,
        "UpDownCounter" => InstrumentKind::UpDownCounter,
        "Histogram" => InstrumentKind::Histogram,
        "Gauge" => InstrumentKind::Gauge,
        "ObservableCounter" => InstrumentKind::ObservableCounter,
        "ObservableUpDownCounter" => InstrumentKind::ObservableUpDownCounter,
        "ObservableGauge" => InstrumentKind::ObservableGauge,
        _ => return None,
    })
}

/// `(instrument class, value)` pairs of one of the reader's per-class mappings.
fn per_class<'py>(reader: &Bound<'py, PyAny>, attribute: &str) -> Vec<(InstrumentKind, Bound<'py, PyAny>)> {
    let Ok(mapping) = reader.getattr(attribute) else {
        return Vec::new();
    };
    let Ok(dict) = mapping.cast::<PyDict>() else {
        return Vec::new();
    };
    dict.iter()
        .filter_map(|(class, value)| {
            let name: String = class.getattr("__name__").ok()?.extract().ok()?;
            Some((kind_named(&name)?, value))
        })
        .collect()
}

/// The temporality the reader prefers per instrument kind (`_instrument_class_temporality`;
/// the SDK's `AggregationTemporality.DELTA` is 1), cumulative where it says nothing.
fn temporalities_of(reader: &Bound<'_, PyAny>) -> Temporalities {
    let mut temporalities = Temporalities::cumulative();
    for (kind, temporality) in per_class(reader, "_instrument_class_temporality") {
        let value = temporality.getattr("value").unwrap_or(temporality);
        if let Ok(value) = value.extract::<i64>() {
            let temporality = if value == Temporality::Delta as i64 {
                Temporality::Delta
            } else {
                Temporality::Cumulative
            };
            temporalities.set(kind, temporality);
        }
    }
    temporalities
}

/// The aggregation the reader prefers per instrument kind (`_instrument_class_aggregation`,
/// where upstream's OTLP exporter puts its default histogram aggregation); one it cannot be
/// given is warned about and left to the default.
fn aggregations_of(py: Python<'_>, reader: &PythonObject) -> Aggregations {
    let mut aggregations = Aggregations::default();
    for (kind, aggregation) in per_class(reader.object.bind(py), "_instrument_class_aggregation") {
        match aggregation_from(&aggregation) {
            Ok(aggregation) => aggregations.set(kind, aggregation),
            Err(error) => emit(
                py,
                LogLevel::Warning,
                &format!("{} prefers {error} for {kind:?}; the default is used", reader.name),
            ),
        }
    }
    aggregations
}

/// Registers a Python `MetricReader`: it gets a slot, its temporalities, and the callback
/// that collects for it. A reader already registered with a provider is refused, as upstream
/// refuses it.
pub(crate) fn add_python_reader(py: Python<'_>, core: &Arc<MeterCore>, reader: &Bound<'_, PyAny>) -> PyResult<()> {
    let object = PythonObject::new(reader);
    if !reader.hasattr("_set_collect_callback")? {
        return Err(PyTypeError::new_err(format!(
            "{} is not a MetricReader (it has no _set_collect_callback)",
            object.name
        )));
    }
    let registered =
        core.python_slot(reader).is_some() || reader.getattr("_collect").is_ok_and(|callback| !callback.is_none());
    if registered {
        return Err(PyValueError::new_err(format!(
            "the {} is registered with a MeterProvider already",
            object.name
        )));
    }
    let aggregations = aggregations_of(py, &object);
    let temporalities = temporalities_of(reader);
    let slot = core.add_reader(temporalities, aggregations, |_| {
        Ok::<_, PyErr>(ReaderKind::Python(object))
    })?;
    // Set outside the provider's locks: the reader is Python code.
    let callback = Py::new(
        py,
        CollectCallback {
            core: Arc::downgrade(core),
            slot,
        },
    )?;
    if let Err(error) = reader.call_method1("_set_collect_callback", (callback,)) {
        core.remove_reader(slot);
        return Err(error);
    }
    Ok(())
}

/// Stops collecting for a Python reader and shuts it down, as upstream's
/// `remove_metric_reader` does; `false` if it was not registered here.
pub(crate) fn remove_python_reader(py: Python<'_>, core: &MeterCore, reader: &Bound<'_, PyAny>) -> bool {
    let Some(slot) = core.python_slot(reader) else {
        return false;
    };
    core.remove_reader(slot);
    for step in [
        reader.call_method1("_set_collect_callback", (py.None(),)),
        reader.call_method0("shutdown"),
    ] {
        if let Err(error) = step {
            emit(
                py,
                LogLevel::Warning,
                &format!("removing {} raised {error}", PythonObject::new(reader).name),
            );
        }
    }
    true
}

/// Serves the provider's metrics at `config`'s address for Prometheus to scrape, each scrape
/// a cumulative collection of its own. A port that cannot be had gets one warning.
pub(crate) fn start_prometheus(py: Python<'_>, core: &Arc<MeterCore>, config: &PrometheusConfig) {
    let weak = Arc::downgrade(core);
    let mut address = None;
    let started = core.add_reader(Temporalities::cumulative(), Aggregations::default(), |slot| {
        let gather: Gather = Arc::new(move || match weak.upgrade() {
            Some(core) => {
                let (collected, resource) = core.collect_for_scrape(slot);
                ferrotel_prometheus::render(&resource, &collected)
            }
            None => String::new(),
        });
        let endpoint = Endpoint::start(&config.host, config.port, gather)?;
        address = Some(endpoint.address());
        Ok::<_, std::io::Error>(ReaderKind::Prometheus(endpoint))
    });
    match (started, address) {
        (Ok(_), Some(address)) => emit(
            py,
            LogLevel::Debug,
            &format!("serving Prometheus metrics on http://{address}/metrics"),
        ),
        (Ok(_), None) => {}
        (Err(error), _) => emit(
            py,
            LogLevel::Warning,
            &format!(
                "OTEL_METRICS_EXPORTER=prometheus: cannot listen on {}:{}: {error}; metrics are not served",
                config.host, config.port
            ),
        ),
    }
}
