"""ferrotel's logs signal: `LoggingHandler` turns every `logging` record it sees into an
OpenTelemetry log record (trace context, code location, exception and `extra=` fields
included) and hands it to the Rust pipeline, which batches (OTEL_BLRP_*) and exports it per
OTEL_LOGS_EXPORTER on its own thread. `LoggerProvider` also serves the Logs API.

Importing this module does not import the opentelemetry-api.
"""

import logging

from ferrotel import _lifecycle, _native  # noqa: F401 (_lifecycle: exit and fork)

LoggerProvider = _native.LoggerProvider
Logger = _native.Logger

# A flush asked for by `logging` (at shutdown, or by the app) waits at most this long.
_FLUSH_MILLIS = 5000.0

_provider = None


def get_logger_provider():
    """The process's provider, configured from the environment on first use."""
    global _provider
    if _provider is None:
        _provider = LoggerProvider()
    return _provider


class LoggingHandler(logging.Handler):
    """Exports the records it handles as OpenTelemetry log records."""

    def __init__(self, level=logging.NOTSET, logger_provider=None):
        super().__init__(level)
        self._provider = logger_provider or get_logger_provider()
        self._emit = self._provider._emit_logging_record

    def handle(self, record):
        # logging.Handler.handle serialises emits with a lock; the native side is thread-safe,
        # so only the filters are kept (a filter may also return a replacement record).
        verdict = self.filter(record)
        if verdict:
            self.emit(verdict if isinstance(verdict, logging.LogRecord) else record)
        return verdict

    def emit(self, record):
        try:
            self._emit(record)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)

    def flush(self):
        self._provider.force_flush(_FLUSH_MILLIS)


def attach_to_root_logger():
    """Adds a LoggingHandler to the root logger unless one is there already (a second
    configure, or the app's own), so no record is exported twice."""
    root = logging.getLogger()
    if any(isinstance(h, LoggingHandler) for h in root.handlers):
        return
    provider = get_logger_provider()
    if provider.exporting:
        root.addHandler(LoggingHandler(logger_provider=provider))
