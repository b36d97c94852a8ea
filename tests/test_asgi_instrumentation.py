"""Starlette and FastAPI on a real uvicorn (FastAPI on hypercorn and granian too) under
`ferrotel instrument`: server spans and
metrics exported over OTLP to a real receiver. A Starlette app is traced by ferrotel's
built-in ASGI instrumentation; FastAPI, which traces itself through the OpenTelemetry API
too, must come out with exactly one server span per request: ferrotel's, with FastAPI's own
operation spans under it."""

import json
import subprocess
import sys

import pytest
from support.processes import FERROTEL, clean_env, free_port, http_get, serving, wait_http

STARLETTE_APP = """
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

async def item(request):
    return JSONResponse({"id": int(request.path_params["item_id"])})

async def boom(request):
    raise RuntimeError("exploded")

async def teapot(request):
    raise HTTPException(status_code=418)

async def healthz(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[
    Route("/items/{item_id:int}", item),
    Route("/boom", boom),
    Route("/teapot", teapot),
    Route("/healthz", healthz),
])
"""

FASTAPI_APP = """
from fastapi import FastAPI

app = FastAPI()

@app.get("/items/{item_id}")
async def item(item_id: int):
    return {"id": item_id}

@app.get("/healthz")
async def healthz():
    return "ok"
"""

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = {"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"}


# How each ASGI server is told to serve `app:app` on a port.
SERVERS = {
    "uvicorn": lambda port: ["uvicorn", "--port", str(port), "app:app"],
    "hypercorn": lambda port: ["hypercorn", "--bind", f"127.0.0.1:{port}", "app:app"],
    "granian": lambda port: ["granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "app:app"],
}


def serve(viewer, tmp, source, service, requests, websocket=False, server="uvicorn", **extra_env):
    """Runs `source`'s `app` on `server` under ferrotel, makes `requests` ((path, headers))
    and, with `websocket`, one echo over `/ws`; stops the server and returns the statuses."""
    (tmp / "app.py").write_text(source)
    port = free_port()
    env = clean_env(
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{viewer.http}",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_PYTHON_EXCLUDED_URLS="healthz",
        **extra_env,
    )
    with serving([FERROTEL, "instrument", *SERVERS[server](port)], tmp, env) as server:
        wait_http(f"http://127.0.0.1:{port}/healthz", deadline=30)
        statuses = [http_get(f"http://127.0.0.1:{port}{path}", headers)[0] for path, headers in requests]
        if websocket:
            from websockets.sync.client import connect

            with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                ws.send("hi")
                assert ws.recv() == "HI"
    return port, statuses, server.output[1]


def server_spans(viewer, service):
    traces = viewer.get(f"/api/traces?service={service}&limit=50")["data"]
    spans = [s for t in traces for s in t["spans"]]
    tagged = [(s, {t["key"]: t["value"] for t in s["tags"]}) for s in spans]
    return [(s, tags) for s, tags in tagged if tags.get("span.kind") == "server"]


def test_starlette_requests_become_server_spans_and_metrics(viewer, tmp):
    requests = [("/items/7?q=1", TRACEPARENT), ("/items/8", None), ("/boom", None), ("/teapot", None)]
    port, statuses, err = serve(viewer, tmp, STARLETTE_APP, "starlette-app", requests + [("/missing", None)])
    assert statuses == [200, 200, 500, 418, 404], err

    spans = server_spans(viewer, "starlette-app")
    assert all(tags["otel.scope.name"] == "ferrotel.instrumentation.asgi" for _, tags in spans)
    by_path = {tags["url.path"]: (s, tags) for s, tags in spans}
    assert set(by_path) == {"/items/7", "/items/8", "/boom", "/teapot", "/missing"}, "healthz is excluded"

    first, first_tags = by_path["/items/7"]
    # The route template as upstream reports it (Starlette's `path_format`).
    assert first["operationName"] == "GET /items/{item_id}"
    assert first["references"] == [{"refType": "CHILD_OF", "traceID": PARENT_TRACE, "spanID": PARENT_SPAN}]
    assert first_tags["http.route"] == "/items/{item_id}" and first_tags["http.response.status_code"] == 200
    assert first_tags["url.query"] == "q=1" and first_tags["url.scheme"] == "http"
    assert first_tags["server.port"] == port and first_tags["network.protocol.version"] == "1.1"
    assert by_path["/items/8"][0]["references"] == [], "no incoming context: a root span"

    boom, boom_tags = by_path["/boom"]
    assert boom_tags["otel.status_code"] == "ERROR" and boom_tags["error.type"] == "RuntimeError"
    assert [f["value"] for f in boom["logs"][0]["fields"] if f["key"] == "event"] == ["exception"]
    teapot_tags = by_path["/teapot"][1]
    assert teapot_tags["http.response.status_code"] == 418 and "otel.status_code" not in teapot_tags
    missing, missing_tags = by_path["/missing"]
    assert missing["operationName"] == "GET" and "http.route" not in missing_tags

    [durations] = viewer.get("/api/metrics/http.server.request.duration?service=starlette-app")["data"]
    counts = {p["attributes"].get("http.route"): p["count"] for p in durations["points"]}
    assert counts == {"/items/{item_id}": 2, "/boom": 1, "/teapot": 1, None: 1}
    # Body sizes from Content-Length: the JSON bodies of /items/7 and /items/8 are 8 bytes.
    [responses] = viewer.get("/api/metrics/http.server.response.body.size?service=starlette-app")["data"]
    sizes = {p["attributes"].get("http.route"): (p["count"], p["sum"]) for p in responses["points"]}
    assert sizes["/items/{item_id}"] == (2, 16), sizes
    [active] = viewer.get("/api/metrics/http.server.active_requests?service=starlette-app")["data"]
    assert [p["value"] for p in active["points"]] == [0]


def test_fastapi_has_one_server_span_with_its_own_spans_under_it(viewer, tmp):
    _, statuses, err = serve(viewer, tmp, FASTAPI_APP, "fastapi-app", [("/items/7", TRACEPARENT)])
    assert statuses == [200], err
    spans = [(s, tags) for s, tags in server_spans(viewer, "fastapi-app") if tags["url.path"] == "/items/7"]
    [(span, tags)] = spans
    assert tags["otel.scope.name"] == "ferrotel.instrumentation.asgi", "ferrotel's span, not a second of FastAPI's"
    assert span["operationName"] == "GET /items/{item_id}" and tags["client.address"] == "127.0.0.1"
    [trace] = viewer.get(f"/api/traces/{span['traceID']}")["data"]
    inner = sorted(
        (s["operationName"], [r["spanID"] for r in s["references"]])
        for s in trace["spans"]
        if s["spanID"] != span["spanID"]
    )
    assert inner == [
        ("fastapi.dependencies", [span["spanID"]]),
        ("fastapi.endpoint", [span["spanID"]]),
        ("fastapi.serialization", [span["spanID"]]),
    ], inner
    # Its parent comes through the global propagator: ferrotel's.
    assert span["references"] == [{"refType": "CHILD_OF", "traceID": PARENT_TRACE, "spanID": PARENT_SPAN}]


OWN_PROVIDER_APP = """
import json
import sqlite3

from fastapi import FastAPI
from ferrotel.trace import TracerProvider
from ferrotel.trace.export import InMemorySpanExporter, SimpleSpanProcessor

# A tracer provider of the app's own for FastAPI's telemetry, as FastAPI's documentation
# shows (any SDK's provider; ferrotel's is the one at hand), beside the global one.
received = InMemorySpanExporter()
provider = TracerProvider({})
provider.add_span_processor(SimpleSpanProcessor(received))
app = FastAPI(telemetry={"tracer_provider": provider})

@app.get("/items/{item_id}")
def item(item_id: int):
    sqlite3.connect(":memory:").execute("SELECT 1").fetchone()
    return {"id": item_id}

@app.get("/healthz")
def healthz():
    return "ok"

@app.get("/received")
def dump():
    spans = [
        {"name": s["name"], "kind": s["kind"], "id": f"{s['span_id']:016x}", "trace": f"{s['trace_id']:032x}",
         "parent": None if s["parent_span_id"] is None else f"{s['parent_span_id']:016x}"}
        for s in received.get_finished_spans()
    ]
    with open("received.json", "w") as out:
        json.dump(spans, out)
"""


def test_fastapi_telemetry_sent_to_the_apps_own_provider_stays_as_it_is(viewer, tmp):
    """FastAPI's telemetry configured with a provider of the app's own gets what it would
    without ferrotel (its server span, the operation spans under it); ferrotel starts no
    server span of its own for it, and its spans within the request nest under FastAPI's
    (the statement under the endpoint's operation span)."""
    requests = [("/items/7", TRACEPARENT), ("/received", None)]
    _, statuses, err = serve(viewer, tmp, OWN_PROVIDER_APP, "fastapi-own-provider", requests)
    assert statuses == [200, 200], err
    own = [s for s in json.loads((tmp / "received.json").read_text()) if s["trace"] == PARENT_TRACE]
    [server] = [s for s in own if s["kind"] == "SERVER"]
    assert server["name"] == "GET /items/{item_id}" and server["parent"] == PARENT_SPAN, own
    operations = sorted((s["name"], s["parent"], s["id"]) for s in own if s is not server)
    assert [(name, parent) for name, parent, _ in operations] == [
        ("fastapi.dependencies", server["id"]),
        ("fastapi.endpoint", server["id"]),
        ("fastapi.serialization", server["id"]),
    ], own

    [trace] = viewer.get(f"/api/traces/{PARENT_TRACE}")["data"]
    assert [t["url.path"] for _, t in server_spans(viewer, "fastapi-own-provider")] == [], "FastAPI's span only"
    [statement] = [s for s in trace["spans"] if s["operationName"] == "SELECT"]
    endpoint = operations[1][2]
    assert statement["references"] == [{"refType": "CHILD_OF", "traceID": PARENT_TRACE, "spanID": endpoint}]


WEBSOCKET_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute

async def healthz(request):
    return PlainTextResponse("ok")

async def ws(websocket):
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(text.upper())
    await websocket.close()

app = Starlette(routes=[Route("/healthz", healthz), WebSocketRoute("/ws", ws)])
"""


def websocket_events(viewer, tmp, service, **env):
    _, _, err = serve(viewer, tmp, WEBSOCKET_APP, service, [], websocket=True, **env)
    [(span, tags)] = [(s, t) for s, t in server_spans(viewer, service) if t["url.path"] == "/ws"]
    assert span["operationName"] == "GET /ws" and tags["network.protocol.name"] == "websocket", err
    return [f["value"] for log in span["logs"] for f in log["fields"] if f["key"] == "event"]


def test_websocket_messages_are_events_only_when_asked(viewer, tmp):
    assert websocket_events(viewer, tmp, "ws-quiet") == []
    events = websocket_events(viewer, tmp, "ws-events", FERROTEL_ASGI_MESSAGE_EVENTS="true")
    # The message received and the echo sent; connect, accept and close are not data messages.
    assert events == ["websocket.receive", "websocket.send"], events


@pytest.mark.parametrize("server", ["hypercorn", "granian"])
def test_fastapi_on_other_servers_has_one_server_span(viewer, tmp, server):
    service = f"fastapi-{server}"
    requests = [("/items/7?q=1", TRACEPARENT), ("/items/8", None), ("/missing", None)]
    port, statuses, err = serve(viewer, tmp, FASTAPI_APP, service, requests, server=server)
    assert statuses == [200, 200, 404], err
    spans = server_spans(viewer, service)
    by_path = {}
    for span, tags in spans:
        assert tags["otel.scope.name"] == "ferrotel.instrumentation.asgi", "ferrotel's span, not FastAPI's"
        by_path.setdefault(tags["url.path"], []).append((span, tags))
    assert sorted(by_path) == ["/items/7", "/items/8", "/missing"], "one server span each; healthz excluded"
    [(first, tags)] = by_path["/items/7"]
    assert first["operationName"] == "GET /items/{item_id}" and tags["http.route"] == "/items/{item_id}"
    assert first["references"] == [{"refType": "CHILD_OF", "traceID": PARENT_TRACE, "spanID": PARENT_SPAN}]
    assert (tags["http.response.status_code"], tags["url.query"], tags["url.scheme"]) == (200, "q=1", "http")
    assert (tags["server.port"], tags["client.address"]) == (port, "127.0.0.1")
    assert tags["network.protocol.version"] == "1.1" and tags["http.request.method"] == "GET"
    [(second, _)] = by_path["/items/8"]
    assert second["references"] == [], "no incoming context: a root span"
    [(missing, missing_tags)] = by_path["/missing"]
    assert missing_tags["http.response.status_code"] == 404 and "http.route" not in missing_tags
    [trace] = viewer.get(f"/api/traces/{first['traceID']}")["data"]
    inner = sorted(s["operationName"] for s in trace["spans"] if s["spanID"] != first["spanID"])
    assert inner == ["fastapi.dependencies", "fastapi.endpoint", "fastapi.serialization"], inner


FASTAPI_OPERATIONS_APP = """
from fastapi import FastAPI, HTTPException

app = FastAPI()

@app.get("/items/{item_id}")
async def item(item_id: int):
    return {"id": item_id}

@app.get("/teapot")
async def teapot():
    raise HTTPException(status_code=418)

@app.get("/boom")
async def boom():
    raise RuntimeError("exploded")

@app.get("/healthz")
async def healthz():
    return "ok"
"""


def test_fastapi_operation_spans_keep_fastapi_names_attributes_and_error_rules(viewer, tmp):
    requests = [("/items/7", None), ("/teapot", None), ("/boom", None)]
    _, statuses, err = serve(viewer, tmp, FASTAPI_OPERATIONS_APP, "fastapi-operations", requests)
    assert statuses == [200, 418, 500], err
    endpoints = {}
    for span, tags in server_spans(viewer, "fastapi-operations"):
        [trace] = viewer.get(f"/api/traces/{span['traceID']}")["data"]
        for inner in trace["spans"]:
            inner_tags = {t["key"]: t["value"] for t in inner["tags"]}
            if inner["operationName"] == "fastapi.endpoint":
                assert inner["references"][0]["spanID"] == span["spanID"]
                endpoints[tags["url.path"]] = inner_tags
    assert sorted(endpoints) == ["/boom", "/items/7", "/teapot"], endpoints
    assert endpoints["/items/7"]["code.function.name"] == "app.item"
    assert endpoints["/items/7"]["span.kind"] == "internal"
    # An HTTP error is the response, not the operation's failure; any other exception is.
    assert "error.type" not in endpoints["/teapot"] and endpoints["/teapot"].get("otel.status_code") != "ERROR"
    assert endpoints["/boom"]["error.type"] == "RuntimeError" and endpoints["/boom"]["otel.status_code"] == "ERROR"
    assert endpoints["/boom"]["code.function.name"] == "app.boom"


EXCLUDING_APP = """
import fastapi
from fastapi.testclient import TestClient
from ferrotel.instrumentation.starlette import FastAPIInstrumentor

app = fastapi.FastAPI(telemetry={"exclude": lambda scope: scope["path"] == "/skip"})

@app.get("/items")
def items():
    return 1

FastAPIInstrumentor.instrument_app(app)
with TestClient(app) as client:  # runs the lifespan too, whose scope has no "path"
    print(client.get("/items").status_code, client.get("/skip").status_code)
"""


def test_fastapi_exclude_is_asked_of_requests_only(tmp):
    """FastAPI's `exclude` sees HTTP and websocket scopes only, as without ferrotel: asked of
    the lifespan scope, an app's exclude reading the path would stop its start-up."""
    (tmp / "app.py").write_text(EXCLUDING_APP)
    done = subprocess.run([sys.executable, "app.py"], cwd=tmp, env=clean_env(), capture_output=True, text=True)
    assert done.stdout.split() == ["200", "404"], done.stderr
