"""Uncaught exceptions as error log records: at top level (`sys.excepthook`), in threads
(`threading.excepthook`) and in asyncio (the loop's exception handler, which sees "Task
exception was never retrieved" and exceptions in callbacks). Each record carries the
exception's type, message and stack and the current span's ids, named by the exception's
type (asyncio's by its message), as upstream's `exceptions` instrumentation emits them.

The hooks chain: each calls the hook it found (the app's own, or Python's default) after
recording, and asyncio's wrapper calls the loop's handler, so the app's handling and
Python's printing are unchanged. The threading and asyncio hooks go in when those modules
are first imported, so a program that never imports asyncio does not pay for it at start.
KeyboardInterrupt, SystemExit and other non-`Exception`s
are not errors and are not recorded."""

import sys

from ferrotel import __version__, _loader
from ferrotel.instrumentation import Instrumentor

SCOPE = "ferrotel.instrumentation.exceptions"


class UnhandledExceptionInstrumentor(Instrumentor):
    name = "exceptions"

    def _instrument(self, **kwargs):
        logger_provider = kwargs.get("logger_provider")
        logger = None

        def record(exception, event_name, severity_name):
            nonlocal logger
            if not isinstance(exception, Exception):
                return
            try:
                # The Logs API is imported at the first uncaught exception, not at start-up.
                from opentelemetry._logs import SeverityNumber, get_logger

                if logger is None:
                    logger = get_logger(SCOPE, __version__, logger_provider)
                logger.emit(
                    event_name=event_name,
                    body=str(exception),
                    severity_number=SeverityNumber[severity_name],
                    severity_text=severity_name,
                    exception=exception,
                )
            except Exception:  # noqa: BLE001 - recording must never replace the app's own path
                pass

        # (owner, attribute) -> (the hook found, ours), to chain to and to take back out.
        self._hooks = hooks = {}
        self._active = True

        def install(owner, attribute, make):
            if not self._active:
                return
            found = getattr(owner, attribute)
            hooks[(owner, attribute)] = (found, make(found))
            setattr(owner, attribute, hooks[(owner, attribute)][1])

        def sys_hook(found):
            def hook(exc_type, exc_value, tb):
                record(exc_value, exc_type.__name__, "FATAL")
                found(exc_type, exc_value, tb)

            return hook

        def thread_hook(found):
            def hook(args):
                record(args.exc_value, args.exc_type.__name__, "ERROR")
                found(args)

            return hook

        def loop_handler(found):
            def call_exception_handler(loop, context):
                exception = context.get("exception") if isinstance(context, dict) else None
                if exception is not None:
                    message = context.get("message")
                    record(exception, str(message) if message else type(exception).__name__, "ERROR")
                return found(loop, context)

            return call_exception_handler

        install(sys, "excepthook", sys_hook)

        def on_threading():
            import threading

            install(threading, "excepthook", thread_hook)

        def on_asyncio():
            import asyncio

            install(asyncio.BaseEventLoop, "call_exception_handler", loop_handler)

        _loader.when_imported("threading", on_threading)
        _loader.when_imported("asyncio", on_asyncio)

    def _uninstrument(self, **kwargs):
        self._active = False
        for (owner, attribute), (found, ours) in self._hooks.items():
            # A hook the app installed over ours since stays: only ours is taken back out.
            if getattr(owner, attribute) is ours:
                setattr(owner, attribute, found)
        self._hooks.clear()
