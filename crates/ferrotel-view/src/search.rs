//! Trace search: the conditions a query sets (from Jaeger's classic parameters, the v3 API's,
//! or ferrotel's own) and how a span satisfies them. Jaeger's rule: a trace matches when one
//! of its spans satisfies every condition; ferrotel can also match conditions spread over
//! several spans of a trace, and says so when only that would find something.

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::Value as Json;

use crate::jaeger::plain_json;
use crate::params::Params;
use crate::store::{Store, StoredSpan, TraceId};
use crate::timefmt;

/// One condition on a span.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Condition {
    Service(String),
    Operation(String),
    /// `key=value`: a span, resource or event attribute, or one of the values Jaeger shows as
    /// tags (`error`, `span.kind`, `otel.status_code`, `otel.status_description`,
    /// `otel.scope.name`, `otel.scope.version`, `event` for an event's name).
    Tag(String, String),
    MinDuration(u64),
    MaxDuration(u64),
    StartsAtOrAfter(u64),
    StartsAtOrBefore(u64),
    Status(StatusCode),
}

impl Condition {
    pub(crate) fn holds(&self, stored: &StoredSpan) -> bool {
        let span = &stored.span;
        let duration = || span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano);
        match self {
            Condition::Service(service) => *service == stored.origin.service,
            Condition::Operation(name) => *name == span.name,
            Condition::Tag(key, want) => tag_holds(stored, key, want),
            Condition::MinDuration(min) => duration() >= *min,
            Condition::MaxDuration(max) => duration() <= *max,
            Condition::StartsAtOrAfter(start) => span.start_time_unix_nano >= *start,
            Condition::StartsAtOrBefore(end) => span.start_time_unix_nano <= *end,
            Condition::Status(code) => status_of(stored) == *code,
        }
    }
}

pub(crate) fn status_of(stored: &StoredSpan) -> StatusCode {
    stored
        .span
        .status
        .as_ref()
        .and_then(|s| StatusCode::try_from(s.code).ok())
        .unwrap_or(StatusCode::Unset)
}

pub(crate) fn kind_of(stored: &StoredSpan) -> SpanKind {
    SpanKind::try_from(stored.span.kind).unwrap_or(SpanKind::Unspecified)
}

/// The lower-case kind names Jaeger uses (`server`...); empty when unspecified.
pub(crate) fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
        SpanKind::Unspecified => "",
    }
}

pub(crate) fn parse_kind(text: &str) -> Result<SpanKind, String> {
    let name = text.trim().to_ascii_lowercase();
    let name = name.strip_prefix("span_kind_").unwrap_or(&name);
    match name {
        "server" => Ok(SpanKind::Server),
        "client" => Ok(SpanKind::Client),
        "producer" => Ok(SpanKind::Producer),
        "consumer" => Ok(SpanKind::Consumer),
        "internal" => Ok(SpanKind::Internal),
        "unspecified" | "" => Ok(SpanKind::Unspecified),
        _ => Err(format!(
            "not a span kind: {text} (server, client, producer, consumer, internal)"
        )),
    }
}

fn tag_holds(stored: &StoredSpan, key: &str, want: &str) -> bool {
    let span = &stored.span;
    let status = || status_of(stored);
    let derived = match key {
        "error" => match want {
            "true" => status() == StatusCode::Error,
            "false" => status() != StatusCode::Error,
            _ => false,
        },
        "span.kind" => kind_name(kind_of(stored)).eq_ignore_ascii_case(want),
        "otel.status_code" => status().as_str_name().strip_prefix("STATUS_CODE_") == Some(&want.to_ascii_uppercase()),
        "otel.status_description" => span.status.as_ref().is_some_and(|s| s.message == want),
        "otel.scope.name" => stored.origin.scope_name == want,
        "otel.scope.version" => stored.origin.scope_version == want,
        "event" => span.events.iter().any(|e| e.name == want),
        _ => false,
    };
    derived
        || span
            .attributes
            .iter()
            .chain(&stored.origin.resource.attributes)
            .chain(span.events.iter().flat_map(|e| &e.attributes))
            .any(|kv| kv.key == key && kv.value.as_ref().is_some_and(|v| value_equals(v, want)))
}

/// Whether an attribute reads as `want` the way the tag list shows it; compared without
/// building the text for the common kinds.
fn value_equals(value: &AnyValue, want: &str) -> bool {
    match value.value.as_ref() {
        Some(Value::StringValue(s)) => s == want,
        Some(Value::BoolValue(b)) => want == if *b { "true" } else { "false" },
        Some(Value::IntValue(i)) => want.parse::<i64>() == Ok(*i),
        Some(Value::DoubleValue(d)) => want.parse::<f64>().is_ok_and(|w| w == *d),
        other => {
            let text = plain_json(other).to_string();
            text == want
        }
    }
}

/// A trace search.
#[derive(Debug, Default)]
pub(crate) struct TraceQuery {
    pub(crate) conditions: Vec<Condition>,
    /// Jaeger's `traceID=` (repeatable): these traces, whatever the other parameters say.
    pub(crate) trace_ids: Vec<TraceId>,
    pub(crate) limit: usize,
    /// ferrotel's `match=trace`: each condition may hold on a different span of the trace.
    pub(crate) across_spans: bool,
}

/// Traces found, newest received first, and how many matched in all.
pub(crate) struct Found<'a> {
    pub(crate) traces: Vec<(&'a TraceId, &'a [Arc<StoredSpan>])>,
    pub(crate) total: usize,
    /// False when counting every match took longer than `COUNT_BUDGET`: `total` is then at
    /// least what was counted in that time.
    pub(crate) total_exact: bool,
}

/// How long a search may spend counting its matches beyond the page it returns, so a
/// live-refreshing list over a million spans stays cheap.
pub(crate) const COUNT_BUDGET: Duration = Duration::from_millis(100);

impl TraceQuery {
    /// Jaeger's classic parameters (`service`, `operation`, `tags` as JSON or logfmt, `tag=k:v`
    /// repeated, `minDuration`/`maxDuration` as Go durations, `start`/`end` in µs or a
    /// `lookback` before `end`, `limit`, `traceID` repeated) plus ferrotel's `status` and
    /// `match=trace`.
    pub(crate) fn parse(params: &Params) -> Result<Self, String> {
        let mut conditions = Vec::new();
        if let Some(service) = params.get("service") {
            conditions.push(Condition::Service(service.to_owned()));
        }
        if let Some(operation) = params.get("operation") {
            conditions.push(Condition::Operation(operation.to_owned()));
        }
        if let Some(tags) = params.get("tags") {
            conditions.extend(parse_tags(tags)?.into_iter().map(|(k, v)| Condition::Tag(k, v)));
        }
        for tag in params.all("tag") {
            let (key, value) = tag
                .split_once(':')
                .ok_or_else(|| format!("tag: expected key:value, got {tag}"))?;
            conditions.push(Condition::Tag(key.to_owned(), value.to_owned()));
        }
        let duration = |key: &str| {
            params
                .get(key)
                .map(|v| parse_go_duration(v).ok_or(format!("{key}: not a duration: {v} (examples: 250ms, 1.5s, 2m)")))
                .transpose()
        };
        if let Some(min) = duration("minDuration")? {
            conditions.push(Condition::MinDuration(min));
        }
        if let Some(max) = duration("maxDuration")? {
            conditions.push(Condition::MaxDuration(max));
        }
        let micros = |key: &str| -> Result<Option<u64>, String> {
            params
                .get(key)
                .map(|v| {
                    v.parse::<u64>()
                        .map(|us| us.saturating_mul(1000))
                        .map_err(|_| format!("{key}: not a number of microseconds: {v}"))
                })
                .transpose()
        };
        let end = micros("end")?;
        let start = match (micros("start")?, params.get("lookback")) {
            (Some(start), _) => Some(start),
            // Jaeger UI sends "custom" with explicit start and end.
            (None, Some("custom")) | (None, None) => None,
            (None, Some(lookback)) => {
                let back = parse_go_duration(lookback).ok_or(format!("lookback: not a duration: {lookback}"))?;
                Some(end.unwrap_or_else(timefmt::now_ns).saturating_sub(back))
            }
        };
        if let Some(start) = start {
            conditions.push(Condition::StartsAtOrAfter(start));
        }
        if let Some(end) = end {
            conditions.push(Condition::StartsAtOrBefore(end));
        }
        if let Some(status) = params.get("status") {
            conditions.push(Condition::Status(parse_status(status)?));
        }
        let trace_ids = params
            .all("traceID")
            .map(|id| parse_trace_id(id).ok_or(format!("traceID: not a trace id: {id}")))
            .collect::<Result<_, _>>()?;
        Ok(TraceQuery {
            conditions,
            trace_ids,
            limit: parse_limit(params.get("limit"), 20)?,
            across_spans: params.get("match") == Some("trace"),
        })
    }

    pub(crate) fn span_matches(&self, stored: &StoredSpan) -> bool {
        self.conditions.iter().all(|c| c.holds(stored))
    }

    pub(crate) fn matches(&self, spans: &[Arc<StoredSpan>]) -> bool {
        if self.across_spans {
            self.conditions.iter().all(|c| spans.iter().any(|s| c.holds(s)))
        } else {
            spans.iter().any(|s| self.span_matches(s))
        }
    }

    /// The newest `limit` matching traces; with `count_all`, how many match in all (a full scan).
    pub(crate) fn find<'a>(&self, store: &'a Store, count_all: bool) -> Found<'a> {
        if !self.trace_ids.is_empty() {
            let traces: Vec<_> = self.trace_ids.iter().filter_map(|id| store.trace_entry(id)).collect();
            let total = traces.len();
            return Found {
                traces,
                total,
                total_exact: true,
            };
        }
        let traces: Vec<_> = store
            .traces_newest_first(|spans| self.matches(spans))
            .take(self.limit)
            .collect();
        let (total, total_exact) = if count_all && traces.len() == self.limit {
            if self.conditions.is_empty() {
                // Every trace matches: no need to walk them all to count.
                (store.trace_count(), true)
            } else {
                // Each trace once from the index, cheaper than walking every arrival.
                let (counted, exact) = store.count_traces(|spans| self.matches(spans), Instant::now() + COUNT_BUDGET);
                (counted.max(traces.len()), exact)
            }
        } else {
            (traces.len(), true)
        };
        Found {
            traces,
            total,
            total_exact,
        }
    }

    /// Whether any condition narrows spans down; without one every span matches trivially.
    pub(crate) fn selects_spans(&self) -> bool {
        !self.conditions.is_empty()
    }

    /// The trace-level search: the same conditions, each allowed on a different span.
    pub(crate) fn across_spans(&self) -> TraceQuery {
        TraceQuery {
            conditions: self.conditions.clone(),
            trace_ids: Vec::new(),
            limit: self.limit,
            across_spans: true,
        }
    }

    pub(crate) fn matching_span_ids(&self, spans: &[Arc<StoredSpan>]) -> Vec<String> {
        spans
            .iter()
            .filter(|s| {
                if self.across_spans {
                    self.conditions.iter().any(|c| c.holds(s))
                } else {
                    self.span_matches(s)
                }
            })
            .map(|s| const_hex::encode(&s.span.span_id))
            .collect()
    }
}

pub(crate) fn parse_limit(text: Option<&str>, default: usize) -> Result<usize, String> {
    match text {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            // Jaeger reads 0 as "the default".
            Ok(0) => Ok(default),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("limit: not a number: {v}")),
        },
    }
}

pub(crate) fn parse_status(text: &str) -> Result<StatusCode, String> {
    match text.to_ascii_lowercase().as_str() {
        "error" => Ok(StatusCode::Error),
        "ok" => Ok(StatusCode::Ok),
        "unset" => Ok(StatusCode::Unset),
        _ => Err(format!("status: expected error, ok or unset, got {text}")),
    }
}

/// A hex trace id; Jaeger clients may drop leading zeros, so it is left-padded to 32 digits.
pub(crate) fn parse_trace_id(text: &str) -> Option<TraceId> {
    let mut id = [0u8; 16];
    (text.len() <= 32 && const_hex::decode_to_slice(format!("{text:0>32}"), &mut id).is_ok()).then_some(id)
}

/// Jaeger's UI sends tags as a JSON object; older clients send logfmt `k=v k2=v2`.
pub(crate) fn parse_tags(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.trim_start().starts_with('{') {
        let map: serde_json::Map<String, Json> = serde_json::from_str(text).map_err(|e| format!("tags: {e}"))?;
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

/// Durations as Jaeger clients send them: Go's syntax ("1.5ms", "100us", "2s", "1m30s"), plus
/// days and weeks for look-backs ("2d"), and the protobuf JSON form of the v3 API ("1.5s").
pub(crate) fn parse_go_duration(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
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
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
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
        assert_eq!(parse_go_duration("2d"), Some(172_800_000_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5 parsecs"), None);
    }

    #[test]
    fn tags_in_every_syntax() {
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
        let params = Params::from_pairs(vec![
            ("tag".into(), "error:true".into()),
            ("tag".into(), "http.url:http://x/y".into()),
            ("traceID".into(), "abc".into()),
            ("traceID".into(), "00000000000000000000000000000def".into()),
        ]);
        let query = TraceQuery::parse(&params).unwrap();
        assert_eq!(
            query.conditions,
            [
                Condition::Tag("error".into(), "true".into()),
                Condition::Tag("http.url".into(), "http://x/y".into())
            ]
        );
        assert_eq!(query.trace_ids.len(), 2);
        assert_eq!(query.trace_ids[0][15], 0xbc);
        let bad = Params::from_pairs(vec![("tag".into(), "no-colon".into())]);
        assert!(TraceQuery::parse(&bad).is_err());
    }
}
