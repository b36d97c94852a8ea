"""psycopg (3) spans: every statement executed by a cursor (client-side or server-side, sync
or asyncio, and the connection's own `execute`, which goes through one) of a connection made
by `psycopg.connect`, `Connection.connect` or `AsyncConnection.connect`, or handed to
`PsycopgInstrumentor.instrument_connection`. psycopg's cursor classes are Python: their own
`execute` and `executemany` (`Cursor`, `ServerCursor` and their asyncio twins, which every
other cursor class inherits) are wrapped while the instrumentor is on or a traced connection
lives, so a cursor of any class, however made (a factory set after connect,
`ClientCursor(connection)`), is traced, and the connection's factories stay the app's. An
app class whose `execute` does not call psycopg's goes untraced. A traced connection
carries `_ferrotel`: (its statements' runner, database, address, port); a statement on any
other connection costs one attribute read. The span, its attributes and
`db.client.operation.duration` are one native call per statement."""

import functools
import threading
import weakref

from ferrotel.instrumentation import Instrumentor, sqlcommenter
from ferrotel.instrumentation.dbapi import statements

SCOPE = "ferrotel.instrumentation.psycopg"
_NO_TARGET = ("", None, None)
_METHODS = ("execute", "executemany")
# ferrotel's wrappers on the cursor classes, each with the method it wraps.
_wrapped = {}
# Traced connections: the wrapping stays while one lives or the instrumentor is on, so
# that whether a connection is traced never depends on another one.
_traced = weakref.WeakSet()
_globally_on = False
# Held while the classes are wrapped or unwrapped (pool workers may race to
# instrument_connection).
_wrapping = threading.Lock()


def _target(connection):
    """`(database, server address, port)` of a connection, as libpq reports them."""
    import psycopg

    try:
        info = connection.info
        port = int(info.port) if info.port else None
        return (info.dbname or "", info.host or None, port)
    except (AttributeError, ValueError, psycopg.Error):  # a closed or odd connection
        return _NO_TARGET


def _traced_method(method):
    # Keyword arguments (prepare=, binary=, returning=) are bound first.
    @functools.wraps(method)
    def traced(self, query, *args, **kwargs):
        tracing = getattr(self.connection, "_ferrotel", None)
        if tracing is None:
            return method(self, query, *args, **kwargs)
        bound = functools.partial(method, **kwargs) if kwargs else method
        return tracing[0].run(self, query, args, bound, tracing[1], tracing[2], tracing[3])

    return traced


async def _awaited(method, cursor, query, args, kwargs):
    traced = getattr(cursor.connection, "_ferrotel", None)
    if traced is None:
        operation = None
    elif isinstance(traced[0], sqlcommenter.CommentingStatements):
        operation, query = traced[0].start_commented(query, *traced[1:], cursor.connection)
    else:
        operation = traced[0].start_statement(query, traced[1], traced[2], traced[3], cursor)
    if operation is None:
        return await method(cursor, query, *args, **kwargs)
    try:
        result = await method(cursor, query, *args, **kwargs)
    except BaseException as exc:
        operation.end(exc)
        raise
    operation.end()
    return result


def _traced_async_method(method):
    @functools.wraps(method)
    async def traced(self, query, *args, **kwargs):
        return await _awaited(method, self, query, args, kwargs)

    return traced


def _wrap_cursor_classes():
    import psycopg

    with _wrapping:
        for cls, wrap in (
            (psycopg.Cursor, _traced_method),
            (psycopg.ServerCursor, _traced_method),
            (psycopg.AsyncCursor, _traced_async_method),
            (psycopg.AsyncServerCursor, _traced_async_method),
        ):
            for name in _METHODS:
                current = vars(cls)[name]
                if current not in _wrapped:  # wrapped already (an app patch may have come and gone)
                    wrapper = wrap(current)
                    _wrapped[wrapper] = current
                    setattr(cls, name, wrapper)


def _unwrap_unused_cursor_classes():
    """Unwraps the classes when nothing is traced any more. A method the app has patched
    over ferrotel's wrapper is left to the app (its patch restores the wrapper, which the
    next wrapping recognises)."""
    import psycopg

    with _wrapping:
        if _globally_on or _traced:
            return
        for cls in (psycopg.Cursor, psycopg.ServerCursor, psycopg.AsyncCursor, psycopg.AsyncServerCursor):
            for name in _METHODS:
                current = vars(cls)[name]
                if current in _wrapped:
                    setattr(cls, name, _wrapped.pop(current))


def _trace_connection(connection, runner):
    if getattr(connection, "_ferrotel", None) is None:
        connection._ferrotel = (runner, *_target(connection))
        _traced.add(connection)
    return connection


class PsycopgInstrumentor(Instrumentor):
    name = "psycopg"

    def _instrument(self, **kwargs):
        import psycopg

        runner = statements("postgresql", SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        runner = sqlcommenter.commenting(runner, psycopg, "postgresql", kwargs)
        global _globally_on
        _globally_on = True
        _wrap_cursor_classes()
        self._connect = psycopg.connect
        self._sync_connect = psycopg.Connection.__dict__["connect"]
        self._async_connect = psycopg.AsyncConnection.__dict__["connect"]
        sync_connect, async_connect = self._sync_connect.__func__, self._async_connect.__func__

        def connect(cls, *args, **kwargs):
            return _trace_connection(sync_connect(cls, *args, **kwargs), runner)

        async def connect_async(cls, *args, **kwargs):
            return _trace_connection(await async_connect(cls, *args, **kwargs), runner)

        psycopg.Connection.connect = classmethod(connect)
        psycopg.AsyncConnection.connect = classmethod(connect_async)
        psycopg.connect = psycopg.Connection.connect

    def _uninstrument(self, **kwargs):
        import psycopg

        psycopg.Connection.connect = self._sync_connect
        psycopg.AsyncConnection.connect = self._async_connect
        psycopg.connect = self._connect
        global _globally_on
        _globally_on = False
        _unwrap_unused_cursor_classes()

    @staticmethod
    def instrument_connection(connection, tracer_provider=None):
        """Traces the statements of `connection` (sync or asyncio); returns it."""
        _wrap_cursor_classes()
        return _trace_connection(connection, statements("postgresql", SCOPE, tracer_provider))

    @staticmethod
    def uninstrument_connection(connection):
        """Undoes `instrument_connection`: the connection's statements are no longer
        traced; returns the connection, as upstream's does."""
        if getattr(connection, "_ferrotel", None) is not None:
            connection._ferrotel = None
        _traced.discard(connection)
        _unwrap_unused_cursor_classes()
        return connection
