//! SIGTERM left at its default: every provider flushes, then the process ends by SIGTERM,
//! whatever its main thread is doing. A handler of the interpreter's own would only run when
//! the main thread next checks for it, and CPython 3.11 can lose that check (another thread
//! taking the GIL recomputes the flag without the main thread's pending signal), leaving a
//! main thread in `time.sleep` asleep through the SIGTERM that ends a bare app at once. So the
//! handler is a plain one that wakes a thread of ours, which runs the exit flush.
//!
//! The app still sees SIG_DFL (the interpreter's table never learns of this handler); a
//! handler the app sets replaces it, and setting SIG_DFL again re-arms it (`_lifecycle.py`).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Once;

use pyo3::prelude::*;

use super::lifecycle::{claim_exit_flush_for_sigterm, die_of_sigterm, exit_flush};

/// What the handler posts to: `sem_post` is async-signal-safe, and the semaphore lives in
/// this process's memory, so a forked child's SIGTERM can never wake the parent's waiter.
struct Wake(UnsafeCell<libc::sem_t>);

// SAFETY: the semaphore is only used through sem_post/sem_wait, which are thread-safe.
#[allow(unsafe_code)]
unsafe impl Sync for Wake {}

// SAFETY: an all-zero sem_t is plain memory; sem_init makes it a semaphore before use.
#[allow(unsafe_code)]
static WAKE: Wake = Wake(UnsafeCell::new(unsafe { std::mem::zeroed() }));
static WAKE_READY: Once = Once::new();
static ARMED: AtomicBool = AtomicBool::new(false);
/// Whoever ends the exit flush ends the process by SIGTERM once one arrived: the app's own
/// thread may finish the flush (and would otherwise go on to exit with its own status).
static RECEIVED: AtomicBool = AtomicBool::new(false);
/// The process whose waiter thread is running (a forked child has none until it starts one).
static WAITER_OF: AtomicU32 = AtomicU32::new(0);

#[allow(unsafe_code)]
extern "C" fn on_sigterm(_: libc::c_int) {
    RECEIVED.store(true, Ordering::Release);
    // SAFETY: WAKE was initialised before this handler was installed.
    unsafe { libc::sem_post(WAKE.0.get()) };
}

/// Installs the handler (SIGTERM is at SIG_DFL). Without a waiter thread it stays at SIG_DFL:
/// the process then ends as it would have without ferrotel, unflushed.
#[pyfunction]
#[allow(unsafe_code)]
pub(crate) fn _arm_sigterm_flush() {
    // SAFETY: initialises the static semaphore once, before any handler can post to it.
    WAKE_READY.call_once(|| unsafe {
        libc::sem_init(WAKE.0.get(), 0, 0);
    });
    if !start_waiter() {
        return;
    }
    // SAFETY: `action` is fully initialised before sigaction reads it; the handler only
    // calls sem_post.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        // The app's system calls carry on undisturbed while the flush runs beside them.
        action.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
    ARMED.store(true, Ordering::Release);
}

/// In a forked child: the handler was inherited, the parent's waiter thread was not.
pub(super) fn after_fork() {
    RECEIVED.store(false, Ordering::Release);
    if ARMED.load(Ordering::Acquire) {
        start_waiter();
    }
}

pub(super) fn received() -> bool {
    RECEIVED.load(Ordering::Acquire)
}

fn start_waiter() -> bool {
    let pid = std::process::id();
    if WAITER_OF.load(Ordering::Acquire) == pid {
        return true;
    }
    let started = std::thread::Builder::new()
        .name("ferrotel-sigterm".into())
        // The flush may run Python code (processors, exporters, finalizers) on this thread.
        .stack_size(8 << 20)
        .spawn(wait_for_sigterm)
        .is_ok();
    if started {
        WAITER_OF.store(pid, Ordering::Release);
    }
    started
}

#[allow(unsafe_code)]
fn wait_for_sigterm() {
    ferrotel_sdk::background::leave_signals_to_the_app();
    // SAFETY: the semaphore was initialised before this thread was started.
    while unsafe { libc::sem_wait(WAKE.0.get()) } != 0 {}
    if claim_exit_flush_for_sigterm() {
        Python::attach(|py| exit_flush(py, true));
    }
    die_of_sigterm();
}
