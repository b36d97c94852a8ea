"""ferrotel's built-in psycopg (3) instrumentation against a real PostgreSQL: a CLIENT span
per statement from cursors, the connection's own `execute`, server-side and asyncio cursors,
the query text without literal values, failures recorded; `instrument_connection` /
`uninstrument_connection`, `tracer_provider` and the suppression key, each asserted on what
arrives."""

import textwrap

import pytest
from support.console import console_spans
from support.databases import postgres  # noqa: F401 (a fixture)
from support.processes import PYTHON, instrument


def run(tmp, script, dsn, *flags):
    (tmp / "app.py").write_text(textwrap.dedent(script))
    result = instrument("--traces_exporter", "console", *flags, PYTHON, "app.py", dsn, cwd=tmp)
    assert result.returncode == 0, result.stderr
    return result.stdout, console_spans(result.stdout)


APP = """
    import asyncio, sys
    import psycopg
    from opentelemetry import trace

    dsn = sys.argv[1]

    async def asynchronous():
        async with await psycopg.AsyncConnection.connect(dsn) as connection:
            async with connection.cursor() as cursor:
                await cursor.execute("SELECT name FROM toys WHERE price < 10")
                return (await cursor.fetchone())[0]

    with trace.get_tracer("app").start_as_current_span("parent"):
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("DROP TABLE IF EXISTS toys")
            connection.execute("CREATE TABLE toys (name text, price int)")
            with connection.cursor() as cursor:
                cursor.executemany("INSERT INTO toys VALUES (%s, %s)", [("ball", 3), ("kite", 12)])
                cursor.execute("SELECT name FROM toys WHERE name = 'ball' AND price = 3")
                print("found", cursor.fetchone()[0])
            # A server-side cursor lives in a transaction.
            with connection.transaction(), connection.cursor(name="server_side") as cursor:
                cursor.execute("SELECT name FROM toys")
                print("server side", len(cursor.fetchall()))
            try:
                connection.execute("SELEC broken")
            except psycopg.errors.SyntaxError:
                print("syntax error")
            # The factories stay the app's; a factory set after connect and a cursor made
            # from its class are traced all the same.
            print("factories", connection.cursor_factory is psycopg.Cursor,
                  connection.server_cursor_factory is psycopg.ServerCursor)
            connection.cursor_factory = psycopg.ClientCursor
            cursor = connection.cursor()
            print("class", type(cursor) is psycopg.ClientCursor)
            cursor.execute("SELECT name FROM toys WHERE price > 10")
            psycopg.RawCursor(connection).execute("SELECT name FROM toys WHERE price > $1", [11])
        print("async", asyncio.run(asynchronous()))
"""


def test_statements_become_spans(tmp, postgres):  # noqa: F811
    out, spans = run(tmp, APP, postgres)
    assert "found ball" in out and "server side 2" in out and "syntax error" in out and "async ball" in out
    assert "factories True True" in out and "class True" in out
    (parent,) = [s for s in spans if s["name"] == "parent"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert [s["name"] for s in clients] == [
        "DROP toys",
        "CREATE toys",
        "INSERT toys",
        "SELECT toys",
        "SELECT toys",
        "SELEC",
        "SELECT toys",
        "SELECT toys",
        "SELECT toys",
    ]
    assert all(s["parent"] == parent["span_id"] for s in clients)
    port = postgres.split("port=")[1].split()[0]
    assert clients[3]["attributes"] == {
        "db.system.name": '"postgresql"',
        "db.query.text": '"SELECT name FROM toys WHERE name = ? AND price = ?"',
        "db.operation.name": '"SELECT"',
        "db.collection.name": '"toys"',
        "db.namespace": '"postgres"',
        "server.address": '"127.0.0.1"',
        "server.port": port,
    }
    failed = clients[5]
    assert failed["status"].startswith("ERROR: SyntaxError")
    assert failed["attributes"]["error.type"] == '"psycopg.errors.SyntaxError"'
    assert failed["events"] == ["exception"]


PROGRAMMATIC = """
    import sys
    import psycopg
    from opentelemetry import context, trace
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
    from ferrotel.instrumentation.psycopg import PsycopgInstrumentor

    dsn = sys.argv[1]
    connection = psycopg.connect(dsn)
    connection.execute("SELECT 'before'")
    # Both return the connection itself, as upstream's do.
    assert PsycopgInstrumentor.instrument_connection(connection) is connection
    connection.execute("SELECT 'instrumented'")
    token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    connection.execute("SELECT 'suppressed'")
    context.detach(token)
    assert PsycopgInstrumentor.uninstrument_connection(connection) is connection
    connection.execute("SELECT 'uninstrumented'")
    # Nothing traced any more: psycopg's cursor classes have their own methods again.
    print("unwrapped", not hasattr(psycopg.Cursor.execute, "__wrapped__"))
    PsycopgInstrumentor.instrument_connection(connection, tracer_provider=trace.NoOpTracerProvider())
    connection.execute("SELECT 'noop provider'")
    connection.close()
"""


def test_instrument_connection_provider_and_suppression(tmp, postgres):  # noqa: F811
    out, spans = run(tmp, PROGRAMMATIC, postgres, "--disabled_instrumentations", "psycopg")
    assert "unwrapped True" in out
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert [s["attributes"]["db.query.text"] for s in clients] == ['"SELECT ?"']
    # The literal is gone from the text; the one span is the instrumented statement's.
    assert len(clients) == 1


PSYCOPG2 = """
    import dataclasses, functools, sys, weakref
    import psycopg2, psycopg2.extensions, psycopg2.extras
    from opentelemetry import trace

    dsn = sys.argv[1]
    with trace.get_tracer("app").start_as_current_span("parent"):
        connection = psycopg2.connect(dsn, cursor_factory=psycopg2.extras.RealDictCursor)
        connection.autocommit = True
        print("factory", connection.cursor_factory.__name__)
        cursor = connection.cursor()
        assert type(cursor).__name__ == "RealDictCursor" and isinstance(cursor, psycopg2.extras.RealDictCursor)
        cursor.execute("SELECT %s AS answer WHERE 1 = 1", (42,))
        print("row", dict(cursor.fetchone()))
        cursor.executemany("SELECT %s", [(1,), (2,)])
        try:
            cursor.execute("SELEC broken")
        except psycopg2.errors.SyntaxError:
            print("syntax error")
        connection.close()

        # The factory given to cursor(), by keyword or by position, and the one the app sets
        # on the connection later: each cursor keeps its class and is traced.
        plain = psycopg2.connect(dsn)
        print("plain", plain.cursor_factory, isinstance(plain, psycopg2.extensions.connection))
        by_keyword = plain.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        by_keyword.execute("SELECT 1 AS keyword")
        by_position = plain.cursor(None, psycopg2.extras.NamedTupleCursor)
        by_position.execute("SELECT 2 AS position")
        plain.cursor_factory = psycopg2.extras.DictCursor
        later = plain.cursor()
        later.execute("SELECT 3 AS later")
        print("rows", by_keyword.fetchone()["keyword"], by_position.fetchone().position, later.fetchone()["later"])
        print("classes", type(by_keyword).__name__, type(by_position).__name__, type(later).__name__)
        plain.cursor_factory = None
        named = plain.cursor("server_side", withhold=True)
        named.execute("SELECT 4")
        print("named", named.name, named.withhold, named.fetchone()[0])

        # A factory that is not a class (a partial, an object that cannot be hashed): its
        # cursor takes the traced subclass of its class.
        @dataclasses.dataclass
        class Factory:
            def __call__(self, *args):
                return psycopg2.extras.RealDictCursor(*args)

        for factory in (functools.partial(psycopg2.extras.RealDictCursor), Factory()):
            made = plain.cursor(cursor_factory=factory)
            made.execute("SELECT 5 AS made")
            print("made", type(made).__name__, made.fetchone()["made"])
        plain.close()

    # A connection and cursors the app drops are freed at once, as bare: nothing of
    # ferrotel's refers back to them.
    def dropped():
        connection = psycopg2.connect(dsn)
        connection.cursor(cursor_factory=Factory()).execute("SELECT 6 AS dropped")
        return weakref.ref(connection)

    print("freed", dropped()() is None)
"""


def test_psycopg2_statements_become_spans(tmp, postgres):  # noqa: F811
    out, spans = run(tmp, PSYCOPG2, postgres)
    assert "row {'answer': 42}" in out and "syntax error" in out
    assert "factory RealDictCursor" in out and "plain None True" in out
    assert "rows 1 2 3" in out and "classes RealDictCursor NamedTupleCursor DictCursor" in out
    assert "named server_side True 4" in out
    assert "made RealDictCursor 5" in out.splitlines() and out.count("made RealDictCursor 5") == 2
    assert "freed True" in out
    (parent,) = [s for s in spans if s["name"] == "parent"]
    *clients, dropped = [s for s in spans if s["kind"] == "CLIENT"]
    assert [s["name"] for s in clients] == ["SELECT", "SELECT", "SELEC"] + ["SELECT"] * 6
    assert all(s["parent"] == parent["span_id"] for s in clients)
    assert dropped["attributes"]["db.query.text"] == '"SELECT ? AS dropped"'
    assert clients[0]["attributes"]["db.query.text"] == '"SELECT %s AS answer WHERE ? = ?"'
    assert clients[0]["attributes"]["db.namespace"] == '"postgres"'
    assert clients[2]["attributes"]["error.type"] == '"psycopg2.errors.SyntaxError"'
    assert [s["attributes"]["db.query.text"] for s in clients[3:]] == [
        '"SELECT ? AS keyword"',
        '"SELECT ? AS position"',
        '"SELECT ? AS later"',
        '"SELECT ?"',
        '"SELECT ? AS made"',
        '"SELECT ? AS made"',
    ]


PSYCOPG2_CONNECTION_CLASSES = """
    import io, sys
    import psycopg2, psycopg2.extensions, psycopg2.extras
    from ferrotel.instrumentation.psycopg2 import Psycopg2Instrumentor

    dsn = sys.argv[1]
    for connection_class in (psycopg2.extras.DictConnection, psycopg2.extras.NamedTupleConnection):
        connection = psycopg2.connect(dsn, connection_factory=connection_class)
        print(type(connection).__name__, isinstance(connection, connection_class), connection.cursor_factory)
        cursor = connection.cursor()
        cursor.execute("SELECT 42 AS answer")
        print(connection_class.__name__, type(cursor).__name__, cursor.fetchone().answer
              if connection_class is psycopg2.extras.NamedTupleConnection else cursor.fetchone()["answer"])
        Psycopg2Instrumentor.uninstrument_connection(connection)
        connection.cursor().execute("SELECT 'untraced'")
        Psycopg2Instrumentor.instrument_connection(connection)
        connection.cursor().execute("SELECT 'traced again'")
        connection.close()
    # A connection class with a cursor() of its own runs it as it is, when the app calls it;
    # what it executes before returning the cursor is its own business, untraced.
    class Chatty(psycopg2.extensions.connection):
        def cursor(self, *args, **kwargs):
            kwargs.setdefault("cursor_factory", psycopg2.extras.NamedTupleCursor)
            cursor = super().cursor(*args, **kwargs)
            cursor.execute("SET search_path TO public")
            return cursor

    chatty = psycopg2.connect(dsn, connection_factory=Chatty)
    print("chatty status", chatty.status, chatty.cursor_factory)
    chatty.cursor().execute("SELECT 'chatty'")
    chatty.close()
    # LoggingConnection: set up before its first cursor, it still logs every statement.
    log = io.StringIO()
    logging_connection = psycopg2.connect(dsn, connection_factory=psycopg2.extras.LoggingConnection)
    logging_connection.initialize(log)
    logging_connection.cursor().execute("SELECT 'logged'")
    print("log", log.getvalue().strip())
    logging_connection.close()
    # A cursor class of the app's naming its parameter as the DB-API does, called by that
    # name, works (untraced: the statement is not where psycopg2 puts it); a subclass of a
    # traced class is traced once; a C cursor type made by a factory function cannot
    # change class and works untraced.
    class Operation(psycopg2.extensions.cursor):
        def execute(self, operation, parameters=None):
            return super().execute(operation, parameters)

    plain = psycopg2.connect(dsn, cursor_factory=Operation)
    plain.cursor().execute(operation="SELECT 'by keyword'")
    plain.cursor().execute("SELECT 'by position'")
    plain.cursor(cursor_factory=type(plain.cursor())).execute("SELECT 'traced class'")
    made = plain.cursor(cursor_factory=lambda *args: psycopg2._psycopg.ReplicationCursor(*args))
    print("c cursor", type(made).__name__)
    plain.close()
    # psycopg2's own low-level connect replaced by a stand-in, as psycopg2's tests do: it is
    # handed what connect was given.
    real, psycopg2._connect = psycopg2._connect, lambda dsn, **kwargs: ("stand-in", dsn, kwargs)
    print("stand-in", psycopg2.connect("dbname=x"))
    psycopg2._connect = real
    # A factory function's connection is traced through its cursor factory.
    made = psycopg2.connect(dsn, connection_factory=lambda dsn, **kwargs: psycopg2.extensions.connection(dsn, **kwargs))
    made.cursor().execute("SELECT 'made'")
    made.close()
"""


def test_psycopg2_connection_classes_keep_their_cursors(tmp, postgres):  # noqa: F811
    out, spans = run(tmp, PSYCOPG2_CONNECTION_CLASSES, postgres)
    assert out.splitlines()[:8] == [
        "DictConnection True None",
        "DictConnection DictCursor 42",
        "NamedTupleConnection True None",
        "NamedTupleConnection NamedTupleCursor 42",
        "chatty status 1 None",
        "log SELECT 'logged'",
        "c cursor ReplicationCursor",
        "stand-in ('stand-in', 'dbname=x', {'connection_factory': None})",
    ], out
    statements = [s["attributes"]["db.query.text"] for s in spans if s["kind"] == "CLIENT"]
    assert statements == [
        '"SELECT ? AS answer"',
        '"SELECT ?"',
        '"SELECT ? AS answer"',
        '"SELECT ?"',
        '"SELECT ?"',
        '"SELECT ?"',
        '"SELECT ?"',
        '"SELECT ?"',
        '"SELECT ?"',
    ]


ASYNCPG = """
    import asyncio, sys
    import asyncpg
    from opentelemetry import trace

    port = int(sys.argv[1].split("port=")[1].split()[0])

    async def main():
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
        await connection.execute("CREATE TEMP TABLE birds (name text)")
        await connection.executemany("INSERT INTO birds VALUES ($1)", [("owl",), ("jay",)])
        rows = await connection.fetch("SELECT name FROM birds WHERE name <> 'x'")
        count = await connection.fetchval("SELECT count(*) FROM birds")
        async with connection.transaction():
            names = [r["name"] async for r in connection.cursor("SELECT name FROM birds")]
        await connection.close()
        return len(rows), count, sorted(names)

    with trace.get_tracer("app").start_as_current_span("parent"):
        print("result", asyncio.run(main()))
"""


def test_asyncpg_queries_become_spans(tmp, postgres):  # noqa: F811
    out, spans = run(tmp, ASYNCPG, postgres)
    assert "result (2, 2, ['jay', 'owl'])" in out
    (parent,) = [s for s in spans if s["name"] == "parent"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    names = [s["name"] for s in clients]
    # The transaction's BEGIN and COMMIT go through `execute` too; the cursor's iteration
    # fetches in batches (one, then the empty end).
    assert names[:4] == ["CREATE birds", "INSERT birds", "SELECT birds", "SELECT birds"]
    assert all(s["parent"] == parent["span_id"] for s in clients)
    fetch = clients[2]["attributes"]
    assert fetch["db.query.text"] == '"SELECT name FROM birds WHERE name <> ?"'
    assert fetch["server.address"] == '"127.0.0.1"' and fetch["db.namespace"] == '"postgres"'
    assert all(s["status"] == "UNSET" for s in clients)


STATEMENT_FORMS = """
    import asyncio, sys
    import psycopg, psycopg2
    from psycopg import sql as sql3
    from psycopg2 import sql as sql2
    from opentelemetry import trace

    dsn = sys.argv[1]
    if sys.argv[2:] == ["commenter"]:
        from ferrotel.instrumentation.psycopg import PsycopgInstrumentor
        from ferrotel.instrumentation.psycopg2 import Psycopg2Instrumentor

        Psycopg2Instrumentor().instrument(enable_commenter=True)
        PsycopgInstrumentor().instrument(enable_commenter=True)

    async def composed_async():
        async with await psycopg.AsyncConnection.connect(dsn) as connection:
            cursor = connection.cursor()
            await cursor.execute(b"SELECT 11 AS raw_async")
            await cursor.execute(sql3.SQL("SELECT {} AS composed_async").format(sql3.Literal(10)))
            return (await cursor.fetchone())[0]

    with trace.get_tracer("app").start_as_current_span("parent"):
        connection = psycopg2.connect(dsn)
        cursor = connection.cursor()
        cursor.execute("CREATE OR REPLACE FUNCTION add_one(integer) RETURNS integer AS 'SELECT $1 + 1' LANGUAGE SQL")
        cursor.execute(sql2.SQL("SELECT {} AS composed").format(sql2.Literal(8)))
        cursor.execute(b"SELECT 9 AS raw")
        cursor.callproc("add_one", (1,))
        print("procedure", cursor.fetchone()[0])
        connection.commit()
        connection.close()
        with psycopg.connect(dsn) as connection:
            cursor = connection.cursor()
            cursor.execute(sql3.SQL("SELECT {} AS composed3").format(sql3.Literal(8)))
            cursor.execute(b"SELECT 9 AS raw3")
            print("bytes", cursor.fetchone()[0])
        print("async", asyncio.run(composed_async()))
"""


@pytest.mark.parametrize("commenter", [False, True], ids=["plain", "commenter"])
def test_composed_and_bytes_statements_and_procedures(tmp, postgres, commenter):  # noqa: F811
    # A statement given as bytes or composed with psycopg's `sql` module has its text
    # recorded as the driver renders it; psycopg2's callproc is a span named by the procedure.
    # The same with the sqlcommenter on (a procedure's name and bytes are sent as they are).
    (tmp / "app.py").write_text(textwrap.dedent(STATEMENT_FORMS))
    flags = ["--disabled_instrumentations", "psycopg,psycopg2"] if commenter else []
    argv = [PYTHON, "app.py", postgres, *(["commenter"] if commenter else [])]
    result = instrument("--traces_exporter", "console", *flags, *argv, cwd=tmp)
    assert result.returncode == 0, result.stderr
    out, spans = result.stdout, console_spans(result.stdout)
    assert "procedure 2" in out and "bytes 9" in out and "async 10" in out
    (parent,) = [s for s in spans if s["name"] == "parent"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert all(s["parent"] == parent["span_id"] for s in clients)
    texts = [s["attributes"].get("db.query.text") for s in clients]
    assert texts[1:] == [
        '"SELECT ? AS composed"',
        '"SELECT ? AS raw"',
        '"add_one"',
        '"SELECT ? AS composed3"',
        '"SELECT ? AS raw3"',
        '"SELECT ? AS raw_async"',
        '"SELECT ? AS composed_async"',
    ]
    assert [s["name"] for s in clients[1:]] == ["SELECT", "SELECT", "add_one"] + ["SELECT"] * 4
    assert clients[3]["attributes"]["db.stored_procedure.name"] == '"add_one"'
    assert "db.stored_procedure.name" not in clients[2]["attributes"]
