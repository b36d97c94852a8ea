"""Trace context on every `logging` record: `otelTraceID`, `otelSpanID`,
`otelTraceSampled`, `otelServiceName` (the current span's ids are read in Rust). With
OTEL_PYTHON_LOG_CORRELATION=true the root logger also gets a format showing them
(OTEL_PYTHON_LOG_FORMAT, OTEL_PYTHON_LOG_LEVEL), as upstream's logging instrumentation."""

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

    def _instrument(self, set_logging_format=None, logging_format=None, log_level=None, **kwargs):
        correlation, env_format, env_level, service = _native.logging_settings()
        self._factory = previous = logging.getLogRecordFactory()
        current_span_ids = _native.current_span_ids

        def factory(*args, **kwargs):
            record = previous(*args, **kwargs)
            ids = current_span_ids()
            if ids is None:
                record.otelTraceID, record.otelSpanID, record.otelTraceSampled = "0", "0", False
            else:
                record.otelTraceID, record.otelSpanID, record.otelTraceSampled = ids
            record.otelServiceName = service
            return record

        logging.setLogRecordFactory(factory)
        if set_logging_format if set_logging_format is not None else correlation:
            level = log_level if log_level is not None else LEVELS[env_level]
            logging.basicConfig(format=logging_format or env_format or DEFAULT_FORMAT, level=level)

    def _uninstrument(self, **kwargs):
        logging.setLogRecordFactory(self._factory)
