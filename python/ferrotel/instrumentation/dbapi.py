"""A DB-API 2 layer: a span around each statement a driver runs. Drivers' instrumentations
(sqlite3) call `traced()` from their cursor and connection methods; naming, attributes and
the query text with literal values removed are native."""

from ferrotel import __version__, _native

_tracer = None


def _get_tracer():
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        _tracer = trace.get_tracer("ferrotel.instrumentation.dbapi", __version__)
    return _tracer


def traced(system, namespace, query, call):
    """Runs `call()`, which executes `query`, inside a database span."""
    text = query if isinstance(query, str) else ""
    db_call = _native.start_db_call(_get_tracer(), system, namespace, text)
    if db_call is None:  # another SDK's provider is installed: record through it
        from ferrotel.instrumentation import _generic

        if _generic.suppressed():
            return call()
        db_call = _generic.DbCall(_get_tracer(), system, namespace, text)
    try:
        return call()
    except BaseException as exc:
        db_call.record_exception(exc)
        raise
    finally:
        db_call.end()
