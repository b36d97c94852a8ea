"""SQLAlchemy (1.4 to 2.1) spans and connection-pool metrics, from each engine's events; an
`AsyncEngine` is traced through its sync engine, whose events it fires.

- Every statement an engine sends is one CLIENT span, from `before_cursor_execute` to
  `after_cursor_execute` or `handle_error`, started natively (`DbStatements.start_statement`:
  name, stable attributes, query text without literals, `db.client.operation.duration`)
  under the caller's current span.
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
"""

import os
import weakref

from opentelemetry import context as context_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from ferrotel import __version__
from ferrotel.instrumentation import Instrumentor, sqlcommenter
from ferrotel.instrumentation._generic import suppressed
from ferrotel.instrumentation.dbapi import statements

SCOPE = "ferrotel.instrumentation.sqlalchemy"


def _system(dialect_name):
    """The `db.system.name` of a dialect, as upstream normalises it."""
    if "sqlite" in dialect_name:
        return "sqlite"
    if "postgres" in dialect_name:
        return "postgresql"
    return dialect_name or "other_sql"


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
    logging_name = getattr(getattr(engine, "pool", None), "logging_name", None)
    return logging_name or f"{url.drivername or ''}://{url.host or ''}:{url.port or ''}/{url.database or ''}"


def _pool_capacity(pool):
    """The most connections a queue pool opens; None for unbounded or other pools."""
    size, overflow = getattr(pool, "size", None), getattr(pool, "_max_overflow", None)
    if not callable(size) or not isinstance(overflow, int) or overflow < 0:
        return None
    return size() + overflow


class EngineTracer:
    """The listeners of one engine; `instrument(engine=...)` returns it, as upstream's does."""

    def __init__(self, engine, telemetry):
        from sqlalchemy import event

        url = engine.url
        self.engine = weakref.ref(engine)
        self.telemetry = telemetry
        self.system = _system(engine.name)
        self.runner = telemetry.runner(self.system)
        self.namespace = url.database or ""
        self.address = url.host or None
        self.port = url.port
        self.driver = engine.driver
        self.pool_name = _pool_name(engine)
        self.listeners = [
            ("before_cursor_execute", self.before_cursor_execute, {"retval": True}),
            # The driver's own instrumentation is suppressed from the driver call on, where
            # the engine reports a failure (handle_error). Before it, a listener raising in
            # before_cursor_execute after ours ends the statement with no later event (1.4,
            # 2.0), which would leave the suppression attached to the caller.
            ("do_execute", self.suppress_driver, {}),
            ("do_executemany", self.suppress_driver, {}),
            ("do_execute_no_params", self.suppress_driver_no_params, {}),
            ("after_cursor_execute", self.after_cursor_execute, {}),
            ("handle_error", self.handle_error, {}),
            ("connect", self.pool_connect, {}),
            ("close", self.pool_close, {}),
            ("checkout", self.pool_checkout, {}),
            ("checkin", self.pool_checkin, {}),
        ]
        for name, listener, options in self.listeners:
            event.listen(engine, name, listener, **options)
        capacity = _pool_capacity(getattr(engine, "pool", None))
        if capacity is not None:
            for _, maximum, pool_key, _ in telemetry.pool_instruments():
                maximum.add(capacity, {pool_key: self.pool_name})

    def remove(self):
        from sqlalchemy import event

        engine = self.engine()
        if engine is not None:
            for name, listener, _ in self.listeners:
                if event.contains(engine, name, listener):
                    event.remove(engine, name, listener)
            engine._ferrotel_tracer = None

    def before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany):
        # A statement outside an execution context (1.4's pre-executed defaults) has nowhere
        # to keep its span until it ends: left to the driver's instrumentation.
        if context is None or not isinstance(statement, str):
            return statement, parameters
        # insertmanyvalues runs its batches in one context, with no handle_error for a listener
        # raising in after_cursor_execute before ours: the previous batch ends here then.
        self._finish(context)
        operation = self.runner.start_statement(statement, self.namespace, self.address, self.port)
        if operation is None:
            return statement, parameters
        telemetry = self.telemetry
        if telemetry.commenter and operation.span.is_recording():
            try:
                statement = self._commented(statement, operation)
            except Exception:  # noqa: BLE001 - the statement goes out uncommented, never fails
                pass
        context._ferrotel_statement = (operation, None)
        return statement, parameters

    @staticmethod
    def suppress_driver(cursor, statement, parameters, context):
        started = getattr(context, "_ferrotel_statement", None)
        if started is not None and started[1] is None:
            token = context_api.attach(context_api.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
            context._ferrotel_statement = (started[0], token)

    def suppress_driver_no_params(self, cursor, statement, context):
        self.suppress_driver(cursor, statement, None, context)

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

    @staticmethod
    def _finish(context, exception=None):
        started = getattr(context, "_ferrotel_statement", None)
        if started is None:
            return
        context._ferrotel_statement = None
        operation, token = started
        if token is not None:
            context_api.detach(token)
        operation.end(exception)

    def after_cursor_execute(self, conn, cursor, statement, parameters, context, executemany):
        self._finish(context)

    def handle_error(self, exception_context):
        self._finish(exception_context.execution_context, exception_context.original_exception)

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
        tracers.append(tracer)
    return tracer


def _connect_attributes(engine):
    url = engine.url
    attributes = {"db.system.name": _system(engine.name)}
    if url.host:
        attributes["server.address"] = url.host
    if url.port:
        attributes["server.port"] = url.port
    if url.database:
        attributes["db.namespace"] = url.database
    # Upstream's old names beside them, each by its own opt-in (the peer's are HTTP's).
    if _old_names_too():
        attributes["db.system"] = attributes["db.system.name"]
        for old, value in (("db.name", url.database), ("db.user", url.username)):
            if value:
                attributes[old] = value
    if _old_names_too("http"):
        for old, value in (("net.peer.name", url.host), ("net.peer.port", url.port)):
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
                if not suppressed():
                    _trace_engine(engine, telemetry, tracers)
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
        try:
            import sqlalchemy.ext.asyncio
            import sqlalchemy.ext.asyncio.engine
        except ImportError:  # asyncio support needs greenlet
            pass
        else:
            create_async = sqlalchemy.ext.asyncio.engine.create_async_engine
            for module in (sqlalchemy.ext.asyncio, sqlalchemy.ext.asyncio.engine):
                patch(module, "create_async_engine", lambda _: traced_create(create_async))

        def traced_connect(connect):
            def connect_traced(engine, *args, **kwargs):
                if suppressed():
                    return connect(engine, *args, **kwargs)
                from opentelemetry.trace import SpanKind

                with telemetry.tracer().start_as_current_span(
                    "connect", kind=SpanKind.CLIENT, attributes=_connect_attributes(engine)
                ):
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
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        for tracer in self._tracers:
            tracer.remove()
        self._patched, self._tracers = [], []
