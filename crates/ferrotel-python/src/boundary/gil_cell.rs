//! State a span touches on every call, kept exclusive by the GIL instead of a lock.
//!
//! A lock costs two locked instructions, and a locked instruction waits until every store
//! before it has reached the cache. On the span path those stores are the new record's, to
//! memory the export thread held last: each lock taken there cost ~25 ns. The extension
//! module declares that it needs the GIL (`gil_used = true` in lib.rs), so a free-threaded
//! CPython turns the GIL back on when it imports it.

use std::cell::UnsafeCell;

use pyo3::prelude::*;
use pyo3::PyClass;

/// A value only ever moved in or out whole, with the GIL held. A move runs no Python code,
/// so no other thread, and no code this thread runs, can see it half done.
pub(crate) struct GilCell<T>(UnsafeCell<T>);

// SAFETY: every access takes a `Python` token (the GIL is held) and ends before any Python
// code can run (see the methods), so accesses never overlap.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    pub(crate) const fn new(value: T) -> GilCell<T> {
        GilCell(UnsafeCell::new(value))
    }

    /// Puts `value` in and returns what was there, for the caller to drop: dropping it may
    /// run Python code, which must not happen during the access.
    #[allow(unsafe_code)]
    pub(crate) fn replace(&self, _py: Python<'_>, value: T) -> T {
        // SAFETY: see `Sync`: a move, with the GIL held.
        unsafe { std::mem::replace(&mut *self.0.get(), value) }
    }
}

impl<T: Default> GilCell<T> {
    pub(crate) fn take(&self, py: Python<'_>) -> T {
        self.replace(py, T::default())
    }
}

/// The object of one kind made last, given out again when nothing else holds it (its
/// reference count is 1), as CPython reuses a tuple no one else holds: making and freeing
/// one per span costs ~400 instructions.
pub(crate) struct Spare<T>(GilCell<Option<Py<T>>>);

impl<T> Default for Spare<T> {
    fn default() -> Spare<T> {
        Spare(GilCell::new(None))
    }
}

impl<T: PyClass> Spare<T> {
    /// The kept object, if nothing else holds it; it stays kept.
    ///
    /// The caller may then write its contents in place: the only references are the slot's
    /// and the one returned, and the slot gives the object to no one while two exist. Old
    /// contents are dropped after the write, as dropping them may run Python code.
    #[allow(unsafe_code)]
    pub(crate) fn reusable<'py>(&self, py: Python<'py>) -> Option<Bound<'py, T>> {
        // SAFETY: a live object's reference count, read with the GIL held.
        let only_ours = |object: &Py<T>| unsafe { pyo3::ffi::Py_REFCNT(object.as_ptr()) } == 1;
        // Taken and put back with no Python code run in between.
        match self.0.take(py) {
            Some(object) if only_ours(&object) => {
                let object = object.into_bound(py);
                self.0.replace(py, Some(object.clone().unbind()));
                Some(object)
            }
            held_elsewhere => {
                self.0.replace(py, held_elsewhere);
                None
            }
        }
    }

    /// Keeps `made` for the next call, instead of what was kept.
    pub(crate) fn keep(&self, made: &Bound<'_, T>) {
        let stale = self.0.replace(made.py(), Some(made.clone().unbind()));
        drop(stale);
    }
}

/// Contents of an object a [`Spare`] gives out again: replaced in place while
/// [`Spare::reusable`]'s promise holds (no one else holds the object), read otherwise.
pub(crate) struct Reusable<T>(UnsafeCell<T>);

// SAFETY: written only through `get_mut`, whose callers hold the object as `Spare::reusable`
// gave it, with the GIL: no other reference to the object, so no reader, exists meanwhile.
// Read otherwise; whatever changes after that is behind the contents' own locks.
#[allow(unsafe_code)]
unsafe impl<T: Send + Sync> Sync for Reusable<T> {}

impl<T> Reusable<T> {
    pub(crate) const fn new(value: T) -> Reusable<T> {
        Reusable(UnsafeCell::new(value))
    }

    #[allow(unsafe_code)]
    pub(crate) fn get(&self) -> &T {
        // SAFETY: see `Sync`: no write while any reference to the object is used.
        unsafe { &*self.0.get() }
    }

    /// # Safety
    /// The caller holds the object as [`Spare::reusable`] returned it, with the GIL, and
    /// drops the contents it replaces only after it is done with the reference returned.
    #[allow(unsafe_code, clippy::mut_from_ref)]
    pub(crate) unsafe fn get_mut(&self) -> &mut T {
        // SAFETY: the caller's promise: no other reference to the contents exists.
        unsafe { &mut *self.0.get() }
    }
}
