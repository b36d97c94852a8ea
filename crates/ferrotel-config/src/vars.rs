//! The registry of every environment variable ferrotel reads.
//!
//! One table drives three things: the `ferrotel instrument` flags (named as upstream derives
//! them), their `--help` text, and the parser's defaults. It owns names, meanings and defaults;
//! it must not hold parsing logic (that is `parse.rs`).

/// What kind of value a variable takes; used for help text and the table-driven tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// A non-negative integer (sizes, counts, limits).
    Count,
    /// A duration in milliseconds.
    Millis,
    /// A duration in seconds (upstream Python's OTLP exporters read their timeouts this way).
    Seconds,
    /// A float in `[0, 1]`.
    Ratio,
    Text,
    /// A comma-separated list.
    List,
    /// One of a closed set (case-insensitive).
    Choice(&'static [&'static str]),
    /// Comma-separated `key=value` pairs, percent-decoded.
    KeyValues,
    Url,
    Path,
}

/// One environment variable: its name, its default as the user would write it, and its meaning.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as text; empty when there is none (the variable is simply unset).
    pub default: &'static str,
    pub help: &'static str,
    /// `None` when ferrotel reads the variable; otherwise why it is accepted (as a flag, and
    /// passed on in the environment) but not read by ferrotel.
    pub not_used: Option<&'static str>,
}

impl Var {
    /// The launcher flag for this variable, as upstream derives it: strip `OTEL_PYTHON_` or
    /// `OTEL_`, lower-case. `OTEL_PYTHON_LOG_LEVEL` would collide with `OTEL_LOG_LEVEL`
    /// (`--log_level`), so it keeps its `python_` part.
    pub fn flag(&self) -> String {
        let stem = if self.name == PYTHON_LOG_LEVEL {
            self.name.trim_start_matches("OTEL_")
        } else if let Some(rest) = self.name.strip_prefix("OTEL_PYTHON_") {
            rest
        } else {
            self.name.trim_start_matches("OTEL_")
        };
        stem.to_ascii_lowercase()
    }
}

const PYTHON_LOG_LEVEL: &str = "OTEL_PYTHON_LOG_LEVEL";

pub const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "warning", "error", "critical", "none"];
pub const SAMPLERS: &[&str] = &[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];
pub const PROPAGATORS: &[&str] = &["tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "none"];
pub const PROTOCOLS: &[&str] = &["grpc", "http/protobuf", "http/json"];
pub const COMPRESSIONS: &[&str] = &["gzip", "deflate", "none"];
pub const EXEMPLAR_FILTERS: &[&str] = &["trace_based", "always_on", "always_off"];
pub const TEMPORALITIES: &[&str] = &["cumulative", "delta", "lowmemory"];
pub const HISTOGRAM_AGGREGATIONS: &[&str] = &["explicit_bucket_histogram", "base2_exponential_bucket_histogram"];
pub const PYTHON_LOG_LEVELS: &[&str] = &["debug", "info", "warning", "error"];
/// `logging`'s own level names, as upstream's handler level variable accepts them.
pub const HANDLER_LEVELS: &[&str] = &[
    "notset", "debug", "info", "warn", "warning", "error", "critical", "fatal",
];

macro_rules! var {
    ($name:expr, $kind:expr, $default:expr, $help:expr) => {
        Var {
            name: $name,
            kind: $kind,
            default: $default,
            help: $help,
            not_used: None,
        }
    };
    ($name:expr, $kind:expr, $default:expr, $help:expr, not_used: $why:expr) => {
        Var {
            name: $name,
            kind: $kind,
            default: $default,
            help: $help,
            not_used: Some($why),
        }
    };
}

/// The OTLP exporter family for one prefix: `""` (all signals) or `"TRACES_"` etc.
macro_rules! otlp_family {
    ($sig:literal, $what:literal) => {
        [
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "ENDPOINT"),
                Kind::Url,
                "",
                concat!(
                    "OTLP endpoint for ",
                    $what,
                    " (default http://localhost:4317 for grpc, http://localhost:4318 for http)"
                )
            ),
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "PROTOCOL"),
                Kind::Choice(PROTOCOLS),
                "",
                concat!(
                    "OTLP transport for ",
                    $what,
                    ": grpc, http/protobuf or http/json (default grpc, as upstream's distro)"
                )
            ),
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "HEADERS"),
                Kind::KeyValues,
                "",
                concat!(
                    "extra headers sent with ",
                    $what,
                    " exports, k=v pairs, percent-encoded; values are never logged"
                )
            ),
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "TIMEOUT"),
                Kind::Seconds,
                "10",
                concat!("time limit of one ", $what, " export, in seconds (as upstream Python)")
            ),
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "COMPRESSION"),
                Kind::Choice(COMPRESSIONS),
                "none",
                concat!("compression of ", $what, " exports: gzip or none")
            ),
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "CERTIFICATE"),
                Kind::Path,
                "",
                concat!(
                    "PEM file of CA certificates trusted for ",
                    $what,
                    " exports (default: system roots)"
                )
            ),
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "CLIENT_KEY"),
                Kind::Path,
                "",
                concat!("PEM private key for mTLS on ", $what, " exports")
            ),
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "CLIENT_CERTIFICATE"),
                Kind::Path,
                "",
                concat!("PEM client certificate chain for mTLS on ", $what, " exports")
            ),
            var!(
                concat!("OTEL_EXPORTER_OTLP_", $sig, "INSECURE"),
                Kind::Bool,
                "false",
                concat!("gRPC without TLS for ", $what, " when the endpoint has no scheme")
            ),
        ]
    };
}

macro_rules! excluded_urls {
    ($($fw:literal),*) => {
        [$(var!(concat!("OTEL_PYTHON_", $fw, "_EXCLUDED_URLS"), Kind::List, "",
            concat!("URL regexes the ", $fw, " instrumentation does not trace (overrides OTEL_PYTHON_EXCLUDED_URLS)"))),*]
    };
}

macro_rules! capture_headers {
    ($($which:literal),*) => {
        [$(var!(concat!("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_", $which), Kind::List, "",
            concat!("header names (or regexes) captured as attributes on ", $which, " spans"))),*]
    };
}

const GENERAL: &[Var] = &[
    var!(
        "OTEL_SDK_DISABLED",
        Kind::Bool,
        "false",
        "disable ferrotel entirely: nothing is installed"
    ),
    var!(
        "OTEL_LOG_LEVEL",
        Kind::Choice(LOG_LEVELS),
        "info",
        "ferrotel's own diagnostics level; debug lists what activated and why"
    ),
    var!(
        "OTEL_SERVICE_NAME",
        Kind::Text,
        "",
        "service.name resource attribute; wins over OTEL_RESOURCE_ATTRIBUTES (default unknown_service:python)"
    ),
    var!(
        "OTEL_RESOURCE_ATTRIBUTES",
        Kind::KeyValues,
        "",
        "resource attributes as k=v pairs, percent-encoded"
    ),
    var!(
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS",
        Kind::List,
        "",
        "resource detectors, in order: service_instance, otel, process, os, host, process_command_args, entry points, * (all but the command line); unset: service_instance,process,os,host,otel"
    ),
    var!(
        "OTEL_PROPAGATORS",
        Kind::List,
        "tracecontext,baggage",
        "context propagators: tracecontext, baggage, b3, b3multi, jaeger, xray, none, or names of \
         opentelemetry_propagator entry points"
    ),
    var!(
        "OTEL_TRACES_SAMPLER",
        Kind::Text,
        "parentbased_always_on",
        "trace sampler: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, \
         parentbased_traceidratio, or the name of an opentelemetry_traces_sampler entry point"
    ),
    var!(
        "OTEL_TRACES_SAMPLER_ARG",
        Kind::Ratio,
        "1.0",
        "sampler argument: the ratio in [0, 1] for the traceidratio samplers"
    ),
    var!(
        "OTEL_TRACES_EXPORTER",
        Kind::List,
        "otlp",
        "trace exporters: otlp, console, none, or an exporter entry-point name; a comma list sends to several"
    ),
    var!(
        "OTEL_METRICS_EXPORTER",
        Kind::List,
        "otlp",
        "metric exporters: otlp, console, none"
    ),
    var!(
        "OTEL_LOGS_EXPORTER",
        Kind::List,
        "otlp",
        "log exporters: otlp, console, none"
    ),
];

const LIMITS: &[Var] = &[
    var!(
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        Kind::Count,
        "",
        "longest attribute value kept, any signal (default no limit)"
    ),
    var!(
        "OTEL_ATTRIBUTE_COUNT_LIMIT",
        Kind::Count,
        "128",
        "most attributes kept per item, any signal"
    ),
    var!(
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        Kind::Count,
        "",
        "longest span attribute value kept (default OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)"
    ),
    var!(
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        Kind::Count,
        "128",
        "most attributes kept per span"
    ),
    var!(
        "OTEL_SPAN_EVENT_COUNT_LIMIT",
        Kind::Count,
        "128",
        "most events kept per span"
    ),
    var!(
        "OTEL_SPAN_LINK_COUNT_LIMIT",
        Kind::Count,
        "128",
        "most links kept per span"
    ),
    var!(
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        Kind::Count,
        "128",
        "most attributes kept per span event"
    ),
    var!(
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        Kind::Count,
        "128",
        "most attributes kept per span link"
    ),
    var!(
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        Kind::Count,
        "",
        "longest log record attribute value kept (default OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)"
    ),
    var!(
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
        Kind::Count,
        "128",
        "most attributes kept per log record"
    ),
];

const PROCESSORS: &[Var] = &[
    var!(
        "OTEL_BSP_SCHEDULE_DELAY",
        Kind::Millis,
        "5000",
        "batch span processor: ms between exports"
    ),
    var!(
        "OTEL_BSP_EXPORT_TIMEOUT",
        Kind::Millis,
        "30000",
        "batch span processor: ms one export may take"
    ),
    var!(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        Kind::Count,
        "2048",
        "batch span processor: spans buffered before drops are counted"
    ),
    var!(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        Kind::Count,
        "512",
        "batch span processor: most spans per export (at most the queue size)"
    ),
    var!(
        "OTEL_BLRP_SCHEDULE_DELAY",
        Kind::Millis,
        "1000",
        "batch log record processor: ms between exports"
    ),
    var!(
        "OTEL_BLRP_EXPORT_TIMEOUT",
        Kind::Millis,
        "30000",
        "batch log record processor: ms one export may take"
    ),
    var!(
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        Kind::Count,
        "2048",
        "batch log record processor: records buffered before drops are counted"
    ),
    var!(
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        Kind::Count,
        "512",
        "batch log record processor: most records per export"
    ),
    var!(
        "OTEL_METRIC_EXPORT_INTERVAL",
        Kind::Millis,
        "60000",
        "periodic metric reader: ms between exports"
    ),
    var!(
        "OTEL_METRIC_EXPORT_TIMEOUT",
        Kind::Millis,
        "30000",
        "periodic metric reader: ms one export may take"
    ),
    var!(
        "OTEL_METRICS_EXEMPLAR_FILTER",
        Kind::Choice(EXEMPLAR_FILTERS),
        "trace_based",
        "which measurements may become exemplars"
    ),
    var!(
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        Kind::Choice(TEMPORALITIES),
        "cumulative",
        "aggregation temporality of exported metrics"
    ),
    var!(
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        Kind::Choice(HISTOGRAM_AGGREGATIONS),
        "explicit_bucket_histogram",
        "default histogram aggregation of the OTLP exporter's reader"
    ),
];

const OTLP_ALL: [Var; 9] = otlp_family!("", "all signals");
const OTLP_TRACES: [Var; 9] = otlp_family!("TRACES_", "traces");
const OTLP_METRICS: [Var; 9] = otlp_family!("METRICS_", "metrics");
const OTLP_LOGS: [Var; 9] = otlp_family!("LOGS_", "logs");

/// Exporters ferrotel does not ship read these; the launcher still passes them through so
/// upstream command lines keep working with exporters installed as entry points.
const OTHER_EXPORTERS: &[Var] = &[
    var!(
        "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
        Kind::Url,
        "",
        "Zipkin endpoint, for a Zipkin exporter installed as an entry point",
        not_used: "read by that exporter, installed as an entry point; ferrotel has none of its own"
    ),
    var!(
        "OTEL_EXPORTER_ZIPKIN_TIMEOUT",
        Kind::Seconds,
        "10",
        "Zipkin export time limit in seconds",
        not_used: "read by that exporter, installed as an entry point; ferrotel has none of its own"
    ),
    var!(
        "OTEL_EXPORTER_PROMETHEUS_HOST",
        Kind::Text,
        "localhost",
        "host the Prometheus scrape endpoint (OTEL_METRICS_EXPORTER=prometheus) listens on"
    ),
    var!(
        "OTEL_EXPORTER_PROMETHEUS_PORT",
        Kind::Count,
        "9464",
        "port of the Prometheus scrape endpoint (0: any free port)"
    ),
];

const PYTHON: &[Var] = &[
    var!(
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        Kind::List,
        "",
        "instrumentations (entry-point names) not to activate; * disables all"
    ),
    var!(
        "OTEL_PYTHON_ENABLED_INSTRUMENTATIONS",
        Kind::List,
        "",
        "if set, only these instrumentations activate (the disable list still wins)"
    ),
    var!(
        "OTEL_PYTHON_DISTRO",
        Kind::Text,
        "",
        "distro entry-point name to use when several are installed"
    ),
    var!(
        "OTEL_PYTHON_CONFIGURATOR",
        Kind::Text,
        "",
        "configurator entry-point name to use when several are installed"
    ),
    var!(
        "OTEL_PYTHON_CONTEXT",
        Kind::Text,
        "contextvars_context",
        "runtime context implementation (entry-point group opentelemetry_context)",
        not_used: "read by the opentelemetry-api itself"
    ),
    var!(
        "OTEL_PYTHON_ID_GENERATOR",
        Kind::Text,
        "random",
        "trace/span id generator: random, xray, or the name of an opentelemetry_id_generator entry point"
    ),
    var!(
        "OTEL_PYTHON_TRACER_PROVIDER",
        Kind::Text,
        "",
        "tracer provider entry-point name",
        not_used: "read by the opentelemetry-api when no provider is set; ferrotel's configurator sets one"
    ),
    var!(
        "OTEL_PYTHON_METER_PROVIDER",
        Kind::Text,
        "",
        "meter provider entry-point name",
        not_used: "read by the opentelemetry-api when no provider is set; ferrotel's configurator sets one"
    ),
    var!(
        "OTEL_PYTHON_LOGGER_PROVIDER",
        Kind::Text,
        "",
        "logger provider entry-point name",
        not_used: "read by the opentelemetry-api when no provider is set; ferrotel's configurator sets one"
    ),
    var!(
        "OTEL_PYTHON_TRACER_CONFIGURATOR",
        Kind::Text,
        "",
        "tracer configurator entry-point name",
        not_used: "the upstream SDK's per-signal configurators are not supported yet"
    ),
    var!(
        "OTEL_PYTHON_METER_CONFIGURATOR",
        Kind::Text,
        "",
        "meter configurator entry-point name",
        not_used: "the upstream SDK's per-signal configurators are not supported yet"
    ),
    var!(
        "OTEL_PYTHON_LOGGER_CONFIGURATOR",
        Kind::Text,
        "",
        "logger configurator entry-point name",
        not_used: "the upstream SDK's per-signal configurators are not supported yet"
    ),
    var!(
        "OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH",
        Kind::Choice(&["patch_all"]),
        "",
        "run gevent's monkey.patch_all() before anything else"
    ),
    var!(
        "OTEL_PYTHON_EXCLUDED_URLS",
        Kind::List,
        "",
        "URL regexes no HTTP instrumentation traces"
    ),
    var!(
        "FERROTEL_ASGI_MESSAGE_EVENTS",
        Kind::Bool,
        "false",
        "record each ASGI websocket message sent or received as an event on the connection's server span"
    ),
    var!(
        "OTEL_PYTHON_DJANGO_INSTRUMENT",
        Kind::Bool,
        "true",
        "insert the Django middleware"
    ),
    var!(
        "OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION",
        Kind::Count,
        "",
        "index where the Django middleware is inserted (default first)",
        not_used: "ferrotel patches Django's handler instead of inserting a middleware"
    ),
    var!(
        "OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS",
        Kind::List,
        "",
        "Django request attributes recorded on server spans"
    ),
    var!(
        "OTEL_PYTHON_FALCON_TRACED_REQUEST_ATTRS",
        Kind::List,
        "",
        "Falcon request attributes recorded on server spans",
        not_used: "read by contrib instrumentations; ferrotel's built-ins do not record request attributes yet"
    ),
    var!(
        "OTEL_PYTHON_TORNADO_TRACED_REQUEST_ATTRS",
        Kind::List,
        "",
        "Tornado request attributes recorded on server spans",
        not_used: "read by contrib instrumentations; ferrotel's built-ins do not record request attributes yet"
    ),
    var!(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
        Kind::List,
        "",
        "captured header names (or regexes) whose values are replaced by [REDACTED]"
    ),
    var!(
        "OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS",
        Kind::Bool,
        "false",
        "keep non-standard HTTP methods as they are (upper-cased) instead of _OTHER"
    ),
    var!(
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        Kind::List,
        "",
        "http, http/dup, database, database/dup: ferrotel emits stable conventions; /dup adds the old names too"
    ),
    var!(
        "OTEL_PYTHON_LOG_CORRELATION",
        Kind::Bool,
        "false",
        "put trace context fields into the root logging format"
    ),
    var!(
        "OTEL_PYTHON_LOG_FORMAT",
        Kind::Text,
        "",
        "logging format used with OTEL_PYTHON_LOG_CORRELATION"
    ),
    var!(
        "OTEL_PYTHON_LOG_LEVEL",
        Kind::Choice(PYTHON_LOG_LEVELS),
        "info",
        "logging level used with OTEL_PYTHON_LOG_CORRELATION"
    ),
    var!(
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED",
        Kind::Bool,
        "false",
        "deprecated (as upstream): true attaches the SDK-style handler at start-up, code.* attributes always on"
    ),
    var!(
        "OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION",
        Kind::Bool,
        "true",
        "the logging instrumentation exports Python logging records as OTLP logs"
    ),
    var!(
        "OTEL_PYTHON_LOG_CODE_ATTRIBUTES",
        Kind::Bool,
        "false",
        "add code.* attributes (file, function, line) to exported log records"
    ),
    var!(
        "OTEL_PYTHON_LOG_HANDLER_LEVEL",
        Kind::Choice(HANDLER_LEVELS),
        "notset",
        "lowest level of the logging records exported: notset, debug, info, warn(ing), error, critical"
    ),
];

const EXCLUDED_URLS: [Var; 14] = excluded_urls!(
    "AIOHTTP_CLIENT",
    "AIOHTTP_SERVER",
    "DJANGO",
    "FALCON",
    "FASTAPI",
    "FLASK",
    "HTTPX",
    "PYRAMID",
    "REQUESTS",
    "STARLETTE",
    "TORNADO",
    "URLLIB",
    "URLLIB3",
    "WSGI"
);
const CAPTURE_HEADERS: [Var; 4] =
    capture_headers!("SERVER_REQUEST", "SERVER_RESPONSE", "CLIENT_REQUEST", "CLIENT_RESPONSE");

/// Every variable, grouped as `--help` shows them.
pub fn groups() -> [(&'static str, &'static [Var]); 11] {
    [
        ("General", GENERAL),
        ("Limits", LIMITS),
        ("Processors and metric reader", PROCESSORS),
        ("OTLP exporter, all signals", &OTLP_ALL),
        ("OTLP exporter, traces", &OTLP_TRACES),
        ("OTLP exporter, metrics", &OTLP_METRICS),
        ("OTLP exporter, logs", &OTLP_LOGS),
        ("Other exporters", OTHER_EXPORTERS),
        ("Python instrumentation", PYTHON),
        ("Excluded URLs per instrumentation", &EXCLUDED_URLS),
        ("Captured HTTP headers", &CAPTURE_HEADERS),
    ]
}

/// Every variable, in `--help` order.
pub fn all() -> impl Iterator<Item = &'static Var> {
    groups().into_iter().flat_map(|(_, vars)| vars.iter())
}

/// Looks a variable up by name.
pub fn find(name: &str) -> Option<&'static Var> {
    all().find(|v| v.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_flags_are_unique() {
        let mut names = HashSet::new();
        let mut flags = HashSet::new();
        for var in all() {
            assert!(names.insert(var.name), "duplicate variable {}", var.name);
            assert!(flags.insert(var.flag()), "duplicate flag {} ({})", var.flag(), var.name);
        }
    }

    #[test]
    fn flags_follow_upstream_naming() {
        let flag = |name| find(name).unwrap().flag();
        assert_eq!(flag("OTEL_SERVICE_NAME"), "service_name");
        assert_eq!(flag("OTEL_TRACES_EXPORTER"), "traces_exporter");
        assert_eq!(flag("OTEL_EXPORTER_OTLP_ENDPOINT"), "exporter_otlp_endpoint");
        assert_eq!(
            flag("OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
            "exporter_otlp_traces_headers"
        );
        assert_eq!(
            flag("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"),
            "disabled_instrumentations"
        );
        assert_eq!(flag("OTEL_PYTHON_FLASK_EXCLUDED_URLS"), "flask_excluded_urls");
        assert_eq!(flag("OTEL_LOG_LEVEL"), "log_level");
        assert_eq!(flag("OTEL_PYTHON_LOG_LEVEL"), "python_log_level");
    }

    #[test]
    fn choice_defaults_are_choices() {
        for var in all() {
            if let Kind::Choice(options) = var.kind {
                assert!(var.default.is_empty() || options.contains(&var.default), "{}", var.name);
            }
        }
    }
}
