//! One HTTP request being served: its SERVER span under the context the request carries
//! (or the current one), current until the response ends, and the server metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrotel_config::SemconvMode;
use ferrotel_sdk::metrics::{Instrument, Number, PreparedAttributes};
use ferrotel_sdk::span::SpanKind;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use ferrotel_semconv as semconv;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::call_span::{apply_response, finish, owned};
use super::headers::{capture, content_length, header_pairs};
use super::http_metrics::{histogram, up_down_counter, OldDuration, OldResponse, ServerFacts};
use super::incoming::Incoming;
use super::settings::settings;
use crate::boundary::api;
use crate::boundary::exception::exception_type;
use crate::trace::context::{add_baggage, Parent, SpanIds, TraceState};
use crate::trace::current::parent_in;
use crate::trace::span::Span;
use crate::trace::tracer::{create, NewSpan, Tracer};

/// `http.server.request.duration`, `http.server.active_requests` and the request and
/// response body sizes, ferrotel's own instruments (absent when another SDK provides the
/// meters).
struct ServerMetrics {
    duration: Arc<Instrument>,
    /// With its attribute set, put in order once for the request's +1 and -1.
    active: Option<(Arc<Instrument>, PreparedAttributes)>,
    request_size: Option<Arc<Instrument>>,
    response_size: Option<Arc<Instrument>>,
    /// `http.server.duration`, in the `/dup` mode.
    old: Option<OldDuration>,
}

/// One request being served: its SERVER span, current until `end()`.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct ServerRequest {
    pub(super) span: Py<Span>,
    token: Mutex<Option<Py<PyAny>>>,
    method: String,
    metrics: Option<ServerMetrics>,
    /// Kept apart from the span: metrics count every request, sampled or not.
    facts: Mutex<ServerFacts>,
    ended: AtomicBool,
    /// An ASGI websocket connection: a span, no HTTP request metrics.
    websocket: bool,
}

/// The same for an ASGI `http` or `websocket` connection scope. `context_value`: a
/// `(key, value)` the request's context also carries (FastAPI's request telemetry), set in
/// the same context as the span rather than by a second attach.
#[pyfunction]
#[pyo3(signature = (tracer, scope, instruments=None, context_value=None))]
pub(crate) fn start_asgi_request(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    scope: &Bound<'_, PyDict>,
    instruments: Option<&Bound<'_, PyTuple>>,
    context_value: Option<(Bound<'_, PyAny>, Bound<'_, PyAny>)>,
) -> PyResult<Option<ServerRequest>> {
    let request = start(py, tracer, Incoming::from_asgi_scope(scope)?, instruments)?;
    if let (Some(_), Some((key, value))) = (&request, context_value) {
        // The context `start` just made and attached: no one else has read it yet.
        api::get(py)?
            .current_context(py)?
            .cast::<PyDict>()?
            .set_item(key, value)?;
    }
    Ok(request)
}

/// Starts the server span of a request and makes it current; `None` when `tracer` is not
/// ferrotel's. `instruments`: what `server_instruments()` makes, in its order (duration,
/// active requests, request and response body sizes, the old `/dup` duration).
pub(super) fn start(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    incoming: Incoming<'_, '_>,
    instruments: Option<&Bound<'_, PyTuple>>,
) -> PyResult<Option<ServerRequest>> {
    let Ok(tracer) = tracer.cast::<Tracer>() else {
        return Ok(None);
    };
    let tracer = tracer.get();
    let instrument = |index: usize| instruments.and_then(|all| all.get_item(index).ok());
    let [duration, active_requests, request_size, response_size, old_duration] = [0, 1, 2, 3, 4].map(instrument);
    let api = api::get(py)?;
    let settings = settings();
    let mut current = api.current_context(py)?;
    let mut baggage = None;
    let parent = if settings.python_propagators {
        let extracted = extract_with_global_propagator(py, &incoming.headers.pairs())?;
        match parent_in(py, Some(&extracted))? {
            Some(remote) => {
                // The extracted context (baggage included) is what the request runs in.
                current = extracted;
                Some(remote)
            }
            None => parent_in(py, Some(&current))?,
        }
    } else {
        let found = settings.propagator.extract(&incoming.headers);
        baggage = found.baggage;
        match found.context {
            Some(remote) => Some(Parent {
                ids: SpanIds {
                    trace_id: remote.trace_id,
                    span_id: remote.span_id,
                    flags: remote.trace_flags,
                },
                trace_state: (!remote.trace_state.is_empty()).then(|| TraceState::Members(remote.trace_state)),
                is_remote: true,
            }),
            None => parent_in(py, Some(&current))?,
        }
    };
    let mut attributes = owned(semconv::server_request_attributes(
        &incoming.facts(),
        settings.http_semconv,
    ));
    if incoming.websocket {
        attributes.push(("network.protocol.name".into(), Value::Str("websocket".into())));
    }
    let new = NewSpan::instrumentation(semconv::span_name(&incoming.method, None), SpanKind::Server, attributes);
    let span = create(py, &tracer.core, &tracer.scope, &tracer.spare_span, parent, None, new)?;
    capture(span.get(), "request", &settings.capture.server_request, || {
        incoming.headers.pairs()
    });
    let context = api.context_with_span(py, &current, span.bind(py).as_any())?;
    if let Some(entries) = baggage {
        // Incoming baggage joins what the context already carries, as the API's does.
        add_baggage(py, api, context.cast::<PyDict>()?, entries)?;
    }
    let token = api.attach(py, &context)?;
    let old = histogram(old_duration.as_ref())
        .filter(|_| settings.http_semconv == SemconvMode::Duplicate)
        .map(|histogram| OldDuration::server(histogram, &incoming.old_metric_attributes()));
    let facts = ServerFacts {
        method: semconv::method(&incoming.method).0,
        scheme: incoming.scheme,
        protocol_version: incoming.protocol_version,
        status: None,
        route: None,
        error_type: None,
        request_body_size: incoming.content_length,
        response_body_size: None,
        started: Instant::now(),
    };
    // A websocket connection is not an HTTP request: no request metrics, as upstream.
    let metrics = histogram(duration.as_ref())
        .filter(|_| !incoming.websocket)
        .map(|duration| {
            // The active-request counter's attributes: the stable ones, and the old ones in `/dup`.
            let active = up_down_counter(active_requests.as_ref()).map(|counter| {
                let mut attributes = facts.active_attributes();
                if let Some(old) = &old {
                    attributes.extend(old.active_attributes());
                }
                (counter, PreparedAttributes::new(attributes))
            });
            ServerMetrics {
                duration,
                active,
                request_size: histogram(request_size.as_ref()),
                response_size: histogram(response_size.as_ref()),
                old,
            }
        });
    if let Some((active, attributes)) = metrics.as_ref().and_then(|metrics| metrics.active.as_ref()) {
        active.record_prepared(Number::Int(1), attributes, ferrotel_sdk::now_ns(), None);
    }
    Ok(Some(ServerRequest {
        span,
        token: Mutex::new(Some(token.unbind())),
        method: incoming.method,
        metrics,
        facts: Mutex::new(facts),
        ended: AtomicBool::new(false),
        websocket: incoming.websocket,
    }))
}

/// The context the API's global propagator extracts from `headers` (lower-case names), for
/// propagators only Python provides.
fn extract_with_global_propagator<'py>(py: Python<'py>, headers: &[(String, String)]) -> PyResult<Bound<'py, PyAny>> {
    let carrier = PyDict::new(py);
    for (name, value) in headers {
        match carrier.get_item(name)? {
            Some(values) => values.cast::<pyo3::types::PyList>()?.append(value)?,
            None => carrier.set_item(name, vec![value])?,
        }
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("getter", py.import("ferrotel.propagate")?.getattr("HEADER_GETTER")?)?;
    py.import("opentelemetry.propagate")?
        .getattr("extract")?
        .call((carrier,), Some(&kwargs))
}

impl ServerRequest {
    /// The response's status (`"404 Not Found"` or `404`) and headers.
    pub(super) fn responded(&self, status: &Bound<'_, PyAny>, headers: Option<&Bound<'_, PyAny>>) {
        // WSGI's text status is tried first: a failed integer conversion builds an exception.
        let code = match status.cast::<PyString>() {
            Ok(text) => text.to_str().ok().and_then(semconv::status_code),
            Err(_) => status.extract::<u16>().ok(),
        };
        let Some(code) = code else {
            return;
        };
        {
            let mut facts = lock(&self.facts);
            facts.status = Some(code);
            if self.metrics.as_ref().is_some_and(|m| m.response_size.is_some()) {
                facts.response_body_size = content_length(headers);
            }
        }
        let (attrs, status) = semconv::server_response(code, settings().http_semconv);
        apply_response(self.span.get(), attrs, status);
        capture(self.span.get(), "response", &settings().capture.server_response, || {
            header_pairs(headers)
        });
    }

    /// A websocket message as an event named by its ASGI type.
    fn note_message(&self, message: &Bound<'_, PyAny>) {
        let Some(kind) = message_type(message) else {
            return;
        };
        if kind == "websocket.send" || kind == "websocket.receive" {
            let now = ferrotel_sdk::now_ns();
            self.span
                .get()
                .with_record(|data, limits| data.add_event(kind, now, Vec::new(), limits));
        }
    }

    /// An exception the application did not handle: recorded once, status ERROR,
    /// `error.type` the exception's type (for the metrics too).
    pub(crate) fn record_error(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        if exception.is_instance_of::<PyException>() {
            let mut facts = lock(&self.facts);
            if facts.error_type.is_none() {
                facts.error_type = Some(exception_type(exception)?);
            }
        }
        self.span.get().record_error(py, exception)
    }

    /// Ends the span (once) and records the request's duration. `restore_context`: also
    /// restore the context from before the request; not when the end comes from a body
    /// being collected, which may happen anywhere, where restoring would clobber another
    /// context.
    pub(crate) fn end_request(&self, py: Python<'_>, restore_context: bool) -> PyResult<()> {
        if !restore_context {
            lock(&self.token).take();
        }
        if !self.ended.swap(true, Ordering::AcqRel) {
            if let Some(metrics) = &self.metrics {
                let facts = lock(&self.facts);
                let now = ferrotel_sdk::now_ns();
                let seconds = facts.started.elapsed().as_secs_f64();
                let span = Some(self.span.get().ids.measured_in());
                // One attribute set, put in order once, for the duration and the body sizes.
                let attributes = facts.prepared_duration_attributes();
                let sizes = [
                    (&metrics.request_size, facts.request_body_size),
                    (&metrics.response_size, facts.response_body_size),
                ];
                for (instrument, size) in sizes {
                    if let (Some(instrument), Some(size)) = (instrument, size) {
                        instrument.record_prepared(Number::Int(size), &attributes, now, span);
                    }
                }
                metrics
                    .duration
                    .record_prepared(Number::Double(seconds), &attributes, now, span);
                if let Some(old) = &metrics.old {
                    let response = OldResponse {
                        status: facts.status,
                        route: facts.route.as_deref(),
                        ..OldResponse::default()
                    };
                    old.record(seconds, response, now, span);
                }
                if let Some((active, attributes)) = &metrics.active {
                    active.record_prepared(Number::Int(-1), attributes, now, None);
                }
            }
        }
        finish(py, &self.span, &self.token)
    }
}

#[pymethods]
impl ServerRequest {
    /// The status given to `start_response` (`"404 Not Found"`) or in ASGI's
    /// `http.response.start` (`404`), and the response headers.
    #[pyo3(signature = (status, headers=None))]
    fn response(&self, status: &Bound<'_, PyAny>, headers: Option<&Bound<'_, PyAny>>) {
        self.responded(status, headers);
    }

    /// The ASGI `send` callable to hand the app in place of the server's: it notes the
    /// response as it goes out and returns the server's own awaitable.
    fn traced_send(slf: Py<Self>, send: Py<PyAny>) -> TracedSend {
        TracedSend {
            request: slf,
            send,
            message_events: settings().message_events,
        }
    }

    /// A websocket message received, as an event (with `FERROTEL_ASGI_MESSAGE_EVENTS`).
    fn message_event(&self, message: &Bound<'_, PyAny>) {
        self.note_message(message);
    }

    /// Ends an ASGI request: the route the router left in `scope` (Starlette's and FastAPI's
    /// `scope["route"]`, under the mount's `root_path`) names the span, then as `end()`.
    fn end_asgi(&self, py: Python<'_>, scope: &Bound<'_, PyDict>) -> PyResult<()> {
        if let Some(route) = scope_route(scope) {
            self.set_route(&route);
        }
        self.end_request(py, true)
    }

    /// The route template the framework matched: `http.route`, and the span's name.
    pub(super) fn set_route(&self, route: &str) {
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
        self.record_error(py, exception)
    }

    /// Ends the span (once), restores the context from before the request and records the
    /// request's duration. A body collected unclosed ends without touching the context.
    #[pyo3(signature = (restore_context=true))]
    fn end(&self, py: Python<'_>, restore_context: bool) -> PyResult<()> {
        self.end_request(py, restore_context)
    }

    #[getter]
    fn span(&self, py: Python<'_>) -> Py<Span> {
        self.span.clone_ref(py)
    }
}

/// The `send` an ASGI app is handed: one native call per message, which looks at the
/// response start only (and at websocket messages when their events are asked for), then
/// returns the server's own `send(message)` awaitable untouched.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct TracedSend {
    request: Py<ServerRequest>,
    send: Py<PyAny>,
    message_events: bool,
}

#[pymethods]
impl TracedSend {
    fn __call__<'py>(&self, py: Python<'py>, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(dict) = message.cast::<PyDict>() {
            let request = self.request.get();
            match dict.get_item(pyo3::intern!(py, "type")).ok().flatten() {
                Some(kind) if is(&kind, "http.response.start") || is(&kind, "websocket.http.response.start") => {
                    if let Ok(Some(status)) = dict.get_item(pyo3::intern!(py, "status")) {
                        let headers = dict.get_item(pyo3::intern!(py, "headers")).ok().flatten();
                        request.responded(&status, headers.as_ref());
                    }
                    if let Some(propagator) = response_propagator(py) {
                        // Written into the app's message as upstream's middleware does; a
                        // failing propagator must not fail the response.
                        let _ = py.import("ferrotel.instrumentation.asgi").and_then(|m| {
                            m.getattr("inject_response")?
                                .call1((propagator, request.span.bind(py), message))
                        });
                    }
                }
                Some(_) if self.message_events && request.websocket => request.note_message(message),
                _ => {}
            }
        }
        self.send.bind(py).call1((message,))
    }
}

/// The response propagator set with upstream's `set_global_response_propagator` (the
/// `traceresponse` header), if the module that holds it was imported and one is set.
pub(super) fn response_propagator(py: Python<'_>) -> Option<Bound<'_, PyAny>> {
    static MODULES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let modules = MODULES
        .get_or_try_init(py, || -> PyResult<Py<PyDict>> {
            Ok(py.import("sys")?.getattr("modules")?.cast_into::<PyDict>()?.unbind())
        })
        .ok()?
        .bind(py);
    let module = modules
        .get_item(pyo3::intern!(py, "opentelemetry.instrumentation.propagators"))
        .ok()??;
    let propagator = module.getattr(pyo3::intern!(py, "_RESPONSE_PROPAGATOR")).ok()?;
    (!propagator.is_none()).then_some(propagator)
}

fn is(value: &Bound<'_, PyAny>, expected: &str) -> bool {
    value
        .cast::<pyo3::types::PyString>()
        .is_ok_and(|s| s.to_str().is_ok_and(|s| s == expected))
}

/// An ASGI message's `type`, for the websocket message events.
fn message_type(message: &Bound<'_, PyAny>) -> Option<String> {
    message.get_item("type").ok()?.extract().ok()
}

/// The route template Starlette's router leaves in the scope, under the mount's root path.
fn scope_route(scope: &Bound<'_, PyDict>) -> Option<String> {
    let route = scope.get_item("route").ok()??;
    let template: String = route
        .getattr("path_format")
        .or_else(|_| route.getattr("path"))
        .ok()?
        .extract()
        .ok()?;
    let root = scope
        .get_item("root_path")
        .ok()
        .flatten()
        .and_then(|r| r.extract::<String>().ok())
        .unwrap_or_default();
    Some(format!("{}{template}", root.trim_end_matches('/')))
}
