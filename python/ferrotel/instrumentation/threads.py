"""Context propagation into `threading.Thread` and `concurrent.futures` thread pools: work
started inside a span runs inside it, as the code reads. Nothing is captured before the
opentelemetry-api is in use (there is no span to carry then)."""

import sys
import threading

from ferrotel import _loader
from ferrotel.instrumentation import Instrumentor


def _capture():
    context = sys.modules.get("opentelemetry.context")
    return None if context is None else context.get_current()


def _run_in(captured, func, *args, **kwargs):
    context = sys.modules["opentelemetry.context"]
    token = context.attach(captured)
    try:
        return func(*args, **kwargs)
    finally:
        context.detach(token)


class ThreadingInstrumentor(Instrumentor):
    name = "threading"

    def _instrument(self, **kwargs):
        thread = threading.Thread
        # _bootstrap_inner runs every thread's run(), overridden or not.
        self._entry_name = "_bootstrap_inner" if hasattr(thread, "_bootstrap_inner") else "run"
        self._start, self._entry = thread.start, getattr(thread, self._entry_name)
        original_start, original_entry = self._start, self._entry

        def start(self):
            self._ferrotel_context = _capture()
            return original_start(self)

        def entry(self):
            captured = getattr(self, "_ferrotel_context", None)
            if captured is None:
                return original_entry(self)
            return _run_in(captured, original_entry, self)

        thread.start = start
        setattr(thread, self._entry_name, entry)
        self._submit = None
        _loader.when_imported("concurrent.futures.thread", self._patch_pool)

    def _patch_pool(self):
        if not self._instrumented and self._submit is not None:
            return
        from concurrent.futures import ThreadPoolExecutor

        self._submit = original_submit = ThreadPoolExecutor.submit

        def submit(self, fn, /, *args, **kwargs):
            captured = _capture()
            if captured is None:
                return original_submit(self, fn, *args, **kwargs)
            return original_submit(self, _run_in, captured, fn, *args, **kwargs)

        ThreadPoolExecutor.submit = submit

    def _uninstrument(self, **kwargs):
        threading.Thread.start = self._start
        setattr(threading.Thread, self._entry_name, self._entry)
        if self._submit is not None:
            from concurrent.futures import ThreadPoolExecutor

            ThreadPoolExecutor.submit = self._submit
            self._submit = None
