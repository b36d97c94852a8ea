//! The exit flush, once per process (`atexit`, `os._exit`, a SIGTERM the app leaves at its
//! default; whoever comes second waits for it), and SIGTERM's part in it.
//!
//! On a SIGTERM left at its default every provider flushes, then the process ends by SIGTERM,
//! whatever its main thread is doing. A handler of the interpreter's own only runs when the
//! main thread next checks for signals: a SIGTERM that arrives after its last check and before
//! it enters a blocking call (`time.sleep`: seen in CI, the main thread slept on through it)
//! waits until that call returns, and native code that retries through EINTR (libc's
//! `system()`, libpq) holds it off as long as it runs, where a bare app ends at once. So the
//! handler is a plain one that wakes a waiter thread of ours:
//!
//! - the waiter starts the flush on a thread of its own (which takes the GIL, runs the flush,
//!   parking the app's main thread at its next bytecode while the pipelines drain, and ends
//!   the process by SIGTERM);
//! - the waiter itself ends the process by SIGTERM at a second SIGTERM, or when the flush has
//!   not ended it within the exit deadline plus a grace from the SIGTERM (native code keeping
//!   the GIL): however the app is stuck, a SIGTERM ends it.
//!
//! The app still sees SIG_DFL (the interpreter's table never learns of this handler); a
//! handler the app sets replaces it, and setting SIG_DFL again re-arms it (`_lifecycle.py`).
//! A forked child starts with SIGTERM at SIG_DFL and no waiter (`pthread_atfork`), until the
//! fork hook re-arms it: a SIGTERM in between ends it unflushed, as it would a bare child.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use ferrotel_config::LogLevel;
use ferrotel_sdk::diagnostics::{line, write_stderr};
use pyo3::prelude::*;

use super::lifecycle::{die_of_sigterm, restore_interrupt_handlers_in_forked_child, shutdown_all, POLL};

/// Total time the exit flush may add, however much is pending.
const EXIT_DEADLINE: Duration = Duration::from_secs(5);
/// Beyond the deadline: how long anyone waits for another's exit flush, and how long after a
/// SIGTERM the process ends whatever holds the flush up.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Who runs the exit flush. It runs once per process; whoever comes second (the app
/// leaving while a SIGTERM's flush runs, or the other way round) waits for it to be over.
/// Atomics, not a lock: a forked child resets them, whatever a thread of the parent was doing.
static EXIT_FLUSH: AtomicU8 = AtomicU8::new(NOT_STARTED);
const NOT_STARTED: u8 = 0;
/// Taken for the SIGTERM's flush thread, which is about to take the GIL to run it.
const CLAIMED_BY_SIGTERM: u8 = 1;
const RUNNING: u8 = 2;
const OVER: u8 = 3;
/// The thread running the exit flush: something it calls that leaves the process
/// (`os._exit` in a processor) must not wait for itself.
static EXIT_FLUSH_THREAD: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
fn this_thread() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// The exit path (`atexit`, `os._exit`): shuts every provider down within one deadline.
#[pyfunction]
pub(crate) fn _exit_flush(py: Python<'_>) -> bool {
    exit_flush(py, None)
}

/// `sigterm`: when the SIGTERM's flush thread runs it, the moment the SIGTERM was seen, which
/// its deadline counts from (the waiter ends the process a grace after that).
fn exit_flush(py: Python<'_>, sigterm: Option<Instant>) -> bool {
    let ours = if sigterm.is_some() {
        CLAIMED_BY_SIGTERM
    } else {
        NOT_STARTED
    };
    let claimed = EXIT_FLUSH.compare_exchange(ours, RUNNING, Ordering::AcqRel, Ordering::Acquire);
    let complete = match claimed {
        Ok(_) => {
            EXIT_FLUSH_THREAD.store(this_thread(), Ordering::Release);
            let deadline = Instant::now() + EXIT_DEADLINE;
            let deadline = sigterm.map_or(deadline, |seen| deadline.min(seen + EXIT_DEADLINE));
            let park = sigterm.is_some();
            let complete = shutdown_all(py, deadline, || {
                if park {
                    park_the_main_thread();
                }
            });
            EXIT_FLUSH.store(OVER, Ordering::Release);
            disarm();
            complete
        }
        Err(_) if EXIT_FLUSH_THREAD.load(Ordering::Acquire) == this_thread() => false,
        Err(_) => {
            py.detach(wait_for_exit_flush);
            EXIT_FLUSH.load(Ordering::Acquire) == OVER
        }
    };
    if received() {
        die_of_sigterm();
    }
    complete
}

/// For the SIGTERM's flush thread: `true` if the exit flush is now its to run.
fn claim_exit_flush_for_sigterm() -> bool {
    EXIT_FLUSH
        .compare_exchange(NOT_STARTED, CLAIMED_BY_SIGTERM, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Waits while another's exit flush runs, within the time it may take. Polls: this wait
/// happens at most once, while the process ends.
fn wait_for_exit_flush() {
    let limit = Instant::now() + EXIT_DEADLINE + EXIT_GRACE;
    while matches!(EXIT_FLUSH.load(Ordering::Acquire), CLAIMED_BY_SIGTERM | RUNNING) && Instant::now() < limit {
        std::thread::sleep(POLL);
    }
}

fn exit_flush_over() -> bool {
    EXIT_FLUSH.load(Ordering::Acquire) == OVER
}

/// What the handler posts to: `sem_post` is async-signal-safe, and the semaphore lives in
/// this process's memory (a forked child re-initialises its copy, so a post the parent had
/// not taken yet is not the child's).
struct Wake(UnsafeCell<libc::sem_t>);

// SAFETY: sem_init runs before any other thread or handler uses the semaphore (arming holds
// the GIL; a forked child has one thread); sem_post/sem_wait/sem_timedwait are thread-safe.
#[allow(unsafe_code)]
unsafe impl Sync for Wake {}

// SAFETY: an all-zero sem_t is plain memory; sem_init makes it a semaphore before use.
#[allow(unsafe_code)]
static WAKE: Wake = Wake(UnsafeCell::new(unsafe { std::mem::zeroed() }));
static WAKE_READY: AtomicBool = AtomicBool::new(false);
static AT_FORK: Once = Once::new();
/// Whoever ends the exit flush ends the process by SIGTERM once one arrived: the app's own
/// thread may finish the flush (and would otherwise go on to exit with its own status).
static RECEIVED: AtomicBool = AtomicBool::new(false);
/// The process whose waiter thread is running (a forked child has none until it starts one).
static WAITER_OF: AtomicU32 = AtomicU32::new(0);

#[allow(unsafe_code)]
extern "C" fn on_sigterm(_: libc::c_int) {
    // Neither call changes errno unless the semaphore overflowed.
    RECEIVED.store(true, Ordering::Release);
    // SAFETY: WAKE was initialised before this handler was installed.
    unsafe { libc::sem_post(WAKE.0.get()) };
}

fn received() -> bool {
    RECEIVED.load(Ordering::Acquire)
}

/// Installs the handler when SIGTERM is at SIG_DFL (or already ours) and the exit flush is not
/// over: a C-level handler someone installed behind the interpreter's back is left alone.
/// Without a waiter thread it stays at SIG_DFL: the process then ends as it would have
/// without ferrotel, unflushed.
#[pyfunction]
#[allow(unsafe_code)]
pub(crate) fn _arm_sigterm_flush() {
    let current = handler();
    if (current != libc::SIG_DFL && current != on_sigterm_address()) || exit_flush_over() {
        return;
    }
    fork_safety();
    // SAFETY: initialises the static semaphore before any handler can post to it; arming runs
    // with the GIL held, so never twice at once.
    if !WAKE_READY.load(Ordering::Acquire) && unsafe { libc::sem_init(WAKE.0.get(), 0, 0) } == 0 {
        WAKE_READY.store(true, Ordering::Release);
    }
    if !WAKE_READY.load(Ordering::Acquire) || !start_waiter() {
        return;
    }
    // SAFETY: `action` is fully initialised before sigaction reads it; the handler only
    // stores an atomic and calls sem_post.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigterm_address();
        libc::sigemptyset(&mut action.sa_mask);
        // Interrupted system calls that can be restarted are, as under SIG_DFL nothing
        // interrupts them; the alternate stack, as the interpreter's own handlers use it.
        action.sa_flags = libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

/// Once the exit flush is over, a SIGTERM ends the process at once, as it would a bare one.
fn disarm() {
    if handler() == on_sigterm_address() {
        set_default();
    }
}

fn on_sigterm_address() -> libc::sighandler_t {
    on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t
}

#[allow(unsafe_code)]
fn handler() -> libc::sighandler_t {
    // SAFETY: a null new action only reads the current one into `current`.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGTERM, std::ptr::null(), &mut current);
        current.sa_sigaction
    }
}

#[allow(unsafe_code)]
fn set_default() {
    // SAFETY: SIG_DFL for a valid signal.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_DFL) };
}

/// Registers, once, what a forked child needs before any Python runs in it.
#[allow(unsafe_code)]
fn fork_safety() {
    // SAFETY: registers a child handler that only stores atomics, calls sigaction and
    // re-initialises a semaphore no thread of the child uses yet.
    AT_FORK.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(in_forked_child));
    });
}

/// In a forked child, before any Python runs there: no exit flush has started in it, the
/// parent's handlers for a flush's wait are not its own, and SIGTERM is at SIG_DFL until the
/// fork hook re-arms it.
#[allow(unsafe_code)]
extern "C" fn in_forked_child() {
    restore_interrupt_handlers_in_forked_child();
    if handler() == on_sigterm_address() {
        set_default();
    }
    EXIT_FLUSH.store(NOT_STARTED, Ordering::Release);
    EXIT_FLUSH_THREAD.store(0, Ordering::Release);
    RECEIVED.store(false, Ordering::Release);
    WAITER_OF.store(0, Ordering::Release);
    if WAKE_READY.load(Ordering::Acquire) {
        // SAFETY: the child's copy of the semaphore; its only user, the waiter, did not survive
        // the fork. sem_init is not on POSIX's async-signal-safe list, but on glibc and musl it
        // only stores into the semaphore's memory.
        unsafe { libc::sem_init(WAKE.0.get(), 0, 0) };
    }
}

/// Starts this process's waiter unless it runs. It is created with the asynchronous signals
/// blocked (the kernel hands them to the app's threads, where the interpreter's handlers
/// belong); the flush thread it starts gets the app's mask back, since the flush may run
/// Python code that starts processes or threads.
#[allow(unsafe_code)]
fn start_waiter() -> bool {
    let pid = std::process::id();
    if WAITER_OF.load(Ordering::Acquire) == pid {
        return true;
    }
    // SAFETY: `all` is initialised by sigfillset, the signals a fault raises are taken out of
    // it, and pthread_sigmask only changes this thread's mask, which is put back below.
    let app_mask = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        for synchronous in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP] {
            libc::sigdelset(&mut all, synchronous);
        }
        let mut app_mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut app_mask);
        AppMask(app_mask)
    };
    let started = std::thread::Builder::new()
        .name("ferrotel-sigterm".into())
        .stack_size(64 << 10)
        .spawn(move || wait_for_sigterm(app_mask))
        .is_ok();
    app_mask.restore();
    if started {
        WAITER_OF.store(pid, Ordering::Release);
    }
    started
}

#[derive(Clone, Copy)]
struct AppMask(libc::sigset_t);

impl AppMask {
    #[allow(unsafe_code)]
    fn restore(&self) {
        // SAFETY: a mask pthread_sigmask returned, for the calling thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

#[allow(unsafe_code)]
fn wait_for_sigterm(app_mask: AppMask) {
    // SAFETY: the semaphore was initialised before this thread was started.
    while unsafe { libc::sem_wait(WAKE.0.get()) } != 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            WAITER_OF.store(0, Ordering::Release);
            disarm();
            return;
        }
    }
    let seen = Instant::now();
    let flushing = std::thread::Builder::new()
        .name("ferrotel-flush".into())
        // The flush may run Python code (processors, exporters, finalizers) on this thread.
        .stack_size(8 << 20)
        .spawn(move || {
            app_mask.restore();
            flush_then_end(seen);
        });
    let outcome = if flushing.is_err() {
        "no thread to run it"
    } else {
        wait_for_second_sigterm(seen + EXIT_DEADLINE + EXIT_GRACE)
    };
    warn_then_end(&format!("the exit flush after SIGTERM was cut short by {outcome}"));
}

/// Waits for a second SIGTERM until `limit` (on the monotonic clock: sem_timedwait's own is
/// the wall clock, so it waits in short slices). Says what ended the wait.
#[allow(unsafe_code)]
fn wait_for_second_sigterm(limit: Instant) -> &'static str {
    loop {
        let left = limit.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return "the time it may take";
        }
        let slice = realtime_after(left.min(Duration::from_millis(200)));
        // SAFETY: the semaphore was initialised before this thread was started; `slice` is a
        // valid absolute CLOCK_REALTIME time.
        if unsafe { libc::sem_timedwait(WAKE.0.get(), &slice) } == 0 {
            return "a second SIGTERM";
        }
        if !matches!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINTR | libc::ETIMEDOUT)
        ) {
            return "an error waiting for it";
        }
    }
}

/// Ends the process by SIGTERM after saying why, from a thread of its own: a standard error
/// nobody reads (a full pipe) must not hold the end up for more than a moment.
fn warn_then_end(message: &str) {
    if ferrotel_sdk::diagnostics::enabled(LogLevel::Warning) {
        let text = line(LogLevel::Warning, message);
        let (said, wait) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new().spawn(move || {
            write_stderr(&text);
            let _ = said.send(());
        });
        if writer.is_ok() {
            let _ = wait.recv_timeout(Duration::from_millis(200));
        }
    }
    die_of_sigterm();
}

/// Ends the process by SIGTERM when dropped: on every way out of the flush, a panic included.
struct EndBySigterm;

impl Drop for EndBySigterm {
    fn drop(&mut self) {
        die_of_sigterm();
    }
}

/// Runs the exit flush unless someone else already does (then waits for it), and ends the
/// process by SIGTERM.
fn flush_then_end(seen: Instant) {
    let _end = EndBySigterm;
    if claim_exit_flush_for_sigterm() {
        Python::try_attach(|py| exit_flush(py, Some(seen)));
    } else {
        wait_for_exit_flush();
    }
}

/// The app's main thread waits (without the GIL) at its next bytecode until the flush is over,
/// as it would have been gone at once without ferrotel.
#[allow(unsafe_code)]
fn park_the_main_thread() {
    extern "C" fn park(_: *mut std::ffi::c_void) -> libc::c_int {
        // SAFETY: pending calls run on the main thread with the GIL held; it is released for
        // the wait and taken back before returning to the interpreter.
        unsafe {
            let state = pyo3::ffi::PyEval_SaveThread();
            wait_for_exit_flush();
            pyo3::ffi::PyEval_RestoreThread(state);
        }
        0
    }
    // SAFETY: Py_AddPendingCall may be called from any thread; a full queue only fails it.
    unsafe { pyo3::ffi::Py_AddPendingCall(Some(park), std::ptr::null_mut()) };
}

#[allow(unsafe_code)]
fn realtime_after(delay: std::time::Duration) -> libc::timespec {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let nanos = now.tv_nsec as u64 + u64::from(delay.subsec_nanos());
    // Converted by inference: time_t's width differs between glibc and musl, and libc
    // deprecates naming it.
    let seconds = (delay.as_secs() + nanos / 1_000_000_000).try_into().unwrap_or(0);
    libc::timespec {
        tv_sec: now.tv_sec.saturating_add(seconds),
        tv_nsec: (nanos % 1_000_000_000).try_into().unwrap_or(0),
    }
}
