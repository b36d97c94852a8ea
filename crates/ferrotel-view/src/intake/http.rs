//! OTLP/HTTP intake: `POST /v1/{traces,metrics,logs}`, protobuf or JSON, optionally gzip or deflate,
//! bodies bounded before and after decompression; errors answered as google.rpc.Status.

use std::io::Read;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::Signal;
use crate::auth;
use crate::reply;
use crate::viewer::Viewer;

pub(crate) fn routes(viewer: Arc<Viewer>) -> Router {
    Router::new()
        .route("/v1/traces", post(receive::<ExportTraceServiceRequest>))
        .route("/v1/logs", post(receive::<ExportLogsServiceRequest>))
        .route("/v1/metrics", post(receive::<ExportMetricsServiceRequest>))
        // Bodies above the cap get 413 before they are read whole; gzip is bounded separately.
        .layer(DefaultBodyLimit::max(viewer.max_body_bytes))
        .layer(middleware::from_fn_with_state(viewer.clone(), auth::require_token))
        .layer(middleware::from_fn_with_state(viewer.clone(), auth::require_own_host))
        .with_state(viewer)
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
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
    let coding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let inflated = match coding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" => inflate_bounded(flate2::read::GzDecoder::new(&body[..]), "gzip", viewer.max_body_bytes),
        // HTTP's `deflate` is the zlib format, as OTLP exporters send it.
        "deflate" => inflate_bounded(
            flate2::read::ZlibDecoder::new(&body[..]),
            "deflate",
            viewer.max_body_bytes,
        ),
        other => {
            let message = format!("unsupported content encoding {other:?}; send gzip, deflate or none");
            return rpc_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RPC_INVALID_ARGUMENT,
                encoding,
                &message,
            );
        }
    };
    let body = match inflated {
        Ok(body) => body,
        Err(message) => return bad_request(encoding, &message),
    };
    let request = match encoding {
        Encoding::Protobuf => S::decode(body).map_err(|e| e.to_string()),
        Encoding::Json => S::from_json(&body).map_err(|e| e.to_string()),
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
            reply::json(StatusCode::OK, reply.to_string().into_bytes())
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
        Encoding::Json => reply::json(
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

fn inflate_bounded(decoder: impl Read, coding: &str, limit: usize) -> Result<Bytes, String> {
    let mut plain = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| format!("body is not valid {coding}: {e}"))?;
    if plain.len() > limit {
        return Err(format!("decompressed body exceeds the {limit}-byte limit"));
    }
    Ok(Bytes::from(plain))
}
