//! ferrotel's configuration: every `OTEL_*` environment variable ferrotel honours, named in
//! one registry ([`vars`]) and parsed into one typed [`Config`] ([`parse`]), or, when
//! `OTEL_CONFIG_FILE` is set, the declarative configuration file read into the same
//! [`Config`] ([`file`]).
//!
//! Pure Rust, no Python: the launcher, the bootstrapper and the PyO3 layer all read the same
//! table, so a flag, its help text and its parsing can never disagree.

pub mod file;
pub mod parse;
pub mod vars;

pub use parse::{
    AttributeValue, BatchConfig, CaptureHeaders, Compression, Config, ExemplarFilter, Exporter, IdGenerator, LogLevel,
    LogRecordLimits, MetricReaderConfig, OtlpConfig, ParentBasedSamplers, Parsed, ProcessorConfig, PrometheusConfig,
    Propagator, Protocol, PythonConfig, Sampler, SemconvMode, Signal, SpanLimits, TemporalityPreference, Warning,
};
