"""psycopg2 spans: every statement executed by a cursor of a connection made through
`psycopg2.connect` (whoever calls it: Django, SQLAlchemy, the app), or handed to
`Psycopg2Instrumentor.instrument_connection`. The span, its attributes and
`db.client.operation.duration` are one native call per statement.

psycopg2's connection and cursor are C types with no per-object hook, so tracing goes
through subclasses that keep the name, module and layout of what they extend:
- a connection made by `connect` is made by a subclass of its class (`connection`, or the
  `connection_factory` given), whose `cursor()` hands back a cursor of a traced subclass of
  the class psycopg2 would have made: the factory given to `cursor()`, else the connection's
  `cursor_factory`, else the class's own choice (`DictConnection` its `DictCursor`,
  `LoggingConnection` its `LoggingCursor`...). `connection.cursor_factory` stays the app's.
  ferrotel wraps `psycopg2._connect`, the call `connect` makes, so that `psycopg2.connect`
  is the app's own function and a test's stand-in for `_connect` sees its own arguments;
- `instrument_connection` cannot change an existing connection's class: it sets the
  connection's `cursor_factory` to a traced subclass of its factory instead."""

import functools
import weakref

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


def _named_like(subclass, cls):
    subclass.__name__, subclass.__qualname__, subclass.__module__ = cls.__name__, cls.__qualname__, cls.__module__
    subclass._ferrotel_original = cls
    return subclass


def _traced_cursor(cursor_class, runner, target):
    """A subclass of `cursor_class` whose statements `runner` traces. It adds no slots, so a
    cursor already made can take it as its class."""
    execute, executemany = cursor_class.execute, cursor_class.executemany
    database, address, port = target

    class TracedCursor(cursor_class):
        __slots__ = ()

        def execute(self, query, *args, **kwargs):
            method = functools.partial(execute, **kwargs) if kwargs else execute
            return runner.run(self, query, args, method, database, address, port)

        def executemany(self, query, *args, **kwargs):
            method = functools.partial(executemany, **kwargs) if kwargs else executemany
            return runner.run(self, query, args, method, database, address, port)

    return _named_like(TracedCursor, cursor_class)


class _Tracing:
    """What a traced connection holds: how its statements are traced, and the traced
    subclass of each cursor class it has made (False for a factory that is not a class of
    psycopg2's cursor, which is called as it is)."""

    __slots__ = ("runner", "target", "cursor_classes")

    def __init__(self, runner, target):
        self.runner, self.target, self.cursor_classes = runner, target, {}

    def cursor_class(self, factory):
        import psycopg2.extensions

        traced = self.cursor_classes.get(factory)
        if traced is None:
            traceable = isinstance(factory, type) and issubclass(factory, psycopg2.extensions.cursor)
            if traceable and "_ferrotel_original" in vars(factory):  # another connection's
                traced = factory
            else:
                traced = _traced_cursor(factory, self.runner, self.target) if traceable else False
            self.cursor_classes[factory] = traced
        return traced


def _cursor_arguments(name=None, cursor_factory=None, withhold=False, scrollable=None):
    """The parameters of psycopg2's `connection.cursor()`, with its defaults."""
    return name, cursor_factory, withhold, scrollable


def _connection_class(base, runner):
    """The traced subclass of the connection class `base`. When psycopg2's own `cursor()`
    makes the cursor, it is handed the traced subclass of the factory it would use; when a
    class of `base`'s lineage has a `cursor()` of its own (psycopg2.extras' classes, the
    app's), that one runs as it is and the cursor it returns takes the traced subclass of
    its class as its class. psycopg2's plain cursor, a C type, cannot: a plain cursor made
    by such a `cursor()` stays untraced."""
    import psycopg2.extensions

    plain_connection, plain_cursor = psycopg2.extensions.connection, psycopg2.extensions.cursor
    owner = next(cls for cls in base.__mro__ if "cursor" in vars(cls))
    make_cursor = owner.cursor

    def adopt(tracing, made):
        made_class = type(made)
        traceable = made_class is not plain_cursor and isinstance(made, plain_cursor)
        if traceable and "_ferrotel_original" not in vars(made_class):
            made.__class__ = tracing.cursor_class(made_class)
        return made

    def cursor(self, *args, **kwargs):
        tracing = self._ferrotel_tracing
        if tracing is None:
            return make_cursor(self, *args, **kwargs)
        if owner is not plain_connection:
            return adopt(tracing, make_cursor(self, *args, **kwargs))
        name, factory, withhold, scrollable = None, None, False, None
        if args or kwargs:
            try:
                name, factory, withhold, scrollable = _cursor_arguments(*args, **kwargs)
            except TypeError:  # psycopg2's own error, in its words
                return make_cursor(self, *args, **kwargs)
        factory = factory or self.cursor_factory or plain_cursor
        traced = tracing.cursor_classes.get(factory) or tracing.cursor_class(factory)
        # Positional: psycopg2 reads keywords at a cost comparable to the rest of the call.
        if traced:
            return make_cursor(self, name, traced, withhold, scrollable)
        return adopt(tracing, make_cursor(self, name, factory, withhold, scrollable))  # a factory function's

    def __init__(self, *args, **kwargs):
        self._ferrotel_tracing = None
        base.__init__(self, *args, **kwargs)
        self._ferrotel_tracing = _Tracing(runner, _target(self))

    traced = type(base.__name__, (base,), {"__slots__": ("_ferrotel_tracing",), "__init__": __init__, "cursor": cursor})
    return _named_like(traced, base)


class Psycopg2Instrumentor(Instrumentor):
    name = "psycopg2"

    def _instrument(self, **kwargs):
        import psycopg2
        import psycopg2.extensions

        runner = statements("postgresql", SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        runner = sqlcommenter.commenting(runner, psycopg2, "postgresql", kwargs)
        self._connect = connect = psycopg2._connect
        # A traced class per connection class, kept while a connection of it lives.
        classes = weakref.WeakValueDictionary()

        @functools.wraps(connect)
        def traced_connect(dsn, connection_factory=None, **kwargs):
            base = psycopg2.extensions.connection if connection_factory is None else connection_factory
            if isinstance(base, type) and issubclass(base, psycopg2.extensions.connection):
                # type(connection) of a traced connection, given back as a factory, is traced.
                traced = base if "_ferrotel_original" in vars(base) else classes.get(base)
                if traced is None:
                    traced = classes[base] = _connection_class(base, runner)
                return connect(dsn, connection_factory=traced, **kwargs)
            # A factory function: its connection is traced as instrument_connection does.
            return _trace_connection(connect(dsn, connection_factory=connection_factory, **kwargs), runner)

        psycopg2._connect = traced_connect

    def _uninstrument(self, **kwargs):
        import psycopg2

        psycopg2._connect = self._connect

    @staticmethod
    def instrument_connection(connection, tracer_provider=None):
        """Traces the statements of `connection`'s new cursors; returns it."""
        return _trace_connection(connection, statements("postgresql", SCOPE, tracer_provider))

    @staticmethod
    def uninstrument_connection(connection):
        """Undoes `instrument_connection`, or the tracing of a connection made while
        instrumented: new cursors are the connection's own again."""
        if getattr(connection, "_ferrotel_tracing", None) is not None:
            connection._ferrotel_tracing = None
        factory = connection.cursor_factory
        if getattr(factory, "_ferrotel_original", None) is not None:
            connection.cursor_factory = factory._ferrotel_restore
        return connection


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
    """`instrument_connection`'s way: the connection's `cursor_factory` becomes a traced
    subclass of the factory it uses by default."""
    import psycopg2.extensions

    # Anything else (a test's stand-in for psycopg2's connect) goes back as it came.
    if not isinstance(connection, psycopg2.extensions.connection):
        return connection
    if getattr(connection, "_ferrotel_tracing", None) is not None:  # made while instrumented
        return connection
    if getattr(connection.cursor_factory, "_ferrotel_original", None) is not None:
        return connection
    factory = _default_factory(connection)
    if factory is not None:
        traced = _traced_cursor(factory, runner, _target(connection))
        traced._ferrotel_restore = connection.cursor_factory
        connection.cursor_factory = traced
    return connection
