//! A `with` statement on a native scope without the two method objects CPython (before 3.14)
//! makes and frees for it: `with` looks `__enter__` and `__exit__` up through their
//! descriptors, and a method descriptor binds a new method object each time, about a tenth
//! of a span through the API.
//!
//! A scope's class holds a `ScopeStep` under both names instead. Read on an instance it
//! hands back the instance itself, and the instance's call does the step its arguments
//! name: none enters, three (`exc_type, exc, tb`) exit, one is the scope's own call (the
//! decorator form). So `cm.__enter__()` and `cm.__exit__(t, v, tb)` work as always;
//! `cm.__enter__` is `cm` itself. Read on the class (`type(cm).__exit__`, as contextlib's
//! `ExitStack` does) it is the step, which calls the scope with the arguments after it.

use std::marker::PhantomData;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::impl_::trampoline;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyTuple};
use pyo3::PyClass;

/// A native class entered by `with`, as its two steps and a call with one argument.
pub(crate) trait WithScope: PyClass + Sync {
    fn enter(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>>;
    /// `exc`: the exception leaving the block, if any.
    fn exit(slf: &Bound<'_, Self>, exc: Option<&Bound<'_, PyAny>>) -> PyResult<bool>;
    /// The scope called with one argument.
    fn call_one(slf: &Bound<'_, Self>, arg: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>>;
}

/// What a scope's class holds as `__enter__` and as `__exit__`.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct ScopeStep;

#[pymethods]
impl ScopeStep {
    /// The step read on the class and called with the scope first.
    #[pyo3(signature = (scope, *args))]
    fn __call__(&self, scope: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
        Ok(scope.call1(args)?.unbind())
    }
}

/// `ScopeStep`'s `__get__`, written as the raw slot: pyo3's wrapper would cost what the
/// bound method it replaces does.
#[allow(unsafe_code)]
unsafe extern "C" fn scope_itself(
    step: *mut ffi::PyObject,
    scope: *mut ffi::PyObject,
    _class: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls a descriptor's get with the GIL held and live objects (`scope`
    // NULL or None when read on the class); the result is a new reference.
    unsafe {
        let chosen = if scope.is_null() || scope == ffi::Py_None() {
            step
        } else {
            scope
        };
        ffi::Py_IncRef(chosen);
        chosen
    }
}

/// The scope's call: the step its arguments name.
#[allow(unsafe_code)]
unsafe fn scope_call<S: WithScope>(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    // SAFETY: a vectorcall receives the object called and `nargs` live positional arguments;
    // `kwnames` is NULL or a tuple, its values after the positional ones.
    unsafe {
        if !kwnames.is_null() && ffi::PyTuple_Size(kwnames) != 0 {
            return Err(PyTypeError::new_err(format!("{} takes no keyword arguments", S::NAME)));
        }
        let scope = Bound::from_borrowed_ptr(py, slf).cast_into::<S>()?;
        let arg = |i: usize| Bound::from_borrowed_ptr(py, *args.add(i));
        match nargs {
            0 => Ok(S::enter(&scope)?.into_ptr()),
            1 => Ok(S::call_one(&scope, &arg(0))?.into_ptr()),
            3 => {
                let exc = arg(1);
                let suppress = S::exit(&scope, Some(&exc).filter(|e| !e.is_none()))?;
                Ok(PyBool::new(py, suppress).to_owned().into_ptr())
            }
            n => Err(PyTypeError::new_err(format!(
                "{} takes no argument (enter), one, or three (exit); {n} given",
                S::NAME
            ))),
        }
    }
}

/// `scope_call::<S>` for pyo3's trampoline (which keeps its bookkeeping of the GIL and turns
/// a panic into an exception), as its own macros name a method.
struct ScopeCall<S>(PhantomData<S>);

impl<S: WithScope> trampoline::MethodDef<trampoline::fastcall_cfunction_with_keywords::Func> for ScopeCall<S> {
    const METH: trampoline::fastcall_cfunction_with_keywords::Func = scope_call::<S>;
}

#[allow(unsafe_code)]
unsafe extern "C" fn vectorcall<S: WithScope>(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython's vectorcall protocol, passed on with the argument count unflagged.
    unsafe {
        trampoline::fastcall_cfunction_with_keywords::<ScopeCall<S>>(
            callable,
            args,
            ffi::PyVectorcall_NARGS(nargsf),
            kwnames,
        )
    }
}

/// The field a scope's instance calls through (CPython's vectorcall: no tuple is made for
/// the arguments). Every instance holds `ScopeCallSlot::of::<S>()`.
#[repr(transparent)]
pub(crate) struct ScopeCallSlot(ffi::vectorcallfunc);

impl ScopeCallSlot {
    pub(crate) fn of<S: WithScope>() -> ScopeCallSlot {
        ScopeCallSlot(vectorcall::<S>)
    }
}

/// Makes `S`'s class work as the module describes, once, given its first instance (before
/// it is returned to Python): `S` declares `__enter__` and `__exit__` as `ScopeStep` class
/// attributes and holds a `ScopeCallSlot` in `slot`.
#[allow(unsafe_code)]
pub(crate) fn ready<S: WithScope>(first: &Bound<'_, S>, slot: &ScopeCallSlot) {
    let py = first.py();
    let step = py.get_type::<ScopeStep>();
    let scope = py.get_type::<S>();
    let offset = (slot as *const ScopeCallSlot as usize) - (first.as_ptr() as usize);
    // SAFETY: both are live heap types made by pyo3, changed with the GIL held while the
    // only instance of `S` is `first`, whose `slot` lies `offset` bytes into the object as in
    // every instance (one layout per class). CPython reads these slots and flags at each use;
    // PyType_Modified drops what it cached of them.
    unsafe {
        (*step.as_type_ptr()).tp_descr_get = Some(scope_itself);
        let class = scope.as_type_ptr();
        (*class).tp_vectorcall_offset = offset as ffi::Py_ssize_t;
        (*class).tp_call = Some(ffi::PyVectorcall_Call);
        (*class).tp_flags |= ffi::Py_TPFLAGS_HAVE_VECTORCALL;
        ffi::PyType_Modified(step.as_type_ptr());
        ffi::PyType_Modified(class);
    }
}
