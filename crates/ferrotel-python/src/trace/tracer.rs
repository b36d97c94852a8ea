//! `Tracer`: starts spans, sampling in Rust, and makes them current through the API's own
//! context variable, so `opentelemetry.trace.get_current_span()` sees them everywhere.

use std::sync::Arc;

use ferrotel_propagation::traceparent;
use ferrotel_sdk::sampler::Decision;
use ferrotel_sdk::span::{Link, ScopeRef, SpanData, SpanKind, Status};
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::context::{read_span_context, trace_state_header, Parent, SpanIds};
use super::core::TraceCore;
use super::current::parent_in;
use super::plugins;
use super::sampling::Candidate;
use super::span::{OnException, Span, SpanParts, SpareSpan};
use crate::boundary::api;
use crate::boundary::gil_cell::{GilCell, Reusable, Spare};
use crate::boundary::misuse::{note, Misuse};
use crate::boundary::value::{self, name_of, timestamp_of};
use crate::boundary::with_statement::{self, ScopeCallSlot, ScopeStep, WithScope};

/// What a new span is made of, apart from its parent.
pub(crate) struct NewSpan {
    pub(crate) name: String,
    pub(crate) kind: SpanKind,
    pub(crate) attributes: Vec<(String, Value)>,
    /// Attributes held by reference instead of `attributes` (a database statement's, made
    /// once per statement text): no copy per span while they fit the limits.
    pub(crate) shared_attributes: Option<Arc<[(String, Value)]>>,
    pub(crate) links: Vec<Link>,
    pub(crate) start_ns: Option<u64>,
    pub(crate) on_exception: OnException,
}

impl NewSpan {
    /// A span as the built-in instrumentations start them: now, no links, exceptions
    /// recorded and made its status.
    pub(crate) fn instrumentation(name: String, kind: SpanKind, attributes: Vec<(String, Value)>) -> NewSpan {
        NewSpan {
            name,
            kind,
            attributes,
            shared_attributes: None,
            links: Vec::new(),
            start_ns: None,
            on_exception: OnException {
                record: true,
                set_status: true,
            },
        }
    }
}

/// Samples and creates a span under `parent` (none: a new trace). `parent_context`: the
/// context the span was started with, if one was given, for Python processors' `on_start`.
pub(crate) fn create(
    py: Python<'_>,
    core: &Arc<TraceCore>,
    scope: &ScopeRef,
    spare: &SpareSpan,
    parent: Option<Parent>,
    parent_context: Option<&Bound<'_, PyAny>>,
    new: NewSpan,
) -> PyResult<Py<Span>> {
    let trace_id = parent
        .as_ref()
        .map_or_else(|| core.ids.trace_id(py), |p| p.ids.trace_id);
    let given = new.shared_attributes.as_deref().unwrap_or(&new.attributes);
    let verdict = core.sampling.decide(
        py,
        &Candidate {
            parent: parent.as_ref(),
            parent_context,
            trace_id,
            name: &new.name,
            kind: new.kind,
            attributes: given,
        },
    );
    let span_id = core.ids.span_id(py);
    let recording = verdict.decision != Decision::Drop;
    let sampled = verdict.decision == Decision::RecordAndSample;
    // Trace Context Level 2: whether the trace id is random is the trace's, so it is the
    // parent's flag.
    let random = parent
        .as_ref()
        .map_or(0, |p| p.ids.flags & traceparent::RANDOM_TRACE_ID);
    let flags = u8::from(sampled) | random;
    let trace_state = verdict.trace_state.or_else(|| {
        parent
            .as_ref()
            .and_then(|p| p.trace_state.as_ref().map(|t| t.clone_ref(py)))
    });
    let record = recording.then(|| {
        let limits = &core.limits;
        let mut data = Box::new(SpanData {
            trace_id,
            span_id,
            parent_span_id: parent.as_ref().map(|p| p.ids.span_id),
            parent_is_remote: parent.as_ref().is_some_and(|p| p.is_remote),
            trace_flags: flags,
            trace_state: trace_state_header(py, trace_state.as_ref()),
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
        });
        let (count, length) = (limits.attribute_count, limits.attribute_value_length);
        match new.shared_attributes {
            // Limits on value length would cut them: those spans take a copy.
            Some(shared) if shared.len() <= count && length.is_none() => data.attributes = Attributes::shared(shared),
            Some(shared) => data.attributes.extend(shared.to_vec(), count, length),
            None => data.attributes.extend(new.attributes, count, length),
        }
        data.attributes.extend(verdict.attributes, count, length);
        for link in new.links {
            data.add_link(link, limits);
        }
        data
    });
    let parts = SpanParts {
        ids: SpanIds {
            trace_id,
            span_id,
            flags,
        },
        is_remote: false,
        kind: new.kind,
        trace_state,
        record,
        core: Some(core),
        on_exception: new.on_exception,
    };
    let span = Span::give(py, spare, parts)?;
    if recording && !core.python.is_empty() {
        plugins::on_start(py, &core.python, span.bind(py).as_any(), parent_context);
    }
    Ok(span)
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

/// The links given to `start_span`: each an API `Link` (`.context`, `.attributes`);
/// anything unreadable is skipped and counted.
fn links_of(py: Python<'_>, given: Option<&Bound<'_, PyAny>>) -> Vec<Link> {
    let Some(given) = given.filter(|l| !l.is_none()) else {
        return Vec::new();
    };
    let Ok(items) = given.try_iter() else {
        note(py, Misuse::Context, || {
            "links that are not a sequence were ignored".into()
        });
        return Vec::new();
    };
    let mut links = Vec::new();
    for link in items.flatten() {
        let attributes = value::attributes(link.getattr("attributes").ok().as_ref());
        match link.getattr("context").and_then(|c| read_span_context(&c)) {
            Ok(context) => links.extend(context.link(py, attributes)),
            Err(error) => note(py, Misuse::Context, || {
                format!("a link without a span context was ignored: {error}")
            }),
        }
    }
    links
}

/// The arguments of `start_span` / `start_as_current_span`, kept by a scope so its
/// decorator form can start a fresh span per call. The name, attributes and links stay Python
/// objects until a span starts: converting them is the start's work, done once per span.
struct SpanArgs {
    name: Py<PyAny>,
    context: Option<Py<PyAny>>,
    kind: SpanKind,
    attributes: Option<Py<PyAny>>,
    links: Option<Py<PyAny>>,
    start_time: Option<u64>,
    on_exception: OnException,
}

impl SpanArgs {
    #[allow(clippy::too_many_arguments)] // the API's own signature, read once here
    fn read(
        name: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
        kind: Option<&Bound<'_, PyAny>>,
        attributes: Option<&Bound<'_, PyAny>>,
        links: Option<&Bound<'_, PyAny>>,
        start_time: Option<&Bound<'_, PyAny>>,
        on_exception: OnException,
    ) -> SpanArgs {
        let kept = |obj: Option<&Bound<'_, PyAny>>| obj.filter(|o| !o.is_none()).map(|o| o.clone().unbind());
        SpanArgs {
            name: name.clone().unbind(),
            context: kept(context),
            kind: kind_of(kind),
            attributes: kept(attributes),
            links: kept(links),
            start_time: timestamp_of(start_time),
            on_exception,
        }
    }

    fn clone_ref(&self, py: Python<'_>) -> SpanArgs {
        SpanArgs {
            name: self.name.clone_ref(py),
            context: self.context.as_ref().map(|c| c.clone_ref(py)),
            kind: self.kind,
            attributes: self.attributes.as_ref().map(|a| a.clone_ref(py)),
            links: self.links.as_ref().map(|l| l.clone_ref(py)),
            start_time: self.start_time,
            on_exception: self.on_exception,
        }
    }

    /// Starts the span; `current`: the current context when the caller has read it already.
    fn start(
        &self,
        py: Python<'_>,
        core: &Arc<TraceCore>,
        scope: &ScopeRef,
        spare: &SpareSpan,
        current: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Span>> {
        let context = self.context.as_ref().map(|c| c.bind(py));
        let parent = parent_in(py, context.or(current))?;
        let new = NewSpan {
            name: name_of(self.name.bind(py)),
            kind: self.kind,
            attributes: value::attributes(self.attributes.as_ref().map(|a| a.bind(py))),
            shared_attributes: None,
            links: links_of(py, self.links.as_ref().map(|l| l.bind(py))),
            start_ns: self.start_time,
            on_exception: self.on_exception,
        };
        create(py, core, scope, spare, parent, context, new)
    }
}

/// Registered with the API as an `opentelemetry.trace.Tracer`.
#[pyclass(frozen, module = "ferrotel._native", name = "Tracer")]
pub(crate) struct Tracer {
    pub(crate) core: Arc<TraceCore>,
    pub(crate) scope: ScopeRef,
    /// The scope `start_as_current_span` last made, given out again once nothing else holds
    /// it: otherwise one is made and freed per `with` block.
    spare: Spare<CurrentSpan>,
    /// The span object this tracer (or one of its scopes) made last, likewise.
    pub(crate) spare_span: Arc<SpareSpan>,
}

impl Tracer {
    pub(crate) fn new(core: Arc<TraceCore>, scope: ScopeRef) -> Tracer {
        Tracer {
            core,
            scope,
            spare: Spare::default(),
            spare_span: Arc::default(),
        }
    }
}

#[pymethods]
impl Tracer {
    #[pyo3(signature = (name, context=None, kind=None, attributes=None, links=None, start_time=None, record_exception=true, set_status_on_exception=true))]
    #[allow(clippy::too_many_arguments)] // the API's signature
    fn start_span(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
        kind: Option<&Bound<'_, PyAny>>,
        attributes: Option<&Bound<'_, PyAny>>,
        links: Option<&Bound<'_, PyAny>>,
        start_time: Option<&Bound<'_, PyAny>>,
        record_exception: bool,
        set_status_on_exception: bool,
    ) -> PyResult<Py<Span>> {
        let on_exception = OnException {
            record: record_exception,
            set_status: set_status_on_exception,
        };
        let args = SpanArgs::read(name, context, kind, attributes, links, start_time, on_exception);
        args.start(py, &self.core, &self.scope, &self.spare_span, None)
    }

    #[pyo3(signature = (name, context=None, kind=None, attributes=None, links=None, start_time=None, record_exception=true, set_status_on_exception=true, end_on_exit=true))]
    #[allow(clippy::too_many_arguments)] // the API's signature
    #[allow(unsafe_code)]
    fn start_as_current_span<'py>(
        &self,
        name: &Bound<'py, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
        kind: Option<&Bound<'_, PyAny>>,
        attributes: Option<&Bound<'_, PyAny>>,
        links: Option<&Bound<'_, PyAny>>,
        start_time: Option<&Bound<'_, PyAny>>,
        record_exception: bool,
        set_status_on_exception: bool,
        end_on_exit: bool,
    ) -> PyResult<Bound<'py, CurrentSpan>> {
        let on_exception = OnException {
            record: record_exception,
            set_status: set_status_on_exception,
        };
        let args = SpanArgs::read(name, context, kind, attributes, links, start_time, on_exception);
        let py = name.py();
        if let Some(scope) = self.spare.reusable(py) {
            // SAFETY: `reusable` gave the scope; the arguments replaced are dropped after.
            let previous = std::mem::replace(unsafe { scope.get().args.get_mut() }, (args, end_on_exit));
            // Released last: freeing them may run Python code that starts spans.
            drop(previous);
            return Ok(scope);
        }
        let scope = Bound::new(
            py,
            CurrentSpan::new(
                self.core.clone(),
                self.scope.clone(),
                self.spare_span.clone(),
                args,
                end_on_exit,
            ),
        )?;
        SCOPE_CLASS_READY.get_or_init(py, || with_statement::ready(&scope, &scope.get().call));
        self.spare.keep(&scope);
        Ok(scope)
    }
}

/// Set once `CurrentSpan`'s class takes the `with` statement's short way.
static SCOPE_CLASS_READY: PyOnceLock<()> = PyOnceLock::new();

/// What `start_as_current_span` returns: a context manager that starts the span on entry
/// and makes it current, or, called with a function, a decorator doing that per call.
/// Its tracer keeps the last one made and gives it out again (`Tracer::spare`); a free list
/// serves the others (nested blocks, scopes kept by their caller).
#[pyclass(frozen, freelist = 64, module = "ferrotel._native")]
pub(crate) struct CurrentSpan {
    core: Arc<TraceCore>,
    scope: ScopeRef,
    spare_span: Arc<SpareSpan>,
    /// The span's arguments and `end_on_exit`.
    args: Reusable<(SpanArgs, bool)>,
    /// The span and the context token while inside the `with` block.
    active: GilCell<Option<(Py<Span>, Py<PyAny>)>>,
    call: ScopeCallSlot,
}

impl CurrentSpan {
    fn new(
        core: Arc<TraceCore>,
        scope: ScopeRef,
        spare_span: Arc<SpareSpan>,
        args: SpanArgs,
        end_on_exit: bool,
    ) -> CurrentSpan {
        CurrentSpan {
            core,
            scope,
            spare_span,
            args: Reusable::new((args, end_on_exit)),
            active: GilCell::new(None),
            call: ScopeCallSlot::of::<CurrentSpan>(),
        }
    }
}

#[pymethods]
impl CurrentSpan {
    /// Read on the class: see `with_statement`.
    #[classattr]
    fn __enter__() -> ScopeStep {
        ScopeStep
    }

    #[classattr]
    fn __exit__() -> ScopeStep {
        ScopeStep
    }

    /// Decorator form: `@tracer.start_as_current_span("name")`.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        <Self as WithScope>::call_one(slf, func)
    }

    /// A new, unentered scope with the same arguments (one per decorated call).
    fn _fresh(&self, py: Python<'_>) -> CurrentSpan {
        CurrentSpan::new(
            self.core.clone(),
            self.scope.clone(),
            self.spare_span.clone(),
            self.args.get().0.clone_ref(py),
            self.args.get().1,
        )
    }
}

impl WithScope for CurrentSpan {
    fn enter(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let (py, this) = (slf.py(), slf.get());
        let api = api::get(py)?;
        // Read once: the parent is in it, and the new context is made from it.
        let current = api.current_context(py)?;
        let span = this
            .args
            .get()
            .0
            .start(py, &this.core, &this.scope, &this.spare_span, Some(&current))?;
        let context = api.context_with_span(py, &current, span.bind(py).as_any())?;
        let token = api.attach(py, &context)?;
        // A scope entered twice without leaving: the earlier span and token are let go.
        let earlier = this.active.replace(py, Some((span.clone_ref(py), token.unbind())));
        drop(earlier);
        Ok(span.into_any())
    }

    fn exit(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let (py, this) = (slf.py(), slf.get());
        let Some((span, token)) = this.active.take(py) else {
            return Ok(false);
        };
        api::get(py)?.detach(py, token.bind(py));
        let span = span.get();
        if let Some(exc) = exc {
            span.on_exception_leaving(py, exc, true)?;
        }
        if this.args.get().1 {
            span.finish(py, None);
        }
        Ok(false)
    }

    fn call_one(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let api = api::get(slf.py())?;
        Ok(api.decorate.bind(slf.py()).call1((slf, func))?.unbind())
    }
}
