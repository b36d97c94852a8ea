//! ferrotel's own API for its web UI: the trace list's rows (with how many matched in all and
//! a hint when conditions only hold across spans), the spans a search matched, a trace as
//! OTLP/JSON and an OTLP/JSON file uploaded, logs, metric series and points, store status.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::{json, Value as Json};

use super::{api_error, find_trace, json_ok};
use crate::intake::Signal;
use crate::jaeger::envelope;
use crate::logs::LogQuery;
use crate::otlp_json::{self, AnySignal};
use crate::params::Params;
use crate::search::{TraceQuery, COUNT_BUDGET};
use crate::store::{as_export_request, TraceId};
use crate::summary::Summary;
use crate::viewer::Viewer;

/// What the stores hold and what they let go, so a full or abused viewer is visible.
pub(super) async fn status(State(viewer): State<Arc<Viewer>>) -> Response {
    let store = viewer.store();
    let logs = viewer.logs();
    let metrics = viewer.metrics();
    json_ok(json!({
        "spans": store.span_count(),
        "evictedSpans": store.evicted_spans,
        "rejectedSpans": store.rejected_spans,
        "logRecords": logs.len(),
        "evictedLogRecords": logs.evicted_records,
        "metricSeries": metrics.series_count(),
        "refusedMetricSeries": metrics.refused_series,
        "evictedMetricPoints": metrics.evicted_points,
        "archivedTraces": viewer.archive().len(),
        "memoryBytes": {"spans": store.memory(), "logs": logs.memory(), "metrics": metrics.memory()},
    }))
}

/// The trace list: one row per matching trace, newest received first, with the spans that
/// matched; `total` counts every match (`totalExact` false when counting ran out of time and
/// `total` is a lower bound), and when nothing matches but the conditions hold
/// across several spans of some traces, `hint.acrossSpans` says how many.
pub(super) async fn trace_summaries(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    let query = match TraceQuery::parse(&params) {
        Ok(query) => query,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    let store = viewer.store();
    let found = query.find(&store, true);
    let rows: Vec<Json> = found
        .traces
        .iter()
        .map(|(id, spans)| {
            let summary = Summary::of(spans);
            let services: Vec<&str> = summary.services.keys().copied().collect();
            json!({
                "traceID": const_hex::encode(id),
                "rootService": summary.root.map(|s| s.origin.service.as_str()),
                "rootName": summary.root.map(|s| s.span.name.as_str()),
                "rootMissing": summary.root_missing,
                "startTime": summary.start_ns / 1000,
                "duration": summary.end_ns.saturating_sub(summary.start_ns) / 1000,
                "spanCount": summary.span_count,
                "errorCount": summary.error_count,
                "services": services,
                "matchedSpanIDs": if query.selects_spans() { query.matching_span_ids(spans) } else { Vec::new() },
            })
        })
        .collect();
    let mut body = json!({
        "data": rows,
        "total": found.total,
        "totalExact": found.total_exact,
        "limit": query.limit,
        "errors": null,
    });
    let several_conditions = query.conditions.len() > 1 && !query.across_spans;
    if found.total == 0 && several_conditions && query.trace_ids.is_empty() {
        let across = query.across_spans();
        let (count, exact) = store.count_traces(|spans| across.matches(spans), Instant::now() + COUNT_BUDGET);
        if count > 0 {
            body["hint"] = json!({"acrossSpans": count, "acrossSpansExact": exact});
        }
    }
    json_ok(body)
}

/// The span ids of one trace that satisfy a search, so the trace view can highlight them.
pub(super) async fn matching_spans(
    State(viewer): State<Arc<Viewer>>,
    Path(trace_id): Path<String>,
    params: Params,
) -> Response {
    let query = match TraceQuery::parse(&params) {
        Ok(query) => query,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    match find_trace(&viewer, &trace_id) {
        Ok((_, spans)) => json_ok(envelope(
            query.matching_span_ids(&spans).into_iter().map(Into::into).collect(),
        )),
        Err(error) => error.into_response(),
    }
}

/// One trace as an OTLP/JSON export request, spans regrouped under their resource and scope.
pub(super) async fn trace_otlp(State(viewer): State<Arc<Viewer>>, Path(trace_id): Path<String>) -> Response {
    match find_trace(&viewer, &trace_id) {
        Ok((_, spans)) => json_ok(otlp_json::encode_traces(&as_export_request(&spans))),
        Err(error) => error.into_response(),
    }
}

/// An OTLP/JSON file (traces, logs or metrics, as downloaded here or written by an
/// exporter) kept like any export; answers with the traces it held.
pub(super) async fn upload(State(viewer): State<Arc<Viewer>>, body: Bytes) -> Response {
    let decoded = match otlp_json::any_signal(&body) {
        Ok(decoded) => decoded,
        Err(error) => return api_error(StatusCode::BAD_REQUEST, format!("not an OTLP/JSON file: {error}")),
    };
    let kept = match decoded {
        AnySignal::Traces(request) => {
            let trace_ids = trace_ids(&request);
            let spans = request.items();
            viewer.accept(request).await.map(|reply| {
                let rejected = reply.partial_success.map_or(0, |p| p.rejected_spans);
                json!({"traceIDs": trace_ids, "spans": spans, "rejectedSpans": rejected})
            })
        }
        AnySignal::Logs(request) => {
            let records = request.items();
            viewer.accept(request).await.map(|_| json!({"logRecords": records}))
        }
        AnySignal::Metrics(request) => {
            let points = request.items();
            viewer.accept(request).await.map(|_| json!({"metricPoints": points}))
        }
    };
    match kept {
        Ok(summary) => json_ok(summary),
        Err(message) => api_error(StatusCode::SERVICE_UNAVAILABLE, message),
    }
}

/// The distinct well-formed trace ids of a request, in order of first appearance.
fn trace_ids(request: &ExportTraceServiceRequest) -> Vec<String> {
    let mut ids: Vec<TraceId> = Vec::new();
    let spans = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans);
    for span in spans {
        if let Ok(id) = TraceId::try_from(span.trace_id.as_slice()) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids.iter().map(const_hex::encode).collect()
}

pub(super) async fn logs(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    match LogQuery::parse(&params) {
        Ok(query) => json_ok(envelope(viewer.logs().search(&query))),
        Err(message) => api_error(StatusCode::BAD_REQUEST, message),
    }
}

pub(super) async fn metric_series(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    json_ok(envelope(viewer.metrics().list(params.get("service"))))
}

/// `/api/metrics/{name}?service=`: every stored point of the metric, oldest first.
pub(super) fn metric_points(State(viewer): State<Arc<Viewer>>, name: &str, params: &Params) -> Response {
    let series = viewer.metrics().points(name, params.get("service"));
    if series.is_empty() {
        return api_error(StatusCode::NOT_FOUND, format!("no metric named {name}"));
    }
    json_ok(envelope(series))
}
