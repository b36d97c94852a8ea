//! OTLP/JSON encoding: camelCase names, ids as hex strings, 64-bit integers as strings,
//! enums as numbers.

use std::fmt::Write as _;

use ferrotel_sdk::log::LogData;
use ferrotel_sdk::metrics::{
    Data, Exemplar, ExponentialBuckets, ExponentialHistogramPoint, HistogramPoint, MetricData, Number, NumberPoint,
};
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::{EndedSpan, SpanData, StatusCode};
use ferrotel_sdk::value::{Attributes, Value};

use crate::proto::{by_scope, Scoped, FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE};

fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn double(out: &mut String, d: f64) {
    if d.is_finite() {
        let _ = write!(out, "{d:?}");
    } else if d.is_nan() {
        out.push_str("\"NaN\"");
    } else if d > 0.0 {
        out.push_str("\"Infinity\"");
    } else {
        out.push_str("\"-Infinity\"");
    }
}

/// Standard base64 with padding, as the protobuf JSON mapping writes `bytes`.
fn base64(out: &mut String, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

fn any_value(out: &mut String, v: &Value) {
    let array = |out: &mut String, items: Vec<Value>| {
        out.push_str("{\"arrayValue\":{\"values\":[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            any_value(out, item);
        }
        out.push_str("]}}");
    };
    match v {
        Value::Str(s) => {
            out.push_str("{\"stringValue\":");
            string(out, s);
            out.push('}');
        }
        Value::Bool(b) => {
            let _ = write!(out, "{{\"boolValue\":{b}}}");
        }
        Value::Int(i) => {
            let _ = write!(out, "{{\"intValue\":\"{i}\"}}");
        }
        Value::Double(d) => {
            out.push_str("{\"doubleValue\":");
            double(out, *d);
            out.push('}');
        }
        Value::StrArray(items) => array(out, items.iter().cloned().map(Value::Str).collect()),
        Value::BoolArray(items) => array(out, items.iter().copied().map(Value::Bool).collect()),
        Value::IntArray(items) => array(out, items.iter().copied().map(Value::Int).collect()),
        Value::DoubleArray(items) => array(out, items.iter().copied().map(Value::Double).collect()),
        Value::Bytes(bytes) => {
            out.push_str("{\"bytesValue\":\"");
            base64(out, bytes);
            out.push_str("\"}");
        }
        Value::Array(items) => array(out, items.clone()),
        Value::Map(pairs) => {
            out.push_str("{\"kvlistValue\":{\"values\":[");
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"key\":");
                string(out, key);
                out.push_str(",\"value\":");
                any_value(out, value);
                out.push('}');
            }
            out.push_str("]}}");
        }
        Value::Empty => out.push_str("{}"),
    }
}

fn attributes(out: &mut String, attrs: &Attributes) {
    attribute_list(out, attrs);
    let _ = write!(out, ",\"droppedAttributesCount\":{}", attrs.dropped);
}

/// Only `"attributes":[...]`: data points have no dropped count, and strict OTLP/JSON
/// readers refuse fields a message does not have.
fn attribute_list(out: &mut String, attrs: &Attributes) {
    out.push_str("\"attributes\":[");
    for (i, (k, v)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"key\":");
        string(out, k);
        out.push_str(",\"value\":");
        any_value(out, v);
        out.push('}');
    }
    out.push(']');
}

fn span(out: &mut String, s: &SpanData) {
    let _ = write!(
        out,
        "{{\"traceId\":\"{:032x}\",\"spanId\":\"{:016x}\",",
        s.trace_id, s.span_id
    );
    out.push_str("\"traceState\":");
    string(out, &s.trace_state);
    if let Some(parent) = s.parent_span_id {
        let _ = write!(out, ",\"parentSpanId\":\"{parent:016x}\"");
    }
    let parent_remote = if s.parent_span_id.is_some() && s.parent_is_remote {
        FLAG_IS_REMOTE
    } else {
        0
    };
    let _ = write!(
        out,
        ",\"flags\":{},\"name\":",
        s.trace_flags as u32 | FLAG_HAS_IS_REMOTE | parent_remote
    );
    string(out, &s.name);
    let _ = write!(
        out,
        ",\"kind\":{},\"startTimeUnixNano\":\"{}\",\"endTimeUnixNano\":\"{}\",",
        s.kind as u32 + 1,
        s.start_ns,
        s.end_ns
    );
    attributes(out, &s.attributes);
    out.push_str(",\"events\":[");
    for (i, e) in s.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"timeUnixNano\":\"{}\",\"name\":", e.time_ns);
        string(out, &e.name);
        out.push(',');
        attributes(out, &e.attributes);
        out.push('}');
    }
    let _ = write!(out, "],\"droppedEventsCount\":{},\"links\":[", s.dropped_events);
    for (i, l) in s.links.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"traceId\":\"{:032x}\",\"spanId\":\"{:016x}\",\"traceState\":",
            l.trace_id, l.span_id
        );
        string(out, &l.trace_state);
        let remote = if l.is_remote { FLAG_IS_REMOTE } else { 0 };
        let _ = write!(
            out,
            ",\"flags\":{},",
            l.trace_flags as u32 | FLAG_HAS_IS_REMOTE | remote
        );
        attributes(out, &l.attributes);
        out.push('}');
    }
    let _ = write!(out, "],\"droppedLinksCount\":{}", s.dropped_links);
    if s.status.code != StatusCode::Unset {
        out.push_str(",\"status\":{\"message\":");
        string(out, &s.status.description);
        let _ = write!(out, ",\"code\":{}}}", s.status.code as u32);
    }
    out.push('}');
}

fn log_record(out: &mut String, r: &LogData) {
    let _ = write!(
        out,
        "{{\"timeUnixNano\":\"{}\",\"observedTimeUnixNano\":\"{}\",\"severityNumber\":{},\"severityText\":",
        r.time_ns, r.observed_ns, r.severity_number
    );
    string(out, &r.severity_text);
    if let Some(body) = &r.body {
        out.push_str(",\"body\":");
        any_value(out, body);
    }
    out.push(',');
    attributes(out, &r.attributes);
    let _ = write!(out, ",\"flags\":{}", r.trace_flags);
    if r.trace_id != 0 {
        let _ = write!(
            out,
            ",\"traceId\":\"{:032x}\",\"spanId\":\"{:016x}\"",
            r.trace_id, r.span_id
        );
    }
    if !r.event_name.is_empty() {
        out.push_str(",\"eventName\":");
        string(out, &r.event_name);
    }
    out.push('}');
}

fn point_times(out: &mut String, start_ns: u64, time_ns: u64) {
    let _ = write!(
        out,
        ",\"startTimeUnixNano\":\"{start_ns}\",\"timeUnixNano\":\"{time_ns}\""
    );
}

/// `,"asInt":"5"` or `,"asDouble":0.5`.
fn number(out: &mut String, value: Number) {
    match value {
        Number::Int(i) => {
            let _ = write!(out, ",\"asInt\":\"{i}\"");
        }
        Number::Double(d) => {
            out.push_str(",\"asDouble\":");
            double(out, d);
        }
    }
}

fn exemplars(out: &mut String, exemplars: &[Exemplar]) {
    if exemplars.is_empty() {
        return;
    }
    out.push_str(",\"exemplars\":[");
    for (i, e) in exemplars.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"timeUnixNano\":\"{}\"",
            if i > 0 { "," } else { "" },
            e.time_ns
        );
        number(out, e.value);
        if e.trace_id != 0 {
            let _ = write!(
                out,
                ",\"spanId\":\"{:016x}\",\"traceId\":\"{:032x}\"",
                e.span_id, e.trace_id
            );
        }
        out.push('}');
    }
    out.push(']');
}

fn number_point(out: &mut String, p: &NumberPoint) {
    out.push('{');
    attribute_list(out, &p.attributes);
    point_times(out, p.start_ns, p.time_ns);
    number(out, p.value);
    exemplars(out, &p.exemplars);
    out.push('}');
}

fn histogram_point(out: &mut String, p: &HistogramPoint) {
    out.push('{');
    attribute_list(out, &p.attributes);
    point_times(out, p.start_ns, p.time_ns);
    let _ = write!(out, ",\"count\":\"{}\",\"sum\":", p.count);
    double(out, p.sum);
    out.push_str(",\"bucketCounts\":[");
    for (i, c) in p.bucket_counts.iter().enumerate() {
        let _ = write!(out, "{}\"{c}\"", if i > 0 { "," } else { "" });
    }
    out.push_str("],\"explicitBounds\":[");
    for (i, b) in p.bounds.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        double(out, *b);
    }
    out.push(']');
    if p.count > 0 {
        out.push_str(",\"min\":");
        double(out, p.min);
        out.push_str(",\"max\":");
        double(out, p.max);
    }
    exemplars(out, &p.exemplars);
    out.push('}');
}

fn exponential_buckets(out: &mut String, key: &str, b: &ExponentialBuckets) {
    let _ = write!(out, ",\"{key}\":{{\"offset\":{},\"bucketCounts\":[", b.offset);
    for (i, c) in b.bucket_counts.iter().enumerate() {
        let _ = write!(out, "{}\"{c}\"", if i > 0 { "," } else { "" });
    }
    out.push_str("]}");
}

fn exponential_histogram_point(out: &mut String, p: &ExponentialHistogramPoint) {
    out.push('{');
    attribute_list(out, &p.attributes);
    point_times(out, p.start_ns, p.time_ns);
    let _ = write!(out, ",\"count\":\"{}\",\"sum\":", p.count);
    double(out, p.sum);
    let _ = write!(out, ",\"scale\":{},\"zeroCount\":\"{}\"", p.scale, p.zero_count);
    exponential_buckets(out, "positive", &p.positive);
    exponential_buckets(out, "negative", &p.negative);
    if p.count > 0 {
        out.push_str(",\"min\":");
        double(out, p.min);
        out.push_str(",\"max\":");
        double(out, p.max);
    }
    exemplars(out, &p.exemplars);
    out.push('}');
}

fn points<T>(out: &mut String, points: &[T], write: fn(&mut String, &T)) {
    out.push_str("{\"dataPoints\":[");
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, p);
    }
    out.push(']');
}

fn metric(out: &mut String, m: &MetricData) {
    out.push_str("{\"name\":");
    string(out, &m.name);
    out.push_str(",\"description\":");
    string(out, &m.description);
    out.push_str(",\"unit\":");
    string(out, &m.unit);
    match &m.data {
        Data::Gauge(data) => {
            out.push_str(",\"gauge\":");
            points(out, data, number_point);
            out.push('}');
        }
        Data::Sum {
            points: data,
            temporality,
            monotonic,
        } => {
            out.push_str(",\"sum\":");
            points(out, data, number_point);
            let _ = write!(
                out,
                ",\"aggregationTemporality\":{},\"isMonotonic\":{monotonic}}}",
                *temporality as u8
            );
        }
        Data::Histogram {
            points: data,
            temporality,
        } => {
            out.push_str(",\"histogram\":");
            points(out, data, histogram_point);
            let _ = write!(out, ",\"aggregationTemporality\":{}}}", *temporality as u8);
        }
        Data::ExponentialHistogram {
            points: data,
            temporality,
        } => {
            out.push_str(",\"exponentialHistogram\":");
            points(out, data, exponential_histogram_point);
            let _ = write!(out, ",\"aggregationTemporality\":{}}}", *temporality as u8);
        }
    }
    out.push('}');
}

/// `(rejected items, error_message)` from an OTLP/JSON export response, read with a narrow
/// scan (the reply is small and only these two fields matter). `rejected_key` is the
/// signal's count field, `"rejectedSpans"` or `"rejectedLogRecords"`.
pub fn partial_success(body: &[u8], rejected_key: &str) -> Option<(u64, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let section = &text[text.find("\"partialSuccess\"")?..];
    let value_after = |key: &str| -> Option<&str> {
        let rest = &section[section.find(key)? + key.len()..];
        Some(rest.trim_start().strip_prefix(':')?.trim_start())
    };
    // int64 may arrive as a string or a number.
    let rejected = value_after(&format!("\"{rejected_key}\""))
        .map(|v| {
            v.trim_start_matches('"')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    let message = value_after("\"errorMessage\"")
        .and_then(|v| v.strip_prefix('"'))
        .and_then(|v| v.split('"').next())
        .unwrap_or("")
        .to_string();
    Some((rejected, message))
}

pub fn encode_traces(batch: &[EndedSpan], resource: &Resource) -> Vec<u8> {
    encode_request(
        batch,
        resource,
        ["resourceSpans", "scopeSpans", "spans"],
        600,
        |out, s| span(out, s),
    )
}

pub fn encode_logs(batch: &[LogData], resource: &Resource) -> Vec<u8> {
    encode_request(
        batch,
        resource,
        ["resourceLogs", "scopeLogs", "logRecords"],
        400,
        log_record,
    )
}

pub fn encode_metrics(batch: &[MetricData], resource: &Resource) -> Vec<u8> {
    encode_request(
        batch,
        resource,
        ["resourceMetrics", "scopeMetrics", "metrics"],
        400,
        metric,
    )
}

/// `names`: the request's resource-level, scope-level and item list fields.
fn encode_request<T: Scoped>(
    batch: &[T],
    resource: &Resource,
    [resource_list, scope_list, item_list]: [&str; 3],
    bytes_per_item: usize,
    item: fn(&mut String, &T),
) -> Vec<u8> {
    let mut out = String::with_capacity(bytes_per_item * batch.len() + 512);
    let _ = write!(out, "{{\"{resource_list}\":[{{\"resource\":{{");
    attributes(&mut out, &resource.attributes);
    let _ = write!(out, "}},\"{scope_list}\":[");
    for (i, (scope, spans)) in by_scope(batch).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"scope\":{\"name\":");
        string(&mut out, &scope.name);
        out.push_str(",\"version\":");
        string(&mut out, scope.version.as_deref().unwrap_or(""));
        out.push(',');
        attributes(&mut out, &scope.attributes);
        let _ = write!(out, "}},\"{item_list}\":[");
        for (j, s) in spans.into_iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            item(&mut out, s);
        }
        out.push_str("],\"schemaUrl\":");
        string(&mut out, scope.schema_url.as_deref().unwrap_or(""));
        out.push('}');
    }
    out.push_str("],\"schemaUrl\":");
    string(&mut out, &resource.schema_url);
    out.push_str("}]}");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_success_in_json() {
        let body = br#"{"partialSuccess": {"rejectedSpans": "3", "errorMessage": "too old"}}"#;
        assert_eq!(partial_success(body, "rejectedSpans"), Some((3, "too old".to_string())));
        assert_eq!(
            partial_success(br#"{"partialSuccess":{"rejectedLogRecords":2}}"#, "rejectedLogRecords"),
            Some((2, String::new()))
        );
        assert_eq!(partial_success(b"{}", "rejectedSpans"), None);
        assert_eq!(partial_success(b"\xff", "rejectedSpans"), None);
    }

    #[test]
    fn escaping_and_special_doubles() {
        let mut out = String::new();
        string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let mut out = String::new();
        any_value(&mut out, &Value::DoubleArray(vec![1.0, f64::NAN, f64::NEG_INFINITY]));
        assert_eq!(out, "{\"arrayValue\":{\"values\":[{\"doubleValue\":1.0},{\"doubleValue\":\"NaN\"},{\"doubleValue\":\"-Infinity\"}]}}");
        let mut out = String::new();
        any_value(&mut out, &Value::Int(-5));
        assert_eq!(out, "{\"intValue\":\"-5\"}");
    }

    #[test]
    fn maps_nest_as_kvlist_values() {
        let mut out = String::new();
        let inner = Value::Map(vec![("qty".into(), Value::Int(2))]);
        any_value(
            &mut out,
            &Value::Map(vec![
                ("id".into(), Value::Str("A1".into())),
                ("lines".into(), Value::Array(vec![inner])),
            ]),
        );
        assert_eq!(
            out,
            "{\"kvlistValue\":{\"values\":[{\"key\":\"id\",\"value\":{\"stringValue\":\"A1\"}},\
             {\"key\":\"lines\",\"value\":{\"arrayValue\":{\"values\":[{\"kvlistValue\":{\"values\":\
             [{\"key\":\"qty\",\"value\":{\"intValue\":\"2\"}}]}}]}}}]}}"
        );
    }
}
