//! Reading the environment into a typed [`Config`].
//!
//! Every value is validated here, once. A bad value never fails: the default is used and one
//! [`Warning`] names the variable, the value and the default. Values of secret variables
//! (OTLP headers) never appear in warnings.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::vars::{self, Kind};

/// One problem found in the environment, with what was done about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub var: &'static str,
    /// The offending value, or `None` when it must not be shown (secrets).
    pub value: Option<String>,
    pub problem: String,
    /// What ferrotel uses instead.
    pub used: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={:?} {}; using {}", self.var, value, self.problem, self.used),
            None => write!(f, "{} {}; using {}", self.var, self.problem, self.used),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
    /// Parent-based with other samplers than the three variants above (the configuration
    /// file can name each).
    ParentBased(Box<ParentBasedSamplers>),
    /// Any other name: a sampler of the `opentelemetry_traces_sampler` entry-point group,
    /// given `OTEL_TRACES_SAMPLER_ARG` as it is.
    EntryPoint {
        name: String,
        arg: Option<String>,
    },
}

/// What a parent-based sampler asks when there is no parent, and for each kind of parent.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentBasedSamplers {
    pub root: Sampler,
    pub remote_parent_sampled: Sampler,
    pub remote_parent_not_sampled: Sampler,
    pub local_parent_sampled: Sampler,
    pub local_parent_not_sampled: Sampler,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Propagator {
    TraceContext,
    Baggage,
    B3,
    B3Multi,
    Jaeger,
    /// AWS X-Ray's `X-Amzn-Trace-Id`.
    XRay,
    /// Any other name: an `opentelemetry_propagator` entry point.
    EntryPoint(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// OTLP with the protocol from `OTEL_EXPORTER_OTLP_*PROTOCOL`, or the one its name
    /// fixes (`otlp_proto_grpc`, `otlp_proto_http`; the signal's `OtlpConfig` has it then).
    Otlp,
    Console,
    /// A Prometheus endpoint to scrape (metrics only).
    Prometheus,
    /// Any other name: an exporter entry point of another package.
    EntryPoint(String),
}

/// How trace and span ids are made (`OTEL_PYTHON_ID_GENERATOR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdGenerator {
    Random,
    /// AWS X-Ray's: a trace id that starts with the time in seconds.
    XRay,
    /// Any other name: an `opentelemetry_id_generator` entry point.
    EntryPoint(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Deflate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

impl Signal {
    fn env_infix(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES_",
            Signal::Metrics => "METRICS_",
            Signal::Logs => "LOGS_",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Signal::Traces => "v1/traces",
            Signal::Metrics => "v1/metrics",
            Signal::Logs => "v1/logs",
        }
    }
}

/// The OTLP exporter settings of one signal, with per-signal values already preferred over
/// the generic ones and the endpoint already resolved per the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// For HTTP the full URL (generic endpoints get `/v1/{signal}` appended); for gRPC
    /// `scheme://host:port`.
    pub endpoint: String,
    pub protocol: Protocol,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub compression: Compression,
    pub certificate: Option<String>,
    pub client_key: Option<String>,
    pub client_certificate: Option<String>,
    pub insecure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    pub schedule_delay: Duration,
    pub export_timeout: Duration,
    pub max_queue_size: usize,
    pub max_export_batch_size: usize,
}

/// One processor of a provider: its exporter, the exporter's OTLP settings (used when it is
/// OTLP), and its batching (`None`: exported on the caller's thread, as the simple processor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub exporter: Exporter,
    pub otlp: OtlpConfig,
    pub batch: Option<BatchConfig>,
}

/// A resource attribute's value as the configuration file types it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    StrArray(Vec<String>),
    BoolArray(Vec<bool>),
    IntArray(Vec<i64>),
    DoubleArray(Vec<f64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanLimits {
    pub attribute_count: usize,
    pub attribute_value_length: Option<usize>,
    pub event_count: usize,
    pub link_count: usize,
    pub event_attribute_count: usize,
    pub link_attribute_count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecordLimits {
    pub attribute_count: usize,
    pub attribute_value_length: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricReaderConfig {
    pub export_interval: Duration,
    pub export_timeout: Duration,
    pub exemplar_filter: ExemplarFilter,
    pub temporality_preference: TemporalityPreference,
    /// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=base2_exponential_bucket_histogram`.
    pub exponential_histograms: bool,
}

/// Which measurements may become exemplars (`OTEL_METRICS_EXEMPLAR_FILTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExemplarFilter {
    AlwaysOn,
    AlwaysOff,
    /// Those made in a sampled span (the default).
    TraceBased,
}

/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalityPreference {
    Cumulative,
    Delta,
    LowMemory,
}

/// Which attribute names HTTP and DB instrumentations emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemconvMode {
    /// Stable names only (ferrotel's default).
    Stable,
    /// Stable and the old names, for dashboards built on upstream's defaults.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureHeaders {
    pub server_request: Vec<String>,
    pub server_response: Vec<String>,
    pub client_request: Vec<String>,
    pub client_response: Vec<String>,
    pub sanitize_fields: Vec<String>,
}

/// Where `OTEL_METRICS_EXPORTER=prometheus` serves its scrape endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// `OTEL_EXPORTER_PROMETHEUS_HOST` (default `localhost`).
    pub host: String,
    /// `OTEL_EXPORTER_PROMETHEUS_PORT` (default 9464; 0 picks a free port).
    pub port: u16,
}

/// Settings only Python instrumentations and the loader read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonConfig {
    pub disabled_instrumentations: Vec<String>,
    /// `None` when unset: everything not disabled may activate.
    pub enabled_instrumentations: Option<Vec<String>>,
    pub distro: Option<String>,
    pub configurator: Option<String>,
    pub gevent_patch: bool,
    pub excluded_urls: Vec<String>,
    /// `(framework, patterns)` for each `OTEL_PYTHON_{FW}_EXCLUDED_URLS` that is set.
    pub excluded_urls_by_framework: Vec<(String, Vec<String>)>,
    pub capture_headers: CaptureHeaders,
    pub http_semconv: SemconvMode,
    pub database_semconv: SemconvMode,
    pub log_correlation: bool,
    pub log_format: Option<String>,
    pub log_level: &'static str,
    /// The deprecated `OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`.
    pub logging_auto_instrumentation: bool,
    /// `OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION`: the logging instrumentation attaches the handler.
    pub log_auto_instrumentation: bool,
    pub log_code_attributes: bool,
    /// `OTEL_PYTHON_LOG_HANDLER_LEVEL` as a `logging` level number.
    pub log_handler_level: i32,
    pub django_instrument: bool,
    /// `FERROTEL_ASGI_MESSAGE_EVENTS`: websocket messages as events on the server span.
    pub asgi_message_events: bool,
    /// `OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS`: request attributes recorded on the span.
    pub django_traced_request_attrs: Vec<String>,
    /// `OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS`: methods outside the
    /// conventions' list are reported as sent, not as `_OTHER`.
    pub capture_all_methods: bool,
}

/// The whole configuration, as read from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub sdk_disabled: bool,
    pub log_level: LogLevel,
    /// `service.name`: `OTEL_SERVICE_NAME`, else from `OTEL_RESOURCE_ATTRIBUTES`, else
    /// `unknown_service:python`.
    pub service_name: String,
    /// Decoded `OTEL_RESOURCE_ATTRIBUTES`, in order, later duplicates winning.
    pub resource_attributes: Vec<(String, String)>,
    /// Typed resource attributes (the configuration file's `resource.attributes`), set after
    /// `resource_attributes`.
    pub resource_typed_attributes: Vec<(String, AttributeValue)>,
    pub resource_schema_url: Option<String>,
    /// `None` when nothing names them (the default set); a configuration file always names
    /// its list, an empty one meaning none beyond the service instance and its attributes.
    pub resource_detectors: Option<Vec<String>>,
    pub propagators: Vec<Propagator>,
    pub sampler: Sampler,
    pub id_generator: IdGenerator,
    pub traces_exporters: Vec<Exporter>,
    pub metrics_exporters: Vec<Exporter>,
    pub logs_exporters: Vec<Exporter>,
    /// The span processors: from the environment, a batch processor per traces exporter.
    pub traces_processors: Vec<ProcessorConfig>,
    /// The log record processors: from the environment, a batch processor per logs exporter.
    pub logs_processors: Vec<ProcessorConfig>,
    /// Metric views (the configuration file's `meter_provider.views`).
    pub views: Vec<crate::file::View>,
    pub span_limits: SpanLimits,
    pub log_record_limits: LogRecordLimits,
    pub bsp: BatchConfig,
    pub blrp: BatchConfig,
    pub metric_reader: MetricReaderConfig,
    pub prometheus: PrometheusConfig,
    pub otlp_traces: OtlpConfig,
    pub otlp_metrics: OtlpConfig,
    pub otlp_logs: OtlpConfig,
    pub python: PythonConfig,
}

/// The result of reading the environment: always a usable config, plus what was wrong.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: Config,
    pub warnings: Vec<Warning>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Parsed {
        let env = environment();
        Self::from_lookup(|name| env.get(name).cloned())
    }

    /// Reads variables through `lookup`, so tests and embedders can supply their own.
    /// With `OTEL_CONFIG_FILE` set, the file is the configuration and the other SDK
    /// variables are not read (see [`crate::file`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Parsed {
        if let Some(path) = lookup("OTEL_CONFIG_FILE").filter(|p| !p.trim().is_empty()) {
            return crate::file::parsed(path.trim(), &lookup);
        }
        let mut r = Reader {
            lookup: &lookup,
            warnings: Vec::new(),
        };
        let config = r.config();
        // Generic OTLP variables are read once per signal; say each problem once.
        let mut warnings: Vec<Warning> = Vec::with_capacity(r.warnings.len());
        for w in r.warnings {
            if !warnings
                .iter()
                .any(|seen| seen.var == w.var && seen.value == w.value && seen.problem == w.problem)
            {
                warnings.push(w);
            }
        }
        Parsed { config, warnings }
    }
}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<Warning>,
}

/// The process environment in one pass (its values that are valid Unicode, as
/// `std::env::var` reads them). A parse looks up ~150 names, and each `getenv` walks the
/// whole environment. Hashed with foldhash: SipHash took more than the lookups saved, and
/// ordered lookups compare long shared `OTEL_` prefixes.
pub fn environment() -> HashMap<String, String, foldhash::fast::RandomState> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

fn default_of(name: &'static str) -> &'static str {
    vars::find(name).map_or("", |v| v.default)
}

impl Reader<'_> {
    /// The trimmed value; the spec treats an empty value as unset.
    fn raw(&self, name: &str) -> Option<String> {
        let value = (self.lookup)(name)?;
        let trimmed = value.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }

    fn warn(&mut self, var: &'static str, value: &str, problem: impl Into<String>, used: impl Into<String>) {
        // Header values carry API keys.
        let shown = (!var.ends_with("_HEADERS")).then(|| value.to_string());
        self.warnings.push(Warning {
            var,
            value: shown,
            problem: problem.into(),
            used: used.into(),
        });
    }

    fn used_default(name: &'static str) -> String {
        match default_of(name) {
            "" => "no value".to_string(),
            d => format!("the default {d}"),
        }
    }

    fn bool(&mut self, name: &'static str) -> bool {
        let default = default_of(name) == "true";
        match self.raw(name) {
            None => default,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.warn(name, &v, "is not true or false", Self::used_default(name));
                default
            }
        }
    }

    fn opt_count(&mut self, name: &'static str) -> Option<usize> {
        let v = self.raw(name)?;
        match v.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.warn(name, &v, "is not a non-negative integer", Self::used_default(name));
                default_of(name).parse().ok()
            }
        }
    }

    fn count(&mut self, name: &'static str) -> usize {
        let default = default_of(name).parse().unwrap_or(0);
        self.opt_count(name).unwrap_or(default)
    }

    /// A count that must be at least 1 (queue and batch sizes).
    fn positive_count(&mut self, name: &'static str) -> usize {
        let default = default_of(name).parse().unwrap_or(1);
        match self.count(name) {
            0 => {
                self.warn(name, "0", "must be at least 1", Self::used_default(name));
                default
            }
            n => n,
        }
    }

    fn millis(&mut self, name: &'static str) -> Duration {
        let default: u64 = default_of(name).parse().unwrap_or(0);
        let v = match self.raw(name) {
            None => return Duration::from_millis(default),
            Some(v) => v,
        };
        match v.parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                self.warn(
                    name,
                    &v,
                    "is not a whole number of milliseconds",
                    Self::used_default(name),
                );
                Duration::from_millis(default)
            }
        }
    }

    fn seconds(&mut self, name: &'static str, fallback: Duration) -> Duration {
        let v = match self.raw(name) {
            None => return fallback,
            Some(v) => v,
        };
        match v.parse::<f64>() {
            Ok(s) if (0.0..=86_400.0).contains(&s) => Duration::from_secs_f64(s),
            _ => {
                self.warn(
                    name,
                    &v,
                    "is not a number of seconds between 0 and 86400",
                    format!("{}s", fallback.as_secs_f64()),
                );
                fallback
            }
        }
    }

    fn text(&self, name: &'static str) -> Option<String> {
        self.raw(name)
    }

    fn list(&self, name: &'static str) -> Vec<String> {
        let raw = self.raw(name).unwrap_or_else(|| default_of(name).to_string());
        split_list(&raw)
    }

    fn choice(&mut self, name: &'static str) -> &'static str {
        let (options, default) = match vars::find(name) {
            Some(vars::Var {
                kind: Kind::Choice(options),
                default,
                ..
            }) => (*options, *default),
            _ => (&[][..], ""),
        };
        let v = match self.raw(name) {
            None => return default,
            Some(v) => v,
        };
        match options.iter().find(|o| o.eq_ignore_ascii_case(&v)) {
            Some(o) => o,
            None => {
                self.warn(
                    name,
                    &v,
                    format!("is not one of {}", options.join(", ")),
                    Self::used_default(name),
                );
                default
            }
        }
    }

    fn key_values(&mut self, name: &'static str) -> Vec<(String, String)> {
        let raw = match self.raw(name) {
            None => return Vec::new(),
            Some(v) => v,
        };
        let mut pairs = Vec::new();
        for member in raw.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let parsed = member.split_once('=').and_then(|(k, v)| {
                let key = percent_decode(k.trim())?;
                let value = percent_decode(v.trim())?;
                (!key.is_empty()).then_some((key, value))
            });
            match parsed {
                Some(pair) => pairs.push(pair),
                None => self.warn(
                    name,
                    member,
                    "has a member that is not key=value (percent-encoded)",
                    "the other members",
                ),
            }
        }
        pairs
    }

    fn config(&mut self) -> Config {
        let sdk_disabled = self.bool("OTEL_SDK_DISABLED");
        let log_level = match self.choice("OTEL_LOG_LEVEL") {
            "debug" => LogLevel::Debug,
            "warn" | "warning" => LogLevel::Warning,
            "error" | "critical" => LogLevel::Error,
            "none" => LogLevel::None,
            _ => LogLevel::Info,
        };
        let resource_attributes = self.key_values("OTEL_RESOURCE_ATTRIBUTES");
        let service_name = self
            .text("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource_attributes
                    .iter()
                    .rev()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "unknown_service:python".to_string());
        let resource_detectors = Some(self.list("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS")).filter(|l| !l.is_empty());
        let propagators = self.propagators();
        let sampler = self.sampler();
        let id_generator = self.id_generator();
        let (traces_exporters, traces_protocol) = self.exporters("OTEL_TRACES_EXPORTER");
        let (metrics_exporters, metrics_protocol) = self.exporters("OTEL_METRICS_EXPORTER");
        let (logs_exporters, logs_protocol) = self.exporters("OTEL_LOGS_EXPORTER");

        let attribute_count = self.count("OTEL_ATTRIBUTE_COUNT_LIMIT");
        let attribute_value_length = self.opt_count("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT");
        let span_limits = SpanLimits {
            attribute_count: self
                .opt_count("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT")
                .unwrap_or(attribute_count),
            attribute_value_length: self
                .opt_count("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
                .or(attribute_value_length),
            event_count: self.count("OTEL_SPAN_EVENT_COUNT_LIMIT"),
            link_count: self.count("OTEL_SPAN_LINK_COUNT_LIMIT"),
            // Events and links fall back to the general limit too, as upstream's do.
            event_attribute_count: self
                .opt_count("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT")
                .unwrap_or(attribute_count),
            link_attribute_count: self
                .opt_count("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT")
                .unwrap_or(attribute_count),
        };
        let log_record_limits = LogRecordLimits {
            attribute_count: self
                .opt_count("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT")
                .unwrap_or(attribute_count),
            attribute_value_length: self
                .opt_count("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT")
                .or(attribute_value_length),
        };
        let bsp = self.batch(
            "OTEL_BSP_SCHEDULE_DELAY",
            "OTEL_BSP_EXPORT_TIMEOUT",
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        );
        let blrp = self.batch(
            "OTEL_BLRP_SCHEDULE_DELAY",
            "OTEL_BLRP_EXPORT_TIMEOUT",
            "OTEL_BLRP_MAX_QUEUE_SIZE",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        );
        let metric_reader = MetricReaderConfig {
            export_interval: self.millis("OTEL_METRIC_EXPORT_INTERVAL"),
            export_timeout: self.millis("OTEL_METRIC_EXPORT_TIMEOUT"),
            exemplar_filter: match self.choice("OTEL_METRICS_EXEMPLAR_FILTER") {
                "always_on" => ExemplarFilter::AlwaysOn,
                "always_off" => ExemplarFilter::AlwaysOff,
                _ => ExemplarFilter::TraceBased,
            },
            temporality_preference: match self.choice("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE") {
                "delta" => TemporalityPreference::Delta,
                "lowmemory" => TemporalityPreference::LowMemory,
                _ => TemporalityPreference::Cumulative,
            },
            exponential_histograms: self.choice("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION")
                == "base2_exponential_bucket_histogram",
        };
        let prometheus = self.prometheus();
        let otlp_traces = self.otlp(Signal::Traces, traces_protocol);
        let otlp_metrics = self.otlp(Signal::Metrics, metrics_protocol);
        let otlp_logs = self.otlp(Signal::Logs, logs_protocol);
        let python = self.python();
        let traces_processors = batch_processors(&traces_exporters, &otlp_traces, bsp);
        let logs_processors = batch_processors(&logs_exporters, &otlp_logs, blrp);
        Config {
            sdk_disabled,
            log_level,
            service_name,
            resource_attributes,
            resource_typed_attributes: Vec::new(),
            resource_schema_url: None,
            resource_detectors,
            propagators,
            sampler,
            id_generator,
            traces_exporters,
            metrics_exporters,
            logs_exporters,
            traces_processors,
            logs_processors,
            views: Vec::new(),
            span_limits,
            log_record_limits,
            bsp,
            blrp,
            metric_reader,
            prometheus,
            otlp_traces,
            otlp_metrics,
            otlp_logs,
            python,
        }
    }

    fn propagators(&mut self) -> Vec<Propagator> {
        const NAME: &str = "OTEL_PROPAGATORS";
        let mut out = Vec::new();
        for name in self.list(NAME) {
            let p = match name.to_ascii_lowercase().as_str() {
                "tracecontext" => Propagator::TraceContext,
                "baggage" => Propagator::Baggage,
                "b3" => Propagator::B3,
                "b3multi" => Propagator::B3Multi,
                "jaeger" => Propagator::Jaeger,
                "xray" => Propagator::XRay,
                "none" => return Vec::new(),
                _ => Propagator::EntryPoint(name),
            };
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    fn sampler(&mut self) -> Sampler {
        const NAME: &str = "OTEL_TRACES_SAMPLER";
        const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
        // A name ferrotel does not know is a sampler entry point; whether one is installed
        // is for the Python side to find out (and say).
        let name = match self.raw(NAME).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
            None => "parentbased_always_on",
            Some(v) => match vars::SAMPLERS.iter().find(|s| s.eq_ignore_ascii_case(&v)) {
                Some(builtin) => builtin,
                None => {
                    return Sampler::EntryPoint {
                        name: v,
                        arg: self.raw(ARG),
                    }
                }
            },
        };
        let needs_ratio = name.ends_with("traceidratio");
        let ratio = match (needs_ratio, self.raw(ARG)) {
            (true, Some(v)) => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    self.warn(ARG, &v, "is not a ratio between 0 and 1", "the default 1.0");
                    1.0
                }
            },
            _ => 1.0,
        };
        match name {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatio(ratio),
            "parentbased_always_off" => Sampler::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => Sampler::ParentBasedTraceIdRatio(ratio),
            _ => Sampler::ParentBasedAlwaysOn,
        }
    }

    /// The exporters a `OTEL_*_EXPORTER` list names, and the OTLP protocol a name fixes
    /// (`otlp_proto_grpc`, `otlp_proto_http`, as upstream's entry points of those names).
    fn exporters(&mut self, name: &'static str) -> (Vec<Exporter>, Option<Protocol>) {
        let mut out = Vec::new();
        let mut protocol = None;
        for item in self.list(name) {
            let exporter = match item.to_ascii_lowercase().as_str() {
                "none" => return (Vec::new(), None),
                "otlp" => Exporter::Otlp,
                "otlp_proto_grpc" => {
                    protocol = Some(Protocol::Grpc);
                    Exporter::Otlp
                }
                "otlp_proto_http" => {
                    protocol = Some(Protocol::HttpProtobuf);
                    Exporter::Otlp
                }
                "console" => Exporter::Console,
                "prometheus" if name == "OTEL_METRICS_EXPORTER" => Exporter::Prometheus,
                _ => Exporter::EntryPoint(item),
            };
            if !out.contains(&exporter) {
                out.push(exporter);
            }
        }
        (out, protocol)
    }

    fn prometheus(&mut self) -> PrometheusConfig {
        const PORT: &str = "OTEL_EXPORTER_PROMETHEUS_PORT";
        let default_port: u16 = default_of(PORT).parse().unwrap_or(9464);
        let port = match self.opt_count(PORT) {
            None => default_port,
            Some(port) => u16::try_from(port).unwrap_or_else(|_| {
                self.warn(
                    PORT,
                    &port.to_string(),
                    "is not a port (0-65535)",
                    Self::used_default(PORT),
                );
                default_port
            }),
        };
        let host = self
            .text("OTEL_EXPORTER_PROMETHEUS_HOST")
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| default_of("OTEL_EXPORTER_PROMETHEUS_HOST").to_string());
        PrometheusConfig { host, port }
    }

    fn id_generator(&mut self) -> IdGenerator {
        match self.raw("OTEL_PYTHON_ID_GENERATOR").map(|v| v.trim().to_string()) {
            None => IdGenerator::Random,
            Some(name) => match name.to_ascii_lowercase().as_str() {
                "" | "random" => IdGenerator::Random,
                "xray" => IdGenerator::XRay,
                _ => IdGenerator::EntryPoint(name),
            },
        }
    }

    fn batch(
        &mut self,
        delay: &'static str,
        timeout: &'static str,
        queue: &'static str,
        batch: &'static str,
    ) -> BatchConfig {
        let max_queue_size = self.positive_count(queue);
        let mut max_export_batch_size = self.positive_count(batch);
        if max_export_batch_size > max_queue_size {
            self.warn(
                batch,
                &max_export_batch_size.to_string(),
                format!("is larger than {queue}"),
                format!("{max_queue_size}"),
            );
            max_export_batch_size = max_queue_size;
        }
        BatchConfig {
            schedule_delay: self.millis(delay),
            export_timeout: self.millis(timeout),
            max_queue_size,
            max_export_batch_size,
        }
    }

    /// Reads one OTLP setting, the per-signal variable winning over the generic one.
    fn otlp_var(&self, signal: Signal, setting: &str) -> (&'static str, Option<String>) {
        let specific = format!("OTEL_EXPORTER_OTLP_{}{}", signal.env_infix(), setting);
        let generic = format!("OTEL_EXPORTER_OTLP_{setting}");
        for name in [specific, generic] {
            if let Some(var) = vars::find(&name) {
                if let Some(v) = self.raw(var.name) {
                    return (var.name, Some(v));
                }
            }
        }
        let generic_name = vars::find(&format!("OTEL_EXPORTER_OTLP_{setting}")).map_or("", |v| v.name);
        (generic_name, None)
    }

    /// `named`: the protocol the exporter's name fixes, which wins over the variables.
    fn otlp(&mut self, signal: Signal, named: Option<Protocol>) -> OtlpConfig {
        let protocol = match self.otlp_var(signal, "PROTOCOL") {
            _ if named.is_some() => named.unwrap_or(Protocol::Grpc),
            (_, None) => Protocol::Grpc,
            (name, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "grpc" => Protocol::Grpc,
                "http/protobuf" => Protocol::HttpProtobuf,
                "http/json" => Protocol::HttpJson,
                _ => {
                    self.warn(name, &v, "is not grpc, http/protobuf or http/json", "grpc");
                    Protocol::Grpc
                }
            },
        };
        let insecure = match self.otlp_var(signal, "INSECURE") {
            (_, None) => false,
            (name, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    self.warn(name, &v, "is not true or false", "false");
                    false
                }
            },
        };
        let endpoint = self.endpoint(signal, protocol, insecure);
        let (headers_var, headers_raw) = self.otlp_var(signal, "HEADERS");
        let headers = match headers_raw {
            None => Vec::new(),
            Some(_) => self.key_values(headers_var),
        };
        let (timeout_var, _) = self.otlp_var(signal, "TIMEOUT");
        let timeout = self.seconds(timeout_var, Duration::from_secs(10));
        let compression = match self.otlp_var(signal, "COMPRESSION") {
            (_, None) => Compression::None,
            (name, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "gzip" => Compression::Gzip,
                "deflate" => Compression::Deflate,
                "none" => Compression::None,
                _ => {
                    self.warn(name, &v, "is not gzip, deflate or none", "none");
                    Compression::None
                }
            },
        };
        OtlpConfig {
            endpoint,
            protocol,
            headers,
            timeout,
            compression,
            certificate: self.otlp_var(signal, "CERTIFICATE").1,
            client_key: self.otlp_var(signal, "CLIENT_KEY").1,
            client_certificate: self.otlp_var(signal, "CLIENT_CERTIFICATE").1,
            insecure,
        }
    }

    fn endpoint(&mut self, signal: Signal, protocol: Protocol, insecure: bool) -> String {
        let grpc = protocol == Protocol::Grpc;
        let default = if grpc {
            "http://localhost:4317".to_string()
        } else {
            format!("http://localhost:4318/{}", signal.path())
        };
        let specific_name = format!("OTEL_EXPORTER_OTLP_{}ENDPOINT", signal.env_infix());
        let specific = vars::find(&specific_name)
            .map(|v| v.name)
            .unwrap_or("OTEL_EXPORTER_OTLP_ENDPOINT");
        let (name, value, per_signal) = match self.raw(specific) {
            Some(v) => (specific, v, true),
            None => match self.raw("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(v) => ("OTEL_EXPORTER_OTLP_ENDPOINT", v, false),
                None => return default,
            },
        };
        let Some(url) = parse_endpoint(&value, grpc, insecure) else {
            self.warn(name, &value, "is not an http:// or https:// URL", default.clone());
            return default;
        };
        if grpc {
            // gRPC addresses a host; any path is ignored.
            format!("{}://{}", url.scheme, url.authority)
        } else if per_signal {
            value
        } else {
            let base = value.trim_end_matches('/');
            format!("{base}/{}", signal.path())
        }
    }

    fn python(&mut self) -> PythonConfig {
        let excluded_urls_by_framework = self.per_framework_lists("_EXCLUDED_URLS");
        let mut http_semconv = SemconvMode::Stable;
        let mut database_semconv = SemconvMode::Stable;
        for token in self.list("OTEL_SEMCONV_STABILITY_OPT_IN") {
            match token.as_str() {
                "http/dup" => http_semconv = SemconvMode::Duplicate,
                "database/dup" => database_semconv = SemconvMode::Duplicate,
                // `http`, `database` are the default here; other domains belong to other instrumentations.
                _ => {}
            }
        }
        PythonConfig {
            disabled_instrumentations: self.list("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"),
            enabled_instrumentations: self.raw("OTEL_PYTHON_ENABLED_INSTRUMENTATIONS").map(|v| split_list(&v)),
            distro: self.text("OTEL_PYTHON_DISTRO"),
            configurator: self.text("OTEL_PYTHON_CONFIGURATOR"),
            gevent_patch: !self
                .choice("OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH")
                .is_empty(),
            excluded_urls: self.list("OTEL_PYTHON_EXCLUDED_URLS"),
            excluded_urls_by_framework,
            capture_headers: CaptureHeaders {
                server_request: self.list("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"),
                server_response: self.list("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"),
                client_request: self.list("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST"),
                client_response: self.list("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE"),
                sanitize_fields: self.list("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"),
            },
            http_semconv,
            database_semconv,
            log_correlation: self.bool("OTEL_PYTHON_LOG_CORRELATION"),
            log_format: self.text("OTEL_PYTHON_LOG_FORMAT"),
            log_level: self.choice("OTEL_PYTHON_LOG_LEVEL"),
            logging_auto_instrumentation: self.bool("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"),
            log_auto_instrumentation: self.bool("OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION"),
            log_code_attributes: self.bool("OTEL_PYTHON_LOG_CODE_ATTRIBUTES"),
            log_handler_level: match self.choice("OTEL_PYTHON_LOG_HANDLER_LEVEL") {
                "debug" => 10,
                "info" => 20,
                "warn" | "warning" => 30,
                "error" => 40,
                "critical" | "fatal" => 50,
                _ => 0,
            },
            django_instrument: self.bool("OTEL_PYTHON_DJANGO_INSTRUMENT"),
            asgi_message_events: self.bool("FERROTEL_ASGI_MESSAGE_EVENTS"),
            django_traced_request_attrs: self.list("OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS"),
            capture_all_methods: self.bool("OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS"),
        }
    }

    /// `OTEL_PYTHON_{FW}{suffix}` lists that are set, keyed by lower-case framework.
    fn per_framework_lists(&self, suffix: &str) -> Vec<(String, Vec<String>)> {
        vars::all()
            .filter_map(|v| {
                let fw = v.name.strip_prefix("OTEL_PYTHON_")?.strip_suffix(suffix)?;
                let value = self.raw(v.name)?;
                Some((fw.to_ascii_lowercase(), split_list(&value)))
            })
            .collect()
    }
}

/// A batch processor for each exporter, as upstream's configurator sets them up.
fn batch_processors(exporters: &[Exporter], otlp: &OtlpConfig, batch: BatchConfig) -> Vec<ProcessorConfig> {
    exporters
        .iter()
        .map(|exporter| ProcessorConfig {
            exporter: exporter.clone(),
            otlp: otlp.clone(),
            batch: Some(batch),
        })
        .collect()
}

/// Splits a comma list, trimming members and dropping empty ones.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) struct Endpoint<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) authority: &'a str,
}

/// Accepts `http(s)://host[:port][/path]`; gRPC also accepts a bare `host:port`, secured
/// unless `insecure` (as upstream's gRPC exporter).
pub(crate) fn parse_endpoint(value: &str, grpc: bool, insecure: bool) -> Option<Endpoint<'_>> {
    let (scheme, rest) = match value.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => (
            if scheme.eq_ignore_ascii_case("http") {
                "http"
            } else {
                "https"
            },
            rest,
        ),
        Some(_) => return None,
        None if grpc => (if insecure { "http" } else { "https" }, value),
        None => return None,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let valid = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]@%".contains(c));
    valid.then_some(Endpoint { scheme, authority })
}

/// Percent-decodes `s`; `None` when an escape is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
