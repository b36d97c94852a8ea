//! Threads of ours that run beside the app (export workers, a scrape endpoint, a metrics
//! reader). Signals are the app's: these threads block the asynchronous ones, so the kernel
//! never hands a SIGTERM or SIGINT to one of them, where the interpreter's handler would only
//! set a flag that its main thread, asleep in `time.sleep`, does not see until it wakes.

use std::io;
use std::thread::JoinHandle;

/// Starts a named thread that leaves signals to the app (threads it starts inherit that).
pub fn spawn<F, T>(name: &str, run: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new().name(name.into()).spawn(move || {
        leave_signals_to_the_app();
        run()
    })
}

/// Blocks the asynchronous signals on the calling thread; the signals a fault raises stay
/// deliverable.
#[allow(unsafe_code)]
pub fn leave_signals_to_the_app() {
    // SAFETY: `set` is initialised by sigfillset before anything reads it, then changed with
    // valid signal numbers; pthread_sigmask only changes the calling thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for synchronous in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP] {
            libc::sigdelset(&mut set, synchronous);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's signal mask (`SigBlk`, hex, as the kernel reports it).
    fn blocked_signals() -> u64 {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let mask = status.lines().find_map(|line| line.strip_prefix("SigBlk:\t")).unwrap();
        u64::from_str_radix(mask, 16).unwrap()
    }

    #[test]
    fn a_background_thread_and_the_threads_it_starts_leave_signals_to_the_app() {
        let bit = |signal: i32| 1u64 << (signal - 1);
        let (ours, inherited) = spawn("ferrotel-test", || {
            (blocked_signals(), std::thread::spawn(blocked_signals).join().unwrap())
        })
        .unwrap()
        .join()
        .unwrap();
        for blocked in [ours, inherited] {
            assert_ne!(blocked & bit(libc::SIGTERM), 0);
            assert_ne!(blocked & bit(libc::SIGINT), 0);
            assert_eq!(blocked & bit(libc::SIGSEGV), 0, "faults stay deliverable");
        }
        assert_eq!(
            blocked_signals() & bit(libc::SIGTERM),
            0,
            "the caller's mask is untouched"
        );
    }
}
