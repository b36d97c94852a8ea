//! One outgoing HTTP request: its CLIENT span under the current context, the propagation
//! headers written into the request, current until `end()`, the client duration and, for
//! the instrumentations whose upstream counterparts record them, the body sizes.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrotel_config::SemconvMode;
use ferrotel_propagation::RemoteContext;
use ferrotel_sdk::metrics::{Instrument, Number};
use ferrotel_sdk::span::SpanKind;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use ferrotel_semconv as semconv;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::call_span::{apply_response, finish, owned};
use super::headers::{capture, content_length, header_pairs, OutgoingHeaders};
use super::http_metrics::{histogram, ClientFacts, OldDuration, OldResponse};
use super::settings::settings;
use crate::boundary::api;
use crate::boundary::exception::exception_type;
use crate::trace::context::baggage_in;
use crate::trace::current::parent_in;
use crate::trace::span::Span;
use crate::trace::tracer::{create, NewSpan, Tracer};

#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct ClientRequest {
    /// `None` when instrumentation is suppressed in the caller's context: the call goes
    /// through untraced and every method does nothing.
    active: Option<ActiveRequest>,
}

struct ActiveRequest {
    span: Py<Span>,
    token: Mutex<Option<Py<PyAny>>>,
    /// `http.client.request.duration`, when the glue passed ferrotel's histogram.
    duration: Option<Arc<Instrument>>,
    /// `http.client.duration`, in the `/dup` mode.
    old_duration: Option<OldDuration>,
    body_sizes: Option<BodySizes>,
    facts: Mutex<ClientFacts>,
}

/// `http.client.request.body.size` and `http.client.response.body.size`, recorded once the
/// response is in: the request body's size as the glue measured it (none when it could not,
/// a stream), the response's as its `Content-Length` says (0 without one, as upstream's).
struct BodySizes {
    request: Arc<Instrument>,
    response: Arc<Instrument>,
    request_body: Option<i64>,
    response_body: Mutex<i64>,
}

/// Starts a client span under the current context, writes the propagation headers into
/// `headers` and makes the span current; `None` when `tracer` is not ferrotel's. In a
/// context that suppresses instrumentation (the SDK's while it exports), nothing is done.
/// `body_sizes`: the two body-size histograms and the request body's size, for the
/// instrumentations that record them.
#[pyfunction]
#[pyo3(signature = (tracer, method, url, headers, duration=None, old_duration=None, body_sizes=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_client_request(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    method: &str,
    url: &str,
    headers: &Bound<'_, PyAny>,
    duration: Option<&Bound<'_, PyAny>>,
    old_duration: Option<&Bound<'_, PyAny>>,
    body_sizes: Option<(Bound<'_, PyAny>, Bound<'_, PyAny>, Option<i64>)>,
) -> PyResult<Option<ClientRequest>> {
    let Ok(tracer) = tracer.cast::<Tracer>() else {
        return Ok(None);
    };
    let tracer = tracer.get();
    let api = api::get(py)?;
    let settings = settings();
    let current = api.current_context(py)?;
    if api.suppressed(py, &current, true) {
        return Ok(Some(ClientRequest { active: None }));
    }
    let parent = parent_in(py, Some(&current))?;
    let request = semconv::ClientRequest { method, url };
    let new = NewSpan::instrumentation(
        semconv::span_name(method, None),
        SpanKind::Client,
        owned(semconv::client_request_attributes(&request, settings.http_semconv)),
    );
    let span = create(py, &tracer.core, &tracer.scope, &tracer.spare_span, parent, None, new)?;
    let remote = {
        let s = span.get();
        RemoteContext {
            trace_id: s.ids.trace_id,
            span_id: s.ids.span_id,
            trace_flags: s.ids.flags,
            trace_state: s.trace_state.as_ref().map(|t| t.members(py)).unwrap_or_default(),
        }
    };
    let context = api.context_with_span(py, &current, span.bind(py).as_any())?;
    if settings.python_propagators {
        let kwargs = PyDict::new(py);
        kwargs.set_item("context", &context)?;
        py.import("opentelemetry.propagate")?
            .getattr("inject")?
            .call((headers,), Some(&kwargs))?;
    } else {
        let baggage = baggage_in(py, api, &current)?;
        settings
            .propagator
            .inject(Some(&remote), &baggage, &mut OutgoingHeaders(headers));
    }
    capture(span.get(), "request", &settings.capture.client_request, || {
        header_pairs(Some(headers))
    });
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
        active: Some(ActiveRequest {
            span,
            token: Mutex::new(Some(token.unbind())),
            duration: histogram(duration),
            old_duration: histogram(old_duration)
                .filter(|_| settings.http_semconv == SemconvMode::Duplicate)
                .map(|histogram| OldDuration::client(histogram, method, url)),
            body_sizes: body_sizes.and_then(|(request, response, request_body)| {
                Some(BodySizes {
                    request: histogram(Some(&request))?,
                    response: histogram(Some(&response))?,
                    request_body,
                    response_body: Mutex::new(0),
                })
            }),
            facts: Mutex::new(facts),
        }),
    }))
}

#[pymethods]
impl ClientRequest {
    /// The client span, for the instrumentation's hooks; `None` when the call is untraced.
    #[getter]
    fn span(&self, py: Python<'_>) -> Option<Py<Span>> {
        self.active.as_ref().map(|a| a.span.clone_ref(py))
    }

    /// The response's status code, headers and HTTP version (as Python's clients give it:
    /// 10, 11, 20).
    #[pyo3(signature = (status, headers=None, version=None))]
    fn response(&self, status: u16, headers: Option<&Bound<'_, PyAny>>, version: Option<u8>) {
        let Some(active) = &self.active else { return };
        let protocol_version = {
            let mut facts = lock(&active.facts);
            facts.responded(status, version);
            facts.protocol_version.clone()
        };
        if let Some(sizes) = &active.body_sizes {
            *lock(&sizes.response_body) = content_length(headers).unwrap_or(0);
        }
        let (mut attrs, status) = semconv::client_response(status, settings().http_semconv);
        if let Some(protocol_version) = protocol_version {
            attrs.push(("network.protocol.version", Value::Str(protocol_version)));
        }
        apply_response(active.span.get(), attrs, status);
        capture(
            active.span.get(),
            "response",
            &settings().capture.client_response,
            || header_pairs(headers),
        );
    }

    /// The request failed (connection refused, timeout...).
    fn record_exception(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(active) = &self.active else { return Ok(()) };
        if exception.is_instance_of::<PyException>() {
            lock(&active.facts).error_type = Some(exception_type(exception)?);
        }
        active.span.get().record_error(py, exception)
    }

    /// Ends the span, restores the context and records the call's duration (once).
    fn end(&self, py: Python<'_>) -> PyResult<()> {
        let Some(active) = &self.active else { return Ok(()) };
        let first = lock(&active.token).is_some();
        if let (true, Some(duration)) = (first, &active.duration) {
            let facts = lock(&active.facts);
            let seconds = facts.started.elapsed().as_secs_f64();
            let span = Some(active.span.get().ids.measured_in());
            let now = ferrotel_sdk::now_ns();
            let attributes = facts.attributes();
            if let (Some(sizes), Some(_)) = (&active.body_sizes, facts.status) {
                if let Some(size) = sizes.request_body {
                    sizes
                        .request
                        .record_in(Number::Int(size), attributes.clone(), now, span);
                }
                let size = *lock(&sizes.response_body);
                sizes
                    .response
                    .record_in(Number::Int(size), attributes.clone(), now, span);
            }
            duration.record_in(Number::Double(seconds), attributes, now, span);
            if let Some(old) = &active.old_duration {
                let response = OldResponse {
                    status: facts.status,
                    flavor: facts.protocol_version.as_deref(),
                    route: None,
                };
                old.record(seconds, response, now, span);
            }
        }
        finish(py, &active.span, &active.token)
    }
}
