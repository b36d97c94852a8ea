"""Exit and fork for every provider of every signal, in one place: installed once, at
start-up by ferrotel's configurator (before the app's server sets its own signal handlers)
or by the first signal module imported.

- At exit (`atexit`), and at `os._exit` (how multiprocessing's children leave, where atexit
  never runs), everything recorded is flushed within one bounded deadline. A WSGI response
  nobody closed (a test client's) ends its span when collected; while any is open, garbage
  is collected first, so those spans are flushed too rather than lost at finalization.
- On SIGTERM, when the app left it at its default or set it back to it (a container stop,
  `kill`, a server such as uvicorn that re-raises it after its own shutdown, gunicorn's
  uvicorn workers, which reset it to the default first), the same flush runs on a thread of
  ferrotel's (runtime/exit.rs) while the app's main thread waits at its next bytecode,
  then the process ends by SIGTERM as it would have without ferrotel, within the flush's
  deadline plus a grace however the app is stuck. The app still sees SIG_DFL as SIGTERM's
  handler.
- In a forked child every provider gets fresh pipelines (and the metrics reader a fresh
  thread) with the child's pid, and SIGTERM's flush is armed again if the child's SIGTERM
  is at its default.
"""

import _signal  # type: ignore[import-not-found]  # the C module: `signal` would import `enum` at start-up
import atexit
import os

from ferrotel import _native

_original_exit = os._exit


def _flushing_exit(code):
    _native._exit_flush()
    _original_exit(code)


_set_handler = _signal.signal


def _is_default(handler):
    return isinstance(handler, int) and handler == _signal.SIG_DFL


def _setting_sigterm_default_keeps_the_flush(signalnum, handler):
    # `signal.signal` calls this with plain ints. An app (or server) putting SIGTERM back to
    # its default gets the flush before that default, as if it had never changed it.
    previous = _set_handler(signalnum, handler)
    if signalnum == _signal.SIGTERM and _is_default(handler):
        _native._arm_sigterm_flush()
    return previous


def _arm_if_default():
    if _is_default(_signal.getsignal(_signal.SIGTERM)):
        _native._arm_sigterm_flush()


def _install_sigterm_flush():
    # A handler of the app's own replaces ours (and may hand it back, as uvicorn does).
    # `signal` copies the docstring of this when it is imported.
    _setting_sigterm_default_keeps_the_flush.__doc__ = _set_handler.__doc__
    _signal.signal = _setting_sigterm_default_keeps_the_flush
    _arm_if_default()


os._exit = _flushing_exit
atexit.register(_native._exit_flush)
os.register_at_fork(after_in_child=_native._after_fork_in_child)
os.register_at_fork(after_in_child=_arm_if_default)
_install_sigterm_flush()
