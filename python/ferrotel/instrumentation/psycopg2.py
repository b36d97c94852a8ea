"""psycopg2 spans: every statement executed by a cursor of a connection made by
`psycopg2.connect`, or handed to `Psycopg2Instrumentor.instrument_connection`, that the
connection makes with its default factory (`DictCursor`, `RealDictCursor`... when set on the
connection or chosen by its class, as `DictConnection` does). The connection's
`cursor_factory` becomes a subclass of that factory, made for that connection (psycopg2's
connections hold no attributes of their own: the subclass carries the connection's database
and server); the span, its attributes and `db.client.operation.duration` are one native call
per statement. The attribute reads as that subclass, not None: the one thing the app can
see."""

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


def _default_factory(connection):
    """The cursor class `connection.cursor()` makes when not given one, or None if that
    cannot be told: the connection's `cursor_factory`, else psycopg2's cursor, or for
    psycopg2.extras' connection classes (which choose theirs in their own `cursor()`) the
    one each chooses. Another class with a `cursor()` of its own is left untraced: calling
    it to find out could have effects the app does not expect."""
    import psycopg2.extensions
    import psycopg2.extras as extras

    factory = connection.cursor_factory
    if factory is not None:
        return factory
    owner = next(cls for cls in type(connection).__mro__ if "cursor" in vars(cls))
    if owner is psycopg2.extensions.connection:
        return psycopg2.extensions.cursor
    chosen = {
        extras.DictConnection: extras.DictCursor,
        extras.RealDictConnection: extras.RealDictCursor,
        extras.NamedTupleConnection: extras.NamedTupleCursor,
    }
    return chosen.get(owner)


def _trace_connection(connection, runner):
    import psycopg2.extensions

    # Anything else (a test's stand-in for psycopg2's connect) goes back as it came.
    if not isinstance(connection, psycopg2.extensions.connection):
        return connection
    if getattr(connection.cursor_factory, "_ferrotel_original", None) is not None:
        return connection
    factory = _default_factory(connection)
    if factory is not None:
        traced = _traced_cursor(factory, runner, _target(connection))
        traced._ferrotel_restore = connection.cursor_factory
        connection.cursor_factory = traced
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
        factory = connection.cursor_factory
        if getattr(factory, "_ferrotel_original", None) is not None:
            connection.cursor_factory = factory._ferrotel_restore
        return connection
