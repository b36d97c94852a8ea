//! Jaeger's classic query API (`/api/...`), as Jaeger UI calls it: services and operations,
//! trace search and fetch (several ids at once for its Compare view), the service map over a
//! time window, archiving, and turning an OTLP/JSON file into Jaeger's shape.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value as Json};

use super::{api_error, find_trace, json_ok};
use crate::jaeger::{envelope, envelope_with_errors, trace_json};
use crate::otlp_json;
use crate::params::Params;
use crate::reply;
use crate::search::{kind_name, parse_kind, TraceQuery};
use crate::store::Store;
use crate::timefmt;
use crate::viewer::Viewer;

pub(super) async fn services(State(viewer): State<Arc<Viewer>>) -> Response {
    let store = viewer.store();
    let mut names: Vec<&str> = store.services().collect();
    names.sort_unstable();
    json_ok(envelope(names.into_iter().map(Json::from).collect()))
}

pub(super) async fn operation_names(State(viewer): State<Arc<Viewer>>, Path(service): Path<String>) -> Response {
    let store = viewer.store();
    json_ok(envelope(
        store.operations(&service).into_iter().map(Json::from).collect(),
    ))
}

/// `/api/operations?service=&spanKind=`: names with their kinds (the Monitor tab asks for
/// the server ones).
pub(super) async fn operations(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    let Some(service) = params.get("service") else {
        return api_error(StatusCode::BAD_REQUEST, "service is required".to_owned());
    };
    let kind = match params.get("spanKind").map(parse_kind).transpose() {
        Ok(kind) => kind,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    let store = viewer.store();
    let operations = store
        .operations_by_kind(service, kind)
        .into_iter()
        .map(|(name, kind)| json!({"name": name, "spanKind": kind_name(kind)}))
        .collect();
    json_ok(envelope(operations))
}

/// `/api/traces`: a search, or with `traceID=` (repeatable) those traces, each id not found
/// reported in `errors` as Jaeger does.
pub(super) async fn search(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    let query = match TraceQuery::parse(&params) {
        Ok(query) => query,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    if !query.trace_ids.is_empty() {
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for id in &query.trace_ids {
            match viewer.trace(id) {
                Some(spans) => found.push(trace_json(id, &spans)),
                None => errors.push(json!({"code": 404, "msg": "trace not found", "traceID": const_hex::encode(id)})),
            }
        }
        return json_ok(envelope_with_errors(found, errors));
    }
    let store = viewer.store();
    let found = query.find(&store, false);
    json_ok(envelope(
        found.traces.iter().map(|(id, spans)| trace_json(id, spans)).collect(),
    ))
}

/// `/api/traces/{id}`; Jaeger UI's "Trace JSON" links add `prettyPrint=true`.
pub(super) async fn trace(State(viewer): State<Arc<Viewer>>, Path(trace_id): Path<String>, params: Params) -> Response {
    match find_trace(&viewer, &trace_id) {
        Ok((id, spans)) => {
            let body = envelope(vec![trace_json(&id, &spans)]);
            let text = if params.flag("prettyPrint") {
                serde_json::to_string_pretty(&body).unwrap_or_default()
            } else {
                body.to_string()
            };
            reply::json(StatusCode::OK, text.into_bytes())
        }
        Err(error) => error.into_response(),
    }
}

/// The service map; Jaeger UI sends `endTs` and `lookback` in milliseconds, and only calls
/// that started within that window count.
pub(super) async fn dependencies(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    let millis = |key: &str| -> Result<Option<u64>, String> {
        params
            .get(key)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{key}: not a number of milliseconds: {v}"))
            })
            .transpose()
    };
    let window = match (millis("endTs"), millis("lookback")) {
        (Ok(None), Ok(None)) => None,
        (Ok(end), Ok(lookback)) => {
            let end_ns = end.map_or_else(timefmt::now_ns, |ms| ms.saturating_mul(1_000_000));
            let from = lookback.map_or(0, |ms| end_ns.saturating_sub(ms.saturating_mul(1_000_000)));
            Some((from, end_ns))
        }
        (Err(message), _) | (_, Err(message)) => return api_error(StatusCode::BAD_REQUEST, message),
    };
    let store = viewer.store();
    let edges = store
        .dependencies(window)
        .into_iter()
        .map(|((parent, child), (calls, errors))| {
            json!({"parent": parent, "child": child, "callCount": calls, "errorCount": errors})
        })
        .collect();
    json_ok(envelope(edges))
}

/// Jaeger UI's "Archive Trace": the trace is kept after the store evicts it.
pub(super) async fn archive(State(viewer): State<Arc<Viewer>>, Path(trace_id): Path<String>) -> Response {
    let (id, spans) = match find_trace(&viewer, &trace_id) {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    if viewer.archive().save(id, spans) {
        json_ok(envelope(Vec::new()))
    } else {
        api_error(
            StatusCode::INSUFFICIENT_STORAGE,
            format!("trace {trace_id} is larger than the archive's share of --max-memory"),
        )
    }
}

/// Jaeger UI's file loader posts OTLP/JSON here to have it in Jaeger's shape; nothing is kept.
pub(super) async fn transform(body: Bytes) -> Response {
    let request = match otlp_json::traces(&body) {
        Ok(request) => request,
        Err(error) => return api_error(StatusCode::BAD_REQUEST, format!("not OTLP/JSON traces: {error}")),
    };
    let mut scratch = Store::new(usize::MAX, usize::MAX);
    scratch.insert(request.resource_spans);
    let traces = scratch
        .traces_newest_first(|_| true)
        .map(|(id, spans)| trace_json(id, spans))
        .collect();
    let left_out = scratch.rejected_spans;
    let errors = if left_out > 0 {
        vec![
            json!({"code": 400, "msg": format!("{left_out} spans without a 16-byte trace id and an 8-byte span id were left out")}),
        ]
    } else {
        Vec::new()
    };
    json_ok(envelope_with_errors(traces, errors))
}
