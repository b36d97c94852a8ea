//! FastAPI's own operation spans (`fastapi.dependencies`, `.endpoint`, `.serialization`,
//! `.background_task`), made natively when the request's telemetry traces through ferrotel's
//! tracer: FastAPI's Python context manager costs several times a span; this is one call to
//! find the request's telemetry and one each to enter and leave, with FastAPI's names,
//! attributes and error rules.

use std::sync::Mutex;

use ferrotel_sdk::span::{SpanKind, StatusCode};
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use crate::boundary::api;
use crate::boundary::exception::exception_type;
use crate::trace::current::parent_in;
use crate::trace::span::{OnException, Span};
use crate::trace::tracer::{create, NewSpan, Tracer};

/// Stands in for FastAPI's `_operation(*, name, function=None)`: what FastAPI needs to
/// decide as it does, bound once when the FastAPI instrumentation patches it.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct FastapiOperations {
    /// The context key FastAPI keeps a request's telemetry under, and that telemetry's type.
    key: Py<PyString>,
    telemetry_type: Py<PyType>,
    /// FastAPI's `nullcontext()` for a request it does not trace, and its own context
    /// manager, for a tracer that is not ferrotel's.
    no_operation: Py<PyAny>,
    traced_operation: Py<PyAny>,
    /// The exceptions FastAPI does not count as an operation's error (HTTP and validation
    /// errors; a websocket closed normally).
    expected: Py<PyTuple>,
    websocket_disconnect: Py<PyType>,
    /// `code.function.name` of the functions seen last: a request's three operations name
    /// the same endpoint. Bounded; the functions are held so their addresses stay theirs.
    function_names: Mutex<Vec<(Py<PyAny>, String)>>,
}

/// How many functions' names `FastapiOperations` keeps.
const FUNCTION_NAMES: usize = 64;

#[pymethods]
impl FastapiOperations {
    #[new]
    fn new(
        key: Py<PyString>,
        telemetry_type: Py<PyType>,
        no_operation: Py<PyAny>,
        traced_operation: Py<PyAny>,
        expected: Py<PyTuple>,
        websocket_disconnect: Py<PyType>,
    ) -> Self {
        FastapiOperations {
            key,
            telemetry_type,
            no_operation,
            traced_operation,
            expected,
            websocket_disconnect,
            function_names: Mutex::new(Vec::new()),
        }
    }

    #[pyo3(signature = (*, name, function=None))]
    fn __call__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, PyString>,
        function: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let context = api::get(py)?.current_context(py)?;
        let telemetry = context
            .cast::<PyDict>()
            .ok()
            .and_then(|c| c.get_item(this.key.bind(py)).ok().flatten())
            .filter(|t| t.is_instance(this.telemetry_type.bind(py)).unwrap_or(false));
        let Some(telemetry) = telemetry else {
            return Ok(this.no_operation.clone_ref(py));
        };
        let tracer = telemetry.getattr(intern!(py, "tracer"))?;
        if tracer.is_none() {
            return Ok(this.no_operation.clone_ref(py));
        }
        let Ok(tracer) = tracer.cast::<Tracer>() else {
            let kwargs = PyDict::new(py);
            kwargs.set_item("request_telemetry", &telemetry)?;
            kwargs.set_item("name", name)?;
            kwargs.set_item("function", function)?;
            return Ok(this.traced_operation.bind(py).call((), Some(&kwargs))?.unbind());
        };
        let name = name.to_str()?;
        let function_name = function.map(|f| this.function_name(f)).transpose()?;
        let operation = FastapiOperation {
            operations: slf.clone().unbind(),
            tracer: tracer.clone().unbind(),
            name: format!("fastapi.{name}"),
            function_name,
            background: name == "background_task",
            active: Mutex::new(None),
        };
        Ok(Bound::new(py, operation)?.into_any().unbind())
    }
}

impl FastapiOperations {
    fn function_name(&self, function: &Bound<'_, PyAny>) -> PyResult<String> {
        if let Some((_, name)) = lock(&self.function_names).iter().find(|(f, _)| f.is(function)) {
            return Ok(name.clone());
        }
        // Not under the lock: reading the names runs Python, which may switch threads.
        let name = code_function_name(function)?;
        let mut names = lock(&self.function_names);
        if names.len() == FUNCTION_NAMES {
            names.clear();
        }
        names.push((function.clone().unbind(), name.clone()));
        Ok(name)
    }
}

/// `code.function.name` as FastAPI writes it: the function's module and qualified name.
fn code_function_name(function: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = function.py();
    let named = |attribute: &Bound<'_, PyString>| -> PyResult<String> {
        let value = match function.getattr(attribute) {
            Ok(value) => value,
            Err(_) => function.get_type().getattr(attribute)?,
        };
        Ok(value.str()?.to_string())
    };
    Ok(format!(
        "{}.{}",
        named(intern!(py, "__module__"))?,
        named(intern!(py, "__qualname__"))?
    ))
}

/// One operation's span: started and made current on entry, ended on exit.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct FastapiOperation {
    operations: Py<FastapiOperations>,
    tracer: Py<Tracer>,
    name: String,
    function_name: Option<String>,
    /// A background task's exception is its error whatever its type.
    background: bool,
    active: Mutex<Option<(Py<Span>, Py<PyAny>)>>,
}

#[pymethods]
impl FastapiOperation {
    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        let api = api::get(py)?;
        let tracer = self.tracer.get();
        let current = api.current_context(py)?;
        let parent = parent_in(py, Some(&current))?;
        let attributes = self
            .function_name
            .iter()
            .map(|f| ("code.function.name".to_string(), Value::Str(f.clone())))
            .collect();
        let mut new = NewSpan::instrumentation(self.name.clone(), SpanKind::Internal, attributes);
        // FastAPI records neither the exception nor a status from it; `__exit__` decides.
        new.on_exception = OnException {
            record: false,
            set_status: false,
        };
        let span = create(py, &tracer.core, &tracer.scope, &tracer.spare_span, parent, None, new)?;
        let context = api.context_with_span(py, &current, span.bind(py).as_any())?;
        let token = api.attach(py, &context)?;
        *lock(&self.active) = Some((span, token.unbind()));
        Ok(())
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
        api::get(py)?.detach(py, token.bind(py));
        let span = span.get();
        if let Some(exc) = exc.filter(|e| e.is_instance_of::<PyException>()) {
            if self.background || !self.expected(py, exc)? {
                let error_type = exception_type(exc)?;
                span.with_record(|data, limits| {
                    data.set_attribute("error.type".into(), Value::Str(error_type), limits);
                    data.set_status(StatusCode::Error, None);
                });
            }
        }
        span.finish(py, None);
        Ok(false)
    }
}

impl FastapiOperation {
    /// An exception FastAPI does not count as the operation's error.
    fn expected(&self, py: Python<'_>, exc: &Bound<'_, PyAny>) -> PyResult<bool> {
        let operations = self.operations.get();
        if exc.is_instance(operations.expected.bind(py).as_any())? {
            return Ok(true);
        }
        if !exc.is_instance(operations.websocket_disconnect.bind(py).as_any())? {
            return Ok(false);
        }
        let code = exc.getattr(intern!(py, "code"))?;
        Ok(code.eq(1000)? || code.eq(1001)?)
    }
}
