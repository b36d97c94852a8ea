use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::vars::{self, Kind};

fn parse(pairs: &[(&str, &str)]) -> Parsed {
    let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(move |name| env.get(name).cloned())
}

/// A value of the right shape that is nonetheless wrong, for each kind that can be wrong.
fn bad_value(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Bool => Some("maybe"),
        Kind::Count | Kind::Millis => Some("abc"),
        Kind::Seconds => Some("-3"),
        Kind::Ratio => Some("2"),
        Kind::Choice(_) => Some("bogus"),
        Kind::KeyValues => Some("novalue"),
        Kind::Url => Some("ftp://example.com"),
        Kind::Text | Kind::List | Kind::Path => None,
    }
}

#[test]
fn every_checkable_variable_warns_once_on_a_bad_value_and_keeps_its_default() {
    let defaults = parse(&[]).config;
    let mut checked = 0;
    // Variables ferrotel only passes on are checked by whoever reads them.
    for var in vars::all().filter(|v| v.not_used.is_none()) {
        let Some(bad) = bad_value(var.kind) else {
            continue;
        };
        // The sampler argument is read only by ratio samplers.
        let mut env = vec![(var.name, bad)];
        if var.name == "OTEL_TRACES_SAMPLER_ARG" {
            env.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
        }
        let parsed = parse(&env);
        let about: Vec<_> = parsed.warnings.iter().filter(|w| w.var == var.name).collect();
        assert_eq!(
            about.len(),
            1,
            "{}={bad:?} gave warnings {:?}",
            var.name,
            parsed.warnings
        );
        let text = about[0].to_string();
        assert!(text.starts_with(var.name) && text.contains("using"), "{text}");
        if !var.name.ends_with("_HEADERS") {
            assert!(text.contains(bad), "{text} should show the bad value");
        }
        if var.name != "OTEL_TRACES_SAMPLER_ARG" {
            assert_eq!(parsed.config, defaults, "{}={bad:?} must leave the defaults", var.name);
        }
        checked += 1;
    }
    assert!(checked >= 55, "only {checked} variables checked");
}

#[test]
fn defaults_follow_the_spec() {
    let c = parse(&[]).config;
    assert!(!c.sdk_disabled);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.service_name, "unknown_service:python");
    assert_eq!(c.propagators, vec![Propagator::TraceContext, Propagator::Baggage]);
    assert_eq!(c.sampler, Sampler::ParentBasedAlwaysOn);
    assert_eq!(c.traces_exporters, vec![Exporter::Otlp]);
    assert_eq!(c.metrics_exporters, vec![Exporter::Otlp]);
    assert_eq!(c.logs_exporters, vec![Exporter::Otlp]);
    assert_eq!(
        c.span_limits,
        SpanLimits {
            attribute_count: 128,
            attribute_value_length: None,
            event_count: 128,
            link_count: 128,
            event_attribute_count: 128,
            link_attribute_count: 128
        }
    );
    assert_eq!(
        c.log_record_limits,
        LogRecordLimits {
            attribute_count: 128,
            attribute_value_length: None
        }
    );
    assert_eq!(
        c.bsp,
        BatchConfig {
            schedule_delay: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(30000),
            max_queue_size: 2048,
            max_export_batch_size: 512
        }
    );
    assert_eq!(c.blrp.schedule_delay, Duration::from_millis(1000));
    assert_eq!(c.metric_reader.export_interval, Duration::from_secs(60));
    assert_eq!(c.metric_reader.export_timeout, Duration::from_secs(30));
    assert_eq!(c.metric_reader.exemplar_filter, ExemplarFilter::TraceBased);
    assert_eq!(
        c.metric_reader.temporality_preference,
        TemporalityPreference::Cumulative
    );
    assert_eq!(c.otlp_traces.endpoint, "http://localhost:4317");
    assert_eq!(c.otlp_traces.protocol, Protocol::Grpc);
    assert_eq!(c.otlp_traces.timeout, Duration::from_secs(10));
    assert_eq!(c.otlp_traces.compression, Compression::None);
    assert!(c.otlp_traces.headers.is_empty() && !c.otlp_traces.insecure);
    assert_eq!(c.python.http_semconv, SemconvMode::Stable);
    assert_eq!(c.python.enabled_instrumentations, None);
    assert!(c.python.django_instrument);
    assert_eq!(c.python.log_level, "info");
    assert!(parse(&[]).warnings.is_empty());
}

#[test]
fn empty_values_count_as_unset() {
    let parsed = parse(&[("OTEL_BSP_MAX_QUEUE_SIZE", "  "), ("OTEL_SERVICE_NAME", "")]);
    assert!(parsed.warnings.is_empty());
    assert_eq!(parsed.config.bsp.max_queue_size, 2048);
    assert_eq!(parsed.config.service_name, "unknown_service:python");
}

#[test]
fn booleans_are_case_insensitive() {
    assert!(parse(&[("OTEL_SDK_DISABLED", "TRUE")]).config.sdk_disabled);
    assert!(!parse(&[("OTEL_SDK_DISABLED", "False")]).config.sdk_disabled);
    let parsed = parse(&[("OTEL_SDK_DISABLED", "1")]);
    assert!(!parsed.config.sdk_disabled);
    assert_eq!(
        parsed.warnings[0].to_string(),
        "OTEL_SDK_DISABLED=\"1\" is not true or false; using the default false"
    );
}

#[test]
fn the_issue_examples_name_variable_value_and_default() {
    let w = parse(&[("OTEL_BSP_MAX_QUEUE_SIZE", "abc")]).warnings;
    assert_eq!(
        w[0].to_string(),
        "OTEL_BSP_MAX_QUEUE_SIZE=\"abc\" is not a non-negative integer; using the default 2048"
    );
    let parsed = parse(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
    ]);
    assert_eq!(parsed.config.sampler, Sampler::TraceIdRatio(1.0));
    assert_eq!(
        parsed.warnings[0].to_string(),
        "OTEL_TRACES_SAMPLER_ARG=\"2\" is not a ratio between 0 and 1; using the default 1.0"
    );
}

#[test]
fn samplers_and_their_argument() {
    let s = |name, arg| {
        parse(&[("OTEL_TRACES_SAMPLER", name), ("OTEL_TRACES_SAMPLER_ARG", arg)])
            .config
            .sampler
    };
    assert_eq!(s("always_on", "0.5"), Sampler::AlwaysOn);
    assert_eq!(s("ALWAYS_OFF", ""), Sampler::AlwaysOff);
    assert_eq!(s("traceidratio", "0.25"), Sampler::TraceIdRatio(0.25));
    assert_eq!(
        s("parentbased_traceidratio", "0"),
        Sampler::ParentBasedTraceIdRatio(0.0)
    );
    assert_eq!(s("parentbased_always_off", "x"), Sampler::ParentBasedAlwaysOff);
    // The argument of a sampler that takes none is ignored, not warned about.
    assert!(
        parse(&[("OTEL_TRACES_SAMPLER", "always_on"), ("OTEL_TRACES_SAMPLER_ARG", "x")])
            .warnings
            .is_empty()
    );
    let parsed = parse(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "nan"),
    ]);
    assert_eq!(parsed.config.sampler, Sampler::TraceIdRatio(1.0));
    assert_eq!(parsed.warnings.len(), 1);
}

#[test]
fn propagators_and_exporters_are_lists() {
    let c = parse(&[
        ("OTEL_PROPAGATORS", "b3, jaeger,b3,b3multi"),
        ("OTEL_TRACES_EXPORTER", "console,otlp"),
    ])
    .config;
    assert_eq!(
        c.propagators,
        vec![Propagator::B3, Propagator::Jaeger, Propagator::B3Multi]
    );
    assert_eq!(c.traces_exporters, vec![Exporter::Console, Exporter::Otlp]);
    assert!(parse(&[("OTEL_PROPAGATORS", "none")]).config.propagators.is_empty());
    assert!(parse(&[("OTEL_METRICS_EXPORTER", "none")])
        .config
        .metrics_exporters
        .is_empty());
    let c = parse(&[("OTEL_LOGS_EXPORTER", "my_vendor")]).config;
    assert_eq!(c.logs_exporters, vec![Exporter::EntryPoint("my_vendor".into())]);
    // Names ferrotel does not know are entry points for the Python side to load (or warn of).
    let parsed = parse(&[("OTEL_PROPAGATORS", "tracecontext,xyz,xray")]);
    assert_eq!(
        parsed.config.propagators,
        vec![
            Propagator::TraceContext,
            Propagator::EntryPoint("xyz".into()),
            Propagator::XRay
        ]
    );
    assert!(parsed.warnings.is_empty());
    let c = parse(&[("OTEL_TRACES_EXPORTER", "otlp_proto_http")]).config;
    assert_eq!(c.traces_exporters, vec![Exporter::Otlp]);
    assert_eq!(c.otlp_traces.protocol, Protocol::HttpProtobuf);
    assert_eq!(c.otlp_traces.endpoint, "http://localhost:4318/v1/traces");
    let c = parse(&[("OTEL_METRICS_EXPORTER", "prometheus,otlp_proto_grpc")]).config;
    assert_eq!(c.metrics_exporters, vec![Exporter::Prometheus, Exporter::Otlp]);
    assert_eq!(c.otlp_metrics.protocol, Protocol::Grpc);
}

#[test]
fn the_prometheus_endpoint_address() {
    let c = parse(&[]).config;
    assert_eq!((c.prometheus.host.as_str(), c.prometheus.port), ("localhost", 9464));
    let c = parse(&[
        ("OTEL_EXPORTER_PROMETHEUS_HOST", " 0.0.0.0 "),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
    ])
    .config;
    assert_eq!((c.prometheus.host.as_str(), c.prometheus.port), ("0.0.0.0", 0));
    let parsed = parse(&[("OTEL_EXPORTER_PROMETHEUS_PORT", "70000")]);
    assert_eq!(parsed.config.prometheus.port, 9464);
    assert_eq!(
        parsed.warnings[0].to_string(),
        "OTEL_EXPORTER_PROMETHEUS_PORT=\"70000\" is not a port (0-65535); using the default 9464"
    );
}

#[test]
fn service_name_wins_over_resource_attributes() {
    let c = parse(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=from-attrs,deployment.environment=prod%20eu",
    )])
    .config;
    assert_eq!(c.service_name, "from-attrs");
    assert_eq!(
        c.resource_attributes[1],
        ("deployment.environment".into(), "prod eu".into())
    );
    let c = parse(&[
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
        ("OTEL_SERVICE_NAME", "explicit"),
    ])
    .config;
    assert_eq!(c.service_name, "explicit");
}

#[test]
fn malformed_resource_members_are_skipped_alone() {
    let parsed = parse(&[("OTEL_RESOURCE_ATTRIBUTES", "a=1,broken,b=%zz,c=3")]);
    assert_eq!(
        parsed.config.resource_attributes,
        vec![("a".into(), "1".into()), ("c".into(), "3".into())]
    );
    assert_eq!(parsed.warnings.len(), 2);
}

#[test]
fn header_values_never_appear_in_warnings() {
    let parsed = parse(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cret,oops-s3cret")]);
    assert_eq!(
        parsed.config.otlp_traces.headers,
        vec![("api-key".into(), "s3cret".into())]
    );
    assert!(!parsed.warnings.is_empty());
    for w in &parsed.warnings {
        assert!(!w.to_string().contains("s3cret"), "{w}");
    }
}

#[test]
fn limits_fall_back_to_the_general_attribute_limits() {
    let c = parse(&[
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "20"),
    ])
    .config;
    assert_eq!(c.span_limits.attribute_count, 10);
    assert_eq!(c.span_limits.attribute_value_length, Some(20));
    assert_eq!(c.log_record_limits.attribute_count, 10);
    assert_eq!(c.span_limits.event_attribute_count, 10);
    assert_eq!(c.span_limits.link_attribute_count, 10);
    let c = parse(&[
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "5"),
        ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "3"),
    ])
    .config;
    assert_eq!(c.span_limits.attribute_count, 5);
    assert_eq!(c.log_record_limits.attribute_count, 10);
    assert_eq!(
        (c.span_limits.event_attribute_count, c.span_limits.link_attribute_count),
        (3, 10)
    );
    let c = parse(&[]).config;
    assert_eq!(
        (c.span_limits.event_attribute_count, c.span_limits.link_attribute_count),
        (128, 128)
    );
}

#[test]
fn batch_size_is_capped_by_queue_size() {
    let parsed = parse(&[
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
    ]);
    assert_eq!(parsed.config.bsp.max_export_batch_size, 100);
    assert_eq!(parsed.warnings.len(), 1);
    let parsed = parse(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "0")]);
    assert_eq!(parsed.config.blrp.max_queue_size, 2048);
    assert_eq!(parsed.warnings.len(), 1);
}

#[test]
fn otlp_per_signal_settings_win_over_generic_ones() {
    let c = parse(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2.5"),
        ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "7"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=b"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/k.pem"),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE", "/c.pem"),
    ])
    .config;
    assert_eq!(c.otlp_traces.protocol, Protocol::HttpProtobuf);
    assert_eq!(c.otlp_metrics.protocol, Protocol::Grpc);
    assert_eq!(c.otlp_traces.timeout, Duration::from_millis(2500));
    assert_eq!(c.otlp_logs.timeout, Duration::from_secs(7));
    assert_eq!(c.otlp_metrics.compression, Compression::Gzip);
    assert_eq!(c.otlp_traces.headers, vec![("a".into(), "b".into())]);
    assert!(c.otlp_logs.headers.is_empty());
    assert_eq!(c.otlp_metrics.certificate.as_deref(), Some("/ca.pem"));
    assert_eq!(c.otlp_logs.client_key.as_deref(), Some("/k.pem"));
    assert_eq!(c.otlp_logs.client_certificate.as_deref(), Some("/c.pem"));
    assert_eq!(c.otlp_traces.client_key, None);
}

#[test]
fn otlp_endpoints_resolve_per_the_spec() {
    let http = |pairs: &[(&str, &str)]| {
        let mut env = vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")];
        env.extend_from_slice(pairs);
        parse(&env).config
    };
    assert_eq!(http(&[]).otlp_traces.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(http(&[]).otlp_logs.endpoint, "http://localhost:4318/v1/logs");
    // The generic endpoint gets the signal path appended, with or without a trailing slash.
    let c = http(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/base/")]);
    assert_eq!(c.otlp_traces.endpoint, "https://collector:4318/base/v1/traces");
    assert_eq!(c.otlp_metrics.endpoint, "https://collector:4318/base/v1/metrics");
    // A per-signal endpoint is used as it is.
    let c = http(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:1"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:2/custom"),
    ]);
    assert_eq!(c.otlp_traces.endpoint, "http://b:2/custom");
    assert_eq!(c.otlp_logs.endpoint, "http://a:1/v1/logs");
    // gRPC keeps scheme, host and port only; a bare host:port is TLS unless insecure.
    let c = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://0.0.0.0:4317/ignored")]).config;
    assert_eq!(c.otlp_traces.endpoint, "http://0.0.0.0:4317");
    let c = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ingest.example.com:443")]).config;
    assert_eq!(c.otlp_traces.endpoint, "https://ingest.example.com:443");
    let c = parse(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
    ])
    .config;
    assert_eq!(c.otlp_traces.endpoint, "http://collector:4317");
    // A bare host:port is not a valid HTTP endpoint.
    let parsed = parse(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
    ]);
    assert_eq!(parsed.config.otlp_traces.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(
        parsed.warnings.len(),
        1,
        "said once for all signals: {:?}",
        parsed.warnings
    );
}

#[test]
fn python_lists_and_framework_variants() {
    let c = parse(&[
        ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "flask, requests"),
        ("OTEL_PYTHON_ENABLED_INSTRUMENTATIONS", "django"),
        ("OTEL_PYTHON_EXCLUDED_URLS", "healthz,metrics"),
        ("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "ping"),
        ("OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS", "path_info,content_type"),
        ("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup,gen_ai_latest_experimental"),
        (
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
            "x-request-id,content-.*",
        ),
        (
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
            "authorization",
        ),
        ("OTEL_PYTHON_DISTRO", "distro"),
        ("OTEL_PYTHON_CONFIGURATOR", "configurator"),
        ("OTEL_PYTHON_LOG_FORMAT", "%(msg)s"),
        (
            "OTEL_PYTHON_AUTO_INSTRUMENTATION_EXPERIMENTAL_GEVENT_PATCH",
            "patch_all",
        ),
    ])
    .config
    .python;
    assert_eq!(c.disabled_instrumentations, vec!["flask", "requests"]);
    assert_eq!(c.enabled_instrumentations, Some(vec!["django".to_string()]));
    assert_eq!(c.excluded_urls, vec!["healthz", "metrics"]);
    assert_eq!(
        c.excluded_urls_by_framework,
        vec![("flask".to_string(), vec!["ping".to_string()])]
    );
    assert_eq!(c.http_semconv, SemconvMode::Duplicate);
    assert_eq!(c.database_semconv, SemconvMode::Stable);
    assert_eq!(c.capture_headers.server_request, vec!["x-request-id", "content-.*"]);
    assert_eq!(c.capture_headers.sanitize_fields, vec!["authorization"]);
    assert_eq!(c.distro.as_deref(), Some("distro"));
    assert_eq!(c.configurator.as_deref(), Some("configurator"));
    assert_eq!(c.log_format.as_deref(), Some("%(msg)s"));
    assert!(c.gevent_patch);
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%20b%2Cc").as_deref(), Some("a b,c"));
    assert_eq!(percent_decode("%E2%9C%93").as_deref(), Some("✓"));
    assert_eq!(percent_decode("%"), None);
    assert_eq!(percent_decode("%4"), None);
    assert_eq!(percent_decode("%ff"), None);
}

/// Every variable in the registry is read by the parser, or says why it is not; and none
/// marked unused is read after all.
#[test]
fn every_registered_variable_is_read_or_says_why_not() {
    let asked = std::cell::RefCell::new(std::collections::HashSet::new());
    Config::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_string());
        None
    });
    let asked = asked.into_inner();
    let wrong: Vec<String> = vars::all()
        .filter(|v| v.not_used.is_none() != asked.contains(v.name))
        .map(|v| match v.not_used {
            Some(why) => format!("{} is read although marked unused ({why})", v.name),
            None => format!("{} is never read and does not say why", v.name),
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn samplers_and_id_generators_from_entry_points() {
    let c = parse(&[
        ("OTEL_TRACES_SAMPLER", "xray"),
        ("OTEL_TRACES_SAMPLER_ARG", "endpoint=http://x"),
    ])
    .config;
    assert_eq!(
        c.sampler,
        Sampler::EntryPoint {
            name: "xray".into(),
            arg: Some("endpoint=http://x".into())
        }
    );
    assert_eq!(parse(&[]).config.id_generator, IdGenerator::Random);
    assert_eq!(
        parse(&[("OTEL_PYTHON_ID_GENERATOR", "xray")]).config.id_generator,
        IdGenerator::XRay
    );
    assert_eq!(
        parse(&[("OTEL_PYTHON_ID_GENERATOR", "mine")]).config.id_generator,
        IdGenerator::EntryPoint("mine".into())
    );
}
