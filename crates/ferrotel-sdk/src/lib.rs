//! ferrotel's SDK core for traces, metrics and logs, in pure Rust.
//!
//! It owns what a span is once recorded ([`span::SpanData`]), a log record
//! ([`log::LogData`]) and a metric's instruments and points ([`metrics`]); how ids are made,
//! which limits apply, the sampling decision, the resource; and the pipeline that carries
//! finished telemetry to an exporter on a worker thread with exact counts ([`pipeline`]).
//! It knows nothing of Python: the PyO3 layer converts values once at the boundary and hands
//! finished items here.

pub mod diagnostics;
pub mod ids;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod resource;
pub mod sampler;
pub mod span;
pub mod sync;
pub mod value;

pub mod export;

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
