//! Metric instruments and their aggregation: sums (counters, up-down counters), last values
//! (gauges), explicit-bucket and base-2 exponential histograms ([`exponential`]), one series
//! per distinct attribute set, collected into [`MetricData`] with cumulative or delta
//! temporality.
//!
//! An instrument feeds one metric stream per matching [`View`] (or one default stream when
//! none matches): each stream has its own name, description, attribute filter and
//! aggregation. A stream whose aggregation is left to the default takes what its reader
//! prefers for the instrument kind (the OTLP exporter's default histogram aggregation, a
//! Python reader's preferred aggregation), so the aggregation is chosen per reader.
//!
//! Recording takes one short lock per instrument; streams are keyed by a canonical encoding of
//! their (sorted) attributes, and each stream keeps one aggregation per reader of its provider
//! ([`ReaderSlot`]), so readers with different temporalities and collection times never see
//! each other's resets. Past the cardinality limit, new attribute sets share one overflow
//! stream marked `otel.metric.overflow=true`, as the spec asks, so memory stays bounded.
//!
//! Measurements made in a span (as the exemplar filter decides, by the caller) can become
//! exemplars: histograms keep the last one per bucket, other streams one chosen uniformly among
//! those since the last collection; each collection hands them out and starts afresh.

pub mod exponential;
pub mod view;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferrotel_config::TemporalityPreference;

use crate::span::Scope;
use crate::sync::lock;
use crate::value::{Attributes, Value};
pub use exponential::ExponentialHistogram;
pub use view::{Aggregation, View};

/// Streams per instrument before overflow (the spec's default cardinality limit).
pub const CARDINALITY_LIMIT: usize = 2000;

/// The spec's default explicit bucket boundaries.
pub const DEFAULT_BOUNDARIES: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstrumentKind {
    Counter,
    UpDownCounter,
    Histogram,
    Gauge,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
}

impl InstrumentKind {
    pub fn is_observable(self) -> bool {
        matches!(
            self,
            InstrumentKind::ObservableCounter
                | InstrumentKind::ObservableUpDownCounter
                | InstrumentKind::ObservableGauge
        )
    }

    fn is_monotonic(self) -> bool {
        matches!(self, InstrumentKind::Counter | InstrumentKind::ObservableCounter)
    }

    /// The temporality `preference` (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE) gives
    /// this kind: delta only where the spec's table says so.
    pub fn temporality(self, preference: TemporalityPreference) -> Temporality {
        use InstrumentKind::*;
        match (preference, self) {
            (TemporalityPreference::Delta, Counter | ObservableCounter | Histogram) => Temporality::Delta,
            (TemporalityPreference::LowMemory, Counter | Histogram) => Temporality::Delta,
            _ => Temporality::Cumulative,
        }
    }
}

/// OTLP's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Temporality {
    Delta = 1,
    Cumulative = 2,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Double(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Double(d) => d,
        }
    }

    /// Ints stay ints until a double is added.
    fn add(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Number::Int(a.saturating_add(b)),
            (a, b) => Number::Double(a.as_f64() + b.as_f64()),
        }
    }

    fn sub(self, other: Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Number::Int(a.saturating_sub(b)),
            (a, b) => Number::Double(a.as_f64() - b.as_f64()),
        }
    }
}

pub use ferrotel_config::ExemplarFilter;

/// The span a measurement was made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredIn {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

/// A measurement kept with the span it was made in, linking a point to a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub time_ns: u64,
    pub value: Number,
    pub trace_id: u128,
    pub span_id: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumberPoint {
    pub attributes: Attributes,
    pub start_ns: u64,
    pub time_ns: u64,
    pub value: Number,
    pub exemplars: Vec<Exemplar>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    pub attributes: Attributes,
    pub start_ns: u64,
    pub time_ns: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub bucket_counts: Vec<u64>,
    pub bounds: Arc<[f64]>,
    /// Which bounds were written as integers (`1`, not `1.0`), for exporters that print them
    /// as written (Prometheus' `le`, as Python prints the numbers).
    pub integral_bounds: Arc<[bool]>,
    pub exemplars: Vec<Exemplar>,
}

/// An explicit bucket boundary as the instrument was given it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Boundary {
    pub value: f64,
    /// Given as an integer.
    pub integral: bool,
}

/// One sign's buckets of an exponential histogram point: `bucket_counts[i]` counts bucket
/// `offset + i`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExponentialBuckets {
    pub offset: i32,
    pub bucket_counts: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialHistogramPoint {
    pub attributes: Attributes,
    pub start_ns: u64,
    pub time_ns: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub scale: i8,
    pub zero_count: u64,
    pub positive: ExponentialBuckets,
    pub negative: ExponentialBuckets,
    pub exemplars: Vec<Exemplar>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Gauge(Vec<NumberPoint>),
    Sum {
        points: Vec<NumberPoint>,
        temporality: Temporality,
        monotonic: bool,
    },
    Histogram {
        points: Vec<HistogramPoint>,
        temporality: Temporality,
    },
    ExponentialHistogram {
        points: Vec<ExponentialHistogramPoint>,
        temporality: Temporality,
    },
}

/// One instrument's points at one collection, ready to export.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricData {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub scope: Arc<Scope>,
    pub data: Data,
}

impl MetricData {
    /// How many data points this metric carries.
    pub fn points(&self) -> usize {
        match &self.data {
            Data::Gauge(points) | Data::Sum { points, .. } => points.len(),
            Data::Histogram { points, .. } => points.len(),
            Data::ExponentialHistogram { points, .. } => points.len(),
        }
    }
}

impl crate::pipeline::Item for MetricData {
    const SIGNAL: &'static str = "metrics";
    const NOUN: &'static str = "data point(s)";

    fn weight(&self) -> u64 {
        self.points() as u64
    }
}

#[derive(Debug)]
enum State {
    Sum(Number),
    Last(Number),
    Histogram {
        bounds: Arc<[f64]>,
        integral: Arc<[bool]>,
        counts: Vec<u64>,
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
    },
    Exponential(Box<ExponentialHistogram>),
}

/// An aggregation as one reader of one stream applies it, the default resolved.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Drop,
    Sum,
    LastValue,
    Explicit { bounds: Arc<[f64]>, integral: Arc<[bool]> },
    Exponential { max_size: u32, max_scale: i8 },
}

impl Resolved {
    /// `chosen` for an instrument of `kind` with the advisory `boundaries`.
    fn of(chosen: &Aggregation, kind: InstrumentKind, advisory: Option<&[Boundary]>) -> Resolved {
        use InstrumentKind::*;
        match chosen {
            Aggregation::Default => match kind {
                Counter | UpDownCounter | ObservableCounter | ObservableUpDownCounter => Resolved::Sum,
                Gauge | ObservableGauge => Resolved::LastValue,
                Histogram => Resolved::explicit(advisory),
            },
            Aggregation::Drop => Resolved::Drop,
            Aggregation::Sum => Resolved::Sum,
            Aggregation::LastValue => Resolved::LastValue,
            Aggregation::ExplicitBucketHistogram { boundaries } => {
                Resolved::explicit(boundaries.as_deref().or(advisory))
            }
            Aggregation::Base2ExponentialHistogram { max_size, max_scale } => Resolved::Exponential {
                max_size: *max_size,
                max_scale: *max_scale,
            },
        }
    }

    /// Explicit buckets at `boundaries` (the spec's defaults when none), sorted, finite and
    /// distinct.
    fn explicit(boundaries: Option<&[Boundary]>) -> Resolved {
        let mut bounds: Vec<Boundary> = match boundaries {
            Some(given) => given.to_vec(),
            None => DEFAULT_BOUNDARIES
                .iter()
                .map(|value| Boundary {
                    value: *value,
                    integral: false,
                })
                .collect(),
        };
        bounds.retain(|b| b.value.is_finite());
        bounds.sort_by(|a, b| a.value.total_cmp(&b.value));
        bounds.dedup_by(|a, b| a.value == b.value);
        Resolved::Explicit {
            bounds: bounds.iter().map(|b| b.value).collect(),
            integral: bounds.iter().map(|b| b.integral).collect(),
        }
    }
}

/// A reader's place in the instruments of its provider. Each reader of a provider
/// aggregates on its own, as the spec asks: its own temporality, its own collections and
/// exemplars (an OTLP exporter on delta and a Prometheus endpoint on cumulative side by side).
pub type ReaderSlot = usize;

/// One series' aggregation for one reader.
#[derive(Debug)]
struct Series {
    start_ns: u64,
    state: State,
    /// Recorded (or observed) since the reader's last collection.
    updated: bool,
    /// An observable counter's last observed total, to report deltas from.
    last_observed: Option<Number>,
    /// Histograms: one slot per bucket; others: one slot.
    exemplars: Vec<Option<Exemplar>>,
    /// Exemplar candidates since the last collection, for uniform sampling into one slot.
    offered: u64,
}

#[derive(Debug)]
struct Stream {
    attributes: Attributes,
    /// Indexed by reader slot; `None` where that reader holds nothing for the stream (not
    /// recorded since the reader joined, or a delta reader that reported it and has seen
    /// nothing since).
    per_reader: Vec<Option<Series>>,
}

#[derive(Debug, Default)]
struct Streams {
    /// The slots of the readers measurements are aggregated for, with the aggregation each
    /// applies (a dropped stream's readers are not listed).
    readers: Vec<(ReaderSlot, Resolved)>,
    /// Looked up at every measurement: foldhash is cheaper than std's SipHash on a ~100-byte
    /// key (SipHash was ~1.6k instructions of a Flask request's metrics, callgrind), and its
    /// per-process seed with the cardinality limit keeps a crafted attribute value from doing harm.
    by_attributes: HashMap<Vec<u8>, Stream, foldhash::fast::RandomState>,
}

impl Streams {
    /// Drops the streams no reader holds anything for.
    fn forget_empty(&mut self) {
        self.by_attributes
            .retain(|_, stream| stream.per_reader.iter().any(Option::is_some));
    }
}

/// What the API's `create_*` call describes.
#[derive(Debug, Clone)]
pub struct Descriptor {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub kind: InstrumentKind,
    pub scope: Arc<Scope>,
    /// The advisory explicit bucket boundaries, for histograms.
    pub advisory: Option<Vec<Boundary>>,
}

/// An instrument of the Metrics API and the metric streams it feeds: one per matching view,
/// or the default one.
#[derive(Debug)]
pub struct Instrument {
    pub name: String,
    pub description: String,
    pub unit: String,
    pub kind: InstrumentKind,
    pub scope: Arc<Scope>,
    pub exemplar_filter: ExemplarFilter,
    streams: Vec<MetricStream>,
}

/// One metric stream: its identity as exported, its attribute filter and aggregation, and
/// its series per attribute set.
#[derive(Debug)]
struct MetricStream {
    name: String,
    description: String,
    unit: String,
    kind: InstrumentKind,
    scope: Arc<Scope>,
    exemplar_filter: ExemplarFilter,
    /// The view's aggregation; [`Aggregation::Default`] leaves it to each reader.
    aggregation: Aggregation,
    advisory: Option<Vec<Boundary>>,
    /// Only these attribute keys are kept, when a view says so.
    attribute_keys: Option<Vec<String>>,
    streams: Mutex<Streams>,
}

/// The attributes in key order (a later duplicate key wins) and their canonical bytes, so
/// `{a, b}` and `{b, a}` are one stream.
fn canonical(mut attributes: Vec<(String, Value)>) -> (Vec<u8>, Attributes) {
    attributes.reverse();
    attributes.sort_by(|a, b| a.0.cmp(&b.0));
    attributes.dedup_by(|later, earlier| later.0 == earlier.0);
    let mut key = Vec::with_capacity(attributes.len() * 16);
    for (k, v) in &attributes {
        key.extend_from_slice(k.as_bytes());
        key.push(0);
        match v {
            Value::Str(s) => {
                key.push(1);
                key.extend_from_slice(s.as_bytes());
            }
            Value::Bool(b) => key.extend_from_slice(&[2, u8::from(*b)]),
            Value::Int(i) => {
                key.push(3);
                key.extend_from_slice(&i.to_le_bytes());
            }
            Value::Double(d) => {
                key.push(4);
                key.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            // Arrays are rare on metrics; their debug text is canonical enough.
            other => {
                key.push(5);
                key.extend_from_slice(format!("{other:?}").as_bytes());
            }
        }
        key.push(0);
    }
    (key, Attributes::new(attributes, 0))
}

/// An attribute set put in canonical order once, for measurements made again and again with
/// it (an instrumentation's set per statement): recording with it skips the ordering and the
/// key building.
#[derive(Debug, Clone)]
pub struct PreparedAttributes {
    key: Vec<u8>,
    attributes: Attributes,
}

impl PreparedAttributes {
    pub fn new(attributes: Vec<(String, Value)>) -> PreparedAttributes {
        let (key, attributes) = canonical(attributes);
        PreparedAttributes { key, attributes }
    }

    /// The pairs, in canonical order: to record the set with one more attribute.
    pub fn to_vec(&self) -> Vec<(String, Value)> {
        self.attributes.to_vec()
    }
}

/// A measurement's attributes as the caller hands them over.
#[derive(Clone)]
enum Measured<'a> {
    Given(Vec<(String, Value)>),
    Prepared(&'a PreparedAttributes),
}

impl Measured<'_> {
    fn into_items(self) -> Vec<(String, Value)> {
        match self {
            Measured::Given(items) => items,
            Measured::Prepared(prepared) => prepared.attributes.to_vec(),
        }
    }
}

/// Which readers a measurement goes to.
#[derive(Clone, Copy)]
enum Recipients {
    /// Every reader: a synchronous measurement.
    Every,
    /// One reader: what a callback observed during that reader's collection.
    One(ReaderSlot),
}

impl Instrument {
    /// An instrument with the default stream, aggregating for `readers` (each with the
    /// aggregation it prefers for this kind).
    pub fn new(
        descriptor: Descriptor,
        exemplar_filter: ExemplarFilter,
        readers: Vec<(ReaderSlot, Aggregation)>,
    ) -> Instrument {
        Instrument::with_views(descriptor, exemplar_filter, readers, &[])
    }

    /// An instrument feeding one stream per view of `views` that selects it, or the default
    /// stream when none does.
    pub fn with_views(
        descriptor: Descriptor,
        exemplar_filter: ExemplarFilter,
        readers: Vec<(ReaderSlot, Aggregation)>,
        views: &[View],
    ) -> Instrument {
        let matching: Vec<&View> = views.iter().filter(|view| view.selects(&descriptor)).collect();
        let stream = |view: Option<&View>| {
            let aggregation = view.map_or(Aggregation::Default, |v| v.aggregation.clone());
            let stream = MetricStream {
                name: view
                    .and_then(|v| v.name.clone())
                    .unwrap_or_else(|| descriptor.name.clone()),
                description: view
                    .and_then(|v| v.description.clone())
                    .unwrap_or_else(|| descriptor.description.clone()),
                unit: descriptor.unit.clone(),
                kind: descriptor.kind,
                scope: descriptor.scope.clone(),
                exemplar_filter,
                aggregation,
                advisory: descriptor.advisory.clone(),
                attribute_keys: view.and_then(|v| v.attribute_keys.clone()),
                streams: Mutex::new(Streams::default()),
            };
            for (slot, preferred) in &readers {
                stream.add_reader(*slot, preferred);
            }
            stream
        };
        let streams = if matching.is_empty() {
            vec![stream(None)]
        } else {
            matching.into_iter().map(|view| stream(Some(view))).collect()
        };
        Instrument {
            name: descriptor.name,
            description: descriptor.description,
            unit: descriptor.unit,
            kind: descriptor.kind,
            scope: descriptor.scope,
            exemplar_filter,
            streams,
        }
    }

    /// From now on, measurements are aggregated for `slot` too (starting from nothing), with
    /// `preferred` where a stream leaves the aggregation to its reader.
    pub fn add_reader(&self, slot: ReaderSlot, preferred: &Aggregation) {
        self.streams
            .iter()
            .for_each(|stream| stream.add_reader(slot, preferred));
    }

    /// Stops aggregating for `slot` and forgets what it held.
    pub fn remove_reader(&self, slot: ReaderSlot) {
        self.streams.iter().for_each(|stream| stream.remove_reader(slot));
    }

    /// A synchronous measurement (`add`, `record`, `set`) made outside any span.
    pub fn record(&self, value: Number, attributes: Vec<(String, Value)>, now_ns: u64) {
        self.record_in(value, attributes, now_ns, None);
    }

    /// The same, made in `span`, which the exemplar filter may keep with the point.
    pub fn record_in(&self, value: Number, attributes: Vec<(String, Value)>, now_ns: u64, span: Option<MeasuredIn>) {
        self.measure(value, Measured::Given(attributes), now_ns, span, Recipients::Every);
    }

    /// The same with an attribute set put in order beforehand.
    pub fn record_prepared(
        &self,
        value: Number,
        attributes: &PreparedAttributes,
        now_ns: u64,
        span: Option<MeasuredIn>,
    ) {
        self.measure(value, Measured::Prepared(attributes), now_ns, span, Recipients::Every);
    }

    /// What an observable instrument's callback reported during the collection of the
    /// reader in `slot`: the value replaces the previous one, for that reader only.
    pub fn observe(&self, slot: ReaderSlot, value: Number, attributes: Vec<(String, Value)>, now_ns: u64) {
        self.measure(value, Measured::Given(attributes), now_ns, None, Recipients::One(slot));
    }

    fn measure(
        &self,
        value: Number,
        attributes: Measured<'_>,
        now_ns: u64,
        span: Option<MeasuredIn>,
        into: Recipients,
    ) {
        match &self.streams[..] {
            [only] => only.measure(value, attributes, now_ns, span, into),
            streams => {
                for stream in streams {
                    stream.measure(value, attributes.clone(), now_ns, span, into);
                }
            }
        }
    }

    /// The points the reader in `slot` is to see now, one metric per stream that has any.
    /// Delta temporality reports what changed since that reader's last collection and
    /// starts afresh.
    pub fn collect(&self, slot: ReaderSlot, temporality: Temporality, now_ns: u64) -> Vec<MetricData> {
        self.streams
            .iter()
            .filter_map(|stream| stream.collect(slot, temporality, now_ns))
            .collect()
    }
}

impl MetricStream {
    fn add_reader(&self, slot: ReaderSlot, preferred: &Aggregation) {
        let chosen = match self.aggregation {
            Aggregation::Default => preferred,
            ref own => own,
        };
        let resolved = Resolved::of(chosen, self.kind, self.advisory.as_deref());
        if resolved == Resolved::Drop {
            return;
        }
        let mut streams = lock(&self.streams);
        if !streams.readers.iter().any(|(s, _)| *s == slot) {
            streams.readers.push((slot, resolved));
        }
    }

    fn remove_reader(&self, slot: ReaderSlot) {
        let mut streams = lock(&self.streams);
        streams.readers.retain(|(s, _)| *s != slot);
        for stream in streams.by_attributes.values_mut() {
            if let Some(held) = stream.per_reader.get_mut(slot) {
                *held = None;
            }
        }
        streams.forget_empty();
    }

    fn fresh_state(resolved: &Resolved, value: Number) -> State {
        match resolved {
            Resolved::Explicit { bounds, integral } => State::Histogram {
                bounds: bounds.clone(),
                integral: integral.clone(),
                counts: vec![0; bounds.len() + 1],
                count: 0,
                sum: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            },
            Resolved::Exponential { max_size, max_scale } => {
                State::Exponential(Box::new(ExponentialHistogram::new(*max_size, *max_scale)))
            }
            Resolved::LastValue => State::Last(value),
            Resolved::Sum | Resolved::Drop => State::Sum(match value {
                Number::Int(_) => Number::Int(0),
                Number::Double(_) => Number::Double(0.0),
            }),
        }
    }

    fn measure(
        &self,
        value: Number,
        attributes: Measured<'_>,
        now_ns: u64,
        span: Option<MeasuredIn>,
        into: Recipients,
    ) {
        let span = match (self.exemplar_filter, span) {
            (ExemplarFilter::AlwaysOff, _) => None,
            (ExemplarFilter::AlwaysOn, span) => Some(span.map_or((0, 0), |s| (s.trace_id, s.span_id))),
            (ExemplarFilter::TraceBased, Some(s)) if s.sampled => Some((s.trace_id, s.span_id)),
            (ExemplarFilter::TraceBased, _) => None,
        };
        let exemplar = span.map(|(trace_id, span_id)| Exemplar {
            time_ns: now_ns,
            value,
            trace_id,
            span_id,
        });
        let mut guard = lock(&self.streams);
        let Streams { readers, by_attributes } = &mut *guard;
        // Nothing reads this stream: no attribute set is put in order for nobody.
        if readers.is_empty() {
            return;
        }
        // The set in canonical order and its series' key: put in order here, unless the
        // caller did once for all and no view drops keys from it.
        let (mut key, mut ordered): (Cow<'_, [u8]>, Cow<'_, Attributes>) = match attributes {
            Measured::Prepared(prepared) if self.attribute_keys.is_none() => {
                (Cow::Borrowed(&prepared.key[..]), Cow::Borrowed(&prepared.attributes))
            }
            measured => {
                let items = measured.into_items();
                let items = match &self.attribute_keys {
                    Some(keys) => items.into_iter().filter(|(k, _)| keys.contains(k)).collect(),
                    None => items,
                };
                let (key, attributes) = canonical(items);
                (Cow::Owned(key), Cow::Owned(attributes))
            }
        };
        // A series already there is found with one hash of its key; a new one is added first.
        let stream = match by_attributes.get_mut(&*key) {
            Some(stream) => stream,
            None => {
                if by_attributes.len() >= CARDINALITY_LIMIT - 1 {
                    let (overflow_key, overflow) = canonical(vec![("otel.metric.overflow".into(), Value::Bool(true))]);
                    key = Cow::Owned(overflow_key);
                    ordered = Cow::Owned(overflow);
                }
                by_attributes.entry(key.into_owned()).or_insert_with(|| Stream {
                    attributes: ordered.into_owned(),
                    per_reader: Vec::new(),
                })
            }
        };
        let mut aggregate = |slot: ReaderSlot, resolved: &Resolved| {
            if stream.per_reader.len() <= slot {
                stream.per_reader.resize_with(slot + 1, || None);
            }
            let aggregation = stream.per_reader[slot].get_or_insert_with(|| Series {
                start_ns: now_ns,
                state: MetricStream::fresh_state(resolved, value),
                updated: false,
                last_observed: None,
                exemplars: Vec::new(),
                offered: 0,
            });
            self.aggregate(aggregation, value, exemplar);
        };
        match into {
            Recipients::Every => readers.iter().for_each(|(slot, resolved)| aggregate(*slot, resolved)),
            Recipients::One(slot) => {
                if let Some((_, resolved)) = readers.iter().find(|(s, _)| *s == slot) {
                    aggregate(slot, resolved);
                }
            }
        }
    }

    fn aggregate(&self, aggregation: &mut Series, value: Number, exemplar: Option<Exemplar>) {
        aggregation.updated = true;
        // The explicit bucket this value lands in, for its count and its exemplar slot.
        let bucket = match &aggregation.state {
            State::Histogram { bounds, .. } => bounds.partition_point(|b| *b < value.as_f64()),
            _ => 0,
        };
        if let Some(exemplar) = exemplar {
            let slot = match &aggregation.state {
                State::Histogram { counts, .. } => {
                    aggregation.exemplars.resize(counts.len(), None);
                    Some(bucket)
                }
                _ => {
                    // Reservoir sampling with one slot: the n-th candidate replaces the kept
                    // one with probability 1/n.
                    aggregation.exemplars.resize(1, None);
                    aggregation.offered += 1;
                    (crate::ids::random_below(aggregation.offered) == 0).then_some(0)
                }
            };
            if let Some(slot) = slot {
                aggregation.exemplars[slot] = Some(exemplar);
            }
        }
        let observable = self.kind.is_observable();
        match &mut aggregation.state {
            State::Sum(total) if observable => *total = value,
            State::Sum(total) => *total = total.add(value),
            State::Last(last) => *last = value,
            State::Exponential(histogram) => histogram.record(value.as_f64()),
            State::Histogram {
                counts,
                count,
                sum,
                min,
                max,
                ..
            } => {
                let v = value.as_f64();
                counts[bucket] += 1;
                *count += 1;
                *sum += v;
                *min = min.min(v);
                *max = max.max(v);
            }
        }
    }

    /// The stream's points for the reader in `slot`; `None` when there is nothing to
    /// report.
    fn collect(&self, slot: ReaderSlot, temporality: Temporality, now_ns: u64) -> Option<MetricData> {
        let mut streams = lock(&self.streams);
        let resolved = streams.readers.iter().find(|(s, _)| *s == slot)?.1.clone();
        let delta = temporality == Temporality::Delta;
        let observable = self.kind.is_observable();
        let mut numbers = Vec::new();
        let mut histograms = Vec::new();
        let mut exponentials = Vec::new();
        for stream in streams.by_attributes.values_mut() {
            let Some(held) = stream.per_reader.get_mut(slot) else {
                continue;
            };
            let Some(aggregation) = held else { continue };
            // Observable instruments report only what the callbacks observed this time; delta
            // streams only what was recorded since the last collection, and one that saw
            // nothing since is gone (it comes back when recorded).
            if (observable || delta) && !aggregation.updated {
                if delta && !observable {
                    *held = None;
                }
                continue;
            }
            aggregation.updated = false;
            let exemplars: Vec<Exemplar> = aggregation.exemplars.drain(..).flatten().collect();
            aggregation.offered = 0;
            match &mut aggregation.state {
                State::Sum(total) => {
                    let value = match (delta && observable, aggregation.last_observed) {
                        (true, Some(previous)) => total.sub(previous),
                        _ => *total,
                    };
                    if delta && observable {
                        aggregation.last_observed = Some(*total);
                    }
                    numbers.push(NumberPoint {
                        attributes: stream.attributes.clone(),
                        start_ns: aggregation.start_ns,
                        time_ns: now_ns,
                        value,
                        exemplars,
                    });
                    if delta && !observable {
                        *total = total.sub(*total);
                    }
                }
                State::Last(value) => numbers.push(NumberPoint {
                    attributes: stream.attributes.clone(),
                    start_ns: aggregation.start_ns,
                    time_ns: now_ns,
                    value: *value,
                    exemplars,
                }),
                State::Exponential(histogram) => {
                    let interval = if delta {
                        histogram.take_interval()
                    } else {
                        histogram.cumulative()
                    };
                    let buckets = |b: &exponential::Buckets| ExponentialBuckets {
                        offset: b.offset(),
                        bucket_counts: b.counts(),
                    };
                    exponentials.push(ExponentialHistogramPoint {
                        attributes: stream.attributes.clone(),
                        start_ns: aggregation.start_ns,
                        time_ns: now_ns,
                        count: interval.count,
                        sum: interval.sum,
                        min: interval.min,
                        max: interval.max,
                        scale: interval.scale.unwrap_or(0),
                        zero_count: interval.zero_count,
                        positive: buckets(&interval.positive),
                        negative: buckets(&interval.negative),
                        exemplars,
                    });
                }
                State::Histogram {
                    bounds,
                    integral,
                    counts,
                    count,
                    sum,
                    min,
                    max,
                } => {
                    histograms.push(HistogramPoint {
                        attributes: stream.attributes.clone(),
                        start_ns: aggregation.start_ns,
                        time_ns: now_ns,
                        count: *count,
                        sum: *sum,
                        min: *min,
                        max: *max,
                        bucket_counts: counts.clone(),
                        bounds: bounds.clone(),
                        integral_bounds: integral.clone(),
                        exemplars,
                    });
                    if delta {
                        counts.iter_mut().for_each(|c| *c = 0);
                        (*count, *sum, *min, *max) = (0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
                    }
                }
            }
            if delta {
                aggregation.start_ns = now_ns;
            }
        }
        if delta && !observable {
            streams.forget_empty();
        }
        drop(streams);
        if numbers.is_empty() && histograms.is_empty() && exponentials.is_empty() {
            return None;
        }
        let data = match resolved {
            Resolved::Explicit { .. } => Data::Histogram {
                points: histograms,
                temporality,
            },
            Resolved::Exponential { .. } => Data::ExponentialHistogram {
                points: exponentials,
                temporality,
            },
            Resolved::LastValue => Data::Gauge(numbers),
            Resolved::Sum | Resolved::Drop => Data::Sum {
                points: numbers,
                temporality,
                monotonic: self.kind.is_monotonic(),
            },
        };
        Some(MetricData {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            scope: self.scope.clone(),
            data,
        })
    }
}

/// Instrument names as the spec allows them: a letter, then up to 254 of letters, digits,
/// `_`, `.`, `-` and `/`.
pub fn valid_instrument_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 255
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(kind: InstrumentKind, advisory: Option<Vec<Boundary>>) -> Descriptor {
        Descriptor {
            name: "m".into(),
            description: String::new(),
            unit: String::new(),
            kind,
            scope: Arc::new(Scope::default()),
            advisory,
        }
    }

    fn instrument(kind: InstrumentKind) -> Instrument {
        let advisory = [10.0, 0.0, 5.0, 0.0]
            .map(|value| Boundary {
                value,
                integral: value == 5.0,
            })
            .to_vec();
        Instrument::new(
            descriptor(kind, Some(advisory)),
            ExemplarFilter::TraceBased,
            vec![(0, Aggregation::Default)],
        )
    }

    impl Instrument {
        /// The one metric a single-stream instrument reports.
        fn collect_one(&self, slot: ReaderSlot, temporality: Temporality, now_ns: u64) -> Option<MetricData> {
            let mut collected = self.collect(slot, temporality, now_ns);
            assert!(collected.len() <= 1);
            collected.pop()
        }
    }

    fn attrs(pairs: &[(&str, i64)]) -> Vec<(String, Value)> {
        pairs.iter().map(|(k, v)| (k.to_string(), Value::Int(*v))).collect()
    }

    fn sum_values(data: &MetricData) -> Vec<Number> {
        match &data.data {
            Data::Sum { points, .. } | Data::Gauge(points) => points.iter().map(|p| p.value).collect(),
            _ => panic!("not a sum"),
        }
    }

    #[test]
    fn attribute_order_does_not_split_streams_and_ints_stay_ints() {
        let counter = instrument(InstrumentKind::Counter);
        counter.record(Number::Int(2), attrs(&[("a", 1), ("b", 2)]), 1);
        counter.record(Number::Int(3), attrs(&[("b", 2), ("a", 1)]), 2);
        let data = counter.collect_one(0, Temporality::Cumulative, 5).unwrap();
        assert_eq!(sum_values(&data), [Number::Int(5)]);
        counter.record(Number::Double(0.5), attrs(&[("a", 1), ("b", 2)]), 6);
        let data = counter.collect_one(0, Temporality::Cumulative, 7).unwrap();
        assert_eq!(sum_values(&data), [Number::Double(5.5)]);
        let Data::Sum { points, monotonic, .. } = data.data else {
            panic!()
        };
        assert!(monotonic);
        assert_eq!(points[0].start_ns, 1, "cumulative points keep their start");
    }

    #[test]
    fn a_prepared_set_is_the_same_series_as_the_set_given_in_any_order() {
        let counter = instrument(InstrumentKind::Counter);
        let prepared = PreparedAttributes::new(attrs(&[("b", 2), ("a", 1), ("b", 3)]));
        counter.record_prepared(Number::Int(2), &prepared, 1, None);
        counter.record(Number::Int(3), attrs(&[("a", 1), ("b", 3)]), 2);
        counter.record_prepared(Number::Int(4), &prepared, 3, None);
        let data = counter.collect_one(0, Temporality::Cumulative, 5).unwrap();
        assert_eq!(sum_values(&data), [Number::Int(9)]);
        let Data::Sum { points, .. } = data.data else { panic!() };
        assert_eq!(
            points[0].attributes.to_vec(),
            attrs(&[("a", 1), ("b", 3)]),
            "ordered, the later b kept"
        );
    }

    #[test]
    fn delta_reports_the_change_and_restarts() {
        let counter = instrument(InstrumentKind::Counter);
        counter.record(Number::Int(2), attrs(&[]), 1);
        assert_eq!(
            sum_values(&counter.collect_one(0, Temporality::Delta, 5).unwrap()),
            [Number::Int(2)]
        );
        assert!(counter.collect_one(0, Temporality::Delta, 6).is_none(), "nothing new");
        counter.record(Number::Int(4), attrs(&[]), 7);
        let data = counter.collect_one(0, Temporality::Delta, 9).unwrap();
        let Data::Sum { points, .. } = data.data else { panic!() };
        assert_eq!((points[0].value, points[0].start_ns), (Number::Int(4), 7));
    }

    #[test]
    fn histograms_bucket_by_sorted_bounds() {
        let histogram = instrument(InstrumentKind::Histogram);
        for v in [0.0, 3.0, 5.0, 7.0, 50.0] {
            histogram.record(Number::Double(v), attrs(&[]), 1);
        }
        let Data::Histogram { points, .. } = histogram.collect_one(0, Temporality::Cumulative, 2).unwrap().data else {
            panic!()
        };
        let p = &points[0];
        assert_eq!(&*p.bounds, [0.0, 5.0, 10.0]);
        assert_eq!(&*p.integral_bounds, [false, true, false], "as written, sorted along");
        // Buckets are (-inf, 0], (0, 5], (5, 10], (10, +inf).
        assert_eq!(p.bucket_counts, [1, 2, 1, 1]);
        assert_eq!((p.count, p.sum, p.min, p.max), (5, 65.0, 0.0, 50.0));
    }

    #[test]
    fn observable_counters_report_observed_totals_and_their_deltas() {
        let observed = instrument(InstrumentKind::ObservableCounter);
        observed.observe(0, Number::Int(10), attrs(&[]), 1);
        assert_eq!(
            sum_values(&observed.collect_one(0, Temporality::Delta, 2).unwrap()),
            [Number::Int(10)]
        );
        observed.observe(0, Number::Int(15), attrs(&[]), 3);
        assert_eq!(
            sum_values(&observed.collect_one(0, Temporality::Delta, 4).unwrap()),
            [Number::Int(5)]
        );
        assert!(
            observed.collect_one(0, Temporality::Delta, 5).is_none(),
            "not observed this time"
        );
    }

    #[test]
    fn new_attribute_sets_beyond_the_limit_share_the_overflow_stream() {
        let counter = instrument(InstrumentKind::Counter);
        for i in 0..(CARDINALITY_LIMIT as i64 + 10) {
            counter.record(Number::Int(1), attrs(&[("id", i)]), 1);
        }
        let Data::Sum { points, .. } = counter.collect_one(0, Temporality::Cumulative, 2).unwrap().data else {
            panic!()
        };
        assert_eq!(points.len(), CARDINALITY_LIMIT);
        let overflow = points
            .iter()
            .find(|p| p.attributes.get("otel.metric.overflow").is_some())
            .unwrap();
        assert_eq!(overflow.value, Number::Int(11));
    }

    #[test]
    fn exemplars_keep_the_span_of_a_measurement_until_collected() {
        let histogram = instrument(InstrumentKind::Histogram);
        histogram.record_in(
            Number::Double(3.0),
            attrs(&[]),
            1,
            Some(MeasuredIn {
                trace_id: 7,
                span_id: 70,
                sampled: true,
            }),
        );
        histogram.record_in(
            Number::Double(4.0),
            attrs(&[]),
            2,
            Some(MeasuredIn {
                trace_id: 8,
                span_id: 80,
                sampled: true,
            }),
        );
        histogram.record_in(
            Number::Double(50.0),
            attrs(&[]),
            3,
            Some(MeasuredIn {
                trace_id: 9,
                span_id: 90,
                sampled: true,
            }),
        );
        histogram.record(Number::Double(6.0), attrs(&[]), 4);
        histogram.record_in(
            Number::Double(7.0),
            attrs(&[]),
            4,
            Some(MeasuredIn {
                trace_id: 1,
                span_id: 10,
                sampled: false,
            }),
        );
        let Data::Histogram { points, .. } = histogram.collect_one(0, Temporality::Cumulative, 5).unwrap().data else {
            panic!()
        };
        // The last measurement of each bucket that had one in a span: (0, 5] and (10, inf).
        let kept: Vec<_> = points[0]
            .exemplars
            .iter()
            .map(|e| (e.trace_id, e.span_id, e.value))
            .collect();
        assert_eq!(kept, [(8, 80, Number::Double(4.0)), (9, 90, Number::Double(50.0))]);
        histogram.record(Number::Double(1.0), attrs(&[]), 6);
        let Data::Histogram { points, .. } = histogram.collect_one(0, Temporality::Cumulative, 7).unwrap().data else {
            panic!()
        };
        assert!(points[0].exemplars.is_empty(), "each collection starts afresh");

        let counter = instrument(InstrumentKind::Counter);
        for span in 1..=50u64 {
            counter.record_in(
                Number::Int(1),
                attrs(&[]),
                span,
                Some(MeasuredIn {
                    trace_id: span as u128,
                    span_id: span,
                    sampled: true,
                }),
            );
        }
        let Data::Sum { points, .. } = counter.collect_one(0, Temporality::Cumulative, 60).unwrap().data else {
            panic!()
        };
        let [exemplar] = points[0].exemplars[..] else {
            panic!("one exemplar per sum stream")
        };
        assert_eq!(exemplar.trace_id as u64, exemplar.span_id);
    }

    #[test]
    fn each_reader_aggregates_on_its_own() {
        let counter = instrument(InstrumentKind::Counter);
        counter.add_reader(1, &Aggregation::Default);
        counter.record(Number::Int(2), attrs(&[]), 1);
        counter.record(Number::Int(3), attrs(&[]), 2);
        // Reader 1 on delta resets only its own aggregation; reader 0 stays cumulative.
        assert_eq!(
            sum_values(&counter.collect_one(1, Temporality::Delta, 3).unwrap()),
            [Number::Int(5)]
        );
        counter.record(Number::Int(4), attrs(&[]), 4);
        assert_eq!(
            sum_values(&counter.collect_one(1, Temporality::Delta, 5).unwrap()),
            [Number::Int(4)]
        );
        assert_eq!(
            sum_values(&counter.collect_one(0, Temporality::Cumulative, 6).unwrap()),
            [Number::Int(9)]
        );
        // A reader that joins later starts from nothing; one that leaves is forgotten.
        counter.add_reader(2, &Aggregation::Default);
        assert!(counter.collect_one(2, Temporality::Cumulative, 7).is_none());
        counter.record(Number::Int(1), attrs(&[]), 8);
        assert_eq!(
            sum_values(&counter.collect_one(2, Temporality::Cumulative, 9).unwrap()),
            [Number::Int(1)]
        );
        counter.remove_reader(0);
        counter.record(Number::Int(1), attrs(&[]), 10);
        assert!(counter.collect_one(0, Temporality::Cumulative, 11).is_none());
        assert_eq!(
            sum_values(&counter.collect_one(2, Temporality::Cumulative, 12).unwrap()),
            [Number::Int(2)]
        );

        // What a callback observes during one reader's collection is that reader's only.
        let gauge = instrument(InstrumentKind::ObservableGauge);
        gauge.add_reader(1, &Aggregation::Default);
        gauge.observe(1, Number::Int(7), attrs(&[("room", 1)]), 1);
        assert!(gauge.collect_one(0, Temporality::Cumulative, 2).is_none());
        assert_eq!(
            sum_values(&gauge.collect_one(1, Temporality::Cumulative, 2).unwrap()),
            [Number::Int(7)]
        );
        gauge.observe(3, Number::Int(7), attrs(&[]), 3);
        assert!(
            gauge.collect_one(3, Temporality::Cumulative, 4).is_none(),
            "not a reader"
        );

        let unread = Instrument::new(
            descriptor(InstrumentKind::Counter, None),
            ExemplarFilter::AlwaysOn,
            Vec::new(),
        );
        unread.record(Number::Int(1), attrs(&[]), 1);
        assert!(
            lock(&unread.streams[0].streams).by_attributes.is_empty(),
            "nobody reads it: nothing kept"
        );
    }

    #[test]
    fn views_make_one_stream_each_and_the_default_when_none_selects() {
        let views = [
            View {
                instrument_name: Some("m".into()),
                name: Some("renamed".into()),
                attribute_keys: Some(vec!["kept".into()]),
                ..View::default()
            },
            View {
                instrument_kinds: Some(vec![InstrumentKind::Counter]),
                aggregation: Aggregation::base2_exponential(),
                ..View::default()
            },
            View {
                instrument_name: Some("dropped".into()),
                aggregation: Aggregation::Drop,
                ..View::default()
            },
        ];
        let counter = Instrument::with_views(
            descriptor(InstrumentKind::Counter, None),
            ExemplarFilter::AlwaysOff,
            vec![(0, Aggregation::Default)],
            &views,
        );
        counter.record(
            Number::Int(3),
            vec![("kept".into(), Value::Int(1)), ("gone".into(), Value::Int(2))],
            1,
        );
        let collected = counter.collect(0, Temporality::Cumulative, 2);
        let [renamed, exponential] = &collected[..] else {
            panic!("two streams: {collected:?}")
        };
        assert_eq!(renamed.name, "renamed");
        let Data::Sum { points, .. } = &renamed.data else {
            panic!()
        };
        assert_eq!(points[0].attributes.to_vec(), [("kept".to_string(), Value::Int(1))]);
        assert_eq!(exponential.name, "m");
        let Data::ExponentialHistogram { points, .. } = &exponential.data else {
            panic!()
        };
        assert_eq!(
            (points[0].count, points[0].sum, points[0].attributes.len()),
            (1, 3.0, 2)
        );

        let dropped = Instrument::with_views(
            Descriptor {
                name: "dropped".into(),
                ..descriptor(InstrumentKind::Histogram, None)
            },
            ExemplarFilter::AlwaysOff,
            vec![(0, Aggregation::Default)],
            &views,
        );
        dropped.record(Number::Int(3), attrs(&[]), 1);
        assert!(dropped.collect(0, Temporality::Cumulative, 2).is_empty());

        let unselected = Instrument::with_views(
            Descriptor {
                name: "other".into(),
                ..descriptor(InstrumentKind::Histogram, None)
            },
            ExemplarFilter::AlwaysOff,
            vec![(0, Aggregation::Default)],
            &views,
        );
        unselected.record(Number::Int(3), attrs(&[]), 1);
        let [default] = &unselected.collect(0, Temporality::Cumulative, 2)[..] else {
            panic!()
        };
        let Data::Histogram { points, .. } = &default.data else {
            panic!()
        };
        assert_eq!(&*points[0].bounds, DEFAULT_BOUNDARIES);
    }

    #[test]
    fn a_reader_preference_applies_where_the_view_leaves_the_aggregation_open() {
        let histogram = instrument(InstrumentKind::Histogram);
        histogram.add_reader(1, &Aggregation::base2_exponential());
        for v in [1.0, 2.0, 4.0] {
            histogram.record(Number::Double(v), attrs(&[]), 1);
        }
        let explicit = histogram.collect_one(0, Temporality::Cumulative, 2).unwrap();
        assert!(matches!(explicit.data, Data::Histogram { .. }));
        let exponential = histogram.collect_one(1, Temporality::Delta, 2).unwrap();
        let Data::ExponentialHistogram { points, temporality } = exponential.data else {
            panic!()
        };
        assert_eq!(temporality, Temporality::Delta);
        // 1, 2 and 4 are upper bounds of buckets -1, 63 and 127 at scale 6, the highest at
        // which they fit 160 buckets.
        let p = &points[0];
        assert_eq!(
            (p.scale, p.positive.offset, p.positive.bucket_counts.len()),
            (6, -1, 129)
        );
        let held: Vec<usize> = (0..129).filter(|i| p.positive.bucket_counts[*i] == 1).collect();
        assert_eq!(held, [0, 64, 128]);
        assert_eq!((p.count, p.sum, p.min, p.max, p.zero_count), (3, 7.0, 1.0, 4.0, 0));
    }

    #[test]
    fn instrument_names() {
        assert!(valid_instrument_name("http.server.request.duration"));
        assert!(valid_instrument_name("a/b-c_d"));
        assert!(!valid_instrument_name("1abc"));
        assert!(!valid_instrument_name(""));
        assert!(!valid_instrument_name("has space"));
        assert!(!valid_instrument_name(&"a".repeat(256)));
    }
}
