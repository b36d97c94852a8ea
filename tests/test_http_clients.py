"""ferrotel's built-in HTTP client instrumentations (requests, urllib3, urllib) against a
real local server: one CLIENT span per request (requests over urllib3 is not counted
twice), the propagation header the server received is that span's, attributes, status
rules, failures."""

import json
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.console import console_spans
from support.processes import PYTHON, clean_env, instrument


class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/missing"):
            self.send_error(404)
            return
        body = json.dumps({"traceparent": self.headers.get("traceparent")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


CLIENT = textwrap.dedent(
    """
    import json, sys, urllib.error, urllib.request
    import requests, urllib3
    from opentelemetry import trace

    base = sys.argv[1]
    out = {}
    with trace.get_tracer("client").start_as_current_span("parent"):
        out["requests"] = requests.get(f"{base}/echo?via=requests").json()["traceparent"]
        reply = urllib3.PoolManager().request("GET", f"{base}/echo?via=urllib3")
        out["urllib3"] = json.loads(reply.data)["traceparent"]
        out["urllib"] = json.loads(urllib.request.urlopen(f"{base}/echo?via=urllib").read())["traceparent"]
        out["404"] = requests.get(f"{base}/missing?via=requests").status_code
        try:
            urllib.request.urlopen(f"{base}/missing?via=urllib")
        except urllib.error.HTTPError as error:
            out["urllib 404"] = error.code
        try:
            requests.get("http://127.0.0.1:9/refused", timeout=2)
        except requests.ConnectionError:
            out["refused"] = True
    print(json.dumps(out))
    """
)


def run_client(tmp, server, *flags, env=None):
    (tmp / "client.py").write_text(CLIENT)
    result = instrument("--traces_exporter", "console", *flags, PYTHON, "client.py", server, cwd=tmp, env=env)
    assert result.returncode == 0, result.stderr
    answers = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    return answers, console_spans(result.stdout)


def test_one_client_span_per_request_and_its_context_reaches_the_server(tmp, server):
    answers, spans = run_client(tmp, server)
    (parent,) = [s for s in spans if s["name"] == "parent"]
    clients = [s for s in spans if s["kind"] == "CLIENT"]
    assert len(clients) == 6, [s["attributes"].get("url.full") for s in clients]
    assert all(s["parent"] == parent["span_id"] and s["trace_id"] == parent["trace_id"] for s in clients)
    by_url = {s["attributes"]["url.full"].strip('"'): s for s in clients}
    for via in ("requests", "urllib3", "urllib"):
        span = by_url[f"{server}/echo?via={via}"]
        assert answers[via] == f"00-{span['trace_id']}-{span['span_id']}-01", via
        assert span["name"] == "GET" and span["status"] == "UNSET"
        assert span["attributes"]["http.request.method"] == '"GET"'
        assert span["attributes"]["http.response.status_code"] == "200"
        assert span["attributes"]["server.address"] == '"127.0.0.1"'
        assert span["attributes"]["server.port"] == server.rsplit(":", 1)[1]
    for url in (f"{server}/missing?via=requests", f"{server}/missing?via=urllib"):
        missing = by_url[url]
        assert missing["status"] == "ERROR" and missing["attributes"]["error.type"] == '"404"', url
    refused = by_url["http://127.0.0.1:9/refused"]
    assert refused["status"].startswith("ERROR: ConnectionError")
    assert refused["attributes"]["error.type"] == '"requests.exceptions.ConnectionError"'
    assert refused["events"] == ["exception"]


def test_excluded_and_disabled(tmp, server):
    _, spans = run_client(tmp, server, "--requests_excluded_urls", "echo", "--disabled_instrumentations", "urllib")
    urls = sorted(s["attributes"]["url.full"].strip('"') for s in spans if s["kind"] == "CLIENT")
    # requests' echo is excluded, and urllib3 beneath it stays quiet; urllib is disabled.
    assert urls == [f"{server}/echo?via=urllib3", f"{server}/missing?via=requests", "http://127.0.0.1:9/refused"]


def test_captured_client_headers(tmp, server):
    env = clean_env(
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST="traceparent",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE="content-length",
    )
    answers, spans = run_client(tmp, server, env=env)
    (echo,) = [s for s in spans if s["attributes"].get("url.full") == f'"{server}/echo?via=requests"']
    assert echo["attributes"]["http.request.header.traceparent"] == f'["{answers["requests"]}"]'
    assert echo["attributes"]["http.response.header.content-length"].startswith('["')
