//! The Jaeger query API's JSON shapes and its trace search (`TraceQuery`: Jaeger's parameters and
//! matching rules), so tools written for Jaeger can read ferrotel view.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{json, Value as Json};

use crate::store::{Store, StoredSpan, TraceId};

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
    let kind = SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified);
    if let Some(kind) = jaeger_kind(kind) {
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
        "flags": span.flags & 0xff,
        "tags": tags,
        "logs": logs,
        "processID": process_id,
        "warnings": null,
    })
}

fn jaeger_kind(kind: SpanKind) -> Option<&'static str> {
    match kind {
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
        SpanKind::Internal => Some("internal"),
        SpanKind::Unspecified => None,
    }
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

/// `/api/traces` search parameters, Jaeger's names and units (µs since the epoch, Go durations).
#[derive(Default)]
pub(crate) struct TraceQuery {
    pub(crate) service: Option<String>,
    pub(crate) operation: Option<String>,
    pub(crate) tags: Vec<(String, String)>,
    pub(crate) min_duration_ns: Option<u64>,
    pub(crate) max_duration_ns: Option<u64>,
    pub(crate) start_ns: Option<u64>,
    pub(crate) end_ns: Option<u64>,
    /// ferrotel's addition: only spans with this status code (`error`, `ok`, `unset`).
    pub(crate) status: Option<StatusCode>,
    pub(crate) limit: usize,
}

impl TraceQuery {
    pub(crate) fn parse(params: &HashMap<String, String>) -> Result<Self, String> {
        let non_empty = |key: &str| params.get(key).filter(|v| !v.is_empty());
        let micros = |key: &str| -> Result<Option<u64>, String> {
            non_empty(key)
                .map(|v| {
                    v.parse::<u64>()
                        .map(|us| us.saturating_mul(1000))
                        .map_err(|_| format!("{key}: not a number: {v}"))
                })
                .transpose()
        };
        let duration = |key: &str| {
            non_empty(key)
                .map(|v| parse_go_duration(v).ok_or(format!("{key}: not a duration: {v}")))
                .transpose()
        };
        Ok(TraceQuery {
            service: non_empty("service").cloned(),
            operation: non_empty("operation").cloned(),
            tags: non_empty("tags")
                .map(|t| parse_tags(t))
                .transpose()?
                .unwrap_or_default(),
            min_duration_ns: duration("minDuration")?,
            max_duration_ns: duration("maxDuration")?,
            start_ns: micros("start")?,
            end_ns: micros("end")?,
            status: non_empty("status")
                .map(|v| match v.to_ascii_lowercase().as_str() {
                    "error" => Ok(StatusCode::Error),
                    "ok" => Ok(StatusCode::Ok),
                    "unset" => Ok(StatusCode::Unset),
                    _ => Err(format!("status: expected error, ok or unset, got {v}")),
                })
                .transpose()?,
            limit: match non_empty("limit") {
                Some(v) => v.parse().map_err(|_| format!("limit: not a number: {v}"))?,
                None => 20,
            },
        })
    }

    /// Jaeger semantics: a trace matches when one of its spans satisfies every condition.
    pub(crate) fn matches(&self, spans: &[Arc<StoredSpan>]) -> bool {
        spans.iter().any(|s| self.span_matches(s))
    }

    pub(crate) fn span_matches(&self, stored: &StoredSpan) -> bool {
        let span = &stored.span;
        let duration = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano);
        let status = span.status.as_ref().map_or(StatusCode::Unset as i32, |s| s.code);
        self.service.as_ref().is_none_or(|s| *s == stored.origin.service)
            && self.operation.as_ref().is_none_or(|o| *o == span.name)
            && self.min_duration_ns.is_none_or(|min| duration >= min)
            && self.max_duration_ns.is_none_or(|max| duration <= max)
            && self.start_ns.is_none_or(|start| span.start_time_unix_nano >= start)
            && self.end_ns.is_none_or(|end| span.start_time_unix_nano <= end)
            && self.status.is_none_or(|want| want as i32 == status)
            && self.tags.iter().all(|(key, want)| {
                span.attributes
                    .iter()
                    .chain(&stored.origin.resource.attributes)
                    .filter(|kv| kv.key == *key)
                    .any(|kv| kv.value.as_ref().map(attribute_text).as_deref() == Some(want.as_str()))
            })
    }

    pub(crate) fn search(&self, store: &Store) -> Json {
        let data: Vec<Json> = store
            .traces_newest_first(|spans| self.matches(spans))
            .take(self.limit)
            .map(|(id, spans)| trace_json(id, spans))
            .collect();
        envelope(data)
    }

    /// The trace list's rows: one line per matching trace instead of every span, plus which
    /// spans matched so the UI can point at them.
    pub(crate) fn summaries(&self, store: &Store) -> Json {
        let data: Vec<Json> = store
            .traces_newest_first(|spans| self.matches(spans))
            .take(self.limit)
            .map(|(id, spans)| self.summary(id, spans))
            .collect();
        envelope(data)
    }

    fn summary(&self, trace_id: &TraceId, spans: &[Arc<StoredSpan>]) -> Json {
        let start = spans.iter().map(|s| s.span.start_time_unix_nano).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.span.end_time_unix_nano).max().unwrap_or(0);
        let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span.span_id.as_slice()).collect();
        // The root is the span without a parent; with the root missing (not yet arrived, or
        // evicted), the earliest span whose parent is absent stands in.
        let root = spans
            .iter()
            .filter(|s| !ids.contains(s.span.parent_span_id.as_slice()))
            .min_by_key(|s| (!s.span.parent_span_id.is_empty(), s.span.start_time_unix_nano));
        let is_error = |s: &&Arc<StoredSpan>| {
            s.span
                .status
                .as_ref()
                .is_some_and(|st| st.code == StatusCode::Error as i32)
        };
        let mut services: Vec<&str> = spans.iter().map(|s| s.origin.service.as_str()).collect();
        services.sort_unstable();
        services.dedup();
        json!({
            "traceID": const_hex::encode(trace_id),
            "rootService": root.map(|s| s.origin.service.as_str()),
            "rootName": root.map(|s| s.span.name.as_str()),
            "rootMissing": root.is_none_or(|s| !s.span.parent_span_id.is_empty()),
            "startTime": start / 1000,
            "duration": end.saturating_sub(start) / 1000,
            "spanCount": spans.len(),
            "errorCount": spans.iter().filter(is_error).count(),
            "services": services,
            "matchedSpanIDs": if self.selects_spans() { self.matching_span_ids(spans) } else { Vec::new() },
        })
    }

    /// Whether any condition narrows spans down; without one every span matches trivially.
    fn selects_spans(&self) -> bool {
        self.service.is_some()
            || self.operation.is_some()
            || !self.tags.is_empty()
            || self.min_duration_ns.is_some()
            || self.max_duration_ns.is_some()
            || self.start_ns.is_some()
            || self.end_ns.is_some()
            || self.status.is_some()
    }

    pub(crate) fn matching_span_ids(&self, spans: &[Arc<StoredSpan>]) -> Vec<String> {
        spans
            .iter()
            .filter(|s| self.span_matches(s))
            .map(|s| const_hex::encode(&s.span.span_id))
            .collect()
    }
}

pub(crate) fn envelope(data: Vec<Json>) -> Json {
    let total = data.len();
    json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null})
}

/// Jaeger's UI sends tags as a JSON object; older clients send logfmt `k=v k2=v2`.
fn parse_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.trim_start().starts_with('{') {
        let map: HashMap<String, Json> = serde_json::from_str(text).map_err(|e| format!("tags: {e}"))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
            .collect());
    }
    text.split_whitespace()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or(format!("tags: expected key=value, got {pair}"))
        })
        .collect()
}

/// Go's duration syntax as Jaeger clients send it: "1.5ms", "100us", "2s", "1m30s".
pub(crate) fn parse_go_duration(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    Some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1.5ms"), Some(1_500_000));
        assert_eq!(parse_go_duration("100us"), Some(100_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("5 parsecs"), None);
    }

    #[test]
    fn tags_in_both_syntaxes() {
        let mut json = parse_tags(r#"{"http.response.status_code":"500","error":true}"#).unwrap();
        json.sort();
        assert_eq!(
            json,
            [
                ("error".into(), "true".into()),
                ("http.response.status_code".into(), "500".into())
            ]
        );
        assert_eq!(
            parse_tags("a=1 b=x").unwrap(),
            [("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        assert!(parse_tags("nonsense").is_err());
    }
}
