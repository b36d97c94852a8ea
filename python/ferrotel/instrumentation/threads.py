"""Context propagation into `threading.Thread`, `concurrent.futures` thread pools and
aiosqlite's connection thread: work started inside a span runs inside it, as the code reads.
Nothing is captured before the opentelemetry-api is in use (there is no span to carry then)."""

import sys
import threading

from ferrotel import _loader
from ferrotel.instrumentation import Instrumentor


def _capture():
    context = sys.modules.get("opentelemetry.context")
    if context is None or getattr(context.__spec__, "_initializing", False):
        # Not imported, or still being imported by another thread (its functions may not
        # be defined yet): there is no span to carry.
        return None
    return context.get_current()


def _run_in(captured, func, /, *args, **kwargs):
    context = sys.modules["opentelemetry.context"]
    token = context.attach(captured)
    try:
        return func(*args, **kwargs)
    finally:
        context.detach(token)


class ThreadingInstrumentor(Instrumentor):
    name = "threading"

    def _instrument(self, **kwargs):
        # The import hooks below may fire long after this, or after an uninstrument: they
        # patch only while this is set, and only once.
        self._active = True
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
        self._aiosqlite_execute = None
        _loader.when_imported("aiosqlite.core", self._patch_aiosqlite)

    def _patch_pool(self):
        if not self._active or self._submit is not None:
            return
        from concurrent.futures import ThreadPoolExecutor

        self._submit = original_submit = ThreadPoolExecutor.submit

        def submit(self, fn, /, *args, **kwargs):
            captured = _capture()
            if captured is None:
                return original_submit(self, fn, *args, **kwargs)
            return original_submit(self, _run_in, captured, fn, *args, **kwargs)

        ThreadPoolExecutor.submit = submit

    def _patch_aiosqlite(self):
        # aiosqlite runs every call of a connection on one long-lived thread, fed by a queue:
        # without this, each statement's span would sit under whatever was current when the
        # connection opened, and SQLAlchemy's suppression of the driver's span (a context
        # value) would not reach it, so an AsyncEngine statement was traced twice.
        if not self._active or self._aiosqlite_execute is not None:
            return
        from aiosqlite.core import Connection

        self._aiosqlite_execute = original_execute = Connection._execute

        # A coroutine function as the original is, so an app's mock of it stays an AsyncMock.
        async def _execute(self, fn, *args, **kwargs):
            captured = _capture()
            if captured is None:
                return await original_execute(self, fn, *args, **kwargs)
            return await original_execute(self, _run_in, captured, fn, *args, **kwargs)

        Connection._execute = _execute

    def _uninstrument(self, **kwargs):
        self._active = False
        threading.Thread.start = self._start
        setattr(threading.Thread, self._entry_name, self._entry)
        if self._submit is not None:
            from concurrent.futures import ThreadPoolExecutor

            ThreadPoolExecutor.submit = self._submit
            self._submit = None
        if self._aiosqlite_execute is not None:
            from aiosqlite.core import Connection

            Connection._execute = self._aiosqlite_execute
            self._aiosqlite_execute = None
