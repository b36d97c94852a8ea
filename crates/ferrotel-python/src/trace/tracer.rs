//! `Tracer`: starts spans, sampling in Rust, and makes them current through the API's own
//! context variable, so `opentelemetry.trace.get_current_span()` sees them everywhere.

use std::sync::{Arc, Mutex};

use ferrotel_sdk::sync::lock;

use ferrotel_sdk::ids;
use ferrotel_sdk::sampler::{should_sample, Decision, Parent};
use ferrotel_sdk::span::{Scope, SpanData, SpanKind, Status};
use ferrotel_sdk::value::Attributes;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::api;
use super::provider::ProviderCore;
use super::span::{read_span_context, trace_state_header, Span, TraceState};
use super::value;

/// The arguments of `start_span` / `start_as_current_span`, kept by a scope so its
/// decorator form can start a fresh span per call.
struct SpanArgs {
    name: String,
    context: Option<Py<PyAny>>,
    kind: SpanKind,
    attributes: Option<Py<PyAny>>,
    links: Option<Py<PyAny>>,
    start_time: Option<u64>,
    record_exception: bool,
    set_status_on_exception: bool,
}

impl SpanArgs {
    fn clone_ref(&self, py: Python<'_>) -> SpanArgs {
        SpanArgs {
            name: self.name.clone(),
            context: self.context.as_ref().map(|c| c.clone_ref(py)),
            kind: self.kind,
            attributes: self.attributes.as_ref().map(|a| a.clone_ref(py)),
            links: self.links.as_ref().map(|l| l.clone_ref(py)),
            start_time: self.start_time,
            record_exception: self.record_exception,
            set_status_on_exception: self.set_status_on_exception,
        }
    }
}

fn kind_of(kind: Option<&Bound<'_, PyAny>>) -> SpanKind {
    let index = kind.filter(|k| !k.is_none()).and_then(|k| {
        k.getattr("value")
            .and_then(|v| v.extract::<i64>())
            .or_else(|_| k.extract::<i64>())
            .ok()
    });
    SpanKind::from_index(index.unwrap_or(0))
}

/// The parent's `(trace_id, span_id, flags, trace_state, is_remote)`, if the context holds a
/// valid span context.
pub type ParentContext = (u128, u64, u8, Option<TraceState>, bool);

pub fn parent_of(py: Python<'_>, context: &Bound<'_, PyAny>) -> PyResult<Option<ParentContext>> {
    let api = api::get(py)?;
    let Ok(dict) = context.cast::<PyDict>() else {
        return Ok(None);
    };
    let Some(parent) = dict.get_item(api.span_key.bind(py))? else {
        return Ok(None);
    };
    if let Ok(ours) = parent.cast::<Span>() {
        let s = ours.get();
        return Ok(Some((
            s.trace_id,
            s.span_id,
            s.trace_flags,
            s.trace_state.as_ref().map(|t| t.clone_ref(py)),
            s.is_remote,
        )));
    }
    let c = read_span_context(&parent.call_method0("get_span_context")?)?;
    Ok(c.is_valid.then_some((
        c.trace_id,
        c.span_id,
        c.trace_flags,
        c.trace_state.map(TraceState::Api),
        c.is_remote,
    )))
}

fn start(py: Python<'_>, core: &Arc<ProviderCore>, scope: &Arc<Scope>, args: &SpanArgs) -> PyResult<Py<Span>> {
    let api = api::get(py)?;
    let context = match args.context.as_ref().map(|c| c.bind(py)).filter(|c| !c.is_none()) {
        Some(c) => c.clone(),
        None => api.current_context(py)?,
    };
    let parent = parent_of(py, &context)?;
    let attributes = value::attributes(args.attributes.as_ref().map(|a| a.bind(py)));
    let mut links = Vec::new();
    if let Some(given) = args.links.as_ref().map(|l| l.bind(py)).filter(|l| !l.is_none()) {
        for link in given.try_iter()?.flatten() {
            let attrs = value::attributes(link.getattr("attributes").ok().as_ref());
            links.extend(read_span_context(&link.getattr("context")?)?.link(py, attrs));
        }
    }
    let new = NewSpan {
        name: args.name.clone(),
        kind: args.kind,
        attributes,
        links,
        start_ns: args.start_time,
        record_exception: args.record_exception,
        set_status_on_exception: args.set_status_on_exception,
    };
    create(py, core, scope, parent, new)
}

/// What a new span is made of, apart from its parent.
pub struct NewSpan {
    pub name: String,
    pub kind: SpanKind,
    pub attributes: Vec<(String, ferrotel_sdk::value::Value)>,
    pub links: Vec<ferrotel_sdk::span::Link>,
    pub start_ns: Option<u64>,
    pub record_exception: bool,
    pub set_status_on_exception: bool,
}

/// Samples and creates a span under `parent` (none: a new trace).
pub fn create(
    py: Python<'_>,
    core: &Arc<ProviderCore>,
    scope: &Arc<Scope>,
    parent: Option<ParentContext>,
    new: NewSpan,
) -> PyResult<Py<Span>> {
    let trace_id = parent.as_ref().map_or_else(ids::new_trace_id, |p| p.0);
    let sampling_parent = parent.as_ref().map(|p| Parent {
        sampled: p.2 & 1 == 1,
        is_remote: p.4,
    });
    let decision = should_sample(&core.sampler, sampling_parent, trace_id);
    let span_id = ids::new_span_id();
    let sampled = decision == Decision::RecordAndSample;
    let trace_state = parent.as_ref().and_then(|p| p.3.as_ref().map(|t| t.clone_ref(py)));
    let record = sampled.then(|| {
        let limits = &core.limits;
        let mut data = SpanData {
            trace_id,
            span_id,
            parent_span_id: parent.as_ref().map(|p| p.1),
            parent_is_remote: parent.as_ref().is_some_and(|p| p.4),
            trace_flags: 1,
            trace_state: trace_state_header(py, &trace_state),
            name: new.name,
            kind: new.kind,
            start_ns: new.start_ns.unwrap_or_else(ferrotel_sdk::now_ns),
            end_ns: 0,
            attributes: Attributes::default(),
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
            dropped_links: 0,
            status: Status::default(),
            scope: scope.clone(),
        };
        for (k, v) in new.attributes {
            data.set_attribute(k, v, limits);
        }
        for link in new.links {
            data.add_link(link, limits);
        }
        data
    });
    Py::new(
        py,
        Span::new(
            trace_id,
            span_id,
            u8::from(sampled),
            new.kind,
            trace_state,
            record,
            Some(core.clone()),
            new.record_exception,
            new.set_status_on_exception,
        ),
    )
}

/// Registered with the API as an `opentelemetry.trace.Tracer`.
#[pyclass(frozen, module = "ferrotel._native", name = "Tracer")]
pub struct Tracer {
    pub core: Arc<ProviderCore>,
    pub scope: Arc<Scope>,
}

impl Tracer {
    pub fn new(core: Arc<ProviderCore>, scope: Arc<Scope>) -> Tracer {
        Tracer { core, scope }
    }
}

#[allow(clippy::too_many_arguments)]
fn args(
    name: String,
    context: Option<&Bound<'_, PyAny>>,
    kind: Option<&Bound<'_, PyAny>>,
    attributes: Option<&Bound<'_, PyAny>>,
    links: Option<&Bound<'_, PyAny>>,
    start_time: Option<u64>,
    record_exception: bool,
    set_status_on_exception: bool,
) -> SpanArgs {
    SpanArgs {
        name,
        context: context.map(|c| c.clone().unbind()),
        kind: kind_of(kind),
        attributes: attributes.map(|a| a.clone().unbind()),
        links: links.map(|l| l.clone().unbind()),
        start_time,
        record_exception,
        set_status_on_exception,
    }
}

#[pymethods]
impl Tracer {
    #[pyo3(signature = (name, context=None, kind=None, attributes=None, links=None, start_time=None, record_exception=true, set_status_on_exception=true))]
    #[allow(clippy::too_many_arguments)]
    fn start_span(
        &self,
        py: Python<'_>,
        name: String,
        context: Option<&Bound<'_, PyAny>>,
        kind: Option<&Bound<'_, PyAny>>,
        attributes: Option<&Bound<'_, PyAny>>,
        links: Option<&Bound<'_, PyAny>>,
        start_time: Option<u64>,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> PyResult<Py<Span>> {
        let a = args(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        );
        start(py, &self.core, &self.scope, &a)
    }

    #[pyo3(signature = (name, context=None, kind=None, attributes=None, links=None, start_time=None, record_exception=true, set_status_on_exception=true, end_on_exit=true))]
    #[allow(clippy::too_many_arguments)]
    fn start_as_current_span(
        &self,
        name: String,
        context: Option<&Bound<'_, PyAny>>,
        kind: Option<&Bound<'_, PyAny>>,
        attributes: Option<&Bound<'_, PyAny>>,
        links: Option<&Bound<'_, PyAny>>,
        start_time: Option<u64>,
        record_exception: bool,
        set_status_on_exception: bool,
        end_on_exit: bool,
    ) -> CurrentSpan {
        CurrentSpan {
            core: self.core.clone(),
            scope: self.scope.clone(),
            args: args(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
            ),
            end_on_exit,
            active: Mutex::new(None),
        }
    }
}

/// What `start_as_current_span` returns: a context manager that starts the span on entry
/// and makes it current, or, called with a function, a decorator doing that per call.
#[pyclass(frozen, module = "ferrotel._native")]
pub struct CurrentSpan {
    core: Arc<ProviderCore>,
    scope: Arc<Scope>,
    args: SpanArgs,
    end_on_exit: bool,
    /// The span and the context token while inside the `with` block.
    active: Mutex<Option<(Py<Span>, Py<PyAny>)>>,
}

#[pymethods]
impl CurrentSpan {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<Span>> {
        let api = api::get(py)?;
        let span = start(py, &self.core, &self.scope, &self.args)?;
        let current = api.current_context(py)?;
        let context = api.context_with_span(py, &current, span.bind(py).as_any())?;
        let token = api.attach(py, &context)?;
        *lock(&self.active) = Some((span.clone_ref(py), token.unbind()));
        Ok(span)
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let Some((span, token)) = lock(&self.active).take() else {
            return Ok(false);
        };
        let api = api::get(py)?;
        api.detach(py, token.bind(py));
        let span = span.get();
        // As the API's use_span: only Exception subclasses are errors (not GeneratorExit...).
        if let Some(exc) = exc.filter(|e| e.is_instance_of::<PyException>()) {
            if span.is_recording_now() {
                if self.args.record_exception {
                    span.record_exception_event(py, exc, None, None, false)?;
                }
                if self.args.set_status_on_exception {
                    span.set_error_status(exc)?;
                }
            }
        }
        if self.end_on_exit {
            span.finish(None);
        }
        Ok(false)
    }

    /// Decorator form: `@tracer.start_as_current_span("name")`.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let api = api::get(slf.py())?;
        Ok(api.decorate.bind(slf.py()).call1((slf, func))?.unbind())
    }

    /// A new, unentered scope with the same arguments (one per decorated call).
    fn _fresh(&self, py: Python<'_>) -> CurrentSpan {
        CurrentSpan {
            core: self.core.clone(),
            scope: self.scope.clone(),
            args: self.args.clone_ref(py),
            end_on_exit: self.end_on_exit,
            active: Mutex::new(None),
        }
    }
}
