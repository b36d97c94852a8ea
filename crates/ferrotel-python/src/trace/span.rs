//! `Span`: a recording (or non-recording) span, registered with the API as an
//! `opentelemetry.trace.Span`.
//!
//! Frozen: every mutation goes through a `Mutex`, so a span shared by threads can never
//! raise "already borrowed". Values are converted to Rust once, when they are set. Bad
//! arguments are coerced or dropped and counted ([`crate::boundary::misuse`]), never raised.

use std::sync::{Arc, Mutex};

use ferrotel_config::SpanLimits;
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::{SpanData, SpanKind, StatusCode};
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::context::{read_span_context, SpanIds, TraceState};
use super::core::TraceCore;
use crate::boundary::api;
use crate::boundary::exception::{exception_attributes, exception_type};
use crate::boundary::gil_cell::{Reusable, Spare};
use crate::boundary::misuse::{note, Misuse};
use crate::boundary::value::{self, name_of, timestamp_of};

/// What leaving a `with` block by an exception does to the span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OnException {
    pub(crate) record: bool,
    pub(crate) set_status: bool,
}

/// Everything a span is made of.
pub(crate) struct SpanParts<'a> {
    pub(crate) ids: SpanIds,
    pub(crate) is_remote: bool,
    pub(crate) kind: SpanKind,
    /// The trace state carried over from the parent, if it had one.
    pub(crate) trace_state: Option<TraceState>,
    /// `None` for a non-recording span. Boxed: the record moves from start to export
    /// several times, as a pointer rather than a few hundred bytes.
    pub(crate) record: Option<Box<SpanData>>,
    pub(crate) core: Option<&'a Arc<TraceCore>>,
    pub(crate) on_exception: OnException,
}

/// A free list: most spans are made and freed within a `with` block; and a tracer gives
/// the object of its last span out again once nothing else holds it (`SpareSpan`).
#[pyclass(frozen, freelist = 64, module = "ferrotel._native", name = "Span")]
pub(crate) struct Span(Reusable<SpanFields>);

/// What a span is; read through `Span`'s `Deref`.
pub(crate) struct SpanFields {
    pub(crate) ids: SpanIds,
    pub(crate) is_remote: bool,
    /// Kept outside the record: instrumentations read `span.kind` as on upstream's SDK spans.
    pub(crate) kind: SpanKind,
    pub(crate) trace_state: Option<TraceState>,
    /// `None` once ended, or from the start for a non-recording span.
    pub(crate) record: Mutex<Option<Box<SpanData>>>,
    core: Option<Arc<TraceCore>>,
    on_exception: OnException,
    span_context: PyOnceLock<Py<PyAny>>,
}

impl std::ops::Deref for Span {
    type Target = SpanFields;

    fn deref(&self) -> &SpanFields {
        self.0.get()
    }
}

impl SpanFields {
    /// The fields of `parts`, holding `core` (its core, already counted) when given.
    fn new(parts: SpanParts<'_>, core: Option<Arc<TraceCore>>) -> SpanFields {
        SpanFields {
            ids: parts.ids,
            is_remote: parts.is_remote,
            kind: parts.kind,
            trace_state: parts.trace_state,
            record: Mutex::new(parts.record),
            core: core.or_else(|| parts.core.cloned()),
            on_exception: parts.on_exception,
            span_context: PyOnceLock::new(),
        }
    }
}

/// The span object a tracer made last, given out again for its next span when nothing else
/// holds it. Shared by a tracer and its scopes; it holds no reference back to them.
pub(crate) type SpareSpan = Spare<Span>;

impl Span {
    pub(crate) fn new(parts: SpanParts<'_>) -> Span {
        Span(Reusable::new(SpanFields::new(parts, None)))
    }

    /// A span object holding `parts`: `spare`'s when nothing else holds it, else a new one,
    /// kept as the next spare.
    #[allow(unsafe_code)]
    pub(crate) fn give(py: Python<'_>, spare: &SpareSpan, parts: SpanParts<'_>) -> PyResult<Py<Span>> {
        let Some(span) = spare.reusable(py) else {
            let span = Bound::new(py, Span::new(parts))?;
            spare.keep(&span);
            return Ok(span.unbind());
        };
        // SAFETY: `reusable` gave the span; the fields replaced are dropped below, after the
        // last use of `fields`.
        let fields = unsafe { span.get().0.get_mut() };
        // The same core stays without a count up and down: a locked instruction each, which
        // waits for every store before it (the span's record among them).
        let (kept, stale) = match (fields.core.take(), parts.core) {
            (Some(held), Some(core)) if Arc::ptr_eq(&held, core) => (Some(held), None),
            (held, _) => (None, held),
        };
        let previous = std::mem::replace(fields, SpanFields::new(parts, kept));
        // Dropped last: releasing their objects may run Python code.
        drop(previous);
        drop(stale);
        Ok(span.unbind())
    }

    /// A non-recording span standing for a remote parent (what a propagator extracts);
    /// the API's objects for it are only made if someone asks for its span context.
    pub(crate) fn remote(ids: SpanIds, members: Vec<(String, String)>) -> Span {
        Span::new(SpanParts {
            ids,
            is_remote: true,
            kind: SpanKind::Internal,
            trace_state: (!members.is_empty()).then_some(TraceState::Members(members)),
            record: None,
            core: None,
            on_exception: OnException {
                record: false,
                set_status: false,
            },
        })
    }

    /// Runs `f` on the recording, if the span still records (no-op otherwise).
    pub(crate) fn with_record(&self, f: impl FnOnce(&mut SpanData, &SpanLimits)) {
        let (Some(core), mut guard) = (&self.core, lock(&self.record)) else {
            return;
        };
        if let Some(data) = guard.as_mut() {
            f(data, &core.limits);
        }
    }

    /// Ends the span at `end_ns` (now if `None`): the first call wins.
    pub(crate) fn finish(&self, py: Python<'_>, end_ns: Option<u64>) {
        let taken = lock(&self.record).take();
        if let (Some(mut data), Some(core)) = (taken, &self.core) {
            data.end_ns = end_ns.unwrap_or_else(ferrotel_sdk::now_ns).max(data.start_ns);
            core.on_end(py, data);
        }
    }

    pub(crate) fn is_recording_now(&self) -> bool {
        lock(&self.record).is_some()
    }

    /// Whether an `exception` event is recorded already.
    pub(crate) fn has_exception_event(&self) -> bool {
        lock(&self.record)
            .as_ref()
            .is_some_and(|d| d.events.iter().any(|e| e.name == "exception"))
    }

    pub(crate) fn record_exception_event(
        &self,
        py: Python<'_>,
        exception: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<u64>,
        escaped: bool,
    ) -> PyResult<()> {
        if !self.is_recording_now() {
            return Ok(());
        }
        let mut attrs = exception_attributes(py, exception)?;
        attrs.push((
            "exception.escaped".to_string(),
            Value::Str(if escaped { "True" } else { "False" }.to_string()),
        ));
        for (k, v) in value::attributes(attributes) {
            match attrs.iter_mut().find(|(existing, _)| *existing == k) {
                Some(slot) => slot.1 = v,
                None => attrs.push((k, v)),
            }
        }
        let time = timestamp.unwrap_or_else(ferrotel_sdk::now_ns);
        self.with_record(|data, limits| data.add_event("exception".into(), time, attrs, limits));
        Ok(())
    }

    pub(crate) fn set_error_status(&self, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        let name: String = exception.get_type().getattr("__name__")?.extract()?;
        let description = format!("{name}: {}", exception.str()?);
        self.with_record(|data, _| data.set_status(StatusCode::Error, Some(description)));
        Ok(())
    }

    /// An exception leaving the span's scope: recorded and made its status, as the span
    /// was told to. `escaped` and which exceptions count differ between the span's own `with`
    /// block (every exception, escaped) and `start_as_current_span`'s (only `Exception`
    /// subclasses, as the API's `use_span`: not `GeneratorExit`...).
    pub(crate) fn on_exception_leaving(
        &self,
        py: Python<'_>,
        exc: &Bound<'_, PyAny>,
        from_use_span: bool,
    ) -> PyResult<()> {
        if from_use_span && !exc.is_instance_of::<PyException>() || !self.is_recording_now() {
            return Ok(());
        }
        if self.on_exception.record {
            self.record_exception_event(py, exc, None, None, !from_use_span)?;
        }
        if self.on_exception.set_status {
            self.set_error_status(exc)?;
        }
        Ok(())
    }

    /// Records an exception once (event, status ERROR, `error.type` its type), as the
    /// built-in instrumentations do for what the application did not handle.
    pub(crate) fn record_error(&self, py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        if !exception.is_instance_of::<PyException>() || self.has_exception_event() {
            return Ok(());
        }
        self.record_exception_event(py, exception, None, None, true)?;
        self.set_error_status(exception)?;
        let error_type = exception_type(exception)?;
        self.with_record(|data, limits| data.set_attribute("error.type".into(), Value::Str(error_type), limits));
        Ok(())
    }
}

/// The status code `set_status` was given (an API `Status`, a `StatusCode`, its number or
/// its name), or `None` when it is none of those.
fn status_code_of<'py>(status: &Bound<'py, PyAny>) -> Option<(StatusCode, Option<Bound<'py, PyAny>>)> {
    let (code, own_description) = match status.getattr("status_code") {
        Ok(code) => (code, status.getattr("description").ok()),
        Err(_) => (status.clone(), None),
    };
    let number = code
        .getattr("value")
        .and_then(|v| v.extract::<i64>())
        .or_else(|_| code.extract::<i64>())
        .ok()
        .or_else(|| {
            let name = code.extract::<String>().ok()?;
            ["UNSET", "OK", "ERROR"]
                .iter()
                .position(|n| n.eq_ignore_ascii_case(name.trim()))
                .map(|i| i as i64)
        })?;
    let code = match number {
        0 => StatusCode::Unset,
        1 => StatusCode::Ok,
        2 => StatusCode::Error,
        _ => return None,
    };
    Some((code, own_description.filter(|d| !d.is_none())))
}

#[pymethods]
impl Span {
    /// The API `SpanContext` of this span (made once, on first use).
    fn get_span_context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.span_context
            .get_or_try_init(py, || {
                let api = api::get(py)?;
                let flags = api.trace_flags_type.bind(py).call1((self.ids.flags,))?;
                let state = match &self.trace_state {
                    Some(s) => s.to_api(py, api)?,
                    None => api.default_trace_state.bind(py).clone(),
                };
                Ok::<_, PyErr>(
                    api.span_context_type
                        .bind(py)
                        .call1((self.ids.trace_id, self.ids.span_id, self.is_remote, flags, state))?
                        .unbind(),
                )
            })
            .map(|c| c.clone_ref(py))
    }

    fn set_attribute(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) {
        if let Some((key, value)) = value::attribute(key, value) {
            self.with_record(|data, limits| data.set_attribute(key, value, limits));
        }
    }

    fn set_attributes(&self, attributes: &Bound<'_, PyAny>) {
        let converted = value::attributes(Some(attributes));
        self.with_record(|data, limits| {
            for (k, v) in converted {
                data.set_attribute(k, v, limits);
            }
        });
    }

    #[pyo3(signature = (name, attributes=None, timestamp=None))]
    fn add_event(
        &self,
        name: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
    ) {
        let name = name_of(name);
        let attrs = value::attributes(attributes);
        let time = timestamp_of(timestamp).unwrap_or_else(ferrotel_sdk::now_ns);
        self.with_record(|data, limits| data.add_event(name, time, attrs, limits));
    }

    #[pyo3(signature = (context, attributes=None))]
    fn add_link(&self, py: Python<'_>, context: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>) {
        let read = match read_span_context(context) {
            Ok(read) => read,
            Err(error) => {
                note(py, Misuse::Context, || {
                    format!("add_link was given no span context: {error}")
                });
                return;
            }
        };
        if let Some(link) = read.link(py, value::attributes(attributes)) {
            self.with_record(|data, limits| data.add_link(link, limits));
        }
    }

    fn update_name(&self, name: &Bound<'_, PyAny>) {
        let name = name_of(name);
        self.with_record(|data, _| data.name = name);
    }

    fn is_recording(&self) -> bool {
        self.is_recording_now()
    }

    #[pyo3(signature = (status, description=None))]
    fn set_status(&self, py: Python<'_>, status: &Bound<'_, PyAny>, description: Option<&Bound<'_, PyAny>>) {
        let Some((code, own_description)) = status_code_of(status) else {
            note(py, Misuse::Status, || {
                format!(
                    "set_status was given {}, which is no status; ignored",
                    status.repr().map(|r| r.to_string()).unwrap_or_default()
                )
            });
            return;
        };
        let description = own_description
            .or_else(|| description.filter(|d| !d.is_none()).cloned())
            .and_then(|d| match d.cast::<PyString>() {
                Ok(text) => Some(value::string_of(text).into_owned()),
                Err(_) => {
                    note(py, Misuse::StatusDescription, || {
                        "a status description that is not text was dropped".to_string()
                    });
                    None
                }
            });
        self.with_record(|data, _| data.set_status(code, description));
    }

    #[pyo3(signature = (exception, attributes=None, timestamp=None, escaped=false))]
    fn record_exception(
        &self,
        py: Python<'_>,
        exception: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
        timestamp: Option<&Bound<'_, PyAny>>,
        escaped: bool,
    ) -> PyResult<()> {
        self.record_exception_event(py, exception, attributes, timestamp_of(timestamp), escaped)
    }

    #[pyo3(signature = (end_time=None))]
    fn end(&self, py: Python<'_>, end_time: Option<&Bound<'_, PyAny>>) {
        self.finish(py, timestamp_of(end_time));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// `with tracer.start_span(...) as span:` records an escaping exception and ends the span.
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if let Some(exc) = exc.filter(|e| !e.is_none()) {
            self.on_exception_leaving(py, exc, false)?;
        }
        self.finish(py, None);
        Ok(false)
    }

    /// The API `SpanKind` member, as upstream's SDK spans expose it.
    #[getter]
    fn kind(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(api::get(py)?
            .span_kind_type
            .bind(py)
            .call1((self.kind as i64,))?
            .unbind())
    }

    #[getter]
    fn name(&self) -> Option<String> {
        lock(&self.record).as_ref().map(|d| d.name.clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "ferrotel Span(trace_id=0x{:032x}, span_id=0x{:016x}, recording={})",
            self.ids.trace_id,
            self.ids.span_id,
            self.is_recording_now()
        )
    }
}

/// A finished span as a plain dict (for `InMemorySpanExporter`): ids as ints, times in ns.
pub(crate) fn span_dict<'py>(py: Python<'py>, span: &SpanData, resource: &Resource) -> PyResult<Bound<'py, PyDict>> {
    let attrs = |a: &Attributes| -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in a.iter() {
            d.set_item(k, value::to_python(py, v)?)?;
        }
        Ok(d)
    };
    let d = PyDict::new(py);
    d.set_item("name", &span.name)?;
    d.set_item("trace_id", span.trace_id)?;
    d.set_item("span_id", span.span_id)?;
    d.set_item("parent_span_id", span.parent_span_id)?;
    d.set_item("parent_is_remote", span.parent_is_remote)?;
    d.set_item("trace_flags", span.trace_flags)?;
    d.set_item("trace_state", &span.trace_state)?;
    d.set_item("kind", span.kind.name())?;
    d.set_item("start_time", span.start_ns)?;
    d.set_item("end_time", span.end_ns)?;
    d.set_item("attributes", attrs(&span.attributes)?)?;
    d.set_item("dropped_attributes", span.attributes.dropped)?;
    let events = PyList::empty(py);
    for e in &span.events {
        let ed = PyDict::new(py);
        ed.set_item("name", &e.name)?;
        ed.set_item("timestamp", e.time_ns)?;
        ed.set_item("attributes", attrs(&e.attributes)?)?;
        events.append(ed)?;
    }
    d.set_item("events", events)?;
    d.set_item("dropped_events", span.dropped_events)?;
    let links = PyList::empty(py);
    for l in &span.links {
        let ld = PyDict::new(py);
        ld.set_item("trace_id", l.trace_id)?;
        ld.set_item("span_id", l.span_id)?;
        ld.set_item("attributes", attrs(&l.attributes)?)?;
        links.append(ld)?;
    }
    d.set_item("links", links)?;
    d.set_item("dropped_links", span.dropped_links)?;
    let status = match span.status.code {
        StatusCode::Unset => "UNSET",
        StatusCode::Ok => "OK",
        StatusCode::Error => "ERROR",
    };
    d.set_item("status", PyTuple::new(py, [status, span.status.description.as_str()])?)?;
    let scope = PyDict::new(py);
    scope.set_item("name", &span.scope.name)?;
    scope.set_item("version", &span.scope.version)?;
    scope.set_item("schema_url", &span.scope.schema_url)?;
    scope.set_item("attributes", attrs(&span.scope.attributes)?)?;
    d.set_item("scope", scope)?;
    d.set_item("resource", attrs(&resource.attributes)?)?;
    Ok(d)
}
