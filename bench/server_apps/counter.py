"""Counts the requests this process's app handled and writes the count to
`$BENCH_COUNT_DIR/count.PID` when the process exits: wrk stops with requests in flight that
the server still serves, so only the app knows how many spans must arrive."""

import atexit
import os

handled = 0


def _write():
    directory = os.environ.get("BENCH_COUNT_DIR")
    if directory:
        with open(os.path.join(directory, f"count.{os.getpid()}"), "w") as out:
            out.write(str(handled))


atexit.register(_write)
