"""A contrib instrumentor running on ferrotel emits the stable attribute names, as ferrotel's
built-ins do, unless the user chose otherwise with OTEL_SEMCONV_STABILITY_OPT_IN."""

import json
import textwrap

from support.processes import FERROTEL, clean_env, run

# ferrotel's own `requests` built-in is disabled so that upstream's contrib instrumentor,
# instrumented by the app itself, is the one recording.
APP = textwrap.dedent(
    """
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import requests
    from opentelemetry import trace
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from ferrotel.trace.export import InMemorySpanExporter, SimpleSpanProcessor

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    memory = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(memory))
    RequestsInstrumentor().instrument()
    requests.get(f"http://127.0.0.1:{server.server_port}/")
    [span] = memory.get_finished_spans()
    print(json.dumps(sorted(span["attributes"])))
    """
)


def attribute_names(python, **env):
    result = run(
        FERROTEL,
        "instrument",
        "--traces_exporter",
        "none",
        "--metrics_exporter",
        "none",
        "--logs_exporter",
        "none",
        "--disabled_instrumentations",
        "requests",
        python,
        "-c",
        APP,
        env=clean_env(**env),
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_contrib_instrumentors_emit_stable_names_unless_the_user_chose(contrib_python):
    names = attribute_names(contrib_python)
    assert {"http.request.method", "http.response.status_code", "url.full"} <= names, names
    assert "http.method" not in names and "http.url" not in names, names
    duplicated = attribute_names(contrib_python, OTEL_SEMCONV_STABILITY_OPT_IN="http/dup")
    assert {"http.request.method", "http.method", "http.url"} <= duplicated, duplicated
