"""Per-connection DB-API tracing, the shape of upstream's `opentelemetry.instrumentation.dbapi`
functions (re-exported by `ferrotel.instrumentation.dbapi`): `instrument_connection` wraps one
connection of any DB-API 2 driver in a proxy whose cursors trace `execute`, `executemany` and
`callproc`; `wrap_connect` / `trace_integration` do it for every connection a driver's
`connect` makes; `uninstrument_connection` / `unwrap_connect` undo them.

The proxies hand everything else to the driver's own objects, and report the driver's class
(`isinstance(proxy, driver.Connection)` holds), as upstream's do. sqlcommenter and parameter
capture are not applied on this path (those keywords are accepted and ignored)."""

import functools


def _warn(message, connection):
    # `logging` imported only for this: importing it costs an app's `import sqlite3` ~13 ms.
    import logging

    logging.getLogger(__name__).warning(message, connection)


def _read(connection, path):
    """A dotted attribute path of the connection (`info.dbname`), or None."""
    value = connection
    for part in path.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _target(connection, connection_attributes):
    """`(database, host, port)` read from the connection at the attribute names upstream's
    `connection_attributes` gives for "database", "host" and "port"."""
    names = connection_attributes or {}
    database = _read(connection, names["database"]) if "database" in names else None
    if isinstance(database, bytes):
        database = database.decode(errors="ignore")
    host = _read(connection, names["host"]) if "host" in names else None
    port = _read(connection, names["port"]) if "port" in names else None
    try:
        port = int(port) if port is not None else None
    except (TypeError, ValueError):
        port = None
    return (str(database) if database else "", str(host) if host else None, port)


class _Proxy:
    """Hands every attribute to the wrapped object; `__class__` reports the wrapped one's."""

    __slots__ = ("__wrapped__", "_ferrotel")

    def __init__(self, wrapped, traced):
        object.__setattr__(self, "__wrapped__", wrapped)
        object.__setattr__(self, "_ferrotel", traced)

    @property
    def __class__(self):
        return type(self.__wrapped__)

    def __getattr__(self, name):
        return getattr(self.__wrapped__, name)

    def __setattr__(self, name, value):
        setattr(self.__wrapped__, name, value)

    def __delattr__(self, name):
        delattr(self.__wrapped__, name)

    def __iter__(self):
        return iter(self.__wrapped__)

    def __repr__(self):
        return repr(self.__wrapped__)


def _call(method_name, cursor, query, *args, **kwargs):
    return getattr(cursor, method_name)(query, *args, **kwargs)


def _traced(method_name):
    def traced(self, query, *args, **kwargs):
        runner, database, host, port = self._ferrotel
        method = functools.partial(_call, method_name, **kwargs)
        return runner.run(self.__wrapped__, query, args, method, database, host, port)

    traced.__name__ = method_name
    return traced


class TracedCursor(_Proxy):
    __slots__ = ()
    execute = _traced("execute")
    executemany = _traced("executemany")
    callproc = _traced("callproc")

    def __enter__(self):
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.__wrapped__.__exit__(*exc_info)


class TracedConnection(_Proxy):
    __slots__ = ()

    def cursor(self, *args, **kwargs):
        return TracedCursor(self.__wrapped__.cursor(*args, **kwargs), self._ferrotel)

    def __enter__(self):
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.__wrapped__.__exit__(*exc_info)


def instrument_connection(
    name,
    connection,
    database_system,
    connection_attributes=None,
    version="",
    tracer_provider=None,
    *,
    meter_provider=None,
    **ignored,
):
    """`connection` in a proxy whose cursors trace their statements as `database_system`,
    recorded by the tracer `name`; a proxy given again is returned as it is."""
    from ferrotel.instrumentation.dbapi import statements

    if isinstance(connection, _Proxy):
        _warn("connection %r is already instrumented", connection)
        return connection
    runner = statements(database_system, name, tracer_provider, meter_provider)
    return TracedConnection(connection, (runner, *_target(connection, connection_attributes)))


def uninstrument_connection(connection):
    """The connection inside a proxy `instrument_connection` made (others as they are)."""
    if isinstance(connection, _Proxy):
        return connection.__wrapped__
    _warn("connection %r is not instrumented", connection)
    return connection


def wrap_connect(
    name,
    connect_module,
    connect_method_name,
    database_system,
    connection_attributes=None,
    version="",
    tracer_provider=None,
    *,
    meter_provider=None,
    **ignored,
):
    """Replaces `connect_module.connect_method_name` so that every connection it makes is
    instrumented (`instrument_connection`); `unwrap_connect` puts the original back."""
    connect = getattr(connect_module, connect_method_name, None)
    if connect is None or getattr(connect, "_ferrotel_connect", None) is not None:
        return

    @functools.wraps(connect)
    def traced_connect(*args, **kwargs):
        connection = connect(*args, **kwargs)
        return instrument_connection(
            name,
            connection,
            database_system,
            connection_attributes,
            version,
            tracer_provider,
            meter_provider=meter_provider,
        )

    traced_connect._ferrotel_connect = connect
    setattr(connect_module, connect_method_name, traced_connect)


def unwrap_connect(connect_module, connect_method_name):
    connect = getattr(connect_module, connect_method_name, None)
    original = getattr(connect, "_ferrotel_connect", None)
    if original is not None:
        setattr(connect_module, connect_method_name, original)


def trace_integration(
    connect_module,
    connect_method_name,
    database_system,
    connection_attributes=None,
    tracer_provider=None,
    *,
    meter_provider=None,
    **ignored,
):
    """`wrap_connect` under the DB-API layer's own tracer name."""
    from ferrotel.instrumentation.dbapi import SCOPE

    wrap_connect(
        SCOPE,
        connect_module,
        connect_method_name,
        database_system,
        connection_attributes,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
