//! The viewer's span store: in memory, bounded by a span count and by the bytes the spans hold
//! (`size.rs`), oldest arrivals evicted first.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::mem::size_of;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::size::{block, HeapSize};

pub(crate) type TraceId = [u8; 16];

/// A span with the resource and scope it arrived under, shared by every span of one batch.
pub(crate) struct StoredSpan {
    pub(crate) span: Span,
    pub(crate) origin: Arc<Origin>,
    /// Bytes charged for this span while it is stored (`Store::memory`).
    cost: usize,
}

pub(crate) struct Origin {
    pub(crate) service: String,
    pub(crate) resource: Resource,
    pub(crate) scope_name: String,
    pub(crate) scope_version: String,
}

/// An `Arc`'s block: the two counts, the value, the allocator's overhead.
fn arc_block<T>() -> usize {
    block(2 * size_of::<usize>() + size_of::<T>())
}

impl Origin {
    /// Bytes the origin holds; shared by the spans (or log records, metric points) of one
    /// scope in one request, each of which is charged its share.
    pub(crate) fn cost(&self) -> usize {
        arc_block::<Origin>()
            + self.service.heap_size()
            + self.resource.heap_size()
            + self.scope_name.heap_size()
            + self.scope_version.heap_size()
    }

    pub(crate) fn new(resource: Resource, scope: InstrumentationScope) -> Arc<Origin> {
        let service = string_attribute(&resource.attributes, "service.name")
            .unwrap_or("unknown_service")
            .to_owned();
        Arc::new(Origin {
            service,
            resource,
            scope_name: scope.name,
            scope_version: scope.version,
        })
    }
}

impl StoredSpan {
    /// Bytes this span holds, as `--max-memory` counts them.
    pub(crate) fn cost(&self) -> usize {
        self.cost
    }

    pub(crate) fn trace_id(&self) -> TraceId {
        let mut id = [0; 16];
        id.copy_from_slice(&self.span.trace_id);
        id
    }
}

type KindCounts = [usize; 6];

/// A span's kind as an index into `KindCounts`; unknown numbers count as unspecified.
fn kind_index(kind: i32) -> usize {
    usize::try_from(kind).ok().filter(|k| *k < 6).unwrap_or(0)
}

/// A trace's entry in the index: its id, its span list and the list's block, and the hash
/// table's spare room.
const TRACE_ENTRY_COST: usize = size_of::<TraceId>() + size_of::<Vec<Arc<StoredSpan>>>() + 2 * size_of::<usize>() + 16;

pub(crate) struct Store {
    max_spans: usize,
    max_bytes: usize,
    /// The sum of the stored spans' costs.
    span_bytes: usize,
    arrival: VecDeque<Arc<StoredSpan>>,
    traces: HashMap<TraceId, Vec<Arc<StoredSpan>>>,
    /// Stored spans per service, span name and kind (indexed by the kind's number); names
    /// leave with their last span, so a high-cardinality span name cannot grow this past the
    /// span cap.
    operations: HashMap<String, HashMap<String, KindCounts>>,
    pub(crate) rejected_spans: u64,
    pub(crate) evicted_spans: u64,
}

impl Store {
    pub(crate) fn new(max_spans: usize, max_bytes: usize) -> Self {
        Store {
            max_spans: max_spans.max(1),
            max_bytes,
            span_bytes: 0,
            arrival: VecDeque::new(),
            traces: HashMap::new(),
            operations: HashMap::new(),
            rejected_spans: 0,
            evicted_spans: 0,
        }
    }

    pub(crate) fn span_count(&self) -> usize {
        self.arrival.len()
    }

    /// Bytes the stored spans and their index hold, as `--max-memory` counts them.
    pub(crate) fn memory(&self) -> usize {
        self.span_bytes + self.traces.len() * TRACE_ENTRY_COST
    }

    fn over_limits(&self) -> bool {
        self.arrival.len() > self.max_spans || self.memory() > self.max_bytes
    }

    /// Stores every well-formed span, then evicts the oldest while over either limit (a span
    /// larger than the whole byte limit goes at once, counted); spans whose ids have the wrong
    /// length are counted, not kept.
    pub(crate) fn insert(&mut self, batch: Vec<ResourceSpans>) {
        for resource_spans in batch {
            let resource = resource_spans.resource.unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                let origin = Origin::new(resource.clone(), scope_spans.scope.unwrap_or_default());
                let origin_share = origin.cost().div_ceil(scope_spans.spans.len().max(1));
                let service = &origin.service;
                for span in scope_spans.spans {
                    let ids_valid = span.trace_id.len() == 16
                        && span.span_id.len() == 8
                        && (span.parent_span_id.is_empty() || span.parent_span_id.len() == 8);
                    if !ids_valid {
                        self.rejected_spans += 1;
                        continue;
                    }
                    let names = self.operations.entry(service.clone()).or_default();
                    let kind = kind_index(span.kind);
                    match names.get_mut(&span.name) {
                        Some(counts) => counts[kind] += 1,
                        None => {
                            let mut counts = KindCounts::default();
                            counts[kind] = 1;
                            names.insert(span.name.clone(), counts);
                        }
                    }
                    // The span, its Arc block, its slots in the arrival queue and its trace's list.
                    let cost = span.heap_size() + arc_block::<StoredSpan>() + 2 * size_of::<usize>() + origin_share;
                    let stored = Arc::new(StoredSpan {
                        span,
                        origin: origin.clone(),
                        cost,
                    });
                    self.span_bytes += cost;
                    self.traces.entry(stored.trace_id()).or_default().push(stored.clone());
                    self.arrival.push_back(stored);
                    while self.over_limits() && !self.arrival.is_empty() {
                        self.evict_oldest();
                    }
                }
            }
        }
    }

    fn evict_oldest(&mut self) {
        let Some(oldest) = self.arrival.pop_front() else { return };
        self.evicted_spans += 1;
        self.span_bytes -= oldest.cost;
        let service = &oldest.origin.service;
        if let Some(names) = self.operations.get_mut(service) {
            if let Some(counts) = names.get_mut(&oldest.span.name) {
                counts[kind_index(oldest.span.kind)] -= 1;
                if counts.iter().all(|c| *c == 0) {
                    names.remove(&oldest.span.name);
                }
            }
            if names.is_empty() {
                self.operations.remove(service);
            }
        }
        let trace_id = oldest.trace_id();
        if let Some(spans) = self.traces.get_mut(&trace_id) {
            spans.retain(|s| !Arc::ptr_eq(s, &oldest));
            if spans.is_empty() {
                self.traces.remove(&trace_id);
            }
        }
    }

    /// Calls between services: for each (parent service, child service) pair, how many child
    /// spans (starting within `window`, nanoseconds, when given) had a parent in the other
    /// service, and how many of those ended in error.
    pub(crate) fn dependencies(&self, window: Option<(u64, u64)>) -> BTreeMap<(&str, &str), (u64, u64)> {
        let in_window = |span: &Span| window.is_none_or(|(from, to)| (from..=to).contains(&span.start_time_unix_nano));
        let mut edges = BTreeMap::new();
        for spans in self.traces.values() {
            let services: HashMap<&[u8], &str> = spans
                .iter()
                .map(|s| (s.span.span_id.as_slice(), s.origin.service.as_str()))
                .collect();
            for child in spans.iter().filter(|s| in_window(&s.span)) {
                let Some(&parent_service) = services.get(child.span.parent_span_id.as_slice()) else {
                    continue;
                };
                if parent_service != child.origin.service {
                    let edge: &mut (u64, u64) = edges
                        .entry((parent_service, child.origin.service.as_str()))
                        .or_default();
                    edge.0 += 1;
                    edge.1 += u64::from(
                        child
                            .span
                            .status
                            .as_ref()
                            .is_some_and(|s| s.code == StatusCode::Error as i32),
                    );
                }
            }
        }
        edges
    }

    pub(crate) fn trace(&self, id: &TraceId) -> Option<&[Arc<StoredSpan>]> {
        self.traces.get(id).map(Vec::as_slice)
    }

    /// A trace with the key it is stored under, for results that borrow both.
    pub(crate) fn trace_entry(&self, id: &TraceId) -> Option<(&TraceId, &[Arc<StoredSpan>])> {
        self.traces.get_key_value(id).map(|(id, spans)| (id, spans.as_slice()))
    }

    /// Every stored span, oldest arrival first.
    pub(crate) fn spans(&self) -> impl DoubleEndedIterator<Item = &Arc<StoredSpan>> {
        self.arrival.iter()
    }

    pub(crate) fn trace_count(&self) -> usize {
        self.traces.len()
    }

    /// How many stored traces `keep` accepts, and whether all were looked at: the count stops
    /// at `deadline`, leaving a lower bound.
    pub(crate) fn count_traces(&self, keep: impl Fn(&[Arc<StoredSpan>]) -> bool, deadline: Instant) -> (usize, bool) {
        let mut count = 0;
        for (looked_at, spans) in self.traces.values().enumerate() {
            if looked_at % 1024 == 0 && Instant::now() >= deadline {
                return (count, false);
            }
            count += usize::from(keep(spans));
        }
        (count, true)
    }

    pub(crate) fn services(&self) -> impl Iterator<Item = &str> {
        self.operations.keys().map(String::as_str)
    }

    /// The span names stored for `service` with their kinds, one entry per kind a name was
    /// seen with, sorted; only `kind` when given.
    pub(crate) fn operations_by_kind(&self, service: &str, kind: Option<SpanKind>) -> Vec<(&str, SpanKind)> {
        let mut operations: Vec<(&str, SpanKind)> = self
            .operations
            .get(service)
            .into_iter()
            .flatten()
            .flat_map(|(name, counts)| {
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, count)| **count > 0)
                    .filter_map(move |(index, _)| {
                        let found = SpanKind::try_from(index as i32).ok()?;
                        kind.is_none_or(|want| want == found).then_some((name.as_str(), found))
                    })
            })
            .collect();
        operations.sort_unstable_by_key(|(name, kind)| (*name, *kind as i32));
        operations
    }

    /// The span names stored for `service`, sorted.
    pub(crate) fn operations(&self, service: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .operations
            .get(service)
            .into_iter()
            .flatten()
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Traces for which `keep` holds, most recently received first. Walking arrivals backwards
    /// stops as soon as a caller's limit is met, instead of sorting every stored trace.
    pub(crate) fn traces_newest_first(
        &self,
        keep: impl Fn(&[Arc<StoredSpan>]) -> bool,
    ) -> impl Iterator<Item = (&TraceId, &[Arc<StoredSpan>])> {
        let mut seen = HashSet::new();
        self.arrival.iter().rev().filter_map(move |span| {
            let (id, spans) = self.traces.get_key_value(&span.trace_id())?;
            (seen.insert(*id) && keep(spans)).then_some((id, spans.as_slice()))
        })
    }
}

pub(crate) fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

/// Spans regrouped under their resource and scope, as an OTLP export request would carry them.
pub(crate) fn as_export_request(spans: &[Arc<StoredSpan>]) -> ExportTraceServiceRequest {
    let mut groups: Vec<(&Arc<Origin>, Vec<Span>)> = Vec::new();
    for stored in spans {
        match groups
            .iter_mut()
            .find(|(origin, _)| Arc::ptr_eq(origin, &stored.origin))
        {
            Some((_, group)) => group.push(stored.span.clone()),
            None => groups.push((&stored.origin, vec![stored.span.clone()])),
        }
    }
    let resource_spans = groups
        .into_iter()
        .map(|(origin, spans)| ResourceSpans {
            resource: Some(origin.resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: origin.scope_name.clone(),
                    version: origin.scope_version.clone(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;

    fn batch(service: &str, spans: &[(u8, u8)]) -> Vec<ResourceSpans> {
        let service_name = KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(service.into())),
            }),
            ..Default::default()
        };
        vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![service_name],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .iter()
                    .map(|&(trace, span)| Span {
                        trace_id: vec![trace; 16],
                        span_id: vec![span; 8],
                        name: format!("op{span}"),
                        start_time_unix_nano: span as u64,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    #[test]
    fn evicts_oldest_arrivals_beyond_the_cap() {
        let mut store = Store::new(3, usize::MAX);
        store.insert(batch("a", &[(1, 1), (1, 2), (2, 3)]));
        store.insert(batch("b", &[(3, 4), (3, 5)]));
        assert_eq!(store.span_count(), 3);
        assert_eq!(store.evicted_spans, 2);
        assert!(
            store.trace(&[1; 16]).is_none(),
            "both spans of the oldest trace are gone"
        );
        assert_eq!(store.trace(&[3; 16]).unwrap().len(), 2);
        assert_eq!(store.operations("a"), ["op3"], "names leave with their last span");
        let newest: Vec<_> = store.traces_newest_first(|_| true).map(|(id, _)| id[0]).collect();
        assert_eq!(newest, [3, 2]);
        store.insert(batch("b", &[(4, 6)]));
        assert_eq!(
            store.services().collect::<Vec<_>>(),
            ["b"],
            "a service leaves with its last span"
        );
        assert_eq!(store.operations("b"), ["op4", "op5", "op6"]);
    }

    #[test]
    fn evicts_oldest_beyond_the_byte_limit_and_refuses_a_span_larger_than_it() {
        let big = |trace: u8| {
            let mut spans = batch("a", &[(trace, trace)]);
            spans[0].scope_spans[0].spans[0].name = "x".repeat(100_000);
            spans
        };
        let mut store = Store::new(1000, 250_000);
        for trace in 1..=4 {
            store.insert(big(trace));
        }
        assert_eq!((store.span_count(), store.evicted_spans), (2, 2));
        assert!(
            store.memory() <= 250_000 && store.memory() > 200_000,
            "{}",
            store.memory()
        );
        assert!(store.trace(&[4; 16]).is_some() && store.trace(&[2; 16]).is_none());
        let mut tiny = Store::new(1000, 50_000);
        tiny.insert(big(1));
        assert_eq!((tiny.span_count(), tiny.evicted_spans, tiny.memory()), (0, 1, 0));
    }

    #[test]
    fn counts_spans_with_malformed_ids_instead_of_storing_them() {
        let mut store = Store::new(10, usize::MAX);
        let mut bad = batch("a", &[(1, 1)]);
        bad[0].scope_spans[0].spans[0].trace_id.truncate(3);
        store.insert(bad);
        assert_eq!((store.span_count(), store.rejected_spans), (0, 1));
    }
}
