"""ferrotel's built-in redis instrumentation against a real redis-server: a CLIENT span per
command (sync and asyncio clients) and per pipeline, the query text without values, failures
recorded; upstream's hooks, `tracer_provider` and the suppression key, each asserted on what
arrives."""

import json
import textwrap

from support.console import console_spans
from support.databases import redis  # noqa: F401 (a fixture)
from support.processes import PYTHON, instrument


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
