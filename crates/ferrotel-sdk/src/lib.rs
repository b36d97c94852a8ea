//! ferrotel's trace SDK core, in pure Rust.
//!
//! It owns what a span is once recorded ([`span::SpanData`]), how ids are made, which limits
//! apply, the sampling decision, the resource, and the pipeline that carries ended spans to
//! exporters on a worker thread; log records ([`log::LogData`]) take the same pipeline.
//! It knows nothing of Python: the PyO3 layer converts values
//! once at the boundary and hands finished spans here.

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
