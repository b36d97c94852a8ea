//! Spans for ferrotel's built-in instrumentations: HTTP servers (WSGI), HTTP clients and
//! database calls, and the HTTP server's metrics. The per-call work (reading the request,
//! extracting or injecting context with the configured propagators, the span, its
//! attributes, name and status, the duration and active-request measurements) is done here;
//! the Python glue only calls in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use ferrotel_config::{Config, SemconvMode};
use ferrotel_propagation::{Carrier, Composite, RemoteContext};
use ferrotel_sdk::metrics::{Instrument, Number, SpanOfMeasurement};
use ferrotel_sdk::span::{SpanKind, StatusCode};
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use ferrotel_semconv as semconv;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::metrics::{Histogram, UpDownCounter};
use crate::trace::api;
use crate::trace::span::{Span, TraceState};
use crate::trace::tracer::{create, parent_of, NewSpan, Tracer};

struct Settings {
    propagator: Composite,
    semconv: SemconvMode,
    db_semconv: SemconvMode,
    capture: ferrotel_config::CaptureHeaders,
}

/// Read once per process: the environment does not change under a running server.
fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let config = Config::from_env().config;
        Settings {
            propagator: Composite::new(crate::propagation::configured_formats(&config)),
            semconv: config.python.http_semconv,
            db_semconv: config.python.database_semconv,
            capture: config.python.capture_headers.clone(),
        }
    })
}

/// An environ value as text (servers put some numbers in as ints, e.g. REMOTE_PORT).
fn text(environ: &Bound<'_, PyDict>, key: &str) -> String {
    let Some(value) = environ.get_item(key).ok().flatten().filter(|v| !v.is_none()) else {
        return String::new();
    };
    value
        .extract::<String>()
        .or_else(|_| value.str().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// One request being served: its SERVER span, current until `end()`.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct ServerRequest {
    span: Py<Span>,
    token: Mutex<Option<Py<PyAny>>>,
    method: String,
    metrics: Option<ServerMetrics>,
    /// Kept apart from the span: metrics count every request, sampled or not.
    facts: Mutex<MetricFacts>,
    ended: AtomicBool,
}

/// `http.server.request.duration` and `http.server.active_requests`, ferrotel's own
/// instruments (from the glue; absent when another SDK provides the meters).
struct ServerMetrics {
    duration: Arc<Instrument>,
    active: Option<Arc<Instrument>>,
}

/// What the stable HTTP server metrics are attributed by.
struct MetricFacts {
    method: &'static str,
    scheme: String,
    protocol_version: String,
    status: Option<u16>,
    route: Option<String>,
    error_type: Option<String>,
    started: Instant,
}

impl MetricFacts {
    fn active_attributes(&self) -> Vec<(String, Value)> {
        vec![
            ("http.request.method".into(), Value::Str(self.method.into())),
            ("url.scheme".into(), Value::Str(self.scheme.clone())),
        ]
    }

    fn duration_attributes(&self) -> Vec<(String, Value)> {
        let mut attributes = self.active_attributes();
        if !self.protocol_version.is_empty() {
            attributes.push((
                "network.protocol.version".into(),
                Value::Str(self.protocol_version.clone()),
            ));
        }
        if let Some(status) = self.status {
            attributes.push(("http.response.status_code".into(), Value::Int(status.into())));
        }
        if let Some(route) = &self.route {
            attributes.push(("http.route".into(), Value::Str(route.clone())));
        }
        // A server error without an exception is typed by its status code, as the
        // conventions say.
        let error_type = self
            .error_type
            .clone()
            .or_else(|| self.status.filter(|s| *s >= 500).map(|s| s.to_string()));
        if let Some(error_type) = error_type {
            attributes.push(("error.type".into(), Value::Str(error_type)));
        }
        attributes
    }
}

impl ServerMetrics {
    fn from_python(duration: Option<&Bound<'_, PyAny>>, active: Option<&Bound<'_, PyAny>>) -> Option<ServerMetrics> {
        let duration = duration?.cast::<Histogram>().ok()?.get().instrument.clone()?;
        let active = active
            .and_then(|a| a.cast::<UpDownCounter>().ok())
            .and_then(|a| a.get().instrument.clone());
        Some(ServerMetrics { duration, active })
    }
}

/// Records an exception once (event, status ERROR, `error.type` its type).
fn record_error(py: Python<'_>, span: &Span, exception: &Bound<'_, PyAny>) -> PyResult<()> {
    if !exception.is_instance_of::<PyException>() {
        return Ok(());
    }
    let already = lock(&span.record)
        .as_ref()
        .is_some_and(|d| d.events.iter().any(|e| e.name == "exception"));
    if already {
        return Ok(());
    }
    span.record_exception_event(py, exception, None, None, true)?;
    span.set_error_status(exception)?;
    let error_type = error_type_of(exception)?;
    span.with_record(|data, limits| data.set_attribute("error.type".into(), Value::Str(error_type), limits));
    Ok(())
}

/// A request's span, for the duration's exemplar.
fn measured_in(span: &Span) -> SpanOfMeasurement {
    Some((span.trace_id, span.span_id, span.trace_flags & 1 == 1))
}

/// The exception's type as `error.type` gives it: module-qualified unless builtin.
fn error_type_of(exception: &Bound<'_, PyAny>) -> PyResult<String> {
    let kind = exception.get_type();
    let module: String = kind.getattr("__module__").and_then(|m| m.extract()).unwrap_or_default();
    let qualname: String = kind.getattr("__qualname__")?.extract()?;
    Ok(if module.is_empty() || module == "builtins" {
        qualname
    } else {
        format!("{module}.{qualname}")
    })
}

/// Restores the context from before the span (once) and ends the span.
fn finish(py: Python<'_>, span: &Py<Span>, token: &Mutex<Option<Py<PyAny>>>) -> PyResult<()> {
    if let Some(token) = lock(token).take() {
        api::get(py)?.detach(py, token.bind(py));
    }
    span.get().finish(None);
    Ok(())
}

/// Sets response attributes; an exception recorded first keeps its error.type and
/// status description.
fn apply_response(span: &Span, attrs: semconv::Attributes, status: StatusCode) {
    span.with_record(|data, limits| {
        for (k, v) in owned(attrs) {
            if k == "error.type" && data.attributes.get("error.type").is_some() {
                continue;
            }
            data.set_attribute(k, v, limits);
        }
        if data.status.code != StatusCode::Error {
            data.set_status(status, None);
        }
    });
}

/// `(lower-case name, value)` pairs from a header list (`[(name, value)]`) or map (`.items()`).
fn header_pairs(headers: Option<&Bound<'_, PyAny>>) -> Vec<(String, String)> {
    let Some(headers) = headers.filter(|h| !h.is_none()) else {
        return Vec::new();
    };
    let items = if headers.cast::<pyo3::types::PyList>().is_ok() || headers.cast::<pyo3::types::PyTuple>().is_ok() {
        Ok(headers.clone())
    } else {
        headers.call_method0("items")
    };
    let Ok(items) = items.and_then(|i| i.try_iter()) else {
        return Vec::new();
    };
    items
        .flatten()
        .filter_map(|pair| {
            pair.extract::<(String, String)>().ok().or_else(|| {
                // ASGI sends headers as byte pairs; HTTP header bytes are Latin-1.
                let (k, v) = pair.extract::<(Vec<u8>, Vec<u8>)>().ok()?;
                let latin1 = |b: Vec<u8>| b.into_iter().map(char::from).collect::<String>();
                Some((latin1(k), latin1(v)))
            })
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// Adds the captured headers `capture` names to the span (nothing to do when none are).
fn capture(span: &Span, direction: &str, headers: &[(String, String)], capture: &[String]) {
    if capture.is_empty() || headers.is_empty() {
        return;
    }
    let attrs = semconv::captured_headers(direction, headers, capture, &settings().capture.sanitize_fields);
    span.with_record(|data, limits| {
        for (k, v) in attrs {
            data.set_attribute(k, v, limits);
        }
    });
}

fn owned(attrs: semconv::Attributes) -> Vec<(String, Value)> {
    attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// One incoming request as a server interface gives it (WSGI environ, ASGI scope).
struct Incoming<'a, 'py> {
    method: String,
    scheme: String,
    path: String,
    query: String,
    server_address: String,
    server_port: Option<u16>,
    client_address: String,
    client_port: Option<u16>,
    user_agent: String,
    /// `1.1`, `2`: the version without `HTTP/`.
    protocol_version: String,
    headers: RequestHeaders<'a, 'py>,
}

/// The request's headers: looked up in the environ as the propagators ask (listing them all
/// costs a WSGI request more than it reads), or the ASGI scope's list.
enum RequestHeaders<'a, 'py> {
    Environ(&'a Bound<'py, PyDict>),
    /// Lower-case names, as sent.
    List(Vec<(String, String)>),
}

impl RequestHeaders<'_, '_> {
    /// Every header as `(lower-case name, value)`, for capture.
    fn pairs(&self) -> Vec<(String, String)> {
        match self {
            RequestHeaders::List(pairs) => pairs.clone(),
            RequestHeaders::Environ(environ) => environ
                .iter()
                .filter_map(|(k, v)| {
                    let key: String = k.extract().ok()?;
                    let name = match key.as_str() {
                        "CONTENT_TYPE" | "CONTENT_LENGTH" => key.clone(),
                        _ => key.strip_prefix("HTTP_")?.to_string(),
                    };
                    Some((name.to_ascii_lowercase().replace('_', "-"), v.str().ok()?.to_string()))
                })
                .collect(),
        }
    }
}

impl Carrier for RequestHeaders<'_, '_> {
    fn get(&self, key: &str) -> Vec<String> {
        match self {
            RequestHeaders::Environ(environ) => {
                let name = format!("HTTP_{}", key.to_ascii_uppercase().replace('-', "_"));
                environ
                    .get_item(name)
                    .ok()
                    .flatten()
                    .and_then(|v| v.extract::<String>().ok())
                    .into_iter()
                    .collect()
            }
            RequestHeaders::List(pairs) => {
                let key = key.to_ascii_lowercase();
                pairs
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
                    .collect()
            }
        }
    }

    fn keys(&self) -> Vec<String> {
        match self {
            RequestHeaders::Environ(environ) => environ
                .keys()
                .iter()
                .filter_map(|k| k.extract::<String>().ok())
                .filter_map(|k| {
                    k.strip_prefix("HTTP_")
                        .map(|h| h.to_ascii_lowercase().replace('_', "-"))
                })
                .collect(),
            RequestHeaders::List(pairs) => pairs.iter().map(|(k, _)| k.clone()).collect(),
        }
    }

    fn set(&mut self, _key: &str, _value: String) {}
}

/// Starts the server span of a WSGI request under the context its headers carry (or the
/// current one) and makes it current; `None` when `tracer` is not ferrotel's.
#[pyfunction]
#[pyo3(signature = (tracer, environ, duration=None, active_requests=None))]
pub fn start_wsgi_request(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    environ: &Bound<'_, PyDict>,
    duration: Option<&Bound<'_, PyAny>>,
    active_requests: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<ServerRequest>> {
    let host_header = text(environ, "HTTP_HOST");
    let (server_address, server_port) = if host_header.is_empty() {
        (text(environ, "SERVER_NAME"), text(environ, "SERVER_PORT").parse().ok())
    } else {
        let (host, port) = semconv::host_and_port(&host_header);
        (
            host.to_string(),
            port.or_else(|| text(environ, "SERVER_PORT").parse().ok()),
        )
    };
    let protocol = text(environ, "SERVER_PROTOCOL");
    let incoming = Incoming {
        method: text(environ, "REQUEST_METHOD"),
        scheme: text(environ, "wsgi.url_scheme"),
        path: format!("{}{}", text(environ, "SCRIPT_NAME"), text(environ, "PATH_INFO")),
        query: text(environ, "QUERY_STRING"),
        server_address,
        server_port,
        client_address: text(environ, "REMOTE_ADDR"),
        client_port: text(environ, "REMOTE_PORT").parse().ok(),
        user_agent: text(environ, "HTTP_USER_AGENT"),
        protocol_version: protocol.strip_prefix("HTTP/").unwrap_or("").to_owned(),
        headers: RequestHeaders::Environ(environ),
    };
    start_server_request(py, tracer, incoming, duration, active_requests)
}

/// The same for an ASGI `http` connection scope (headers as byte pairs, `server` and
/// `client` as `(host, port)`).
#[pyfunction]
#[pyo3(signature = (tracer, scope, duration=None, active_requests=None))]
pub fn start_asgi_request(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    scope: &Bound<'_, PyDict>,
    duration: Option<&Bound<'_, PyAny>>,
    active_requests: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<ServerRequest>> {
    let headers = header_pairs(scope.get_item("headers")?.as_ref());
    let address = |key: &str| -> (String, Option<u16>) {
        scope
            .get_item(key)
            .ok()
            .flatten()
            .and_then(|a| a.extract::<(String, Option<u16>)>().ok())
            .map_or((String::new(), None), |(host, port)| (host, port))
    };
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (server_address, server_port) = match header("host") {
        Some(host) => {
            let (name, port) = semconv::host_and_port(&host);
            (name.to_string(), port.or(address("server").1))
        }
        None => address("server"),
    };
    let (client_address, client_port) = address("client");
    let query = scope
        .get_item("query_string")?
        .and_then(|q| q.extract::<Vec<u8>>().ok())
        .map(|q| String::from_utf8_lossy(&q).into_owned())
        .unwrap_or_default();
    let incoming = Incoming {
        method: text(scope, "method"),
        scheme: text(scope, "scheme"),
        path: format!("{}{}", text(scope, "root_path"), text(scope, "path")),
        query,
        server_address,
        server_port,
        client_address,
        client_port,
        user_agent: header("user-agent").unwrap_or_default(),
        protocol_version: text(scope, "http_version"),
        headers: RequestHeaders::List(headers),
    };
    start_server_request(py, tracer, incoming, duration, active_requests)
}

fn start_server_request(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    incoming: Incoming<'_, '_>,
    duration: Option<&Bound<'_, PyAny>>,
    active_requests: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<ServerRequest>> {
    let Ok(tracer) = tracer.cast::<Tracer>() else {
        return Ok(None);
    };
    let tracer = tracer.get();
    let api = api::get(py)?;
    let settings = settings();
    let facts = semconv::ServerRequest {
        method: &incoming.method,
        scheme: &incoming.scheme,
        path: &incoming.path,
        query: &incoming.query,
        server_address: &incoming.server_address,
        server_port: incoming.server_port,
        client_address: &incoming.client_address,
        client_port: incoming.client_port,
        user_agent: &incoming.user_agent,
        protocol_version: &incoming.protocol_version,
    };
    let found = settings.propagator.extract(&incoming.headers);
    let remote = found.context;
    let current = api.current_context(py)?;
    let parent = match remote {
        Some(r) => {
            let state = (!r.trace_state.is_empty()).then(|| TraceState::Members(r.trace_state));
            Some((r.trace_id, r.span_id, r.trace_flags, state, true))
        }
        None => parent_of(py, &current)?,
    };
    let new = NewSpan {
        name: semconv::span_name(&incoming.method, None),
        kind: SpanKind::Server,
        attributes: owned(semconv::server_request_attributes(&facts, settings.semconv)),
        links: Vec::new(),
        start_ns: None,
        record_exception: true,
        set_status_on_exception: true,
    };
    let span = create(py, &tracer.core, &tracer.scope, parent, new)?;
    if !settings.capture.server_request.is_empty() {
        capture(
            span.get(),
            "request",
            &incoming.headers.pairs(),
            &settings.capture.server_request,
        );
    }
    let context = api.context_with_span(py, &current, span.bind(py).as_any())?;
    if let Some(entries) = found.baggage {
        // Incoming baggage joins what the context already carries, as the API's does.
        let context = context.cast::<PyDict>()?;
        let bag = PyDict::new(py);
        if let Some(existing) = context.get_item(api.baggage_key.bind(py))? {
            if let Ok(existing) = existing.cast::<PyDict>() {
                bag.update(existing.as_mapping())?;
            }
        }
        for (k, v) in entries {
            bag.set_item(k, v)?;
        }
        context.set_item(api.baggage_key.bind(py), bag)?;
    }
    let token = api.attach(py, &context)?;
    let facts = MetricFacts {
        method: semconv::method(&incoming.method).0,
        scheme: incoming.scheme,
        protocol_version: incoming.protocol_version,
        status: None,
        route: None,
        error_type: None,
        started: Instant::now(),
    };
    let metrics = ServerMetrics::from_python(duration, active_requests);
    if let Some(active) = metrics.as_ref().and_then(|m| m.active.as_ref()) {
        active.record(Number::Int(1), facts.active_attributes(), ferrotel_sdk::now_ns());
    }
    Ok(Some(ServerRequest {
        span,
        token: Mutex::new(Some(token.unbind())),
        method: incoming.method,
        metrics,
        facts: Mutex::new(facts),
        ended: AtomicBool::new(false),
    }))
}

#[pymethods]
impl ServerRequest {
    /// The status given to `start_response` (`"404 Not Found"`) or in ASGI's
    /// `http.response.start` (`404`), and the response headers.
    #[pyo3(signature = (status, headers=None))]
    fn response(&self, status: &Bound<'_, PyAny>, headers: Option<&Bound<'_, PyAny>>) {
        let code = match status.extract::<u16>() {
            Ok(code) => Some(code),
            Err(_) => status.extract::<String>().ok().and_then(|s| semconv::status_code(&s)),
        };
        let Some(code) = code else {
            return;
        };
        lock(&self.facts).status = Some(code);
        let (attrs, status) = semconv::server_response(code, settings().semconv);
        apply_response(self.span.get(), attrs, status);
        capture(
            self.span.get(),
            "response",
            &header_pairs(headers),
            &settings().capture.server_response,
        );
    }

    /// The route template the framework matched: `http.route`, and the span's name.
    fn set_route(&self, route: &str) {
        lock(&self.facts).route = Some(route.to_owned());
        let name = semconv::span_name(&self.method, Some(route));
        self.span.get().with_record(|data, limits| {
            for (k, v) in owned(semconv::route(route)) {
                data.set_attribute(k, v, limits);
            }
            data.name = name;
        });
    }

    /// An exception the application did not handle: recorded once, status ERROR,
    /// `error.type` the exception's type.
    fn record_exception(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        if exception.is_instance_of::<PyException>() {
            let mut facts = lock(&self.facts);
            if facts.error_type.is_none() {
                facts.error_type = Some(error_type_of(exception)?);
            }
        }
        record_error(py, self.span.get(), exception)
    }

    /// Ends the span (once), restores the context from before the request and records the
    /// request's duration. A body collected unclosed ends without touching the context: the
    /// collector may run anywhere, where restoring would clobber someone else's.
    #[pyo3(signature = (restore_context=true))]
    fn end(&self, py: Python<'_>, restore_context: bool) -> PyResult<()> {
        if !restore_context {
            lock(&self.token).take();
        }
        if !self.ended.swap(true, Ordering::AcqRel) {
            if let Some(metrics) = &self.metrics {
                let facts = lock(&self.facts);
                let now = ferrotel_sdk::now_ns();
                let seconds = facts.started.elapsed().as_secs_f64();
                let span = measured_in(self.span.get());
                metrics
                    .duration
                    .record_in(Number::Double(seconds), facts.duration_attributes(), now, span);
                if let Some(active) = &metrics.active {
                    active.record(Number::Int(-1), facts.active_attributes(), now);
                }
            }
        }
        finish(py, &self.span, &self.token)
    }

    #[getter]
    fn span(&self, py: Python<'_>) -> Py<Span> {
        self.span.clone_ref(py)
    }
}

/// Request headers a client is about to send, written through `__setitem__` (dicts,
/// requests' and urllib3's header maps).
struct Headers<'a, 'py>(&'a Bound<'py, PyAny>);

impl Carrier for Headers<'_, '_> {
    fn get(&self, _key: &str) -> Vec<String> {
        Vec::new()
    }

    fn keys(&self) -> Vec<String> {
        Vec::new()
    }

    fn set(&mut self, key: &str, value: String) {
        let _ = self.0.set_item(key, value);
    }
}

/// One outgoing request: its CLIENT span, current until `end()`.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct ClientRequest {
    span: Py<Span>,
    token: Mutex<Option<Py<PyAny>>>,
    /// `http.client.request.duration`, when the glue passed ferrotel's histogram.
    duration: Option<Arc<Instrument>>,
    facts: Mutex<ClientFacts>,
}

/// What the stable HTTP client duration is attributed by.
struct ClientFacts {
    method: &'static str,
    server_address: String,
    server_port: Option<u16>,
    status: Option<u16>,
    protocol_version: Option<String>,
    error_type: Option<String>,
    started: Instant,
}

impl ClientFacts {
    fn attributes(&self) -> Vec<(String, Value)> {
        let mut attributes = vec![("http.request.method".into(), Value::Str(self.method.into()))];
        if !self.server_address.is_empty() {
            attributes.push(("server.address".into(), Value::Str(self.server_address.clone())));
        }
        if let Some(port) = self.server_port {
            attributes.push(("server.port".into(), Value::Int(port.into())));
        }
        if let Some(status) = self.status {
            attributes.push(("http.response.status_code".into(), Value::Int(status.into())));
        }
        if let Some(version) = &self.protocol_version {
            attributes.push(("network.protocol.version".into(), Value::Str(version.clone())));
        }
        // For a client every 4xx and 5xx is an error, typed by its status.
        let error_type = self
            .error_type
            .clone()
            .or_else(|| self.status.filter(|s| *s >= 400).map(|s| s.to_string()));
        if let Some(error_type) = error_type {
            attributes.push(("error.type".into(), Value::Str(error_type)));
        }
        attributes
    }
}

/// Starts a client span under the current context, writes the propagation headers into
/// `headers` and makes the span current; `None` when `tracer` is not ferrotel's.
#[pyfunction]
#[pyo3(signature = (tracer, method, url, headers, duration=None))]
pub fn start_client_request(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    method: &str,
    url: &str,
    headers: &Bound<'_, PyAny>,
    duration: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<ClientRequest>> {
    let Ok(tracer) = tracer.cast::<Tracer>() else {
        return Ok(None);
    };
    let tracer = tracer.get();
    let api = api::get(py)?;
    let settings = settings();
    let current = api.current_context(py)?;
    let parent = parent_of(py, &current)?;
    let facts = semconv::ClientRequest { method, url };
    let new = NewSpan {
        name: semconv::span_name(method, None),
        kind: SpanKind::Client,
        attributes: owned(semconv::client_request_attributes(&facts, settings.semconv)),
        links: Vec::new(),
        start_ns: None,
        record_exception: true,
        set_status_on_exception: true,
    };
    let span = create(py, &tracer.core, &tracer.scope, parent, new)?;
    let remote = {
        let s = span.get();
        let trace_state = s.trace_state.as_ref().map(|t| t.members(py)).unwrap_or_default();
        RemoteContext {
            trace_id: s.trace_id,
            span_id: s.span_id,
            trace_flags: s.trace_flags,
            trace_state,
        }
    };
    let mut baggage = Vec::new();
    if let Ok(dict) = current.cast::<PyDict>() {
        if let Some(bag) = dict.get_item(api.baggage_key.bind(py))? {
            if let Ok(bag) = bag.cast::<PyDict>() {
                for (k, v) in bag.iter() {
                    if let (Ok(k), Ok(v)) = (k.extract::<String>(), v.str()) {
                        baggage.push((k, v.to_string()));
                    }
                }
            }
        }
    }
    settings
        .propagator
        .inject(Some(&remote), &baggage, &mut Headers(headers));
    capture(
        span.get(),
        "request",
        &header_pairs(Some(headers)),
        &settings.capture.client_request,
    );
    let context = api.context_with_span(py, &current, span.bind(py).as_any())?;
    let token = api.attach(py, &context)?;
    let (_, host, port) = semconv::url_parts(url);
    let facts = ClientFacts {
        method: semconv::method(method).0,
        server_address: host.to_owned(),
        server_port: port,
        status: None,
        protocol_version: None,
        error_type: None,
        started: Instant::now(),
    };
    Ok(Some(ClientRequest {
        span,
        token: Mutex::new(Some(token.unbind())),
        duration: duration
            .and_then(|d| d.cast::<Histogram>().ok())
            .and_then(|d| d.get().instrument.clone()),
        facts: Mutex::new(facts),
    }))
}

#[pymethods]
impl ClientRequest {
    /// The response's status code, headers and HTTP version (as Python's clients give it:
    /// 10, 11, 20).
    #[pyo3(signature = (status, headers=None, version=None))]
    fn response(&self, status: u16, headers: Option<&Bound<'_, PyAny>>, version: Option<u8>) {
        {
            let mut facts = lock(&self.facts);
            facts.status = Some(status);
            facts.protocol_version = version.map(|v| match v % 10 {
                0 => (v / 10).to_string(),
                minor => format!("{}.{minor}", v / 10),
            });
        }
        let (attrs, status) = semconv::client_response(status, settings().semconv);
        apply_response(self.span.get(), attrs, status);
        capture(
            self.span.get(),
            "response",
            &header_pairs(headers),
            &settings().capture.client_response,
        );
    }

    /// The request failed (connection refused, timeout...).
    fn record_exception(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        if exception.is_instance_of::<PyException>() {
            lock(&self.facts).error_type = Some(error_type_of(exception)?);
        }
        record_error(py, self.span.get(), exception)
    }

    /// Ends the span, restores the context and records the call's duration (once).
    fn end(&self, py: Python<'_>) -> PyResult<()> {
        let first = lock(&self.token).is_some();
        if let (true, Some(duration)) = (first, &self.duration) {
            let facts = lock(&self.facts);
            let seconds = facts.started.elapsed().as_secs_f64();
            let span = measured_in(self.span.get());
            duration.record_in(
                Number::Double(seconds),
                facts.attributes(),
                ferrotel_sdk::now_ns(),
                span,
            );
        }
        finish(py, &self.span, &self.token)
    }
}

/// One database call: a CLIENT span under the current context (a leaf: not made current).
#[pyclass(frozen, module = "ferrotel._native")]
pub struct DbCall {
    span: Py<Span>,
}

/// Starts the span of a database call; `None` when `tracer` is not ferrotel's. The query
/// text is recorded with its literal values replaced by `?`.
#[pyfunction]
pub fn start_db_call(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    system: &str,
    namespace: &str,
    query: &str,
) -> PyResult<Option<DbCall>> {
    let Ok(tracer) = tracer.cast::<Tracer>() else {
        return Ok(None);
    };
    let tracer = tracer.get();
    let current = api::get(py)?.current_context(py)?;
    let parent = parent_of(py, &current)?;
    let (name, attributes) = semconv::db_call(system, namespace, query, settings().db_semconv);
    let new = NewSpan {
        name,
        kind: SpanKind::Client,
        attributes: owned(attributes),
        links: Vec::new(),
        start_ns: None,
        record_exception: true,
        set_status_on_exception: true,
    };
    Ok(Some(DbCall {
        span: create(py, &tracer.core, &tracer.scope, parent, new)?,
    }))
}

#[pymethods]
impl DbCall {
    fn record_exception(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        record_error(py, self.span.get(), exception)
    }

    fn end(&self) {
        self.span.get().finish(None);
    }
}
