"""A DB-API 2 layer: a span around each statement a driver runs. A driver's instrumentation
(sqlite3, psycopg, psycopg2) makes one `statements(system)` and calls its `run()` from its
cursor methods: one native call per statement does the span (name, attributes and the query
text with literal values removed, computed once per distinct text), the driver's own method
and `db.client.operation.duration`."""

from ferrotel import __version__, _native

SCOPE = "ferrotel.instrumentation.dbapi"

# The conventions' advisory boundaries for database operation durations, in seconds.
DB_DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]


def statements(system, scope=SCOPE, tracer_provider=None, meter_provider=None):
    """The runner of one driver's statements: `run(receiver, query, args, method,
    namespace)` returns `method(receiver, query, *args)`, traced; `start_command(...)`
    starts a key-value store command's span (see `_native.DbStatements`)."""

    def setup():
        from opentelemetry import metrics, trace

        tracer = trace.get_tracer(scope, __version__, tracer_provider=tracer_provider)
        duration = metrics.get_meter(scope, __version__, meter_provider).create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=DB_DURATION_BUCKETS,
        )
        return tracer, duration

    return _native.DbStatements(system, setup, _OtherProvider)


class _OtherProvider:
    """Statements and commands recorded through another SDK's tracer (a vendor distro's
    provider), with the names and attributes the native path computed."""

    @staticmethod
    def run(tracer, name, attributes, query, method, receiver, args):
        from ferrotel.instrumentation import _generic

        if _generic.suppressed():
            return method(receiver, query, *args)
        operation = _generic.DbOperation(tracer, name, attributes)
        try:
            result = method(receiver, query, *args)
        except BaseException as exc:
            operation.end(exc)
            raise
        operation.end()
        return result

    @staticmethod
    def start(tracer, name, attributes):
        from ferrotel.instrumentation import _generic

        return _generic.DbOperation(tracer, name, attributes)


# Upstream's per-connection and per-driver functions, for any DB-API 2 driver.
from ferrotel.instrumentation._dbapi_connections import (  # noqa: E402, F401 (re-exported)
    instrument_connection,
    trace_integration,
    uninstrument_connection,
    unwrap_connect,
    wrap_connect,
)
