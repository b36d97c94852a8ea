"""A throwaway package's plugins, installed as entry points for the open-SDK tests: a
sampler, an id generator and a resource detector of the kinds other packages provide."""

import itertools

from opentelemetry.sdk.resources import Resource, ResourceDetector
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult


class EveryOther(Sampler):
    """Records every other root span (and what their parent says for the others), tagging
    what it kept with the argument it was made with."""

    def __init__(self, argument):
        self._argument = argument
        self._count = itertools.count()

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        if next(self._count) % 2:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {"sampled.by": f"every_other({self._argument})"})

    def get_description(self):
        return f"EveryOther({self._argument})"


def every_other(argument):
    return EveryOther(argument)


class Counting(IdGenerator):
    """Ids 1, 2, 3...: easy to recognise."""

    def __init__(self):
        self._ids = itertools.count(1)

    def generate_span_id(self):
        return next(self._ids)

    def generate_trace_id(self):
        return 0xABC0000000000000000000000 + next(self._ids)


class Deployment(ResourceDetector):
    def detect(self):
        return Resource({"deployment.environment.name": "open-sdk-test"})


class LinesExporter:
    """A log exporter that appends one JSON line per record to $PLUGIN_LOG_FILE, with what
    a vendor's exporter reads of each record."""

    def export(self, batch):
        import json
        import os

        from opentelemetry.sdk._logs import ReadableLogRecord
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        with open(os.environ["PLUGIN_LOG_FILE"], "a") as out:
            for readable in batch:
                assert isinstance(readable, ReadableLogRecord), type(readable)
                record = readable.log_record
                line = {
                    "body": record.body,
                    "severity": record.severity_number.name,
                    "text": record.severity_text,
                    "attributes": {k: v for k, v in record.attributes.items() if not k.startswith("code.")},
                    "span_id": record.span_id,
                    "service": readable.resource.attributes["service.name"],
                    "scope": readable.instrumentation_scope.name,
                }
                out.write(json.dumps(line) + "\n")
        return LogRecordExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True
