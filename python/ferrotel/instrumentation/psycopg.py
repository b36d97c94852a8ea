"""psycopg (3) spans: every statement executed by a cursor (client-side or server-side, sync
or asyncio, and the connection's own `execute`, which goes through one) of a connection made
by `psycopg.connect`, `Connection.connect` or `AsyncConnection.connect`, or handed to
`PsycopgInstrumentor.instrument_connection`. The connection's cursor factories become
subclasses of the ones it had, so a cursor is still what the app asked for; the span, its
attributes and `db.client.operation.duration` are one native call per statement."""

import functools

from ferrotel.instrumentation import Instrumentor, sqlcommenter
from ferrotel.instrumentation.dbapi import statements

SCOPE = "ferrotel.instrumentation.psycopg"
_NO_TARGET = ("", None, None)


def _target(connection):
    """`(database, server address, port)` of a connection, as libpq reports them."""
    import psycopg

    try:
        info = connection.info
        port = int(info.port) if info.port else None
        return (info.dbname or "", info.host or None, port)
    except (AttributeError, ValueError, psycopg.Error):  # a closed or odd connection
        return _NO_TARGET


# A traced connection carries `_ferrotel`: (its statements' runner, database, address, port),
# read by its cursors at each statement; None (or absent) when it is not traced.


@functools.cache
def _traced_cursor(cursor_class):
    if getattr(cursor_class, "_ferrotel_traced", False):
        return cursor_class
    execute, executemany = cursor_class.execute, cursor_class.executemany

    class TracedCursor(cursor_class):
        # Keyword arguments (prepare=, binary=, returning=) are bound first.
        def execute(self, query, *args, **kwargs):
            method = functools.partial(execute, **kwargs) if kwargs else execute
            traced = getattr(self.connection, "_ferrotel", None)
            if traced is None:
                return method(self, query, *args)
            return traced[0].run(self, query, args, method, traced[1], traced[2], traced[3])

        def executemany(self, query, *args, **kwargs):
            method = functools.partial(executemany, **kwargs) if kwargs else executemany
            traced = getattr(self.connection, "_ferrotel", None)
            if traced is None:
                return method(self, query, *args)
            return traced[0].run(self, query, args, method, traced[1], traced[2], traced[3])

    return _keep_identity(TracedCursor, cursor_class)


async def _awaited(method, cursor, query, args, kwargs):
    traced = getattr(cursor.connection, "_ferrotel", None)
    if traced is None:
        operation = None
    elif isinstance(traced[0], sqlcommenter.CommentingStatements):
        operation, query = traced[0].start_commented(query, *traced[1:], cursor.connection)
    else:
        operation = traced[0].start_statement(query, traced[1], traced[2], traced[3])
    if operation is None:
        return await method(cursor, query, *args, **kwargs)
    try:
        result = await method(cursor, query, *args, **kwargs)
    except BaseException as exc:
        operation.end(exc)
        raise
    operation.end()
    return result


@functools.cache
def _traced_async_cursor(cursor_class):
    if getattr(cursor_class, "_ferrotel_traced", False):
        return cursor_class
    execute, executemany = cursor_class.execute, cursor_class.executemany

    class TracedAsyncCursor(cursor_class):
        async def execute(self, query, *args, **kwargs):
            return await _awaited(execute, self, query, args, kwargs)

        async def executemany(self, query, *args, **kwargs):
            return await _awaited(executemany, self, query, args, kwargs)

    return _keep_identity(TracedAsyncCursor, cursor_class)


def _keep_identity(traced_class, original):
    traced_class.__name__ = original.__name__
    traced_class.__qualname__ = original.__qualname__
    traced_class.__module__ = original.__module__
    traced_class._ferrotel_traced = True
    return traced_class


def _trace_connection(connection, runner):
    import psycopg

    if getattr(connection, "_ferrotel", None) is not None:
        return connection
    traced = _traced_async_cursor if isinstance(connection, psycopg.AsyncConnection) else _traced_cursor
    if getattr(connection, "_ferrotel_factories", None) is None:
        connection._ferrotel_factories = (connection.cursor_factory, connection.server_cursor_factory)
    connection.cursor_factory = traced(connection.cursor_factory)
    connection.server_cursor_factory = traced(connection.server_cursor_factory)
    connection._ferrotel = (runner, *_target(connection))
    return connection


class PsycopgInstrumentor(Instrumentor):
    name = "psycopg"

    def _instrument(self, **kwargs):
        import psycopg

        runner = statements("postgresql", SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        runner = sqlcommenter.commenting(runner, psycopg, "postgresql", kwargs)
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

    @staticmethod
    def instrument_connection(connection, tracer_provider=None):
        """Traces the statements of `connection` (sync or asyncio); returns it."""
        return _trace_connection(connection, statements("postgresql", SCOPE, tracer_provider))

    @staticmethod
    def uninstrument_connection(connection):
        """Undoes `instrument_connection`: new cursors are the connection's own again;
        returns the connection, as upstream's does."""
        factories = getattr(connection, "_ferrotel_factories", None)
        if factories is not None:
            connection.cursor_factory, connection.server_cursor_factory = factories
            connection._ferrotel = None
        return connection
