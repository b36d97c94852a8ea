//! The logs signal for Python: a `LoggerProvider` whose exporters come from
//! `OTEL_LOGS_EXPORTER` (batched per `OTEL_BLRP_*`), fed by ferrotel's `logging` handler
//! ([`record`]) and by the Logs API ([`logger`]). Records are converted once, then travel
//! the pipeline every signal shares: queued under a short lock, encoded and sent on a
//! worker thread.

pub(crate) mod core;
pub(crate) mod logger;
pub(crate) mod provider;
pub(crate) mod record;
pub(crate) mod shapes;

/// The classes `ferrotel._native` hands out on first access (see `lazy_class!`).
pub(crate) const CLASSES: &[crate::LazyClass] = &[
    crate::lazy_class!(provider::LoggerProvider),
    crate::lazy_class!(logger::Logger),
];
