//! Metric data points by series (service + metric name), each series bounded by a point
//! count and all of them together by the bytes they hold (oldest points go first), for charts.

use std::collections::{BTreeMap, VecDeque};
use std::mem::size_of;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, AggregationTemporality, Exemplar, HistogramDataPoint, NumberDataPoint,
    ResourceMetrics,
};
use serde_json::{json, Value as Json};

use crate::jaeger::{double, plain_json};
use crate::size::HeapSize;
use crate::store::Origin;

/// Distinct series kept at most; beyond it new series are refused and counted, so a metric
/// with an unbounded name cannot exhaust memory.
const MAX_SERIES: usize = 10_000;

struct Series {
    shape: Shape,
    unit: String,
    description: String,
    points: VecDeque<Point>,
}

struct Point {
    value: Json,
    /// Arrival number across all series: the byte limit evicts the lowest first.
    number: u64,
    cost: usize,
}

pub(crate) struct MetricStore {
    max_points_per_series: usize,
    max_bytes: usize,
    /// (service, metric name) → index in `series`; the map keeps listings sorted.
    index: BTreeMap<(String, String), usize>,
    series: Vec<Series>,
    /// Every point's series and arrival number, oldest first. Points a series' own cap
    /// removed stay here until they reach the front or the queue is compacted.
    arrival: VecDeque<(usize, u64)>,
    next_number: u64,
    points: usize,
    bytes: usize,
    pub(crate) refused_series: u64,
    pub(crate) evicted_points: u64,
}

impl MetricStore {
    pub(crate) fn new(max_points_per_series: usize, max_bytes: usize) -> Self {
        MetricStore {
            max_points_per_series: max_points_per_series.max(1),
            max_bytes,
            index: BTreeMap::new(),
            series: Vec::new(),
            arrival: VecDeque::new(),
            next_number: 0,
            points: 0,
            bytes: 0,
            refused_series: 0,
            evicted_points: 0,
        }
    }

    pub(crate) fn series_count(&self) -> usize {
        self.index.len()
    }

    /// Bytes the stored points and series hold, as `--max-memory` counts them.
    pub(crate) fn memory(&self) -> usize {
        self.bytes
    }

    pub(crate) fn insert(&mut self, batch: Vec<ResourceMetrics>) {
        for resource_metrics in batch {
            let resource = resource_metrics.resource.unwrap_or_default();
            for scope_metrics in resource_metrics.scope_metrics {
                let origin = Origin::new(resource.clone(), scope_metrics.scope.unwrap_or_default());
                for metric in scope_metrics.metrics {
                    let Some(data) = metric.data else { continue };
                    let (shape, points) = points_json(data);
                    let key = (origin.service.clone(), metric.name);
                    let slot = match self.index.get(&key) {
                        Some(&slot) => slot,
                        None if self.index.len() >= MAX_SERIES => {
                            self.refused_series += 1;
                            continue;
                        }
                        None => {
                            let series = Series {
                                shape,
                                unit: metric.unit,
                                description: metric.description,
                                points: VecDeque::new(),
                            };
                            self.bytes += size_of::<Series>()
                                + key.0.heap_size()
                                + key.1.heap_size()
                                + series.unit.heap_size()
                                + series.description.heap_size();
                            self.series.push(series);
                            self.index.insert(key, self.series.len() - 1);
                            self.series.len() - 1
                        }
                    };
                    for value in points {
                        self.push(slot, value);
                    }
                }
            }
        }
    }

    fn push(&mut self, slot: usize, value: Json) {
        let number = self.next_number;
        self.next_number += 1;
        let cost = size_of::<Point>() + size_of::<(usize, u64)>() + value.heap_size();
        self.series[slot].points.push_back(Point { value, number, cost });
        self.arrival.push_back((slot, number));
        self.points += 1;
        self.bytes += cost;
        if self.series[slot].points.len() > self.max_points_per_series {
            self.drop_front(slot);
        }
        while self.bytes > self.max_bytes {
            let Some((oldest_slot, oldest_number)) = self.arrival.pop_front() else {
                break;
            };
            // Already gone when its series' own cap removed it.
            if self.series[oldest_slot]
                .points
                .front()
                .is_some_and(|p| p.number == oldest_number)
            {
                self.drop_front(oldest_slot);
                self.evicted_points += 1;
            }
        }
        // Entries for points a series' cap removed would otherwise pile up.
        if self.arrival.len() > 2 * self.points + 64 {
            let series = &self.series;
            self.arrival
                .retain(|&(slot, number)| series[slot].points.front().is_some_and(|p| p.number <= number));
        }
    }

    fn drop_front(&mut self, slot: usize) {
        if let Some(point) = self.series[slot].points.pop_front() {
            self.points -= 1;
            self.bytes -= point.cost;
        }
    }

    /// The stored series (those with points left), sorted by service and name.
    fn stored<'a>(
        &'a self,
        keep: impl Fn(&str, &str) -> bool + 'a,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a Series)> + 'a {
        self.index
            .iter()
            .map(|((service, name), &slot)| (service.as_str(), name.as_str(), &self.series[slot]))
            .filter(move |(service, name, series)| !series.points.is_empty() && keep(service, name))
    }

    pub(crate) fn list(&self, service: Option<&str>) -> Vec<Json> {
        self.stored(|s, _| service.is_none_or(|want| want == s))
            .map(|(service, name, series)| {
                let mut listed = series.describe(service, name);
                listed["description"] = series.description.as_str().into();
                listed["points"] = series.points.len().into();
                listed
            })
            .collect()
    }

    /// Every stored point of `name` (per service when several report it), oldest first.
    pub(crate) fn points(&self, name: &str, service: Option<&str>) -> Vec<Json> {
        self.stored(|s, n| n == name && service.is_none_or(|want| want == s))
            .map(|(service, name, series)| {
                let mut described = series.describe(service, name);
                described["points"] = series.points.iter().map(|p| p.value.clone()).collect::<Vec<_>>().into();
                described
            })
            .collect()
    }
}

impl Series {
    /// What a series is, as both the list and the points answer start.
    fn describe(&self, service: &str, name: &str) -> Json {
        json!({
            "service": service,
            "name": name,
            "type": self.shape.kind,
            "temporality": self.shape.temporality,
            "monotonic": self.shape.monotonic,
            "unit": self.unit,
        })
    }
}

fn attributes_json(attributes: &[KeyValue]) -> Json {
    attributes
        .iter()
        .map(|kv| {
            (
                kv.key.clone(),
                plain_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// Exemplars as the UI links them: the value and the span it was measured in.
fn exemplars_json(exemplars: &[Exemplar]) -> Json {
    exemplars
        .iter()
        .map(|e| {
            let value = match e.value {
                Some(exemplar::Value::AsInt(i)) => json!(i),
                Some(exemplar::Value::AsDouble(d)) => double(d),
                None => Json::Null,
            };
            let hex = |id: &[u8]| (!id.is_empty()).then(|| const_hex::encode(id));
            json!({
                "timeUnixNano": e.time_unix_nano.to_string(),
                "value": value,
                "traceID": hex(&e.trace_id),
                "spanID": hex(&e.span_id),
            })
        })
        .collect::<Vec<_>>()
        .into()
}

fn number_json(point: &NumberDataPoint) -> Json {
    let value = match point.value {
        Some(number_data_point::Value::AsInt(i)) => json!(i),
        Some(number_data_point::Value::AsDouble(d)) => double(d),
        None => Json::Null,
    };
    json!({
        "timeUnixNano": point.time_unix_nano.to_string(),
        "startTimeUnixNano": point.start_time_unix_nano.to_string(),
        "attributes": attributes_json(&point.attributes),
        "value": value,
        "exemplars": exemplars_json(&point.exemplars),
    })
}

fn histogram_json(point: &HistogramDataPoint) -> Json {
    json!({
        "timeUnixNano": point.time_unix_nano.to_string(),
        "startTimeUnixNano": point.start_time_unix_nano.to_string(),
        "attributes": attributes_json(&point.attributes),
        "count": point.count,
        "sum": point.sum.map(double),
        "min": point.min.map(double),
        "max": point.max.map(double),
        "bucketCounts": point.bucket_counts,
        "explicitBounds": point.explicit_bounds.iter().copied().map(double).collect::<Vec<_>>(),
        "exemplars": exemplars_json(&point.exemplars),
    })
}

/// The series type and its points; exponential histograms and summaries keep count and sum.
/// How a series' points add up: what a chart needs to tell a running total from increments.
#[derive(Clone, Copy)]
struct Shape {
    kind: &'static str,
    /// `cumulative`, `delta`, or empty for gauges and summaries.
    temporality: &'static str,
    monotonic: bool,
}

fn temporality(value: i32) -> &'static str {
    match AggregationTemporality::try_from(value) {
        Ok(AggregationTemporality::Cumulative) => "cumulative",
        Ok(AggregationTemporality::Delta) => "delta",
        _ => "",
    }
}

/// The series' shape and its points; exponential histograms and summaries keep count and sum.
fn points_json(data: Data) -> (Shape, Vec<Json>) {
    let shape = |kind, temporality, monotonic| Shape {
        kind,
        temporality,
        monotonic,
    };
    match data {
        Data::Gauge(gauge) => (
            shape("gauge", "", false),
            gauge.data_points.iter().map(number_json).collect(),
        ),
        Data::Sum(sum) => (
            shape("sum", temporality(sum.aggregation_temporality), sum.is_monotonic),
            sum.data_points.iter().map(number_json).collect(),
        ),
        Data::Histogram(histogram) => (
            shape("histogram", temporality(histogram.aggregation_temporality), false),
            histogram.data_points.iter().map(histogram_json).collect(),
        ),
        Data::ExponentialHistogram(histogram) => (
            shape(
                "exponentialHistogram",
                temporality(histogram.aggregation_temporality),
                false,
            ),
            histogram
                .data_points
                .iter()
                .map(|p| count_and_sum_json(p.time_unix_nano, &p.attributes, p.count, p.sum))
                .collect(),
        ),
        Data::Summary(summary) => (
            shape("summary", "", false),
            summary
                .data_points
                .iter()
                .map(|p| count_and_sum_json(p.time_unix_nano, &p.attributes, p.count, Some(p.sum)))
                .collect(),
        ),
    }
}

fn count_and_sum_json(time_unix_nano: u64, attributes: &[KeyValue], count: u64, sum: Option<f64>) -> Json {
    json!({
        "timeUnixNano": time_unix_nano.to_string(),
        "attributes": attributes_json(attributes),
        "count": count,
        "sum": sum.map(double),
    })
}

/// Data points a metric carries, whatever its type.
pub(crate) fn point_count(metric: &opentelemetry_proto::tonic::metrics::v1::Metric) -> u64 {
    let points = match &metric.data {
        Some(Data::Gauge(gauge)) => gauge.data_points.len(),
        Some(Data::Sum(sum)) => sum.data_points.len(),
        Some(Data::Histogram(histogram)) => histogram.data_points.len(),
        Some(Data::ExponentialHistogram(histogram)) => histogram.data_points.len(),
        Some(Data::Summary(summary)) => summary.data_points.len(),
        None => 0,
    };
    points as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, Metric, ScopeMetrics};

    fn gauge(name: &str, values: &[i64]) -> Vec<ResourceMetrics> {
        let data_points = values
            .iter()
            .map(|&v| NumberDataPoint {
                value: Some(number_data_point::Value::AsInt(v)),
                ..Default::default()
            })
            .collect();
        vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
                    data: Some(Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn values(store: &MetricStore, name: &str) -> Vec<Json> {
        let series = store.points(name, None);
        series.first().map_or(Vec::new(), |s| {
            s["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].clone())
                .collect()
        })
    }

    #[test]
    fn per_series_cap_and_a_shared_byte_limit_evict_the_oldest_points() {
        let mut store = MetricStore::new(3, usize::MAX);
        store.insert(gauge("a", &[1, 2, 3, 4]));
        assert_eq!(values(&store, "a"), [2, 3, 4]);

        let mut measure = MetricStore::new(100, usize::MAX);
        measure.insert(gauge("a", &[1]));
        let series_and_point = measure.memory();
        measure.insert(gauge("a", &[2]));
        let point = measure.memory() - series_and_point;
        let series = series_and_point - point;
        // Room for the two series and four points: the oldest points go, whichever series.
        let mut store = MetricStore::new(100, 2 * series + 4 * point);
        store.insert(gauge("a", &[1, 2]));
        store.insert(gauge("b", &[10, 20, 30]));
        assert_eq!(values(&store, "a"), [2]);
        assert_eq!(values(&store, "b"), [10, 20, 30]);
        assert_eq!(store.evicted_points, 1);
        store.insert(gauge("b", &[40, 50]));
        assert!(values(&store, "a").is_empty());
        assert_eq!(values(&store, "b"), [20, 30, 40, 50]);
        assert_eq!(store.evicted_points, 3);
        assert_eq!(store.list(None).len(), 1, "a series with no points left is not listed");
    }
}
