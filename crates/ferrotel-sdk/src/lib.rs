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

/// Nanoseconds since the Unix epoch (0 before it). Read with `clock_gettime` itself: std's
/// `SystemTime` subtraction and 128-bit nanoseconds cost ~70 instructions more per reading,
/// and a span takes two.
#[allow(unsafe_code)]
pub fn now_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    u64::try_from(now.tv_sec).map_or(0, |seconds| seconds * 1_000_000_000 + now.tv_nsec as u64)
}
