"""The bounded flush at exit, for every provider (spans and log records) at once: installed
by the first signal module imported, once."""

import atexit
import os

from ferrotel import _native

# Total time the exit flush may add, however much is pending.
EXIT_DEADLINE_MILLIS = 5000.0

_original_exit = os._exit


def _flushing_exit(code):
    # multiprocessing's children (fork, forkserver) leave through os._exit, where atexit
    # never runs; recorded telemetry would be lost. The flush is bounded like the one at exit.
    _native._shutdown_all(EXIT_DEADLINE_MILLIS)
    _original_exit(code)


os._exit = _flushing_exit
atexit.register(_native._shutdown_all, EXIT_DEADLINE_MILLIS)
