//! The example files under `tests/config_files/` (shared with the Python integration tests):
//! every valid one read into the expected `Config`, every invalid one failing with the exact
//! error its first line states.

use std::path::PathBuf;
use std::time::Duration;

use super::{load, load_text, Aggregation, InstrumentType};
use crate::parse::{
    AttributeValue, Compression, Config, ExemplarFilter, Exporter, LogLevel, ParentBasedSamplers, Propagator, Protocol,
    Sampler, TemporalityPreference,
};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/config_files")
}

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" => Some("s3cret".to_string()),
        // Ignored: the file is the configuration.
        "OTEL_TRACES_SAMPLER" => Some("always_off".to_string()),
        "OTEL_SERVICE_NAME" => Some("from-env".to_string()),
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" => Some("flask".to_string()),
        _ => None,
    }
}

fn load_example(name: &str) -> Config {
    let path = examples().join(name);
    load(path.to_str().unwrap(), &env)
        .unwrap_or_else(|e| panic!("{e}"))
        .config
}

#[test]
fn kitchen_sink() {
    let c = load_example("kitchen_sink.yaml");
    assert!(!c.sdk_disabled);
    assert_eq!(c.log_level, LogLevel::Warning);
    assert_eq!(c.service_name, "checkout");
    assert_eq!(
        c.resource_attributes,
        [
            ("deployment.environment.name".to_string(), "staging".to_string()),
            ("team".to_string(), "payments/core".to_string()),
        ]
    );
    assert_eq!(
        c.resource_typed_attributes,
        [
            ("service.name".to_string(), AttributeValue::Str("checkout".into())),
            ("service.version".to_string(), AttributeValue::Str("2.4.1".into())),
            ("replicas".to_string(), AttributeValue::Int(3)),
            ("canary".to_string(), AttributeValue::Bool(true)),
            ("load".to_string(), AttributeValue::Double(0.75)),
            (
                "regions".to_string(),
                AttributeValue::StrArray(vec!["eu-west-1".into(), "us-east-2".into()])
            ),
            ("shard.ids".to_string(), AttributeValue::IntArray(vec![4, 8])),
        ]
    );
    assert_eq!(
        c.resource_schema_url.as_deref(),
        Some("https://opentelemetry.io/schemas/1.37.0")
    );
    assert_eq!(c.resource_detectors.unwrap(), ["process", "host"]);
    assert_eq!(
        c.propagators,
        [Propagator::TraceContext, Propagator::Baggage, Propagator::B3Multi]
    );

    // Span limits: the provider's own, else the general ones.
    assert_eq!(c.span_limits.attribute_count, 32);
    assert_eq!(c.span_limits.attribute_value_length, Some(4096));
    assert_eq!(
        (
            c.span_limits.event_count,
            c.span_limits.link_count,
            c.span_limits.event_attribute_count,
            c.span_limits.link_attribute_count
        ),
        (16, 8, 4, 2)
    );
    assert_eq!(c.log_record_limits.attribute_count, 20);
    assert_eq!(c.log_record_limits.attribute_value_length, Some(512));

    assert_eq!(
        c.sampler,
        Sampler::ParentBased(Box::new(ParentBasedSamplers {
            root: Sampler::TraceIdRatio(0.25),
            remote_parent_sampled: Sampler::AlwaysOn,
            remote_parent_not_sampled: Sampler::AlwaysOn,
            local_parent_sampled: Sampler::AlwaysOn,
            local_parent_not_sampled: Sampler::AlwaysOff,
        }))
    );

    assert_eq!(c.traces_exporters, [Exporter::Otlp, Exporter::Console]);
    let [batch, simple] = c.traces_processors.as_slice() else {
        panic!("{:?}", c.traces_processors)
    };
    let b = batch.batch.unwrap();
    assert_eq!(
        (
            b.schedule_delay,
            b.export_timeout,
            b.max_queue_size,
            b.max_export_batch_size
        ),
        (Duration::from_millis(250), Duration::from_millis(9000), 1000, 100)
    );
    assert_eq!(batch.otlp.endpoint, "http://collector.internal:4318/v1/traces");
    assert_eq!(batch.otlp.protocol, Protocol::HttpJson);
    assert_eq!(batch.otlp.compression, Compression::Gzip);
    assert_eq!(batch.otlp.timeout, Duration::from_millis(7000));
    assert_eq!(
        batch.otlp.headers,
        [
            ("x-team".to_string(), "payments".to_string()),
            ("authorization".to_string(), "Bearer s3cret".to_string()),
        ]
    );
    assert_eq!(batch.otlp.certificate.as_deref(), Some("/etc/ssl/collector-ca.pem"));
    assert_eq!((simple.exporter.clone(), simple.batch), (Exporter::Console, None));

    assert_eq!(c.metrics_exporters, [Exporter::Otlp, Exporter::Prometheus]);
    assert_eq!(c.otlp_metrics.protocol, Protocol::Grpc);
    assert_eq!(c.otlp_metrics.endpoint, "https://metrics.internal:4317");
    assert_eq!(
        c.otlp_metrics.client_certificate.as_deref(),
        Some("/etc/ssl/client.pem")
    );
    assert_eq!(c.otlp_metrics.client_key.as_deref(), Some("/etc/ssl/client.key"));
    assert_eq!(c.metric_reader.export_interval, Duration::from_secs(15));
    assert_eq!(c.metric_reader.export_timeout, Duration::from_secs(5));
    assert_eq!(c.metric_reader.temporality_preference, TemporalityPreference::Delta);
    assert_eq!(c.metric_reader.exemplar_filter, ExemplarFilter::AlwaysOff);
    assert_eq!((c.prometheus.host.as_str(), c.prometheus.port), ("0.0.0.0", 9300));

    assert_eq!(c.views.len(), 2);
    let view = &c.views[0];
    assert_eq!(
        view.selector.instrument_name.as_deref(),
        Some("http.server.request.duration")
    );
    assert_eq!(view.selector.instrument_type, Some(InstrumentType::Histogram));
    assert_eq!(view.selector.meter_name.as_deref(), Some("ferrotel"));
    assert_eq!(view.stream.name.as_deref(), Some("request.duration"));
    assert_eq!(
        view.stream.aggregation,
        Some(Aggregation::ExplicitBucketHistogram {
            boundaries: Some(vec![0.01, 0.1, 1.0, 10.0]),
            record_min_max: false
        })
    );
    assert_eq!(
        view.stream.attribute_keys_included,
        Some(vec!["http.request.method".into(), "http.response.status_code".into()])
    );
    assert_eq!(c.views[1].stream.aggregation, Some(Aggregation::Drop));

    let [logs] = c.logs_processors.as_slice() else {
        panic!("{:?}", c.logs_processors)
    };
    assert_eq!(logs.batch.map(|b| b.schedule_delay), Some(Duration::from_millis(300)));
    // Omitted batch settings are the schema's defaults.
    assert_eq!(logs.batch.map(|b| b.max_queue_size), Some(2048));
    assert_eq!(logs.otlp.endpoint, "http://localhost:4317");
    assert_eq!(logs.otlp.protocol, Protocol::Grpc);

    // Loader settings still come from the environment.
    assert_eq!(c.python.disabled_instrumentations, ["flask"]);
}

#[test]
fn kitchen_sink_warns_about_what_its_views_ask_for_that_is_not_applied() {
    let path = examples().join("kitchen_sink.yaml");
    let loaded = load(path.to_str().unwrap(), &env).unwrap();
    assert_eq!(
        loaded.warnings,
        ["line 94: meter_provider.views[0]: record_min_max: false not applied (the view applies without it)"]
    );
    assert_eq!(loaded.config.views.len(), 2);
}

#[test]
fn minimal_file_means_no_providers_and_ignores_the_environment() {
    let c = load_example("minimal.yaml");
    assert!(!c.sdk_disabled);
    assert_eq!(c.service_name, "unknown_service:python");
    assert_eq!(c.sampler, Sampler::ParentBasedAlwaysOn);
    assert!(c.traces_processors.is_empty() && c.traces_exporters.is_empty());
    assert!(c.logs_processors.is_empty() && c.metrics_exporters.is_empty());
    assert!(c.propagators.is_empty());
    assert_eq!(c.resource_detectors, Some(Vec::new()));
    assert_eq!(c.span_limits.attribute_count, 128);
}

#[test]
fn disabled_by_substitution_with_default() {
    assert!(load_example("disabled.yaml").sdk_disabled);
    let path = examples().join("disabled.yaml");
    let off = |name: &str| (name == "FERROTEL_TEST_DISABLED").then(|| "false".to_string());
    assert!(!load(path.to_str().unwrap(), &off).unwrap().config.sdk_disabled);
}

#[test]
fn invalid_files_fail_with_the_stated_error() {
    let dir = examples().join("invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", path.display()));
        let name = path.file_name().unwrap().to_str().unwrap();
        let error = load_text(name, &text, &env).unwrap_err();
        assert_eq!(error.to_string(), format!("{name}{expected}"), "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
}

#[test]
fn environment_path_unchanged_without_the_variable() {
    let c = Config::from_lookup(env).config;
    assert_eq!(c.sampler, Sampler::AlwaysOff);
    assert_eq!(c.service_name, "from-env");
    assert_eq!(c.traces_processors.len(), 1);
    assert_eq!(c.traces_processors[0].exporter, Exporter::Otlp);
}

#[test]
fn the_variable_selects_the_file() {
    let path = examples().join("kitchen_sink.yaml");
    let path = path.to_str().unwrap().to_string();
    let parsed = Config::from_lookup(|name| match name {
        "OTEL_CONFIG_FILE" => Some(path.clone()),
        other => env(other),
    });
    assert_eq!(parsed.config.service_name, "checkout");
    assert_eq!(parsed.warnings.len(), 1);

    let parsed = Config::from_lookup(|name| match name {
        "OTEL_CONFIG_FILE" => Some("/nonexistent/otel.yaml".to_string()),
        other => env(other),
    });
    assert!(parsed.config.sdk_disabled);
    assert_eq!(
        parsed.warnings[0].to_string(),
        "OTEL_CONFIG_FILE is not valid: /nonexistent/otel.yaml: cannot be read: No such file or directory (os error 2); \
         using no telemetry (the SDK stays off until the file is fixed)"
    );
}

#[test]
fn parent_based_with_default_children_is_the_plain_variant() {
    let text = "file_format: '1.1'\ntracer_provider:\n  processors: [{simple: {exporter: {console: }}}]\n  \
                sampler: {parent_based: {root: {always_off: }}}\n";
    let c = load_text("f.yaml", text, &env).unwrap().config;
    assert_eq!(c.sampler, Sampler::ParentBasedAlwaysOff);
}

#[test]
fn unknown_top_level_keys_are_warnings() {
    let text = "file_format: '1.1'\ninstrumentation/development: {}\nextra: 1\n";
    let loaded = load_text("f.yaml", text, &env).unwrap();
    assert_eq!(
        loaded.warnings,
        [
            "line 2: `instrumentation/development` is not read by ferrotel; ignored",
            "line 3: unknown top-level key `extra`; ignored",
        ]
    );
}

#[test]
fn entry_point_components() {
    let text = "file_format: '1.1'\npropagator: {composite: [{ottrace: }]}\ntracer_provider:\n  \
                processors: [{batch: {exporter: {zipkin: }}}]\n  sampler: {my_sampler: }\n";
    let c = load_text("f.yaml", text, &env).unwrap().config;
    assert_eq!(c.propagators, [Propagator::EntryPoint("ottrace".into())]);
    assert_eq!(c.traces_exporters, [Exporter::EntryPoint("zipkin".into())]);
    assert_eq!(
        c.sampler,
        Sampler::EntryPoint {
            name: "my_sampler".into(),
            arg: None
        }
    );
}

#[test]
fn other_resource_detectors_are_entry_points() {
    let text = "file_format: '1.1'\nresource:\n  detection/development:\n    detectors: [{container: }, {process: }]\n";
    let c = load_text("f.yaml", text, &env).unwrap().config;
    assert_eq!(c.resource_detectors.unwrap(), ["container", "process"]);
    let text = "file_format: '1.1'\nresource:\n  detection/development:\n    attributes: {included: [a]}\n";
    assert_eq!(
        load_text("f.yaml", text, &env).unwrap_err().to_string(),
        "f.yaml:4: resource.detection/development.attributes: filtering detected attributes is not supported by ferrotel"
    );
}

#[test]
fn header_values_never_appear_in_errors() {
    let text = "file_format: '1.1'\ntracer_provider:\n  processors:\n    - simple:\n        exporter:\n          \
                otlp_http:\n            headers: [{name: api-key, value: 12345678}]\n";
    let error = load_text("f.yaml", text, &env).unwrap_err().to_string();
    assert_eq!(
        error,
        "f.yaml:7: tracer_provider.processors[0].simple.exporter.otlp_http.headers[0].value: expected a string (quote it)"
    );
}
