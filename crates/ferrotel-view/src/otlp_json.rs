//! OTLP/JSON, by the protobuf JSON mapping as OTLP uses it. Decoding takes field names in
//! lowerCamelCase or as in the .proto, 64-bit integers as numbers or strings, enums by name
//! (`"SPAN_KIND_SERVER"`) or number, doubles as numbers or `"NaN"` / `"Infinity"` /
//! `"-Infinity"`, trace and span ids as hex (OTLP's exception) and other bytes as base64,
//! `null` as the field's default, unknown fields ignored. The generated serde code refuses
//! the enum names and the non-finite doubles, which exporters (ferrotel's among them) send.
//! Encoding (traces, for downloads and the v3 query API) writes every field, defaults
//! included, as Jaeger's v3 clients expect, and non-finite doubles as their strings.

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point, metric, number_data_point, summary_data_point, AggregationTemporality,
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{json, Map, Value};

/// A decoding failure and where: `resourceSpans[0].scopeSpans[1].spans[2].kind`.
#[derive(Debug)]
pub(crate) struct Error {
    path: String,
    message: String,
}

impl Error {
    /// The same failure seen from the field or list item `segment` that holds it.
    fn within(mut self, segment: &str) -> Self {
        self.path = match self.path.chars().next() {
            None => segment.to_owned(),
            Some('[') => format!("{segment}{}", self.path),
            Some(_) => format!("{segment}.{}", self.path),
        };
        self
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn fail(message: String) -> Error {
    Error {
        path: String::new(),
        message,
    }
}

type Decoded<T> = Result<T, Error>;

pub(crate) fn traces(body: &[u8]) -> Decoded<ExportTraceServiceRequest> {
    let mut root = parse(body)?;
    Ok(ExportTraceServiceRequest {
        resource_spans: root.list("resourceSpans", resource_spans)?,
    })
}

pub(crate) fn logs(body: &[u8]) -> Decoded<ExportLogsServiceRequest> {
    let mut root = parse(body)?;
    Ok(ExportLogsServiceRequest {
        resource_logs: root.list("resourceLogs", resource_logs)?,
    })
}

pub(crate) fn metrics(body: &[u8]) -> Decoded<ExportMetricsServiceRequest> {
    let mut root = parse(body)?;
    Ok(ExportMetricsServiceRequest {
        resource_metrics: root.list("resourceMetrics", resource_metrics)?,
    })
}

/// An OTLP/JSON body of any signal, as a file a user uploads holds it.
pub(crate) enum AnySignal {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// Decodes a body of whichever signal its top-level field names.
pub(crate) fn any_signal(body: &[u8]) -> Decoded<AnySignal> {
    let mut root = parse(body)?;
    if root.map.contains_key("resourceSpans") {
        Ok(AnySignal::Traces(ExportTraceServiceRequest {
            resource_spans: root.list("resourceSpans", resource_spans)?,
        }))
    } else if root.map.contains_key("resourceLogs") {
        Ok(AnySignal::Logs(ExportLogsServiceRequest {
            resource_logs: root.list("resourceLogs", resource_logs)?,
        }))
    } else if root.map.contains_key("resourceMetrics") {
        Ok(AnySignal::Metrics(ExportMetricsServiceRequest {
            resource_metrics: root.list("resourceMetrics", resource_metrics)?,
        }))
    } else {
        Err(fail(
            "not an OTLP/JSON export request: expected resourceSpans, resourceLogs or resourceMetrics".to_owned(),
        ))
    }
}

/// The body as a tree whose values are moved, not copied, into the messages: a request of
/// large attributes is held about twice (body, then messages), not three times.
fn parse(body: &[u8]) -> Decoded<Fields> {
    fields(serde_json::from_slice(body).map_err(|e| fail(e.to_string()))?)
}

fn fields(value: Value) -> Decoded<Fields> {
    match value {
        Value::Object(map) => Ok(Fields::new(map)),
        other => Err(fail(format!("expected an object, got {}", kind_of(&other)))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One JSON object's fields, taken by their lowerCamelCase name; keys written as in the
/// .proto (`trace_id`) are renamed to it first.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn new(map: Map<String, Value>) -> Self {
        if !map.keys().any(|key| key.contains('_')) {
            return Fields { map };
        }
        let map = map
            .into_iter()
            .map(|(key, value)| {
                if key.contains('_') {
                    (lower_camel(&key), value)
                } else {
                    (key, value)
                }
            })
            .collect();
        Fields { map }
    }

    /// Takes the field's value out; absent and `null` are both "not set".
    fn take(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name).filter(|v| !v.is_null())
    }

    /// Runs `read` on the field when it is set, naming the field in any error.
    fn read<T>(&mut self, name: &str, read: impl FnOnce(Value) -> Decoded<T>) -> Decoded<Option<T>> {
        self.take(name)
            .map(|value| read(value).map_err(|e| e.within(name)))
            .transpose()
    }

    fn message<T>(&mut self, name: &str, item: fn(Fields) -> Decoded<T>) -> Decoded<Option<T>> {
        self.read(name, |value| item(fields(value)?))
    }

    fn list<T>(&mut self, name: &str, item: fn(Fields) -> Decoded<T>) -> Decoded<Vec<T>> {
        self.list_of(name, |value| item(fields(value)?))
    }

    fn list_of<T>(&mut self, name: &str, item: impl Fn(Value) -> Decoded<T>) -> Decoded<Vec<T>> {
        let Some(value) = self.take(name) else {
            return Ok(Vec::new());
        };
        let Value::Array(values) = value else {
            return Err(fail(format!("expected an array, got {}", kind_of(&value))).within(name));
        };
        values
            .into_iter()
            .enumerate()
            .map(|(i, value)| item(value).map_err(|e| e.within(&format!("[{i}]")).within(name)))
            .collect()
    }

    fn string(&mut self, name: &str) -> Decoded<String> {
        Ok(self.read(name, string)?.unwrap_or_default())
    }

    fn boolean(&mut self, name: &str) -> Decoded<bool> {
        Ok(self.read(name, boolean)?.unwrap_or_default())
    }

    fn u64(&mut self, name: &str) -> Decoded<u64> {
        Ok(self.read(name, unsigned)?.unwrap_or_default())
    }

    fn u32(&mut self, name: &str) -> Decoded<u32> {
        Ok(self.read(name, |v| narrow(unsigned(v)?))?.unwrap_or_default())
    }

    fn i32(&mut self, name: &str) -> Decoded<i32> {
        Ok(self.read(name, |v| narrow(signed(v)?))?.unwrap_or_default())
    }

    fn f64(&mut self, name: &str) -> Decoded<Option<f64>> {
        self.read(name, double)
    }

    /// An enum field: its name as the .proto spells it, or its number.
    fn enumeration(&mut self, name: &str, by_name: fn(&str) -> Option<i32>) -> Decoded<i32> {
        let number = self.read(name, |value| match value {
            Value::String(text) => by_name(&text).ok_or_else(|| fail(format!("unknown value {text:?}"))),
            other => narrow(signed(other)?),
        })?;
        Ok(number.unwrap_or_default())
    }

    /// Trace and span ids: hex, as the OTLP/JSON encoding specifies.
    fn id(&mut self, name: &str) -> Decoded<Vec<u8>> {
        let id = self.read(name, |value| {
            let text = string(value)?;
            const_hex::decode(&text).map_err(|_| fail(format!("not a hex id: {text:?}")))
        })?;
        Ok(id.unwrap_or_default())
    }
}

fn lower_camel(proto_name: &str) -> String {
    let mut camel = String::with_capacity(proto_name.len());
    let mut upper = false;
    for c in proto_name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            camel.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            camel.push(c);
        }
    }
    camel
}

fn string(value: Value) -> Decoded<String> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(fail(format!("expected a string, got {}", kind_of(&other)))),
    }
}

fn boolean(value: Value) -> Decoded<bool> {
    match value {
        Value::Bool(b) => Ok(b),
        other => Err(fail(format!("expected true or false, got {}", kind_of(&other)))),
    }
}

/// Integers come as numbers or decimal strings; a number written with a fraction or an
/// exponent is accepted when its value is whole.
fn integer(value: Value) -> Decoded<i128> {
    let whole = |f: f64| (f.fract() == 0.0 && f.abs() < 2f64.powi(64)).then_some(f as i128);
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(i128::from)
            .or(n.as_i64().map(i128::from))
            .or(n.as_f64().and_then(whole))
            .ok_or_else(|| fail(format!("not an integer: {n}"))),
        Value::String(text) => text
            .trim()
            .parse::<i128>()
            .ok()
            .or(text.trim().parse::<f64>().ok().and_then(whole))
            .ok_or_else(|| fail(format!("not an integer: {text:?}"))),
        other => Err(fail(format!("expected an integer, got {}", kind_of(&other)))),
    }
}

fn unsigned(value: Value) -> Decoded<u64> {
    narrow(integer(value)?)
}

fn signed(value: Value) -> Decoded<i64> {
    narrow(integer(value)?)
}

fn narrow<T: TryFrom<W>, W: Copy + std::fmt::Display>(wide: W) -> Decoded<T> {
    T::try_from(wide).map_err(|_| fail(format!("{wide} is out of range")))
}

fn double(value: Value) -> Decoded<f64> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| fail(format!("not a number: {n}"))),
        Value::String(text) => match text.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| fail(format!("not a number: {text:?}"))),
        },
        other => Err(fail(format!("expected a number, got {}", kind_of(&other)))),
    }
}

/// Bytes values: base64, standard or URL-safe, with or without padding.
fn base64(value: Value) -> Decoded<Vec<u8>> {
    let text = string(value)?;
    let standard: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(standard)
        .map_err(|_| fail(format!("not base64: {text:?}")))
}

// ---- common -------------------------------------------------------------------------------

fn any_value(mut f: Fields) -> Decoded<AnyValue> {
    use any_value::Value as V;
    let value = if let Some(text) = f.read("stringValue", string)? {
        Some(V::StringValue(text))
    } else if let Some(b) = f.read("boolValue", boolean)? {
        Some(V::BoolValue(b))
    } else if let Some(i) = f.read("intValue", signed)? {
        Some(V::IntValue(i))
    } else if let Some(d) = f.f64("doubleValue")? {
        Some(V::DoubleValue(d))
    } else if let Some(values) = f.message("arrayValue", |mut a| a.list("values", any_value))? {
        Some(V::ArrayValue(ArrayValue { values }))
    } else if let Some(values) = f.message("kvlistValue", |mut l| l.list("values", key_value))? {
        Some(V::KvlistValue(KeyValueList { values }))
    } else {
        f.read("bytesValue", base64)?.map(V::BytesValue)
    };
    Ok(AnyValue { value })
}

fn key_value(mut f: Fields) -> Decoded<KeyValue> {
    Ok(KeyValue {
        key: f.string("key")?,
        value: f.message("value", any_value)?,
        ..Default::default()
    })
}

fn attributes(f: &mut Fields, name: &str) -> Decoded<Vec<KeyValue>> {
    f.list(name, key_value)
}

fn resource(mut f: Fields) -> Decoded<Resource> {
    Ok(Resource {
        attributes: attributes(&mut f, "attributes")?,
        dropped_attributes_count: f.u32("droppedAttributesCount")?,
        ..Default::default()
    })
}

fn scope(mut f: Fields) -> Decoded<InstrumentationScope> {
    Ok(InstrumentationScope {
        name: f.string("name")?,
        version: f.string("version")?,
        attributes: attributes(&mut f, "attributes")?,
        dropped_attributes_count: f.u32("droppedAttributesCount")?,
    })
}

// ---- traces -------------------------------------------------------------------------------

fn resource_spans(mut f: Fields) -> Decoded<ResourceSpans> {
    Ok(ResourceSpans {
        resource: f.message("resource", resource)?,
        scope_spans: f.list("scopeSpans", scope_spans)?,
        schema_url: f.string("schemaUrl")?,
    })
}

fn scope_spans(mut f: Fields) -> Decoded<ScopeSpans> {
    Ok(ScopeSpans {
        scope: f.message("scope", scope)?,
        spans: f.list("spans", span)?,
        schema_url: f.string("schemaUrl")?,
    })
}

fn span(mut f: Fields) -> Decoded<Span> {
    Ok(Span {
        trace_id: f.id("traceId")?,
        span_id: f.id("spanId")?,
        trace_state: f.string("traceState")?,
        parent_span_id: f.id("parentSpanId")?,
        flags: f.u32("flags")?,
        name: f.string("name")?,
        kind: f.enumeration("kind", |n| SpanKind::from_str_name(n).map(|k| k as i32))?,
        start_time_unix_nano: f.u64("startTimeUnixNano")?,
        end_time_unix_nano: f.u64("endTimeUnixNano")?,
        attributes: attributes(&mut f, "attributes")?,
        dropped_attributes_count: f.u32("droppedAttributesCount")?,
        events: f.list("events", event)?,
        dropped_events_count: f.u32("droppedEventsCount")?,
        links: f.list("links", link)?,
        dropped_links_count: f.u32("droppedLinksCount")?,
        status: f.message("status", status)?,
    })
}

fn event(mut f: Fields) -> Decoded<Event> {
    Ok(Event {
        time_unix_nano: f.u64("timeUnixNano")?,
        name: f.string("name")?,
        attributes: attributes(&mut f, "attributes")?,
        dropped_attributes_count: f.u32("droppedAttributesCount")?,
    })
}

fn link(mut f: Fields) -> Decoded<Link> {
    Ok(Link {
        trace_id: f.id("traceId")?,
        span_id: f.id("spanId")?,
        trace_state: f.string("traceState")?,
        attributes: attributes(&mut f, "attributes")?,
        dropped_attributes_count: f.u32("droppedAttributesCount")?,
        flags: f.u32("flags")?,
    })
}

fn status(mut f: Fields) -> Decoded<Status> {
    Ok(Status {
        message: f.string("message")?,
        code: f.enumeration("code", |n| StatusCode::from_str_name(n).map(|c| c as i32))?,
    })
}

// ---- logs ---------------------------------------------------------------------------------

fn resource_logs(mut f: Fields) -> Decoded<ResourceLogs> {
    Ok(ResourceLogs {
        resource: f.message("resource", resource)?,
        scope_logs: f.list("scopeLogs", scope_logs)?,
        schema_url: f.string("schemaUrl")?,
    })
}

fn scope_logs(mut f: Fields) -> Decoded<ScopeLogs> {
    Ok(ScopeLogs {
        scope: f.message("scope", scope)?,
        log_records: f.list("logRecords", log_record)?,
        schema_url: f.string("schemaUrl")?,
    })
}

fn log_record(mut f: Fields) -> Decoded<LogRecord> {
    Ok(LogRecord {
        time_unix_nano: f.u64("timeUnixNano")?,
        observed_time_unix_nano: f.u64("observedTimeUnixNano")?,
        severity_number: f.enumeration("severityNumber", |n| SeverityNumber::from_str_name(n).map(|s| s as i32))?,
        severity_text: f.string("severityText")?,
        body: f.message("body", any_value)?,
        attributes: attributes(&mut f, "attributes")?,
        dropped_attributes_count: f.u32("droppedAttributesCount")?,
        flags: f.u32("flags")?,
        trace_id: f.id("traceId")?,
        span_id: f.id("spanId")?,
        event_name: f.string("eventName")?,
    })
}

// ---- metrics ------------------------------------------------------------------------------

fn resource_metrics(mut f: Fields) -> Decoded<ResourceMetrics> {
    Ok(ResourceMetrics {
        resource: f.message("resource", resource)?,
        scope_metrics: f.list("scopeMetrics", scope_metrics)?,
        schema_url: f.string("schemaUrl")?,
    })
}

fn scope_metrics(mut f: Fields) -> Decoded<ScopeMetrics> {
    Ok(ScopeMetrics {
        scope: f.message("scope", scope)?,
        metrics: f.list("metrics", metric)?,
        schema_url: f.string("schemaUrl")?,
    })
}

fn temporality(f: &mut Fields) -> Decoded<i32> {
    f.enumeration("aggregationTemporality", |n| {
        AggregationTemporality::from_str_name(n).map(|t| t as i32)
    })
}

fn metric(mut f: Fields) -> Decoded<Metric> {
    use metric::Data;
    let data = if let Some(gauge) = f.message("gauge", |mut g| {
        Ok(Gauge {
            data_points: g.list("dataPoints", number_point)?,
        })
    })? {
        Some(Data::Gauge(gauge))
    } else if let Some(sum) = f.message("sum", |mut s| {
        Ok(Sum {
            data_points: s.list("dataPoints", number_point)?,
            aggregation_temporality: temporality(&mut s)?,
            is_monotonic: s.boolean("isMonotonic")?,
        })
    })? {
        Some(Data::Sum(sum))
    } else if let Some(histogram) = f.message("histogram", |mut h| {
        Ok(Histogram {
            data_points: h.list("dataPoints", histogram_point)?,
            aggregation_temporality: temporality(&mut h)?,
        })
    })? {
        Some(Data::Histogram(histogram))
    } else if let Some(histogram) = f.message("exponentialHistogram", |mut h| {
        Ok(ExponentialHistogram {
            data_points: h.list("dataPoints", exponential_point)?,
            aggregation_temporality: temporality(&mut h)?,
        })
    })? {
        Some(Data::ExponentialHistogram(histogram))
    } else {
        f.message("summary", |mut s| {
            Ok(Summary {
                data_points: s.list("dataPoints", summary_point)?,
            })
        })?
        .map(Data::Summary)
    };
    Ok(Metric {
        name: f.string("name")?,
        description: f.string("description")?,
        unit: f.string("unit")?,
        metadata: attributes(&mut f, "metadata")?,
        data,
    })
}

fn number_point(mut f: Fields) -> Decoded<NumberDataPoint> {
    use number_data_point::Value as V;
    let value = match f.f64("asDouble")? {
        Some(d) => Some(V::AsDouble(d)),
        None => f.read("asInt", signed)?.map(V::AsInt),
    };
    Ok(NumberDataPoint {
        attributes: attributes(&mut f, "attributes")?,
        start_time_unix_nano: f.u64("startTimeUnixNano")?,
        time_unix_nano: f.u64("timeUnixNano")?,
        exemplars: f.list("exemplars", exemplar)?,
        flags: f.u32("flags")?,
        value,
    })
}

fn histogram_point(mut f: Fields) -> Decoded<HistogramDataPoint> {
    Ok(HistogramDataPoint {
        attributes: attributes(&mut f, "attributes")?,
        start_time_unix_nano: f.u64("startTimeUnixNano")?,
        time_unix_nano: f.u64("timeUnixNano")?,
        count: f.u64("count")?,
        sum: f.f64("sum")?,
        bucket_counts: f.list_of("bucketCounts", unsigned)?,
        explicit_bounds: f.list_of("explicitBounds", double)?,
        exemplars: f.list("exemplars", exemplar)?,
        flags: f.u32("flags")?,
        min: f.f64("min")?,
        max: f.f64("max")?,
    })
}

fn exponential_point(mut f: Fields) -> Decoded<ExponentialHistogramDataPoint> {
    let buckets = |mut b: Fields| {
        Ok(exponential_histogram_data_point::Buckets {
            offset: b.i32("offset")?,
            bucket_counts: b.list_of("bucketCounts", unsigned)?,
        })
    };
    Ok(ExponentialHistogramDataPoint {
        attributes: attributes(&mut f, "attributes")?,
        start_time_unix_nano: f.u64("startTimeUnixNano")?,
        time_unix_nano: f.u64("timeUnixNano")?,
        count: f.u64("count")?,
        sum: f.f64("sum")?,
        scale: f.i32("scale")?,
        zero_count: f.u64("zeroCount")?,
        positive: f.message("positive", buckets)?,
        negative: f.message("negative", buckets)?,
        flags: f.u32("flags")?,
        exemplars: f.list("exemplars", exemplar)?,
        min: f.f64("min")?,
        max: f.f64("max")?,
        zero_threshold: f.f64("zeroThreshold")?.unwrap_or_default(),
    })
}

fn summary_point(mut f: Fields) -> Decoded<SummaryDataPoint> {
    let quantile = |mut q: Fields| {
        Ok(summary_data_point::ValueAtQuantile {
            quantile: q.f64("quantile")?.unwrap_or_default(),
            value: q.f64("value")?.unwrap_or_default(),
        })
    };
    Ok(SummaryDataPoint {
        attributes: attributes(&mut f, "attributes")?,
        start_time_unix_nano: f.u64("startTimeUnixNano")?,
        time_unix_nano: f.u64("timeUnixNano")?,
        count: f.u64("count")?,
        sum: f.f64("sum")?.unwrap_or_default(),
        quantile_values: f.list("quantileValues", quantile)?,
        flags: f.u32("flags")?,
    })
}

fn exemplar(mut f: Fields) -> Decoded<Exemplar> {
    use exemplar::Value as V;
    let value = match f.f64("asDouble")? {
        Some(d) => Some(V::AsDouble(d)),
        None => f.read("asInt", signed)?.map(V::AsInt),
    };
    Ok(Exemplar {
        filtered_attributes: attributes(&mut f, "filteredAttributes")?,
        time_unix_nano: f.u64("timeUnixNano")?,
        span_id: f.id("spanId")?,
        trace_id: f.id("traceId")?,
        value,
    })
}

// ---- encoding -----------------------------------------------------------------------------

/// A trace export request as OTLP/JSON, every field written.
pub(crate) fn encode_traces(request: &ExportTraceServiceRequest) -> Value {
    json!({"resourceSpans": request.resource_spans.iter().map(encode_resource_spans).collect::<Vec<_>>()})
}

fn encode_resource_spans(resource_spans: &ResourceSpans) -> Value {
    let resource = resource_spans.resource.as_ref();
    json!({
        "resource": {
            "attributes": encode_attributes(resource.map_or(&[][..], |r| &r.attributes)),
            "droppedAttributesCount": resource.map_or(0, |r| r.dropped_attributes_count),
        },
        "scopeSpans": resource_spans.scope_spans.iter().map(encode_scope_spans).collect::<Vec<_>>(),
        "schemaUrl": resource_spans.schema_url,
    })
}

fn encode_scope_spans(scope_spans: &ScopeSpans) -> Value {
    let default = InstrumentationScope::default();
    let scope = scope_spans.scope.as_ref().unwrap_or(&default);
    json!({
        "scope": {
            "name": scope.name,
            "version": scope.version,
            "attributes": encode_attributes(&scope.attributes),
            "droppedAttributesCount": scope.dropped_attributes_count,
        },
        "spans": scope_spans.spans.iter().map(encode_span).collect::<Vec<_>>(),
        "schemaUrl": scope_spans.schema_url,
    })
}

fn encode_span(span: &Span) -> Value {
    let status = span.status.clone().unwrap_or_default();
    json!({
        "traceId": const_hex::encode(&span.trace_id),
        "spanId": const_hex::encode(&span.span_id),
        "traceState": span.trace_state,
        "parentSpanId": const_hex::encode(&span.parent_span_id),
        "flags": span.flags,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
        "endTimeUnixNano": span.end_time_unix_nano.to_string(),
        "attributes": encode_attributes(&span.attributes),
        "droppedAttributesCount": span.dropped_attributes_count,
        "events": span.events.iter().map(|event| json!({
            "timeUnixNano": event.time_unix_nano.to_string(),
            "name": event.name,
            "attributes": encode_attributes(&event.attributes),
            "droppedAttributesCount": event.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "droppedEventsCount": span.dropped_events_count,
        "links": span.links.iter().map(|link| json!({
            "traceId": const_hex::encode(&link.trace_id),
            "spanId": const_hex::encode(&link.span_id),
            "traceState": link.trace_state,
            "attributes": encode_attributes(&link.attributes),
            "droppedAttributesCount": link.dropped_attributes_count,
            "flags": link.flags,
        })).collect::<Vec<_>>(),
        "droppedLinksCount": span.dropped_links_count,
        "status": {"message": status.message, "code": status.code},
    })
}

fn encode_attributes(attributes: &[KeyValue]) -> Vec<Value> {
    attributes
        .iter()
        .map(|kv| json!({"key": kv.key, "value": encode_any_value(kv.value.as_ref())}))
        .collect()
}

fn encode_any_value(value: Option<&AnyValue>) -> Value {
    use any_value::Value as V;
    match value.and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => json!({"stringValue": s}),
        Some(V::BoolValue(b)) => json!({"boolValue": b}),
        Some(V::IntValue(i)) => json!({"intValue": i.to_string()}),
        Some(V::DoubleValue(d)) => json!({"doubleValue": crate::jaeger::double(*d)}),
        Some(V::ArrayValue(array)) => {
            json!({"arrayValue": {"values": array.values.iter().map(|v| encode_any_value(Some(v))).collect::<Vec<_>>()}})
        }
        Some(V::KvlistValue(map)) => json!({"kvlistValue": {"values": encode_attributes(&map.values)}}),
        Some(V::BytesValue(b)) => json!({"bytesValue": base64::engine::general_purpose::STANDARD.encode(b)}),
        Some(V::StringValueStrindex(_)) | None => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(body: &str) -> Decoded<Vec<Span>> {
        let request = traces(body.as_bytes())?;
        Ok(request
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect())
    }

    #[test]
    fn enum_names_and_numbers_alike() {
        let [by_name, by_number] = [
            r#"{"kind": "SPAN_KIND_SERVER", "status": {"code": "STATUS_CODE_ERROR"}}"#,
            r#"{"kind": 2, "status": {"code": 2}}"#,
        ]
        .map(|span| {
            spans(&format!(
                r#"{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{span}]}}]}}]}}"#
            ))
            .unwrap()
        });
        assert_eq!(by_name, by_number);
        assert_eq!((by_name[0].kind, by_name[0].status.as_ref().unwrap().code), (2, 2));
        let unknown = r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{}, {"kind": "SPAN_KIND_SIDEWAYS"}]}]}]}"#;
        assert_eq!(
            spans(unknown).unwrap_err().to_string(),
            r#"resourceSpans[0].scopeSpans[0].spans[1].kind: unknown value "SPAN_KIND_SIDEWAYS""#
        );
    }

    #[test]
    fn non_finite_doubles_and_64_bit_integers_as_strings() {
        let body = r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "histogram": {
            "aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA",
            "dataPoints": [{"count": "3", "sum": "NaN", "min": "-Infinity", "max": "Infinity",
                            "bucketCounts": ["1", 2], "explicitBounds": [1.5, "2.5"], "time_unix_nano": "17"}]}}]}]}]}"#;
        let request = metrics(body.as_bytes()).unwrap();
        let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(metric::Data::Histogram(histogram)) = &metric.data else {
            panic!("not a histogram: {metric:?}")
        };
        assert_eq!(histogram.aggregation_temporality, 1);
        let point = &histogram.data_points[0];
        assert_eq!(
            (point.count, point.time_unix_nano),
            (3, 17),
            "proto field names work too"
        );
        assert!(point.sum.unwrap().is_nan());
        assert_eq!((point.min, point.max), (Some(f64::NEG_INFINITY), Some(f64::INFINITY)));
        assert_eq!(
            (point.bucket_counts.as_slice(), point.explicit_bounds.as_slice()),
            (&[1, 2][..], &[1.5, 2.5][..])
        );
    }

    #[test]
    fn attribute_values_of_every_kind() {
        let body = r#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{
            "severityNumber": "SEVERITY_NUMBER_WARN", "body": {"doubleValue": "-Infinity"},
            "attributes": [{"key": "b", "value": {"bytesValue": "aGk"}}, {"key": "n", "value": null},
                           {"key": "l", "value": {"arrayValue": {"values": [{"intValue": "-7"}, {}]}}}]}]}]}]}"#;
        let request = logs(body.as_bytes()).unwrap();
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        use any_value::Value as V;
        assert_eq!(record.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(
            record.body.as_ref().unwrap().value,
            Some(V::DoubleValue(f64::NEG_INFINITY))
        );
        assert_eq!(
            record.attributes[0].value.as_ref().unwrap().value,
            Some(V::BytesValue(b"hi".to_vec()))
        );
        assert_eq!(record.attributes[1].value, None);
        let Some(V::ArrayValue(list)) = &record.attributes[2].value.as_ref().unwrap().value else {
            panic!("not a list")
        };
        assert_eq!(list.values[0].value, Some(V::IntValue(-7)));
        assert_eq!(list.values[1].value, None);
    }

    #[test]
    fn wrong_types_are_named_by_path() {
        let error = spans(r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": true}]}]}]}"#);
        assert_eq!(
            error.unwrap_err().to_string(),
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: expected an integer, got a boolean"
        );
        assert_eq!(
            spans(r#"[]"#).unwrap_err().to_string(),
            "expected an object, got an array"
        );
        assert_eq!(
            spans(r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}"#)
                .unwrap_err()
                .to_string(),
            r#"resourceSpans[0].scopeSpans[0].spans[0].traceId: not a hex id: "xyz""#
        );
    }

    #[test]
    fn encoded_traces_decode_to_the_same_request() {
        let body = r#"{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
            "scopeSpans": [{"scope": {"name": "s"}, "spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10",
            "spanId": "0102030405060708", "name": "x", "kind": 3, "startTimeUnixNano": "5",
            "attributes": [{"key": "n", "value": {"doubleValue": "NaN"}}, {"key": "b", "value": {"bytesValue": "aGk="}},
                           {"key": "l", "value": {"arrayValue": {"values": [{"intValue": "-1"}]}}}],
            "events": [{"name": "e", "timeUnixNano": "6"}], "status": {"code": 2, "message": "m"}}]}]}]}"#;
        let request = traces(body.as_bytes()).unwrap();
        let encoded = encode_traces(&request);
        let span = &encoded["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["parentSpanId"], "");
        assert_eq!(span["attributes"][0]["value"]["doubleValue"], "NaN");
        assert_eq!(span["status"], json!({"message": "m", "code": 2}));
        let again = traces(encoded.to_string().as_bytes()).unwrap();
        let [before, after] = [&request, &again].map(|r| r.resource_spans[0].scope_spans[0].spans[0].clone());
        assert_eq!(
            format!("{before:?}"),
            format!("{after:?}"),
            "NaN compares unequal, so compare the text"
        );
    }
}
