"""Run with `ferrotel` or `upstream`: a Flask app instrumented programmatically by upstream's
contrib instrumentors, on that side's TracerProvider. It calls itself with requests (a
chained call, a route that raises, a 404) and prints the spans it recorded as JSON, in a
shape both SDKs can be compared in."""

import json
import sys
import threading

import requests
from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from werkzeug.serving import make_server

SIDE = sys.argv[1]

if SIDE == "ferrotel":
    from ferrotel.trace import TracerProvider
    from ferrotel.trace.export import InMemorySpanExporter, SimpleSpanProcessor

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))

    def finished():
        return [
            {
                "id": s["span_id"],
                "parent": s["parent_span_id"],
                "trace": s["trace_id"],
                "name": s["name"],
                "kind": s["kind"],
                "attributes": s["attributes"],
                "status": list(s["status"]),
                "events": [(e["name"], e["attributes"]) for e in s["events"]],
            }
            for s in memory.get_finished_spans()
        ]
else:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))

    def finished():
        return [
            {
                "id": s.context.span_id,
                "parent": s.parent.span_id if s.parent else None,
                "trace": s.context.trace_id,
                "name": s.name,
                "kind": s.kind.name,
                "attributes": dict(s.attributes),
                "status": [s.status.status_code.name, s.status.description or ""],
                "events": [(e.name, dict(e.attributes)) for e in s.events],
            }
            for s in memory.get_finished_spans()
        ]


trace.set_tracer_provider(provider)
RequestsInstrumentor().instrument()
app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)
server = make_server("127.0.0.1", 0, app, threaded=True)
PORT = server.server_port
BASE = f"http://127.0.0.1:{PORT}"


@app.route("/hello/<name>")
def hello(name):
    return f"hello {name}"


@app.route("/chain")
def chain():
    return requests.get(f"{BASE}/hello/chained", timeout=5).text


@app.route("/boom")
def boom():
    raise ValueError("exploded")


threading.Thread(target=server.serve_forever, daemon=True).start()
statuses = [requests.get(f"{BASE}{path}", timeout=5).status_code for path in ("/chain", "/boom", "/missing")]
server.shutdown()
print(json.dumps({"port": PORT, "statuses": statuses, "spans": finished()}, default=list))
