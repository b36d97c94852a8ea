//! The metrics signal for Python: a `MeterProvider` whose exporters come from
//! `OTEL_METRICS_EXPORTER` ([`provider`]), its meters and the seven instrument kinds of the
//! Metrics API ([`instruments`]). Measurements aggregate in Rust; a collection (every
//! `OTEL_METRIC_EXPORT_INTERVAL`, driven by the Python reader thread, and at exit) runs the
//! observable instruments' callbacks, gathers every instrument's points and hands them to
//! the pipeline every signal shares, whose worker encodes and sends them without the GIL.

pub(crate) mod core;
pub(crate) mod instruments;
pub(crate) mod observation;
pub(crate) mod provider;
pub(crate) mod shapes;

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
