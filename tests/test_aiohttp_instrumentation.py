"""ferrotel's built-in aiohttp instrumentations (`aiohttp-client`, `aiohttp-server`): a real
aiohttp server process and a real aiohttp client process, both under `ferrotel instrument`
and exporting OTLP to the same receivers, then the same two programs under upstream's
`opentelemetry-instrument` with the pinned contrib 0.66b1 packages (their own venv).
Asserted on what arrives: the client span's context reaches the server process and the
server span is its child, route, status rules, the exception event, excluded URLs, captured
headers, client address and user agent, the server metrics; every span upstream produces,
ferrotel produces with the same kind, name and parent. Then upstream's programmatic surface
(hooks, `url_filter`, `trace_configs`, `create_trace_config`, `uninstrument_session`,
ferrotel's `instrument_session`, the suppression key), each checked so that ignoring it fails."""

import base64
import contextlib
import json
import os
import socket
import subprocess
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.console import console_spans
from support.echo import echo_server
from support.processes import BIN, PYTHON, clean_env, free_port, instrument, run, serving

APPS = Path(__file__).parent / "apps"
UPSTREAM = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", Path(__file__).parents[1] / ".venv-upstream")) / "bin"

SERVER = """
    import sys
    from aiohttp import web

    async def user(request):
        body = {"id": request.match_info["id"], "traceparent": request.headers.get("traceparent")}
        return web.json_response(body, headers={"X-Answer": "yes"})

    async def gone(request):
        raise web.HTTPNotFound(text="gone")

    async def broken(request):
        raise ValueError("boom")

    async def unavailable(request):
        raise web.HTTPServiceUnavailable()

    async def upload(request):
        return web.Response(body=b"x" * len(await request.read()))

    async def purge(request):
        return web.Response(text="purged " + request.match_info["key"])

    async def health(request):
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([
        web.get("/users/{id}", user),
        web.get("/gone", gone),
        web.get("/broken", broken),
        web.get("/unavailable", unavailable),
        web.post("/upload", upload),
        web.route("PURGE", "/cache/{key}", purge),
        web.get("/health", health),
    ])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, handle_signals=True)
"""

CLIENT = """
    import asyncio, json, sys
    import aiohttp
    from opentelemetry import trace

    base = sys.argv[1]

    async def main():
        out = {}
        async with aiohttp.ClientSession(headers={"X-Custom": "c1"}) as session:
            async with session.get(f"{base}/users/7", params={"tab": "1"}) as response:
                out["user"] = (await response.json())["traceparent"]
            for path in ("gone", "broken", "unavailable", "nowhere", "health"):
                async with session.get(f"{base}/{path}") as response:
                    out[path] = response.status
            async with session.post(f"{base}/upload", data=b"a" * 1000) as response:
                out["upload"] = len(await response.read())
            async with session.request("PURGE", f"{base}/cache/k1") as response:
                out["purge"] = await response.text()
            try:
                await session.get("http://127.0.0.1:9/refused")
            except aiohttp.ClientConnectionError:
                out["refused"] = True
        return out

    with trace.get_tracer("app").start_as_current_span("parent"):
        print(json.dumps(asyncio.run(main())))
"""

CAPTURE = {
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-custom",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "x-answer",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": "x-custom",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE": "x-answer",
}


@contextlib.contextmanager
def receiving(script):
    """An OTLP/HTTP receiver (upstream's protobuf decoding) on a free port; yields
    (port, lines), the printed JSON lines filled in once the block ends."""
    process = subprocess.Popen(
        [str(UPSTREAM / "python"), str(APPS / script)], stdout=subprocess.PIPE, text=True, env=clean_env()
    )
    lines = []
    try:
        port = int(process.stdout.readline().split()[1])
        yield port, lines
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
        lines.extend(json.loads(line) for line in out.splitlines() if line.startswith("{"))


def wait_listening(port, process, deadline=30.0):
    end = time.monotonic() + deadline
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < end, "the server never listened"
            time.sleep(0.05)


def record(tmp, launcher, python, **extra):
    """Runs SERVER and CLIENT under `launcher`; returns (client's answers, spans, metrics)."""
    (tmp / "server.py").write_text(textwrap.dedent(SERVER))
    (tmp / "client.py").write_text(textwrap.dedent(CLIENT))
    with (
        receiving("otlp_receiver.py") as (traces, span_lines),
        receiving("otlp_metrics_receiver.py") as (
            metrics,
            metric_lines,
        ),
    ):
        settings = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{traces}/v1/traces",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"http://127.0.0.1:{metrics}/v1/metrics",
            "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
            "OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS": "health",
            **CAPTURE,
            **extra,
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server_env = clean_env(OTEL_SERVICE_NAME="shop", **settings)
        with serving([launcher, python, "server.py", port], tmp, server_env) as server:
            wait_listening(port, server.process)
            client = run(
                launcher, python, "client.py", base, env=clean_env(OTEL_SERVICE_NAME="caller", **settings), cwd=tmp
            )
        assert client.returncode == 0, client.stderr[-3000:]
        assert server.process.returncode == 0, server.output[1][-3000:]
        # The metrics receiver has the server's last export once the server has exited.
        time.sleep(0.5)
    answers = json.loads(next(line for line in client.stdout.splitlines() if line.startswith("{")))
    return answers, base, spans_of(span_lines), metric_lines


def _value(value):
    (kind, inner), *_ = value.items()
    if kind == "array_value":
        return [_value(v) for v in inner.get("values", [])]
    return int(inner) if kind == "int_value" else inner


def spans_of(lines):
    spans = []
    for line in lines:
        for resource_spans in line["request"]["resource_spans"]:
            service = {a["key"]: _value(a["value"]) for a in resource_spans["resource"]["attributes"]}["service.name"]
            for scope_spans in resource_spans["scope_spans"]:
                for s in scope_spans["spans"]:
                    hexed = {
                        k: base64.b64decode(s[k]).hex() for k in ("trace_id", "span_id", "parent_span_id") if k in s
                    }
                    spans.append(
                        {
                            **hexed,
                            "service": service,
                            "name": s["name"],
                            "kind": s["kind"].removeprefix("SPAN_KIND_"),
                            "attributes": {a["key"]: _value(a["value"]) for a in s.get("attributes", [])},
                            "status": s.get("status", {}).get("code", "STATUS_CODE_UNSET").removeprefix("STATUS_CODE_"),
                            "events": [e["name"] for e in s.get("events", [])],
                        }
                    )
    return spans


def metric_points(lines, service, name):
    """The data points of metric `name` in `service`'s last export."""
    points = []
    for line in lines:
        for resource_metrics in line.get("resource_metrics", []):
            attributes = {a["key"]: _value(a["value"]) for a in resource_metrics["resource"]["attributes"]}
            if attributes.get("service.name") != service:
                continue
            found = []
            for scope_metrics in resource_metrics["scope_metrics"]:
                for metric in scope_metrics["metrics"]:
                    if metric["name"] == name:
                        data = next(iter(v for k, v in metric.items() if k in ("histogram", "sum", "gauge")))
                        for p in data["data_points"]:
                            found.append({**p, "attributes": {a["key"]: _value(a["value"]) for a in p["attributes"]}})
            if found:
                points = found
    return points


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("aiohttp")
    ours = record(tmp, BIN / "ferrotel-instrument", BIN / "python")
    theirs = record(tmp, UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python")
    return ours, theirs


def by_path(spans, kind):
    """Spans of `kind` keyed by the path they served or called."""
    out = {}
    for s in spans:
        if s["kind"] == kind:
            url = s["attributes"].get("url.full") or s["attributes"].get("url.path")
            out[url.split("://")[-1].split("/", 1)[-1].split("?")[0]] = s
    return out


def test_client_and_server_spans_join_across_processes(recorded):
    (answers, base, spans, _), _ = recorded
    port = int(base.rsplit(":", 1)[1])
    assert answers == {
        "user": answers["user"],
        "gone": 404,
        "broken": 500,
        "unavailable": 503,
        "nowhere": 404,
        "health": 200,
        "upload": 1000,
        "purge": "purged k1",
        "refused": True,
    }
    (parent,) = [s for s in spans if s["name"] == "parent"]
    clients, servers = by_path(spans, "CLIENT"), by_path(spans, "SERVER")
    paths = ["broken", "cache/k1", "gone", "health", "nowhere", "refused", "unavailable", "upload", "users/7"]
    assert sorted(clients) == paths
    # /health is excluded on the server only.
    assert sorted(servers) == sorted(["cache/k1", "gone", "nowhere", "unavailable", "upload", "users/7", "broken"])
    for path, client in clients.items():
        assert client["service"] == "caller" and client["parent_span_id"] == parent["span_id"], path
        assert client["trace_id"] == parent["trace_id"]
        if path in servers:
            server = servers[path]
            assert server["service"] == "shop"
            assert (server["trace_id"], server["parent_span_id"]) == (client["trace_id"], client["span_id"]), path
    user_client = clients["users/7"]
    assert answers["user"] == f"00-{user_client['trace_id']}-{user_client['span_id']}-01"
    assert user_client["name"] == "GET" and user_client["status"] == "UNSET"
    assert user_client["attributes"] == {
        "http.request.method": "GET",
        "url.full": f"{base}/users/7?tab=1",
        "server.address": "127.0.0.1",
        "server.port": port,
        "http.request.header.x-custom": ["c1"],
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
        "http.response.header.x-answer": ["yes"],
    }
    user = servers["users/7"]
    attributes = dict(user["attributes"])  # a copy: the recording is shared with other tests
    assert user["name"] == "GET /users/{id}" and user["status"] == "UNSET" and user["events"] == []
    assert attributes["client.port"] > 0 and attributes["user_agent.original"].startswith("Python/")
    assert "aiohttp/3.14.5" in attributes.pop("user_agent.original")
    attributes.pop("client.port")
    assert attributes == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/users/7",
        "url.query": "tab=1",
        "server.address": "127.0.0.1",
        "server.port": port,
        "client.address": "127.0.0.1",
        "network.protocol.version": "1.1",
        "http.request.header.x-custom": ["c1"],
        "http.response.status_code": 200,
        "http.response.header.x-answer": ["yes"],
        "http.route": "/users/{id}",
    }
    # Status rules: a 4xx is the client's error only; a 5xx both sides'.
    assert (servers["gone"]["status"], servers["gone"]["events"]) == ("UNSET", [])
    assert servers["gone"]["attributes"]["http.response.status_code"] == 404
    assert clients["gone"]["status"] == "ERROR" and clients["gone"]["attributes"]["error.type"] == "404"
    # An unmatched path: no route, named by the method.
    assert servers["nowhere"]["name"] == "GET" and "http.route" not in servers["nowhere"]["attributes"]
    # An HTTPException with a 5xx status: its status, and an exception event as upstream's.
    unavailable = servers["unavailable"]
    assert unavailable["status"] == "ERROR" and unavailable["events"] == ["exception"]
    assert unavailable["attributes"]["error.type"] == "503"
    # An exception the handler did not handle: the event, ERROR, typed by the exception.
    broken = servers["broken"]
    assert broken["name"] == "GET /broken" and broken["status"] == "ERROR" and broken["events"] == ["exception"]
    assert broken["attributes"]["error.type"] == "ValueError"
    assert clients["broken"]["attributes"]["error.type"] == "500"
    # A method outside the conventions' list (OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS unset).
    purge = servers["cache/k1"]
    assert purge["name"] == "HTTP /cache/{key}"
    assert purge["attributes"]["http.request.method"] == "_OTHER"
    assert purge["attributes"]["http.request.method_original"] == "PURGE"
    assert clients["cache/k1"]["name"] == "HTTP"
    refused = clients["refused"]
    assert refused["status"] == "ERROR" and refused["events"] == ["exception"]
    assert refused["attributes"]["error.type"].endswith("ClientConnectorError")


def test_server_metrics(recorded):
    (_, base, _, metrics), _ = recorded
    durations = metric_points(metrics, "shop", "http.server.request.duration")
    routes = sorted(
        (p["attributes"].get("http.route", ""), p["attributes"].get("http.response.status_code", 0)) for p in durations
    )
    assert routes == [
        ("", 404),
        # The handler's exception: aiohttp answers 500 after the span's end; typed by the exception.
        ("/broken", 0),
        ("/cache/{key}", 200),
        ("/gone", 404),
        ("/unavailable", 503),
        ("/upload", 200),
        ("/users/{id}", 200),
    ]
    assert all(int(p["count"]) == 1 for p in durations)
    [upload] = [
        p
        for p in metric_points(metrics, "shop", "http.server.request.body.size")
        if p["attributes"].get("http.route") == "/upload"
    ]
    assert (int(upload["count"]), upload["sum"]) == (1, 1000)
    [answer] = [
        p
        for p in metric_points(metrics, "shop", "http.server.response.body.size")
        if p["attributes"].get("http.route") == "/upload"
    ]
    assert (int(answer["count"]), answer["sum"]) == (1, 1000)
    active = metric_points(metrics, "shop", "http.server.active_requests")
    assert active and all(int(p.get("as_int", 0)) == 0 for p in active)
    clients = metric_points(metrics, "caller", "http.client.request.duration")
    assert sum(int(p["count"]) for p in clients) == 9


def stable_header_name(name):
    """Upstream writes a captured header's name with `_` for `-` (`x_custom`); ferrotel keeps
    it as sent (`x-custom`), as the conventions name it."""
    prefix, _, header = name.rpartition(".")
    return f"{prefix}.{header.replace('_', '-')}" if ".header." in name else name


def recorded_names(attributes):
    """Upstream's attribute names, less one it records that ferrotel leaves out on purpose:
    an empty `http.route` on a request no route matched."""
    return {stable_header_name(k) for k, v in attributes.items() if not (k == "http.route" and v == "")}


def test_ferrotel_produces_every_span_upstream_does(recorded):
    (_, _, ours, _), (_, _, theirs, _) = recorded
    by_id = {s["span_id"]: s for s in ours + theirs}

    def key(span):
        parent = by_id.get(span.get("parent_span_id"))
        url = span["attributes"].get("url.full") or span["attributes"].get("url.path")
        path = url.split("://")[-1].split("/", 1)[-1].split("?")[0] if url else span["name"]
        return (span["service"], span["kind"], parent and (parent["kind"], parent["name"]), path)

    ours_by_key = {key(s): s for s in ours}
    assert len(ours_by_key) == len(ours)
    differences = []
    for theirs_span in theirs:
        mine = ours_by_key.get(key(theirs_span))
        assert mine is not None, (key(theirs_span), sorted(ours_by_key, key=str))
        if mine["name"] != theirs_span["name"] or mine["status"] != theirs_span["status"]:
            differences.append(
                (key(theirs_span), mine["name"], theirs_span["name"], mine["status"], theirs_span["status"])
            )
        missing = recorded_names(theirs_span["attributes"]) - set(mine["attributes"])
        assert not missing, (key(theirs_span), missing)
    assert differences == []
    assert len(ours) == len(theirs)


PROGRAMMATIC = """
    import asyncio, json, sys
    import aiohttp
    from opentelemetry import context
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY
    from ferrotel.instrumentation.aiohttp_client import AioHttpClientInstrumentor, create_trace_config

    base = sys.argv[1]
    seen = []

    def url_filter(url):
        return str(url.with_query(None))

    def request_hook(span, params):
        span.set_attribute("hook.request", f"{params.method} {params.url.path}")
        params.headers["X-From-Hook"] = "1"

    def response_hook(span, params):
        span.set_attribute("hook.response", getattr(params, "response", None) and params.response.status or -1)

    async def on_request_start(session, trace_config_ctx, params):
        seen.append(str(params.url))

    own = aiohttp.TraceConfig()
    own.on_request_start.append(on_request_start)

    AioHttpClientInstrumentor().instrument(
        url_filter=url_filter, request_hook=request_hook, response_hook=response_hook, trace_configs=[own]
    )

    async def get(session, via):
        async with session.get(f"{base}/echo?via={via}&secret=s") as response:
            return (await response.json())["traceparent"]

    async def main():
        out = {}
        async with aiohttp.ClientSession() as session:
            out["hooked"] = await get(session, "hooked")
            async with session.get(f"{base}/skipped") as response:
                out["excluded"] = (await response.json())["traceparent"]
            token = context.attach(context.set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
            try:
                out["suppressed"] = await get(session, "suppressed")
            finally:
                context.detach(token)
            AioHttpClientInstrumentor.uninstrument_session(session)
            out["uninstrumented_session"] = await get(session, "uninstrumented-session")
        AioHttpClientInstrumentor().uninstrument()
        async with aiohttp.ClientSession() as session:
            out["after_uninstrument"] = await get(session, "after-uninstrument")
            AioHttpClientInstrumentor.instrument_session(session)
            out["instrument_session"] = await get(session, "instrument-session")
        filtered = create_trace_config(url_filter=lambda url: "filtered")
        async with aiohttp.ClientSession(trace_configs=[filtered]) as session:
            out["trace_config"] = await get(session, "trace-config")
        out["seen"] = seen
        return out

    print(json.dumps(asyncio.run(main())))
"""


def test_hooks_url_filter_trace_configs_and_sessions(tmp):
    (tmp / "client.py").write_text(textwrap.dedent(PROGRAMMATIC))
    with echo_server() as base:
        env = clean_env(
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="aiohttp-client", OTEL_PYTHON_AIOHTTP_CLIENT_EXCLUDED_URLS="skipped"
        )
        result = instrument("--traces_exporter", "console", PYTHON, "client.py", base, env=env, cwd=tmp)
    assert result.returncode == 0, result.stderr
    answers = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    spans = {s["attributes"]["url.full"].strip('"'): s for s in console_spans(result.stdout) if s["kind"] == "CLIENT"}
    # The excluded, suppressed, uninstrumented-session and after-uninstrument requests made no span.
    assert sorted(spans) == ["filtered", f"{base}/echo", f"{base}/echo?via=instrument-session&secret=s"]
    assert answers["suppressed"] is None and answers["uninstrumented_session"] is None and answers["excluded"] is None
    assert answers["after_uninstrument"] is None
    hooked = [s for s in console_spans(result.stdout) if s["attributes"].get("hook.request")]
    assert len(hooked) == 1
    [span] = hooked
    assert answers["hooked"] == f"00-{span['trace_id']}-{span['span_id']}-01"
    assert span["attributes"]["hook.request"] == '"GET /echo"' and span["attributes"]["hook.response"] == "200"
    # url_filter: the query (and its secret) is not recorded.
    assert span["attributes"]["url.full"] == f'"{base}/echo"'
    # instrument_session: traced with create_trace_config's defaults (no hooks, no filter).
    assert answers["instrument_session"] is not None and answers["trace_config"] is not None
    # trace_configs: the app's own config is in every session made while instrumented.
    assert answers["seen"] == [
        f"{base}/echo?via=hooked&secret=s",
        f"{base}/skipped",
        f"{base}/echo?via=suppressed&secret=s",
        f"{base}/echo?via=uninstrumented-session&secret=s",
    ]


def test_capture_all_methods_keeps_a_non_standard_method_on_both_sides(tmp):
    _, _, spans, metrics = record(
        tmp, BIN / "ferrotel-instrument", BIN / "python", OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS="true"
    )
    [server] = [s for s in spans if s["kind"] == "SERVER" and s["attributes"]["url.path"] == "/cache/k1"]
    [client] = [s for s in spans if s["kind"] == "CLIENT" and s["attributes"]["url.full"].endswith("/cache/k1")]
    assert server["name"] == "PURGE /cache/{key}" and client["name"] == "PURGE"
    for span in (server, client):
        assert span["attributes"]["http.request.method"] == "PURGE"
        assert "http.request.method_original" not in span["attributes"]
    methods = {
        p["attributes"]["http.request.method"] for p in metric_points(metrics, "shop", "http.server.request.duration")
    }
    assert methods == {"GET", "POST", "PURGE"}


class _Sized(BaseHTTPRequestHandler):
    """Answers any request with a body 10 bytes longer than the one it got."""

    protocol_version = "HTTP/1.1"

    def _answer(self):
        received = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"r" * (len(received) + 10)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_):
        pass


BODIES = """
    import sys, urllib.request
    import urllib3

    base = sys.argv[1]
    urllib.request.urlopen(urllib.request.Request(f"{base}/urllib", data=b"u" * 300)).read()
    urllib.request.urlopen(f"{base}/urllib").read()
    pool = urllib3.PoolManager()
    pool.request("POST", f"{base}/urllib3", body=b"p" * 500)
    pool.request("GET", f"{base}/urllib3")
"""


def body_points(tmp, launcher, python, base):
    """{(instrumentation, metric, method): (count, sum)} of the client body-size metrics
    BODIES records; the instrumentation is the last part of its scope's name."""
    (tmp / "bodies.py").write_text(textwrap.dedent(BODIES))
    with receiving("otlp_metrics_receiver.py") as (port, lines):
        env = clean_env(
            OTEL_SERVICE_NAME="bodies",
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=f"http://127.0.0.1:{port}/v1/metrics",
            OTEL_SEMCONV_STABILITY_OPT_IN="http",
        )
        result = run(launcher, python, "bodies.py", base, env=env, cwd=tmp)
        assert result.returncode == 0, result.stderr[-3000:]
    sizes = {}
    for line in lines:
        for resource_metrics in line.get("resource_metrics", []):
            for scope_metrics in resource_metrics["scope_metrics"]:
                instrumentation = scope_metrics["scope"]["name"].rsplit(".", 1)[-1]
                for metric in scope_metrics["metrics"]:
                    if metric["name"].endswith(".body.size"):
                        for p in metric["histogram"]["data_points"]:
                            method = next(
                                a["value"]["string_value"] for a in p["attributes"] if a["key"] == "http.request.method"
                            )
                            sizes[instrumentation, metric["name"], method] = (int(p["count"]), p["sum"])
    return sizes


def test_client_body_sizes_are_measured_as_upstream_measures_them(tmp):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        ours = body_points(tmp, BIN / "ferrotel-instrument", BIN / "python", base)
        theirs = body_points(tmp, UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python", base)
    finally:
        server.shutdown()
        server.server_close()
    # Per instrumentation and method: (count, sum) in bytes. A GET sends no body (0) and
    # gets 10 bytes; each POST gets its body's size plus 10.
    assert ours == {
        ("urllib", "http.client.request.body.size", "GET"): (1, 0),
        ("urllib", "http.client.request.body.size", "POST"): (1, 300),
        ("urllib", "http.client.response.body.size", "GET"): (1, 10),
        ("urllib", "http.client.response.body.size", "POST"): (1, 310),
        ("urllib3", "http.client.request.body.size", "GET"): (1, 0),
        ("urllib3", "http.client.request.body.size", "POST"): (1, 500),
        ("urllib3", "http.client.response.body.size", "GET"): (1, 10),
        ("urllib3", "http.client.response.body.size", "POST"): (1, 510),
    }
    assert ours == theirs


REFUSING_ROUTER = """
    import asyncio, json, warnings
    from aiohttp import abc, web
    from aiohttp.test_utils import TestClient, TestServer

    class Refusing(abc.AbstractRouter):
        async def resolve(self, request):
            raise web.HTTPPreconditionFailed()

    async def main():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # a custom router is deprecated
            app = web.Application(router=Refusing())
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/anything")
            return response.status

    print(json.dumps({"status": asyncio.run(main())}))
"""


def test_a_router_that_refuses_before_matching_keeps_its_answer(tmp):
    # aiohttp's own suite found this: the route lookup after the handler read `match_info`,
    # which aiohttp asserts is set, and the app's 412 became a 500.
    (tmp / "refusing.py").write_text(textwrap.dedent(REFUSING_ROUTER))
    result = instrument("--traces_exporter", "console", PYTHON, "refusing.py", env=clean_env(), cwd=tmp)
    assert result.returncode == 0, result.stderr
    answers = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert answers == {"status": 412}
    [server] = [s for s in console_spans(result.stdout) if s["kind"] == "SERVER"]
    assert server["name"] == "GET" and "http.route" not in server["attributes"]
    assert server["attributes"]["http.response.status_code"] == "412"
