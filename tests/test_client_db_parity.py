"""The same client script (httpx sync and async, redis commands and a pipeline, psycopg
statements sync and async, psycopg2, asyncpg) against a real local HTTP server, redis-server and PostgreSQL,
under ferrotel and under upstream's `opentelemetry-instrument` with the pinned contrib
instrumentations (their own venv, OTEL_SEMCONV_STABILITY_OPT_IN=http,database), both
exporting OTLP to the same receiver: every span upstream produces, ferrotel produces with
the same kind and parent, carrying every stable attribute name upstream's has. Deliberate
differences are named where they are checked."""

import base64
import textwrap

from support.databases import postgres, redis  # noqa: F401 (fixtures)
from support.echo import echo_server
from support.otlp_run import UPSTREAM, exported_spans
from support.processes import BIN, clean_env

SCRIPT = """
    import asyncio, sys
    import asyncpg, httpx, psycopg, psycopg2, redis
    from opentelemetry import trace

    base, redis_host, redis_port, dsn = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    async def asynchronous():
        async with httpx.AsyncClient() as client:
            await client.get(f"{base}/echo?via=async")
        async with await psycopg.AsyncConnection.connect(dsn) as connection:
            await connection.execute("SELECT count(*) FROM pets WHERE name = %s", ("Rex",))
        port = int(dsn.split("port=")[1].split()[0])
        connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
        await connection.fetch("SELECT name FROM pets WHERE age > $1", 1)
        statement = await connection.prepare("SELECT age FROM pets WHERE name = $1")
        await statement.fetchval("Rex")
        await connection.execute("DELETE FROM pets WHERE age > 100")
        await connection.close()

    with trace.get_tracer("app").start_as_current_span("parent"):
        httpx.get(f"{base}/echo?via=sync")
        httpx.get(f"{base}/missing?via=sync")
        client = redis.Redis(host=redis_host, port=redis_port)
        client.set("greeting", "hello")
        client.get("greeting")
        with client.pipeline() as pipe:
            pipe.incr("visits").get("visits").execute()
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS pets (name text, age int)")
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO pets VALUES (%s, %s)", ("Rex", 3))
                cursor.execute("SELECT name, age FROM pets WHERE age > 1")
                cursor.fetchall()
        legacy = psycopg2.connect(dsn)
        cursor = legacy.cursor()
        cursor.execute("SELECT age FROM pets WHERE name = %s", ("Rex",))
        cursor.fetchall()
        legacy.close()
        asyncio.run(asynchronous())
"""


def record(launcher, python, tmp, arguments):
    (tmp / "script.py").write_text(textwrap.dedent(SCRIPT))
    env = clean_env(OTEL_SEMCONV_STABILITY_OPT_IN="http,database")
    return exported_spans(launcher, python, tmp / "script.py", arguments, env, tmp)


def shape(spans):
    """Per span: name, kind, parent's name, attributes, status."""
    by_id = {s["span_id"]: s for s in spans}
    out = []
    for s in spans:
        parent = by_id.get(s.get("parent_span_id"))
        out.append(
            {
                "name": s["name"],
                "kind": s["kind"],
                "parent": parent["name"] if parent else None,
                "attributes": {a["key"]: next(iter(a["value"].values()), None) for a in s.get("attributes", [])},
                "status": s.get("status", {}).get("code", "STATUS_CODE_UNSET"),
                "trace": base64.b64decode(s["trace_id"]).hex(),
            }
        )
    return out


def key(span):
    """What identifies a span across the two tools. Deliberate: ferrotel names a SQL span
    `{operation} {table}` as the conventions advise; upstream by the operation alone."""
    attributes = span["attributes"]
    if "url.full" in attributes:
        what = attributes["url.full"].split("/", 3)[-1]
    elif attributes.get("db.system.name") == "postgresql":
        what = span["name"].split()[0]
    else:
        what = span["name"]
    return (span["kind"], span["parent"], what)


# Names upstream records that ferrotel leaves out on purpose: upstream's httpx copies the
# URL's host and port into `network.peer.*`, which name the socket's peer; they are
# `server.address` / `server.port`, which both record.
NOT_RECORDED = {"network.peer.address", "network.peer.port"}


def test_ferrotel_produces_every_client_and_db_span_upstream_does(tmp, redis, postgres):  # noqa: F811
    with echo_server() as base:
        arguments = [base, redis[0], redis[1], postgres]
        ours = shape(record(BIN / "ferrotel-instrument", BIN / "python", tmp, arguments))
        theirs = shape(record(UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python", tmp, arguments))
    assert len({s["trace"] for s in ours}) == 1, "every span in the parent's trace"
    theirs_keys = sorted(map(key, theirs), key=str)
    ours_by_key = {}
    for span in ours:
        ours_by_key.setdefault(key(span), []).append(span)
    for theirs_span in theirs:
        candidates = ours_by_key.get(key(theirs_span))
        assert candidates, (key(theirs_span), theirs_keys, sorted(map(key, ours), key=str))
        ours_span = candidates.pop(0)
        assert ours_span["status"] == theirs_span["status"], (ours_span, theirs_span)
        missing = set(theirs_span["attributes"]) - set(ours_span["attributes"]) - NOT_RECORDED
        assert not missing, (theirs_span["name"], missing)
    # Nothing beyond what upstream records, either.
    assert all(not left for left in ours_by_key.values()), ours_by_key
