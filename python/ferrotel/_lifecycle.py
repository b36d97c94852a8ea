"""Exit and fork for every provider of every signal, in one place: installed once, at
start-up by ferrotel's configurator (before the app's server sets its own signal handlers)
or by the first signal module imported.

- At exit (`atexit`), and at `os._exit` (how multiprocessing's children leave, where atexit
  never runs), everything recorded is flushed within one bounded deadline. A WSGI response
  nobody closed (a test client's) ends its span when collected; while any is open, garbage
  is collected first, so those spans are flushed too rather than lost at finalization.
- On SIGTERM, when the app left it at its default or set it back to it (a container stop,
  `kill`, a server such as uvicorn that re-raises it after its own shutdown, gunicorn's
  uvicorn workers, which reset it to the default first), the same flush runs, then the
  process ends by SIGTERM exactly as it would have without ferrotel. The app still sees
  SIG_DFL as SIGTERM's handler.
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


def _flush():
    if _native.open_bodies():
        import gc  # here: start-up imports nothing it does not need

        gc.collect()
    _native._shutdown_all(EXIT_DEADLINE_MILLIS)


def _flushing_exit(code):
    _flush()
    _original_exit(code)


_set_handler = _signal.signal
_get_handler = _signal.getsignal


def _flush_then_terminate(signum, frame):
    _flush()
    _set_handler(signum, _signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _is_default(handler):
    return isinstance(handler, int) and handler == _signal.SIG_DFL


def _setting_sigterm_default_keeps_the_flush(signalnum, handler):
    # `signal.signal` calls this with plain ints. An app (or server) putting SIGTERM back to
    # its default gets the flush before that default, as if it had never changed it.
    if signalnum == _signal.SIGTERM and _is_default(handler):
        handler = _flush_then_terminate
    previous = _set_handler(signalnum, handler)
    return _signal.SIG_DFL if previous is _flush_then_terminate else previous


def _sigterm_flush_reads_as_default(signalnum):
    handler = _get_handler(signalnum)
    return _signal.SIG_DFL if handler is _flush_then_terminate else handler


def _install_sigterm_flush():
    # A handler of the app's own replaces ours (and may hand it back, as uvicorn does);
    # Python allows handlers in the main thread only.
    # `signal` copies the docstrings of these when it is imported.
    _setting_sigterm_default_keeps_the_flush.__doc__ = _set_handler.__doc__
    _sigterm_flush_reads_as_default.__doc__ = _get_handler.__doc__
    _signal.signal = _setting_sigterm_default_keeps_the_flush
    _signal.getsignal = _sigterm_flush_reads_as_default
    if not _is_default(_get_handler(_signal.SIGTERM)):
        return
    try:
        _set_handler(_signal.SIGTERM, _flush_then_terminate)
    except ValueError:
        pass


os._exit = _flushing_exit
atexit.register(_flush)
os.register_at_fork(after_in_child=_native._after_fork_in_child)
os.register_at_fork(after_in_child=_native._bodies_after_fork_in_child)
_install_sigterm_flush()
