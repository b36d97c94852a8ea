//! Who may talk to the viewer. Every HTTP request must name the viewer by an address it
//! listens on (or a name allowed with `--allow-host`) in its `Host` and `Origin` headers, so a
//! web page whose own name resolves to this machine (DNS rebinding) cannot read or send
//! telemetry. With `--token`, OTLP intake also needs `Authorization: Bearer`, and the UI and
//! query API take the bearer header, the token once as `?token=`, or the cookie that the
//! `?token=` visit leaves behind.

use std::net::IpAddr;
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
    listen: IpAddr,
    /// `--allow-host` names, lower case: what a reverse proxy or another name sends as Host.
    allowed_hosts: Vec<String>,
}

impl Access {
    /// Refuses a token that would let anyone in (empty) or that cannot travel intact in a
    /// header, a cookie and a `?token=` query.
    pub(crate) fn new(token: Option<String>, listen: IpAddr, allowed_hosts: &[String]) -> Result<Self, String> {
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
        let allowed_hosts = allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
        Ok(Access {
            token,
            listen,
            allowed_hosts,
        })
    }

    /// Whether a `Host` or `Origin` host (no port) names this viewer: an address it listens on
    /// (any address when it listens on all of them: a rebinding page always uses a name),
    /// `localhost` when it listens on loopback, or an `--allow-host` name.
    fn names_this_viewer(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return self.listen.is_unspecified() || ip == self.listen;
        }
        let is_localhost = host == "localhost" || host.ends_with(".localhost");
        (is_localhost && (self.listen.is_loopback() || self.listen.is_unspecified()))
            || self.allowed_hosts.contains(&host)
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

/// The host of a `Host` value (`name:port`, `[v6]:port`) or of an `Origin` (`scheme://host:port`).
fn host_of(value: &str) -> &str {
    let authority = value.split_once("://").map_or(value, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or(authority);
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Both HTTP ports: refuses a request whose `Host` or `Origin` names something other than this
/// viewer. Requests without them (HTTP/1.0 tools) pass; browsers always send Host.
pub(crate) async fn require_own_host(State(viewer): State<Arc<Viewer>>, request: Request, next: Next) -> Response {
    let access = &viewer.access;
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("?"))
        .or(request.uri().host());
    let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("?"));
    let refused = [("Host", host), ("Origin", origin)]
        .into_iter()
        .find_map(|(name, value)| {
            let value = value?;
            (!access.names_this_viewer(host_of(value))).then_some((name, value))
        });
    let Some((name, value)) = refused else {
        return next.run(request).await;
    };
    let message = format!(
        "ferrotel view: {name} {value:?} does not name this viewer (it answers only to the \
         addresses it listens on, so other web pages cannot read it); to reach it through a \
         proxy or another name, start it with --allow-host {}\n",
        host_of(value)
    );
    (StatusCode::FORBIDDEN, message).into_response()
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
