"""ferrotel's logs signal: `LoggingHandler` turns every `logging` record it sees into an
OpenTelemetry log record (trace context, code location, exception and `extra=` fields
included) and hands it to the Rust pipeline, which batches (OTEL_BLRP_*) and exports it per
OTEL_LOGS_EXPORTER on its own thread. `LoggerProvider` also serves the Logs API.

Importing this module does not import the opentelemetry-api.
"""

import functools
import logging
import sys

from ferrotel import _lifecycle, _loader, _native  # noqa: F401 (_lifecycle: exit and fork)

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
    """Exports the records it handles as OpenTelemetry log records, with `code.*` attributes
    when `log_code_attributes`."""

    def __init__(self, level=logging.NOTSET, logger_provider=None, log_code_attributes=False):
        super().__init__(level)
        self._provider = logger_provider or get_logger_provider()
        self._emit = self._provider._emit_logging_record
        self._code_attributes = log_code_attributes

    def handle(self, record):
        # logging.Handler.handle serialises emits with a lock; the native side is thread-safe,
        # so only the filters are kept (a filter may also return a replacement record).
        verdict = self.filter(record)
        if verdict:
            self.emit(verdict if isinstance(verdict, logging.LogRecord) else record)
        return verdict

    def emit(self, record):
        try:
            self._emit(record, self._code_attributes)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)

    def flush(self):
        self._provider.force_flush(_FLUSH_MILLIS)


class _RootHandler(LoggingHandler):
    """The handler ferrotel attaches to the root logger of its own accord. A record that meets
    no other handler would have gone to `logging.lastResort` without it (an app that
    configures no logging still has its warnings printed on stderr); it still goes there."""

    def __init__(self, level, logger_provider, log_code_attributes):
        super().__init__(level, logger_provider, log_code_attributes)
        self.setLevel(self.level)

    def setLevel(self, level):
        # The level decides what is exported only: `Logger.callHandlers` counts a handler
        # whose level turns a record away as one that handled it, last resort withheld.
        super().setLevel(level)
        self._export_level, self.level = self.level, logging.NOTSET

    def handle(self, record):
        verdict = record.levelno >= self._export_level and LoggingHandler.handle(self, record)
        last_resort = logging.lastResort
        if last_resort is not None and record.levelno >= last_resort.level and self._alone_for(record.name):
            last_resort.handle(record)
        return verdict

    def _alone_for(self, name):
        """No other handler is on the way from the record's logger to this one, as
        `Logger.callHandlers` walks it. A record whose logger cannot be told by its name (a
        logger made outside the manager) is left alone: it may have met handlers of its own."""
        logger = logging.root if name == "root" else logging.root.manager.loggerDict.get(name)
        if not isinstance(logger, logging.Logger):
            return False
        while logger is not None:
            for handler in logger.handlers:
                if handler is not self:
                    return False
            logger = logger.parent if logger.propagate else None
        return True


# The handler ferrotel put on the root logger; the stdlib's configuration functions put it
# back after they replace the root's handlers.
_attached = None


def attach_to_root_logger(log_code_attributes=False, level=logging.NOTSET):
    """Adds a LoggingHandler to the root logger unless one is there already (a second
    configure, or the app's own), so no record is exported twice. It stays there through
    `basicConfig(force=True)`, `logging.config.dictConfig` and `fileConfig`."""
    global _attached
    root = logging.getLogger()
    if _ours_on(root):
        return None
    provider = get_logger_provider()
    if not provider.exporting:
        return None
    _attached = _RootHandler(level, provider, log_code_attributes)
    root.addHandler(_attached)
    _keep_through_reconfiguration()
    return _attached


def keep_exporting_from(logger):
    """Puts ferrotel's root handler, if it attached one, back on `logger` after a framework
    replaced that logger's handlers (Celery's worker empties the root logger's and gives its
    task logger handlers of its own, not propagating)."""
    if _attached is not None and not _ours_on(logger):
        logger.addHandler(_attached)


def detach_from_root_logger(handler):
    """Removes `handler` (one attach_to_root_logger returned) from the root logger."""
    global _attached
    logging.getLogger().removeHandler(handler)
    if _attached is handler:
        _attached = None


def _ours_on(logger):
    return any(isinstance(h, LoggingHandler) for h in logger.handlers)


def _keeping(configure):
    """`configure` (a stdlib logging configuration function) run without ferrotel's handler
    on the root logger, which it would otherwise drop (and `basicConfig` would see as a reason
    to do nothing), then with it again. Costs nothing per record."""

    @functools.wraps(configure)
    def reconfigure(*args, **kwargs):
        handler, root = _attached, logging.getLogger()
        present = handler is not None and handler in root.handlers
        if present:
            root.removeHandler(handler)
        try:
            return configure(*args, **kwargs)
        finally:
            # The new configuration may name a LoggingHandler of its own: never two.
            if present and not _ours_on(root):
                root.addHandler(handler)

    reconfigure._ferrotel_keeps_handler = True
    return reconfigure


def _keep_through_reconfiguration():
    if not getattr(logging.basicConfig, "_ferrotel_keeps_handler", False):
        logging.basicConfig = _keeping(logging.basicConfig)
    # logging.config is wrapped when (and if) the app imports it: importing it here would
    # cost every process its imports (socketserver, queue...).
    _loader.when_imported("logging.config", _wrap_logging_config)


def _wrap_logging_config():
    # From sys.modules: this runs as soon as the module has executed, before `logging.config`
    # is bound on its package.
    config = sys.modules["logging.config"]
    for name in ("dictConfig", "fileConfig"):
        configure = getattr(config, name)
        if not getattr(configure, "_ferrotel_keeps_handler", False):
            setattr(config, name, _keeping(configure))
