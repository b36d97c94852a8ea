//! One messaging or RPC operation (a task published or run, an AWS call, a gRPC call made
//! or served): its span of any kind, under the context a message or request carries (its
//! headers, message attributes or metadata, read through `.get(key)`) or the current one;
//! optionally current until `end()`; and the propagation fields of its own context written
//! into an outgoing message. Names and attributes are the glue's; the span, extraction and
//! injection are here.

use std::sync::Mutex;

use ferrotel_propagation::{Carrier, RemoteContext};
use ferrotel_sdk::span::{Link, SpanKind, StatusCode};
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyBytes, PyDict, PyList, PyString, PyTuple};

use super::headers::{header_pairs, OutgoingHeaders, RequestHeaders};
use super::rpc;
use super::settings::settings;
use crate::boundary::api;
use crate::boundary::value;
use crate::trace::context::{add_baggage, baggage_in, trace_state_header, Parent, SpanIds, TraceState};
use crate::trace::current::parent_in;
use crate::trace::span::Span;
use crate::trace::tracer::{create, NewSpan, Tracer};

#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct Operation {
    /// `None` when instrumentation is suppressed in the caller's context.
    active: Option<ActiveOperation>,
}

struct ActiveOperation {
    span: Py<Span>,
    /// The context the operation runs in: the span in the parent's (or carried) context.
    context: Py<PyAny>,
    /// Set while the span is current.
    token: Mutex<Option<Py<PyAny>>>,
}

/// A message's or request's propagation fields, read with `.get(key)` (a dict, Celery's
/// task request, a metadata map). A value that is not text is read as upstream's getters
/// read it: each item of a list, else its string form.
struct LookupCarrier<'a, 'py>(&'a Bound<'py, PyAny>);

fn texts(value: &Bound<'_, PyAny>) -> Vec<String> {
    if let Ok(s) = value.cast::<PyString>() {
        return vec![value::string_of(s).into_owned()];
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return vec![b.as_bytes().iter().copied().map(char::from).collect()];
    }
    if value.cast::<PyList>().is_ok() || value.cast::<PyTuple>().is_ok() {
        if let Ok(items) = value.try_iter() {
            return items.flatten().flat_map(|item| texts(&item)).collect();
        }
    }
    value.str().map(|s| vec![s.to_string()]).unwrap_or_default()
}

impl Carrier for LookupCarrier<'_, '_> {
    fn get(&self, key: &str) -> Vec<String> {
        let found = match self.0.cast::<PyDict>() {
            Ok(dict) => dict.get_item(key).ok().flatten(),
            Err(_) => self.0.call_method1("get", (key,)).ok(),
        };
        found.filter(|v| !v.is_none()).map(|v| texts(&v)).unwrap_or_default()
    }

    fn keys(&self) -> Vec<String> {
        let Ok(keys) = self.0.call_method0("keys").and_then(|k| k.try_iter()) else {
            return Vec::new();
        };
        keys.flatten().filter_map(|k| k.extract::<String>().ok()).collect()
    }

    fn set(&mut self, _key: &str, _value: String) {}
}

/// What a carrier holds: the sender's span, and the context (with its baggage) to run in.
struct Carried<'py> {
    parent: Option<Parent>,
    /// The context the operation's span is placed in, when the carrier held one.
    context: Option<Bound<'py, PyAny>>,
    baggage: Option<Vec<(String, String)>>,
}

fn extract<'py>(py: Python<'py>, carrier: &Bound<'py, PyAny>) -> PyResult<Carried<'py>> {
    let settings = settings();
    // gRPC metadata: a sequence of `(key, value)` pairs.
    let pairs =
        (carrier.cast::<PyTuple>().is_ok() || carrier.cast::<PyList>().is_ok()).then(|| header_pairs(Some(carrier)));
    if settings.python_propagators {
        let carrier = match &pairs {
            Some(pairs) => pairs.clone().into_py_dict(py)?.into_any(),
            None => carrier.clone(),
        };
        let carrier = &carrier;
        // The API's default getter reads any carrier with `.get(key)` as this one does.
        let context = py
            .import("opentelemetry.propagate")?
            .getattr("extract")?
            .call1((carrier,))?;
        let parent = parent_in(py, Some(&context))?;
        return Ok(Carried {
            parent,
            context: Some(context),
            baggage: None,
        });
    }
    let found = match pairs {
        Some(pairs) => settings.propagator.extract(&RequestHeaders::List(pairs)),
        None => settings.propagator.extract(&LookupCarrier(carrier)),
    };
    Ok(Carried {
        parent: found.context.map(|remote| Parent {
            ids: SpanIds {
                trace_id: remote.trace_id,
                span_id: remote.span_id,
                flags: remote.trace_flags,
            },
            trace_state: (!remote.trace_state.is_empty()).then(|| TraceState::Members(remote.trace_state)),
            is_remote: true,
        }),
        context: None,
        baggage: found.baggage,
    })
}

fn link_to(py: Python<'_>, parent: &Parent) -> Link {
    Link {
        trace_id: parent.ids.trace_id,
        span_id: parent.ids.span_id,
        trace_flags: parent.ids.flags,
        trace_state: trace_state_header(py, parent.trace_state.as_ref()),
        is_remote: parent.is_remote,
        attributes: Attributes::default(),
    }
}

/// Starts an operation's span of `kind` (the API's `SpanKind` value) named `name` with
/// `attributes`; `None` when `tracer` is not ferrotel's. With a `carrier`, the span's
/// parent is the context it carries (or, with `link`, the span is linked to it and its
/// parent is the current context); without one, the current context. `current`: the span
/// is made current until `end()`. In a context that suppresses instrumentation nothing is
/// recorded and every method does nothing.
#[pyfunction]
#[pyo3(signature = (tracer, name, kind, attributes=None, carrier=None, link=false, current=true))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn start_operation(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    name: String,
    kind: i64,
    attributes: Option<&Bound<'_, PyAny>>,
    carrier: Option<&Bound<'_, PyAny>>,
    link: bool,
    current: bool,
) -> PyResult<Option<Operation>> {
    let Ok(tracer) = tracer.cast::<Tracer>() else {
        return Ok(None);
    };
    let new = NewSpan::instrumentation(name, SpanKind::from_index(kind), value::attributes(attributes));
    start(py, tracer, new, carrier, link, current).map(Some)
}

/// Starts a gRPC call's span (`/package.Service/Method` as `full_method`, text or bytes);
/// `None` when `tracer` is not ferrotel's. A client call's span is not made current (its
/// end comes on whichever thread the call completes on) and its context goes out through
/// [`Operation::outgoing_metadata`]; `address` is the channel's target. A served call's span
/// is the child of the context its `metadata` (the invocation metadata's `(key, value)`
/// pairs) carries and current until `end_rpc`; `address` is the caller's peer.
#[pyfunction]
#[pyo3(signature = (tracer, full_method, server, address=None, metadata=None))]
pub(crate) fn start_rpc(
    py: Python<'_>,
    tracer: &Bound<'_, PyAny>,
    full_method: &Bound<'_, PyAny>,
    server: bool,
    address: Option<&str>,
    metadata: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Operation>> {
    let Ok(tracer) = tracer.cast::<Tracer>() else {
        return Ok(None);
    };
    let (name, attributes) = rpc::call_conventions(&rpc::full_method_text(full_method), server, address);
    let kind = if server { SpanKind::Server } else { SpanKind::Client };
    let new = NewSpan::instrumentation(name, kind, attributes);
    let carrier = if server { metadata } else { None };
    start(py, tracer, new, carrier, false, server).map(Some)
}

fn start(
    py: Python<'_>,
    tracer: &Bound<'_, Tracer>,
    mut new: NewSpan,
    carrier: Option<&Bound<'_, PyAny>>,
    link: bool,
    current: bool,
) -> PyResult<Operation> {
    let tracer = tracer.get();
    let api = api::get(py)?;
    let mut context = api.current_context(py)?;
    if api.suppressed(py, &context, false) {
        return Ok(Operation { active: None });
    }
    let mut baggage = None;
    let mut parent = None;
    if let Some(carried) = carrier.filter(|c| !c.is_none()).map(|c| extract(py, c)).transpose()? {
        match (carried.parent, link) {
            (Some(remote), true) => new.links.push(link_to(py, &remote)),
            (Some(remote), false) => {
                parent = Some(remote);
                baggage = carried.baggage;
                if let Some(carried_context) = carried.context {
                    context = carried_context;
                }
            }
            (None, _) => {}
        }
    }
    if parent.is_none() {
        parent = parent_in(py, Some(&context))?;
    }
    let span = create(py, &tracer.core, &tracer.scope, &tracer.spare_span, parent, None, new)?;
    let context = api.context_with_span(py, &context, span.bind(py).as_any())?;
    if let Some(entries) = baggage {
        add_baggage(py, api, context.cast::<PyDict>()?, entries)?;
    }
    let token = if current {
        Some(api.attach(py, &context)?.unbind())
    } else {
        None
    };
    Ok(Operation {
        active: Some(ActiveOperation {
            span,
            context: context.unbind(),
            token: Mutex::new(token),
        }),
    })
}

#[pymethods]
impl Operation {
    /// Writes the propagation fields of the operation's context into `carrier` (anything
    /// with `__setitem__`), for the receiver to continue the trace.
    fn inject(&self, py: Python<'_>, carrier: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(active) = &self.active else { return Ok(()) };
        let context = active.context.bind(py);
        let settings = settings();
        if settings.python_propagators {
            let kwargs = PyDict::new(py);
            kwargs.set_item("context", context)?;
            py.import("opentelemetry.propagate")?
                .getattr("inject")?
                .call((carrier,), Some(&kwargs))?;
            return Ok(());
        }
        let span = active.span.get();
        let remote = RemoteContext {
            trace_id: span.ids.trace_id,
            span_id: span.ids.span_id,
            trace_flags: span.ids.flags,
            trace_state: span.trace_state.as_ref().map(|t| t.members(py)).unwrap_or_default(),
        };
        let baggage = baggage_in(py, api::get(py)?, context)?;
        settings
            .propagator
            .inject(Some(&remote), &baggage, &mut OutgoingHeaders(carrier));
        Ok(())
    }

    /// gRPC metadata to send in place of `metadata` (`None` or `(key, value)` pairs): its
    /// pairs, then the propagation fields of the call's context, keys in lower case as gRPC
    /// requires. `metadata` itself is left as it is; when there is nothing to add (a
    /// suppressed call) it is what comes back.
    fn outgoing_metadata<'py>(&self, py: Python<'py>, metadata: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if self.active.is_none() {
            return Ok(metadata.clone());
        }
        let fields = PyDict::new(py);
        self.inject(py, fields.as_any())?;
        let mut pairs: Vec<Bound<'py, PyAny>> = Vec::new();
        if !metadata.is_none() {
            for pair in metadata.try_iter()? {
                pairs.push(pair?);
            }
        }
        for (key, value) in fields.iter() {
            let key = key.str()?.to_string().to_ascii_lowercase();
            pairs.push(PyTuple::new(py, [key.into_pyobject(py)?.into_any(), value])?.into_any());
        }
        Ok(PyTuple::new(py, pairs)?.into_any())
    }

    /// Ends a gRPC call with status `code` (a `grpc.StatusCode` or its number): recorded as
    /// `rpc.grpc.status_code`, and status ERROR with `description` when the code is an error
    /// for this side of the call. `exception`, what the failure reached the application as,
    /// is recorded as an `exception` event.
    #[pyo3(signature = (code, description=None, exception=None))]
    fn end_rpc(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        description: Option<&Bound<'_, PyAny>>,
        exception: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let Some(active) = &self.active else { return Ok(()) };
        let span = active.span.get();
        let number = rpc::status_number(code).unwrap_or(2);
        if rpc::is_error(span.kind == SpanKind::Server, number) {
            // grpc's sync server keeps the details it was given as bytes.
            let description = description.filter(|d| !d.is_none()).map(|d| match d.cast::<PyBytes>() {
                Ok(bytes) => String::from_utf8_lossy(bytes.as_bytes()).into_owned(),
                Err(_) => d.str().map(|s| s.to_string()).unwrap_or_default(),
            });
            if let Some(exception) = exception.filter(|e| !e.is_none()) {
                span.record_error(py, exception)?;
            }
            span.with_record(|data, _| {
                if data.status.code != StatusCode::Error {
                    data.set_status(StatusCode::Error, description);
                }
            });
        }
        span.with_record(|data, limits| {
            data.set_attribute("rpc.grpc.status_code".into(), Value::Int(number), limits);
        });
        self.end(py)
    }

    fn set_attributes(&self, attributes: &Bound<'_, PyAny>) {
        let Some(active) = &self.active else { return };
        let attributes = value::attributes(Some(attributes));
        active.span.get().with_record(|data, limits| {
            for (k, v) in attributes {
                data.set_attribute(k, v, limits);
            }
        });
    }

    /// An exception the operation failed with: an `exception` event, status ERROR and
    /// `error.type` (once).
    fn record_exception(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(active) = &self.active else { return Ok(()) };
        active.span.get().record_error(py, exception)
    }

    /// Status ERROR without an exception (a failed RPC status), unless an exception set it.
    #[pyo3(signature = (description=None))]
    fn set_error(&self, description: Option<String>) {
        let Some(active) = &self.active else { return };
        active.span.get().with_record(|data, _| {
            if data.status.code != StatusCode::Error {
                data.set_status(StatusCode::Error, description);
            }
        });
    }

    /// The span, for hooks that take one (a non-recording one when suppressed).
    #[getter]
    fn span(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match &self.active {
            Some(active) => Ok(active.span.clone_ref(py).into_any()),
            None => Ok(py.import("opentelemetry.trace")?.getattr("INVALID_SPAN")?.unbind()),
        }
    }

    #[getter]
    fn is_recording(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.span.get().is_recording_now())
    }

    /// Ends the span and, if it was made current, restores the context from before (once).
    fn end(&self, py: Python<'_>) -> PyResult<()> {
        let Some(active) = &self.active else { return Ok(()) };
        if let Some(token) = lock(&active.token).take() {
            api::get(py)?.detach(py, token.bind(py));
        }
        active.span.get().finish(py, None);
        Ok(())
    }
}
