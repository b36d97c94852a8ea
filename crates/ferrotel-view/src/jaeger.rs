//! The Jaeger query API's JSON shapes (traces, spans, tags, the `data` envelope), so tools
//! written for Jaeger can read ferrotel view.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{json, Value as Json};

use crate::search::{kind_name, kind_of};
use crate::store::{StoredSpan, TraceId};

/// One trace in Jaeger's shape: spans plus the processes (services) they came from.
pub(crate) fn trace_json(trace_id: &TraceId, spans: &[Arc<StoredSpan>]) -> Json {
    let mut process_ids: HashMap<*const crate::store::Origin, String> = HashMap::new();
    let mut processes = serde_json::Map::new();
    let spans: Vec<Json> = spans
        .iter()
        .map(|stored| {
            let key = Arc::as_ptr(&stored.origin);
            let next_id = format!("p{}", process_ids.len() + 1);
            let process_id = process_ids.entry(key).or_insert_with(|| {
                let origin = &stored.origin;
                let tags: Vec<Json> = origin
                    .resource
                    .attributes
                    .iter()
                    .filter(|kv| kv.key != "service.name")
                    .map(tag)
                    .collect();
                processes.insert(next_id.clone(), json!({"serviceName": origin.service, "tags": tags}));
                next_id
            });
            span_json(stored, process_id)
        })
        .collect();
    json!({
        "traceID": const_hex::encode(trace_id),
        "spans": spans,
        "processes": processes,
        "warnings": null,
    })
}

fn span_json(stored: &StoredSpan, process_id: &str) -> Json {
    let span = &stored.span;
    let trace_id = const_hex::encode(&span.trace_id);
    let mut references = Vec::new();
    if !span.parent_span_id.is_empty() {
        references.push(
            json!({"refType": "CHILD_OF", "traceID": trace_id, "spanID": const_hex::encode(&span.parent_span_id)}),
        );
    }
    for link in &span.links {
        references.push(json!({
            "refType": "FOLLOWS_FROM",
            "traceID": const_hex::encode(&link.trace_id),
            "spanID": const_hex::encode(&link.span_id),
        }));
    }
    let mut tags: Vec<Json> = span.attributes.iter().map(tag).collect();
    let kind = kind_name(kind_of(stored));
    if !kind.is_empty() {
        tags.push(json!({"key": "span.kind", "type": "string", "value": kind}));
    }
    if let Some(status) = &span.status {
        match StatusCode::try_from(status.code) {
            Ok(StatusCode::Error) => {
                tags.push(json!({"key": "otel.status_code", "type": "string", "value": "ERROR"}));
                tags.push(json!({"key": "error", "type": "bool", "value": true}));
            }
            Ok(StatusCode::Ok) => tags.push(json!({"key": "otel.status_code", "type": "string", "value": "OK"})),
            _ => {}
        }
        if !status.message.is_empty() {
            tags.push(json!({"key": "otel.status_description", "type": "string", "value": status.message}));
        }
    }
    if !stored.origin.scope_name.is_empty() {
        tags.push(json!({"key": "otel.scope.name", "type": "string", "value": stored.origin.scope_name}));
    }
    if !stored.origin.scope_version.is_empty() {
        tags.push(json!({"key": "otel.scope.version", "type": "string", "value": stored.origin.scope_version}));
    }
    let logs: Vec<Json> = span
        .events
        .iter()
        .map(|event| {
            let mut fields = vec![json!({"key": "event", "type": "string", "value": event.name})];
            fields.extend(event.attributes.iter().map(tag));
            json!({"timestamp": event.time_unix_nano / 1000, "fields": fields})
        })
        .collect();
    json!({
        "traceID": trace_id,
        "spanID": const_hex::encode(&span.span_id),
        "operationName": span.name,
        "references": references,
        "startTime": span.start_time_unix_nano / 1000,
        "duration": span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) / 1000,
        // Jaeger's flags are the W3C trace flags; only sampled spans are exported, and many
        // SDKs leave OTLP's copy of the flags empty, so the sampled bit is always set.
        "flags": (span.flags & 0xff) | 1,
        "tags": tags,
        "logs": logs,
        "processID": process_id,
        "warnings": null,
    })
}

/// Jaeger tags are flat; arrays and maps become their JSON text, bytes their hex.
fn tag(kv: &KeyValue) -> Json {
    let (kind, value) = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => ("string", json!(s)),
        Some(Value::BoolValue(b)) => ("bool", json!(b)),
        Some(Value::IntValue(i)) => ("int64", json!(i)),
        Some(Value::DoubleValue(d)) => ("float64", double(*d)),
        Some(Value::BytesValue(b)) => ("binary", json!(const_hex::encode(b))),
        other => ("string", json!(plain_json(other).to_string())),
    };
    json!({"key": kv.key, "type": kind, "value": value})
}

pub(crate) fn plain_json(value: Option<&Value>) -> Json {
    match value {
        Some(Value::StringValue(s)) => json!(s),
        Some(Value::BoolValue(b)) => json!(b),
        Some(Value::IntValue(i)) => json!(i),
        Some(Value::DoubleValue(d)) => double(*d),
        Some(Value::BytesValue(b)) => json!(const_hex::encode(b)),
        Some(Value::ArrayValue(array)) => array
            .values
            .iter()
            .map(|v| plain_json(v.value.as_ref()))
            .collect::<Vec<_>>()
            .into(),
        Some(Value::KvlistValue(map)) => map
            .values
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    plain_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        // Dictionary references exist only in the profiles signal; nothing to resolve them against.
        Some(Value::StringValueStrindex(_)) | None => Json::Null,
    }
}

/// A double as JSON; JSON has no NaN or infinities, so those become the protobuf JSON
/// mapping's strings rather than `null`.
pub(crate) fn double(value: f64) -> Json {
    match value {
        v if v.is_finite() => json!(v),
        v if v.is_nan() => json!("NaN"),
        v if v > 0.0 => json!("Infinity"),
        _ => json!("-Infinity"),
    }
}

/// The text a tag filter compares against: the attribute as the tag list shows it.
pub(crate) fn attribute_text(value: &AnyValue) -> String {
    match value.value.as_ref() {
        Some(Value::StringValue(s)) => s.clone(),
        other => plain_json(other).to_string(),
    }
}

pub(crate) fn envelope(data: Vec<Json>) -> Json {
    let total = data.len();
    json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null})
}

/// Jaeger's envelope with per-item errors (a trace id that was not found).
pub(crate) fn envelope_with_errors(data: Vec<Json>, errors: Vec<Json>) -> Json {
    let mut body = envelope(data);
    if !errors.is_empty() {
        body["errors"] = errors.into();
    }
    body
}
