"""ferrotel's built-in Flask instrumentation, through a real server under `ferrotel
instrument`: span names and kinds, stable HTTP attributes (and the old ones with
http/dup), status rules, one exception event, incoming trace context, streamed responses,
excluded URLs. Spans read back from the console exporter."""

import os
import signal
import subprocess
import textwrap
import time
import urllib.error
import urllib.request

from support.console import console_spans
from support.processes import FERROTEL, PYTHON, clean_env, default_signals, free_port, instrument, wait_http

APP = textwrap.dedent(
    """
    import sys, time
    from flask import Flask, Response

    app = Flask(__name__)

    @app.route("/hello/<name>")
    def hello(name):
        return f"hello {name}"

    @app.route("/boom")
    def boom():
        raise RuntimeError("exploded")

    @app.route("/stream")
    def stream():
        def chunks():
            for i in range(3):
                time.sleep(0.15)
                yield f"{i}\\n"
        return Response(chunks())

    @app.route("/healthz")
    def healthz():
        return "ok"

    app.run(port=int(sys.argv[1]), threaded=True)
    """
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def get(url, headers=None):
    request = urllib.request.Request(url, headers={"User-Agent": "ferrotel-test", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def serve_and_collect(tmp, paths, *flags, env=None):
    (tmp / "app.py").write_text(APP)
    port = free_port()
    server = subprocess.Popen(
        [FERROTEL, "instrument", "--traces_exporter", "console", *flags, PYTHON, "app.py", str(port)],
        cwd=tmp,
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,  # stopped by SIGINT, which a background job ignores
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        answers = {path: get(f"http://127.0.0.1:{port}{path}", headers) for path, headers in paths}
        # A request's span ends when the server closes the response, just after the client
        # has it; let the server's daemon threads get there before stopping it.
        time.sleep(0.5)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        out, err = server.communicate(timeout=30)
    return port, answers, [s for s in console_spans(out) if s["kind"] == "SERVER"], err


def test_server_spans(tmp):
    paths = [("/hello/ada", {"traceparent": TRACEPARENT}), ("/missing", None), ("/boom", None)]
    port, answers, spans, err = serve_and_collect(tmp, paths)
    assert [answers[p][0] for p, _ in paths] == [200, 404, 500]
    by_path = {s["attributes"].get("url.path"): s for s in spans}

    hello = by_path['"/hello/ada"']
    assert hello["name"] == "GET /hello/<name>" and hello["kind"] == "SERVER"
    assert hello["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and hello["parent"] == "b7ad6b7169203331"
    assert hello["status"] == "UNSET"
    assert hello["attributes"] == {
        "http.request.method": '"GET"',
        "url.scheme": '"http"',
        "url.path": '"/hello/ada"',
        "server.address": '"127.0.0.1"',
        "server.port": str(port),
        "client.address": '"127.0.0.1"',
        "client.port": hello["attributes"]["client.port"],
        "user_agent.original": '"ferrotel-test"',
        "network.protocol.version": '"1.1"',
        "http.route": '"/hello/<name>"',
        "http.response.status_code": "200",
    }

    missing = by_path['"/missing"']
    assert missing["name"] == "GET" and missing["status"] == "UNSET"
    assert missing["attributes"]["http.response.status_code"] == "404" and "http.route" not in missing["attributes"]

    boom = by_path['"/boom"']
    assert boom["name"] == "GET /boom"
    assert boom["status"] == "ERROR: RuntimeError: exploded"
    assert boom["events"] == ["exception"]
    assert boom["attributes"]["error.type"] == '"RuntimeError"'
    assert boom["attributes"]["http.response.status_code"] == "500"


def test_a_streamed_response_is_timed_to_its_last_chunk(tmp):
    _, answers, spans, _ = serve_and_collect(tmp, [("/stream", None)])
    assert answers["/stream"] == (200, "0\n1\n2\n")
    (stream,) = [s for s in spans if s["attributes"].get("url.path") == '"/stream"']
    assert stream["duration_ms"] >= 400, stream


def test_duplicate_semconv_and_excluded_urls(tmp):
    env = clean_env(OTEL_SEMCONV_STABILITY_OPT_IN="http/dup", OTEL_PYTHON_FLASK_EXCLUDED_URLS="healthz,ignored")
    _, _, spans, _ = serve_and_collect(tmp, [("/hello/x?y=1", None)], env=env)
    assert [s["attributes"]["url.path"] for s in spans] == ['"/hello/x"'], "healthz is excluded"
    attrs = spans[0]["attributes"]
    assert attrs["http.method"] == '"GET"' and attrs["http.target"] == '"/hello/x?y=1"'
    assert attrs["http.status_code"] == "200" and attrs["url.query"] == '"y=1"'


def test_disabled_flask_records_nothing(tmp):
    _, answers, spans, _ = serve_and_collect(tmp, [("/hello/x", None)], "--disabled_instrumentations", "flask")
    assert answers["/hello/x"][0] == 200 and spans == []


def test_the_built_in_wins_over_contrib_flask(contrib_python, tmp):
    (tmp / "app.py").write_text("import flask\n")
    launcher = contrib_python.parent / "ferrotel"
    result = subprocess.run(
        [str(launcher), "instrument", "--log_level", "debug", str(contrib_python), "app.py"],
        cwd=tmp,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.splitlines()
    assert "ferrotel: debug: instrumentor 'flask' (ferrotel) loaded" in lines, result.stderr
    skipped = "ferrotel: debug: instrumentor 'flask' (opentelemetry-instrumentation-flask) skipped: "
    assert skipped + "ferrotel's built-in instrumentation is used instead" in lines


def test_captured_headers_with_sanitised_values(tmp):
    env = clean_env(
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="x-request-id,Authorization",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE="content-.*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS="authorization",
    )
    headers = {"X-Request-ID": "abc-123", "Authorization": "Bearer s3cret"}
    _, _, spans, _ = serve_and_collect(tmp, [("/hello/x", headers)], env=env)
    (hello,) = [s for s in spans if s["attributes"].get("url.path") == '"/hello/x"']
    attrs = hello["attributes"]
    assert attrs["http.request.header.x-request-id"] == '["abc-123"]'
    assert attrs["http.request.header.authorization"] == '["[REDACTED]"]'
    assert attrs["http.response.header.content-type"] == '["text/html; charset=utf-8"]'
    assert attrs["http.response.header.content-length"] == '["7"]'
    assert not any("user-agent" in k for k in attrs)


LEAK_CHECK = textwrap.dedent(
    """
    import gc, io, weakref
    from flask import Flask

    app = Flask(__name__)

    @app.route("/hello")
    def hello():
        return "hello"

    def start_response(status, headers, exc_info=None):
        pass

    def request():
        environ = {
            "REQUEST_METHOD": "GET", "PATH_INFO": "/hello", "SERVER_NAME": "localhost",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
        }
        body = app(environ, start_response)
        b"".join(body)
        body.close()
        return weakref.ref(body)

    responses = [request() for _ in range(50)]
    gc.collect()
    print("responses alive:", sum(r() is not None for r in responses))
    """
)


def test_a_closed_response_is_freed_with_its_request(tmp):
    """The span's end rides on the response's `close`, which wraps the response's own bound
    `close`: a cycle through the response's `__dict__` that the collector must be able to
    see, or every response leaks with its request and span."""
    (tmp / "leak_check.py").write_text(LEAK_CHECK)
    out = subprocess.run(
        [FERROTEL, "instrument", "--traces_exporter", "console", PYTHON, "leak_check.py"],
        cwd=tmp,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "responses alive: 0" in out
    assert len([s for s in console_spans(out) if s["kind"] == "SERVER"]) == 50


UNCLOSED_AT_EXIT = textwrap.dedent(
    """
    import os

    import flask

    app = flask.Flask(__name__)
    app.route("/last/<n>")(lambda n: n)
    client = app.test_client()
    # Test clients drop a response without closing it: each span ends when its response is
    # collected, and these two are the last thing the process does.
    assert client.get("/last/1").status_code == 200
    assert client.get("/last/2").data == b"2"
    # A forked child has copies of them: they are the parent's to end, not the child's.
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    """
)


def test_responses_never_closed_are_exported_at_exit(tmp):
    """An unclosed response sits in a cycle with the end riding on it, so only a collection
    ends its span; the exit flush collects first while any is open, or those spans would be
    lost at finalization."""
    (tmp / "app.py").write_text(UNCLOSED_AT_EXIT)
    result = instrument("--traces_exporter", "console", "--metrics_exporter", "none", PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    paths = sorted(s["attributes"]["url.path"] for s in console_spans(out) if s["kind"] == "SERVER")
    assert paths == ['"/last/1"', '"/last/2"'], out
