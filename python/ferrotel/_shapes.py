"""What Python processors and exporters receive from ferrotel: the upstream SDK's own
classes when `opentelemetry-sdk` is installed (so `isinstance` checks, `to_json()` and
every property behave exactly as upstream's), plain look-alikes otherwise.

Imported only when a Python processor or exporter is in use: an app that plugs nothing in
never imports this module, nor the SDK. The native side hands over plain tuples
(crates/ferrotel-python/src/*/shapes.rs) and these functions make the objects.
"""

import json

from opentelemetry import trace as trace_api
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.trace.status import Status, StatusCode

# Everything is imported now, when the first Python component is set up: an export can
# happen at exit, when importing a module that registers an atexit hook (the SDK's do)
# would fail.
try:
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk._logs import ReadableLogRecord, ReadWriteLogRecord
    from opentelemetry.sdk.metrics._internal.exemplar import Exemplar
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Buckets,
        ExponentialHistogram,
        ExponentialHistogramDataPoint,
        Gauge,
        Histogram,
        HistogramDataPoint,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util import BoundedList
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    HAVE_SDK = True
except ImportError:  # the SDK is optional: look-alikes below
    HAVE_SDK = False

_KINDS = list(trace_api.SpanKind)
_STATUS = [StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]


if not HAVE_SDK:

    class Resource:
        def __init__(self, attributes, schema_url=""):
            self.attributes = dict(attributes)
            self.schema_url = schema_url

        def to_json(self, indent=4):
            return json.dumps({"attributes": self.attributes, "schema_url": self.schema_url}, indent=indent)

    class InstrumentationScope:
        def __init__(self, name, version=None, schema_url=None, attributes=None):
            self.name, self.version, self.schema_url = name, version, schema_url or ""
            self.attributes = dict(attributes or {})

    class _Counted(dict):
        """A dict that knows how many entries the limits dropped."""

        def __init__(self, items, dropped):
            super().__init__(items)
            self.dropped = dropped

    class _CountedList(list):
        def __init__(self, items, dropped):
            super().__init__(items)
            self.dropped = dropped

    class Event:
        def __init__(self, name, attributes=None, timestamp=None):
            self.name, self.attributes, self.timestamp = name, attributes or {}, timestamp

    class ReadableSpan:
        """The properties and methods of the SDK's ReadableSpan, for processors and exporters
        written without the SDK."""

        def __init__(self, name, context, parent, resource, attributes, events, links, kind, status, start, end, scope):
            self.name, self.context, self.parent, self.resource = name, context, parent, resource
            self.attributes, self.events, self.links, self.kind = attributes, events, links, kind
            self.status, self.start_time, self.end_time = status, start, end
            self.instrumentation_scope = self.instrumentation_info = scope

        def get_span_context(self):
            return self.context

        @property
        def dropped_attributes(self):
            return getattr(self.attributes, "dropped", 0)

        @property
        def dropped_events(self):
            return getattr(self.events, "dropped", 0)

        @property
        def dropped_links(self):
            return getattr(self.links, "dropped", 0)

        def to_json(self, indent=4):
            def hex_id(value, width):
                return f"0x{value:0{width}x}"

            return json.dumps(
                {
                    "name": self.name,
                    "context": {
                        "trace_id": hex_id(self.context.trace_id, 32),
                        "span_id": hex_id(self.context.span_id, 16),
                    },
                    "kind": str(self.kind),
                    "parent_id": hex_id(self.parent.span_id, 16) if self.parent else None,
                    "start_time": self.start_time,
                    "end_time": self.end_time,
                    "status": {"status_code": self.status.status_code.name},
                    "attributes": dict(self.attributes),
                    "events": [
                        {"name": e.name, "timestamp": e.timestamp, "attributes": e.attributes} for e in self.events
                    ],
                    "links": [{"context": {"span_id": hex_id(link.context.span_id, 16)}} for link in self.links],
                    "resource": {"attributes": self.resource.attributes},
                },
                indent=indent,
                default=str,
            )


# Only a count of dropped entries needs the SDK's bounded containers: the SDK's objects read
# a plain dict or list as "none dropped", and building a `BoundedAttributes` validates every
# entry again, which the native side has already done.
def _attributes(items, dropped):
    if not dropped:
        return items
    if HAVE_SDK:
        attributes = BoundedAttributes(maxlen=None, attributes=items, immutable=True)
        attributes.dropped = dropped
        return attributes
    return _Counted(items, dropped)


def _bounded(items, dropped):
    if not dropped:
        return items
    if HAVE_SDK:
        bounded = BoundedList.from_seq(None, items)
        bounded.dropped = dropped
        return bounded
    return _CountedList(items, dropped)


def resource(attributes, schema_url):
    return Resource(attributes, schema_url or "")


def scope(name, version, schema_url, attributes):
    return InstrumentationScope(name, version, schema_url, attributes)


_FLAGS = {flags: trace_api.TraceFlags(flags) for flags in (0, 1)}
_UNSET = Status(StatusCode.UNSET)


def span_context(trace_id, span_id, flags, trace_state, is_remote):
    state = trace_api.TraceState.from_header([trace_state]) if trace_state else trace_api.DEFAULT_TRACE_STATE
    flags = _FLAGS.get(flags) or trace_api.TraceFlags(flags)
    return trace_api.SpanContext(trace_id, span_id, is_remote, flags, state)


def readable_span(fields, resource):
    """A finished span, from the native side's tuple."""
    (
        name,
        context,
        parent,
        kind,
        start,
        end,
        attributes,
        dropped_attributes,
        events,
        dropped_events,
        links,
        dropped_links,
        status_code,
        status_description,
        scope,
    ) = fields
    events = [Event(e_name, _attributes(e_attrs, e_dropped), e_time) for e_name, e_time, e_attrs, e_dropped in events]
    links = [
        trace_api.Link(span_context(*l_context), _attributes(l_attrs, l_dropped))
        for l_context, l_attrs, l_dropped in links
    ]
    status = _UNSET if not status_code else Status(_STATUS[status_code], status_description or None)
    arguments = (
        name,
        span_context(*context),
        span_context(*parent) if parent else None,
        resource,
        _attributes(attributes, dropped_attributes),
        _bounded(events, dropped_events),
        _bounded(links, dropped_links),
        _KINDS[kind],
        status,
        start,
        end,
        scope,
    )
    if not HAVE_SDK:
        return ReadableSpan(*arguments)
    (name, context, parent, resource, attributes, events, links, kind, status, start, end, scope) = arguments
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=kind,
        status=status,
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


def _sdk_needed(what):
    if not HAVE_SDK:
        raise ImportError(f"a Python {what} needs opentelemetry-sdk installed")


def _log_record(fields, context):
    (
        time,
        observed,
        severity_number,
        severity_text,
        body,
        attributes,
        dropped,
        trace_id,
        span_id,
        flags,
        event_name,
    ) = fields
    record = LogRecord(
        timestamp=time or None,
        observed_timestamp=observed,
        context=context,
        trace_id=trace_id,
        span_id=span_id,
        trace_flags=trace_api.TraceFlags(flags),
        severity_text=severity_text or None,
        severity_number=SeverityNumber(severity_number),
        body=body,
        attributes=_attributes(attributes, dropped),
        event_name=event_name or None,
    )
    return record


def readable_log_record(fields, resource, scope):
    """A log record as Python log exporters receive it (the SDK's ReadableLogRecord)."""
    _sdk_needed("log exporter")
    return ReadableLogRecord(_log_record(fields, None), resource, scope)


def writable_log_record(fields, resource, scope, context):
    """A log record as Python log record processors see it in `on_emit`."""
    _sdk_needed("log record processor")
    return ReadWriteLogRecord(_log_record(fields, context), resource, scope)


def metrics_data(resource, scopes):
    """`scopes`: [(scope, schema_url, [metric fields])] as MetricsData for Python exporters."""
    _sdk_needed("metric exporter")

    def exemplars(raw):
        return [Exemplar({}, value, time, span_id, trace_id) for time, value, trace_id, span_id in raw]

    def number_points(points):
        return [
            NumberDataPoint(attributes, start, time, value, exemplars(raw))
            for attributes, start, time, value, raw in points
        ]

    def metric(fields):
        name, description, unit, kind, temporality, monotonic, points = fields
        if kind == "gauge":
            data = Gauge(number_points(points))
        elif kind == "sum":
            data = Sum(number_points(points), AggregationTemporality(temporality), monotonic)
        elif kind == "exponential_histogram":
            data = ExponentialHistogram(
                [
                    ExponentialHistogramDataPoint(
                        attrs,
                        start,
                        time,
                        count,
                        total,
                        scale,
                        zeros,
                        Buckets(*positive),
                        Buckets(*negative),
                        0,
                        low,
                        high,
                        exemplars(raw),
                    )
                    for attrs, start, time, count, total, scale, zeros, positive, negative, low, high, raw in points
                ],
                AggregationTemporality(temporality),
            )
        else:
            data = Histogram(
                [
                    HistogramDataPoint(attrs, start, time, count, total, counts, bounds, low, high, exemplars(raw))
                    for attrs, start, time, count, total, counts, bounds, low, high, raw in points
                ],
                AggregationTemporality(temporality),
            )
        return Metric(name, description, unit, data)

    scope_metrics = [
        ScopeMetrics(scope, [metric(m) for m in metrics], schema_url) for scope, schema_url, metrics in scopes
    ]
    return MetricsData([ResourceMetrics(resource, scope_metrics, resource.schema_url)])
