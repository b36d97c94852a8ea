"""Celery spans, driven by Celery's signals as upstream's instrumentation is (so every pool
works: prefork children inherit the connected handlers): a PRODUCER span `apply_async/<task>`
around each publish, whose context is written into the message headers, and a CONSUMER span
`run/<task>` around each run, under the context the message carries (or, with
`use_span_links=True`, linked to it). A retry's reason and a failure's exception are
recorded on the run's span. The spans, extraction and injection are native."""

import sys
import time

from ferrotel import __version__, _native
from ferrotel.instrumentation import Instrumentor

_PRODUCER, _CONSUMER = 3, 4  # the API's SpanKind values

# Task request fields recorded on the spans as upstream names them, `celery.<field>` unless
# mapped here to the messaging conventions' name.
_FIELDS = (
    "compression",
    "correlation_id",
    "countdown",
    "delivery_info",
    "eta",
    "exchange",
    "expires",
    "hostname",
    "id",
    "priority",
    "queue",
    "reply_to",
    "retries",
    "routing_key",
    "serializer",
    "timelimit",
    "origin",
    "state",
)
_RENAMED = {
    "id": "messaging.message.id",
    "correlation_id": "messaging.message.conversation_id",
    "routing_key": "messaging.destination.name",
    "origin": "celery.hostname",
}


def _fields(source):
    """The attributes of a task request (or a signal's keyword arguments) worth recording."""
    attributes = {}
    for field in _FIELDS:
        value = source.get(field)
        if value is None or value == "":
            continue
        if field == "timelimit":
            if all(limit is None for limit in value):
                continue
            value = ["" if limit is None else str(limit) for limit in value]
        elif field == "retries" and value == 0:
            continue
        elif field == "delivery_info":
            routing_key = value.get("routing_key") if isinstance(value, dict) else None
            if routing_key is not None:
                attributes["messaging.destination.name"] = routing_key
            value = str(value)
        elif not isinstance(value, (str, bool, int, float)):
            value = str(value)
        attributes[_RENAMED.get(field, f"celery.{field}")] = value
    return attributes


def _task_id(kwargs):
    """The id of the task a publish signal is about: in the headers (message protocol 2), or
    in the body (protocol 1)."""
    headers = kwargs.get("headers")
    if headers:
        return headers.get("id")
    body = kwargs.get("body")
    return body.get("id") if isinstance(body, dict) else None


def _failure(einfo):
    """The exception inside billiard's wrappers of a failure."""
    exception = getattr(einfo, "exception", None) or einfo
    return getattr(exception, "exc", None) or exception


def _keep_exporting_logs(logger=None, **kwargs):
    # The worker's logging set-up (worker_hijack_root_logger, on by default) empties the root
    # logger's handlers, ferrotel's among them, and its task logger does not propagate.
    logs = sys.modules.get("ferrotel.logs")
    if logs is not None and logger is not None and (logger.name == "root" or not logger.propagate):
        logs.keep_exporting_from(logger)


class CeleryInstrumentor(Instrumentor):
    name = "celery"

    def _instrument(self, **kwargs):
        from celery import signals
        from opentelemetry import metrics, trace

        self._tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        self._runtime = metrics.get_meter(__name__, __version__, kwargs.get("meter_provider")).create_histogram(
            "flower.task.runtime.seconds", unit="seconds", description="The time it took to run the task."
        )
        self._use_span_links = bool(kwargs.get("use_span_links", False))
        # (task id, publishing): a retry publishes under the same id while the run is open.
        self._operations = {}
        self._handlers = (
            (signals.before_task_publish, self._before_publish),
            (signals.after_task_publish, self._after_publish),
            (signals.task_prerun, self._prerun),
            (signals.task_postrun, self._postrun),
            (signals.task_failure, self._failure),
            (signals.task_retry, self._retry),
            (signals.after_setup_logger, _keep_exporting_logs),
            (signals.after_setup_task_logger, _keep_exporting_logs),
        )
        for signal, handler in self._handlers:
            signal.connect(handler, weak=False)

    def _uninstrument(self, **kwargs):
        for signal, handler in self._handlers:
            signal.disconnect(handler)
        self._operations = {}

    def _start(self, name, kind, attributes, carrier=None, link=False):
        operation = _native.start_operation(self._tracer, name, kind, attributes, carrier, link)
        if operation is None:  # another SDK's provider is installed: record through it
            from ferrotel.instrumentation import _generic

            operation = _generic.Operation(self._tracer, name, kind, attributes, carrier, link)
        return operation

    def _before_publish(self, sender=None, **kwargs):
        task_id = _task_id(kwargs)
        if task_id is None:
            return
        # `sender` is the task's name (a task sent by name may be unknown to this process).
        task_name = sender if isinstance(sender, str) else getattr(sender, "name", None) or "unknown"
        attributes = {
            "celery.action": "apply_async",
            "messaging.operation.type": "send",
            "messaging.message.id": task_id,
            "celery.task_name": task_name,
        }
        attributes.update(_fields({k: kwargs.get(k) for k in ("exchange", "routing_key")}))
        operation = self._start(f"apply_async/{task_name}", _PRODUCER, attributes)
        headers = kwargs.get("headers")
        if headers is not None:
            operation.inject(headers)
        self._operations[(task_id, True)] = (operation, None)

    def _after_publish(self, sender=None, **kwargs):
        entry = self._operations.pop((_task_id(kwargs), True), None)
        if entry is not None:
            entry[0].end()

    def _prerun(self, task_id=None, task=None, **kwargs):
        if task is None or task_id is None:
            return
        operation = self._start(f"run/{task.name}", _CONSUMER, None, carrier=task.request, link=self._use_span_links)
        self._operations[(task_id, False)] = (operation, time.perf_counter())

    def _postrun(self, task_id=None, task=None, state=None, **kwargs):
        if task is None:
            return
        entry = self._operations.pop((task_id, False), None)
        if entry is None:
            return
        operation, started = entry
        if operation.is_recording:
            attributes = {"celery.action": "run", "messaging.operation.type": "process"}
            if state:
                attributes["celery.state"] = state
            attributes.update(_fields(task.request))
            attributes["celery.task_name"] = task.name
            operation.set_attributes(attributes)
        operation.end()
        self._runtime.record(time.perf_counter() - started, {"task": task.name, "worker": task.request.hostname or ""})

    def _failure(self, sender=None, task_id=None, einfo=None, exception=None, **kwargs):
        entry = self._operations.get((task_id, False))
        if entry is None:
            return
        failure = _failure(einfo) if einfo is not None else exception
        if failure is None:
            entry[0].set_error()
        elif not isinstance(failure, getattr(sender, "throws", ())):  # expected errors are not failures
            entry[0].record_exception(failure)

    def _retry(self, sender=None, request=None, reason=None, **kwargs):
        entry = self._operations.get((getattr(request, "id", None), False))
        if entry is not None and reason:
            entry[0].set_attributes({"celery.retry.reason": str(reason)})
