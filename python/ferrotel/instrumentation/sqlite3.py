"""sqlite3 spans: every statement run through a connection made by `sqlite3.connect`, by
its cursors and by the connection's own `execute`, `executemany` and `executescript`.

Connections and cursors are subclasses of sqlite3's own (made through `connect`'s
`factory` argument), so type checks on them keep working."""

import functools

from ferrotel.instrumentation import Instrumentor
from ferrotel.instrumentation.dbapi import traced


@functools.cache
def _traced_classes(connection_class):
    import sqlite3

    class TracedCursor(sqlite3.Cursor):
        def _traced(self, query, call):
            return traced("sqlite", getattr(self.connection, "_ferrotel_database", ""), query, call)

        def execute(self, sql, parameters=(), /):
            return self._traced(sql, lambda: super(TracedCursor, self).execute(sql, parameters))

        def executemany(self, sql, seq_of_parameters, /):
            return self._traced(sql, lambda: super(TracedCursor, self).executemany(sql, seq_of_parameters))

        def executescript(self, sql_script, /):
            return self._traced(sql_script, lambda: super(TracedCursor, self).executescript(sql_script))

    class TracedConnection(connection_class):
        def cursor(self, factory=TracedCursor):
            return super().cursor(factory)

        # sqlite3's own shortcuts make a plain cursor internally, so they are traced here.
        def execute(self, sql, parameters=(), /):
            return self.cursor().execute(sql, parameters)

        def executemany(self, sql, seq_of_parameters, /):
            return self.cursor().executemany(sql, seq_of_parameters)

        def executescript(self, sql_script, /):
            return self.cursor().executescript(sql_script)

    return TracedConnection


class SQLite3Instrumentor(Instrumentor):
    def _instrument(self, **kwargs):
        import sqlite3

        self._connect = connect = sqlite3.connect

        def traced_connect(database, *args, **kwargs):
            # A factory passed by position (sixth argument) is left alone: rare, and wrapping
            # it would mean rewriting the call.
            if len(args) >= 5:
                return connect(database, *args, **kwargs)
            kwargs["factory"] = _traced_classes(kwargs.get("factory", sqlite3.Connection))
            connection = connect(database, *args, **kwargs)
            connection._ferrotel_database = str(database)
            return connection

        sqlite3.connect = sqlite3.dbapi2.connect = traced_connect

    def _uninstrument(self, **kwargs):
        import sqlite3

        sqlite3.connect = sqlite3.dbapi2.connect = self._connect
