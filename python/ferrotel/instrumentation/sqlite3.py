"""sqlite3 spans: every statement run through a connection made by `sqlite3.connect`, by
its cursors (whatever cursor `factory` the caller gives, Django's included) and by the
connection's own `execute`, `executemany` and `executescript`.

Connections and cursors are subclasses of the classes the caller asked for, keeping their
names, so type checks and reprs see what they would without ferrotel.

`SQLite3Instrumentor.instrument_connection(connection)` traces one connection made without
the global instrumentation: it returns a proxy of it (as upstream's does) whose cursors and
shortcuts are traced; `uninstrument_connection` returns the connection inside, or stops a
globally traced connection's new cursors from being traced."""

import functools
import sys

from ferrotel import _loader
from ferrotel.instrumentation import Instrumentor, _dbapi_connections
from ferrotel.instrumentation.dbapi import SCOPE, statements

_statements = None


def _keep_identity(traced_class, original):
    traced_class.__name__ = original.__name__
    traced_class.__qualname__ = original.__qualname__
    traced_class.__module__ = original.__module__
    traced_class._ferrotel_traced = True
    return traced_class


@functools.cache
def _traced_cursor(cursor_class):
    if getattr(cursor_class, "_ferrotel_traced", False):
        return cursor_class
    execute, executemany, executescript = cursor_class.execute, cursor_class.executemany, cursor_class.executescript

    class TracedCursor(cursor_class):
        # The connection's database name rides on the connection: a plain attribute read.
        # Keyword arguments (a cursor factory's own methods may take some) are bound first.
        def execute(self, sql, *args, **kwargs):
            method = functools.partial(execute, **kwargs) if kwargs else execute
            return _statements.run(self, sql, args, method, getattr(self.connection, "_ferrotel_database", ""))

        def executemany(self, sql, *args, **kwargs):
            method = functools.partial(executemany, **kwargs) if kwargs else executemany
            return _statements.run(self, sql, args, method, getattr(self.connection, "_ferrotel_database", ""))

        def executescript(self, sql_script, *args, **kwargs):
            method = functools.partial(executescript, **kwargs) if kwargs else executescript
            database = getattr(self.connection, "_ferrotel_database", "")
            return _statements.run(self, sql_script, args, method, database)

    return _keep_identity(TracedCursor, cursor_class)


@functools.cache
def _traced_connection(connection_class):
    import sqlite3

    class TracedConnection(connection_class):
        def cursor(self, factory=sqlite3.Cursor):
            if self.__dict__.get("_ferrotel_untraced"):
                return super().cursor(factory)
            return super().cursor(_traced_cursor(factory))

        # sqlite3's own shortcuts make a plain cursor internally, so they are traced here.
        def execute(self, sql, parameters=(), /):
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql, seq_of_parameters, /):
            return self.cursor().executemany(sql, seq_of_parameters)

        def executescript(self, sql_script, /):
            return self.cursor().executescript(sql_script)

    return _keep_identity(TracedConnection, connection_class)


class SQLite3Instrumentor(Instrumentor):
    name = "sqlite3"

    def _instrument(self, **kwargs):
        import sqlite3

        global _statements
        _statements = statements(
            "sqlite", tracer_provider=kwargs.get("tracer_provider"), meter_provider=kwargs.get("meter_provider")
        )
        self._connect = connect = sqlite3.connect

        def traced_connect(database, *args, **kwargs):
            # A factory passed by position (sixth argument) is left alone: rare, and wrapping
            # it would mean rewriting the call.
            if len(args) >= 5:
                return connect(database, *args, **kwargs)
            kwargs["factory"] = _traced_connection(kwargs.get("factory", sqlite3.Connection))
            connection = connect(database, *args, **kwargs)
            connection._ferrotel_database = str(database)
            return connection

        sqlite3.connect = sqlite3.dbapi2.connect = traced_connect
        _loader.when_imported("opentelemetry.instrumentation.dbapi", _contrib_leaves_traced_connections)

    def _uninstrument(self, **kwargs):
        import sqlite3

        sqlite3.connect = sqlite3.dbapi2.connect = self._connect

    @staticmethod
    def instrument_connection(connection, tracer_provider=None):
        """Traces the statements of `connection`, a `sqlite3.Connection`: returns a proxy of
        it whose cursors and shortcuts are traced (a globally traced connection as it is)."""
        if getattr(type(connection), "_ferrotel_traced", False):
            connection.__dict__.pop("_ferrotel_untraced", None)
            return connection
        if isinstance(connection, _ConnectionProxy):
            return connection
        runner = statements("sqlite", SCOPE, tracer_provider)
        return _ConnectionProxy(connection, (runner, "", None, None))

    @staticmethod
    def uninstrument_connection(connection):
        """The connection without tracing: the one inside `instrument_connection`'s proxy;
        a globally traced connection itself, its new cursors no longer traced."""
        if isinstance(connection, _ConnectionProxy):
            return connection.__wrapped__
        if getattr(type(connection), "_ferrotel_traced", False):
            connection._ferrotel_untraced = True
        return connection


def _contrib_leaves_traced_connections():
    """Contrib's `instrument_connection` (the DB-API layer's, which its sqlite3 one calls)
    leaves a connection that upstream's global instrumentation made as it is, with a warning;
    one that ferrotel's made it would wrap, tracing every statement twice. Its
    `uninstrument_connection` unwraps upstream's; ferrotel's it stops tracing."""
    dbapi = sys.modules["opentelemetry.instrumentation.dbapi"]
    instrument_connection, uninstrument_connection = dbapi.instrument_connection, dbapi.uninstrument_connection

    def traced(connection):
        untraced = getattr(connection, "__dict__", {}).get("_ferrotel_untraced")
        return getattr(type(connection), "_ferrotel_traced", False) and not untraced

    @functools.wraps(instrument_connection)
    def instrument_connection_once(name, connection, *args, **kwargs):
        if traced(connection):
            dbapi._logger.warning("Connection already instrumented")
            return connection
        return instrument_connection(name, connection, *args, **kwargs)

    @functools.wraps(uninstrument_connection)
    def uninstrument_traced_connection(connection):
        if traced(connection):
            return SQLite3Instrumentor.uninstrument_connection(connection)
        return uninstrument_connection(connection)

    dbapi.instrument_connection = instrument_connection_once
    dbapi.uninstrument_connection = uninstrument_traced_connection


class _CursorProxy(_dbapi_connections.TracedCursor):
    __slots__ = ()

    def executescript(self, sql_script):
        runner, database, _, _ = self._ferrotel
        return runner.run(self.__wrapped__, sql_script, (), _executescript, database)


def _executescript(cursor, sql_script):
    return cursor.executescript(sql_script)


class _ConnectionProxy(_dbapi_connections.TracedConnection):
    """One connection traced by `instrument_connection`; its shortcuts go through a traced
    cursor, as a globally traced connection's do."""

    __slots__ = ()

    def cursor(self, *args, **kwargs):
        return _CursorProxy(self.__wrapped__.cursor(*args, **kwargs), self._ferrotel)

    def execute(self, sql, parameters=(), /):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters, /):
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script, /):
        return self.cursor().executescript(sql_script)
