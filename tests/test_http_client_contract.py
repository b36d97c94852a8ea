"""Upstream's instrumentation contract on the requests, urllib3 and urllib built-ins, each
asserted on the spans that arrive: `request_hook` / `response_hook` with upstream's
arguments, `tracer_provider`, and both suppression context keys."""

import textwrap

import pytest
from support.console import console_spans
from support.echo import echo_server
from support.processes import PYTHON, instrument


@pytest.fixture
def server():
    with echo_server() as url:
        yield url


SCRIPT = """
    import json, sys, urllib.request
    import requests, urllib3
    from opentelemetry import context, trace
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
    from ferrotel.instrumentation.requests import RequestsInstrumentor
    from ferrotel.instrumentation.urllib import URLLibInstrumentor
    from ferrotel.instrumentation.urllib3 import URLLib3Instrumentor

    base = sys.argv[1]

    def requests_request(span, request):
        span.set_attribute("hook.request", type(request).__name__ + " " + request.path_url)

    def requests_response(span, request, response):
        span.set_attribute("hook.response", f"{type(request).__name__} {response.status_code}")

    def urllib3_request(span, pool, info):
        span.set_attribute("hook.request", f"{type(pool).__name__} {info.method} {info.url}")

    def urllib3_response(span, pool, response):
        span.set_attribute("hook.response", f"{type(pool).__name__} {response.status}")

    def urllib_request(span, request):
        span.set_attribute("hook.request", type(request).__name__ + " " + request.selector)

    def urllib_response(span, request, response):
        span.set_attribute("hook.response", f"{type(request).__name__} {response.status}")

    def call_all(via):
        requests.get(f"{base}/echo?via=requests-{via}")
        urllib3.PoolManager().request("GET", f"{base}/echo?via=urllib3-{via}")
        urllib.request.urlopen(f"{base}/echo?via=urllib-{via}").read()

    instrumentors = [
        (RequestsInstrumentor(), requests_request, requests_response),
        (URLLib3Instrumentor(), urllib3_request, urllib3_response),
        (URLLibInstrumentor(), urllib_request, urllib_response),
    ]
    for instrumentor, request_hook, response_hook in instrumentors:
        instrumentor.instrument(request_hook=request_hook, response_hook=response_hook)
    call_all("hooks")
    for name, key in (("http", _SUPPRESS_HTTP_INSTRUMENTATION_KEY), ("all", _SUPPRESS_INSTRUMENTATION_KEY)):
        token = context.attach(context.set_value(key, True))
        call_all(f"suppressed-{name}")
        context.detach(token)
    for instrumentor, _, _ in instrumentors:
        instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=trace.NoOpTracerProvider())
    call_all("noop-provider")
    print(json.dumps({"done": True}))
"""


def test_hooks_provider_and_suppression_keys(tmp, server):
    (tmp / "client.py").write_text(textwrap.dedent(SCRIPT))
    flags = ["--disabled_instrumentations", "requests,urllib3,urllib"]
    result = instrument("--traces_exporter", "console", *flags, PYTHON, "client.py", server, cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert '{"done": true}' in result.stdout.splitlines()
    spans = [s for s in console_spans(result.stdout) if s["kind"] == "CLIENT"]
    by_via = {s["attributes"]["url.full"].strip('"').split("via=")[1]: s["attributes"] for s in spans}
    # Suppressed calls and the no-op provider's: no span. urllib3 beneath requests adds none.
    assert sorted(by_via) == ["requests-hooks", "urllib-hooks", "urllib3-hooks"]
    port = server.rsplit(":", 1)[1]
    assert by_via["requests-hooks"]["hook.request"] == '"PreparedRequest /echo?via=requests-hooks"'
    assert by_via["requests-hooks"]["hook.response"] == '"PreparedRequest 200"'
    assert by_via["urllib3-hooks"]["hook.request"] == f'"HTTPConnectionPool GET {server}/echo?via=urllib3-hooks"'
    assert by_via["urllib3-hooks"]["hook.response"] == '"HTTPConnectionPool 200"'
    assert by_via["urllib-hooks"]["hook.request"] == '"Request /echo?via=urllib-hooks"'
    assert by_via["urllib-hooks"]["hook.response"] == '"Request 200"'
    assert all(a["server.port"] == port for a in by_via.values())
