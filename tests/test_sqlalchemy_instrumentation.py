"""ferrotel's built-in SQLAlchemy instrumentation, in a venv per SQLAlchemy release (1.4, 2.0,
2.1), against a real PostgreSQL (psycopg2, psycopg 3, asyncpg under an `AsyncEngine`) and a
sqlite file, with the drivers' own built-ins active too:

- one CLIENT span per statement — the engine's — under the caller's span, never a second one
  from the driver underneath; upstream's `connect` span per `Engine.connect`, the driver's
  connection set-up queries under it; the failed statement's error;
- the pool's connections by state and its capacity, as the metrics' final values;
- the same program under upstream's `opentelemetry-instrument` (contrib sqlalchemy + sqlite3
  + psycopg2, SQLAlchemy 2.0, its own venv) side by side: upstream's pair of spans per
  statement is ferrotel's one span, with the same kind and parent and every stable
  attribute of both;
- sqlcommenter: the SQL PostgreSQL and sqlite actually received carries the comment with
  the statement span's traceparent (SQLAlchemy's, and psycopg2's and psycopg's compared with
  upstream's on the same program);
- `instrument(engine=..., engines=..., tracer_provider=...)`, the suppression key,
  `uninstrument()` and the old pool metric name under `database/dup`.
"""

import base64
import json
import os
import re
import textwrap

import pytest
from support.console import console_spans
from support.databases import postgres  # noqa: F401 (a fixture)
from support.dist import user_venv
from support.otlp_run import UPSTREAM, exported_spans
from support.processes import BIN, ROOT, clean_env, run

VERSIONS = ["1.4.54", "2.0.58", "2.1.9"]


@pytest.fixture(scope="session")
def sqlalchemy_python(tmp_path_factory):
    """`python_for(version)`: the python of a venv with that SQLAlchemy release, the drivers
    and ferrotel (made once per version)."""
    made = {}

    def python_for(version):
        if version not in made:
            directory = tmp_path_factory.mktemp(f"sqlalchemy-{version}")
            requirements = directory / "requirements.txt"
            requirements.write_text(f"-r {ROOT / 'tests' / 'sqlalchemy-requirements.txt'}\nsqlalchemy=={version}\n")
            made[version] = user_venv(directory, requirements)
        return made[version]

    return python_for


def port_of(dsn):
    return int(dsn.split("port=")[1].split()[0])


def run_ferrotel(python, tmp, script, *arguments, flags=(), env=None):
    (tmp / "app.py").write_text(textwrap.dedent(script))
    env = clean_env(PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}", **(env or {}))
    command = [python.parent / "ferrotel", "instrument", *flags, python, "app.py", *arguments]
    result = run(*command, env=env, cwd=tmp, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


APP = """
    import asyncio, sys
    import sqlalchemy
    from sqlalchemy import create_engine, text
    from opentelemetry import trace

    port, sqlite_path = sys.argv[1], sys.argv[2]
    version = tuple(int(part) for part in sqlalchemy.__version__.split(".")[:2])
    server = f"postgres@127.0.0.1:{port}/postgres"

    def statements(engine):
        with engine.begin() as connection:
            connection.execute(text("CREATE TEMP TABLE toys (name text, price int)"))
            rows = [{"name": "ball", "price": 3}, {"name": "kite", "price": 12}]
            connection.execute(text("INSERT INTO toys VALUES (:name, :price)"), rows)
            cheap = connection.execute(text("SELECT name FROM toys WHERE price < :limit"), {"limit": 10}).scalar()
            print(engine.driver, cheap)
        with engine.connect() as connection:
            try:
                connection.execute(text("SELEC broken"))
            except sqlalchemy.exc.DBAPIError:
                print(engine.driver, "failed")

    async def asynchronous():
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(f"postgresql+asyncpg://{server}")
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TEMP TABLE toys (name text, price int)"))
            rows = [{"name": "ball", "price": 3}, {"name": "kite", "price": 12}]
            await connection.execute(text("INSERT INTO toys VALUES (:name, :price)"), rows)
            result = await connection.execute(text("SELECT name FROM toys WHERE price < :limit"), {"limit": 10})
            print("asyncpg", result.scalar())
        async with engine.connect() as connection:
            try:
                await connection.execute(text("SELEC broken"))
            except sqlalchemy.exc.DBAPIError:
                print("asyncpg failed")
        await engine.dispose()

    with trace.get_tracer("app").start_as_current_span("parent"):
        statements(create_engine(f"sqlite:///{sqlite_path}"))
        pooled = create_engine(f"postgresql+psycopg2://{server}", pool_size=2, max_overflow=3)
        statements(pooled)
        # Two connections at once: the pool ends with two idle ones.
        first, second = pooled.connect(), pooled.connect()
        first.close()
        second.close()
        if version >= (2, 0):
            statements(create_engine(f"postgresql+psycopg://{server}"))
        asyncio.run(asynchronous())
"""

SCOPE = "ferrotel.instrumentation.sqlalchemy"
STATEMENTS = ["CREATE toys", "INSERT toys", "SELECT toys", "SELEC"]


@pytest.mark.parametrize("version", VERSIONS)
def test_one_span_per_statement_and_pool_metrics(tmp, postgres, sqlalchemy_python, version):  # noqa: F811
    python = sqlalchemy_python(version)
    flags = ["--traces_exporter", "console", "--metrics_exporter", "console", "--logs_exporter", "none"]
    out = run_ferrotel(python, tmp, APP, str(port_of(postgres)), str(tmp / "toys.db"), flags=flags)
    drivers = ["pysqlite", "psycopg2"] + (["psycopg"] if version >= "2" else []) + ["asyncpg"]
    for driver in drivers:
        assert f"{driver} ball" in out and f"{driver} failed" in out, out[-2000:]
    spans = console_spans(out)
    by_id = {s["span_id"]: s for s in spans}
    (parent,) = [s for s in spans if s["name"] == "parent"]
    children = [s for s in spans if s["parent"] == parent["span_id"] and s["scope"] == SCOPE]
    # Each engine: `connect` for the transaction, its statements, `connect` for the failing one.
    per_engine = ["connect", *STATEMENTS[:3], "connect", STATEMENTS[3]]
    expected = per_engine * 2 + ["connect", "connect"] + per_engine * (len(drivers) - 2)
    assert [s["name"] for s in children] == expected
    assert all(s["kind"] == "CLIENT" for s in children)
    # The drivers' spans: connection set-up queries under a `connect`, and the transaction
    # control asyncpg runs itself (SQLAlchemy sends no statement for them); no statement of
    # the engines' twice.
    drivers_own = [s for s in spans if s["kind"] == "CLIENT" and s["scope"] != SCOPE]
    assert all(s["scope"].startswith("ferrotel.instrumentation.") for s in drivers_own)
    assert [s["name"] for s in drivers_own if s["parent"] == parent["span_id"]] == ["COMMIT", "ROLLBACK"]
    assert all(by_id[s["parent"]]["name"] == "connect" for s in drivers_own if s["parent"] != parent["span_id"]), (
        drivers_own
    )
    engine_texts = {s["attributes"].get("db.query.text") for s in children if s["name"] != "connect"}
    assert not engine_texts & {s["attributes"].get("db.query.text") for s in drivers_own}
    port = str(port_of(postgres))
    sqlite_select, postgres_select = children[3], children[9]
    assert sqlite_select["attributes"] == {
        "db.system.name": '"sqlite"',
        "db.query.text": '"SELECT name FROM toys WHERE price < ?"',
        "db.operation.name": '"SELECT"',
        "db.collection.name": '"toys"',
        "db.namespace": f'"{tmp / "toys.db"}"',
    }
    assert postgres_select["attributes"] == {
        "db.system.name": '"postgresql"',
        "db.query.text": '"SELECT name FROM toys WHERE price < %(limit)s"',
        "db.operation.name": '"SELECT"',
        "db.collection.name": '"toys"',
        "db.namespace": '"postgres"',
        "server.address": '"127.0.0.1"',
        "server.port": port,
    }
    assert children[0]["attributes"] == {"db.system.name": '"sqlite"', "db.namespace": f'"{tmp / "toys.db"}"'}
    assert children[6]["attributes"] == {
        "db.system.name": '"postgresql"',
        "db.namespace": '"postgres"',
        "server.address": '"127.0.0.1"',
        "server.port": port,
    }
    failures = [s for s in children if s["name"] == "SELEC"]
    assert len(failures) == len(drivers)
    assert all(s["status"].startswith("ERROR") and s["events"] == ["exception"] for s in failures)
    assert failures[0]["attributes"]["error.type"] == '"sqlite3.OperationalError"'
    assert failures[1]["attributes"]["error.type"] == '"psycopg2.errors.SyntaxError"'
    assert all(s["status"] == "UNSET" for s in children if s["name"] != "SELEC")

    # The psycopg2 pool: two connections opened, both idle at the end, room for five.
    pool = f"postgresql+psycopg2://127.0.0.1:{port}/postgres"
    points = metric_points(out)
    assert (
        points["db.client.connection.count"][
            (("db.client.connection.pool.name", pool), ("db.client.connection.state", "idle"))
        ]
        == 2
    )
    assert (
        points["db.client.connection.count"][
            (("db.client.connection.pool.name", pool), ("db.client.connection.state", "used"))
        ]
        == 0
    )
    assert points["db.client.connection.max"][(("db.client.connection.pool.name", pool),)] == 5
    assert "db.client.connections.usage" not in points
    durations = points["db.client.operation.duration"]
    assert any(
        ("db.operation.name", "SELEC") in key and ("error.type", "sqlite3.OperationalError") in key for key in durations
    )


def metric_points(text):
    """`{metric name: {sorted attribute pairs: value}}` from the console exporter's last
    report of each point."""
    points, name = {}, None
    for line in text.splitlines():
        header = re.match(r"metric (\S+) ", line)
        if header:
            name = header.group(1)
            continue
        point = re.match(r"\s+\{(.*)\} (.*)$", line)
        if name and point:
            attributes = tuple(
                sorted((k, v.strip('"')) for k, v in re.findall(r'([\w.]+)=("[^"]*"|\S+?)(?:, |$)', point.group(1)))
            )
            value = point.group(2)
            number = re.match(r"-?[0-9.]+$", value)
            points.setdefault(name, {})[attributes] = (
                (float(value) if "." in value else int(value)) if number else value
            )
    return points


SIDE_BY_SIDE = """
    import sys
    import sqlalchemy
    from sqlalchemy import create_engine, text
    from opentelemetry import trace

    port, sqlite_path = sys.argv[1], sys.argv[2]
    with trace.get_tracer("app").start_as_current_span("parent"):
        for url in (f"sqlite:///{sqlite_path}", f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"):
            engine = create_engine(url)
            with engine.begin() as connection:
                connection.execute(text("CREATE TEMP TABLE pets (name text, age int)"))
                connection.execute(text("INSERT INTO pets VALUES (:name, :age)"), {"name": "Rex", "age": 3})
                connection.execute(text("SELECT name FROM pets WHERE age > :age"), {"age": 1}).all()
            with engine.connect() as connection:
                try:
                    connection.execute(text("SELEC broken"))
                except sqlalchemy.exc.DBAPIError:
                    pass
"""


def record(launcher, python, tmp, arguments, path):
    """The spans of SIDE_BY_SIDE run by `launcher`, as OTLP/HTTP delivered them to a receiver."""
    (tmp / "script.py").write_text(textwrap.dedent(SIDE_BY_SIDE))
    env = clean_env(OTEL_SEMCONV_STABILITY_OPT_IN="http,database", PATH=f"{path}{os.pathsep}{os.environ['PATH']}")
    spans = exported_spans(launcher, python, tmp / "script.py", arguments, env, tmp)
    by_id = {s["span_id"]: s for s in spans}
    return [
        {
            "name": s["name"],
            "kind": s["kind"],
            "scope": s["scope"],
            "parent": by_id[s["parent_span_id"]]["name"] if s.get("parent_span_id") in by_id else None,
            "attributes": {a["key"]: next(iter(a["value"].values()), None) for a in s.get("attributes", [])},
            "status": s.get("status", {}).get("code", "STATUS_CODE_UNSET"),
            "trace": base64.b64decode(s["trace_id"]).hex(),
        }
        for s in spans
    ]


def test_side_by_side_with_upstream(tmp, postgres, sqlalchemy_python):  # noqa: F811
    python = sqlalchemy_python("2.0.58")
    arguments = [str(port_of(postgres)), str(tmp / "pets.db")]
    ours = record(python.parent / "ferrotel-instrument", python, tmp, arguments, python.parent)
    (tmp / "pets.db").unlink(missing_ok=True)
    theirs = record(UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python", tmp, arguments, UPSTREAM)
    assert len({s["trace"] for s in ours}) == 1 == len({s["trace"] for s in theirs})

    def statements(spans):
        return [s for s in spans if s["parent"] == "parent" and s["name"] != "connect"]

    # Upstream: each statement twice, as siblings: SQLAlchemy's span and the driver's.
    def statement_key(span):
        return (span["attributes"]["db.system.name"], span["attributes"]["db.query.text"])

    upstream_pairs = {}
    for span in statements(theirs):
        upstream_pairs.setdefault(statement_key(span), []).append(span)
    assert len(upstream_pairs) == 8
    for pair in upstream_pairs.values():
        assert sorted(s["scope"].rsplit(".", 1)[1] for s in pair) in (
            ["sqlalchemy", "sqlite3"],
            ["psycopg2", "sqlalchemy"],
        )
    # ferrotel: each statement once, the engine's span, with the same kind, parent and status
    # and every stable attribute name of upstream's two.
    ours_statements = statements(ours)
    assert len(ours_statements) == 8
    assert {s["scope"] for s in ours_statements} == {"ferrotel.instrumentation.sqlalchemy"}
    for span in ours_statements:
        pair = upstream_pairs[statement_key(span)]
        assert span["name"].split()[0] == pair[0]["name"].split()[0]
        assert all(span["kind"] == s["kind"] and span["status"] == s["status"] for s in pair)
        upstream_names = set().union(*(s["attributes"] for s in pair))
        assert upstream_names <= set(span["attributes"]), (span, pair)
    # The `connect` spans and the driver's set-up queries under them are upstream's.
    assert [s["parent"] for s in ours if s["name"] == "connect"] == [
        s["parent"] for s in theirs if s["name"] == "connect"
    ]
    # (ferrotel names a span by the operation in upper case, upstream's driver by its first word.)
    # ferrotel traces one more: psycopg2's hstore type lookup, through a cursor of psycopg2's
    # own class given to `cursor()` (`HstoreAdapter.get_oids`), which upstream does not see.
    ours_setup = [s for s in ours if s["parent"] == "connect"]
    (hstore,) = [s for s in ours_setup if "FROM pg_type t JOIN pg_namespace" in s["attributes"]["db.query.text"]]
    assert hstore["scope"] == "ferrotel.instrumentation.psycopg2"
    assert sorted(s["name"].split()[0] for s in ours_setup if s is not hstore) == sorted(
        s["name"].split()[0].upper() for s in theirs if s["parent"] == "connect"
    )
    our_connects = [s["attributes"] for s in ours if s["name"] == "connect"]
    assert our_connects == [s["attributes"] for s in theirs if s["name"] == "connect"]


COMMENTER = """
    import json, sys
    import psycopg2
    import sqlalchemy
    from sqlalchemy import event, text
    from ferrotel.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    port, sqlite_path, options, in_attribute = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "1"
    SQLAlchemyInstrumentor().instrument(
        enable_commenter=True, commenter_options=options, enable_attribute_commenter=in_attribute
    )
    received = []
    # Engines made after `instrument()`, through the module attribute it patched.
    lite = sqlalchemy.create_engine(f"sqlite:///{sqlite_path}")
    event.listen(lite, "connect", lambda connection, _: connection.set_trace_callback(received.append))
    with lite.connect() as connection:
        connection.execute(text("SELECT :answer AS answer;"), {"answer": 42})
    print("sqlite received", json.dumps(received))

    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres")
    watcher = psycopg2.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres")
    with engine.connect() as connection:
        connection.execute(text("SELECT datname FROM pg_database WHERE datname = :name"), {"name": "postgres"}).all()
        pid = connection.connection.dbapi_connection.get_backend_pid()
        with watcher.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
            print("postgres received", json.dumps(cursor.fetchone()[0]))
"""


@pytest.mark.parametrize("options, in_attribute", [("{}", "0"), ('{"db_driver": false}', "1")])
def test_sqlcommenter_comment_reaches_the_server(tmp, postgres, sqlalchemy_python, options, in_attribute):  # noqa: F811
    python = sqlalchemy_python("2.1.9")
    flags = ["--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
    flags += ["--disabled_instrumentations", "sqlalchemy"]
    arguments = [str(port_of(postgres)), str(tmp / "comments.db"), options, in_attribute]
    out = run_ferrotel(python, tmp, COMMENTER, *arguments, flags=flags)
    (sqlite_sent,) = json.loads(re.search(r"^sqlite received (.*)$", out, re.M).group(1))
    postgres_sent = json.loads(re.search(r"^postgres received (.*)$", out, re.M).group(1))
    # The engines' own set-up queries on first connect are statements of theirs too.
    spans = [s for s in console_spans(out) if s["scope"] == SCOPE and s["name"] != "connect"]
    (lite,) = [s for s in spans if "answer" in s["attributes"]["db.query.text"]]
    (pg,) = [s for s in spans if s["name"] == "SELECT pg_database"]

    def expected(span, driver):
        driver_part = "" if in_attribute == "1" else f"db_driver='{driver}',"
        traceparent = f"00-{span['trace_id']}-{span['span_id']}-01"
        return f"/*{driver_part}db_framework='sqlalchemy%%3A2.1.9',traceparent='{traceparent}'*/"

    # sqlite's trace callback shows the statement with its parameters bound; the comment goes
    # before the trailing semicolon.
    assert sqlite_sent == f"SELECT 42 AS answer {expected(lite, 'pysqlite')};"
    # psycopg2 interpolates parameters, turning the comment's `%%` into `%`.
    assert postgres_sent == "SELECT datname FROM pg_database WHERE datname = 'postgres' " + expected(
        pg, "psycopg2"
    ).replace("%%", "%")
    if in_attribute == "1":
        assert lite["attributes"]["db.query.text"] == f'"SELECT ? AS answer {expected(lite, "pysqlite")};"'
    else:
        assert lite["attributes"]["db.query.text"] == '"SELECT ? AS answer;"'
        assert pg["attributes"]["db.query.text"] == '"SELECT datname FROM pg_database WHERE datname = %(name)s"'


DBAPI_COMMENTER = """
    import asyncio, json, sys
    import psycopg, psycopg2
    if sys.argv[2] == "ferrotel":
        from ferrotel.instrumentation.psycopg import PsycopgInstrumentor
        from ferrotel.instrumentation.psycopg2 import Psycopg2Instrumentor
    else:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor

    dsn = sys.argv[1]
    Psycopg2Instrumentor().instrument(enable_commenter=True)
    PsycopgInstrumentor().instrument(enable_commenter=True, commenter_options={"dbapi_level": False})
    watcher = psycopg2.extensions.connection(dsn)  # psycopg2's own class: not traced
    watcher.autocommit = True
    for driver in (psycopg2, psycopg):
        connection = driver.connect(dsn)
        cursor = connection.cursor()
        statements = [("SELECT datname FROM pg_database WHERE datname = %s", ("postgres",)), ("SELECT 1", None)]
        for query, parameters in statements:
            cursor.execute(query, parameters)
            cursor.fetchall()
            with watcher.cursor() as watching:
                watching.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (connection.info.backend_pid,))
                print("received", json.dumps(watching.fetchone()[0]))
        connection.close()

    async def asynchronous():
        async with await psycopg.AsyncConnection.connect(dsn) as connection:
            async with connection.cursor() as cursor:
                await cursor.execute("SELECT %s::text AS word", ("async",))
            with watcher.cursor() as watching:
                watching.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (connection.info.backend_pid,))
                print("received", json.dumps(watching.fetchone()[0]))

    asyncio.run(asynchronous())
"""


def test_dbapi_sqlcommenter_as_upstream(tmp, postgres):  # noqa: F811
    """psycopg2 and psycopg with `enable_commenter`: what the server received is upstream's
    comment, with the traceparent of ferrotel's statement span."""
    (tmp / "app.py").write_text(textwrap.dedent(DBAPI_COMMENTER))
    flags = ["--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
    flags += ["--disabled_instrumentations", "psycopg,psycopg2"]
    ours = run(BIN / "ferrotel", "instrument", *flags, BIN / "python", "app.py", postgres, "ferrotel", cwd=tmp)
    assert ours.returncode == 0, ours.stderr[-3000:]
    env = clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="psycopg,psycopg2", OTEL_TRACES_EXPORTER="none")
    theirs = run(
        UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python", "app.py", postgres, "upstream", env=env, cwd=tmp
    )
    assert theirs.returncode == 0, theirs.stderr[-3000:]

    def received(out):
        return [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("received ")]

    spans = [s for s in console_spans(ours.stdout) if s["kind"] == "CLIENT"]
    ours_sent, theirs_sent = received(ours.stdout), received(theirs.stdout)
    assert len(spans) == len(ours_sent) == len(theirs_sent) == 5
    for span, sent, upstream_sent in zip(spans, ours_sent, theirs_sent, strict=True):
        traceparent = f"traceparent='00-{span['trace_id']}-{span['span_id']}-01'"
        assert traceparent in sent
        if span is not spans[4]:
            assert sent.replace(traceparent, "") == re.sub(r"traceparent='[^']*'", "", upstream_sent)
    # Deliberate: upstream describes an asyncio connection's driver by the class it patched
    # (`db_driver='AsyncConnection:unknown'`, no paramstyle); ferrotel by the psycopg module,
    # as for the sync connections.
    assert "AsyncConnection%3Aunknown" in theirs_sent[4]
    assert ours_sent[4] == ours_sent[2].replace(ours_sent[2].split(" /*")[0], "SELECT $1::text AS word").replace(
        spans[2]["span_id"], spans[4]["span_id"]
    ).replace(spans[2]["trace_id"], spans[4]["trace_id"])
    # A statement with parameters has psycopg's `%%` escapes interpolated; psycopg 3 sends
    # placeholders instead of values; `dbapi_level` turned off for psycopg only.
    assert ours_sent[0].startswith(
        "SELECT datname FROM pg_database WHERE datname = 'postgres' /*db_driver='psycopg2%3A"
    )
    assert ours_sent[1].startswith("SELECT 1 /*db_driver='psycopg2%%3A") and "dbapi_level='2.0'," in ours_sent[1]
    assert ours_sent[2].startswith("SELECT datname FROM pg_database WHERE datname = $1 /*db_driver='psycopg%3A3.3.9',")
    assert "dbapi_level" not in ours_sent[3]
    # The span's query text is the statement's, without the comment.
    assert [s["attributes"]["db.query.text"] for s in spans][:2] == [
        '"SELECT datname FROM pg_database WHERE datname = %s"',
        '"SELECT ?"',
    ]


PROGRAMMATIC = """
    import sys
    import sqlalchemy
    from opentelemetry import context, trace
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
    from ferrotel.instrumentation.sqlalchemy import EngineTracer, SQLAlchemyInstrumentor

    directory = sys.argv[1]
    early = sqlalchemy.create_engine(f"sqlite:///{directory}/early.db")
    other = sqlalchemy.create_engine(f"sqlite:///{directory}/other.db")
    instrumentor = SQLAlchemyInstrumentor()
    tracer = instrumentor.instrument(engine=early)
    assert isinstance(tracer, EngineTracer)

    def query(engine, label):
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"SELECT '{label}'"))

    with trace.get_tracer("app").start_as_current_span(sys.argv[2]):
        query(early, "given engine")
        query(other, "engine made before instrument()")
        query(sqlalchemy.create_engine("sqlite://"), "engine made after")
        token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        query(early, "suppressed")
        context.detach(token)
        instrumentor.uninstrument()
        query(early, "uninstrumented")
        assert instrumentor.instrument(engines=[other], tracer_provider=trace.NoOpTracerProvider())[0].engine() is other
        query(other, "no-op provider")
"""


def test_programmatic_engines_provider_suppression_and_uninstrument(tmp, sqlalchemy_python):
    python = sqlalchemy_python("2.1.9")
    flags = ["--traces_exporter", "console", "--metrics_exporter", "console", "--logs_exporter", "none"]
    flags += ["--disabled_instrumentations", "sqlalchemy,sqlite3"]
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": "database/dup"}
    out = run_ferrotel(python, tmp, PROGRAMMATIC, str(tmp), "work", flags=flags, env=env)
    spans = [s for s in console_spans(out) if s["scope"] == SCOPE]
    # The given engine's statement, and every `connect` while instrumented (the patched
    # `Engine.connect` covers every engine); nothing suppressed, uninstrumented or no-op.
    assert [(s["name"], s["attributes"].get("db.query.text")) for s in spans] == [
        ("connect", None),
        ("SELECT", '"SELECT ?"'),
        ("connect", None),
        ("connect", None),
        ("SELECT", '"SELECT ?"'),
    ]
    # database/dup: upstream's old names beside the stable ones.
    assert spans[0]["attributes"] == {
        "db.system.name": '"sqlite"',
        "db.namespace": f'"{tmp}/early.db"',
        "db.system": '"sqlite"',
        "db.name": f'"{tmp}/early.db"',
    }
    points = metric_points(out)
    pool = f"sqlite://:/{tmp}/early.db"  # upstream's "driver://host:port/database"
    assert (
        points["db.client.connection.count"][
            (("db.client.connection.pool.name", pool), ("db.client.connection.state", "idle"))
        ]
        == 1
    )
    assert points["db.client.connections.usage"][(("pool.name", pool), ("state", "idle"))] == 1


GUARDED = """
    import sqlite3

    from sqlalchemy import create_engine, event, text

    engine = create_engine("sqlite://")


    @event.listens_for(engine, "before_cursor_execute")
    def read_only(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("DELETE"):
            raise PermissionError("read-only")


    with engine.connect() as conn:
        try:
            conn.execute(text("DELETE FROM sqlite_master"))
        except PermissionError:
            pass
        conn.execute(text("SELECT 1"))
    sqlite3.connect(":memory:").execute("SELECT 2")
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_a_listener_refusing_a_statement_leaves_later_ones_traced(tmp, sqlalchemy_python, version):
    # The app's listener raises before the statement reaches the driver: nothing was sent, so
    # there is no statement span, and the engine's next statement and the driver's own calls
    # afterwards are traced as usual (nothing is left suppressed).
    flags = ["--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
    out = run_ferrotel(sqlalchemy_python(version), tmp, GUARDED, flags=flags)
    spans = [(s["scope"].rsplit(".", 1)[1], s["name"], s["status"]) for s in console_spans(out)]
    expected = [("sqlalchemy", "connect", "UNSET"), ("sqlalchemy", "SELECT", "UNSET"), ("dbapi", "SELECT", "UNSET")]
    assert [s for s in spans if s[1] != "PRAGMA"] == expected


UNCHANGED = """
    import sys
    from unittest import mock

    import sqlalchemy
    from sqlalchemy import create_engine, create_mock_engine, text

    # Importing sqlalchemy pulls in neither its asyncio extension nor greenlet.
    print("asyncio imported:", "sqlalchemy.ext.asyncio" in sys.modules, "greenlet" in sys.modules)
    engine = create_engine("sqlite://")
    # No event listener on the engine or its dialect: executions take the no-events path.
    print("events:", engine._has_events, engine.dialect._has_events)
    with engine.connect() as connection:
        print("value:", connection.execute(text("SELECT 41 + 1")).scalar())
        # A method the app patches on the dialect's class still runs (looked up per call).
        with mock.patch.object(type(engine.dialect), "do_execute", side_effect=RuntimeError("patched")):
            try:
                connection.execute(text("SELECT 2"))
            except RuntimeError as error:
                print("class patch:", error)
    # A mock engine (no URL of its own) and an engine whose dialect is a Mock.
    sent = []
    create_mock_engine("sqlite://", lambda sql, *a, **k: sent.append(str(sql)))
    print("mock engine:", type(create_engine("sqlite://", strategy="mock", executor=print)).__name__)
    odd = create_engine("sqlite://")
    odd.dialect = mock.Mock()
    print("mock dialect:", type(odd.connect()).__name__)
"""


def test_the_app_sees_its_engines_as_bare(tmp, sqlalchemy_python):
    python = sqlalchemy_python("2.1.9")
    (tmp / "app.py").write_text(textwrap.dedent(UNCHANGED))
    bare = run(python, "app.py", cwd=tmp, env=clean_env())
    assert bare.returncode == 0, bare.stderr
    flags = ["--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
    out = run_ferrotel(python, tmp, UNCHANGED, flags=flags)
    lines = [line for line in out.splitlines() if ":" in line and not line.startswith(" ")]
    assert [line for line in lines if not line.startswith("span")] == bare.stdout.splitlines()
    assert bare.stdout.splitlines()[:3] == ["asyncio imported: False False", "events: False False", "value: 42"]
    statements = [s["name"] for s in console_spans(out) if s["scope"] == SCOPE]
    assert statements == ["connect", "SELECT", "SELECT", "connect"], statements


def test_importing_the_asyncio_extension_patches_create_async_engine_quietly(tmp, sqlalchemy_python):
    python = sqlalchemy_python("2.1.9")
    code = "import sqlalchemy.ext.asyncio as a; print(hasattr(a.create_async_engine, '__wrapped__'))"
    env = clean_env(PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}")
    result = run(python.parent / "ferrotel", "instrument", python, "-c", code, env=env, cwd=tmp)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "True", "")
