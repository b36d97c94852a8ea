//! The lifecycle of every provider of every signal: the exit flush (at `atexit`, at
//! `os._exit` in forked children, on a SIGTERM the app does not handle itself), the rebuild
//! in a forked child, and what the user is told about telemetry that was not delivered.
//!
//! Signals take part through [`Participant`]; this module knows none of them. The exit
//! flush is bounded by one deadline for all of them together (they flush in parallel), and
//! a second SIGINT or SIGTERM during it ends it at once, with the count line.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
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
const POLL: Duration = Duration::from_millis(20);

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

pub(super) use interrupt::die_of_sigterm;

/// Total time the exit flush may add, however much is pending.
const EXIT_DEADLINE: Duration = Duration::from_secs(5);

/// Who runs the exit flush. It runs once per process; whoever comes second (the app
/// leaving while a SIGTERM's flush runs, or the other way round) waits for it to be over.
/// Atomics, not a lock: a forked child resets it, whatever a thread of the parent was doing.
static EXIT_FLUSH: AtomicU8 = AtomicU8::new(NOT_STARTED);
const NOT_STARTED: u8 = 0;
/// Taken by the SIGTERM waiter, which is about to take the GIL to run it.
const CLAIMED_BY_SIGTERM: u8 = 1;
const RUNNING: u8 = 2;
const OVER: u8 = 3;

/// The exit path (`atexit`, `os._exit`): shuts every provider down within one deadline.
#[pyfunction]
pub(crate) fn _exit_flush(py: Python<'_>) -> bool {
    exit_flush(py, false)
}

pub(super) fn exit_flush(py: Python<'_>, by_sigterm: bool) -> bool {
    let ours = if by_sigterm { CLAIMED_BY_SIGTERM } else { NOT_STARTED };
    let complete = if EXIT_FLUSH
        .compare_exchange(ours, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        let complete = shutdown_all(py);
        EXIT_FLUSH.store(OVER, Ordering::Release);
        complete
    } else {
        py.detach(wait_for_exit_flush);
        true
    };
    if super::sigterm::received() {
        die_of_sigterm();
    }
    complete
}

/// For the SIGTERM waiter: `true` if the exit flush is now its to run; otherwise it waited
/// until another caller's flush was over.
pub(super) fn claim_exit_flush_for_sigterm() -> bool {
    let claimed = EXIT_FLUSH
        .compare_exchange(NOT_STARTED, CLAIMED_BY_SIGTERM, Ordering::AcqRel, Ordering::Acquire)
        .is_ok();
    if !claimed {
        wait_for_exit_flush();
    }
    claimed
}

/// Polls: this wait happens at most once, while the process ends.
fn wait_for_exit_flush() {
    while EXIT_FLUSH.load(Ordering::Acquire) != OVER {
        std::thread::sleep(POLL);
    }
}

fn shutdown_all(py: Python<'_>) -> bool {
    // A WSGI response nobody closed ends its span when collected: collect first, so those
    // spans are flushed rather than lost at finalization.
    if crate::instrumentation::body::open_bodies() > 0 {
        if let Ok(gc) = py.import("gc") {
            let _ = gc.call_method0("collect");
        }
    }
    let deadline = Instant::now() + EXIT_DEADLINE;
    let participants = live();
    for participant in &participants {
        participant.before_exit(py, deadline);
    }
    let flushes: Vec<Arc<dyn Flush>> = participants.iter().flat_map(|p| p.begin_shutdown()).collect();
    for flush in &flushes {
        flush.begin_shutdown();
    }
    let complete = finish(py, &flushes, deadline, true);
    INTERPRETER_LEAVING.store(true, Ordering::Release);
    complete
}

/// For ferrotel's own Python threads (the metrics reader): a SIGTERM the kernel handed to one
/// of them would never wake the app's main thread.
#[pyfunction]
pub(crate) fn _leave_signals_to_the_app() {
    ferrotel_sdk::background::leave_signals_to_the_app();
}

/// Called in a forked child by the one fork hook of the Python glue. Runs with the GIL held,
/// and every lock it takes is only ever taken with the GIL held, so none can be held by a
/// thread that did not survive the fork.
#[pyfunction]
pub(crate) fn _after_fork_in_child(py: Python<'_>) {
    ferrotel_sdk::ids::after_fork();
    EXIT_FLUSH.store(NOT_STARTED, Ordering::Release);
    super::sigterm::after_fork();
    let pid = std::process::id();
    for participant in live() {
        participant.after_fork(py, pid);
    }
}

/// Catching SIGINT and SIGTERM while the exit flush waits. The interpreter's own handlers
/// only run when the main thread runs Python code, which it does not while it waits here,
/// so the exit path installs plain handlers for the wait and puts the previous ones back.
#[allow(unsafe_code)]
mod interrupt {
    use super::*;

    pub(super) const SIGTERM: i32 = libc::SIGTERM;

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

    /// The handlers that were in place, restored on drop.
    pub(super) struct Guard {
        previous: Vec<(libc::c_int, libc::sigaction)>,
    }

    impl Guard {
        pub(super) fn install() -> Guard {
            CAUGHT.store(0, Ordering::SeqCst);
            let mut previous = Vec::new();
            for signal in [libc::SIGINT, libc::SIGTERM] {
                // SAFETY: `action` is fully initialised (zeroed, then handler, mask and flags
                // set) before sigaction reads it; `old` is written by sigaction. The handler
                // only stores into an atomic, which is async-signal-safe.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = caught as extern "C" fn(libc::c_int) as libc::sighandler_t;
                    libc::sigemptyset(&mut action.sa_mask);
                    action.sa_flags = libc::SA_RESTART;
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(signal, &action, &mut old) == 0 {
                        previous.push((signal, old));
                    }
                }
            }
            Guard { previous }
        }

        pub(super) fn caught(&self) -> Option<i32> {
            match CAUGHT.load(Ordering::SeqCst) {
                0 => None,
                signal => Some(signal),
            }
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            for (signal, old) in &self.previous {
                // SAFETY: `old` is what sigaction returned for this signal at install.
                unsafe {
                    libc::sigaction(*signal, old, std::ptr::null_mut());
                }
            }
        }
    }

    /// Ends the process by SIGTERM with its default action, so the exit status says so.
    /// On any thread: ours block SIGTERM, so it is unblocked here before it is raised.
    pub(in crate::runtime) fn die_of_sigterm() {
        // SAFETY: plain libc calls with valid constants and an initialised set; raise does
        // not return when the default action terminates the process.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            let mut term: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut term);
            libc::sigaddset(&mut term, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &term, std::ptr::null_mut());
            libc::raise(libc::SIGTERM);
        }
    }
}
