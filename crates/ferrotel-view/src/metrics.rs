//! Metric data points by series (service + metric name), each series bounded, for charts.

use std::collections::{BTreeMap, HashMap, VecDeque};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric::Data, number_data_point, Exemplar, HistogramDataPoint, NumberDataPoint, ResourceMetrics,
};
use serde_json::{json, Value as Json};

use crate::jaeger::{double, plain_json};
use crate::store::Origin;

/// Distinct series kept at most; beyond it new series are refused and counted, so a metric
/// with an unbounded name cannot exhaust memory.
const MAX_SERIES: usize = 10_000;

struct Series {
    kind: &'static str,
    unit: String,
    description: String,
    points: VecDeque<Json>,
}

pub(crate) struct MetricStore {
    max_points_per_series: usize,
    series: BTreeMap<(String, String), Series>,
    pub(crate) refused_series: u64,
}

impl MetricStore {
    pub(crate) fn new(max_points_per_series: usize) -> Self {
        MetricStore {
            max_points_per_series: max_points_per_series.max(1),
            series: BTreeMap::new(),
            refused_series: 0,
        }
    }

    pub(crate) fn series_count(&self) -> usize {
        self.series.len()
    }

    pub(crate) fn insert(&mut self, batch: Vec<ResourceMetrics>) {
        for resource_metrics in batch {
            let resource = resource_metrics.resource.unwrap_or_default();
            for scope_metrics in resource_metrics.scope_metrics {
                let origin = Origin::new(resource.clone(), scope_metrics.scope.unwrap_or_default());
                for metric in scope_metrics.metrics {
                    let Some(data) = metric.data else { continue };
                    let (kind, points) = points_json(data);
                    let key = (origin.service.clone(), metric.name);
                    if !self.series.contains_key(&key) && self.series.len() >= MAX_SERIES {
                        self.refused_series += 1;
                        continue;
                    }
                    let series = self.series.entry(key).or_insert_with(|| Series {
                        kind,
                        unit: metric.unit,
                        description: metric.description,
                        points: VecDeque::new(),
                    });
                    for point in points {
                        series.points.push_back(point);
                        if series.points.len() > self.max_points_per_series {
                            series.points.pop_front();
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn list(&self, service: Option<&str>) -> Vec<Json> {
        self.series
            .iter()
            .filter(|((s, _), _)| service.is_none_or(|want| want == s))
            .map(|((service, name), series)| {
                json!({
                    "service": service,
                    "name": name,
                    "type": series.kind,
                    "unit": series.unit,
                    "description": series.description,
                    "points": series.points.len(),
                })
            })
            .collect()
    }

    /// Every stored point of `name` (per service when several report it), oldest first.
    pub(crate) fn points(&self, name: &str, service: Option<&str>) -> Vec<Json> {
        self.series
            .iter()
            .filter(|((s, n), _)| n == name && service.is_none_or(|want| want == s))
            .map(|((service, name), series)| {
                json!({"service": service, "name": name, "type": series.kind, "unit": series.unit, "points": series.points})
            })
            .collect()
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
fn points_json(data: Data) -> (&'static str, Vec<Json>) {
    match data {
        Data::Gauge(gauge) => ("gauge", gauge.data_points.iter().map(number_json).collect()),
        Data::Sum(sum) => ("sum", sum.data_points.iter().map(number_json).collect()),
        Data::Histogram(histogram) => ("histogram", histogram.data_points.iter().map(histogram_json).collect()),
        Data::ExponentialHistogram(histogram) => (
            "exponentialHistogram",
            histogram
                .data_points
                .iter()
                .map(|p| count_and_sum_json(p.time_unix_nano, &p.attributes, p.count, p.sum))
                .collect(),
        ),
        Data::Summary(summary) => (
            "summary",
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

pub(crate) fn service_param(params: &HashMap<String, String>) -> Option<&str> {
    params.get("service").map(String::as_str).filter(|s| !s.is_empty())
}
