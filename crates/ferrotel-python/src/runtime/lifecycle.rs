//! The lifecycle of every provider of every signal: the exit flush (at `atexit`, at
//! `os._exit` in forked children, on a SIGTERM the app does not handle itself), the rebuild
//! in a forked child, and what the user is told about telemetry that was not delivered.
//!
//! Signals take part through [`Participant`]; this module knows none of them. The exit
//! flush is bounded by one deadline for all of them together (they flush in parallel), and
//! a SIGINT or SIGTERM during its wait ends it at once, with the count line.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ferrotel_config::LogLevel;
use ferrotel_sdk::pipeline::{Item, Pipeline};
use ferrotel_sdk::sync::lock;
use pyo3::prelude::*;

use super::diagnostics::emit;

/// A pipeline seen from the exit path, whatever it carries.
pub(crate) trait Flush: Send + Sync {
    fn begin_shutdown(&self);
    /// `true` once stopped; may be called again after `false`.
    fn wait(&self, deadline: Instant) -> bool;
    /// The line saying what was not delivered and why, if anything was lost.
    fn undelivered(&self) -> Option<String>;
}

impl<T: Item> Flush for Pipeline<T> {
    fn begin_shutdown(&self) {
        Pipeline::begin_shutdown(self);
    }

    fn wait(&self, deadline: Instant) -> bool {
        Pipeline::wait(self, deadline)
    }

    fn undelivered(&self) -> Option<String> {
        Pipeline::undelivered(self)
    }
}

/// A provider (of any signal) taking part in exit and fork.
pub(crate) trait Participant: Send + Sync {
    /// Work that needs the interpreter before the flush starts (the metrics' last collection,
    /// Python processors' own flush), within `deadline`.
    fn before_exit(&self, _py: Python<'_>, _deadline: Instant) {}
    /// Stops taking telemetry and starts flushing what is queued; returns what to wait for.
    /// A second call returns nothing.
    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>>;
    /// In a forked child: fresh pipelines (the parent's worker threads do not exist here)
    /// with the child's pid in the resource.
    fn after_fork(&self, py: Python<'_>, pid: u32);
}

static PARTICIPANTS: Mutex<Vec<Weak<dyn Participant>>> = Mutex::new(Vec::new());

/// Set once the exit flush is over: from then on no export worker attaches to the
/// interpreter (Python exporters), which is being finalized.
static INTERPRETER_LEAVING: AtomicBool = AtomicBool::new(false);

pub(crate) fn interpreter_leaving() -> bool {
    INTERPRETER_LEAVING.load(Ordering::Acquire)
}

/// Makes a provider take part in exit and fork for as long as it lives.
pub(crate) fn register(participant: Weak<dyn Participant>) {
    let mut participants = lock(&PARTICIPANTS);
    participants.retain(|p| p.strong_count() > 0);
    participants.push(participant);
}

fn live() -> Vec<Arc<dyn Participant>> {
    lock(&PARTICIPANTS).iter().filter_map(Weak::upgrade).collect()
}

/// A timeout in milliseconds, as the Python API takes them (negative: none).
pub(crate) fn millis(timeout_millis: f64) -> Duration {
    Duration::from_secs_f64(timeout_millis.max(0.0) / 1e3)
}

/// `timeout_millis` as a deadline from now.
pub(crate) fn deadline_in(timeout_millis: f64) -> Instant {
    Instant::now() + millis(timeout_millis)
}

/// How often a waiter looks for an interrupting signal.
pub(super) const POLL: Duration = Duration::from_millis(20);

/// Waits (without the GIL) until every flush stopped or `deadline`, then says on stderr
/// what each did not deliver. With `interruptible`, a SIGINT or SIGTERM arriving meanwhile
/// ends the wait at once; a SIGTERM then ends the process, as it would have without us.
pub(crate) fn finish(py: Python<'_>, flushes: &[Arc<dyn Flush>], deadline: Instant, interruptible: bool) -> bool {
    let guard = interruptible.then(interrupt::Guard::install);
    let caught = py.detach(|| {
        for flush in flushes {
            loop {
                let slice = deadline.min(Instant::now() + POLL);
                if flush.wait(slice) || Instant::now() >= deadline {
                    break;
                }
                if let Some(signal) = guard.as_ref().and_then(interrupt::Guard::caught) {
                    return Some(signal);
                }
            }
        }
        None
    });
    let complete = caught.is_none() && flushes.iter().all(|f| f.wait(Instant::now()));
    if let Some(signal) = caught {
        emit(
            py,
            LogLevel::Warning,
            &format!("the exit flush was cut short by {}", interrupt::name(signal)),
        );
    }
    for line in flushes.iter().filter_map(|f| f.undelivered()) {
        emit(py, LogLevel::Warning, &line);
    }
    drop(guard);
    if caught == Some(interrupt::SIGTERM) {
        interrupt::die_of_sigterm();
    }
    complete
}

pub(super) use interrupt::{die_of_sigterm, restore_in_forked_child as restore_interrupt_handlers_in_forked_child};

/// Shuts every provider down by `deadline`: their work that needs the interpreter first,
/// then every pipeline told to stop at once, `before_wait`, and the bounded wait.
pub(super) fn shutdown_all(py: Python<'_>, deadline: Instant, before_wait: impl FnOnce()) -> bool {
    let participants = live();
    for participant in &participants {
        participant.before_exit(py, deadline);
    }
    let flushes: Vec<Arc<dyn Flush>> = participants.iter().flat_map(|p| p.begin_shutdown()).collect();
    for flush in &flushes {
        flush.begin_shutdown();
    }
    before_wait();
    let complete = finish(py, &flushes, deadline, true);
    INTERPRETER_LEAVING.store(true, Ordering::Release);
    complete
}

/// Called in a forked child by the one fork hook of the Python glue. Runs with the GIL held,
/// and every lock it takes is only ever taken with the GIL held, so none can be held by a
/// thread that did not survive the fork.
#[pyfunction]
pub(crate) fn _after_fork_in_child(py: Python<'_>) {
    ferrotel_sdk::ids::after_fork();
    let pid = std::process::id();
    for participant in live() {
        participant.after_fork(py, pid);
    }
}

/// Catching SIGINT and SIGTERM while the exit flush waits. The interpreter's own handlers
/// only run when the main thread runs Python code, which it may not do while the flush waits
/// (it waits itself, or is parked while a SIGTERM's flush runs), so the exit path installs
/// plain handlers for the wait and puts the previous ones back.
#[allow(unsafe_code)]
mod interrupt {
    use std::cell::UnsafeCell;

    use super::*;

    pub(super) const SIGTERM: i32 = libc::SIGTERM;
    const CAUGHT_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

    static CAUGHT: AtomicI32 = AtomicI32::new(0);

    extern "C" fn caught(signal: libc::c_int) {
        CAUGHT.store(signal, Ordering::SeqCst);
    }

    pub(super) fn name(signal: i32) -> &'static str {
        if signal == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        }
    }

    /// The handlers in place before the guard's. Static, so that a child forked while the
    /// guard is up (another thread of the app forking) gets them back before it runs Python.
    struct Previous(UnsafeCell<[libc::sigaction; 2]>);

    // SAFETY: written only by `Guard::install`, which runs once per process (the exit flush
    // runs once), before SAVED is set; read after SAVED is seen set.
    unsafe impl Sync for Previous {}

    // SAFETY: an all-zero sigaction is plain memory, overwritten before it is read.
    static PREVIOUS: Previous = Previous(UnsafeCell::new(unsafe { std::mem::zeroed() }));
    static SAVED: AtomicBool = AtomicBool::new(false);

    /// The guard's handlers, in place until it is dropped.
    pub(super) struct Guard;

    impl Guard {
        pub(super) fn install() -> Guard {
            restore_in_forked_children();
            CAUGHT.store(0, Ordering::SeqCst);
            // SAFETY: `action` is fully initialised (zeroed, then handler, mask and flags set)
            // before sigaction reads it; PREVIOUS is written by sigaction, by this thread
            // alone (see `Previous`). The handler only stores into an atomic, which is
            // async-signal-safe.
            // The previous actions are saved (and marked so) before the guard's go in: a child
            // forked at any moment gets the app's back.
            unsafe {
                let previous = &mut *PREVIOUS.0.get();
                for (signal, old) in CAUGHT_SIGNALS.iter().zip(previous.iter_mut()) {
                    libc::sigaction(*signal, std::ptr::null(), old);
                }
                SAVED.store(true, Ordering::Release);
                for signal in CAUGHT_SIGNALS {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = caught as extern "C" fn(libc::c_int) as libc::sighandler_t;
                    libc::sigemptyset(&mut action.sa_mask);
                    action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
                    libc::sigaction(signal, &action, std::ptr::null_mut());
                }
            }
            Guard
        }

        pub(super) fn caught(&self) -> Option<i32> {
            match CAUGHT.load(Ordering::SeqCst) {
                0 => None,
                signal => Some(signal),
            }
        }
    }

    /// Puts the previous actions back, then unmarks them (the reverse order of `install`).
    fn restore() {
        if SAVED.load(Ordering::Acquire) {
            // SAFETY: PREVIOUS holds what sigaction returned for these signals at install.
            unsafe {
                for (signal, old) in CAUGHT_SIGNALS.iter().zip((*PREVIOUS.0.get()).iter()) {
                    libc::sigaction(*signal, old, std::ptr::null_mut());
                }
            }
            SAVED.store(false, Ordering::Release);
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            restore();
        }
    }

    /// A child forked while the guard is up (another thread of the app forking) gets the
    /// app's actions back before it runs any Python.
    fn restore_in_forked_children() {
        static AT_FORK: std::sync::Once = std::sync::Once::new();
        extern "C" fn in_forked_child() {
            restore();
        }
        // SAFETY: the child handler only calls sigaction and stores an atomic.
        AT_FORK.call_once(|| unsafe {
            libc::pthread_atfork(None, None, Some(in_forked_child));
        });
    }

    pub(in crate::runtime) fn restore_in_forked_child() {
        restore();
    }

    /// Ends the process by SIGTERM with its default action, so the exit status says so, from
    /// any thread (the SIGTERM waiter blocks it, so it is unblocked here first). Should a
    /// handler be put back in between, the process still ends, with the status a shell gives
    /// a SIGTERM.
    pub(in crate::runtime) fn die_of_sigterm() -> ! {
        // SAFETY: plain libc calls with valid constants and an initialised set; raise does
        // not return when the default action terminates the process.
        unsafe {
            let mut term: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut term);
            libc::sigaddset(&mut term, libc::SIGTERM);
            for _ in 0..3 {
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &term, std::ptr::null_mut());
                libc::raise(libc::SIGTERM);
            }
            libc::_exit(128 + libc::SIGTERM)
        }
    }
}
