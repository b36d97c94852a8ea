//! The validated document as a [`Config`]: each section of the schema ferrotel implements,
//! with the schema's defaults where a key is omitted or null.

use std::time::Duration;

use super::node::{At, Fields, Read};
use super::yaml::{Node, Scalar, Value};
use super::{Aggregation, InstrumentType, Loaded, View, ViewSelector, ViewStream, FILE_FORMAT_MAJOR};
use crate::parse::{
    parse_endpoint, percent_decode, split_list, AttributeValue, BatchConfig, Compression, Config, ExemplarFilter,
    Exporter, IdGenerator, LogLevel, OtlpConfig, ParentBasedSamplers, ProcessorConfig, Propagator, Protocol, Sampler,
    Signal, TemporalityPreference,
};

const TOP_LEVEL: &[&str] = &[
    "file_format",
    "disabled",
    "log_level",
    "attribute_limits",
    "resource",
    "propagator",
    "tracer_provider",
    "meter_provider",
    "logger_provider",
];

/// Top-level keys of the schema read by other parts of an SDK than ferrotel's (the schema
/// allows any top-level key, so these and unknown ones are warnings, not errors).
const TOP_LEVEL_IGNORED: &[&str] = &["instrumentation/development", "distribution"];

/// The configuration when the file leaves everything out: no variable read except the
/// loader's and the instrumentations' (`OTEL_PYTHON_*`), no exporter, no propagator.
pub(super) fn defaults(lookup: &dyn Fn(&str) -> Option<String>) -> Config {
    let python = Config::from_lookup(|name| match name {
        "OTEL_CONFIG_FILE" => None,
        _ => lookup(name),
    })
    .config
    .python;
    let mut config = Config::from_lookup(|_| None).config;
    config.python = python;
    config.resource_detectors = Some(Vec::new());
    config.propagators = Vec::new();
    config.traces_exporters = Vec::new();
    config.metrics_exporters = Vec::new();
    config.logs_exporters = Vec::new();
    config.traces_processors = Vec::new();
    config.logs_processors = Vec::new();
    config
}

pub(super) fn config(document: &Node, lookup: &dyn Fn(&str) -> Option<String>) -> Read<Loaded> {
    let root = At::root(document);
    let mut warnings = Vec::new();
    let mut known: Vec<&str> = TOP_LEVEL.to_vec();
    if let Value::Map(entries) = &document.value {
        for (key, line, _) in entries {
            if TOP_LEVEL.contains(&key.as_str()) {
                continue;
            }
            known.push(key);
            if TOP_LEVEL_IGNORED.contains(&key.as_str()) {
                warnings.push(format!("line {line}: `{key}` is not read by ferrotel; ignored"));
            } else {
                warnings.push(format!("line {line}: unknown top-level key `{key}`; ignored"));
            }
        }
    }
    let top = root.mapping(&known, false)?;
    file_format(&top)?;

    let mut config = defaults(lookup);
    if let Some(at) = top.get("disabled") {
        config.sdk_disabled = at.bool()?;
    }
    if let Some(at) = top.get("log_level") {
        config.log_level = log_level(&at)?;
    }
    let general = match top.get("attribute_limits") {
        Some(at) => attribute_limits(&at)?,
        None => GeneralLimits::default(),
    };
    if let Some(at) = top.get("resource") {
        resource(&at, &mut config)?;
    }
    if let Some(at) = top.get("propagator") {
        config.propagators = propagators(&at)?;
    }
    config.span_limits.attribute_count = general.count.unwrap_or(config.span_limits.attribute_count);
    config.span_limits.attribute_value_length = general.value_length.or(config.span_limits.attribute_value_length);
    config.log_record_limits.attribute_count = general.count.unwrap_or(config.log_record_limits.attribute_count);
    config.log_record_limits.attribute_value_length =
        general.value_length.or(config.log_record_limits.attribute_value_length);
    if let Some(at) = top.get("tracer_provider") {
        tracer_provider(&at, &mut config)?;
    }
    if let Some(at) = top.get("meter_provider") {
        meter_provider(&at, &mut config, &mut warnings)?;
    }
    if let Some(at) = top.get("logger_provider") {
        logger_provider(&at, &mut config)?;
    }
    Ok(Loaded { config, warnings })
}

fn file_format(top: &Fields<'_>) -> Read<()> {
    let at = top.require("file_format")?;
    let version = match at.scalar_value() {
        Some(Scalar::Str(s)) => s.clone(),
        Some(Scalar::Int(_) | Scalar::Float(_)) => {
            return Err(at.problem("expected a string, found a number (quote the version: \"1.1\")"));
        }
        _ => at.string()?,
    };
    let (major, minor) = version.split_once('.').unwrap_or((&version, ""));
    let minor = minor.split_once('-').map_or(minor, |(m, _)| m);
    if major != FILE_FORMAT_MAJOR || minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(at.problem(format!(
            "{version:?} is not supported: ferrotel reads file_format {FILE_FORMAT_MAJOR}.x (1.0, 1.1, ...)"
        )));
    }
    Ok(())
}

fn log_level(at: &At<'_>) -> Read<LogLevel> {
    let s = at.string()?;
    let base = s.trim_end_matches(['2', '3', '4']);
    Ok(match base {
        "trace" | "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "warn" => LogLevel::Warning,
        "error" | "fatal" => LogLevel::Error,
        _ => {
            return Err(at.problem(format!(
                "{s:?} is not a severity (trace, debug, info, warn, error, fatal, optionally followed by 2, 3 or 4)"
            )))
        }
    })
}

#[derive(Default)]
struct GeneralLimits {
    count: Option<usize>,
    value_length: Option<usize>,
}

fn attribute_limits(at: &At<'_>) -> Read<GeneralLimits> {
    let f = at.mapping(
        &[
            "attribute_value_length_limit",
            "attribute_value_depth_limit",
            "attribute_count_limit",
        ],
        false,
    )?;
    depth_limit(&f)?;
    Ok(GeneralLimits {
        count: f.get("attribute_count_limit").map(|a| a.count(0)).transpose()?,
        value_length: f.get("attribute_value_length_limit").map(|a| a.count(0)).transpose()?,
    })
}

/// ferrotel's attribute values never nest deeper than an array of scalars, which every
/// depth limit allows; the key is validated and has nothing to limit.
fn depth_limit(f: &Fields<'_>) -> Read<()> {
    if let Some(at) = f.get("attribute_value_depth_limit") {
        at.count(1)?;
    }
    Ok(())
}

fn resource(at: &At<'_>, config: &mut Config) -> Read<()> {
    let f = at.mapping(
        &["attributes", "attributes_list", "schema_url", "detection/development"],
        false,
    )?;
    if let Some(list) = f.get("attributes_list") {
        let raw = list.string()?;
        for member in raw.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let pair = member.split_once('=').and_then(|(k, v)| {
                let key = percent_decode(k.trim())?;
                (!key.is_empty()).then_some((key, percent_decode(v.trim())?))
            });
            match pair {
                Some(pair) => config.resource_attributes.push(pair),
                None => return Err(list.problem(format!("member {member:?} is not key=value (percent-encoded)"))),
            }
        }
    }
    if let Some(list) = f.get("attributes") {
        for item in list.list()? {
            let a = item.mapping(&["name", "value", "type"], false)?;
            let name = a.require("name")?.string()?;
            let value_at = a
                .get_even_null("value")
                .ok_or_else(|| item.problem("missing required key `value`"))?;
            let kind = a
                .get("type")
                .map(|t| {
                    t.choice(&[
                        "string",
                        "bool",
                        "int",
                        "double",
                        "string_array",
                        "bool_array",
                        "int_array",
                        "double_array",
                    ])
                })
                .transpose()?;
            if let Some(value) = attribute_value(&value_at, kind)? {
                config.resource_typed_attributes.retain(|(k, _)| *k != name);
                config.resource_typed_attributes.push((name, value));
            }
        }
    }
    if let Some(url) = f.get("schema_url") {
        config.resource_schema_url = Some(url.string()?);
    }
    if let Some(detection) = f.get("detection/development") {
        let d = detection.mapping(&["detectors", "attributes"], false)?;
        if let Some(filter) = d.get("attributes") {
            return Err(filter.problem("filtering detected attributes is not supported by ferrotel"));
        }
        if let Some(list) = d.get("detectors") {
            for item in list.list()? {
                let (name, value) = item.one_of("resource detector", &["host", "process", "os"])?;
                value.mapping(&[], true)?;
                // host, process and os are ferrotel's own; any other name (container, service...)
                // is an `opentelemetry_resource_detector` entry point, as in the variable.
                config.resource_detectors.get_or_insert_default().push(name.to_string());
            }
        }
    }
    let typed_name = config.resource_typed_attributes.iter().find_map(|(k, v)| match v {
        AttributeValue::Str(s) if k == "service.name" => Some(s.clone()),
        _ => None,
    });
    let listed_name = config
        .resource_attributes
        .iter()
        .rev()
        .find(|(k, _)| k == "service.name")
        .map(|(_, v)| v.clone());
    if let Some(name) = typed_name.or(listed_name) {
        config.service_name = name;
    }
    Ok(())
}

/// `None` for a null value (the attribute is left out).
fn attribute_value(at: &At<'_>, kind: Option<&str>) -> Read<Option<AttributeValue>> {
    if at.is_null() {
        return Ok(None);
    }
    let scalars = |at: &At<'_>| -> Read<Vec<Scalar>> {
        match &at.node.value {
            Value::Seq(items) if !items.is_empty() => items
                .iter()
                .map(|n| match &n.value {
                    Value::Scalar(s) if *s != Scalar::Null => Ok(s.clone()),
                    _ => Err(at.problem("array members must be strings, booleans or numbers")),
                })
                .collect(),
            _ => Err(at.problem("expected a non-empty list")),
        }
    };
    let wrong = |expected: &str| at.problem(format!("expected {expected} for this type"));
    let inferred = match kind {
        Some(kind) => kind,
        None => match &at.node.value {
            Value::Scalar(Scalar::Str(_)) => "string",
            Value::Scalar(Scalar::Bool(_)) => "bool",
            Value::Scalar(Scalar::Int(_)) => "int",
            Value::Scalar(Scalar::Float(_)) => "double",
            Value::Seq(items) => match items.first().map(|n| &n.value) {
                Some(Value::Scalar(Scalar::Bool(_))) => "bool_array",
                Some(Value::Scalar(Scalar::Int(_))) => "int_array",
                Some(Value::Scalar(Scalar::Float(_))) => "double_array",
                _ => "string_array",
            },
            _ => return Err(at.problem("expected a string, boolean, number or list")),
        },
    };
    let value = match inferred {
        "string" => AttributeValue::Str(match at.scalar_value() {
            Some(Scalar::Str(s)) => s.clone(),
            Some(Scalar::Bool(b)) => b.to_string(),
            Some(Scalar::Int(i)) => i.to_string(),
            Some(Scalar::Float(f)) => f.to_string(),
            _ => return Err(wrong("a string")),
        }),
        "bool" => AttributeValue::Bool(at.bool()?),
        "int" => AttributeValue::Int(at.int()?),
        "double" => AttributeValue::Double(at.number()?),
        "string_array" => AttributeValue::StrArray(
            scalars(at)?
                .into_iter()
                .map(|s| match s {
                    Scalar::Str(s) => Ok(s),
                    _ => Err(wrong("a list of strings")),
                })
                .collect::<Read<_>>()?,
        ),
        "bool_array" => AttributeValue::BoolArray(
            scalars(at)?
                .into_iter()
                .map(|s| match s {
                    Scalar::Bool(b) => Ok(b),
                    _ => Err(wrong("a list of booleans")),
                })
                .collect::<Read<_>>()?,
        ),
        "int_array" => AttributeValue::IntArray(
            scalars(at)?
                .into_iter()
                .map(|s| match s {
                    Scalar::Int(i) => Ok(i),
                    _ => Err(wrong("a list of integers")),
                })
                .collect::<Read<_>>()?,
        ),
        _ => AttributeValue::DoubleArray(
            scalars(at)?
                .into_iter()
                .map(|s| match s {
                    Scalar::Int(i) => Ok(i as f64),
                    Scalar::Float(f) => Ok(f),
                    _ => Err(wrong("a list of numbers")),
                })
                .collect::<Read<_>>()?,
        ),
    };
    Ok(Some(value))
}

fn propagator_named(name: &str) -> Propagator {
    match name {
        "tracecontext" => Propagator::TraceContext,
        "baggage" => Propagator::Baggage,
        "b3" => Propagator::B3,
        "b3multi" => Propagator::B3Multi,
        "jaeger" => Propagator::Jaeger,
        "xray" => Propagator::XRay,
        other => Propagator::EntryPoint(other.to_string()),
    }
}

fn propagators(at: &At<'_>) -> Read<Vec<Propagator>> {
    let f = at.mapping(&["composite", "composite_list"], false)?;
    let mut out: Vec<Propagator> = Vec::new();
    if let Some(list) = f.get("composite") {
        for item in list.list()? {
            let known = ["tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray"];
            let (name, value) = item.one_of("propagator", &known)?;
            if !value.is_null() {
                value.mapping(&[], true)?;
            }
            let p = propagator_named(name);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    if let Some(list) = f.get("composite_list") {
        for name in split_list(&list.string()?) {
            if name == "none" {
                continue;
            }
            let p = propagator_named(&name);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn tracer_provider(at: &At<'_>, config: &mut Config) -> Read<()> {
    let f = at.mapping(&["processors", "limits", "sampler", "id_generator"], false)?;
    config.traces_processors = processors(&f.require("processors")?, Signal::Traces, config.bsp)?;
    config.traces_exporters = exporters_of(&config.traces_processors);
    if let Some(limits) = f.get("limits") {
        let l = limits.mapping(
            &[
                "attribute_value_length_limit",
                "attribute_value_depth_limit",
                "attribute_count_limit",
                "event_count_limit",
                "link_count_limit",
                "event_attribute_count_limit",
                "link_attribute_count_limit",
            ],
            false,
        )?;
        depth_limit(&l)?;
        let s = &mut config.span_limits;
        let count = |key: &str, current: usize| l.get(key).map_or(Ok(current), |a| a.count(0));
        s.attribute_count = count("attribute_count_limit", s.attribute_count)?;
        s.event_count = count("event_count_limit", s.event_count)?;
        s.link_count = count("link_count_limit", s.link_count)?;
        s.event_attribute_count = count("event_attribute_count_limit", s.event_attribute_count)?;
        s.link_attribute_count = count("link_attribute_count_limit", s.link_attribute_count)?;
        if let Some(a) = l.get("attribute_value_length_limit") {
            s.attribute_value_length = Some(a.count(0)?);
        }
    }
    if let Some(sampler_at) = f.get("sampler") {
        config.sampler = sampler(&sampler_at, true)?;
    }
    if let Some(generator) = f.get("id_generator") {
        let (name, value) = generator.one_of("id generator", &["random"])?;
        value.mapping(&[], true)?;
        config.id_generator = match name {
            "random" => IdGenerator::Random,
            "xray" => IdGenerator::XRay,
            other => IdGenerator::EntryPoint(other.to_string()),
        };
    }
    Ok(())
}

const SAMPLERS: &[&str] = &["always_on", "always_off", "trace_id_ratio_based", "parent_based"];

/// `top`: whether this is the provider's sampler (an entry point may only be that).
fn sampler(at: &At<'_>, top: bool) -> Read<Sampler> {
    let (name, value) = at.one_of("sampler", SAMPLERS)?;
    Ok(match name {
        "always_on" => {
            value.mapping(&[], true)?;
            Sampler::AlwaysOn
        }
        "always_off" => {
            value.mapping(&[], true)?;
            Sampler::AlwaysOff
        }
        "trace_id_ratio_based" => {
            let f = value.mapping(&["ratio"], true)?;
            let ratio = match f.get("ratio") {
                None => 1.0,
                Some(r) => {
                    let ratio = r.number()?;
                    if !(0.0..=1.0).contains(&ratio) {
                        return Err(r.problem(format!("must be between 0 and 1, found {ratio}")));
                    }
                    ratio
                }
            };
            Sampler::TraceIdRatio(ratio)
        }
        "parent_based" => {
            let f = value.mapping(
                &[
                    "root",
                    "remote_parent_sampled",
                    "remote_parent_not_sampled",
                    "local_parent_sampled",
                    "local_parent_not_sampled",
                ],
                true,
            )?;
            let sub = |key: &str, default: Sampler| f.get(key).map_or(Ok(default), |a| sampler(&a, false));
            let samplers = ParentBasedSamplers {
                root: sub("root", Sampler::AlwaysOn)?,
                remote_parent_sampled: sub("remote_parent_sampled", Sampler::AlwaysOn)?,
                remote_parent_not_sampled: sub("remote_parent_not_sampled", Sampler::AlwaysOff)?,
                local_parent_sampled: sub("local_parent_sampled", Sampler::AlwaysOn)?,
                local_parent_not_sampled: sub("local_parent_not_sampled", Sampler::AlwaysOff)?,
            };
            let follows_parent = samplers.remote_parent_sampled == Sampler::AlwaysOn
                && samplers.local_parent_sampled == Sampler::AlwaysOn
                && samplers.remote_parent_not_sampled == Sampler::AlwaysOff
                && samplers.local_parent_not_sampled == Sampler::AlwaysOff;
            match (&samplers.root, follows_parent) {
                (Sampler::AlwaysOn, true) => Sampler::ParentBasedAlwaysOn,
                (Sampler::AlwaysOff, true) => Sampler::ParentBasedAlwaysOff,
                (Sampler::TraceIdRatio(r), true) => Sampler::ParentBasedTraceIdRatio(*r),
                _ => Sampler::ParentBased(Box::new(samplers)),
            }
        }
        other if top && value.is_null() => Sampler::EntryPoint {
            name: other.to_string(),
            arg: None,
        },
        other if top => return Err(value.problem(format!("sampler `{other}` (an entry point) takes no settings"))),
        other => {
            return Err(value.problem(format!(
                "sampler `{other}`: inside parent_based only {} are supported",
                SAMPLERS.join(", ")
            )))
        }
    })
}

fn exporters_of(processors: &[ProcessorConfig]) -> Vec<Exporter> {
    let mut out: Vec<Exporter> = Vec::new();
    for p in processors {
        if !out.contains(&p.exporter) {
            out.push(p.exporter.clone());
        }
    }
    out
}

fn processors(at: &At<'_>, signal: Signal, defaults: BatchConfig) -> Read<Vec<ProcessorConfig>> {
    let what = match signal {
        Signal::Logs => "log record processor",
        _ => "span processor",
    };
    let mut out = Vec::new();
    for item in at.list()? {
        let (kind, value) = item.one_of(what, &["batch", "simple"])?;
        let processor = match kind {
            "batch" => {
                let f = value.mapping(
                    &[
                        "schedule_delay",
                        "export_timeout",
                        "max_queue_size",
                        "max_export_batch_size",
                        "exporter",
                    ],
                    false,
                )?;
                let millis = |key: &str, d: Duration| {
                    f.get(key)
                        .map_or(Ok(d), |a| a.count(0).map(|ms| Duration::from_millis(ms as u64)))
                };
                let size = |key: &str, d: usize| f.get(key).map_or(Ok(d), |a| a.count(1));
                let batch = BatchConfig {
                    schedule_delay: millis("schedule_delay", defaults.schedule_delay)?,
                    export_timeout: millis("export_timeout", defaults.export_timeout)?,
                    max_queue_size: size("max_queue_size", defaults.max_queue_size)?,
                    max_export_batch_size: size("max_export_batch_size", defaults.max_export_batch_size)?,
                };
                if batch.max_export_batch_size > batch.max_queue_size {
                    let at = f.get("max_export_batch_size").unwrap_or_else(|| value.clone());
                    return Err(at.problem(format!(
                        "max_export_batch_size {} is larger than max_queue_size {}",
                        batch.max_export_batch_size, batch.max_queue_size
                    )));
                }
                let (exporter, otlp) = exporter(&f.require("exporter")?, signal)?;
                ProcessorConfig {
                    exporter,
                    otlp,
                    batch: Some(batch),
                }
            }
            "simple" => {
                let f = value.mapping(&["exporter"], false)?;
                let (exporter, otlp) = exporter(&f.require("exporter")?, signal)?;
                ProcessorConfig {
                    exporter,
                    otlp,
                    batch: None,
                }
            }
            other => {
                return Err(value.problem(format!(
                    "{what} `{other}` is not supported by ferrotel (it has batch, simple)"
                )))
            }
        };
        out.push(processor);
    }
    Ok(out)
}

/// A span, log record or metric exporter: its kind and its OTLP settings (the defaults when
/// it is not OTLP).
fn exporter(at: &At<'_>, signal: Signal) -> Read<(Exporter, OtlpConfig)> {
    let what = match signal {
        Signal::Traces => "span exporter",
        Signal::Logs => "log record exporter",
        Signal::Metrics => "metric exporter",
    };
    let (name, value) = at.one_of(what, &["otlp_http", "otlp_grpc", "console"])?;
    let metric_keys: &[&str] = match signal {
        Signal::Metrics => &["temporality_preference", "default_histogram_aggregation"],
        _ => &[],
    };
    Ok(match name {
        "otlp_http" | "otlp_grpc" => (Exporter::Otlp, otlp(&value, signal, name == "otlp_grpc", metric_keys)?),
        "console" => {
            value.mapping(metric_keys, true)?;
            (Exporter::Console, otlp_defaults(signal, Protocol::HttpProtobuf))
        }
        other if value.is_null() => (
            Exporter::EntryPoint(other.to_string()),
            otlp_defaults(signal, Protocol::HttpProtobuf),
        ),
        other => return Err(value.problem(format!("{what} `{other}` (an entry point) takes no settings"))),
    })
}

fn otlp_defaults(signal: Signal, protocol: Protocol) -> OtlpConfig {
    let endpoint = match protocol {
        Protocol::Grpc => "http://localhost:4317".to_string(),
        _ => format!(
            "http://localhost:4318/{}",
            match signal {
                Signal::Traces => "v1/traces",
                Signal::Metrics => "v1/metrics",
                Signal::Logs => "v1/logs",
            }
        ),
    };
    OtlpConfig {
        endpoint,
        protocol,
        headers: Vec::new(),
        timeout: Duration::from_secs(10),
        compression: Compression::None,
        certificate: None,
        client_key: None,
        client_certificate: None,
        insecure: false,
    }
}

fn otlp(at: &At<'_>, signal: Signal, grpc: bool, metric_keys: &[&str]) -> Read<OtlpConfig> {
    let mut known = vec!["endpoint", "tls", "headers", "headers_list", "compression", "timeout"];
    if !grpc {
        known.push("encoding");
    }
    known.extend_from_slice(metric_keys);
    let f = at.mapping(&known, true)?;
    let protocol = match (grpc, f.get("encoding")) {
        (true, _) => Protocol::Grpc,
        (false, None) => Protocol::HttpProtobuf,
        (false, Some(e)) => match e.choice(&["protobuf", "json"])? {
            "json" => Protocol::HttpJson,
            _ => Protocol::HttpProtobuf,
        },
    };
    let mut config = otlp_defaults(signal, protocol);
    if let Some(tls) = f.get("tls") {
        let mut keys = vec!["ca_file", "key_file", "cert_file"];
        if grpc {
            keys.push("insecure");
        }
        let t = tls.mapping(&keys, true)?;
        config.certificate = t.get("ca_file").map(|a| a.string()).transpose()?;
        config.client_key = t.get("key_file").map(|a| a.string()).transpose()?;
        config.client_certificate = t.get("cert_file").map(|a| a.string()).transpose()?;
        config.insecure = t.get("insecure").map(|a| a.bool()).transpose()?.unwrap_or(false);
    }
    if let Some(endpoint) = f.get("endpoint") {
        let value = endpoint.string()?;
        let Some(url) = parse_endpoint(&value, grpc, config.insecure) else {
            return Err(endpoint.problem(format!("{value:?} is not an http:// or https:// URL")));
        };
        config.endpoint = if grpc {
            format!("{}://{}", url.scheme, url.authority)
        } else {
            value.clone()
        };
    }
    if let Some(list) = f.get("headers_list") {
        let raw = list.string()?;
        for member in raw.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let pair = member.split_once('=').and_then(|(k, v)| {
                let key = percent_decode(k.trim())?;
                (!key.is_empty()).then_some((key, percent_decode(v.trim())?))
            });
            // Header values are secrets: the member is not repeated in the error.
            let pair = pair.ok_or_else(|| list.problem("a member is not key=value (percent-encoded)"))?;
            config.headers.push(pair);
        }
    }
    if let Some(list) = f.get("headers") {
        for item in list.list()? {
            let h = item.mapping(&["name", "value"], false)?;
            let name = h.require("name")?.string()?;
            // Header values are secrets: a wrong type is reported without the value.
            let value = match h.get("value") {
                Some(v) => match v.scalar_value() {
                    Some(Scalar::Str(s)) => s.clone(),
                    _ => return Err(v.problem("expected a string (quote it)")),
                },
                None => continue,
            };
            // `headers` wins over `headers_list` for the same name.
            config.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
            config.headers.push((name, value));
        }
    }
    if let Some(c) = f.get("compression") {
        config.compression = match c.choice(&["gzip", "deflate", "none"])? {
            "gzip" => Compression::Gzip,
            "deflate" => Compression::Deflate,
            _ => Compression::None,
        };
    }
    if let Some(t) = f.get("timeout") {
        config.timeout = Duration::from_millis(t.count(0)? as u64);
    }
    Ok(config)
}

fn meter_provider(at: &At<'_>, config: &mut Config, warnings: &mut Vec<String>) -> Read<()> {
    let f = at.mapping(&["readers", "views", "exemplar_filter"], false)?;
    let mut schedule: Option<(Duration, Duration, At<'_>)> = None;
    let mut temporality: Option<(TemporalityPreference, At<'_>)> = None;
    let mut otlp_reader = false;
    config.metrics_exporters = Vec::new();
    for item in f.require("readers")?.list()? {
        let (kind, value) = item.one_of("metric reader", &["periodic", "pull"])?;
        match kind {
            "periodic" => {
                let r = value.mapping(&["interval", "timeout", "exporter"], false)?;
                let millis = |key: &str, d: u64| {
                    r.get(key)
                        .map_or(Ok(d), |a| a.count(0).map(|ms| ms as u64))
                        .map(Duration::from_millis)
                };
                let interval = millis("interval", 60_000)?;
                let timeout = millis("timeout", 30_000)?;
                match &schedule {
                    Some((i, t, _)) if (*i, *t) != (interval, timeout) => {
                        return Err(value.problem(format!(
                            "ferrotel collects every periodic reader on one schedule: interval {} ms and timeout {} ms differ from the first reader's {} ms and {} ms",
                            interval.as_millis(),
                            timeout.as_millis(),
                            i.as_millis(),
                            t.as_millis()
                        )))
                    }
                    _ => schedule = Some((interval, timeout, value.clone())),
                }
                let exporter_at = r.require("exporter")?;
                let (exporter, otlp) = exporter(&exporter_at, Signal::Metrics)?;
                let (_, settings) = exporter_at.one_of("metric exporter", &[])?;
                if let Some(pref) = metric_exporter_settings(&settings)? {
                    match &temporality {
                        Some((t, _)) if *t != pref.0 => {
                            return Err(pref.1.problem(
                                "ferrotel applies one temporality preference to every reader; this one differs from an earlier reader's",
                            ))
                        }
                        _ => temporality = Some(pref),
                    }
                }
                if exporter == Exporter::Otlp {
                    if otlp_reader {
                        return Err(exporter_at.problem(
                            "ferrotel exports metrics to one OTLP destination; a second OTLP reader is not supported",
                        ));
                    }
                    otlp_reader = true;
                    config.otlp_metrics = otlp;
                }
                if !config.metrics_exporters.contains(&exporter) {
                    config.metrics_exporters.push(exporter);
                }
            }
            _ => {
                let r = value.mapping(&["exporter"], false)?;
                let exporter_at = r.require("exporter")?;
                let (name, settings) = exporter_at.one_of("pull metric exporter", &["prometheus/development"])?;
                if name != "prometheus/development" {
                    return Err(settings.problem(format!(
                        "pull metric exporter `{name}` is not supported by ferrotel (it has prometheus/development)"
                    )));
                }
                if config.metrics_exporters.contains(&Exporter::Prometheus) {
                    return Err(
                        exporter_at.problem("ferrotel serves one Prometheus endpoint; a second is not supported")
                    );
                }
                let p = settings.mapping(&["host", "port"], true)?;
                if let Some(host) = p.get("host") {
                    config.prometheus.host = host.string()?;
                }
                if let Some(port) = p.get("port") {
                    let n = port.count(0)?;
                    config.prometheus.port =
                        u16::try_from(n).map_err(|_| port.problem(format!("{n} is not a port (0-65535)")))?;
                }
                config.metrics_exporters.push(Exporter::Prometheus);
            }
        }
    }
    if let Some((interval, timeout, _)) = schedule {
        config.metric_reader.export_interval = interval;
        config.metric_reader.export_timeout = timeout;
    }
    if let Some((t, _)) = temporality {
        config.metric_reader.temporality_preference = t;
    }
    if let Some(filter) = f.get("exemplar_filter") {
        config.metric_reader.exemplar_filter = match filter.choice(&["always_on", "always_off", "trace_based"])? {
            "always_on" => ExemplarFilter::AlwaysOn,
            "always_off" => ExemplarFilter::AlwaysOff,
            _ => ExemplarFilter::TraceBased,
        };
    }
    if let Some(list) = f.get("views") {
        for (index, item) in list.list()?.iter().enumerate() {
            let view = view(item)?;
            let stream = &view.stream;
            let mut unapplied = Vec::new();
            if !stream.attribute_keys_excluded.is_empty() {
                unapplied.push("attribute_keys.excluded");
            }
            if stream.aggregation_cardinality_limit.is_some() {
                unapplied.push("aggregation_cardinality_limit");
            }
            let min_max_off = matches!(
                stream.aggregation,
                Some(Aggregation::ExplicitBucketHistogram {
                    record_min_max: false,
                    ..
                }) | Some(Aggregation::Base2ExponentialBucketHistogram {
                    record_min_max: false,
                    ..
                })
            );
            if min_max_off {
                unapplied.push("record_min_max: false");
            }
            if !unapplied.is_empty() {
                warnings.push(format!(
                    "line {}: meter_provider.views[{index}]: {} not applied (the view applies without it)",
                    item.line,
                    unapplied.join(", ")
                ));
            }
            config.views.push(view);
        }
    }
    Ok(())
}

/// The temporality preference and histogram aggregation a metric exporter names.
fn metric_exporter_settings<'n>(settings: &At<'n>) -> Read<Option<(TemporalityPreference, At<'n>)>> {
    let Value::Map(_) = settings.node.value else {
        return Ok(None);
    };
    let f = settings.mapping(
        &[
            "temporality_preference",
            "default_histogram_aggregation",
            "endpoint",
            "tls",
            "headers",
            "headers_list",
            "compression",
            "timeout",
            "encoding",
        ],
        true,
    )?;
    if let Some(h) = f.get("default_histogram_aggregation") {
        if h.choice(&["explicit_bucket_histogram", "base2_exponential_bucket_histogram"])?
            != "explicit_bucket_histogram"
        {
            return Err(h.problem("base2_exponential_bucket_histogram is not supported by ferrotel yet"));
        }
    }
    let Some(t) = f.get("temporality_preference") else {
        return Ok(None);
    };
    let pref = match t.choice(&["cumulative", "delta", "low_memory"])? {
        "delta" => TemporalityPreference::Delta,
        "low_memory" => TemporalityPreference::LowMemory,
        _ => TemporalityPreference::Cumulative,
    };
    Ok(Some((pref, t)))
}

fn view(at: &At<'_>) -> Read<View> {
    let f = at.mapping(&["selector", "stream"], false)?;
    let text = |f: &Fields<'_>, key: &str| f.get(key).map(|a| a.string()).transpose();
    let s = f.require("selector")?;
    let s = s.mapping(
        &[
            "instrument_name",
            "instrument_type",
            "unit",
            "meter_name",
            "meter_version",
            "meter_schema_url",
        ],
        false,
    )?;
    let instrument_type = match s.get("instrument_type") {
        None => None,
        Some(t) => Some(
            match t.choice(&[
                "counter",
                "gauge",
                "histogram",
                "observable_counter",
                "observable_gauge",
                "observable_up_down_counter",
                "up_down_counter",
            ])? {
                "counter" => InstrumentType::Counter,
                "gauge" => InstrumentType::Gauge,
                "histogram" => InstrumentType::Histogram,
                "observable_counter" => InstrumentType::ObservableCounter,
                "observable_gauge" => InstrumentType::ObservableGauge,
                "observable_up_down_counter" => InstrumentType::ObservableUpDownCounter,
                _ => InstrumentType::UpDownCounter,
            },
        ),
    };
    let selector = ViewSelector {
        instrument_name: text(&s, "instrument_name")?,
        instrument_type,
        unit: text(&s, "unit")?,
        meter_name: text(&s, "meter_name")?,
        meter_version: text(&s, "meter_version")?,
        meter_schema_url: text(&s, "meter_schema_url")?,
    };
    let st = f.require("stream")?;
    let st = st.mapping(
        &[
            "name",
            "description",
            "aggregation",
            "aggregation_cardinality_limit",
            "attribute_keys",
        ],
        false,
    )?;
    let mut stream = ViewStream {
        name: text(&st, "name")?,
        description: text(&st, "description")?,
        aggregation: st.get("aggregation").map(|a| aggregation(&a)).transpose()?,
        aggregation_cardinality_limit: st
            .get("aggregation_cardinality_limit")
            .map(|a| a.count(1))
            .transpose()?,
        ..ViewStream::default()
    };
    if let Some(keys) = st.get("attribute_keys") {
        let k = keys.mapping(&["included", "excluded"], false)?;
        let strings = |at: At<'_>| -> Read<Vec<String>> { at.list()?.iter().map(|a| a.string()).collect() };
        stream.attribute_keys_included = k.get("included").map(strings).transpose()?;
        stream.attribute_keys_excluded = k.get("excluded").map(strings).transpose()?.unwrap_or_default();
    }
    Ok(View { selector, stream })
}

fn aggregation(at: &At<'_>) -> Read<Aggregation> {
    let known = [
        "default",
        "drop",
        "sum",
        "last_value",
        "explicit_bucket_histogram",
        "base2_exponential_bucket_histogram",
    ];
    let (name, value) = at.one_of("aggregation", &known)?;
    Ok(match name {
        "default" | "drop" | "sum" | "last_value" => {
            value.mapping(&[], true)?;
            match name {
                "default" => Aggregation::Default,
                "drop" => Aggregation::Drop,
                "sum" => Aggregation::Sum,
                _ => Aggregation::LastValue,
            }
        }
        "explicit_bucket_histogram" => {
            let f = value.mapping(&["boundaries", "record_min_max"], true)?;
            let boundaries = match f.get("boundaries") {
                None => None,
                Some(b) => {
                    let items = match &b.node.value {
                        Value::Seq(items) if items.is_empty() => Vec::new(),
                        _ => b.list()?,
                    };
                    let values = items.iter().map(|a| a.number()).collect::<Read<Vec<f64>>>()?;
                    if values.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(b.problem("boundaries must increase"));
                    }
                    Some(values)
                }
            };
            Aggregation::ExplicitBucketHistogram {
                boundaries,
                record_min_max: f.get("record_min_max").map(|a| a.bool()).transpose()?.unwrap_or(true),
            }
        }
        "base2_exponential_bucket_histogram" => {
            let f = value.mapping(&["max_scale", "max_size", "record_min_max"], true)?;
            let max_scale = match f.get("max_scale") {
                None => 20,
                Some(s) => {
                    let n = s.int()?;
                    if !(-10..=20).contains(&n) {
                        return Err(s.problem(format!("must be between -10 and 20, found {n}")));
                    }
                    n as i32
                }
            };
            Aggregation::Base2ExponentialBucketHistogram {
                max_scale,
                max_size: f.get("max_size").map_or(Ok(160), |a| a.count(2))?,
                record_min_max: f.get("record_min_max").map(|a| a.bool()).transpose()?.unwrap_or(true),
            }
        }
        other => return Err(value.problem(format!("aggregation `{other}` is not one of: {}", known.join(", ")))),
    })
}

fn logger_provider(at: &At<'_>, config: &mut Config) -> Read<()> {
    let f = at.mapping(&["processors", "limits"], false)?;
    config.logs_processors = processors(&f.require("processors")?, Signal::Logs, config.blrp)?;
    config.logs_exporters = exporters_of(&config.logs_processors);
    if let Some(limits) = f.get("limits") {
        let l = limits.mapping(
            &[
                "attribute_value_length_limit",
                "attribute_value_depth_limit",
                "attribute_count_limit",
            ],
            false,
        )?;
        depth_limit(&l)?;
        if let Some(a) = l.get("attribute_count_limit") {
            config.log_record_limits.attribute_count = a.count(0)?;
        }
        if let Some(a) = l.get("attribute_value_length_limit") {
            config.log_record_limits.attribute_value_length = Some(a.count(0)?);
        }
    }
    Ok(())
}
