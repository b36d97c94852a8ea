//! The metrics signal for Python: a `MeterProvider` whose readers come from
//! `OTEL_METRICS_EXPORTER` or from user code ([`provider`]), its meters and the seven
//! instrument kinds of the Metrics API ([`instruments`]). Measurements aggregate in Rust,
//! once per reader; a collection runs the observable instruments' callbacks and gathers every
//! instrument's points for one reader ([`core`]): for the provider's own exporters every
//! `OTEL_METRIC_EXPORT_INTERVAL` (driven by the Python reader thread) and at exit, handed to
//! the pipeline every signal shares, whose worker encodes and sends them without the GIL;
//! for the Prometheus endpoint at each scrape; for Python `MetricReader`s when they ask
//! ([`readers`]).

pub(crate) mod core;
pub(crate) mod instruments;
pub(crate) mod observation;
pub(crate) mod provider;
pub(crate) mod readers;
pub(crate) mod shapes;
pub(crate) mod views;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<provider::MeterProvider>()?;
    m.add_class::<instruments::Meter>()?;
    m.add_class::<instruments::Counter>()?;
    m.add_class::<instruments::UpDownCounter>()?;
    m.add_class::<instruments::Histogram>()?;
    m.add_class::<instruments::Gauge>()?;
    m.add_class::<instruments::ObservableInstrument>()?;
    Ok(())
}
