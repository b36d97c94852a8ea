"""Every plugin a user brings from the OpenTelemetry ecosystem works on ferrotel's providers:
Python span processors and exporters (user-written, contrib's baggage processor, the SDK's
own processors), exporters, samplers, id generators, resource detectors and propagators
found by entry point, and ferrotel's built-ins recording through another SDK's provider.
Real packages from the registry (tests/open-sdk-requirements.txt), real servers."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.dist import pip_install, user_venv
from support.processes import clean_env
from support.wheels import build_wheel

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def sdk_python(open_sdk_python, tmp_path_factory):
    """The open-SDK venv with a throwaway package of plugins (tests/open_sdk/plugins.py)
    installed by entry point."""
    plugins = build_wheel(
        tmp_path_factory.mktemp("open-sdk-plugins"),
        "ferrotel-test-plugins",
        "1.0",
        {"ferrotel_test_plugins.py": (HERE / "open_sdk" / "plugins.py").read_text()},
        entry_points={
            "opentelemetry_traces_sampler": {"every_other": "ferrotel_test_plugins:every_other"},
            "opentelemetry_id_generator": {"counting": "ferrotel_test_plugins:Counting"},
            "opentelemetry_resource_detector": {"deployment": "ferrotel_test_plugins:Deployment"},
            "opentelemetry_logs_exporter": {"lines": "ferrotel_test_plugins:LinesExporter"},
        },
    )
    pip_install(open_sdk_python, "--no-deps", plugins)
    return open_sdk_python


def run(python, source, *args, env=None, instrument=False, timeout=60):
    """Runs `source` with the venv's Python (under `ferrotel instrument` if asked); its
    stdout's last line is JSON."""
    script = Path(python).parent.parent / "app.py"
    script.write_text(source)
    command = [str(python), str(script), *args]
    if instrument:
        command = [str(Path(python).parent / "ferrotel"), "instrument", *command]
    result = subprocess.run(command, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


# A program both SDKs run: a processor that adds an attribute when spans start and an
# exporter that writes down every field a processor or exporter reads.
RECORDED = """
import json, sys
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

if sys.argv[1] == "ferrotel":
    from ferrotel.trace import TracerProvider
    from ferrotel.trace.export import BatchSpanProcessor
else:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

class Tenant(SpanProcessor):
    def on_start(self, span, parent_context=None):
        span.set_attribute("tenant", "acme")

class Recording(SpanExporter):
    def __init__(self):
        self.spans = []
    def export(self, spans):
        for s in spans:
            assert isinstance(s, ReadableSpan), type(s)
            as_json = json.loads(s.to_json())
            self.spans.append({
                "name": s.name, "kind": s.kind.name, "trace_id": s.context.trace_id, "span_id": s.context.span_id,
                "parent": s.parent.span_id if s.parent else None,
                "remote_parent": s.parent.is_remote if s.parent else None,
                "sampled": s.context.trace_flags.sampled, "attributes": dict(s.attributes),
                "dropped_attributes": s.dropped_attributes, "dropped_events": s.dropped_events,
                "dropped_links": s.dropped_links,
                "events": [(e.name, dict(e.attributes), e.timestamp >= s.start_time) for e in s.events],
                "links": [(l.context.span_id, dict(l.attributes)) for l in s.links],
                "status": (s.status.status_code.name, s.status.description),
                "scope": (s.instrumentation_scope.name, s.instrumentation_scope.version,
                          s.instrumentation_scope.schema_url, dict(s.instrumentation_scope.attributes or {})),
                "service": s.resource.attributes["service.name"],
                "timed": s.end_time >= s.start_time > 0,
                "json_keys": sorted(as_json),
            })
        return SpanExportResult.SUCCESS

provider = TracerProvider()
simple, batched = Recording(), Recording()
provider.add_span_processor(Tenant())
provider.add_span_processor(SimpleSpanProcessor(simple))
provider.add_span_processor(BatchSpanProcessor(batched))
schema = "https://opentelemetry.io/schemas/1.21.0"
tracer = provider.get_tracer("shop", "2.0", schema_url=schema, attributes={"team": "a"})
with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER, attributes={"items": 3}) as root:
    root.add_event("validated", {"ok": True})
    with tracer.start_as_current_span("charge", links=[trace.Link(root.get_span_context(), {"why": "retry"})]) as child:
        child.set_status(trace.Status(trace.StatusCode.ERROR, "declined"))
provider.force_flush()
print(json.dumps({"simple": simple.spans, "batched": batched.spans}))
"""


def comparable(spans):
    """The fields, with the ids replaced by what they refer to."""
    by_id = {s["span_id"]: s["name"] for s in spans}
    out = []
    for s in spans:
        s = dict(s)
        s["parent"] = by_id.get(s.pop("parent"))
        s["links"] = [(by_id.get(span_id), attrs) for span_id, attrs in s["links"]]
        del s["trace_id"], s["span_id"]
        out.append(s)
    return out


def test_python_processors_and_exporters_get_what_the_sdk_gives_them(sdk_python):
    ferrotel, _ = run(sdk_python, RECORDED, "ferrotel")
    upstream, _ = run(sdk_python, RECORDED, "upstream")
    assert comparable(ferrotel["simple"]) == comparable(upstream["simple"])
    # ferrotel's own batch processor hands the Python exporter the same, from its worker.
    assert comparable(ferrotel["batched"]) == comparable(upstream["simple"])
    [charge, checkout] = ferrotel["simple"]
    assert checkout["attributes"] == {"items": 3, "tenant": "acme"}
    assert charge["status"] == ["ERROR", "declined"] and charge["parent"] == checkout["span_id"]
    assert checkout["scope"] == ["shop", "2.0", "https://opentelemetry.io/schemas/1.21.0", {"team": "a"}]


BAGGAGE = """
import json
from opentelemetry import baggage, context, trace
from opentelemetry.processor.baggage import ALLOW_ALL_BAGGAGE_KEYS, BaggageSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from ferrotel.trace import TracerProvider

provider = TracerProvider()
provider.add_span_processor(BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS))
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
token = context.attach(baggage.set_baggage("user.id", "u-7"))
with provider.get_tracer("t").start_as_current_span("handle"):
    pass
context.detach(token)
print(json.dumps([dict(s.attributes) for s in memory.get_finished_spans()]))
"""


def test_contribs_baggage_processor_sets_baggage_on_spans(sdk_python):
    spans, _ = run(sdk_python, BAGGAGE)
    assert spans == [{"user.id": "u-7"}]


class ZipkinReceiver:
    """Zipkin's v2 span API, as much as an exporter needs: POST /api/v2/spans."""

    def __init__(self):
        self.spans = []
        received = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.extend(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2/spans"


TRACED = """
import json, requests
from opentelemetry import trace
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("parent", attributes={"k": "v"}) as parent:
    with tracer.start_as_current_span("child", kind=trace.SpanKind.CLIENT):
        pass
ctx = parent.get_span_context()
print(json.dumps([format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")]))
"""


def test_an_exporter_named_by_entry_point_zipkin_json(sdk_python):
    zipkin = ZipkinReceiver()
    env = clean_env(
        OTEL_SERVICE_NAME="zipkinned",
        OTEL_TRACES_EXPORTER="zipkin_json",
        OTEL_METRICS_EXPORTER="none",
        OTEL_EXPORTER_ZIPKIN_ENDPOINT=zipkin.endpoint,
    )
    (trace_id, parent_id), stderr = run(sdk_python, TRACED, env=env, instrument=True)
    zipkin.server.shutdown()
    assert "warning" not in stderr, stderr
    spans = {s["name"]: s for s in zipkin.spans}
    assert set(spans) == {"parent", "child"}
    assert spans["parent"]["traceId"] == trace_id and spans["parent"]["id"] == parent_id
    assert spans["child"]["parentId"] == parent_id and spans["child"]["kind"] == "CLIENT"
    assert spans["parent"]["tags"]["k"] == "v"
    assert spans["parent"]["localEndpoint"]["serviceName"] == "zipkinned"


def test_an_unknown_exporter_name_gets_one_warning_naming_what_is_installed(sdk_python):
    env = clean_env(OTEL_TRACES_EXPORTER="zipkin_jsn", OTEL_METRICS_EXPORTER="none")
    _, stderr = run(sdk_python, TRACED, env=env, instrument=True)
    [line] = [line for line in stderr.splitlines() if "zipkin_jsn" in line]
    assert line.startswith("ferrotel: warning: OTEL_TRACES_EXPORTER=zipkin_jsn: no opentelemetry_traces_exporter")
    assert "installed: console, zipkin_json" in line


IDS = """
import json, time
from opentelemetry import trace
from ferrotel.trace import TracerProvider
from ferrotel.trace.export import InMemorySpanExporter, SimpleSpanProcessor
provider = TracerProvider()
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
for name in ("one", "two", "three", "four"):
    provider.get_tracer("t").start_span(name).end()
print(json.dumps({"now": int(time.time()), "sampler": provider.sampler_description, "spans": [
    {"name": s["name"], "trace_id": s["trace_id"], "span_id": s["span_id"], "attributes": s["attributes"],
     "resource": s["resource"]} for s in memory.get_finished_spans()]}))
"""


def test_a_sampler_and_an_id_generator_from_entry_points(sdk_python):
    env = clean_env(
        OTEL_TRACES_SAMPLER="every_other",
        OTEL_TRACES_SAMPLER_ARG="half",
        OTEL_PYTHON_ID_GENERATOR="counting",
    )
    out, stderr = run(sdk_python, IDS, env=env)
    assert stderr == ""
    assert out["sampler"] == "EveryOther(half)"
    assert [s["name"] for s in out["spans"]] == ["one", "three"]
    assert all(s["attributes"] == {"sampled.by": "every_other(half)"} for s in out["spans"])
    # Trace id then span id per span, counted by the generator (dropped spans took theirs).
    assert [(s["trace_id"] - 0xABC0000000000000000000000, s["span_id"]) for s in out["spans"]] == [(1, 2), (5, 6)]


def test_native_xray_ids_start_with_the_time(sdk_python):
    out, _ = run(sdk_python, IDS, env=clean_env(OTEL_PYTHON_ID_GENERATOR="xray"))
    for span in out["spans"]:
        assert abs((span["trace_id"] >> 96) - out["now"]) <= 5, hex(span["trace_id"])


def test_resource_detectors_of_other_packages(sdk_python):
    env = clean_env(OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="otel,deployment,containerid")
    out, stderr = run(sdk_python, IDS, env=env)
    assert stderr == ""
    resource = out["spans"][0]["resource"]
    assert resource["deployment.environment.name"] == "open-sdk-test"
    # The container id detector finds what it finds here, exactly as when run by itself.
    expected, _ = run(
        sdk_python,
        "import json\nfrom opentelemetry.resource.detector.containerid import ContainerResourceDetector\n"
        "print(json.dumps(dict(ContainerResourceDetector().detect().attributes)))",
    )
    assert {k: resource[k] for k in expected} == expected


XRAY_CLIENT = """
import json, threading, requests
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry import trace
seen = []
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        seen.append(self.headers.get("X-Amzn-Trace-Id"))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
with trace.get_tracer("t").start_as_current_span("outer") as outer:
    requests.get(f"http://127.0.0.1:{server.server_address[1]}/")
print(json.dumps({"header": seen[0], "trace_id": format(outer.get_span_context().trace_id, "032x")}))
"""


def test_the_xray_propagator_and_ids_on_an_instrumented_client(sdk_python):
    env = clean_env(
        OTEL_PROPAGATORS="xray",
        OTEL_PYTHON_ID_GENERATOR="xray",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
    )
    out, stderr = run(sdk_python, XRAY_CLIENT, env=env, instrument=True)
    trace_id = out["trace_id"]
    root, parent, sampled = out["header"].split(";")
    assert root == f"Root=1-{trace_id[:8]}-{trace_id[8:]}", out
    assert parent.startswith("Parent=") and len(parent) == len("Parent=") + 16
    assert sampled == "Sampled=1"


THROUGH_THE_SDK = """
import json, threading, time
import flask, requests
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

provider = TracerProvider()
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)
from ferrotel.instrumentation.flask import FlaskInstrumentor
from ferrotel.instrumentation.requests import RequestsInstrumentor
from ferrotel.instrumentation.sqlite3 import SQLite3Instrumentor
FlaskInstrumentor().instrument()
RequestsInstrumentor().instrument()
SQLite3Instrumentor().instrument()
import sqlite3

app = flask.Flask("shop")
@app.route("/items/<int:item>")
def item(item):
    return {"item": item}
from werkzeug.serving import make_server
server = make_server("127.0.0.1", 0, app, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
response = requests.get(f"http://127.0.0.1:{server.server_port}/items/7")
server.shutdown()
sqlite3.connect(":memory:").cursor().execute("SELECT 1 WHERE 2 = 2")
# The server's thread ends its span when it closes the body, which may be after the client
# has read the whole response.
for _ in range(500):
    if any(s.kind.name == "SERVER" for s in memory.get_finished_spans()):
        break
    time.sleep(0.01)
print(json.dumps([{"name": s.name, "kind": s.kind.name, "attributes": dict(s.attributes),
                   "trace": s.context.trace_id, "parent": s.parent.span_id if s.parent else None,
                   "id": s.context.span_id} for s in memory.get_finished_spans()]))
"""


def test_the_built_ins_record_through_another_sdks_provider(sdk_python):
    spans, stderr = run(sdk_python, THROUGH_THE_SDK)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"GET /items/<int:item>", "GET", "SELECT"}, spans
    statement = by_name["SELECT"]
    assert statement["kind"] == "CLIENT" and statement["parent"] is None
    # The name and attributes ferrotel's own tracer would record.
    assert statement["attributes"] == {
        "db.system.name": "sqlite",
        "db.query.text": "SELECT ? WHERE ? = ?",
        "db.operation.name": "SELECT",
        "db.namespace": ":memory:",
    }
    server, client = by_name["GET /items/<int:item>"], by_name["GET"]
    assert (server["kind"], client["kind"]) == ("SERVER", "CLIENT")
    assert server["trace"] == client["trace"] and server["parent"] == client["id"]
    assert server["attributes"]["http.route"] == "/items/<int:item>"
    assert server["attributes"]["http.response.status_code"] == 200
    assert client["attributes"]["http.request.method"] == "GET"
    assert client["attributes"]["http.response.status_code"] == 200


@pytest.fixture(scope="session")
def vendor_python(tmp_path_factory):
    """A user's venv with Elastic's distro (and its SDK set-up) beside ferrotel."""
    return user_venv(tmp_path_factory.mktemp("vendor"), HERE / "vendor-distro-requirements.txt")


VENDOR_APP = """
import json, threading, requests, flask
from werkzeug.serving import make_server
app = flask.Flask("shop")
@app.route("/items/<int:item>")
def item(item):
    return {"item": item}
@app.route("/outer")
def outer():
    return {"inner": requests.get(f"http://127.0.0.1:{server.server_port}/items/3").json()}
server = make_server("127.0.0.1", 0, app, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
status = requests.get(f"http://127.0.0.1:{server.server_port}/outer").status_code
server.shutdown()
print(json.dumps(status))
"""


def test_a_vendor_distro_records_ferrotels_built_ins_through_its_own_provider(vendor_python, viewer):
    env = clean_env(
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{viewer.grpc}",
        OTEL_SERVICE_NAME="vendor-shop",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    status, _ = run(vendor_python, VENDOR_APP, env=env, instrument=True)
    assert status == 200
    [trace] = viewer.get("/api/traces?service=vendor-shop")["data"]
    spans = {s["spanID"]: s for s in trace["spans"]}

    def kind(span):
        return next(t["value"] for t in span["tags"] if t["key"] == "span.kind")

    def parent(span):
        return spans[span["references"][0]["spanID"]] if span["references"] else None

    tree = sorted(
        (s["operationName"], kind(s), parent(s)["operationName"] if parent(s) else "") for s in spans.values()
    )
    # The app's own call, the outer request, its call to the inner one: each exactly once.
    assert tree == [
        ("GET", "client", ""),
        ("GET", "client", "GET /outer"),
        ("GET /items/<int:item>", "server", "GET"),
        ("GET /outer", "server", "GET"),
    ]


LOGGED = """
import json, logging
from opentelemetry import trace
logging.getLogger().setLevel(logging.INFO)
with trace.get_tracer("t").start_as_current_span("order") as span:
    logging.getLogger("shop").warning("card declined for %s", "u-7", extra={"order.id": 42})
print(json.dumps(span.get_span_context().span_id))
"""


def test_a_log_exporter_named_by_entry_point_gets_the_sdks_records(sdk_python, tmp_path):
    lines = tmp_path / "records.jsonl"
    env = clean_env(
        OTEL_SERVICE_NAME="logged",
        OTEL_LOGS_EXPORTER="lines",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
        PLUGIN_LOG_FILE=str(lines),
    )
    span_id, stderr = run(sdk_python, LOGGED, env=env, instrument=True)
    assert "warning: " not in stderr.replace("ferrotel: warning: card", ""), stderr
    [record] = [json.loads(line) for line in lines.read_text().splitlines()]
    assert record == {
        "body": "card declined for u-7",
        "severity": "WARN",
        "text": "WARN",
        "attributes": {"order.id": 42},
        "span_id": span_id,
        "service": "logged",
        "scope": "shop",
    }


PROCESSED_LOGS = """
import json, logging
from opentelemetry import trace
from opentelemetry.sdk._logs import LogRecordProcessor
from ferrotel.logs import LoggerProvider, LoggingHandler

class Collect(LogRecordProcessor):
    def __init__(self):
        self.seen = []
    def on_emit(self, log_record):
        self.seen.append((log_record.log_record.body, log_record.log_record.attributes.get("order.id")))
    def shutdown(self):
        pass
    def force_flush(self, timeout_millis=30000):
        return True

provider = LoggerProvider({"OTEL_LOGS_EXPORTER": "none"})
collect = Collect()
provider.add_log_record_processor(collect)
logger = logging.getLogger("shop")
logger.addHandler(LoggingHandler(logger_provider=provider))
logger.warning("placed %s", 1, extra={"order.id": 9})
print(json.dumps(collect.seen))
"""


def test_a_python_log_record_processor_sees_each_record(sdk_python):
    seen, _ = run(sdk_python, PROCESSED_LOGS)
    assert seen == [["placed 1", 9]]
