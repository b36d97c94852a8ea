//! A WSGI response body, handed back to the server as the application made it.
//!
//! The server span of a WSGI request ends when the server closes the body (so a streamed
//! response is timed to its last byte). To see that close without replacing the
//! application's object, which servers and callers inspect (Django's `HttpResponse`, a
//! server's own `wsgi.file_wrapper` that enables sendfile), the end rides on the body
//! itself: a Django response gets it as one of its resource closers; any other body that
//! takes attributes gets an instance `close` that calls its original `close`, if any, first,
//! and takes itself out again (no cycle left for the collector).
//! A materialised list or tuple is complete when returned, so its span ends then. Only a body
//! that refuses attributes (a generator, an object with `__slots__`) is wrapped.
//!
//! A body never closed (test clients that drop a response) ends its span when it is
//! collected, without touching the context: the collection may happen anywhere. Such a body
//! sits in a cycle with its closer, so at exit, while any are open, garbage is collected
//! before the providers shut down (`OpenBodies`, the first to take part in exit and fork):
//! their spans are exported rather than lost at finalization.
//!
//! The request is ferrotel's native one, or the glue's when another SDK records the span
//! (`_generic.py`), reached through its `end` and `record_exception` methods.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use ferrotel_sdk::sync::lock;

use pyo3::exceptions::PyStopIteration;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use super::server::ServerRequest;
use crate::runtime::lifecycle::{self, Flush, Participant};

/// Bodies handed back in this process whose request has not ended yet.
static OPEN_BODIES: AtomicUsize = AtomicUsize::new(0);
/// Bumped in each forked child, so that bodies copied from the parent are told apart.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The bodies' part in exit and fork. Registered when the native module is imported, before
/// any provider, so its collection at exit comes before their last collection and flush.
struct OpenBodies;

impl Participant for OpenBodies {
    fn before_exit(&self, py: Python<'_>, _deadline: Instant) {
        if OPEN_BODIES.load(Ordering::Relaxed) > 0 {
            if let Ok(gc) = py.import("gc") {
                let _ = gc.call_method0("collect");
            }
        }
    }

    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        Vec::new()
    }

    /// The bodies a child inherited are its parent's, whose requests the parent ends (a
    /// collection here must not export them a second time).
    fn after_fork(&self, _py: Python<'_>, _pid: u32) {
        GENERATION.fetch_add(1, Ordering::Relaxed);
        OPEN_BODIES.store(0, Ordering::Relaxed);
    }
}

pub(crate) fn take_part_in_exit_and_fork() {
    static BODIES: LazyLock<Arc<dyn Participant>> = LazyLock::new(|| Arc::new(OpenBodies));
    lifecycle::register(Arc::downgrade(&BODIES));
}

/// A body's request until it ends.
struct Pending {
    ended: AtomicBool,
    /// The fork generation of the process that handed the body back.
    generation: u64,
}

impl Pending {
    fn new() -> Self {
        OPEN_BODIES.fetch_add(1, Ordering::Relaxed);
        Pending {
            ended: AtomicBool::new(false),
            generation: GENERATION.load(Ordering::Relaxed),
        }
    }

    /// Marks the request ended; true the first time, and only in the process that handed
    /// the body back: that one ends the request.
    fn finish(&self) -> bool {
        if self.ended.swap(true, Ordering::AcqRel) || self.generation != GENERATION.load(Ordering::Relaxed) {
            return false;
        }
        OPEN_BODIES.fetch_sub(1, Ordering::Relaxed);
        true
    }

    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// Ends `request` (once per caller's guard), natively when it is ferrotel's.
fn end(py: Python<'_>, request: &Py<PyAny>, restore_context: bool) -> PyResult<()> {
    match request.bind(py).cast::<ServerRequest>() {
        Ok(native) => native.get().end_request(py, restore_context),
        Err(_) => request.bind(py).call_method1("end", (restore_context,)).map(drop),
    }
}

fn record_error(py: Python<'_>, request: &Py<PyAny>, exception: &Bound<'_, PyAny>) -> PyResult<()> {
    match request.bind(py).cast::<ServerRequest>() {
        Ok(native) => native.get().record_error(py, exception),
        Err(_) => request
            .bind(py)
            .call_method1("record_exception", (exception,))
            .map(drop),
    }
}

/// The end of a request, installed on its body as (or beside) `close`.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct BodyCloser {
    request: Py<PyAny>,
    /// The body's own `close`, called first; `None` for a Django resource closer or a body
    /// that had none.
    original: Option<Py<PyAny>>,
    /// The `__dict__` of the body this closer was installed in, and whether that dict held a
    /// `close` of its own before. The first close takes the closer out again: it and the
    /// body's bound `close` form a cycle that otherwise keeps every response, its request and
    /// span alive until the next collection (and makes collections more frequent).
    installed_in: Mutex<Option<(Py<PyDict>, bool)>>,
    pending: Pending,
}

#[pymethods]
impl BodyCloser {
    /// The closer sits in its body's `__dict__` and holds the body's own bound `close`: a
    /// cycle the collector must see, or every such body leaks with its request and span.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.request)?;
        if let Some(original) = &self.original {
            visit.call(original)?;
        }
        // Never blocks: the lock is only held briefly by this closer's own `__call__`.
        if let Ok(installed) = self.installed_in.try_lock() {
            if let Some((attributes, _)) = &*installed {
                visit.call(attributes)?;
            }
        }
        Ok(())
    }

    fn __call__(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let closer = slf.get();
        let outcome = match &closer.original {
            Some(close) => close.call0(py).map(drop),
            None => Ok(()),
        };
        if closer.pending.finish() {
            closer.uninstall(slf);
            end(py, &closer.request, true)?;
        }
        outcome
    }
}

impl BodyCloser {
    /// Puts the body's `close` back as it was (the class's, or the instance's own), if this
    /// closer is still the one installed: a later `close()` then reaches the original
    /// directly, and the cycle through the body's `__dict__` is gone.
    fn uninstall(&self, slf: &Bound<'_, Self>) {
        let Some((attributes, had_own)) = lock(&self.installed_in).take() else {
            return;
        };
        let py = slf.py();
        let attributes = attributes.bind(py);
        let name = intern!(py, "close");
        let still_ours = attributes
            .get_item(name)
            .ok()
            .flatten()
            .is_some_and(|installed| installed.is(slf));
        if !still_ours {
            return;
        }
        let _ = match (&self.original, had_own) {
            (Some(original), true) => attributes.set_item(name, original),
            _ => attributes.del_item(name),
        };
    }
}

impl Drop for BodyCloser {
    fn drop(&mut self) {
        if self.pending.finish() {
            Python::attach(|py| {
                let _ = end(py, &self.request, false);
            });
        }
    }
}

/// A body that offers no `close` of its own to ride on: iterated through, closed through,
/// and ending the span when exhausted, closed or collected.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct TracedBody {
    body: Py<PyAny>,
    iterator: Mutex<Option<Py<PyIterator>>>,
    request: Py<PyAny>,
    pending: Pending,
}

impl TracedBody {
    fn end(&self, py: Python<'_>, restore_context: bool) -> PyResult<()> {
        if !self.pending.finish() {
            return Ok(());
        }
        end(py, &self.request, restore_context)
    }
}

#[pymethods]
impl TracedBody {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let iterator = {
            let mut slot = lock(&self.iterator);
            match &*slot {
                Some(iterator) => iterator.clone_ref(py),
                None => {
                    let iterator = self.body.bind(py).try_iter()?.unbind();
                    *slot = Some(iterator.clone_ref(py));
                    iterator
                }
            }
        };
        let mut iterator = iterator.into_bound(py);
        match iterator.next() {
            Some(Ok(chunk)) => Ok(chunk.unbind()),
            Some(Err(error)) => {
                record_error(py, &self.request, error.value(py).as_any())?;
                Err(error)
            }
            None => {
                self.end(py, true)?;
                Err(PyStopIteration::new_err(()))
            }
        }
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let outcome = match self.body.bind(py).getattr(intern!(py, "close")) {
            Ok(close) => close.call0().map(drop),
            Err(_) => Ok(()),
        };
        self.end(py, true)?;
        outcome
    }
}

impl Drop for TracedBody {
    fn drop(&mut self) {
        if !self.pending.is_ended() {
            Python::attach(|py| {
                let _ = self.end(py, false);
            });
        }
    }
}

/// `hand_back_body(request, body)`: `body` back to the server with the request's end
/// attached, as described above.
#[pyfunction]
pub(crate) fn hand_back_body<'py>(request: &Bound<'py, PyAny>, body: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = body.py();
    let closer = |original: Option<Py<PyAny>>| BodyCloser {
        request: request.clone().unbind(),
        original,
        installed_in: Mutex::new(None),
        pending: Pending::new(),
    };
    // A plain list or tuple takes no attribute: no lookup that would fail (and build an
    // AttributeError) is made on it.
    if body.is_exact_instance_of::<PyList>() || body.is_exact_instance_of::<PyTuple>() {
        end(py, &request.clone().unbind(), true)?;
        return Ok(body);
    }
    // Django's closers are in the instance's `__dict__`; reading them there builds no
    // AttributeError for the other bodies.
    let attributes = body
        .getattr_opt(intern!(py, "__dict__"))
        .ok()
        .flatten()
        .and_then(|attributes| attributes.cast_into::<PyDict>().ok());
    let closers = attributes
        .as_ref()
        .and_then(|attributes| attributes.get_item(intern!(py, "_resource_closers")).ok().flatten());
    if let Some(closers) = closers {
        if let Ok(closers) = closers.cast::<PyList>() {
            closers.append(Py::new(py, closer(None))?)?;
            return Ok(body);
        }
    }
    // A body without `close` gets one too when it takes attributes: the server calls a
    // `close` it finds, and the object stays the one the application made.
    let original = body.getattr_opt(intern!(py, "close")).ok().flatten().map(Bound::unbind);
    let had_own = attributes
        .as_ref()
        .is_some_and(|attributes| attributes.contains(intern!(py, "close")).unwrap_or(false));
    let installed = Py::new(py, closer(original))?;
    if body.setattr(intern!(py, "close"), &installed).is_ok() {
        if let Some(attributes) = attributes {
            *lock(&installed.get().installed_in) = Some((attributes.unbind(), had_own));
        }
        return Ok(body);
    }
    // The closer made for the refused attribute must not end the request when dropped.
    installed.get().pending.finish();
    if body.cast::<PyList>().is_ok() || body.cast::<PyTuple>().is_ok() {
        end(py, &request.clone().unbind(), true)?;
        return Ok(body);
    }
    let wrapped = TracedBody {
        body: body.unbind(),
        iterator: Mutex::new(None),
        request: request.clone().unbind(),
        pending: Pending::new(),
    };
    Ok(Py::new(py, wrapped)?.into_bound(py).into_any())
}
