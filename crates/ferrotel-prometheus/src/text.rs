//! The text exposition format (version 0.0.4) of one collection, with the names, labels and
//! values upstream's `opentelemetry-exporter-prometheus` gives the same metrics:
//!
//! - `target_info` first, labelled with the resource's attributes;
//! - monotonic sums are counters (`_total` samples), other sums and gauges are gauges,
//!   explicit-bucket histograms are histograms (`_bucket{le}` cumulative, `_count`, `_sum`;
//!   no `_count`/`_sum` when the first bound is negative, as `prometheus_client` decides);
//! - every sample carries `otel_scope_name`, `otel_scope_version`, `otel_scope_schema_url`
//!   and the scope's attributes as `otel_scope_<key>`, then the point's attributes; a
//!   metric's points all carry the same label names (an absent one is `""`);
//! - metrics with the same name, description, unit and type share one family.

use std::collections::{BTreeMap, HashMap};

use ferrotel_sdk::metrics::{Data, MetricData, Number};
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::Scope;
use ferrotel_sdk::value::Attributes;

use crate::names::{family_name, label_name, metric_name, unit_suffix};
use crate::values::{escape_help, escape_label_value, label_value, python_float, sample_value};

/// The content type of what [`render`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

struct Family {
    /// The name `# HELP` and `# TYPE` give (a counter's ends in `_total`).
    name: String,
    help: String,
    kind: Kind,
    samples: String,
}

/// A sample's labels, sorted by name as they are written.
type Labels = BTreeMap<String, String>;

fn write_sample(out: &mut String, name: &str, labels: &Labels, value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            escape_label_value(value, out);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Attributes as labels: names sanitised, values as label values, a later key winning over
/// an earlier one that sanitises the same. An empty key (which upstream's SDK drops before
/// its exporter sees it) would make no label name at all: left out.
fn add_labels(labels: &mut Labels, attributes: &Attributes, prefix: &str) {
    for (key, value) in attributes.iter().filter(|(key, _)| !key.is_empty()) {
        labels.insert(label_name(&format!("{prefix}{key}")), label_value(value));
    }
}

fn scope_labels(scope: &Scope) -> Labels {
    let mut labels = Labels::new();
    add_labels(&mut labels, &scope.attributes, "otel_scope_");
    let mut set = |name: &str, value: Option<&str>| {
        labels.insert(name.to_string(), value.unwrap_or_default().to_string());
    };
    set("otel_scope_name", Some(&scope.name));
    set("otel_scope_version", scope.version.as_deref());
    set("otel_scope_schema_url", scope.schema_url.as_deref());
    labels
}

/// Every point's labels, each holding every label name any point of the metric has.
fn point_labels<'a>(scope: &Labels, points: impl Iterator<Item = &'a Attributes>) -> Vec<Labels> {
    let mut rows: Vec<Labels> = points
        .map(|attributes| {
            let mut labels = scope.clone();
            add_labels(&mut labels, attributes, "");
            labels
        })
        .collect();
    let mut names: Vec<String> = rows.iter().flat_map(|r| r.keys().cloned()).collect();
    names.sort();
    names.dedup();
    for row in &mut rows {
        for name in &names {
            row.entry(name.clone()).or_default();
        }
    }
    rows
}

fn number(value: Number) -> String {
    sample_value(value.as_f64())
}

fn target_info(resource: &Resource) -> Family {
    let mut labels = Labels::new();
    add_labels(&mut labels, &resource.attributes, "");
    let mut samples = String::new();
    write_sample(&mut samples, "target_info", &labels, "1.0");
    Family {
        name: "target_info".into(),
        help: "Target metadata".into(),
        kind: Kind::Gauge,
        samples,
    }
}

/// The Prometheus text for one collection; empty when it holds no metric at all.
pub fn render(resource: &Resource, metrics: &[MetricData]) -> String {
    if metrics.is_empty() {
        return String::new();
    }
    let mut families = vec![target_info(resource)];
    let mut index: HashMap<(String, String, String, Kind), usize> = HashMap::new();
    for metric in metrics {
        // Upstream's exporter has no rendering for exponential histograms and leaves them out.
        if matches!(metric.data, Data::ExponentialHistogram { .. }) {
            continue;
        }
        let name = metric_name(&metric.name);
        let unit = unit_suffix(&metric.unit);
        let kind = match &metric.data {
            Data::Sum { monotonic: true, .. } => Kind::Counter,
            Data::Sum { .. } | Data::Gauge(_) => Kind::Gauge,
            Data::Histogram { .. } | Data::ExponentialHistogram { .. } => Kind::Histogram,
        };
        let key = (name.clone(), metric.description.clone(), unit.clone(), kind);
        let at = *index.entry(key).or_insert_with(|| {
            let base = family_name(&name, &unit, kind == Kind::Counter);
            families.push(Family {
                name: if kind == Kind::Counter {
                    format!("{base}_total")
                } else {
                    base
                },
                help: metric.description.clone(),
                kind,
                samples: String::new(),
            });
            families.len() - 1
        });
        let family = &mut families[at];
        let scope = scope_labels(&metric.scope);
        match &metric.data {
            Data::Sum { points, .. } | Data::Gauge(points) => {
                let rows = point_labels(&scope, points.iter().map(|p| &p.attributes));
                for (point, labels) in points.iter().zip(&rows) {
                    write_sample(&mut family.samples, &family.name, labels, &number(point.value));
                }
            }
            Data::Histogram { points, .. } => {
                let rows = point_labels(&scope, points.iter().map(|p| &p.attributes));
                for (point, labels) in points.iter().zip(&rows) {
                    let bucket = format!("{}_bucket", family.name);
                    let mut cumulative = 0u64;
                    // As Python prints the bounds upstream's exporter is given: `1` for one
                    // written as an integer, `1.0` otherwise.
                    let bounds = point
                        .bounds
                        .iter()
                        .zip(point.integral_bounds.iter().chain(std::iter::repeat(&false)))
                        .map(|(b, integral)| if *integral { format!("{b}") } else { python_float(*b) });
                    let les: Vec<String> = bounds.chain(std::iter::once("+Inf".to_string())).collect();
                    for (le, count) in les.iter().zip(&point.bucket_counts) {
                        cumulative += count;
                        let mut with_le = labels.clone();
                        with_le.insert("le".into(), le.clone());
                        write_sample(&mut family.samples, &bucket, &with_le, &sample_value(cumulative as f64));
                    }
                    // prometheus_client leaves out the count and sum of a histogram whose
                    // first bucket reaches below zero.
                    if point.bounds.first().is_none_or(|first| *first >= 0.0) {
                        let count = format!("{}_count", family.name);
                        write_sample(&mut family.samples, &count, labels, &sample_value(cumulative as f64));
                        let sum = format!("{}_sum", family.name);
                        write_sample(&mut family.samples, &sum, labels, &sample_value(point.sum));
                    }
                }
            }
            Data::ExponentialHistogram { .. } => {}
        }
    }
    let mut out = String::new();
    for family in families {
        out.push_str(&format!("# HELP {} {}\n", family.name, escape_help(&family.help)));
        out.push_str(&format!("# TYPE {} {}\n", family.name, family.kind.word()));
        out.push_str(&family.samples);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ferrotel_sdk::metrics::{HistogramPoint, NumberPoint, Temporality};
    use ferrotel_sdk::value::Value;

    use super::*;

    fn attributes(pairs: &[(&str, Value)]) -> Attributes {
        Attributes::new(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(), 0)
    }

    fn number_point(pairs: &[(&str, Value)], value: Number) -> NumberPoint {
        NumberPoint {
            attributes: attributes(pairs),
            start_ns: 1,
            time_ns: 2,
            value,
            exemplars: Vec::new(),
        }
    }

    fn metric(name: &str, unit: &str, description: &str, scope: &Arc<Scope>, data: Data) -> MetricData {
        MetricData {
            name: name.into(),
            description: description.into(),
            unit: unit.into(),
            scope: scope.clone(),
            data,
        }
    }

    fn histogram(bounds: &[f64], counts: &[u64], sum: f64) -> HistogramPoint {
        HistogramPoint {
            attributes: attributes(&[("http.route", Value::Str("/a".into()))]),
            start_ns: 1,
            time_ns: 2,
            count: counts.iter().sum(),
            sum,
            min: 0.0,
            max: 0.0,
            bucket_counts: counts.to_vec(),
            bounds: bounds.into(),
            integral_bounds: bounds.iter().map(|b| *b == 1.0).collect(),
            exemplars: Vec::new(),
        }
    }

    #[test]
    fn a_collection_renders_as_upstream_renders_it() {
        let resource = Resource {
            attributes: attributes(&[
                ("service.name", Value::Str("shop".into())),
                ("process.pid", Value::Int(42)),
            ]),
            schema_url: String::new(),
        };
        let scope = Arc::new(Scope {
            name: "shop".into(),
            version: Some("1.0".into()),
            schema_url: None,
            attributes: attributes(&[("team", Value::Str("core".into()))]),
        });
        let metrics = [
            metric(
                "shop.orders",
                "{order}",
                "orders \"placed\"\nper \\ day",
                &scope,
                Data::Sum {
                    points: vec![
                        number_point(&[("ok", Value::Bool(true))], Number::Int(6)),
                        number_point(&[("region", Value::Str("e\"u".into()))], Number::Int(4)),
                    ],
                    temporality: Temporality::Cumulative,
                    monotonic: true,
                },
            ),
            metric(
                "queue",
                "By",
                "",
                &scope,
                Data::Sum {
                    points: vec![number_point(&[("", Value::Int(1))], Number::Double(1234567.0))],
                    temporality: Temporality::Cumulative,
                    monotonic: false,
                },
            ),
            metric(
                "latency",
                "s",
                "",
                &scope,
                Data::Histogram {
                    points: vec![histogram(&[0.005, 1.0], &[1, 2, 0], 2.5)],
                    temporality: Temporality::Cumulative,
                },
            ),
            metric(
                "below.zero",
                "",
                "",
                &scope,
                Data::Histogram {
                    points: vec![histogram(&[-1.0], &[1, 1], 3.0)],
                    temporality: Temporality::Cumulative,
                },
            ),
        ];
        let expected = concat!(
            "# HELP target_info Target metadata\n",
            "# TYPE target_info gauge\n",
            "target_info{process_pid=\"42\",service_name=\"shop\"} 1.0\n",
            "# HELP shop_orders_total orders \"placed\"\\nper \\\\ day\n",
            "# TYPE shop_orders_total counter\n",
            "shop_orders_total{ok=\"true\",otel_scope_name=\"shop\",otel_scope_schema_url=\"\",",
            "otel_scope_team=\"core\",otel_scope_version=\"1.0\",region=\"\"} 6.0\n",
            "shop_orders_total{ok=\"\",otel_scope_name=\"shop\",otel_scope_schema_url=\"\",",
            "otel_scope_team=\"core\",otel_scope_version=\"1.0\",region=\"e\\\"u\"} 4.0\n",
            "# HELP queue_bytes \n",
            "# TYPE queue_bytes gauge\n",
            "queue_bytes{otel_scope_name=\"shop\",otel_scope_schema_url=\"\",otel_scope_team=\"core\",",
            "otel_scope_version=\"1.0\"} 1.234567e+06\n",
            "# HELP latency_seconds \n",
            "# TYPE latency_seconds histogram\n",
            "latency_seconds_bucket{http_route=\"/a\",le=\"0.005\",otel_scope_name=\"shop\",",
            "otel_scope_schema_url=\"\",otel_scope_team=\"core\",otel_scope_version=\"1.0\"} 1.0\n",
            "latency_seconds_bucket{http_route=\"/a\",le=\"1\",otel_scope_name=\"shop\",",
            "otel_scope_schema_url=\"\",otel_scope_team=\"core\",otel_scope_version=\"1.0\"} 3.0\n",
            "latency_seconds_bucket{http_route=\"/a\",le=\"+Inf\",otel_scope_name=\"shop\",",
            "otel_scope_schema_url=\"\",otel_scope_team=\"core\",otel_scope_version=\"1.0\"} 3.0\n",
            "latency_seconds_count{http_route=\"/a\",otel_scope_name=\"shop\",",
            "otel_scope_schema_url=\"\",otel_scope_team=\"core\",otel_scope_version=\"1.0\"} 3.0\n",
            "latency_seconds_sum{http_route=\"/a\",otel_scope_name=\"shop\",",
            "otel_scope_schema_url=\"\",otel_scope_team=\"core\",otel_scope_version=\"1.0\"} 2.5\n",
            "# HELP below_zero \n",
            "# TYPE below_zero histogram\n",
            "below_zero_bucket{http_route=\"/a\",le=\"-1.0\",otel_scope_name=\"shop\",",
            "otel_scope_schema_url=\"\",otel_scope_team=\"core\",otel_scope_version=\"1.0\"} 1.0\n",
            "below_zero_bucket{http_route=\"/a\",le=\"+Inf\",otel_scope_name=\"shop\",",
            "otel_scope_schema_url=\"\",otel_scope_team=\"core\",otel_scope_version=\"1.0\"} 2.0\n",
        );
        assert_eq!(render(&resource, &metrics), expected);
    }

    #[test]
    fn the_same_metric_from_two_scopes_is_one_family_and_nothing_renders_nothing() {
        let a = Arc::new(Scope {
            name: "a".into(),
            ..Scope::default()
        });
        let b = Arc::new(Scope {
            name: "b".into(),
            ..Scope::default()
        });
        let gauge = |scope: &Arc<Scope>| {
            metric(
                "temp",
                "Cel",
                "",
                scope,
                Data::Gauge(vec![number_point(&[], Number::Int(20))]),
            )
        };
        let text = render(&Resource::default(), &[gauge(&a), gauge(&b)]);
        assert_eq!(text.matches("# TYPE temp_celsius gauge").count(), 1, "{text}");
        assert_eq!(text.matches("temp_celsius{").count(), 2, "{text}");
        assert!(text.starts_with("# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info 1.0\n"));
        assert_eq!(render(&Resource::default(), &[]), "");
    }
}
