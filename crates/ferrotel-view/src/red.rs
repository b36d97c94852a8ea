//! Rate, errors and duration (RED) of the stored spans of one kind (server by default), per
//! service and optionally per operation: over sliding windows for Jaeger's Monitor tab
//! (`/api/metrics/{latencies,calls,errors}`), and over everything stored for ferrotel's own
//! service summary. Computed from the spans on each request; nothing is kept besides them.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

use crate::search::{kind_of, status_of};
use crate::store::StoredSpan;

/// One finished span: when it ended, how long it took, whether it failed.
#[derive(Clone, Copy)]
struct Sample {
    end_ns: u64,
    duration_ns: u64,
    error: bool,
}

/// Which spans count, and how they are grouped.
pub(crate) struct Selection<'a> {
    /// Only these services; all when empty.
    pub(crate) services: &'a [String],
    pub(crate) kind: SpanKind,
    pub(crate) by_operation: bool,
    /// Only spans ending within this range of nanoseconds.
    pub(crate) ended: (u64, u64),
}

/// A series' key: the service, and the operation when grouped by it; borrowed from the
/// store, which stays locked while figures are drawn from it.
pub(crate) type SeriesKey<'a> = (&'a str, Option<&'a str>);

/// The selected spans' samples per series, series sorted by key; the samples of a series in
/// no particular order until `over_time` needs them by end.
pub(crate) struct Samples<'a>(Vec<(SeriesKey<'a>, Vec<Sample>)>);

impl<'a> Samples<'a> {
    pub(crate) fn collect(spans: impl Iterator<Item = &'a Arc<StoredSpan>>, selection: &Selection<'_>) -> Self {
        let mut series: HashMap<SeriesKey<'a>, Vec<Sample>> = HashMap::new();
        let (from, to) = selection.ended;
        for stored in spans {
            let span = &stored.span;
            if kind_of(stored) != selection.kind || !(from..=to).contains(&span.end_time_unix_nano) {
                continue;
            }
            let service = stored.origin.service.as_str();
            if !selection.services.is_empty() && !selection.services.iter().any(|s| s == service) {
                continue;
            }
            let key = (service, selection.by_operation.then_some(span.name.as_str()));
            series.entry(key).or_default().push(Sample {
                end_ns: span.end_time_unix_nano,
                duration_ns: span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano),
                error: status_of(stored) == StatusCode::Error,
            });
        }
        Samples::sorted(series)
    }

    fn sorted(series: HashMap<SeriesKey<'a>, Vec<Sample>>) -> Self {
        let mut series: Vec<_> = series.into_iter().collect();
        series.sort_unstable_by_key(|(key, _)| *key);
        Samples(series)
    }

    /// The same samples with each service's operations merged into one series.
    pub(crate) fn per_service(&self) -> Samples<'a> {
        let mut series: HashMap<SeriesKey<'a>, Vec<Sample>> = HashMap::new();
        for ((service, _), samples) in &self.0 {
            series.entry((service, None)).or_default().extend_from_slice(samples);
        }
        Samples::sorted(series)
    }

    /// For each series, one `Figures` per point in time: at `end - lookback + step`, then every
    /// `step` up to `end`, each over the `window` before it (Jaeger's `ratePer`).
    pub(crate) fn over_time(
        &mut self,
        end_ns: u64,
        lookback_ns: u64,
        step_ns: u64,
        window_ns: u64,
    ) -> Vec<(&SeriesKey<'a>, Vec<(u64, Figures)>)> {
        let step_ns = step_ns.max(1);
        let points = (lookback_ns / step_ns).clamp(1, MAX_POINTS);
        for (_, samples) in &mut self.0 {
            // Mostly in order already: spans arrive about when they end.
            samples.sort_by_key(|s| s.end_ns);
        }
        self.0
            .iter()
            .map(|(key, samples)| {
                let timeline = (0..points)
                    .map(|k| end_ns.saturating_sub((points - 1 - k) * step_ns))
                    .map(|at| {
                        let first = samples.partition_point(|s| s.end_ns <= at.saturating_sub(window_ns));
                        let last = samples.partition_point(|s| s.end_ns <= at);
                        (at, Figures::of(&samples[first..last], window_ns))
                    })
                    .collect();
                (key, timeline)
            })
            .collect()
    }

    /// Each series over everything selected; the rate is per second of the time its samples span.
    pub(crate) fn totals(&self) -> Vec<(&SeriesKey<'a>, Figures)> {
        self.0
            .iter()
            .map(|(key, samples)| {
                let first_start = samples
                    .iter()
                    .map(|s| s.end_ns.saturating_sub(s.duration_ns))
                    .min()
                    .unwrap_or(0);
                let last_end = samples.iter().map(|s| s.end_ns).max().unwrap_or(0);
                // A single burst still has a rate: at least one second is assumed.
                let spanned = last_end.saturating_sub(first_start).max(1_000_000_000);
                (key, Figures::of(samples, spanned))
            })
            .collect()
    }
}

/// More points than any chart shows; a tiny step over a long look-back stops here.
const MAX_POINTS: u64 = 10_000;

/// The RED figures of some samples.
pub(crate) struct Figures {
    pub(crate) calls: u64,
    pub(crate) errors: u64,
    /// Calls per second over the window the samples came from.
    pub(crate) rate: f64,
    durations_ns: Vec<u64>,
}

impl Figures {
    fn of(samples: &[Sample], window_ns: u64) -> Self {
        let mut durations_ns: Vec<u64> = samples.iter().map(|s| s.duration_ns).collect();
        durations_ns.sort_unstable();
        Figures {
            calls: samples.len() as u64,
            errors: samples.iter().filter(|s| s.error).count() as u64,
            rate: samples.len() as f64 / (window_ns.max(1) as f64 / 1e9),
            durations_ns,
        }
    }

    /// Errors per call, when there were calls.
    pub(crate) fn error_rate(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.errors as f64 / self.calls as f64)
    }

    /// The duration below which `quantile` of the calls finished (nearest rank), in nanoseconds.
    pub(crate) fn latency_ns(&self, quantile: f64) -> Option<u64> {
        let count = self.durations_ns.len();
        if count == 0 {
            return None;
        }
        let rank = (quantile.clamp(0.0, 1.0) * count as f64).ceil() as usize;
        Some(self.durations_ns[rank.clamp(1, count) - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    fn server_span(number: u64, name: &str, end_s: u64, duration_ms: u64, error: bool) -> Span {
        let end = end_s * 1_000_000_000;
        Span {
            trace_id: number.to_be_bytes().repeat(2),
            span_id: number.to_be_bytes().to_vec(),
            name: name.into(),
            kind: SpanKind::Server as i32,
            start_time_unix_nano: end - duration_ms * 1_000_000,
            end_time_unix_nano: end,
            status: error.then(|| Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn from(service: &str, spans: Vec<Span>) -> ResourceSpans {
        let name = KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(service.into())),
            }),
            ..Default::default()
        };
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![name],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn windows_rates_errors_and_percentiles() {
        let mut shop: Vec<Span> = (0..100u64)
            .map(|i| server_span(i + 1, "GET /", 100 + i % 60, i + 1, i % 10 == 0))
            .collect();
        shop.push(server_span(1000, "POST /pay", 150, 500, true));
        let other = vec![server_span(2000, "GET /", 150, 5, false)];
        let mut store = Store::new(1000, usize::MAX);
        store.insert(vec![from("shop", shop), from("other", other)]);
        let selection = Selection {
            services: &["shop".to_owned()],
            kind: SpanKind::Server,
            by_operation: false,
            ended: (0, u64::MAX),
        };
        let samples = Samples::collect(store.spans(), &selection);
        let mut samples_by_time = Samples::collect(store.spans(), &selection);
        let totals = samples.totals();
        let [(key, figures)] = totals.as_slice() else {
            panic!("one series")
        };
        assert_eq!(key, &&("shop", None));
        assert_eq!((figures.calls, figures.errors), (101, 11));
        assert_eq!(figures.latency_ns(0.5), Some(51_000_000));
        assert_eq!(figures.latency_ns(0.99), Some(100_000_000));
        assert_eq!(figures.latency_ns(1.0), Some(500_000_000));

        // Points every 10 s over the last 60 s up to t=160 s, each over the 10 s before it.
        let timeline = &samples_by_time.over_time(160_000_000_000, 60_000_000_000, 10_000_000_000, 10_000_000_000)[0].1;
        let calls: Vec<u64> = timeline.iter().map(|(_, f)| f.calls).collect();
        assert_eq!(calls, [20, 20, 20, 19, 11, 9]);
        assert_eq!(timeline[0].0, 110_000_000_000);
        assert!((timeline[0].1.rate - 2.0).abs() < 1e-9);

        let by_operation = Selection {
            by_operation: true,
            ..selection
        };
        let grouped_samples = Samples::collect(store.spans(), &by_operation);
        let grouped = grouped_samples.totals();
        let names: Vec<_> = grouped.iter().map(|(k, f)| (k.1, f.calls)).collect();
        assert_eq!(names, [(Some("GET /"), 100), (Some("POST /pay"), 1)]);
        let merged = grouped_samples.per_service();
        assert_eq!(merged.totals()[0].1.calls, 101);
    }
}
