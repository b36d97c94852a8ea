//! RED figures from the stored spans: Jaeger's Monitor tab (`/api/metrics/latencies`,
//! `calls`, `errors`, in the shape its UI reads: gauges per service, or per service and
//! operation, with a point per step) and ferrotel's per-service summary (`/api/red`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::{json, Value as Json};

use super::{api_error, json_ok};
use crate::params::Params;
use crate::red::{Figures, Samples, Selection, SeriesKey};
use crate::search::{parse_go_duration, parse_kind};
use crate::timefmt;
use crate::viewer::Viewer;

#[derive(Clone, Copy, PartialEq)]
enum Measure {
    Latencies,
    Calls,
    Errors,
}

/// The services asked for: `service=a&service=b`, and the `service=a,service=b` that Jaeger
/// UI writes when it asks for several.
fn services(params: &Params) -> Vec<String> {
    params
        .all("service")
        .flat_map(|v| v.split(','))
        .map(|v| v.strip_prefix("service=").unwrap_or(v).to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

fn kind(params: &Params) -> Result<SpanKind, String> {
    Ok(params
        .get("spanKind")
        .map(parse_kind)
        .transpose()?
        .unwrap_or(SpanKind::Server))
}

/// `/api/metrics/{latencies,calls,errors}?service=&endTs=&lookback=&step=&ratePer=&quantile=
/// &spanKind=&groupByOperation=`: times in milliseconds; latencies in milliseconds, calls per
/// second, errors as a fraction of calls.
pub(super) fn metrics(State(viewer): State<Arc<Viewer>>, name: &str, params: &Params) -> Response {
    let measure = match name {
        "latencies" => Measure::Latencies,
        "calls" => Measure::Calls,
        _ => Measure::Errors,
    };
    // Parameters in milliseconds, returned in nanoseconds.
    let millis = |key: &str, default_ns: u64| -> Result<u64, String> {
        params.get(key).map_or(Ok(default_ns), |v| {
            v.parse::<f64>()
                .ok()
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| (ms * 1e6) as u64)
                .ok_or(format!("{key}: not a number of milliseconds: {v}"))
        })
    };
    let parsed = (|| -> Result<_, String> {
        const MINUTE: u64 = 60_000_000_000;
        let end = millis("endTs", timefmt::now_ns())?;
        let lookback = millis("lookback", 60 * MINUTE)?;
        // At least a second a step, so a careless request cannot ask for billions of points.
        let step = millis("step", MINUTE)?.max(1_000_000_000);
        let window = millis("ratePer", step)?.max(step);
        let quantile = params.get("quantile").map_or(Ok(0.95), |q| {
            q.parse::<f64>()
                .ok()
                .filter(|q| (0.0..=1.0).contains(q))
                .ok_or(format!("quantile: not between 0 and 1: {q}"))
        })?;
        Ok((end, lookback, step, window, quantile, kind(params)?))
    })();
    let (end, lookback, step, window, quantile, kind) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    let by_operation = params.flag("groupByOperation");
    let services = services(params);
    let selection = Selection {
        services: &services,
        kind,
        by_operation,
        ended: (end.saturating_sub(lookback + window), end),
    };
    let store = viewer.store();
    let mut samples = Samples::collect(store.spans(), &selection);
    let series: Vec<Json> = samples
        .over_time(end, lookback, step, window)
        .into_iter()
        .map(|(key, timeline)| {
            let points: Vec<Json> = timeline
                .iter()
                .filter_map(|(at, figures)| {
                    let value = match measure {
                        Measure::Latencies => figures.latency_ns(quantile).map(|ns| ns as f64 / 1e6),
                        Measure::Calls => Some(figures.rate),
                        Measure::Errors => figures.error_rate(),
                    }?;
                    Some(json!({"gaugeValue": {"doubleValue": value}, "timestamp": timefmt::rfc3339_ms(*at)}))
                })
                .collect();
            json!({"labels": labels(key), "metricPoints": points})
        })
        .collect();
    let scope = if by_operation { "service_operation" } else { "service" };
    let (name, help) = match measure {
        Measure::Latencies => ("latencies", format!("{quantile}th quantile latency in ms")),
        Measure::Calls => ("call_rate", "calls/sec".to_owned()),
        Measure::Errors => ("error_rate", "error rate, 0 to 1".to_owned()),
    };
    let grouping = if by_operation {
        "grouped by service & operation"
    } else {
        "grouped by service"
    };
    json_ok(json!({
        "name": format!("{scope}_{name}"),
        "type": "GAUGE",
        "help": format!("{help}, {grouping}"),
        "metrics": series,
    }))
}

/// Jaeger UI reads the service from the first label and the operation by its name.
fn labels((service, operation): &SeriesKey<'_>) -> Vec<Json> {
    let mut labels = vec![json!({"name": "service_name", "value": service})];
    if let Some(operation) = operation {
        labels.push(json!({"name": "operation", "value": operation}));
    }
    labels
}

fn figures_json(figures: &Figures) -> Json {
    let ms = |q: f64| figures.latency_ns(q).map(|ns| ns as f64 / 1e6);
    json!({
        "calls": figures.calls,
        "errors": figures.errors,
        "ratePerSecond": figures.rate,
        "errorRate": figures.error_rate(),
        "p50Ms": ms(0.5),
        "p95Ms": ms(0.95),
        "p99Ms": ms(0.99),
    })
}

/// `/api/red?spanKind=&lookback=&service=`: per service, and per operation inside it, the calls,
/// errors, rate and latency percentiles of its server spans (or `spanKind`'s) over what is
/// stored (or the `lookback`, a duration such as `15m`, before now).
pub(super) async fn summary(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    let kind = match kind(&params) {
        Ok(kind) => kind,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    let since = match params
        .get("lookback")
        .map(|v| parse_go_duration(v).ok_or(format!("lookback: not a duration: {v}")))
    {
        Some(Ok(back)) => timefmt::now_ns().saturating_sub(back),
        Some(Err(message)) => return api_error(StatusCode::BAD_REQUEST, message),
        None => 0,
    };
    let services = services(&params);
    let selection = Selection {
        services: &services,
        kind,
        by_operation: true,
        ended: (since, u64::MAX),
    };
    // One pass over the spans; a service's figures are its operations' samples together.
    let store = viewer.store();
    let per_operation = Samples::collect(store.spans(), &selection);
    let per_service = per_operation.per_service();
    let operations = per_operation.totals();
    let rows: Vec<Json> = per_service
        .totals()
        .into_iter()
        .map(|((service, _), figures)| {
            let mut row = figures_json(&figures);
            row["service"] = (*service).into();
            row["operations"] = operations
                .iter()
                .filter(|((s, _), _)| s == service)
                .map(|((_, operation), figures)| {
                    let mut row = figures_json(figures);
                    row["operation"] = operation.unwrap_or_default().into();
                    row
                })
                .collect::<Vec<_>>()
                .into();
            row
        })
        .collect();
    json_ok(crate::jaeger::envelope(rows))
}
