"""The seed documents' programs on ferrotel: seed 002's manually instrumented Flask server
with only its provider imports changed, and upstream's own `opentelemetry-instrument`
launcher picking up ferrotel through its distro and configurator entry points."""

import signal
import subprocess
import textwrap

from support.console import console_spans
from support.processes import clean_env, default_signals, free_port, wait_http

# Seed 002's server_manual.py; the SDK imports point at ferrotel, and the OTLP exporter
# (not in this build yet) is left out.
SERVER_MANUAL = textwrap.dedent(
    """
    import sys
    from flask import Flask, request

    from opentelemetry.instrumentation.wsgi import collect_request_attributes
    from opentelemetry.propagate import extract
    from ferrotel.trace import TracerProvider
    from ferrotel.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
    )

    from opentelemetry.trace import (
        SpanKind,
        get_tracer_provider,
        set_tracer_provider,
    )

    app = Flask(__name__)

    set_tracer_provider(TracerProvider())
    tracer = get_tracer_provider().get_tracer(__name__)

    get_tracer_provider().add_span_processor(
        BatchSpanProcessor(ConsoleSpanExporter())
    )


    @app.route("/server_request")
    def server_request():
        with tracer.start_as_current_span(
            "server_request",
            context=extract(request.headers),
            kind=SpanKind.SERVER,
            attributes=collect_request_attributes(request.environ),
        ):
            print(request.args.get("param"))
            return "served"


    if __name__ == "__main__":
        app.run(port=int(sys.argv[1]))
    """
)

TRACEPARENT = "00-a9c3b99a95cc045e573e163c3ac80a77-d99d251a8caecd06-01"


def test_seed_002_manual_server_on_ferrotels_provider(contrib_python, tmp):
    (tmp / "server_manual.py").write_text(SERVER_MANUAL)
    port = free_port()
    env = clean_env(OTEL_SERVICE_NAME="manual-instrument-service")
    server = subprocess.Popen(
        [str(contrib_python), "server_manual.py", str(port)],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,  # stopped by SIGINT, which a background job ignores
    )
    try:
        import urllib.request

        wait_http(f"http://127.0.0.1:{port}/server_request?param=warmup")
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/server_request?param=manual", headers={"traceparent": TRACEPARENT}
        )
        assert urllib.request.urlopen(req, timeout=5).read() == b"served"
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    spans = [s for s in console_spans(out) if s["trace_id"] == "a9c3b99a95cc045e573e163c3ac80a77"]
    (span,) = spans
    assert span["name"] == "server_request" and span["kind"] == "SERVER"
    assert span["parent"] == "d99d251a8caecd06"
    assert span["attributes"]["http.method"] == '"GET"'
    assert span["attributes"]["http.target"] == '"/server_request?param=manual"'
    assert 'service.name="manual-instrument-service"' in out
    assert "manual\n" in out


APP = textwrap.dedent(
    """
    from opentelemetry import trace
    from ferrotel.trace import TracerProvider

    assert isinstance(trace.get_tracer_provider(), TracerProvider), trace.get_tracer_provider()
    with trace.get_tracer("app").start_as_current_span("via-upstream-launcher"):
        pass
    """
)


def test_upstream_launcher_runs_on_ferrotel(contrib_python, tmp):
    (tmp / "app.py").write_text(APP)
    launcher = contrib_python.parent / "opentelemetry-instrument"
    result = subprocess.run(
        [str(launcher), "--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
        + [str(contrib_python), "app.py"],
        cwd=tmp,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert [s["name"] for s in console_spans(result.stdout)] == ["via-upstream-launcher"], result.stdout
