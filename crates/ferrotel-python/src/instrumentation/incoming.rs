//! One incoming HTTP request as a server interface gives it: a WSGI environ or an ASGI
//! `http` scope, read into the same facts.

use ferrotel_sdk::value::Value;
use ferrotel_semconv as semconv;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::headers::{header_pairs, RequestHeaders};

pub(crate) struct Incoming<'a, 'py> {
    pub(crate) method: String,
    pub(crate) scheme: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) server_address: String,
    pub(crate) server_port: Option<u16>,
    pub(crate) client_address: String,
    pub(crate) client_port: Option<u16>,
    pub(crate) user_agent: String,
    /// `1.1`, `2`: the version without `HTTP/`.
    pub(crate) protocol_version: String,
    /// `Content-Length`, when the request declares one.
    pub(crate) content_length: Option<i64>,
    /// An ASGI websocket connection (its handshake a GET).
    pub(crate) websocket: bool,
    pub(crate) headers: RequestHeaders<'a, 'py>,
    /// The host as the request names it (`Host`, port included) and the server's own name
    /// and port, for the old conventions' metrics (`http.host`, `http.server_name`,
    /// `net.host.port`).
    pub(crate) host_header: String,
    pub(crate) server_name: String,
    pub(crate) listening_port: Option<u16>,
}

/// A mapping's value as text (servers put some numbers in as ints, e.g. REMOTE_PORT). The
/// key is an interned Python string: no string is made per lookup.
fn text(map: &Bound<'_, PyDict>, key: &Bound<'_, PyString>) -> String {
    let Some(value) = map.get_item(key).ok().flatten().filter(|v| !v.is_none()) else {
        return String::new();
    };
    value
        .extract::<String>()
        .or_else(|_| value.str().map(|s| s.to_string()))
        .unwrap_or_default()
}

impl<'a, 'py> Incoming<'a, 'py> {
    pub(crate) fn from_environ(environ: &'a Bound<'py, PyDict>) -> Incoming<'a, 'py> {
        let py = environ.py();
        let host_header = text(environ, intern!(py, "HTTP_HOST"));
        let server_name = text(environ, intern!(py, "SERVER_NAME"));
        let listening_port: Option<u16> = text(environ, intern!(py, "SERVER_PORT")).parse().ok();
        let (server_address, server_port) = if host_header.is_empty() {
            (server_name.clone(), listening_port)
        } else {
            let (host, port) = semconv::host_and_port(&host_header);
            (host.to_string(), port.or(listening_port))
        };
        let protocol = text(environ, intern!(py, "SERVER_PROTOCOL"));
        Incoming {
            method: text(environ, intern!(py, "REQUEST_METHOD")),
            scheme: text(environ, intern!(py, "wsgi.url_scheme")),
            path: text(environ, intern!(py, "SCRIPT_NAME")) + &text(environ, intern!(py, "PATH_INFO")),
            query: text(environ, intern!(py, "QUERY_STRING")),
            server_address,
            server_port,
            client_address: text(environ, intern!(py, "REMOTE_ADDR")),
            client_port: text(environ, intern!(py, "REMOTE_PORT")).parse().ok(),
            user_agent: text(environ, intern!(py, "HTTP_USER_AGENT")),
            protocol_version: protocol.strip_prefix("HTTP/").unwrap_or("").to_owned(),
            content_length: text(environ, intern!(py, "CONTENT_LENGTH")).trim().parse().ok(),
            websocket: false,
            headers: RequestHeaders::Environ(environ),
            server_name,
            listening_port,
            host_header,
        }
    }

    /// An ASGI `http` or `websocket` scope: headers as byte pairs, `server` and `client` as
    /// `(host, port)` (granian gives the port as text). A websocket scope has no method: its
    /// handshake is a GET.
    pub(crate) fn from_asgi_scope(scope: &Bound<'py, PyDict>) -> PyResult<Incoming<'a, 'py>> {
        let py = scope.py();
        let headers = header_pairs(scope.get_item("headers")?.as_ref());
        let address = |key: &str| -> (String, Option<u16>) {
            let Some((host, port)) = scope
                .get_item(key)
                .ok()
                .flatten()
                .and_then(|a| a.extract::<(String, Bound<'py, PyAny>)>().ok())
            else {
                return Default::default();
            };
            let port = port
                .extract::<u16>()
                .ok()
                .or_else(|| port.extract::<String>().ok()?.parse().ok());
            (host, port)
        };
        let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let (listening_host, listening_port) = address("server");
        let (server_address, server_port) = match header("host") {
            Some(host) => {
                let (name, port) = semconv::host_and_port(&host);
                (name.to_string(), port.or(listening_port))
            }
            None => (listening_host.clone(), listening_port),
        };
        let (client_address, client_port) = address("client");
        let host_header = header("host").unwrap_or_default();
        let query = scope
            .get_item("query_string")?
            .and_then(|q| q.extract::<Vec<u8>>().ok())
            .map(|q| String::from_utf8_lossy(&q).into_owned())
            .unwrap_or_default();
        let websocket = text(scope, intern!(py, "type")) == "websocket";
        let method = match text(scope, intern!(py, "method")) {
            m if m.is_empty() && websocket => "GET".to_owned(),
            m => m,
        };
        Ok(Incoming {
            content_length: header("content-length").and_then(|v| v.trim().parse().ok()),
            websocket,
            method,
            scheme: text(scope, intern!(py, "scheme")),
            path: text(scope, intern!(py, "root_path")) + &text(scope, intern!(py, "path")),
            query,
            server_address,
            server_port,
            client_address,
            client_port,
            user_agent: header("user-agent").unwrap_or_default(),
            protocol_version: text(scope, intern!(py, "http_version")),
            headers: RequestHeaders::List(headers),
            host_header,
            server_name: listening_host,
            listening_port,
        })
    }

    /// The request's attributes under the old HTTP conventions' names, for their metrics.
    pub(crate) fn old_metric_attributes(&self) -> Vec<(String, Value)> {
        let mut out = vec![(
            "http.method".to_string(),
            Value::Str(semconv::method(&self.method).0.into()),
        )];
        let mut text = |key: &str, value: &str| {
            if !value.is_empty() {
                out.push((key.to_string(), Value::Str(value.to_string())));
            }
        };
        text("http.server_name", &self.server_name);
        text("http.scheme", &self.scheme);
        text("net.host.name", &self.host_header);
        text("http.host", &self.host_header);
        text("http.flavor", &self.protocol_version);
        if let Some(port) = self.listening_port {
            out.push(("net.host.port".into(), Value::Int(port.into())));
        }
        out
    }

    /// The request facts the semantic conventions name and attribute spans by.
    pub(crate) fn facts(&self) -> semconv::ServerRequest<'_> {
        semconv::ServerRequest {
            method: &self.method,
            scheme: &self.scheme,
            path: &self.path,
            query: &self.query,
            server_address: &self.server_address,
            server_port: self.server_port,
            client_address: &self.client_address,
            client_port: self.client_port,
            user_agent: &self.user_agent,
            protocol_version: &self.protocol_version,
        }
    }
}
