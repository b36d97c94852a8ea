"""Trace context on every `logging` record: `otelTraceID`, `otelSpanID`,
`otelTraceSampled`, `otelServiceName` (the current span's ids are read in Rust). With
OTEL_PYTHON_LOG_CORRELATION=true the root logger also gets a format showing them
(OTEL_PYTHON_LOG_FORMAT, OTEL_PYTHON_LOG_LEVEL), as upstream's logging instrumentation.
It also attaches ferrotel's LoggingHandler to the root logger, as upstream's does by default
(OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION, OTEL_PYTHON_LOG_CODE_ATTRIBUTES,
OTEL_PYTHON_LOG_HANDLER_LEVEL), unless the deprecated
OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true made the configurator attach it.

`instrument()` takes upstream's keywords: `set_logging_format`, `logging_format` and
`log_level` over their variables; `log_hook(span, record)`, called for each record made
inside a span; `enable_log_auto_instrumentation`, `log_code_attributes` and
`log_handler_level` over the handler's variables."""

import logging

from ferrotel import _native
from ferrotel.instrumentation import Instrumentor

DEFAULT_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s resource.service.name=%(otelServiceName)s "
    "trace_sampled=%(otelTraceSampled)s] - %(message)s"
)
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LoggingInstrumentor(Instrumentor):
    name = "logging"

    def _instrument(self, set_logging_format=None, logging_format=None, log_level=None, log_hook=None, **kwargs):
        correlation, env_format, env_level, service = _native.logging_settings()
        self._factory = previous = logging.getLogRecordFactory()
        current_span_ids = _native.current_span_ids
        hook = log_hook if callable(log_hook) else None

        def factory(*args, **kwargs):
            record = previous(*args, **kwargs)
            ids = current_span_ids()
            if ids is None:
                record.otelTraceID, record.otelSpanID, record.otelTraceSampled = "0", "0", False
            else:
                record.otelTraceID, record.otelSpanID, record.otelTraceSampled = ids
                if hook is not None:
                    _call_hook(hook, record)
            record.otelServiceName = service
            return record

        logging.setLogRecordFactory(factory)
        if set_logging_format if set_logging_format is not None else correlation:
            level = log_level if log_level is not None else LEVELS[env_level]
            logging.basicConfig(format=logging_format or env_format or DEFAULT_FORMAT, level=level)
        self._handler = None
        handler = _native.logging_handler()
        if (
            handler is not None
            and handler[0] == "instrumentation"
            and kwargs.get("enable_log_auto_instrumentation", True)
        ):
            from ferrotel import logs

            _, code_attributes, level = handler
            code_attributes = kwargs.get("log_code_attributes", code_attributes)
            level = kwargs.get("log_handler_level", level)
            self._handler = logs.attach_to_root_logger(code_attributes, level)

    def _uninstrument(self, **kwargs):
        logging.setLogRecordFactory(self._factory)
        if self._handler is not None:
            from ferrotel import logs

            logs.detach_from_root_logger(self._handler)
            self._handler = None


def _call_hook(hook, record):
    from opentelemetry import trace

    try:
        hook(trace.get_current_span(), record)
    except Exception:  # noqa: BLE001 - a hook's failure never reaches the app's logging call
        pass
