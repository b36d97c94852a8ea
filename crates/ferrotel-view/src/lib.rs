//! `ferrotel view`: receives OTLP traces over HTTP (protobuf or JSON, optionally gzip), keeps them
//! in a bounded in-memory store and answers Jaeger-compatible queries.

mod grpc;
mod jaeger;
mod journal;
mod logs;
mod metrics;
mod store;

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;

use journal::{Journal, Kind};
use logs::{LogQuery, LogStore};
use metrics::MetricStore;
use store::{Store, StoredSpan};

pub struct Options {
    pub listen: IpAddr,
    pub grpc_port: u16,
    pub http_port: u16,
    pub ui_port: u16,
    pub max_spans: usize,
    pub max_logs: usize,
    pub max_points_per_series: usize,
    pub max_body_bytes: usize,
    pub token: Option<String>,
    pub db: Option<PathBuf>,
}

/// A `--db` file keeps this many metric points: a hundred series at full depth.
const DB_SERIES_AT_FULL_DEPTH: usize = 100;

struct Viewer {
    store: Mutex<Store>,
    logs: Mutex<LogStore>,
    metrics: Mutex<MetricStore>,
    journal: Option<Journal>,
    max_body_bytes: usize,
    token: Option<String>,
}

impl Viewer {
    /// Keeps a request: first in the `--db` file when there is one (an error there means the
    /// client should retry, and memory is left unchanged), then in memory.
    async fn accept<S: Signal>(&self, request: S) -> Result<S::Reply, String> {
        if let Some(journal) = &self.journal {
            journal
                .append(S::KIND, request.items(), request.encode_to_vec())
                .await?;
        }
        Ok(request.ingest(self))
    }

    /// Loads what a `--db` file held at start; returns the requests it could not read.
    fn restore(&self, batches: Vec<(Kind, Vec<u8>)>) -> usize {
        let mut unreadable = 0;
        for (kind, body) in batches {
            let loaded = match kind {
                Kind::Traces => ExportTraceServiceRequest::decode(body.as_slice()).map(|r| {
                    self.ingest_traces(r);
                }),
                Kind::Metrics => ExportMetricsServiceRequest::decode(body.as_slice()).map(|r| {
                    self.ingest_metrics(r);
                }),
                Kind::Logs => ExportLogsServiceRequest::decode(body.as_slice()).map(|r| {
                    self.ingest_logs(r);
                }),
            };
            unreadable += usize::from(loaded.is_err());
        }
        unreadable
    }

    /// Stores a request's spans; the reply reports any that were refused, per OTLP partial success.
    fn ingest_traces(&self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse {
        let rejected = {
            let mut store = self.store();
            let before = store.rejected_spans;
            store.insert(request.resource_spans);
            store.rejected_spans - before
        };
        let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: "spans need a 16-byte trace id and 8-byte span ids".to_owned(),
        });
        ExportTraceServiceResponse { partial_success }
    }

    fn ingest_logs(&self, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse {
        self.logs().insert(request.resource_logs);
        ExportLogsServiceResponse::default()
    }

    fn ingest_metrics(&self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse {
        self.metrics().insert(request.resource_metrics);
        ExportMetricsServiceResponse::default()
    }

    fn authorized(&self, authorization: Option<&str>) -> bool {
        match &self.token {
            Some(token) => authorization.and_then(|v| v.strip_prefix("Bearer ")) == Some(token.as_str()),
            None => true,
        }
    }

    fn is_token(&self, candidate: Option<&str>) -> bool {
        self.token.as_deref().is_some_and(|token| candidate == Some(token))
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A handler that panicked mid-insert leaves whole spans behind; the data stays readable.
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn logs(&self) -> MutexGuard<'_, LogStore> {
        self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn metrics(&self) -> MutexGuard<'_, MetricStore> {
        self.metrics.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Binds both ports up front so a port in use is reported by name, then serves until killed.
pub fn run(options: Options) -> Result<(), String> {
    if !options.listen.is_loopback() && options.token.is_none() {
        return Err(format!(
            "listening on {} exposes your telemetry to the network; pass --token SECRET \
             (clients then send `Authorization: Bearer SECRET`)",
            options.listen
        ));
    }
    let bind = |port: u16, flag: &str| {
        TcpListener::bind(SocketAddr::new(options.listen, port)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "port {port} on {} is already in use; choose another with {flag} PORT",
                    options.listen
                )
            } else {
                format!("cannot listen on {}:{port} ({flag}): {e}", options.listen)
            }
        })
    };
    let grpc_listener = bind(options.grpc_port, "--grpc")?;
    let otlp_listener = bind(options.http_port, "--http")?;
    let ui_listener = bind(options.ui_port, "--ui")?;
    let (journal, restored) = match &options.db {
        Some(path) => {
            let caps = journal::Caps {
                spans: options.max_spans as u64,
                metric_points: (options.max_points_per_series * DB_SERIES_AT_FULL_DEPTH) as u64,
                log_records: options.max_logs as u64,
            };
            let (journal, restored) = Journal::open(path, caps)?;
            (Some(journal), restored.batches)
        }
        None => (None, Vec::new()),
    };
    let viewer = Arc::new(Viewer {
        store: Mutex::new(Store::new(options.max_spans)),
        logs: Mutex::new(LogStore::new(options.max_logs)),
        metrics: Mutex::new(MetricStore::new(options.max_points_per_series)),
        journal,
        max_body_bytes: options.max_body_bytes,
        token: options.token.clone(),
    });
    let unreadable = viewer.restore(restored);
    print_instructions(&options, &grpc_listener, &otlp_listener, &ui_listener);
    if let Some(path) = &options.db {
        println!(
            "Restored from {}: {} spans, {} log records, {} metric series{}",
            path.display(),
            viewer.store().span_count(),
            viewer.logs().len(),
            viewer.metrics().series_count(),
            if unreadable > 0 {
                format!(" ({unreadable} unreadable requests skipped)")
            } else {
                String::new()
            }
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let grpc = serve_grpc(grpc_listener, viewer.clone());
        let otlp = serve(otlp_listener, otlp_routes(viewer.clone()));
        let ui = serve(ui_listener, api_routes(viewer));
        tokio::select! {
            result = grpc => result,
            result = otlp => result,
            result = ui => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

async fn serve(listener: TcpListener, routes: Router) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    axum::serve(listener, routes).await.map_err(|e| e.to_string())
}

fn print_instructions(options: &Options, grpc: &TcpListener, otlp: &TcpListener, ui: &TcpListener) {
    let address = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let grpc = address(grpc);
    let otlp = address(otlp);
    let ui = address(ui);
    let place = match &options.db {
        Some(path) => format!("in memory and in {}", path.display()),
        None => "in memory".to_owned(),
    };
    println!(
        "ferrotel view: keeping up to {} spans, {} log records and {} points per metric {place}",
        options.max_spans, options.max_logs, options.max_points_per_series
    );
    let token_query = if options.token.is_some() { "?token=<token>" } else { "" };
    println!("  web UI:     http://{ui}/{token_query}");
    println!("  query API:  http://{ui}/api/traces?service=NAME");
    println!("  OTLP/HTTP:  http://{otlp}/v1/traces, /v1/metrics, /v1/logs (protobuf or JSON, gzip accepted)");
    println!("  OTLP/gRPC:  http://{grpc}");
    println!("Point an app at it:");
    println!("  OTEL_EXPORTER_OTLP_ENDPOINT=http://{otlp} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf ferrotel instrument -- python app.py");
    println!("  or: ferrotel instrument --exporter_otlp_endpoint http://{otlp} --exporter_otlp_protocol http/protobuf -- python app.py");
    if options.token.is_some() {
        println!("  and send the token: OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

fn otlp_routes(viewer: Arc<Viewer>) -> Router {
    Router::new()
        .route("/v1/traces", post(receive::<ExportTraceServiceRequest>))
        .route("/v1/logs", post(receive::<ExportLogsServiceRequest>))
        .route("/v1/metrics", post(receive::<ExportMetricsServiceRequest>))
        // Bodies above the cap get 413 before they are read whole; gzip is bounded separately.
        .layer(DefaultBodyLimit::max(viewer.max_body_bytes))
        .layer(middleware::from_fn_with_state(viewer.clone(), require_token))
        .with_state(viewer)
}

fn api_routes(viewer: Arc<Viewer>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| ui_asset("text/html; charset=utf-8", include_str!("../ui/index.html"))),
        )
        .route(
            "/ui/app.js",
            get(|| ui_asset("text/javascript; charset=utf-8", include_str!("../ui/app.js"))),
        )
        .route(
            "/ui/app.css",
            get(|| ui_asset("text/css; charset=utf-8", include_str!("../ui/app.css"))),
        )
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
        .layer(middleware::from_fn_with_state(viewer.clone(), require_token_or_cookie))
        .with_state(viewer)
}

async fn serve_grpc(listener: TcpListener, viewer: Arc<Viewer>) -> Result<(), String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    // Batches are tens of kilobytes: without these, HTTP/2's 64 KiB default windows and Nagle
    // cost a round trip or two per export.
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .add_service(grpc::Intake::<ExportTraceServiceRequest>::new(viewer.clone()))
        .add_service(grpc::Intake::<ExportMetricsServiceRequest>::new(viewer.clone()))
        .add_service(grpc::Intake::<ExportLogsServiceRequest>::new(viewer))
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| e.to_string())
}

async fn require_token(State(viewer): State<Arc<Viewer>>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !viewer.authorized(authorization) {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    }
    next.run(request).await
}

const TOKEN_COOKIE: &str = "ferrotel_view_token";

/// A browser cannot send a bearer header when it follows a link, so the UI also takes the token
/// once as `?token=` (as printed at start) and keeps it in a same-site, script-proof cookie.
async fn require_token_or_cookie(State(viewer): State<Arc<Viewer>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(TOKEN_COOKIE)?.strip_prefix('='));
    let from_query = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("token="));
    if viewer.authorized(bearer) || viewer.is_token(cookie) {
        return next.run(request).await;
    }
    if viewer.is_token(from_query) {
        let set_cookie = format!(
            "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            from_query.unwrap_or_default()
        );
        let mut response = next.run(request).await;
        if let Ok(value) = header::HeaderValue::from_str(&set_cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response()
}

/// The web UI's files, compiled in: no CDN, nothing to install, and they match the API served.
fn ui_asset(content_type: &'static str, body: &'static str) -> std::future::Ready<Response> {
    std::future::ready(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
                // Telemetry carries user data; the page must not load or send it elsewhere.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                ),
            ],
            body,
        )
            .into_response(),
    )
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

/// One OTLP signal's export request, as HTTP and gRPC intake handle it.
trait Signal: Message + DeserializeOwned + Default + Send + 'static {
    const NAME: &'static str;
    const KIND: Kind;
    /// The collector service's full gRPC name.
    const GRPC_SERVICE: &'static str;
    type Reply: Message + Serialize + Send + 'static;
    fn ingest(self, viewer: &Viewer) -> Self::Reply;
    /// Spans, data points or log records carried, what the `--db` cap counts.
    fn items(&self) -> u64;
}

impl Signal for ExportTraceServiceRequest {
    const NAME: &'static str = "trace";
    const KIND: Kind = Kind::Traces;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    type Reply = ExportTraceServiceResponse;
    fn ingest(self, viewer: &Viewer) -> Self::Reply {
        viewer.ingest_traces(self)
    }
    fn items(&self) -> u64 {
        let scopes = self.resource_spans.iter().flat_map(|r| &r.scope_spans);
        scopes.map(|s| s.spans.len() as u64).sum()
    }
}

impl Signal for ExportLogsServiceRequest {
    const NAME: &'static str = "logs";
    const KIND: Kind = Kind::Logs;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    type Reply = ExportLogsServiceResponse;
    fn ingest(self, viewer: &Viewer) -> Self::Reply {
        viewer.ingest_logs(self)
    }
    fn items(&self) -> u64 {
        let scopes = self.resource_logs.iter().flat_map(|r| &r.scope_logs);
        scopes.map(|s| s.log_records.len() as u64).sum()
    }
}

impl Signal for ExportMetricsServiceRequest {
    const NAME: &'static str = "metrics";
    const KIND: Kind = Kind::Metrics;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    type Reply = ExportMetricsServiceResponse;
    fn ingest(self, viewer: &Viewer) -> Self::Reply {
        viewer.ingest_metrics(self)
    }
    fn items(&self) -> u64 {
        let metrics = self
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics);
        metrics.map(metrics::point_count).sum()
    }
}

async fn receive<S: Signal>(State(viewer): State<Arc<Viewer>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let encoding = match content_type.split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            let message =
                format!("unsupported content type {other:?}; send application/x-protobuf or application/json\n");
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response();
        }
    };
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let body = if gzipped {
        match gunzip_bounded(&body, viewer.max_body_bytes) {
            Ok(plain) => Bytes::from(plain),
            Err(message) => return bad_request(encoding, &message),
        }
    } else {
        body
    };
    let request = match encoding {
        Encoding::Protobuf => S::decode(body).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice::<S>(&body).map_err(|e| e.to_string()),
    };
    let request = match request {
        Ok(request) => request,
        Err(error) => return bad_request(encoding, &format!("malformed OTLP {} request: {error}", S::NAME)),
    };
    let response = match viewer.accept(request).await {
        Ok(response) => response,
        // OTLP/HTTP clients retry a 503.
        Err(message) => return rpc_error(StatusCode::SERVICE_UNAVAILABLE, RPC_UNAVAILABLE, encoding, &message),
    };
    match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => {
            // OTLP/JSON leaves unset fields out; the generated types would write `null`.
            let mut reply = serde_json::to_value(&response).unwrap_or_default();
            if let Some(fields) = reply.as_object_mut() {
                fields.retain(|_, value| !value.is_null());
            }
            json_response(StatusCode::OK, reply.to_string().into_bytes())
        }
    }
}

const RPC_INVALID_ARGUMENT: i32 = 3;
const RPC_UNAVAILABLE: i32 = 14;

fn bad_request(encoding: Encoding, message: &str) -> Response {
    rpc_error(StatusCode::BAD_REQUEST, RPC_INVALID_ARGUMENT, encoding, message)
}

/// OTLP/HTTP says an error reply carries a google.rpc.Status in the request's encoding.
fn rpc_error(status: StatusCode, code: i32, encoding: Encoding, message: &str) -> Response {
    match encoding {
        Encoding::Protobuf => {
            let body = RpcStatus {
                code,
                message: message.to_owned(),
            }
            .encode_to_vec();
            (status, [(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
        }
        Encoding::Json => json_response(
            status,
            serde_json::json!({"code": code, "message": message})
                .to_string()
                .into_bytes(),
        ),
    }
}

/// google.rpc.Status, enough of it for an error reply (details are optional and omitted).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn gunzip_bounded(body: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| format!("body is not valid gzip: {e}"))?;
    if plain.len() > limit {
        return Err(format!("decompressed body exceeds the {limit}-byte limit"));
    }
    Ok(plain)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_ok(value: serde_json::Value) -> Response {
    json_response(StatusCode::OK, value.to_string().into_bytes())
}

fn api_error(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({"data": null, "errors": [{"code": status.as_u16(), "msg": message}]});
    json_response(status, body.to_string().into_bytes())
}

/// What the store holds and what it let go, so a full or abused viewer is visible.
async fn status(State(viewer): State<Arc<Viewer>>) -> Response {
    let store = viewer.store();
    json_ok(serde_json::json!({
        "spans": store.span_count(),
        "evictedSpans": store.evicted_spans,
        "rejectedSpans": store.rejected_spans,
        "logRecords": viewer.logs().len(),
        "evictedLogRecords": viewer.logs().evicted_records,
        "metricSeries": viewer.metrics().series_count(),
        "refusedMetricSeries": viewer.metrics().refused_series,
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
        json_response(
            StatusCode::OK,
            serde_json::to_vec(&store::as_export_request(spans)).unwrap_or_default(),
        )
    })
}
