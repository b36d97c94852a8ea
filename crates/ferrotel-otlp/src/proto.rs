//! OTLP/protobuf encoding of trace and logs export requests, written directly from span and
//! log data (no intermediate message structs), and the one response field we read (partial
//! success).
//!
//! Field numbers follow opentelemetry/proto (collector/trace/v1, trace/v1, collector/logs/v1,
//! logs/v1, common/v1, resource/v1). Proto3 defaults are omitted, except inside `AnyValue`'s oneof, where the
//! field's presence is the value's type.

use std::collections::HashMap;

use ferrotel_sdk::log::LogData;
use ferrotel_sdk::metrics::{
    Data, Exemplar, ExponentialBuckets, ExponentialHistogramPoint, HistogramPoint, MetricData, Number, NumberPoint,
};
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::{EndedSpan, Scope, SpanData, StatusCode};
use ferrotel_sdk::value::{Attributes, Value};

/// The span flags' "has is_remote" and "is_remote" bits (trace/v1 SpanFlags).
pub const FLAG_HAS_IS_REMOTE: u32 = 0x100;
pub const FLAG_IS_REMOTE: u32 = 0x200;

#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    fn bytes_always(&mut self, field: u32, data: &[u8]) {
        self.tag(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
    }

    fn bytes(&mut self, field: u32, data: &[u8]) {
        if !data.is_empty() {
            self.bytes_always(field, data);
        }
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn uint(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.tag(field, 0);
            self.varint(v);
        }
    }

    fn fixed64(&mut self, field: u32, v: u64) {
        if v != 0 {
            self.tag(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A `sint32`: zigzag-encoded, so small negative numbers stay short.
    fn sint(&mut self, field: u32, v: i32) {
        self.uint(field, ((v << 1) ^ (v >> 31)) as u32 as u64);
    }

    fn fixed32(&mut self, field: u32, v: u32) {
        if v != 0 {
            self.tag(field, 5);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// A nested message written in place: its length is known only once it is written, so a
    /// one-byte length goes first and is widened afterwards if the body reached 128 bytes
    /// (moving the body once). Building each message in a buffer of its own and copying it
    /// into its parent's cost an allocation and a copy per attribute and per level.
    fn message(&mut self, field: u32, build: impl FnOnce(&mut Writer)) {
        self.tag(field, 2);
        let at = self.0.len();
        self.0.push(0);
        build(self);
        let len = self.0.len() - at - 1;
        if len < 0x80 {
            self.0[at] = len as u8;
        } else {
            let mut prefix = Writer(Vec::with_capacity(10));
            prefix.varint(len as u64);
            self.0.splice(at..at + 1, prefix.0);
        }
    }

    /// A packed repeated field of fixed-width values; omitted when empty, as proto3 does.
    fn packed<const N: usize>(&mut self, field: u32, values: impl ExactSizeIterator<Item = [u8; N]>) {
        if values.len() == 0 {
            return;
        }
        self.tag(field, 2);
        self.varint((values.len() * N) as u64);
        values.for_each(|bytes| self.0.extend_from_slice(&bytes));
    }
}

fn any_value(w: &mut Writer, value: &Value) {
    match value {
        Value::Str(s) => w.bytes_always(1, s.as_bytes()),
        Value::Bool(b) => {
            w.tag(2, 0);
            w.varint(u64::from(*b));
        }
        Value::Int(i) => {
            w.tag(3, 0);
            w.varint(*i as u64);
        }
        Value::Double(d) => {
            w.tag(4, 1);
            w.0.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::StrArray(items) => array(w, items, |v, s| v.bytes_always(1, s.as_bytes())),
        Value::BoolArray(items) => array(w, items, |v, b| any_value(v, &Value::Bool(*b))),
        Value::IntArray(items) => array(w, items, |v, i| any_value(v, &Value::Int(*i))),
        Value::DoubleArray(items) => array(w, items, |v, d| any_value(v, &Value::Double(*d))),
        Value::Bytes(bytes) => w.bytes_always(7, bytes),
        Value::Array(items) => array(w, items, any_value),
        Value::Map(pairs) => w.message(6, |list| {
            for (key, value) in pairs {
                list.message(1, |kv| {
                    kv.string(1, key);
                    kv.message(2, |v| any_value(v, value));
                });
            }
        }),
        Value::Empty => {}
    }
}

/// An `ArrayValue` of `items`, each written as an `AnyValue` by `write`.
fn array<T>(w: &mut Writer, items: &[T], write: impl Fn(&mut Writer, &T)) {
    w.message(5, |arr| {
        for item in items {
            arr.message(1, |v| write(v, item));
        }
    });
}

fn attributes(w: &mut Writer, field: u32, attrs: &Attributes) {
    for (key, value) in attrs.iter() {
        w.message(field, |kv| {
            kv.string(1, key);
            kv.message(2, |v| any_value(v, value));
        });
    }
}

fn id_bytes_128(id: u128) -> [u8; 16] {
    id.to_be_bytes()
}

fn span(w: &mut Writer, s: &SpanData) {
    w.bytes(1, &id_bytes_128(s.trace_id));
    w.bytes(2, &s.span_id.to_be_bytes());
    w.string(3, &s.trace_state);
    if let Some(parent) = s.parent_span_id {
        w.bytes(4, &parent.to_be_bytes());
    }
    w.string(5, &s.name);
    w.uint(6, s.kind as u64 + 1); // OTLP counts SPAN_KIND_UNSPECIFIED as 0
    w.fixed64(7, s.start_ns);
    w.fixed64(8, s.end_ns);
    attributes(w, 9, &s.attributes);
    w.uint(10, s.attributes.dropped as u64);
    for event in &s.events {
        w.message(11, |e| {
            e.fixed64(1, event.time_ns);
            e.string(2, &event.name);
            attributes(e, 3, &event.attributes);
            e.uint(4, event.attributes.dropped as u64);
        });
    }
    w.uint(12, s.dropped_events as u64);
    for link in &s.links {
        w.message(13, |l| {
            l.bytes(1, &id_bytes_128(link.trace_id));
            l.bytes(2, &link.span_id.to_be_bytes());
            l.string(3, &link.trace_state);
            attributes(l, 4, &link.attributes);
            l.uint(5, link.attributes.dropped as u64);
            l.fixed32(
                6,
                link.trace_flags as u32 | FLAG_HAS_IS_REMOTE | if link.is_remote { FLAG_IS_REMOTE } else { 0 },
            );
        });
    }
    w.uint(14, s.dropped_links as u64);
    if s.status.code != StatusCode::Unset {
        w.message(15, |st| {
            st.string(2, &s.status.description);
            st.uint(3, s.status.code as u64);
        });
    }
    let parent_remote = if s.parent_span_id.is_some() && s.parent_is_remote {
        FLAG_IS_REMOTE
    } else {
        0
    };
    w.fixed32(16, s.trace_flags as u32 | FLAG_HAS_IS_REMOTE | parent_remote);
}

fn log_record(w: &mut Writer, r: &LogData) {
    w.fixed64(1, r.time_ns);
    w.uint(2, r.severity_number as u64);
    w.string(3, &r.severity_text);
    if let Some(body) = &r.body {
        w.message(5, |v| any_value(v, body));
    }
    attributes(w, 6, &r.attributes);
    w.uint(7, r.attributes.dropped as u64);
    w.fixed32(8, r.trace_flags as u32);
    if r.trace_id != 0 {
        w.bytes(9, &id_bytes_128(r.trace_id));
        w.bytes(10, &r.span_id.to_be_bytes());
    }
    w.fixed64(11, r.observed_ns);
    w.string(12, &r.event_name);
}

/// A oneof number: written even when zero, its field (`double_field` or `int_field`) says
/// its type.
fn number(w: &mut Writer, value: Number, double_field: u32, int_field: u32) {
    match value {
        Number::Double(d) => {
            w.tag(double_field, 1);
            w.0.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Number::Int(i) => {
            w.tag(int_field, 1);
            w.0.extend_from_slice(&i.to_le_bytes());
        }
    }
}

fn exemplars(w: &mut Writer, field: u32, exemplars: &[Exemplar]) {
    for e in exemplars {
        w.message(field, |x| {
            x.fixed64(2, e.time_ns);
            number(x, e.value, 3, 6);
            if e.trace_id != 0 {
                x.bytes(4, &e.span_id.to_be_bytes());
                x.bytes(5, &id_bytes_128(e.trace_id));
            }
        });
    }
}

fn number_point(w: &mut Writer, p: &NumberPoint) {
    attributes(w, 7, &p.attributes);
    w.fixed64(2, p.start_ns);
    w.fixed64(3, p.time_ns);
    number(w, p.value, 4, 6);
    exemplars(w, 5, &p.exemplars);
}

fn optional_double(w: &mut Writer, field: u32, v: f64) {
    w.tag(field, 1);
    w.0.extend_from_slice(&v.to_bits().to_le_bytes());
}

fn histogram_point(w: &mut Writer, p: &HistogramPoint) {
    attributes(w, 9, &p.attributes);
    w.fixed64(2, p.start_ns);
    w.fixed64(3, p.time_ns);
    w.fixed64(4, p.count);
    optional_double(w, 5, p.sum);
    w.packed(6, p.bucket_counts.iter().map(|c| c.to_le_bytes()));
    w.packed(7, p.bounds.iter().map(|b| b.to_bits().to_le_bytes()));
    exemplars(w, 8, &p.exemplars);
    if p.count > 0 {
        optional_double(w, 11, p.min);
        optional_double(w, 12, p.max);
    }
}

fn exponential_buckets(w: &mut Writer, b: &ExponentialBuckets) {
    w.sint(1, b.offset);
    // Packed varints.
    let mut counts = Writer(Vec::new());
    b.bucket_counts.iter().for_each(|c| counts.varint(*c));
    w.bytes(2, &counts.0);
}

fn exponential_histogram_point(w: &mut Writer, p: &ExponentialHistogramPoint) {
    attributes(w, 1, &p.attributes);
    w.fixed64(2, p.start_ns);
    w.fixed64(3, p.time_ns);
    w.fixed64(4, p.count);
    optional_double(w, 5, p.sum);
    w.sint(6, i32::from(p.scale));
    w.fixed64(7, p.zero_count);
    w.message(8, |b| exponential_buckets(b, &p.positive));
    w.message(9, |b| exponential_buckets(b, &p.negative));
    exemplars(w, 11, &p.exemplars);
    if p.count > 0 {
        optional_double(w, 12, p.min);
        optional_double(w, 13, p.max);
    }
}

fn metric(w: &mut Writer, m: &MetricData) {
    w.string(1, &m.name);
    w.string(2, &m.description);
    w.string(3, &m.unit);
    match &m.data {
        Data::Gauge(points) => w.message(5, |g| {
            for p in points {
                g.message(1, |dp| number_point(dp, p));
            }
        }),
        Data::Sum {
            points,
            temporality,
            monotonic,
        } => w.message(7, |sum| {
            for p in points {
                sum.message(1, |dp| number_point(dp, p));
            }
            sum.uint(2, *temporality as u64);
            sum.uint(3, u64::from(*monotonic));
        }),
        Data::Histogram { points, temporality } => w.message(9, |h| {
            for p in points {
                h.message(1, |dp| histogram_point(dp, p));
            }
            h.uint(2, *temporality as u64);
        }),
        Data::ExponentialHistogram { points, temporality } => w.message(10, |h| {
            for p in points {
                h.message(1, |dp| exponential_histogram_point(dp, p));
            }
            h.uint(2, *temporality as u64);
        }),
    }
}

/// What export requests group by: spans, log records and metrics all carry their scope.
pub trait Scoped {
    fn scope(&self) -> &Scope;
}

impl Scoped for EndedSpan {
    fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl Scoped for LogData {
    fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl Scoped for MetricData {
    fn scope(&self) -> &Scope {
        &self.scope
    }
}

/// Items grouped by instrumentation scope object, scopes in first-seen order.
pub fn by_scope<T: Scoped>(batch: &[T]) -> Vec<(&Scope, Vec<&T>)> {
    let mut index: HashMap<*const Scope, usize> = HashMap::new();
    let mut groups: Vec<(&Scope, Vec<&T>)> = Vec::new();
    for item in batch {
        let scope = item.scope();
        let i = *index.entry(std::ptr::from_ref(scope)).or_insert_with(|| {
            groups.push((scope, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(item);
    }
    groups
}

/// `ExportTraceServiceRequest` for one resource.
pub fn encode_traces(batch: &[EndedSpan], resource: &Resource) -> Vec<u8> {
    encode_request(batch, resource, 256, |w, s| span(w, s))
}

/// `ExportLogsServiceRequest` for one resource.
pub fn encode_logs(batch: &[LogData], resource: &Resource) -> Vec<u8> {
    encode_request(batch, resource, 160, log_record)
}

/// `ExportMetricsServiceRequest` for one resource.
pub fn encode_metrics(batch: &[MetricData], resource: &Resource) -> Vec<u8> {
    encode_request(batch, resource, 256, metric)
}

/// The three requests nest alike, with the same field numbers: resource_{spans,logs,metrics}
/// = 1 holding resource = 1 and scope_{...} = 2, each holding scope = 1 and the items = 2.
fn encode_request<T: Scoped>(
    batch: &[T],
    resource: &Resource,
    bytes_per_item: usize,
    item: fn(&mut Writer, &T),
) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(bytes_per_item * batch.len() + 512));
    w.message(1, |rs| {
        rs.message(1, |r| {
            attributes(r, 1, &resource.attributes);
            r.uint(2, resource.attributes.dropped as u64);
        });
        for (scope, spans) in by_scope(batch) {
            rs.message(2, |ss| {
                ss.message(1, |sc| {
                    sc.string(1, &scope.name);
                    sc.string(2, scope.version.as_deref().unwrap_or(""));
                    attributes(sc, 3, &scope.attributes);
                    sc.uint(4, scope.attributes.dropped as u64);
                });
                for s in spans {
                    ss.message(2, |out| item(out, s));
                }
                ss.string(3, scope.schema_url.as_deref().unwrap_or(""));
            });
        }
        rs.string(3, &resource.schema_url);
    });
    w.0
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

/// Skips one field of wire type `wire`; `None` on malformed input.
fn skip(buf: &[u8], pos: &mut usize, wire: u64) -> Option<()> {
    match wire {
        0 => read_varint(buf, pos).map(drop),
        1 => (*pos + 8 <= buf.len()).then(|| *pos += 8),
        2 => {
            let len = read_varint(buf, pos)? as usize;
            (*pos + len <= buf.len()).then(|| *pos += len)
        }
        5 => (*pos + 4 <= buf.len()).then(|| *pos += 4),
        _ => None,
    }
}

/// Finds the first field `number` of the wanted wire type; `None` if absent or malformed.
fn find(buf: &[u8], number: u64, wire: u64) -> Option<(usize, usize)> {
    let mut pos = 0;
    while pos < buf.len() {
        let key = read_varint(buf, &mut pos)?;
        if key >> 3 == number && key & 7 == wire {
            let start = pos;
            skip(buf, &mut pos, wire)?;
            return Some((start, pos));
        }
        skip(buf, &mut pos, key & 7)?;
    }
    None
}

/// The bytes of length-delimited field `number` (a nested message or a string).
pub fn field_bytes(buf: &[u8], number: u64) -> Option<&[u8]> {
    let (mut start, end) = find(buf, number, 2)?;
    read_varint(buf, &mut start)?;
    buf.get(start..end)
}

/// Varint field `number`.
pub fn field_varint(buf: &[u8], number: u64) -> Option<u64> {
    let (mut start, _) = find(buf, number, 0)?;
    read_varint(buf, &mut start)
}

/// `(rejected items, error_message)` from an `ExportTraceServiceResponse` or
/// `ExportLogsServiceResponse` (same layout), if it carries a partial success.
pub fn partial_success(buf: &[u8]) -> Option<(u64, String)> {
    let inner = field_bytes(buf, 1)?;
    let rejected = field_varint(inner, 1).unwrap_or(0);
    let message = field_bytes(inner, 2)
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    Some((rejected, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_ints() {
        let mut w = Writer::default();
        w.varint(300);
        assert_eq!(w.0, [0xac, 0x02]);
        let mut w = Writer::default();
        any_value(&mut w, &Value::Int(-1));
        assert_eq!(w.0, [0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    #[test]
    fn oneof_values_are_written_even_when_default() {
        let mut w = Writer::default();
        any_value(&mut w, &Value::Str(String::new()));
        assert_eq!(w.0, [0x0a, 0x00]);
        let mut w = Writer::default();
        any_value(&mut w, &Value::Bool(false));
        assert_eq!(w.0, [0x10, 0x00]);
    }

    #[test]
    fn a_map_is_a_kvlist_value() {
        let mut w = Writer::default();
        any_value(&mut w, &Value::Map(vec![("k".into(), Value::Int(1))]));
        // kvlist_value (6) { values (1) { key (1) "k", value (2) { int_value (3) 1 } } }
        assert_eq!(w.0, [0x32, 0x09, 0x0a, 0x07, 0x0a, 0x01, b'k', 0x12, 0x02, 0x18, 0x01]);
    }

    #[test]
    fn partial_success_is_read_and_garbage_is_not() {
        // partial_success { rejected_spans: 3, error_message: "bad" }
        let body = [0x0a, 0x07, 0x08, 0x03, 0x12, 0x03, b'b', b'a', b'd'];
        assert_eq!(partial_success(&body), Some((3, "bad".to_string())));
        assert_eq!(partial_success(&[]), None);
        assert_eq!(partial_success(&[0x0a, 0x50, 0x08]), None);
        assert_eq!(partial_success(&[0xff; 12]), None);
    }

    #[test]
    fn nested_lengths_are_minimal_varints_on_both_sides_of_each_width() {
        // Bodies of 127/128 and 16383/16384 bytes need a 1/2- and 2/3-byte length.
        for body_len in [0, 1, 127, 128, 129, 300, 16_383, 16_384, 70_000] {
            let body = vec![b'x'; body_len];
            let mut in_place = Writer::default();
            in_place.uint(1, 7);
            in_place.message(2, |m| m.0.extend_from_slice(&body));
            in_place.uint(3, 9);
            let mut expected = Writer::default();
            expected.uint(1, 7);
            expected.bytes_always(2, &body);
            expected.uint(3, 9);
            assert_eq!(in_place.0, expected.0, "body of {body_len} bytes");
        }
    }

    #[test]
    fn a_batch_decodes_to_its_spans_with_every_attribute() {
        use ferrotel_sdk::span::{ScopeRef, SpanKind, Status};

        let scope = ScopeRef::new(Scope {
            name: "s".into(),
            version: None,
            schema_url: None,
            attributes: Attributes::default(),
        });
        let span_with = |name: &str, value: Value| {
            Box::new(SpanData {
                trace_id: 1,
                span_id: 2,
                parent_span_id: None,
                parent_is_remote: false,
                trace_flags: 1,
                trace_state: String::new(),
                name: name.into(),
                kind: SpanKind::Server,
                start_ns: 1,
                end_ns: 2,
                attributes: Attributes::new(vec![("k".into(), value)], 0),
                events: Vec::new(),
                dropped_events: 0,
                links: Vec::new(),
                dropped_links: 0,
                status: Status::default(),
                scope: scope.clone(),
            })
        };
        let long = "y".repeat(20_000);
        let batch = [
            span_with("short", Value::Int(5)),
            span_with("long", Value::Str(long.clone())),
            span_with("array", Value::StrArray(vec!["a".into(), long.clone()])),
        ];
        let request = encode_traces(&batch, &Resource::default());
        // Every length-delimited field `number` of `buf`, in order.
        fn all(mut buf: &[u8], number: u64) -> Vec<&[u8]> {
            let mut found = Vec::new();
            while let Some((_, end)) = find(buf, number, 2) {
                found.push(field_bytes(buf, number).unwrap());
                buf = &buf[end..];
            }
            found
        }
        let resource_spans = field_bytes(&request, 1).unwrap();
        let spans = all(field_bytes(resource_spans, 2).unwrap(), 2);
        let names: Vec<&[u8]> = spans.iter().map(|span| field_bytes(span, 5).unwrap()).collect();
        assert_eq!(names, [&b"short"[..], b"long", b"array"]);
        let values: Vec<&[u8]> = spans
            .iter()
            .map(|span| {
                let key_value = field_bytes(span, 9).unwrap();
                assert_eq!(field_bytes(key_value, 1).unwrap(), b"k");
                field_bytes(key_value, 2).unwrap()
            })
            .collect();
        assert_eq!(values[0], [0x18, 5]);
        assert_eq!(field_bytes(values[1], 1).unwrap(), long.as_bytes());
        let items = all(field_bytes(values[2], 5).unwrap(), 1);
        let texts: Vec<&[u8]> = items.iter().map(|item| field_bytes(item, 1).unwrap()).collect();
        assert_eq!(texts, [&b"a"[..], long.as_bytes()]);
    }
}
