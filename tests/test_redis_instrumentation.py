"""ferrotel's built-in redis instrumentation against a real redis-server: a CLIENT span per
command (sync and asyncio clients) and per pipeline, the query text without values, failures
recorded; upstream's hooks, `tracer_provider`, the suppression key and
`instrument_client`, each asserted on what arrives; a real three-node cluster's spans side by
side with upstream's."""

import json
import os
import subprocess
import textwrap
from pathlib import Path

from support.console import console_spans
from support.databases import redis, redis_cluster  # noqa: F401 (fixtures)
from support.processes import PYTHON, ROOT, clean_env, instrument

UPSTREAM_BIN = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin"


def run(tmp, script, server, *flags):
    (tmp / "app.py").write_text(textwrap.dedent(script))
    result = instrument("--traces_exporter", "console", *flags, PYTHON, "app.py", *map(str, server), cwd=tmp)
    assert result.returncode == 0, result.stderr
    answers = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    return answers, console_spans(result.stdout)


APP = """
    import asyncio, json, sys
    import redis, redis.asyncio
    from opentelemetry import trace

    host, port = sys.argv[1], int(sys.argv[2])
    out = {}

    async def asynchronous():
        client = redis.asyncio.Redis(host=host, port=port, db=2)
        await client.set("greeting", "bonjour")
        value = await client.get("greeting")
        async with client.pipeline() as pipe:
            await pipe.incr("visits").get("greeting").execute()
        await client.aclose()
        return value.decode()

    with trace.get_tracer("app").start_as_current_span("parent"):
        client = redis.Redis(host=host, port=port, db=1)
        client.set("greeting", "hello secret")
        out["get"] = client.get("greeting").decode()
        with client.pipeline() as pipe:
            pipe.set("a", 1).incr("a").get("a")
            out["pipeline"] = [str(v) for v in pipe.execute()]
        try:
            client.execute_command("NOSUCHCOMMAND", "x")
        except redis.ResponseError:
            out["error"] = True
        out["async"] = asyncio.run(asynchronous())
    print(json.dumps(out))
"""


def test_commands_and_pipelines_become_spans(tmp, redis):  # noqa: F811
    answers, spans = run(tmp, APP, redis)
    assert answers == {"get": "hello secret", "pipeline": ["True", "2", "b'2'"], "error": True, "async": "bonjour"}
    (parent,) = [s for s in spans if s["name"] == "parent"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert [s["name"] for s in clients] == ["SET", "GET", "SET INCRBY GET", "NOSUCHCOMMAND", "SET", "GET", "INCRBY GET"]
    assert all(s["parent"] == parent["span_id"] for s in clients)
    get = clients[1]["attributes"]
    assert get == {
        "db.system.name": '"redis"',
        "db.namespace": '"1"',
        "db.operation.name": '"GET"',
        "server.address": f'"{redis[0]}"',
        "server.port": str(redis[1]),
        "db.query.text": '"GET ?"',
        "network.transport": '"tcp"',
        "db.redis.args_length": "2",
    }
    assert clients[0]["attributes"]["db.query.text"] == '"SET ? ?"'  # the value never leaves
    pipeline = clients[2]["attributes"]
    assert pipeline["db.query.text"] == '"SET ? ?\\nINCRBY ? ?\\nGET ?"'
    assert pipeline["db.redis.pipeline_length"] == "3"
    failed = clients[3]
    assert failed["status"].startswith("ERROR: ResponseError")
    assert failed["attributes"]["error.type"] == '"redis.exceptions.ResponseError"'
    assert failed["events"] == ["exception"]
    assert clients[5]["attributes"]["db.namespace"] == '"2"'


DURATIONS = """
    import sys
    import redis

    client = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]), db=3)
    client.get("missing")
    client.get("missing")
    for _ in range(2):
        try:
            client.execute_command("NOSUCHCOMMAND", "x")
        except redis.ResponseError:
            pass
    with client.pipeline() as pipe:
        pipe.set("a", 1).get("a").execute()
"""


def test_command_durations_carry_the_command_and_its_failure(tmp, redis):  # noqa: F811
    (tmp / "app.py").write_text(textwrap.dedent(DURATIONS))
    flags = ["--traces_exporter", "none", "--metrics_exporter", "console"]
    result = instrument(*flags, PYTHON, "app.py", *map(str, redis), cwd=tmp)
    assert result.returncode == 0, result.stderr
    points = [line.strip() for line in result.stdout.splitlines() if 'db.system.name="redis"' in line]
    server = f'server.address="{redis[0]}"', f"server.port={redis[1]}", 'db.namespace="3"'
    by_operation = {}
    for point in points:
        assert all(attribute in point for attribute in server), point
        operation = point.split('db.operation.name="')[1].split('"')[0] if "db.operation.name" in point else None
        by_operation.setdefault(operation, []).append(point)
    (get,) = by_operation["GET"]
    assert get.split("} ")[1].startswith("count=2 ") and "error.type" not in get
    (failed,) = by_operation["NOSUCHCOMMAND"]
    assert failed.split("} ")[1].startswith("count=2 ")
    assert 'error.type="redis.exceptions.ResponseError"' in failed
    # A pipeline has no single operation.
    (pipeline,) = by_operation[None]
    assert pipeline.split("} ")[1].startswith("count=1 ")


LONG_COMMANDS = """
    import json, sys
    import redis

    client = redis.Redis(host=sys.argv[1], port=int(sys.argv[2]))
    print(json.dumps({"deleted": [client.delete(*[f"key{i}" for i in range(count)]) for count in (600, 700, 600)]}))
"""


def test_commands_cut_to_the_same_text_keep_their_own_argument_count(tmp, redis):  # noqa: F811
    answers, spans = run(tmp, LONG_COMMANDS, redis)
    assert answers == {"deleted": [0, 0, 0]}
    deletes = [s["attributes"] for s in spans if s["kind"] == "CLIENT"]
    assert [d["db.redis.args_length"] for d in deletes] == ["601", "701", "601"]
    assert all(d["db.query.text"].endswith('..."') and len(d["db.query.text"]) == 1002 for d in deletes)


PROGRAMMATIC = """
    import json, sys
    import redis
    from opentelemetry import context, trace
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
    from ferrotel.instrumentation.redis import RedisInstrumentor

    host, port = sys.argv[1], int(sys.argv[2])
    seen = []

    def request_hook(span, client, args, kwargs):
        span.set_attribute("hook.request", str(args[0]))

    def response_hook(span, client, response):
        span.set_attribute("hook.response", repr(response))

    def failing_hook(span, client, args, kwargs):
        raise RuntimeError("a hook's own failure")

    client = redis.Redis(host=host, port=port)
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(request_hook=request_hook, response_hook=response_hook)
    client.set("k", "v")
    with client.pipeline() as pipe:
        pipe.get("k").execute()
    token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    client.get("suppressed")
    context.detach(token)
    instrumentor.uninstrument()
    client.get("uninstrumented")
    instrumentor.instrument(request_hook=failing_hook)
    seen.append(client.get("k").decode())
    instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=trace.NoOpTracerProvider())
    client.get("noop-provider")
    instrumentor.uninstrument()
    print(json.dumps({"seen": seen}))
"""


def test_hooks_provider_and_suppression(tmp, redis):  # noqa: F811
    answers, spans = run(tmp, PROGRAMMATIC, redis, "--disabled_instrumentations", "redis")
    assert answers == {"seen": ["v"]}  # the failing hook did not fail the command
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    # Suppressed, uninstrumented and the no-op provider's commands: no span.
    assert [s["name"] for s in clients] == ["SET", "GET", "GET"]
    assert clients[0]["attributes"]["hook.request"] == '"SET"'
    assert clients[0]["attributes"]["hook.response"] == '"True"'
    # A pipeline gets the response hook only, as upstream's does.
    assert "hook.request" not in clients[1]["attributes"]
    assert clients[1]["attributes"]["hook.response"] == "\"[b'v']\""
    assert "hook.request" not in clients[2]["attributes"]


CLUSTER = """
    import asyncio, json, sys
    import redis.asyncio.cluster, redis.cluster
    from opentelemetry import trace

    host, port = sys.argv[1], int(sys.argv[2])
    out = {}

    async def asynchronous():
        client = redis.asyncio.cluster.RedisCluster(host=host, port=port)
        await client.set("city{a}", "Lyon")
        value = await client.get("city{a}")
        async with client.pipeline() as pipe:
            pipe.set("river{a}", "Rhone")
            pipe.get("river{a}")
            answers = await pipe.execute()
        await client.aclose()
        return [value.decode(), answers[1].decode()]

    with trace.get_tracer("app").start_as_current_span("parent"):
        client = redis.cluster.RedisCluster(host=host, port=port)
        client.set("greeting", "hello")
        out["get"] = client.get("greeting").decode()
        with client.pipeline() as pipe:
            out["pipeline"] = [str(v) for v in pipe.set("count{b}", 1).incr("count{b}").execute()]
        out["async"] = asyncio.run(asynchronous())
    print(json.dumps(out))
"""

# The spans upstream's contrib instrumentation gives this program: the client's start-up
# `CLUSTER SLOTS` sent by a node's plain client, then one span per cluster command or pipeline.
CLUSTER_SPANS = [
    ("CLUSTER SLOTS", "CLUSTER SLOTS"),
    ("COMMAND", "COMMAND"),
    ("SET", "SET ? ?"),
    ("GET", "GET ?"),
    ("SET INCRBY", "SET ? ?\\nINCRBY ? ?"),
    ("SET", "SET ? ?"),
    ("GET", "GET ?"),
    ("SET GET", "SET ? ?\\nGET ?"),
]


def upstream_console_spans(stdout):
    """Upstream's console exporter prints one JSON object per span."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (start := stdout.find("{", at)) >= 0:
        span, at = decoder.raw_decode(stdout, start)
        if "context" in span:
            spans.append(span)
    return spans


def test_cluster_commands_and_pipelines_as_upstream(tmp, redis_cluster):  # noqa: F811
    answers, spans = run(tmp, CLUSTER, redis_cluster)
    assert answers == {"get": "hello", "pipeline": ["True", "2"], "async": ["Lyon", "Rhone"]}
    (parent,) = [s for s in spans if s["name"] == "parent"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert [(s["name"], s["attributes"]["db.query.text"]) for s in clients] == [
        (name, f'"{text}"') for name, text in CLUSTER_SPANS
    ]
    assert all(s["parent"] == parent["span_id"] for s in clients)
    assert all(s["attributes"]["db.system.name"] == '"redis"' for s in clients)
    get = clients[3]["attributes"]
    assert (get["db.operation.name"], get["db.redis.args_length"]) == ('"GET"', "2")
    assert clients[4]["attributes"]["db.redis.pipeline_length"] == "2"
    # The node's own client knows its server, as upstream reports it; the cluster client
    # does not say which node served a command, as upstream does not.
    slots = clients[0]["attributes"]
    assert (slots["server.address"], slots["server.port"]) == ('"127.0.0.1"', str(redis_cluster[1]))
    assert all("server.address" not in s["attributes"] for s in clients[1:])

    upstream = UPSTREAM_BIN / "opentelemetry-instrument"
    flags = ["--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
    env = clean_env(OTEL_SEMCONV_STABILITY_OPT_IN="database")
    result = subprocess.run(
        [str(upstream), *flags, str(UPSTREAM_BIN / "python"), "app.py", *map(str, redis_cluster)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    theirs = [s for s in upstream_console_spans(result.stdout) if s["kind"] == "SpanKind.CLIENT"]
    assert [(s["name"], s["attributes"]["db.query.text"].replace("\n", "\\n")) for s in theirs] == CLUSTER_SPANS
    assert len({s["parent_id"] for s in theirs}) == 1


CLIENT = """
    import asyncio, json, sys
    import redis, redis.asyncio, redis.asyncio.cluster, redis.cluster
    try:
        from ferrotel.instrumentation.redis import RedisInstrumentor
    except ImportError:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

    host, port, cluster_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def tag(name):
        def request_hook(span, client, args, kwargs):
            span.set_attribute("hook.client", name)
        return request_hook

    def response_hook(span, client, response):
        span.set_attribute("hook.response", repr(response))

    if sys.argv[4] == "global":
        RedisInstrumentor().instrument()
    chosen, other = redis.Redis(host=host, port=port), redis.Redis(host=host, port=port)
    RedisInstrumentor.instrument_client(chosen, request_hook=tag("chosen"), response_hook=response_hook)
    chosen.set("k", "v")
    other.get("k")
    with chosen.pipeline() as pipe:
        pipe.get("k").execute()
    assert chosen._is_instrumented_by_opentelemetry and not hasattr(other, "_is_instrumented_by_opentelemetry")
    RedisInstrumentor.uninstrument_client(chosen)
    chosen.get("after-uninstrument")

    async def asynchronous():
        client = redis.asyncio.Redis(host=host, port=port)
        RedisInstrumentor.instrument_client(client, request_hook=tag("async"))
        await client.get("k")
        async with client.pipeline() as pipe:
            await pipe.get("k").execute()
        await client.aclose()
        cluster = redis.asyncio.cluster.RedisCluster(host=host, port=cluster_port)
        RedisInstrumentor.instrument_client(cluster, request_hook=tag("async-cluster"))
        await cluster.get("k")
        await cluster.aclose()

    asyncio.run(asynchronous())
    cluster = redis.cluster.RedisCluster(host=host, port=cluster_port)
    RedisInstrumentor.instrument_client(cluster, request_hook=tag("cluster"))
    cluster.get("k")
    print(json.dumps({"chosen": chosen.get("k").decode()}))
"""


def test_instrument_client_traces_that_client_only(tmp, redis, redis_cluster):  # noqa: F811
    arguments = [*redis, redis_cluster[1], "off"]
    answers, spans = run(tmp, CLIENT, arguments, "--disabled_instrumentations", "redis")
    assert answers == {"chosen": "v"}
    traced = [(s["name"], s["attributes"].get("hook.client")) for s in spans if s["kind"] == "CLIENT"]
    # `other`, the uninstrumented `chosen` and the cluster's start-up commands: no span.
    assert traced == [
        ("SET", '"chosen"'),
        ("GET", None),  # a pipeline gets the response hook only
        ("GET", '"async"'),
        ("GET", None),
        ("GET", '"async-cluster"'),
        ("GET", '"cluster"'),
    ]
    pipeline = [s for s in spans if s["kind"] == "CLIENT"][1]["attributes"]
    assert pipeline["hook.response"] == "\"[b'v']\""
    assert pipeline["db.query.text"] == '"GET ?"'
    # Upstream's instrument_client traces the same commands with the same hooks.
    env = clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="redis", OTEL_SEMCONV_STABILITY_OPT_IN="database")
    flags = ["--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
    upstream = subprocess.run(
        [str(UPSTREAM_BIN / "opentelemetry-instrument"), *flags, str(UPSTREAM_BIN / "python"), "app.py"]
        + list(map(str, arguments)),
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upstream.returncode == 0, upstream.stderr
    theirs = [s for s in upstream_console_spans(upstream.stdout) if s["kind"] == "SpanKind.CLIENT"]
    assert [(s["name"], s["attributes"].get("hook.client")) for s in theirs] == [
        (name, hook and json.loads(hook)) for name, hook in traced
    ]

    # With redis instrumented globally too, an instrumented client's command has one span,
    # with that client's hooks.
    arguments[-1] = "global"
    answers, spans = run(tmp, CLIENT, arguments, "--disabled_instrumentations", "redis")
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    first = [(s["name"], s["attributes"].get("hook.client")) for s in clients[:4]]
    assert first == [("SET", '"chosen"'), ("GET", None), ("GET", None), ("GET", None)]
    assert "hook.response" not in clients[1]["attributes"] and clients[2]["attributes"]["hook.response"]


STAND_IN_POOL = """
    import json
    from unittest import mock
    import redis

    # A client on a stand-in pool, as test suites make (redis-py's own among them).
    client = redis.Redis(connection_pool=mock.MagicMock())
    out = {"ping": type(client.ping()).__name__}
    with client.pipeline(transaction=False) as pipe:
        pipe.get("a")
        out["pipeline"] = type(pipe.execute()).__name__
    print(json.dumps(out))
"""


def test_a_client_on_a_mocked_pool_gets_what_the_mock_answers(tmp):
    """Nothing is read from a pool that is not redis-py's: the commands go through as they
    would bare (they raised TypeError when the mock's attributes were taken for the server's
    address), and the spans have no server attributes."""
    answers, spans = run(tmp, STAND_IN_POOL, ())
    assert answers == {"ping": "MagicMock", "pipeline": "MagicMock"}
    assert [(s["name"], s["kind"]) for s in spans] == [("PING", "CLIENT"), ("GET", "CLIENT")]
    assert not [key for s in spans for key in s["attributes"] if key.startswith(("server.", "db.namespace"))]
