"""ferrotel's built-in httpx instrumentation against a real local server: one CLIENT span
per request from Client, AsyncClient and the module's shortcuts, its context received by
the server, status rules, failures; upstream's hooks (sync and async), `instrument_client` /
`uninstrument_client`, `tracer_provider` and both suppression keys, each asserted on what
arrives."""

import json
import textwrap

import pytest
from support.console import console_spans
from support.echo import echo_server
from support.processes import PYTHON, instrument


@pytest.fixture
def server():
    with echo_server() as url:
        yield url


def run(tmp, script, server, *flags):
    (tmp / "client.py").write_text(textwrap.dedent(script))
    result = instrument("--traces_exporter", "console", *flags, PYTHON, "client.py", server, cwd=tmp)
    assert result.returncode == 0, result.stderr
    answers = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    return answers, console_spans(result.stdout)


CLIENT = """
    import asyncio, json, sys
    import {library} as httpx
    from opentelemetry import trace

    base = sys.argv[1]
    out = {}

    async def main():
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{base}/echo?via=async")).json()["traceparent"]

    with trace.get_tracer("app").start_as_current_span("parent"):
        with httpx.Client() as client:
            out["sync"] = client.get(f"{base}/echo?via=sync").json()["traceparent"]
            out["404"] = client.get(f"{base}/missing?via=sync").status_code
            try:
                client.get("http://127.0.0.1:9/refused")
            except httpx.ConnectError:
                out["refused"] = True
        out["async"] = asyncio.run(main())
        out["module"] = httpx.get(f"{base}/echo?via=module").json()["traceparent"]
    print(json.dumps(out))
"""


# httpx2 is httpx's successor: the same API under another name, instrumented alike.
@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_sync_async_and_module_requests_get_client_spans(tmp, server, library):
    answers, spans = run(tmp, CLIENT.replace("{library}", library), server)
    (parent,) = [s for s in spans if s["name"] == "parent"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert len(clients) == 5
    assert all(s["parent"] == parent["span_id"] and s["trace_id"] == parent["trace_id"] for s in clients)
    by_url = {s["attributes"]["url.full"].strip('"'): s for s in clients}
    for via in ("sync", "async", "module"):
        span = by_url[f"{server}/echo?via={via}"]
        assert answers[via] == f"00-{span['trace_id']}-{span['span_id']}-01", via
        assert span["name"] == "GET" and span["status"] == "UNSET"
        assert span["attributes"]["http.request.method"] == '"GET"'
        assert span["attributes"]["http.response.status_code"] == "200"
        assert span["attributes"]["server.address"] == '"127.0.0.1"'
        assert span["attributes"]["server.port"] == server.rsplit(":", 1)[1]
        assert span["attributes"]["network.protocol.version"] == '"1.1"'
    missing = by_url[f"{server}/missing?via=sync"]
    assert missing["status"] == "ERROR" and missing["attributes"]["error.type"] == '"404"'
    refused = by_url["http://127.0.0.1:9/refused"]
    assert refused["status"].startswith("ERROR: ConnectError")
    assert refused["attributes"]["error.type"] == f'"{library}.ConnectError"'
    assert refused["events"] == ["exception"]


def test_excluded_urls(tmp, server):
    _, spans = run(tmp, CLIENT.replace("{library}", "httpx"), server, "--httpx_excluded_urls", "echo")
    urls = sorted(s["attributes"]["url.full"].strip('"') for s in spans if s["kind"] == "CLIENT")
    assert urls == [f"{server}/missing?via=sync", "http://127.0.0.1:9/refused"]


PROGRAMMATIC = """
    import asyncio, json, sys
    import httpx
    from opentelemetry import context, trace
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
    from ferrotel.instrumentation.httpx import HTTPXClientInstrumentor

    base = sys.argv[1]
    out = {}

    def request_hook(span, request):
        span.set_attribute("hook.request", f"{request.method.decode()} {request.url.path}")

    def response_hook(span, request, response):
        span.set_attribute("hook.response", response.status_code)

    async def async_request_hook(span, request):
        span.set_attribute("hook.async_request", request.url.query.decode())

    async def async_response_hook(span, request, response):
        span.set_attribute("hook.async_response", response.headers["content-type"])

    def client_hook(span, request):
        span.set_attribute("hook.client", True)

    class Relay(httpx.BaseTransport):
        # A transport of the app's own: only instrument_client reaches it.
        def __init__(self):
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request):
            return self.inner.handle_request(request)

    async def fetch(via):
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{base}/echo?via={via}")).status_code

    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(
        request_hook=request_hook,
        response_hook=response_hook,
        async_request_hook=async_request_hook,
        async_response_hook=async_response_hook,
    )
    httpx.get(f"{base}/echo?via=hooks")
    asyncio.run(fetch("async-hooks"))
    for name, key in (("http", _SUPPRESS_HTTP_INSTRUMENTATION_KEY), ("all", _SUPPRESS_INSTRUMENTATION_KEY)):
        token = context.attach(context.set_value(key, True))
        out[name] = httpx.get(f"{base}/echo?via=suppressed-{name}").json()["traceparent"]
        asyncio.run(fetch(f"suppressed-async-{name}"))
        context.detach(token)
    instrumentor.uninstrument()
    httpx.get(f"{base}/echo?via=uninstrumented")

    relayed = httpx.Client(transport=Relay())
    relayed.get(f"{base}/echo?via=own-transport")
    HTTPXClientInstrumentor.instrument_client(relayed, request_hook=client_hook)
    relayed.get(f"{base}/echo?via=instrument-client")
    HTTPXClientInstrumentor.uninstrument_client(relayed)
    relayed.get(f"{base}/echo?via=uninstrument-client")

    instrumentor.instrument(tracer_provider=trace.NoOpTracerProvider())
    httpx.get(f"{base}/echo?via=noop-provider")
    instrumentor.uninstrument()
    print(json.dumps(out))
"""


def test_hooks_client_api_provider_and_suppression(tmp, server):
    answers, spans = run(tmp, PROGRAMMATIC, server, "--disabled_instrumentations", "httpx")
    by_via = {s["attributes"]["url.full"].strip('"').split("via=")[1]: s for s in spans if s["kind"] == "CLIENT"}
    # Suppressed, uninstrumented, the app's own transport before instrument_client and
    # after uninstrument_client, and the no-op provider's: no span.
    assert sorted(by_via) == ["async-hooks", "hooks", "instrument-client"]
    assert answers == {"http": None, "all": None}
    hooks = by_via["hooks"]["attributes"]
    assert hooks["hook.request"] == '"GET /echo"' and hooks["hook.response"] == "200"
    assert "hook.async_request" not in hooks
    async_hooks = by_via["async-hooks"]["attributes"]
    assert async_hooks["hook.async_request"] == '"via=async-hooks"'
    assert async_hooks["hook.async_response"] == '"application/json"'
    assert "hook.request" not in async_hooks
    assert by_via["instrument-client"]["attributes"]["hook.client"] == "true"


CROSSED = """
    import asyncio, json, sys
    import httpx, httpx2
    from ferrotel.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor

    base = sys.argv[1]

    async def main():
        async with httpx2.AsyncClient() as client2, httpx.AsyncClient() as client:
            # Each library's client given to the other's instrumentor, as contrib allows.
            HTTPXClientInstrumentor.instrument_client(client2)
            HTTPX2ClientInstrumentor().instrument_client(client)
            return [(await c.get(f"{base}/echo?via={via}")).status_code for c, via in ((client2, 2), (client, 1))]

    print(json.dumps({"codes": asyncio.run(main())}))
"""


def test_instrument_client_tells_an_async_client_of_either_library(tmp, server):
    answers, spans = run(tmp, CROSSED, server, "--disabled_instrumentations", "httpx,httpx2")
    assert answers == {"codes": [200, 200]}
    urls = [s["attributes"]["url.full"].strip('"') for s in spans if s["kind"] == "CLIENT"]
    assert urls == [f"{server}/echo?via=2", f"{server}/echo?via=1"]


LISTINGS = """
    import json, sys
    import httpx
    from ferrotel.instrumentation.httpx import HTTPXClientInstrumentor

    base = sys.argv[1]
    listed = 0
    items = httpx.Headers.items

    def counted(headers):
        global listed
        listed += 1
        return items(headers)

    httpx.Headers.items = counted

    def listings():
        global listed
        listed = 0
        with httpx.Client() as client:
            client.get(f"{base}/echo?via=listed", headers={"x-custom": "a"})
        return listed

    out = {"traced": listings()}
    HTTPXClientInstrumentor().uninstrument()
    out["bare"] = listings()
    print(json.dumps(out))
"""


@pytest.mark.parametrize("captured", [False, True])
def test_headers_are_listed_only_to_capture_them(tmp, server, captured):
    # Listing an httpx request's and response's headers decodes each one: a third of what
    # the instrumentation cost per request before it was done only for capture.
    flags = ["--instrumentation_http_capture_headers_client_request", "x-custom"] if captured else []
    flags += ["--instrumentation_http_capture_headers_client_response", "content-type"] if captured else []
    answers, spans = run(tmp, LISTINGS, server, *flags)
    (client,) = [s for s in spans if s["kind"] == "CLIENT"]
    attributes = client["attributes"]
    if captured:
        assert answers["traced"] == answers["bare"] + 2
        assert attributes["http.request.header.x-custom"] == '["a"]'
        assert attributes["http.response.header.content-type"] == '["application/json"]'
    else:
        assert answers["traced"] == answers["bare"]
        assert not any(key.startswith(("http.request.header.", "http.response.header.")) for key in attributes)
