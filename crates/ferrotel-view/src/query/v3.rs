//! Jaeger's v3 query API (`/api/v3/...`), which current Jaeger UI calls for its search page:
//! services, operations with their kinds, traces as OTLP/JSON wrapped in `{"result": ...}`,
//! and trace summaries. Parameters come as `query.serviceName` or `query.service_name`,
//! times as RFC 3339, durations as `1.5s`; errors are google.rpc.Status objects.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::{json, Value as Json};

use super::json_ok;
use crate::otlp_json;
use crate::params::Params;
use crate::reply;
use crate::search::{
    kind_name, parse_go_duration, parse_kind, parse_limit, parse_tags, parse_trace_id, Condition, TraceQuery,
};
use crate::store::{as_export_request, StoredSpan};
use crate::summary::Summary;
use crate::timefmt;
use crate::viewer::Viewer;

/// google.rpc.Status codes used here.
const INVALID_ARGUMENT: i32 = 3;
const NOT_FOUND: i32 = 5;

fn rpc_error(status: StatusCode, code: i32, message: String) -> Response {
    let body = json!({"code": code, "message": message, "details": []});
    reply::json(status, body.to_string().into_bytes())
}

fn bad_request(message: String) -> Response {
    rpc_error(StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message)
}

pub(super) async fn services(State(viewer): State<Arc<Viewer>>) -> Response {
    let store = viewer.store();
    let mut names: Vec<&str> = store.services().collect();
    names.sort_unstable();
    json_ok(json!({"services": names}))
}

pub(super) async fn operations(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    let Some(service) = params.get("service") else {
        return bad_request("service is required".to_owned());
    };
    let kind = match params.any_of(&["spanKind", "span_kind"]).map(parse_kind).transpose() {
        Ok(kind) => kind,
        Err(message) => return bad_request(message),
    };
    let store = viewer.store();
    let operations: Vec<Json> = store
        .operations_by_kind(service, kind)
        .into_iter()
        .map(|(name, kind)| json!({"name": name, "spanKind": kind_name(kind)}))
        .collect();
    json_ok(json!({"operations": operations}))
}

/// A v3 search's parameters as a `TraceQuery`.
fn parse_query(params: &Params) -> Result<TraceQuery, String> {
    let field = |camel: &str, snake: &str| params.any_of(&[&format!("query.{camel}"), &format!("query.{snake}")]);
    let mut conditions = Vec::new();
    if let Some(service) = field("serviceName", "service_name") {
        conditions.push(Condition::Service(service.to_owned()));
    }
    if let Some(operation) = field("operationName", "operation_name") {
        conditions.push(Condition::Operation(operation.to_owned()));
    }
    if let Some(attributes) = field("attributes", "attributes") {
        conditions.extend(parse_tags(attributes)?.into_iter().map(|(k, v)| Condition::Tag(k, v)));
    }
    // The gRPC gateway's form of a map: `query.attributes[key]=value`.
    for (key, value) in params.pairs() {
        if let Some(attribute) = key.strip_prefix("query.attributes[").and_then(|k| k.strip_suffix(']')) {
            conditions.push(Condition::Tag(attribute.to_owned(), value.to_owned()));
        }
    }
    let time = |camel: &str, snake: &str| {
        field(camel, snake)
            .map(|v| timefmt::parse_rfc3339(v).ok_or(format!("query.{camel}: not an RFC 3339 time: {v}")))
            .transpose()
    };
    if let Some(start) = time("startTimeMin", "start_time_min")? {
        conditions.push(Condition::StartsAtOrAfter(start));
    }
    if let Some(end) = time("startTimeMax", "start_time_max")? {
        conditions.push(Condition::StartsAtOrBefore(end));
    }
    let duration = |camel: &str, snake: &str| {
        field(camel, snake)
            .map(|v| parse_go_duration(v).ok_or(format!("query.{camel}: not a duration: {v}")))
            .transpose()
    };
    if let Some(min) = duration("durationMin", "duration_min")? {
        conditions.push(Condition::MinDuration(min));
    }
    if let Some(max) = duration("durationMax", "duration_max")? {
        conditions.push(Condition::MaxDuration(max));
    }
    let depth = field("searchDepth", "search_depth").or(field("numTraces", "num_traces"));
    Ok(TraceQuery {
        conditions,
        limit: parse_limit(depth, 20)?,
        ..TraceQuery::default()
    })
}

fn otlp_result<'a>(traces: impl Iterator<Item = &'a [Arc<StoredSpan>]>) -> Json {
    let resource_spans = traces
        .flat_map(|spans| as_export_request(spans).resource_spans)
        .collect();
    json!({"result": otlp_json::encode_traces(&ExportTraceServiceRequest { resource_spans })})
}

/// `/api/v3/traces`: the matching traces' spans, all in one OTLP/JSON result.
pub(super) async fn find_traces(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    let query = match parse_query(&params) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let store = viewer.store();
    let found = query.find(&store, false);
    json_ok(otlp_result(found.traces.iter().map(|(_, spans)| *spans)))
}

pub(super) async fn trace(State(viewer): State<Arc<Viewer>>, Path(trace_id): Path<String>) -> Response {
    let Some(id) = parse_trace_id(&trace_id) else {
        return bad_request(format!("not a trace id: {trace_id}"));
    };
    match viewer.trace(&id) {
        Some(spans) => json_ok(otlp_result(std::iter::once(spans.as_slice()))),
        None => rpc_error(StatusCode::NOT_FOUND, NOT_FOUND, format!("trace {trace_id} not found")),
    }
}

/// `/api/v3/trace-summaries`: what the search page of Jaeger UI 2.19 and later lists.
pub(super) async fn trace_summaries(State(viewer): State<Arc<Viewer>>, params: Params) -> Response {
    let query = match parse_query(&params) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let store = viewer.store();
    let summaries: Vec<Json> = query
        .find(&store, false)
        .traces
        .iter()
        .map(|(id, spans)| {
            let summary = Summary::of(spans);
            let services: Vec<Json> = summary
                .services
                .iter()
                .map(|(name, (spans, errors))| json!({"name": name, "spanCount": spans, "errorSpanCount": errors}))
                .collect();
            json!({
                "traceId": const_hex::encode(id),
                "rootServiceName": summary.root.map_or("", |s| s.origin.service.as_str()),
                "rootOperationName": summary.root.map_or("", |s| s.span.name.as_str()),
                "minStartTimeUnixNano": summary.start_ns.to_string(),
                "maxEndTimeUnixNano": summary.end_ns.to_string(),
                "spanCount": summary.span_count,
                "errorSpanCount": summary.error_count,
                "orphanSpanCount": summary.orphan_count,
                "services": services,
            })
        })
        .collect();
    json_ok(json!({"summaries": summaries}))
}
