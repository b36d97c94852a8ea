//! Locking that survives a panic elsewhere: a poisoned mutex (an exporter that panicked)
//! must not take span recording down with it.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `condvar` while `waiting` holds, until `deadline`. Returns the guard and
/// whether the condition cleared in time.
pub fn wait_until<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Instant,
    mut waiting: impl FnMut(&T) -> bool,
) -> (MutexGuard<'a, T>, bool) {
    while waiting(&guard) {
        let now = Instant::now();
        if now >= deadline {
            return (guard, false);
        }
        guard = condvar
            .wait_timeout(guard, deadline - now)
            .map_or_else(|e| e.into_inner().0, |r| r.0);
    }
    (guard, true)
}
