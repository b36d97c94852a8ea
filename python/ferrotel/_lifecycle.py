"""Exit and fork for every provider of every signal, in one place: installed once, at
start-up by ferrotel's configurator (before the app's server sets its own signal handlers)
or by the first signal module imported.

- At exit (`atexit`), and at `os._exit` (how multiprocessing's children leave, where atexit
  never runs), everything recorded is flushed within one bounded deadline.
- On SIGTERM, when the app left it at its default (a container stop, `kill`, or a server
  such as uvicorn that re-raises it after its own shutdown), the same flush runs, then the
  process ends by SIGTERM exactly as it would have without ferrotel.
- In a forked child every provider gets fresh pipelines (and the metrics reader a fresh
  thread) with the child's pid.
"""

import _signal  # type: ignore[import-not-found]  # the C module: `signal` would import `enum` at start-up
import atexit
import os

from ferrotel import _native

# Total time the exit flush may add, however much is pending.
EXIT_DEADLINE_MILLIS = 5000.0

_original_exit = os._exit


def _flushing_exit(code):
    _native._shutdown_all(EXIT_DEADLINE_MILLIS)
    _original_exit(code)


def _flush_then_terminate(signum, frame):
    _native._shutdown_all(EXIT_DEADLINE_MILLIS)
    _signal.signal(signum, _signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_sigterm_flush():
    # Only a SIGTERM the app leaves at its default is taken (an app or server that sets its
    # own handler later replaces ours, and may hand it back, as uvicorn does); Python allows
    # handlers in the main thread only.
    if _signal.getsignal(_signal.SIGTERM) is not _signal.SIG_DFL:
        return
    try:
        _signal.signal(_signal.SIGTERM, _flush_then_terminate)
    except ValueError:
        pass


os._exit = _flushing_exit
atexit.register(_native._shutdown_all, EXIT_DEADLINE_MILLIS)
os.register_at_fork(after_in_child=_native._after_fork_in_child)
_install_sigterm_flush()
