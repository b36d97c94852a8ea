"""The server-side instrumentation contract upstream users rely on, on ferrotel's built-ins,
against a real uvicorn: `FastAPIInstrumentor.instrument_app/uninstrument_app` and
`OpenTelemetryMiddleware` with upstream's keyword arguments (`excluded_urls`, the three
hooks, `tracer_provider`), and the `traceresponse` response propagator. Each check fails if
the argument is ignored."""

import json
import textwrap

from support.console import console_spans
from support.processes import clean_env, run

APP = textwrap.dedent(
    """
    import asyncio
    import json
    import threading
    import time
    import urllib.request

    import ferrotel
    import uvicorn
    from fastapi import FastAPI
    from opentelemetry import trace
    from opentelemetry.instrumentation.propagators import TraceResponsePropagator, set_global_response_propagator
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from ferrotel.instrumentation.asgi import OpenTelemetryMiddleware
    from ferrotel.instrumentation.starlette import FastAPIInstrumentor
    from ferrotel.trace import TracerProvider
    from ferrotel.trace.export import InMemorySpanExporter, SimpleSpanProcessor

    ferrotel.configure(traces_exporter="none", metrics_exporter="none", logs_exporter="none")
    memory = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(memory))
    # A second provider given as `tracer_provider`: the middleware's spans go there only.
    own_memory = InMemorySpanExporter()
    own_provider = TracerProvider()
    own_provider.add_span_processor(SimpleSpanProcessor(own_memory))

    seen = []

    def server_request_hook(span, scope):
        span.set_attribute("hook.server_request", scope["path"])

    def client_request_hook(span, scope, message):
        seen.append(("receive", scope["path"], message["type"]))

    def client_response_hook(span, scope, message):
        seen.append(("send", scope["path"], message["type"]))
        if message["type"] == "http.response.start":
            span.set_attribute("hook.status", message["status"])

    fast = FastAPI()

    @fast.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    @fast.get("/skip")
    async def skip():
        return "skipped"

    FastAPIInstrumentor.instrument_app(
        fast,
        excluded_urls="/skip",
        server_request_hook=server_request_hook,
        client_request_hook=client_request_hook,
        client_response_hook=client_response_hook,
    )

    # FastAPI's own tracing off: only ferrotel could trace this app.
    other = FastAPI(telemetry={"tracing": False})

    @other.get("/plain")
    async def plain():
        return "plain"

    FastAPIInstrumentor.instrument_app(other)
    FastAPIInstrumentor.uninstrument_app(other)

    async def hello(request):
        return PlainTextResponse("hello")

    wrapped = OpenTelemetryMiddleware(Starlette(routes=[Route("/hello", hello)]), tracer_provider=own_provider)

    async def router(scope, receive, send):
        path = scope.get("path", "")
        app = fast if path.startswith(("/items", "/skip")) else other if path == "/plain" else wrapped
        await app(scope, receive, send)

    set_global_response_propagator(TraceResponsePropagator())
    config = uvicorn.Config(router, port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as response:
            response.read()
            return response.headers.get("traceresponse"), response.headers.get("access-control-expose-headers")

    answers = {path: get(path) for path in ("/items/7", "/skip", "/plain", "/hello")}
    server.should_exit = True
    thread.join()

    def hexid(value, width):
        return format(value, f"0{width}x") if isinstance(value, int) else value

    def spans(exporter):
        return [
            {"name": s["name"], "kind": str(s["kind"]), "id": hexid(s["span_id"], 16),
             "trace": hexid(s["trace_id"], 32), "attributes": dict(s["attributes"])}
            for s in exporter.get_finished_spans()
        ]

    print(json.dumps({"answers": answers, "seen": seen, "spans": spans(memory), "own": spans(own_memory)}))
    """
)


def test_fastapi_and_middleware_take_upstreams_arguments_and_hooks(contrib_python, tmp):
    (tmp / "app.py").write_text(APP)
    result = run(contrib_python, tmp / "app.py", env=clean_env(), cwd=tmp)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    spans, own = out["spans"], out["own"]

    servers = [s for s in spans if s["kind"].endswith("SERVER")]
    # /skip is excluded by the app's own `excluded_urls`, /plain by `uninstrument_app`, and
    # /hello went to the middleware's own `tracer_provider`.
    assert [s["name"] for s in servers] == ["GET /items/{item_id}"], spans
    [item] = servers
    assert item["attributes"]["hook.server_request"] == "/items/7"
    assert item["attributes"]["hook.status"] == 200
    assert [s["name"] for s in own] == ["GET /hello"] and own[0]["kind"].endswith("SERVER")
    # The hooks see every message of the request, and only of the instrumented app's.
    assert out["seen"] == [
        ["receive", "/items/7", "http.request"],
        ["send", "/items/7", "http.response.start"],
        ["send", "/items/7", "http.response.body"],
    ] or out["seen"] == [
        ["send", "/items/7", "http.response.start"],
        ["send", "/items/7", "http.response.body"],
    ], out["seen"]
    # The response propagator names the server span that answered.
    traceresponse, exposed = out["answers"]["/items/7"]
    assert traceresponse == f"00-{item['trace']}-{item['id']}-01" and exposed == "traceresponse"
    assert out["answers"]["/skip"] == [None, None]
    assert out["answers"]["/hello"][0] == f"00-{own[0]['trace']}-{own[0]['id']}-01"


CONTRIB_INSTRUMENT_APP = textwrap.dedent(
    """
    import asyncio

    import flask
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.starlette import StarletteInstrumentor
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    fastapi_app = FastAPI()
    fastapi_app.get("/fastapi/{x}")(lambda x: x)
    starlette_app = Starlette(routes=[Route("/starlette", lambda request: PlainTextResponse("s"))])
    flask_app = flask.Flask(__name__)
    flask_app.route("/flask/<x>")(lambda x: x)

    # What apps written for upstream's zero-code instrumentation often do as well.
    FastAPIInstrumentor.instrument_app(fastapi_app)
    StarletteInstrumentor.instrument_app(starlette_app)
    FlaskInstrumentor.instrument_app(flask_app)

    async def get(app, path):
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"test")], "client": ("127.0.0.1", 5000),
            "server": ("test", 80),
        }
        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"]

    assert asyncio.run(get(fastapi_app, "/fastapi/1")) == 200
    assert asyncio.run(get(starlette_app, "/starlette")) == 200
    with flask_app.test_client().get("/flask/1") as response:
        assert response.status_code == 200
    """
)


def test_contribs_instrument_app_leaves_an_app_ferrotel_traces_alone(contrib_python, tmp):
    """Under upstream's `opentelemetry-instrument`, every app is already instrumented, so
    contrib's `instrument_app` on it warns and does nothing: one server span per request.
    Under ferrotel too; where ferrotel's instrumentation of a framework is off, contrib's
    is the one."""
    (tmp / "app.py").write_text(CONTRIB_INSTRUMENT_APP)
    launcher = contrib_python.parent / "ferrotel"
    routes = {"/fastapi/{x}": "fastapi", "/starlette": "starlette", "/flask/<x>": "flask"}
    ferrotels = {"fastapi": "asgi", "starlette": "asgi", "flask": "wsgi"}
    command = ["instrument", "--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]

    for disabled in ((), ("fastapi",), ("fastapi", "starlette", "flask")):
        arguments = ["--disabled_instrumentations", ",".join(disabled)] if disabled else []
        result = run(launcher, *command, *arguments, contrib_python, "app.py", cwd=tmp)
        assert result.returncode == 0, result.stderr
        spans = console_spans(result.stdout)
        routed = sorted(
            (s["attributes"]["http.route"].strip('"'), s["kind"], s["scope"])
            for s in spans
            if "http.route" in s["attributes"]
        )
        expected = sorted(
            (
                route,
                "SERVER",
                f"opentelemetry.instrumentation.{framework}"
                if framework in disabled
                else f"ferrotel.instrumentation.{ferrotels[framework]}",
            )
            for route, framework in routes.items()
        )
        assert routed == expected, (disabled, routed)
        if not disabled:  # nor any other span of contrib's (its "http send" ones)
            assert not [s for s in spans if s["scope"].startswith("opentelemetry.instrumentation")], spans
        for framework in ("FastAPI", "Flask"):
            warned = f"Attempting to instrument {framework} app while already instrumented" in result.stderr
            assert warned == (framework.lower() not in disabled), (disabled, result.stderr)
