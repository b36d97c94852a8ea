//! `Span`: a recording (or non-recording) span, registered with the API as a
//! `opentelemetry.trace.Span`.
//!
//! Frozen: every mutation goes through a `Mutex`, so a span shared by threads can never
//! raise "already borrowed". Values are converted to Rust once, when they are set.

use std::sync::{Arc, Mutex};

use ferrotel_sdk::sync::lock;

use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::{Link, SpanData, SpanKind, StatusCode};
use ferrotel_sdk::value::Value;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::api;
use super::provider::ProviderCore;
use super::value;

/// A trace state in whichever form it arrived: the API's object (from an API span context)
/// or parsed members (from ferrotel's propagators). The other form is made only if asked.
pub enum TraceState {
    Api(Py<PyAny>),
    Members(Vec<(String, String)>),
}

impl TraceState {
    pub fn clone_ref(&self, py: Python<'_>) -> TraceState {
        match self {
            TraceState::Api(state) => TraceState::Api(state.clone_ref(py)),
            TraceState::Members(members) => TraceState::Members(members.clone()),
        }
    }

    pub fn members(&self, py: Python<'_>) -> Vec<(String, String)> {
        match self {
            TraceState::Members(members) => members.clone(),
            TraceState::Api(state) => state
                .bind(py)
                .call_method0("items")
                .and_then(|items| Ok(items.try_iter()?.flatten().filter_map(|p| p.extract().ok()).collect()))
                .unwrap_or_default(),
        }
    }

    fn header(&self, py: Python<'_>) -> String {
        match self {
            TraceState::Members(members) => members
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            TraceState::Api(state) => state
                .bind(py)
                .call_method0("to_header")
                .and_then(|h| h.extract())
                .unwrap_or_default(),
        }
    }

    fn to_api<'py>(&self, py: Python<'py>, api: &api::Api) -> PyResult<Bound<'py, PyAny>> {
        match self {
            TraceState::Api(state) => Ok(state.bind(py).clone()),
            TraceState::Members(members) => {
                let pairs = pyo3::types::PyList::new(py, members.iter().map(|(k, v)| PyTuple::new(py, [k, v]).ok()))?;
                api.trace_state_type.bind(py).call1((pairs,))
            }
        }
    }
}

#[pyclass(frozen, module = "ferrotel._native", name = "Span")]
pub struct Span {
    pub trace_id: u128,
    pub span_id: u64,
    pub trace_flags: u8,
    pub is_remote: bool,
    /// Kept outside the record: instrumentations read `span.kind` as on upstream's SDK spans.
    pub kind: SpanKind,
    /// The trace state carried over from the parent, if it had one.
    pub trace_state: Option<TraceState>,
    /// `None` once ended, or from the start for a non-recording span.
    pub record: Mutex<Option<SpanData>>,
    pub core: Option<Arc<ProviderCore>>,
    pub record_exception_on_exit: bool,
    pub set_status_on_exception: bool,
    span_context: PyOnceLock<Py<PyAny>>,
}

impl Span {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        trace_id: u128,
        span_id: u64,
        trace_flags: u8,
        kind: SpanKind,
        trace_state: Option<TraceState>,
        record: Option<SpanData>,
        core: Option<Arc<ProviderCore>>,
        record_exception_on_exit: bool,
        set_status_on_exception: bool,
    ) -> Span {
        Span {
            trace_id,
            span_id,
            trace_flags,
            is_remote: false,
            kind,
            trace_state,
            record: Mutex::new(record),
            core,
            record_exception_on_exit,
            set_status_on_exception,
            span_context: PyOnceLock::new(),
        }
    }

    /// A non-recording span standing for a remote parent (what a propagator extracts);
    /// the API's objects for it are only made if someone asks for its span context.
    pub fn remote(trace_id: u128, span_id: u64, trace_flags: u8, members: Vec<(String, String)>) -> Span {
        let trace_state = (!members.is_empty()).then_some(TraceState::Members(members));
        let mut span = Span::new(
            trace_id,
            span_id,
            trace_flags,
            SpanKind::Internal,
            trace_state,
            None,
            None,
            false,
            false,
        );
        span.is_remote = true;
        span
    }

    /// Runs `f` on the recording, if the span still records (no-op otherwise).
    pub fn with_record(&self, f: impl FnOnce(&mut SpanData, &ferrotel_config::SpanLimits)) {
        let (Some(core), mut guard) = (&self.core, lock(&self.record)) else {
            return;
        };
        if let Some(data) = guard.as_mut() {
            f(data, &core.limits);
        }
    }

    /// Ends the span at `end_ns` (now if `None`): the first call wins.
    pub fn finish(&self, end_ns: Option<u64>) {
        let taken = lock(&self.record).take();
        if let (Some(mut data), Some(core)) = (taken, &self.core) {
            data.end_ns = end_ns.unwrap_or_else(ferrotel_sdk::now_ns).max(data.start_ns);
            if data.is_sampled() {
                core.on_end(data);
            }
        }
    }

    pub fn is_recording_now(&self) -> bool {
        lock(&self.record).is_some()
    }

    pub fn record_exception_event(
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

    pub fn set_error_status(&self, exception: &Bound<'_, PyAny>) -> PyResult<()> {
        let name: String = exception.get_type().getattr("__name__")?.extract()?;
        let description = format!("{name}: {}", exception.str()?);
        self.with_record(|data, _| data.set_status(StatusCode::Error, Some(description)));
        Ok(())
    }
}

/// `(code, description)` from an API `Status` or a bare `StatusCode`.
fn status_of(status: &Bound<'_, PyAny>, description: Option<String>) -> PyResult<(StatusCode, Option<String>)> {
    let (code_obj, description) = match status.getattr("status_code") {
        Ok(code) => {
            let own: Option<String> = status.getattr("description")?.extract()?;
            (code, own.or(description))
        }
        Err(_) => (status.clone(), description),
    };
    let code = match code_obj
        .getattr("value")
        .and_then(|v| v.extract::<i64>())
        .or_else(|_| code_obj.extract::<i64>())?
    {
        1 => StatusCode::Ok,
        2 => StatusCode::Error,
        _ => StatusCode::Unset,
    };
    Ok((code, description))
}

/// The fields of any span context object (the API's `SpanContext`, or one like it).
pub struct SpanContextFields {
    pub trace_id: u128,
    pub span_id: u64,
    pub trace_flags: u8,
    /// The API `TraceState` object, if any.
    pub trace_state: Option<Py<PyAny>>,
    pub is_remote: bool,
    pub is_valid: bool,
}

pub fn read_span_context(ctx: &Bound<'_, PyAny>) -> PyResult<SpanContextFields> {
    Ok(SpanContextFields {
        trace_id: ctx.getattr("trace_id")?.extract()?,
        span_id: ctx.getattr("span_id")?.extract()?,
        trace_flags: ctx.getattr("trace_flags")?.extract::<i64>().map(|f| f as u8)?,
        trace_state: ctx
            .getattr("trace_state")
            .ok()
            .filter(|s| !s.is_none())
            .map(Bound::unbind),
        is_remote: ctx.getattr("is_remote")?.extract()?,
        is_valid: ctx.getattr("is_valid")?.extract()?,
    })
}

impl SpanContextFields {
    /// A link to this context with `attributes`, or `None` when there is nothing to link
    /// (an invalid context without attributes).
    pub fn link(&self, py: Python<'_>, attributes: Vec<(String, Value)>) -> Option<Link> {
        if !self.is_valid && attributes.is_empty() {
            return None;
        }
        Some(Link {
            trace_id: self.trace_id,
            span_id: self.span_id,
            trace_flags: self.trace_flags,
            trace_state: trace_state_header(py, &self.trace_state.as_ref().map(|s| TraceState::Api(s.clone_ref(py)))),
            is_remote: self.is_remote,
            attributes: ferrotel_sdk::value::Attributes {
                items: attributes,
                dropped: 0,
            },
        })
    }
}

pub fn trace_state_header(py: Python<'_>, state: &Option<TraceState>) -> String {
    state.as_ref().map(|s| s.header(py)).unwrap_or_default()
}

fn timestamp_arg(ts: Option<&Bound<'_, PyAny>>) -> Option<u64> {
    ts.filter(|t| !t.is_none()).and_then(|t| t.extract::<u64>().ok())
}

#[pymethods]
impl Span {
    /// The API `SpanContext` of this span (made once, on first use).
    fn get_span_context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.span_context
            .get_or_try_init(py, || {
                let api = api::get(py)?;
                let flags = api.trace_flags_type.bind(py).call1((self.trace_flags,))?;
                let state = match &self.trace_state {
                    Some(s) => s.to_api(py, api)?,
                    None => api.default_trace_state.bind(py).clone(),
                };
                Ok::<_, PyErr>(
                    api.span_context_type
                        .bind(py)
                        .call1((self.trace_id, self.span_id, self.is_remote, flags, state))?
                        .unbind(),
                )
            })
            .map(|c| c.clone_ref(py))
    }

    fn set_attribute(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) {
        let (Ok(key), Some(value)) = (key.cast::<PyString>(), value::to_value(value)) else {
            return;
        };
        let Ok(key) = key.to_str() else { return };
        self.with_record(|data, limits| data.set_attribute(key.to_string(), value, limits));
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
    fn add_event(&self, name: String, attributes: Option<&Bound<'_, PyAny>>, timestamp: Option<&Bound<'_, PyAny>>) {
        let attrs = value::attributes(attributes);
        let time = timestamp_arg(timestamp).unwrap_or_else(ferrotel_sdk::now_ns);
        self.with_record(|data, limits| data.add_event(name, time, attrs, limits));
    }

    #[pyo3(signature = (context, attributes=None))]
    fn add_link(
        &self,
        py: Python<'_>,
        context: &Bound<'_, PyAny>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if let Some(link) = read_span_context(context)?.link(py, value::attributes(attributes)) {
            self.with_record(|data, limits| data.add_link(link, limits));
        }
        Ok(())
    }

    fn update_name(&self, name: String) {
        self.with_record(|data, _| data.name = name);
    }

    fn is_recording(&self) -> bool {
        self.is_recording_now()
    }

    #[pyo3(signature = (status, description=None))]
    fn set_status(&self, status: &Bound<'_, PyAny>, description: Option<String>) -> PyResult<()> {
        let (code, description) = status_of(status, description)?;
        self.with_record(|data, _| data.set_status(code, description));
        Ok(())
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
        self.record_exception_event(py, exception, attributes, timestamp_arg(timestamp), escaped)
    }

    #[pyo3(signature = (end_time=None))]
    fn end(&self, end_time: Option<&Bound<'_, PyAny>>) {
        self.finish(timestamp_arg(end_time));
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
            if self.record_exception_on_exit {
                self.record_exception_event(py, exc, None, None, true)?;
            }
            if self.set_status_on_exception {
                self.set_error_status(exc)?;
            }
        }
        self.finish(None);
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
            self.trace_id,
            self.span_id,
            self.is_recording_now()
        )
    }
}

/// A finished span as a plain dict (for `InMemorySpanExporter`): ids as ints, times in ns.
pub fn span_dict<'py>(py: Python<'py>, span: &SpanData, resource: &Resource) -> PyResult<Bound<'py, PyDict>> {
    let attrs = |a: &ferrotel_sdk::value::Attributes| -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &a.items {
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

/// `(trace_id, span_id, sampled)` of the current span as lower-case hex, or `None` when
/// there is none (or the API is not in use yet). Called for every log record by the
/// logging correlation, so it reads ferrotel's spans without building API objects.
#[pyfunction]
pub fn current_span_ids(py: Python<'_>) -> PyResult<Option<(String, String, bool)>> {
    Ok(span_ids_in(py, None)?
        .map(|(trace_id, span_id, flags)| (format!("{trace_id:032x}"), format!("{span_id:016x}"), flags & 1 == 1)))
}

/// `exception.type` (module-qualified unless builtin), `.message` and `.stacktrace`, as
/// exception events and log records carry them.
pub fn exception_attributes(py: Python<'_>, exception: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Value)>> {
    let kind = exception.get_type();
    let module: String = kind.getattr("__module__").and_then(|m| m.extract()).unwrap_or_default();
    let qualname: String = kind.getattr("__qualname__")?.extract()?;
    let exception_type = if module.is_empty() || module == "builtins" {
        qualname
    } else {
        format!("{module}.{qualname}")
    };
    let message = exception.str().map(|s| s.to_string()).unwrap_or_default();
    let format_exception = match api::get(py) {
        Ok(api) => api.format_exception.bind(py).clone(),
        Err(_) => py.import("traceback")?.getattr("format_exception")?,
    };
    let stacktrace: String = format_exception
        .call1((exception,))?
        .cast::<PyList>()
        .map(|l| l.iter().filter_map(|s| s.extract::<String>().ok()).collect())
        .unwrap_or_default();
    Ok(vec![
        ("exception.type".to_string(), Value::Str(exception_type)),
        ("exception.message".to_string(), Value::Str(message)),
        ("exception.stacktrace".to_string(), Value::Str(stacktrace)),
    ])
}

/// `(trace_id, span_id, trace_flags)` of the span in `context` (the current context when
/// `None`), if there is a valid one. Before the API is imported there is none.
pub fn span_ids_in(py: Python<'_>, context: Option<&Bound<'_, PyAny>>) -> PyResult<Option<(u128, u64, u8)>> {
    let Ok(api) = api::get(py) else { return Ok(None) };
    let context = match context {
        Some(context) => context.clone(),
        None => api.current_context(py)?,
    };
    let Ok(dict) = context.cast::<PyDict>() else {
        return Ok(None);
    };
    let Some(span) = dict.get_item(api.span_key.bind(py))? else {
        return Ok(None);
    };
    if let Ok(ours) = span.cast::<Span>() {
        let s = ours.get();
        return Ok(Some((s.trace_id, s.span_id, s.trace_flags)));
    }
    let c = read_span_context(&span.call_method0("get_span_context")?)?;
    Ok(c.is_valid.then_some((c.trace_id, c.span_id, c.trace_flags)))
}
