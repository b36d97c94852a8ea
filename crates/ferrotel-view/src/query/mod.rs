//! The query API on the UI port: Jaeger's classic API (`classic`) and its v3 API (`v3`) as
//! Jaeger UI calls them, the Monitor tab's RED metrics (`monitor`), and ferrotel's own API
//! for its web UI (`own`: trace summaries, search matches, OTLP/JSON download and upload,
//! logs, metric series, store status). Handlers read the stores; only an upload writes.

mod classic;
mod monitor;
mod own;
mod v3;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value as Json;

use crate::params::Params;
use crate::reply;
use crate::search::parse_trace_id;
use crate::store::{StoredSpan, TraceId};
use crate::viewer::Viewer;

pub(crate) fn routes(max_body_bytes: usize) -> Router<Arc<Viewer>> {
    Router::new()
        // Jaeger's classic API.
        .route("/api/services", get(classic::services))
        .route("/api/services/{service}/operations", get(classic::operation_names))
        .route("/api/operations", get(classic::operations))
        .route("/api/traces", get(classic::search))
        .route("/api/traces/{trace_id}", get(classic::trace))
        .route("/api/dependencies", get(classic::dependencies))
        .route("/api/archive/{trace_id}", post(classic::archive))
        .route("/api/transform", post(classic::transform))
        // Jaeger's Monitor tab and ferrotel's own metric series share this path.
        .route("/api/metrics/{name}", get(metrics_by_name))
        // Jaeger's v3 API.
        .route("/api/v3/services", get(v3::services))
        .route("/api/v3/operations", get(v3::operations))
        .route("/api/v3/traces", get(v3::find_traces))
        .route("/api/v3/traces/{trace_id}", get(v3::trace))
        .route("/api/v3/trace-summaries", get(v3::trace_summaries))
        // ferrotel's own.
        .route("/api/status", get(own::status))
        .route("/api/trace-summaries", get(own::trace_summaries))
        .route("/api/traces/{trace_id}/otlp", get(own::trace_otlp))
        .route("/api/traces/{trace_id}/matches", get(own::matching_spans))
        .route("/api/upload", post(own::upload))
        .route("/api/red", get(monitor::summary))
        .route("/api/logs", get(own::logs))
        .route("/api/metrics", get(own::metric_series))
        // An upload is a whole OTLP request; the other routes take no body.
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
}

/// `/api/metrics/{latencies,calls,errors}` with the Monitor tab's parameters (it always sends
/// `endTs` and `lookback`) are Jaeger's RED metrics; otherwise the stored series of that name.
async fn metrics_by_name(state: State<Arc<Viewer>>, Path(name): Path<String>, params: Params) -> Response {
    let monitor_parameter = [
        "endTs",
        "lookback",
        "step",
        "ratePer",
        "quantile",
        "groupByOperation",
        "spanKind",
    ]
    .iter()
    .any(|key| params.get(key).is_some());
    match name.as_str() {
        "latencies" | "calls" | "errors" if monitor_parameter => monitor::metrics(state, &name, &params),
        _ => own::metric_points(state, &name, &params),
    }
}

fn json_ok(value: Json) -> Response {
    reply::json(StatusCode::OK, value.to_string().into_bytes())
}

/// Jaeger's error envelope, which its UI reads for the message.
fn api_error(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({"data": null, "errors": [{"code": status.as_u16(), "msg": message}]});
    reply::json(status, body.to_string().into_bytes())
}

/// A failed lookup, answered in Jaeger's error envelope.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        api_error(self.0, self.1)
    }
}

/// A trace from the store or the archive by its hex id.
fn find_trace(viewer: &Viewer, text: &str) -> Result<(TraceId, Vec<Arc<StoredSpan>>), ApiError> {
    let id =
        parse_trace_id(text).ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, format!("not a trace id: {text}")))?;
    match viewer.trace(&id) {
        Some(spans) => Ok((id, spans)),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("trace {text} not found"))),
    }
}
