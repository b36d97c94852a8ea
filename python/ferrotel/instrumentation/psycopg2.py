"""psycopg2 spans: every statement executed by a cursor of a connection made through
`psycopg2.connect` (whoever calls it: Django, SQLAlchemy, the app), or handed to
`Psycopg2Instrumentor.instrument_connection`. The span, its attributes and
`db.client.operation.duration` are one native call per statement.

psycopg2's connection and cursor are C types with no per-object hook, so tracing goes
through subclasses that keep the name and module of what they extend:
- a connection made by `connect` is made by a subclass of its class (`connection`, or the
  `connection_factory` given) holding how its statements are traced. Its `cursor()` hands
  psycopg2 the traced subclass of the cursor class psycopg2 would use (the factory given,
  else the connection's `cursor_factory`, else psycopg2's cursor); when a class of its lineage
  has a `cursor()` of its own (psycopg2.extras' `DictConnection`, `LoggingConnection`, the
  app's), that one runs as it is and the cursor it returns takes the traced subclass of its
  class as its class. `connection.cursor_factory` stays the app's. ferrotel wraps
  `psycopg2._connect`, the call `connect` makes, so `psycopg2.connect` is psycopg2's own and
  a test's stand-in for `_connect` sees its own arguments;
- `instrument_connection` cannot change an existing connection's class: it sets the
  connection's `cursor_factory` to the traced subclass of its factory.
One traced subclass per cursor class, shared by every connection (a statement reads its
connection's tracing), so psycopg2's caches keyed by cursor class (`NamedTupleCursor`'s row
types) work as bare. A class whose subclassing fails (its `__init_subclass__` refuses) stays
untraced."""

import functools
import threading
import weakref

from ferrotel.instrumentation import Instrumentor, sqlcommenter
from ferrotel.instrumentation.dbapi import statements

SCOPE = "ferrotel.instrumentation.psycopg2"

# Connections given to instrument_connection, which cannot hold attributes: their tracing.
_instrumented = weakref.WeakKeyDictionary()
# Each class's traced subclass, by weak reference: it goes when nothing of it is alive.
_traced_refs = {}
# Held while a traced class is made or forgotten (re-entrant: a class hook may connect).
_making = threading.RLock()


@functools.cache
def _psycopg2_types():
    """psycopg2's connection and cursor classes, imported once they are needed."""
    import psycopg2.extensions

    return psycopg2.extensions.connection, psycopg2.extensions.cursor


class _Tracing:
    """How one connection's statements are traced. Its target (database, server address and
    port) is read from libpq once the connection is made: for an asynchronous connection,
    at its first statement (until then libpq reports the first host it tries)."""

    # replaced_factory: for instrument_connection, the connection's factory before.
    __slots__ = ("runner", "database", "address", "port", "replaced_factory")

    def __init__(self, runner, connection):
        self.runner, self.replaced_factory = runner, None
        self.database = self.address = self.port = None
        if not getattr(connection, "async_", False):
            self.read_target(connection)

    def read_target(self, connection):
        import psycopg2

        try:
            info = connection.info
            self.address = info.host or None
            self.port = int(info.port) if info.port else None
            self.database = info.dbname or ""
        except (AttributeError, ValueError, psycopg2.Error):  # a closed or odd connection
            self.database, self.address, self.port = "", None, None


def _tracing_of(connection):
    try:
        return connection._ferrotel_tracing
    except AttributeError:  # not made while instrumented, or still in its __init__
        return _instrumented.get(connection) if _instrumented else None


def _named_like(subclass, cls):
    subclass.__name__, subclass.__qualname__, subclass.__module__ = cls.__name__, cls.__qualname__, cls.__module__
    subclass._ferrotel_original = cls
    return subclass


def _subclass(cls, make, accepts):
    """The traced subclass of `cls` that `make(cls)` builds, made once; `cls` itself when it
    is traced already (a traced class or a subclass of one); None when `cls` is not a class
    `accepts`, or refuses to be subclassed (the app's class hooks decide)."""
    try:
        ref = _traced_refs.get(cls)
        traced = None if ref is None else ref()
        if traced is not None:
            return traced
        if not (isinstance(cls, type) and issubclass(cls, accepts)):
            return None
        # One per class even when threads race for it: psycopg2 caches by cursor class.
        with _making:
            ref = _traced_refs.get(cls)
            traced = None if ref is None else ref()
            if traced is None:
                if any("_ferrotel_original" in vars(ancestor) for ancestor in cls.__mro__):
                    traced = cls
                else:
                    traced = _named_like(make(cls), cls)

                def forget(dead, cls=cls):
                    with _making:
                        if _traced_refs.get(cls) is dead:
                            del _traced_refs[cls]

                _traced_refs[cls] = weakref.ref(traced, forget)
        return traced
    except Exception:  # noqa: BLE001 - the class's hooks refused, or it cannot be hashed
        return None


def _make_traced_cursor(cursor_class):
    """A subclass of `cursor_class` tracing its statements by its connection's tracing. It
    adds no slots, so a cursor already made can take it as its class; the method it calls
    is looked up at each call, so the app's later patches of the class apply."""

    class TracedCursor(cursor_class):
        __slots__ = ()

        def execute(self, *args, **kwargs):
            return _run(self, cursor_class.execute, args, kwargs)

        def executemany(self, *args, **kwargs):
            return _run(self, cursor_class.executemany, args, kwargs)

        def callproc(self, *args, **kwargs):
            return _run(self, cursor_class.callproc, args, kwargs, procedure=True)

    return TracedCursor


def _run(cursor, method, args, kwargs, procedure=False):
    """`method(cursor, *args, **kwargs)`, traced when the cursor's connection is. The
    statement (for `callproc`, a `procedure` call, the procedure's name, as upstream records
    it) is the first argument (a class of the app's may give its parameter another name: a
    statement given by a keyword other than psycopg2's own runs untraced)."""
    keyword = "procname" if procedure else "query"
    connection = cursor.connection
    try:  # _tracing_of, inline: this runs for every statement
        tracing = connection._ferrotel_tracing
    except AttributeError:
        tracing = _instrumented.get(connection) if _instrumented else None
    if tracing is None or not (args or keyword in kwargs):
        return method(cursor, *args, **kwargs)
    if args:
        query, args = args[0], args[1:]
    else:
        query = kwargs.pop(keyword)
    if kwargs:
        method = functools.partial(method, **kwargs)
    if tracing.database is None:
        tracing.read_target(connection)
    return tracing.runner.run(cursor, query, args, method, tracing.database, tracing.address, tracing.port, procedure)


def _traced_cursor_class(factory):
    """The traced subclass of a cursor class, or None for anything else (a factory
    function) and a class that refuses subclassing."""
    return _subclass(factory, _make_traced_cursor, _psycopg2_types()[1])


def _adopt(made):
    """A cursor some other code made: it takes the traced subclass of its class, unless
    that is psycopg2's plain cursor (a C type: its instances cannot change class)."""
    made_class = type(made)
    plain_cursor = _psycopg2_types()[1]
    if made_class is not plain_cursor and isinstance(made, plain_cursor):
        traced = _traced_cursor_class(made_class)
        if traced is not None and traced is not made_class:
            try:
                object.__setattr__(made, "__class__", traced)
            except TypeError:  # a C cursor type of its own (psycopg2's ReplicationCursor): untraced
                pass
    return made


def _cursor_arguments(name=None, cursor_factory=None, withhold=False, scrollable=None):
    """The parameters of psycopg2's `connection.cursor()`, with its defaults."""
    return name, cursor_factory, withhold, scrollable


def _make_traced_connection(base):
    plain_connection, plain_cursor = _psycopg2_types()
    plain_make_cursor = plain_connection.cursor
    traced_plain_cursor = _traced_cursor_class(plain_cursor)

    class TracedConnection(base):
        __slots__ = ("_ferrotel_tracing",)

        def cursor(self, *args, **kwargs):
            # Looked up at each call: the app may patch its class's cursor() later.
            make_cursor = base.cursor
            try:
                tracing = self._ferrotel_tracing
            except AttributeError:  # unset while the connection's own __init__ runs
                tracing = None
            if tracing is None:
                return super().cursor(*args, **kwargs)
            if make_cursor is not plain_make_cursor:
                return _adopt(super().cursor(*args, **kwargs))
            name, factory, withhold, scrollable = None, None, False, None
            if args or kwargs:
                try:
                    name, factory, withhold, scrollable = _cursor_arguments(*args, **kwargs)
                except TypeError:  # psycopg2's own error, in its words
                    return make_cursor(self, *args, **kwargs)
            if factory is None:
                factory = self.cursor_factory
            traced = traced_plain_cursor if factory is None else _traced_cursor_class(factory)
            # Positional: psycopg2 reads keywords at a cost comparable to the rest of the call.
            if traced is not None:
                return make_cursor(self, name, traced, withhold, scrollable)
            return _adopt(make_cursor(self, name, factory, withhold, scrollable))

    return TracedConnection


def _set_tracing(connection, tracing):
    # Through the slot itself: an app class's __setattr__ is not asked.
    type(connection).__dict__["_ferrotel_tracing"].__set__(connection, tracing)


class Psycopg2Instrumentor(Instrumentor):
    name = "psycopg2"

    def _instrument(self, **kwargs):
        import psycopg2
        import psycopg2.extensions

        runner = statements("postgresql", SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        runner = sqlcommenter.commenting(runner, psycopg2, "postgresql", kwargs)
        self._connect = connect = psycopg2._connect

        @functools.wraps(connect)
        def traced_connect(dsn, connection_factory=None, **kwargs):
            base = psycopg2.extensions.connection if connection_factory is None else connection_factory
            traced = _subclass(base, _make_traced_connection, psycopg2.extensions.connection)
            if traced is None:  # a factory function, or a class that refuses subclassing
                return _trace_connection(connect(dsn, connection_factory=connection_factory, **kwargs), runner)
            connection = connect(dsn, connection_factory=traced, **kwargs)
            if isinstance(connection, traced):
                _set_tracing(connection, _Tracing(runner, connection))
            return connection

        self._traced_connect = psycopg2._connect = traced_connect

    def _uninstrument(self, **kwargs):
        import psycopg2

        if psycopg2._connect is self._traced_connect:
            psycopg2._connect = self._connect

    @staticmethod
    def instrument_connection(connection, tracer_provider=None):
        """Traces the statements of `connection`'s new cursors; returns it."""
        return _trace_connection(connection, statements("postgresql", SCOPE, tracer_provider))

    @staticmethod
    def uninstrument_connection(connection):
        """Undoes `instrument_connection`, or the tracing of a connection made while
        instrumented: the connection's statements are no longer traced."""
        if "_ferrotel_original" in vars(type(connection)):
            _set_tracing(connection, None)
        tracing = _instrumented.pop(connection, None)
        factory = connection.cursor_factory
        if tracing is not None and isinstance(factory, type) and "_ferrotel_original" in vars(factory):
            connection.cursor_factory = tracing.replaced_factory
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
    """`instrument_connection`'s way, for a connection not made while instrumented."""
    import psycopg2.extensions

    # Anything else (a test's stand-in for psycopg2's connect) goes back as it came.
    if not isinstance(connection, psycopg2.extensions.connection):
        return connection
    if "_ferrotel_original" in vars(type(connection)):  # made while instrumented
        if getattr(connection, "_ferrotel_tracing", None) is None:
            _set_tracing(connection, _Tracing(runner, connection))
        return connection
    if _tracing_of(connection) is not None:
        return connection
    factory = _default_factory(connection)
    traced = None if factory is None else _traced_cursor_class(factory)
    if traced is not None:
        tracing = _Tracing(runner, connection)
        tracing.replaced_factory = connection.cursor_factory
        _instrumented[connection] = tracing
        connection.cursor_factory = traced
    return connection
