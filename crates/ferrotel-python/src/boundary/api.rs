//! References into the `opentelemetry-api` package, bound once by the Python glue after the
//! API is imported (never at start-up), so the hot path reads them without any lookup; and
//! the current context read and switched through the API's own context variable.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

pub(crate) struct Api {
    /// The key the API stores the current span under in a `Context`.
    pub(crate) span_key: Py<PyString>,
    /// The API's runtime-context variable, when it is the contextvars one (the default);
    /// otherwise `None` and attach/detach go through the API functions.
    pub(crate) context_var: Option<Py<PyAny>>,
    pub(crate) context_type: Py<PyAny>,
    /// dict's constructor, when the API's `Context` adds none of its own (no `__new__`,
    /// no `__init__`): a new context is then made by it directly, without a call through
    /// the class, which is most of a new context's cost.
    context_new: Option<pyo3::ffi::newfunc>,
    pub(crate) attach: Py<PyAny>,
    pub(crate) detach: Py<PyAny>,
    pub(crate) get_current: Py<PyAny>,
    pub(crate) span_context_type: Py<PyAny>,
    pub(crate) trace_flags_type: Py<PyAny>,
    pub(crate) span_kind_type: Py<PyAny>,
    pub(crate) trace_state_type: Py<PyAny>,
    /// The key the API stores baggage (a dict) under in a `Context`.
    pub(crate) baggage_key: Py<PyString>,
    pub(crate) default_getter: Py<PyAny>,
    pub(crate) default_setter: Py<PyAny>,
    pub(crate) default_trace_state: Py<PyAny>,
    /// `ferrotel.trace._decorate(scope, func)`: the decorator form of start_as_current_span.
    pub(crate) decorate: Py<PyAny>,
    /// `traceback.format_exception`, for exception.stacktrace.
    pub(crate) format_exception: Py<PyAny>,
    /// The context keys that turn instrumentation off (`suppress_instrumentation`), or HTTP
    /// instrumentation only: the SDK sets the first while it exports.
    pub(crate) suppress_key: Py<PyString>,
    pub(crate) suppress_http_key: Py<PyString>,
}

static API: PyOnceLock<Api> = PyOnceLock::new();

pub(crate) fn get(py: Python<'_>) -> PyResult<&Api> {
    API.get(py)
        .ok_or_else(|| PyRuntimeError::new_err("ferrotel.trace is not initialised; import ferrotel.trace first"))
}

/// `_bind_api(namespace)`: called once by `ferrotel.trace` with the API objects it imported.
#[pyfunction]
pub(crate) fn _bind_api(py: Python<'_>, namespace: &Bound<'_, PyDict>) -> PyResult<()> {
    let item = |key: &str| -> PyResult<Py<PyAny>> {
        namespace
            .get_item(key)?
            .map(Bound::unbind)
            .ok_or_else(|| PyRuntimeError::new_err(format!("missing {key}")))
    };
    // Only a real ContextVar may take the C-level fast path below; anything else goes
    // through the API's attach/detach.
    let context_var_type = py.import("contextvars")?.getattr("ContextVar")?;
    let context_var = namespace
        .get_item("context_var")?
        .filter(|v| v.is_instance(&context_var_type).unwrap_or(false))
        .map(Bound::unbind);
    let context_type = item("context_type")?;
    let context_new = dict_constructor_of(context_type.bind(py));
    let api = Api {
        span_key: item("span_key")?.bind(py).cast::<PyString>()?.clone().unbind(),
        context_var,
        context_type,
        context_new,
        attach: item("attach")?,
        detach: item("detach")?,
        get_current: item("get_current")?,
        span_context_type: item("span_context_type")?,
        trace_flags_type: item("trace_flags_type")?,
        span_kind_type: item("span_kind_type")?,
        trace_state_type: item("trace_state_type")?,
        baggage_key: item("baggage_key")?.bind(py).cast::<PyString>()?.clone().unbind(),
        default_getter: item("default_getter")?,
        default_setter: item("default_setter")?,
        default_trace_state: item("default_trace_state")?,
        decorate: item("decorate")?,
        format_exception: item("format_exception")?,
        suppress_key: item("suppress_key")?.bind(py).cast::<PyString>()?.clone().unbind(),
        suppress_http_key: item("suppress_http_key")?.bind(py).cast::<PyString>()?.clone().unbind(),
    };
    let _ = API.set(py, api);
    Ok(())
}

/// dict's `tp_new`, if `class` is a dict subclass that makes its instances with dict's own
/// `tp_new` and `tp_init` (so calling the first alone is what calling the class does).
#[allow(unsafe_code)]
fn dict_constructor_of(class: &Bound<'_, PyAny>) -> Option<pyo3::ffi::newfunc> {
    let class = class.cast::<PyType>().ok()?;
    if !class.is_subclass_of::<PyDict>().ok()? {
        return None;
    }
    let dict = class.py().get_type::<PyDict>();
    let slot = |ty: &Bound<'_, PyType>, slot| {
        // SAFETY: a live type object; PyType_GetSlot reads one of its slots.
        unsafe { pyo3::ffi::PyType_GetSlot(ty.as_type_ptr(), slot) }
    };
    let (new, init) = (pyo3::ffi::Py_tp_new, pyo3::ffi::Py_tp_init);
    let same = slot(class, new) == slot(&dict, new) && slot(class, init) == slot(&dict, init);
    let constructor = slot(&dict, new);
    if !same || constructor.is_null() {
        return None;
    }
    // SAFETY: the tp_new slot of a type holds a `newfunc`.
    Some(unsafe { std::mem::transmute::<*mut std::ffi::c_void, pyo3::ffi::newfunc>(constructor) })
}

impl Api {
    /// A new, empty `Context`.
    #[allow(unsafe_code)]
    fn new_context<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let Some(new) = self.context_new else {
            return self.context_type.bind(py).call0();
        };
        let args = PyTuple::empty(py);
        // SAFETY: `new` is dict's tp_new, called as `type.__call__` would call it, with the
        // context type (a dict subclass) and live, empty arguments; it returns a new
        // reference or NULL with an exception set.
        let made = unsafe { new(self.context_type.as_ptr().cast(), args.as_ptr(), std::ptr::null_mut()) };
        if made.is_null() {
            Err(PyErr::fetch(py))
        } else {
            // SAFETY: non-null new reference.
            Ok(unsafe { Bound::from_owned_ptr(py, made) })
        }
    }

    /// The current `Context`.
    #[allow(unsafe_code)]
    pub(crate) fn current_context<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.context_var {
            Some(var) => {
                let mut value: *mut pyo3::ffi::PyObject = std::ptr::null_mut();
                // SAFETY: `var` is a live ContextVar (its type checked by `_bind_api`);
                // PyContextVar_Get writes a new strong reference (or NULL) into `value`.
                let rc = unsafe { pyo3::ffi::PyContextVar_Get(var.as_ptr(), std::ptr::null_mut(), &mut value) };
                if rc < 0 {
                    return Err(PyErr::fetch(py));
                }
                if value.is_null() {
                    return self.get_current.bind(py).call0();
                }
                // SAFETY: non-null and owned, as documented for PyContextVar_Get.
                Ok(unsafe { Bound::from_owned_ptr(py, value) })
            }
            None => self.get_current.bind(py).call0(),
        }
    }

    /// Makes `context` current; returns the token that restores the previous one.
    #[allow(unsafe_code)]
    pub(crate) fn attach<'py>(&self, py: Python<'py>, context: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match &self.context_var {
            Some(var) => {
                // SAFETY: both pointers are live objects; the result is a new reference or NULL.
                let token = unsafe { pyo3::ffi::PyContextVar_Set(var.as_ptr(), context.as_ptr()) };
                if token.is_null() {
                    Err(PyErr::fetch(py))
                } else {
                    // SAFETY: non-null new reference.
                    Ok(unsafe { Bound::from_owned_ptr(py, token) })
                }
            }
            None => self.attach.bind(py).call1((context,)),
        }
    }

    /// Restores the context `token` saved. A token from another context (a detach in the
    /// wrong task or thread) is tolerated: reported at debug level, never raised.
    #[allow(unsafe_code)]
    pub(crate) fn detach(&self, py: Python<'_>, token: &Bound<'_, PyAny>) {
        let failed = match &self.context_var {
            Some(var) => {
                // SAFETY: live objects; returns -1 with an exception set on failure.
                let rc = unsafe { pyo3::ffi::PyContextVar_Reset(var.as_ptr(), token.as_ptr()) };
                (rc < 0).then(|| PyErr::fetch(py))
            }
            None => self.detach.bind(py).call1((token,)).err(),
        };
        if let Some(err) = failed {
            crate::runtime::diagnostics::emit(
                py,
                ferrotel_config::LogLevel::Debug,
                &format!("context detached out of order, ignored: {err}"),
            );
        }
    }

    /// Whether `context` turns instrumentation off (for an HTTP instrumentation, `http`:
    /// also its own key), as the SDK does while it exports.
    pub(crate) fn suppressed(&self, py: Python<'_>, context: &Bound<'_, PyAny>, http: bool) -> bool {
        let Ok(dict) = context.cast::<PyDict>() else {
            return false;
        };
        let set = |key: &Py<PyString>| {
            dict.get_item(key.bind(py))
                .ok()
                .flatten()
                .is_some_and(|v| v.is_truthy().unwrap_or(false))
        };
        set(&self.suppress_key) || (http && set(&self.suppress_http_key))
    }

    /// A copy of `parent` (a `Context`) with `span` as the current span.
    pub(crate) fn context_with_span<'py>(
        &self,
        py: Python<'py>,
        parent: &Bound<'py, PyAny>,
        span: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let context = self.new_context(py)?;
        let dict = context.cast::<PyDict>()?;
        // C-level dict operations: the API's Context forbids __setitem__ from Python code.
        if let Ok(parent) = parent.cast::<PyDict>() {
            dict.update(parent.as_mapping())?;
        }
        dict.set_item(self.span_key.bind(py), span)?;
        Ok(context)
    }
}
