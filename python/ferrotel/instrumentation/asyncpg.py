"""asyncpg spans: every query run by a connection's `execute`, `executemany`, `fetch`,
`fetchval` and `fetchrow` (a pool's connections included), every fetch of a cursor, and
every run of a prepared statement (how SQLAlchemy's asyncpg dialect sends its queries), as
upstream's instrumentation traces them. The span, its attributes and
`db.client.operation.duration` are native (`DbStatements.start_statement`, ended once the
query is awaited)."""

from ferrotel.instrumentation import Instrumentor
from ferrotel.instrumentation.dbapi import statements

SCOPE = "ferrotel.instrumentation.asyncpg"
_CONNECTION_METHODS = ("execute", "executemany", "fetch", "fetchval", "fetchrow")
_CURSOR_METHODS = ("fetch", "forward", "fetchrow")
_PREPARED_METHODS = ("fetch", "fetchval", "fetchrow", "fetchmany", "executemany")


def _target(connection):
    """`(database, server address, port, transport)`: the address is a (host, port) pair,
    or a socket path."""
    database = getattr(getattr(connection, "_params", None), "database", None) or ""
    address = getattr(connection, "_addr", None)
    if isinstance(address, tuple):
        return (database, str(address[0]), int(address[1]), "tcp")
    return (database, str(address) if address else None, None, "unix")


async def _traced(runner, method, connection, query, receiver, args, kwargs):
    database, address, port, transport = _target(connection)
    operation = runner.start_statement(query, database, address, port)
    if operation is None:
        return await method(receiver, *args, **kwargs)
    operation.span.set_attribute("network.transport", transport)
    try:
        result = await method(receiver, *args, **kwargs)
    except StopAsyncIteration:  # a cursor's iteration ends: not a failure
        operation.end()
        raise
    except BaseException as exc:
        operation.end(exc)
        raise
    operation.end()
    return result


class AsyncPGInstrumentor(Instrumentor):
    name = "asyncpg"

    def _instrument(self, **kwargs):
        from asyncpg.connection import Connection
        from asyncpg.cursor import Cursor, CursorIterator
        from asyncpg.prepared_stmt import PreparedStatement

        runner = statements("postgresql", SCOPE, kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._originals = []

        def connection_method(method):
            async def traced(connection, query, *args, **kwargs):
                return await _traced(runner, method, connection, query, connection, (query, *args), kwargs)

            return traced

        def cursor_method(method):
            async def traced(cursor, *args, **kwargs):
                return await _traced(runner, method, cursor._connection, cursor._query, cursor, args, kwargs)

            return traced

        patches = [(Connection, name, connection_method) for name in _CONNECTION_METHODS]
        patches += [(Cursor, name, cursor_method) for name in _CURSOR_METHODS]
        patches.append((CursorIterator, "__anext__", cursor_method))
        # A statement's query and connection are its own; `cursor_method` reads both the
        # same way.
        patches += [(PreparedStatement, name, cursor_method) for name in _PREPARED_METHODS]
        for owner, name, wrap in patches:
            original = owner.__dict__.get(name)
            if original is not None:
                self._originals.append((owner, name, original))
                setattr(owner, name, wrap(original))

    def _uninstrument(self, **kwargs):
        for owner, name, original in self._originals:
            setattr(owner, name, original)
        self._originals = []
