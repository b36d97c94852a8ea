//! Who may talk to the viewer: with `--token`, OTLP intake needs `Authorization: Bearer`, and
//! the UI and query API take the bearer header, the token once as `?token=`, or the cookie
//! that the `?token=` visit leaves behind.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::viewer::Viewer;

const TOKEN_COOKIE: &str = "ferrotel_view_token";

/// The access rules the listeners share.
pub(crate) struct Access {
    token: Option<String>,
}

impl Access {
    /// Refuses a token that would let anyone in (empty) or that cannot travel intact in a
    /// header, a cookie and a `?token=` query.
    pub(crate) fn new(token: Option<String>) -> Result<Self, String> {
        if let Some(token) = &token {
            if token.is_empty() {
                return Err("--token is empty, which would let anyone in; choose a secret".to_owned());
            }
            if let Some(bad) = token.chars().find(|c| !token_char(*c)) {
                return Err(format!(
                    "--token contains {bad:?}; use letters, digits and punctuation other than \" , ; \\ & # % \
                     (the token travels in a header, a cookie and a URL)"
                ));
            }
        }
        Ok(Access { token })
    }

    /// Whether an `Authorization` header value lets a request in.
    pub(crate) fn authorized(&self, authorization: Option<&str>) -> bool {
        match &self.token {
            Some(_) => self.is_token(authorization.and_then(|v| v.strip_prefix("Bearer "))),
            None => true,
        }
    }

    fn is_token(&self, candidate: Option<&str>) -> bool {
        match (self.token.as_deref(), candidate) {
            (Some(token), Some(candidate)) => same_secret(token.as_bytes(), candidate.as_bytes()),
            _ => false,
        }
    }
}

fn token_char(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | ',' | ';' | '\\' | '&' | '#' | '%')
}

/// Compares every byte whatever the first difference, so response times do not reveal how
/// much of a guess was right.
fn same_secret(expected: &[u8], candidate: &[u8]) -> bool {
    expected.len() == candidate.len() && expected.iter().zip(candidate).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response()
}

/// OTLP/HTTP intake: exporters send the token as a bearer header.
pub(crate) async fn require_token(State(viewer): State<Arc<Viewer>>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !viewer.access.authorized(authorization) {
        return unauthorized();
    }
    next.run(request).await
}

/// A browser cannot send a bearer header when it follows a link, so the UI also takes the token
/// once as `?token=` (as printed at start) and keeps it in a same-site, script-proof cookie.
pub(crate) async fn require_token_or_cookie(
    State(viewer): State<Arc<Viewer>>,
    request: Request,
    next: Next,
) -> Response {
    let access = &viewer.access;
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
    if access.authorized(bearer) || access.is_token(cookie) {
        return next.run(request).await;
    }
    if access.is_token(from_query) {
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
    unauthorized()
}
