//! The query API on the UI port: Jaeger's endpoints (`/api/services`, `/api/traces`...) plus
//! ferrotel's own for the web UI (trace summaries, span matches, OTLP/JSON download, logs,
//! metrics, store status). Handlers only read the stores.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::jaeger;
use crate::logs::LogQuery;
use crate::metrics;
use crate::reply;
use crate::store::{self, StoredSpan};
use crate::viewer::Viewer;

pub(crate) fn routes() -> Router<Arc<Viewer>> {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/services", get(services))
        .route("/api/logs", get(search_logs))
        .route("/api/dependencies", get(dependencies))
        .route("/api/metrics", get(list_metrics))
        .route("/api/metrics/{name}", get(metric_points))
        .route("/api/services/{service}/operations", get(operations))
        .route("/api/traces", get(search_traces))
        .route("/api/trace-summaries", get(trace_summaries))
        .route("/api/traces/{trace_id}", get(one_trace))
        .route("/api/traces/{trace_id}/otlp", get(one_trace_otlp))
        .route("/api/traces/{trace_id}/matches", get(matching_spans))
}

fn json_ok(value: serde_json::Value) -> Response {
    reply::json(StatusCode::OK, value.to_string().into_bytes())
}

fn api_error(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({"data": null, "errors": [{"code": status.as_u16(), "msg": message}]});
    reply::json(status, body.to_string().into_bytes())
}

/// What the store holds and what it let go, so a full or abused viewer is visible.
async fn status(State(viewer): State<Arc<Viewer>>) -> Response {
    let store = viewer.store();
    let logs = viewer.logs();
    let metrics = viewer.metrics();
    json_ok(serde_json::json!({
        "spans": store.span_count(),
        "evictedSpans": store.evicted_spans,
        "rejectedSpans": store.rejected_spans,
        "logRecords": logs.len(),
        "evictedLogRecords": logs.evicted_records,
        "metricSeries": metrics.series_count(),
        "refusedMetricSeries": metrics.refused_series,
        "evictedMetricPoints": metrics.evicted_points,
        "memoryBytes": {"spans": store.memory(), "logs": logs.memory(), "metrics": metrics.memory()},
    }))
}

async fn search_logs(State(viewer): State<Arc<Viewer>>, Query(params): Query<HashMap<String, String>>) -> Response {
    match LogQuery::parse(&params) {
        Ok(query) => json_ok(jaeger::envelope(viewer.logs().search(&query))),
        Err(message) => api_error(StatusCode::BAD_REQUEST, message),
    }
}

/// Jaeger's service map shape, plus the error count per edge.
async fn dependencies(State(viewer): State<Arc<Viewer>>) -> Response {
    let store = viewer.store();
    let edges = store
        .dependencies()
        .into_iter()
        .map(|((parent, child), (calls, errors))| {
            serde_json::json!({"parent": parent, "child": child, "callCount": calls, "errorCount": errors})
        })
        .collect();
    json_ok(jaeger::envelope(edges))
}

async fn list_metrics(State(viewer): State<Arc<Viewer>>, Query(params): Query<HashMap<String, String>>) -> Response {
    json_ok(jaeger::envelope(viewer.metrics().list(metrics::service_param(&params))))
}

async fn metric_points(
    State(viewer): State<Arc<Viewer>>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let series = viewer.metrics().points(&name, metrics::service_param(&params));
    if series.is_empty() {
        return api_error(StatusCode::NOT_FOUND, format!("no metric named {name}"));
    }
    json_ok(jaeger::envelope(series))
}

async fn services(State(viewer): State<Arc<Viewer>>) -> Response {
    let store = viewer.store();
    let mut names: Vec<&str> = store.services().collect();
    names.sort_unstable();
    json_ok(jaeger::envelope(
        names.into_iter().map(serde_json::Value::from).collect(),
    ))
}

async fn operations(State(viewer): State<Arc<Viewer>>, Path(service): Path<String>) -> Response {
    let store = viewer.store();
    json_ok(jaeger::envelope(
        store
            .operations(&service)
            .into_iter()
            .map(serde_json::Value::from)
            .collect(),
    ))
}

async fn search_traces(State(viewer): State<Arc<Viewer>>, Query(params): Query<HashMap<String, String>>) -> Response {
    match jaeger::TraceQuery::parse(&params) {
        Ok(query) => json_ok(query.search(&viewer.store())),
        Err(message) => api_error(StatusCode::BAD_REQUEST, message),
    }
}

async fn trace_summaries(State(viewer): State<Arc<Viewer>>, Query(params): Query<HashMap<String, String>>) -> Response {
    match jaeger::TraceQuery::parse(&params) {
        Ok(query) => json_ok(query.summaries(&viewer.store())),
        Err(message) => api_error(StatusCode::BAD_REQUEST, message),
    }
}

/// The span ids of one trace that satisfy a search, so the trace view can highlight them.
async fn matching_spans(
    State(viewer): State<Arc<Viewer>>,
    Path(trace_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let query = match jaeger::TraceQuery::parse(&params) {
        Ok(query) => query,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    with_trace(&viewer, &trace_id, |_, spans| {
        json_ok(jaeger::envelope(
            query.matching_span_ids(spans).into_iter().map(Into::into).collect(),
        ))
    })
}

/// Looks a trace up by its hex id and renders it, or answers 400 / 404.
fn with_trace(
    viewer: &Viewer,
    text: &str,
    render: impl FnOnce(&store::TraceId, &[Arc<StoredSpan>]) -> Response,
) -> Response {
    let mut id = [0u8; 16];
    // Jaeger clients may drop leading zeros; left-pad to 32 hex digits.
    if const_hex::decode_to_slice(format!("{text:0>32}"), &mut id).is_err() {
        return api_error(StatusCode::BAD_REQUEST, format!("not a trace id: {text}"));
    }
    match viewer.store().trace(&id) {
        Some(spans) => render(&id, spans),
        None => api_error(StatusCode::NOT_FOUND, format!("trace {text} not found")),
    }
}

async fn one_trace(State(viewer): State<Arc<Viewer>>, Path(trace_id): Path<String>) -> Response {
    with_trace(&viewer, &trace_id, |id, spans| {
        json_ok(jaeger::envelope(vec![jaeger::trace_json(id, spans)]))
    })
}

/// One trace as an OTLP/JSON export request, spans regrouped under their resource and scope.
async fn one_trace_otlp(State(viewer): State<Arc<Viewer>>, Path(trace_id): Path<String>) -> Response {
    with_trace(&viewer, &trace_id, |_, spans| {
        reply::json(
            StatusCode::OK,
            serde_json::to_vec(&store::as_export_request(spans)).unwrap_or_default(),
        )
    })
}
