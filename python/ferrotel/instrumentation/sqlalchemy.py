"""SQLAlchemy (1.4 to 2.1) spans and connection-pool metrics per engine; an `AsyncEngine` is
traced through its sync engine.

- Every statement an engine sends is one CLIENT span around the dialect's call into the
  driver (`do_execute`, `do_executemany`, `do_execute_no_params`, wrapped on the engine's
  dialect object), started natively (`DbStatements.start_statement`: name, stable
  attributes, query text without literals, `db.client.operation.duration`) under the
  caller's current span. No engine event listener is added: one would turn on the engine's
  event dispatch (`_has_events`) for every execution, which the app can observe.
- The driver's own instrumentation (ferrotel's sqlite3, psycopg, psycopg2, asyncpg) would
  record the same statement a second time: while the engine's statement runs, instrumentation
  is suppressed, so a statement is one span — the engine's, which carries what the driver's
  span would (server address and port, namespace, query text). Upstream's pair of sibling
  spans for one statement is deliberately not reproduced.
- `Engine.connect` gets upstream's `connect` span; the driver's connection set-up queries
  nest under it.
- Pool events count connections by state (`db.client.connection.count`, idle/used) and a
  queue pool's capacity (`db.client.connection.max`); OTEL_SEMCONV_STABILITY_OPT_IN=
  database/dup adds upstream's `db.client.connections.usage`.
- `enable_commenter` appends the sqlcommenter comment (driver, framework, the statement
  span's traceparent) to the SQL sent; `db.query.text` shows it only with
  `enable_attribute_commenter`.
- `create_async_engine` is patched when the app imports `sqlalchemy.ext.asyncio`, not
  before: importing it pulls in greenlet, which plain `import sqlalchemy` does not.
"""

import os
import sys
import weakref

from opentelemetry import context as context_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from ferrotel import __version__, _loader
from ferrotel.instrumentation import Instrumentor, sqlcommenter
from ferrotel.instrumentation._generic import suppressed
from ferrotel.instrumentation.dbapi import statements

SCOPE = "ferrotel.instrumentation.sqlalchemy"


def _text(value):
    """`value` if it is a string: an engine's URL parts (a test's mock engine has others)."""
    return value if isinstance(value, str) else None


def _system(dialect_name):
    """The `db.system.name` of a dialect, as upstream normalises it."""
    dialect_name = _text(dialect_name)
    if not dialect_name:
        return "other_sql"
    if "sqlite" in dialect_name:
        return "sqlite"
    if "postgres" in dialect_name:
        return "postgresql"
    return dialect_name


_COUNT_DESCRIPTION = "The number of connections that are currently in state described by the state attribute."


def _old_names_too(signal="database"):
    tokens = {t.strip() for t in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")}
    return f"{signal}/dup" in tokens


class _Telemetry:
    """What one `instrument()` call records with: statement runners per database system, the
    `connect` span's tracer and the pool instruments, all made at first use (the app may set
    its providers after instrumenting), and the commenter settings."""

    def __init__(self, kwargs):
        self.tracer_provider = kwargs.get("tracer_provider")
        self.meter_provider = kwargs.get("meter_provider")
        self.commenter = bool(kwargs.get("enable_commenter", False))
        self.commenter_options = kwargs.get("commenter_options") or {}
        self.attribute_commenter = self.commenter and bool(kwargs.get("enable_attribute_commenter", False))
        self._runners = {}
        self._tracer = None
        self._pool_instruments = None

    def runner(self, system):
        runner = self._runners.get(system)
        if runner is None:
            runner = self._runners[system] = statements(system, SCOPE, self.tracer_provider, self.meter_provider)
        return runner

    def tracer(self):
        if self._tracer is None:
            from opentelemetry import trace

            self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=self.tracer_provider)
        return self._tracer

    def pool_instruments(self):
        """`[(count, max, pool-name key, state key)]`: stable names, then the old ones with
        OTEL_SEMCONV_STABILITY_OPT_IN=database/dup."""
        if self._pool_instruments is None:
            from opentelemetry import metrics

            meter = metrics.get_meter(SCOPE, __version__, self.meter_provider)
            instruments = [
                (
                    meter.create_up_down_counter(
                        "db.client.connection.count",
                        unit="{connection}",
                        description=_COUNT_DESCRIPTION,
                    ),
                    meter.create_up_down_counter(
                        "db.client.connection.max",
                        unit="{connection}",
                        description="The maximum number of open connections allowed.",
                    ),
                    "db.client.connection.pool.name",
                    "db.client.connection.state",
                )
            ]
            if _old_names_too():
                old = meter.create_up_down_counter(
                    "db.client.connections.usage",
                    unit="connections",
                    description=_COUNT_DESCRIPTION,
                )
                old_max = meter.create_up_down_counter(
                    "db.client.connections.max",
                    unit="connections",
                    description="The maximum number of open connections allowed.",
                )
                instruments.append((old, old_max, "pool.name", "state"))
            self._pool_instruments = instruments
        return self._pool_instruments


def _pool_name(engine):
    url = engine.url
    logging_name = _text(getattr(getattr(engine, "pool", None), "logging_name", None))
    port = url.port if isinstance(url.port, int) else ""
    parts = (_text(url.drivername) or "", _text(url.host) or "", port, _text(url.database) or "")
    return logging_name or "{}://{}:{}/{}".format(*parts)


def _pool_capacity(pool):
    """The most connections a queue pool opens; None for unbounded or other pools."""
    size, overflow = getattr(pool, "size", None), getattr(pool, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return None
    return size() + overflow


def _bound(instance, name):
    """`instance.name` as it reads without an attribute of the instance's own: the class's,
    bound as Python binds it (a mock patched onto the class is no descriptor)."""
    found = getattr(type(instance), name)
    get = getattr(type(found), "__get__", None)
    return found if get is None else get(found, instance, type(instance))


# The dialect methods that hand a statement to the driver, and where each takes `context`
# among the arguments after (cursor, statement).
_DRIVER_CALLS = (("do_execute", 1), ("do_executemany", 1), ("do_execute_no_params", 0))


class EngineTracer:
    """The tracing of one engine; `instrument(engine=...)` returns it, as upstream's does.

    Statements are traced where the dialect hands them to the driver: its `do_execute`
    family, wrapped on this engine's dialect object. Engine events would do it too, but a
    listener turns on the engine's event dispatch for every execution (`_has_events`),
    which the app can see and pays for; pool listeners (the metrics) do not."""

    def __init__(self, engine, telemetry):
        from sqlalchemy import event

        url = engine.url
        self.engine = weakref.ref(engine)
        self.telemetry = telemetry
        self.system = _system(engine.name)
        self.runner = telemetry.runner(self.system)
        self.namespace = _text(url.database) or ""
        self.address = _text(url.host)
        self.port = url.port if isinstance(url.port, int) else None
        self.driver = engine.driver
        self.pool_name = _pool_name(engine)
        self.dialect = engine.dialect
        # name -> (our wrapper, the instance attribute it shadows or None)
        self.wrapped = {}
        self.listeners = [
            ("connect", self.pool_connect),
            ("close", self.pool_close),
            ("checkout", self.pool_checkout),
            ("checkin", self.pool_checkin),
        ]
        for name, listener in self.listeners:
            event.listen(engine, name, listener)
        capacity = _pool_capacity(getattr(engine, "pool", None))
        if capacity is not None:
            for _, maximum, pool_key, _ in telemetry.pool_instruments():
                maximum.add(capacity, {pool_key: self.pool_name})
        # Last: nothing above can fail and leave them behind.
        for name, context_index in _DRIVER_CALLS:
            own = vars(self.dialect).get(name)
            wrapper = self._traced(name, context_index, own)
            setattr(self.dialect, name, wrapper)
            self.wrapped[name] = (wrapper, own)

    def remove(self):
        from sqlalchemy import event

        for name, (wrapper, own) in self.wrapped.items():
            # Left alone if the app has put a method of its own there since.
            if vars(self.dialect).get(name) is wrapper:
                if own is None:
                    delattr(self.dialect, name)
                else:
                    setattr(self.dialect, name, own)
        self.wrapped = {}
        engine = self.engine()
        if engine is not None:
            for name, listener in self.listeners:
                if event.contains(engine, name, listener):
                    event.remove(engine, name, listener)
            engine._ferrotel_tracer = None

    def _traced(self, name, context_index, own):
        """The dialect's `name`, tracing each statement that has an execution context (one
        without, as 1.4's pre-executed defaults, is left to the driver's instrumentation).
        The class's method is looked up per call, so a later patch of it still applies."""
        dialect = self.dialect
        telemetry = self.telemetry

        def driver_call(cursor, statement, *args, **kwargs):
            call = own if own is not None else _bound(dialect, name)
            context = (
                kwargs["context"] if "context" in kwargs else args[context_index] if len(args) > context_index else None
            )
            if context is None or not isinstance(statement, str):
                return call(cursor, statement, *args, **kwargs)
            operation = self.runner.start_statement(statement, self.namespace, self.address, self.port)
            if operation is None:
                return call(cursor, statement, *args, **kwargs)
            if telemetry.commenter and operation.span.is_recording():
                try:
                    statement = self._commented(statement, operation)
                except Exception:  # noqa: BLE001 - the statement goes out uncommented, never fails
                    pass
            # The driver's own instrumentation would record this statement a second time.
            token = context_api.attach(context_api.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            try:
                result = call(cursor, statement, *args, **kwargs)
            except BaseException as exception:
                context_api.detach(token)
                operation.end(exception)
                raise
            context_api.detach(token)
            operation.end(None)
            return result

        driver_call.__name__ = driver_call.__qualname__ = name
        driver_call.__wrapped__ = own if own is not None else _bound(dialect, name)
        return driver_call

    def _commented(self, statement, operation):
        import sqlalchemy

        values = {"db_driver": self.driver, "db_framework": f"sqlalchemy:{sqlalchemy.__version__}"}
        options = self.telemetry.commenter_options
        if options.get("opentelemetry_values", True):
            values.update(sqlcommenter.context_values(operation.span))
        comment = sqlcommenter.comment_for(sqlcommenter.selected(values, options))
        if self.telemetry.attribute_commenter:
            from ferrotel import _native

            _, attributes = _native.db_conventions(self.system, self.namespace, statement)
            operation.span.set_attribute("db.query.text", sqlcommenter.commented(attributes["db.query.text"], comment))
        commented = sqlcommenter.commented(statement, comment)
        return commented

    def _count(self, state, change):
        if suppressed():
            return
        for count, _, pool_key, state_key in self.telemetry.pool_instruments():
            count.add(change, {pool_key: self.pool_name, state_key: state})

    def pool_connect(self, dbapi_connection, connection_record):
        self._count("idle", 1)

    def pool_close(self, dbapi_connection, connection_record):
        self._count("idle", -1)

    def pool_checkout(self, dbapi_connection, connection_record, connection_proxy):
        self._count("idle", -1)
        self._count("used", 1)

    def pool_checkin(self, dbapi_connection, connection_record):
        self._count("used", -1)
        self._count("idle", 1)


def _trace_engine(engine, telemetry, tracers):
    """The engine's tracer, made once per engine (an `AsyncEngine` is traced through its sync
    engine)."""
    engine = getattr(engine, "sync_engine", engine)
    tracer = getattr(engine, "_ferrotel_tracer", None)
    if tracer is None:
        tracer = engine._ferrotel_tracer = EngineTracer(engine, telemetry)
        # Weakly: the dialect's wrappers keep a tracer alive as long as its engine lives, and
        # an app making engines per tenant or test must not keep every one of them.
        tracers[:] = [ref for ref in tracers if ref() is not None]
        tracers.append(weakref.ref(tracer))
    return tracer


def _trace_created(engine, telemetry, tracers):
    """Traces what `create_engine` returned, if it is an engine: the deprecated mock
    strategy returns a `MockConnection`. A failure costs the engine its spans, never the
    app its engine."""
    from sqlalchemy.engine.base import Engine

    if suppressed() or not isinstance(getattr(engine, "sync_engine", engine), Engine):
        return
    try:
        _trace_engine(engine, telemetry, tracers)
    except Exception as exc:  # noqa: BLE001 - instrumentation never breaks create_engine
        from ferrotel import _native

        _native.log("warning", f"an engine from create_engine was left untraced: {type(exc).__name__}: {exc}")


def _connect_attributes(engine):
    url = engine.url
    host, database = _text(url.host), _text(url.database)
    port = url.port if isinstance(url.port, int) else None
    attributes = {"db.system.name": _system(engine.name)}
    if host:
        attributes["server.address"] = host
    if port:
        attributes["server.port"] = port
    if database:
        attributes["db.namespace"] = database
    # Upstream's old names beside them, each by its own opt-in (the peer's are HTTP's).
    if _old_names_too():
        attributes["db.system"] = attributes["db.system.name"]
        for old, value in (("db.name", database), ("db.user", _text(url.username))):
            if value:
                attributes[old] = value
    if _old_names_too("http"):
        for old, value in (("net.peer.name", host), ("net.peer.port", port)):
            if value:
                attributes[old] = value
    return attributes


class SQLAlchemyInstrumentor(Instrumentor):
    name = "sqlalchemy"

    def _instrument(self, **kwargs):
        import sqlalchemy
        import sqlalchemy.engine
        import sqlalchemy.engine.create
        from sqlalchemy.engine.base import Engine

        telemetry = _Telemetry(kwargs)
        self._tracers = tracers = []
        self._patched = []

        def traced_create(create):
            def create_engine(*args, **kwargs):
                engine = create(*args, **kwargs)
                _trace_created(engine, telemetry, tracers)
                return engine

            create_engine.__wrapped__ = create
            return create_engine

        def patch(owner, name, wrap):
            original = owner.__dict__[name]
            self._patched.append((owner, name, original))
            setattr(owner, name, wrap(original))

        # Each module re-exporting a creator gets the same wrapper of the original.
        create = sqlalchemy.engine.create.create_engine
        for module in (sqlalchemy, sqlalchemy.engine, sqlalchemy.engine.create):
            patch(module, "create_engine", lambda _: traced_create(create))
        self._telemetry = telemetry

        def patch_asyncio():
            # Registered per instrument(): only the current one's may patch.
            if self._telemetry is not telemetry:
                return
            # From sys.modules: the hook runs before the package is bound as an attribute of
            # sqlalchemy.ext.
            package, module = sys.modules["sqlalchemy.ext.asyncio"], sys.modules["sqlalchemy.ext.asyncio.engine"]
            create_async = module.create_async_engine
            for owner in (package, module):
                patch(owner, "create_async_engine", lambda _: traced_create(create_async))

        _loader.when_imported("sqlalchemy.ext.asyncio", patch_asyncio)

        def traced_connect(connect):
            def connect_traced(engine, *args, **kwargs):
                if suppressed():
                    return connect(engine, *args, **kwargs)
                from opentelemetry.trace import SpanKind

                try:
                    attributes = _connect_attributes(engine)
                except Exception:  # noqa: BLE001 - an engine whose URL reads oddly still connects
                    attributes = {"db.system.name": "other_sql"}
                with telemetry.tracer().start_as_current_span("connect", kind=SpanKind.CLIENT, attributes=attributes):
                    return connect(engine, *args, **kwargs)

            return connect_traced

        patch(Engine, "connect", traced_connect)
        if kwargs.get("engine") is not None:
            self.instrumented = _trace_engine(kwargs["engine"], telemetry, tracers)
        elif kwargs.get("engines") is not None:
            self.instrumented = [_trace_engine(e, telemetry, tracers) for e in kwargs["engines"]]
        else:
            self.instrumented = None

    def instrument(self, **kwargs):
        """Traces engines made from now on, and `engine` / `engines` given; returns the
        tracer of `engine` (a list for `engines`), or None, as upstream's does."""
        if self._instrumented:
            return None
        super().instrument(**kwargs)
        return self.instrumented

    def _uninstrument(self, **kwargs):
        self._telemetry = None
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        # Newest first: tracers sharing a dialect (an engine and its option engines) each
        # restore what was there before them.
        for ref in reversed(self._tracers):
            tracer = ref()
            if tracer is not None:
                tracer.remove()
        self._patched, self._tracers = [], []
