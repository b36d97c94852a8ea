//! JSON replies, shared by OTLP/HTTP intake and the query API.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
