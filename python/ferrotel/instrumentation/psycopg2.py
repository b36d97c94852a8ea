"""psycopg2 spans: every statement executed by a cursor of a connection made by
`psycopg2.connect`, or handed to `Psycopg2Instrumentor.instrument_connection`, whatever its
cursor factory (`DictCursor`, `RealDictCursor`...). The connection's `cursor_factory`
becomes a subclass of the one it had, made for that connection (psycopg2's connections hold
no attributes of their own: the subclass carries the connection's database and server); the
span, its attributes and `db.client.operation.duration` are one native call per statement."""

import functools

from ferrotel.instrumentation import Instrumentor, sqlcommenter
from ferrotel.instrumentation.dbapi import statements

SCOPE = "ferrotel.instrumentation.psycopg2"


def _target(connection):
    """`(database, server address, port)` of a connection, as libpq reports them."""
    import psycopg2

    try:
        info = connection.info
        return (info.dbname or "", info.host or None, int(info.port) if info.port else None)
    except (AttributeError, ValueError, psycopg2.Error):  # a closed or odd connection
        return ("", None, None)


def _traced_cursor(cursor_class, runner, target):
    execute, executemany = cursor_class.execute, cursor_class.executemany
    database, address, port = target

    class TracedCursor(cursor_class):
        def execute(self, query, *args, **kwargs):
            method = functools.partial(execute, **kwargs) if kwargs else execute
            return runner.run(self, query, args, method, database, address, port)

        def executemany(self, query, *args, **kwargs):
            method = functools.partial(executemany, **kwargs) if kwargs else executemany
            return runner.run(self, query, args, method, database, address, port)

    TracedCursor.__name__ = cursor_class.__name__
    TracedCursor.__qualname__ = cursor_class.__qualname__
    TracedCursor.__module__ = cursor_class.__module__
    TracedCursor._ferrotel_original = cursor_class
    return TracedCursor


def _trace_connection(connection, runner):
    import psycopg2.extensions

    factory = connection.cursor_factory or psycopg2.extensions.cursor
    if getattr(factory, "_ferrotel_original", None) is None:
        connection.cursor_factory = _traced_cursor(factory, runner, _target(connection))
    return connection


class Psycopg2Instrumentor(Instrumentor):
    name = "psycopg2"

    def _instrument(self, **kwargs):
        import psycopg2

        runner = statements("postgresql", SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        runner = sqlcommenter.commenting(runner, psycopg2, "postgresql", kwargs)
        self._connect = connect = psycopg2.connect

        @functools.wraps(connect)
        def traced_connect(*args, **kwargs):
            return _trace_connection(connect(*args, **kwargs), runner)

        psycopg2.connect = traced_connect

    def _uninstrument(self, **kwargs):
        import psycopg2

        psycopg2.connect = self._connect

    @staticmethod
    def instrument_connection(connection, tracer_provider=None):
        """Traces the statements of `connection`'s new cursors; returns it."""
        return _trace_connection(connection, statements("postgresql", SCOPE, tracer_provider))

    @staticmethod
    def uninstrument_connection(connection):
        """Undoes `instrument_connection`: new cursors are the connection's own again."""
        original = getattr(connection.cursor_factory, "_ferrotel_original", None)
        if original is not None:
            import psycopg2.extensions

            connection.cursor_factory = None if original is psycopg2.extensions.cursor else original
        return connection
