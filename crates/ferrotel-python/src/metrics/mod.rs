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

/// The classes `ferrotel._native` hands out on first access (see `lazy_class!`).
pub(crate) const CLASSES: &[crate::LazyClass] = &[
    crate::lazy_class!(provider::MeterProvider),
    crate::lazy_class!(instruments::Meter),
    crate::lazy_class!(instruments::Counter),
    crate::lazy_class!(instruments::UpDownCounter),
    crate::lazy_class!(instruments::Histogram),
    crate::lazy_class!(instruments::Gauge),
    crate::lazy_class!(instruments::ObservableInstrument),
];
