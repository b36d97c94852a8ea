"""ferrotel view under load: OTLP ingest rate over HTTP/protobuf and gRPC, then query latency
with the store full (Jaeger's searches, the derived tags, the UI's counted list, the v3 API,
the Monitor tab's RED metrics), then ingest and restart with a --db file, the memory a
realistic span takes, and how long the web UI takes to show a 5,000-span trace in headless
Chromium, all in one run against the release binary.

Batches are encoded up front with upstream's opentelemetry-proto (run this with the upstream
venv's Python, which also has grpcio) so the clients cost as little as possible during the
timed part; client and viewer share this machine's cores, so the rates are a lower bound.
Upstream ships no local receiver to compare with (its docs point at a Collector or Jaeger in
Docker), so the figures stand alone.

The browser part runs with the Python of FERROTEL_BIN's venv (it has selenium); without
Debian's chromium and chromium-driver its rows say so.

Usage: python bench/view.py FERROTEL_BIN [--spans N] [--write BENCHMARKS.md]
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from report import measured_on, publish

SPANS_PER_BATCH = 500
SPANS_PER_TRACE = 10
SERVICES = 5
CLIENT_THREADS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def encode_batches(count, first_trace):
    """Serialized requests, each with SPANS_PER_BATCH spans in traces of SPANS_PER_TRACE."""
    template = ExportTraceServiceRequest()
    resource_spans = template.resource_spans.add()
    service = resource_spans.resource.attributes.add(key="service.name")
    resource_spans.resource.attributes.add(key="deployment.environment").value.string_value = "prod"
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "bench"
    spans = []
    for i in range(SPANS_PER_BATCH):
        span = scope_spans.spans.add(name=f"GET /route/{i % 7}", kind=2)
        span.span_id = (i + 1).to_bytes(8, "big")
        if i % SPANS_PER_TRACE:
            span.parent_span_id = (i - i % SPANS_PER_TRACE + 1).to_bytes(8, "big")
        for key, value in (("http.route", f"/users/{i % 50}"), ("http.request.method", "GET")):
            span.attributes.add(key=key).value.string_value = value
        span.attributes.add(key="http.response.status_code").value.int_value = 500 if i % 97 == 0 else 200
        if i % 97 == 0:
            # One span in 97 fails, with the exception event an SDK records.
            span.status.code = 2
            event = span.events.add(name="exception")
            event.attributes.add(key="exception.type").value.string_value = "TimeoutError"
        spans.append(span)
    now = time.time_ns()
    batches = []
    for b in range(count):
        service.value.string_value = f"service-{b % SERVICES}"
        for i, span in enumerate(spans):
            trace = first_trace + b * (SPANS_PER_BATCH // SPANS_PER_TRACE) + i // SPANS_PER_TRACE
            span.trace_id = trace.to_bytes(16, "big")
            span.start_time_unix_nano = now + trace * 1000 + i
            span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000 + (i % SPANS_PER_TRACE) * 1000
        batches.append(template.SerializeToString())
    return batches


# What ferrotel's WSGI instrumentation records for a Flask request, and the resource its SDK
# sends: the span the per-span memory figure is measured with.
HTTP_SPAN_STRINGS = [
    ("http.request.method", "GET"),
    ("url.scheme", "http"),
    ("url.query", "page=2"),
    ("server.address", "shop.internal"),
    ("client.address", "10.0.3.17"),
    ("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
    ("network.protocol.version", "1.1"),
    ("http.route", "/users/<int:uid>/orders"),
]
RESOURCE_STRINGS = [
    ("service.name", "shop"),
    ("telemetry.sdk.language", "python"),
    ("telemetry.sdk.name", "ferrotel"),
    ("telemetry.sdk.version", "0.1.0"),
    ("process.executable.path", "/srv/app/.venv/bin/python"),
    ("process.command_args", '["/srv/app/app.py"]'),
    ("process.runtime.name", "cpython"),
    ("process.runtime.version", "3.11.7"),
    ("process.runtime.description", "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]"),
    ("os.type", "linux"),
    ("host.name", "web-1"),
]
HTTP_SPANS_PER_BATCH = 100


def http_server_batches(count):
    """Requests of HTTP_SPANS_PER_BATCH realistic server spans (12 attributes, a 12-attribute
    resource per request), one trace each."""
    template = ExportTraceServiceRequest()
    resource_spans = template.resource_spans.add()
    for key, value in RESOURCE_STRINGS:
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    resource_spans.resource.attributes.add(key="process.pid").value.int_value = 4242
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name, scope_spans.scope.version = "ferrotel.instrumentation.wsgi", "0.1.0"
    spans = []
    for i in range(HTTP_SPANS_PER_BATCH):
        span = scope_spans.spans.add(name="GET /users/<int:uid>/orders", kind=2)
        for key, value in [*HTTP_SPAN_STRINGS, ("url.path", f"/users/{i}/orders")]:
            span.attributes.add(key=key).value.string_value = value
        for key, value in (("server.port", 8000), ("client.port", 50000 + i), ("http.response.status_code", 200)):
            span.attributes.add(key=key).value.int_value = value
        spans.append(span)
    now = time.time_ns()
    batches = []
    for b in range(count):
        for i, span in enumerate(spans):
            number = b * HTTP_SPANS_PER_BATCH + i + 1
            span.trace_id, span.span_id = number.to_bytes(16, "big"), number.to_bytes(8, "big")
            span.start_time_unix_nano = now + number
            span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
        batches.append(template.SerializeToString())
    return batches


def memory_per_http_span(ferrotel, spans=200_000):
    """Resident memory per realistic HTTP server span, and what --max-memory counts for it."""
    batches = http_server_batches(spans // HTTP_SPANS_PER_BATCH)
    viewer, (_, http_port, ui_port) = start_viewer(ferrotel, spans)
    try:
        time.sleep(0.5)
        idle = rss_mib(viewer.pid)
        send_http(http_port, batches)
        time.sleep(0.5)
        full = rss_mib(viewer.pid)
        _, status = query_ms(ui_port, "/api/status", repeat=1)
        assert status["spans"] == spans, status
    finally:
        viewer.kill()
        viewer.wait()
    protobuf = sum(map(len, batches)) / spans
    return (full - idle) * 2**20 / spans, status["memoryBytes"]["spans"] / spans, protobuf


def big_trace_request(span_count, services=5):
    """One trace of `span_count` spans as an API backend makes them: a root, fan-out to
    handlers, each with a few nested calls; a span in 50 fails."""
    request = ExportTraceServiceRequest()
    scopes = []
    for s in range(services):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name").value.string_value = f"service-{s}"
        scopes.append(resource_spans.scope_spans.add())
    start = time.time_ns() - 60 * 10**9
    trace_id = (0xB16).to_bytes(16, "big")
    for number in range(1, span_count + 1):
        span = scopes[number % services].spans.add(name=f"operation {number % 40}", kind=2 if number % 7 else 3)
        span.trace_id, span.span_id = trace_id, number.to_bytes(8, "big")
        # A tree ten wide: span n's parent is n // 10, so the trace is four levels deep.
        if number > 1:
            span.parent_span_id = (number // 10 or 1).to_bytes(8, "big")
        span.start_time_unix_nano = start + number * 20_000
        span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000 + (number % 13) * 100_000
        if number % 50 == 0:
            span.status.code = 2
    return request.SerializeToString(), trace_id.hex()


BROWSER_SCRIPT = """
import json, statistics, sys
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
url, repeat = sys.argv[1], int(sys.argv[2])
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
figures = {"timeline": [], "flame": [], "statistics": []}
def dataset(key):
    return WebDriverWait(driver, 60).until(lambda d: d.execute_script(f"return document.body.dataset.{key}"))
for _ in range(repeat):
    driver.get("about:blank")
    driver.get(url)
    figures["timeline"].append(float(dataset("traceRenderMs")))
    for view in ("flame", "statistics"):
        driver.execute_script(f"delete document.body.dataset.{view}RenderMs")
        driver.find_element("id", f"tab-{view}").click()
        figures[view].append(float(dataset(f"{view}RenderMs")))
driver.quit()
print(json.dumps({k: statistics.median(v) for k, v in figures.items()}))
"""


def trace_page_render_ms(ferrotel, span_count=5000, repeat=5):
    """Median ms, in headless Chromium, from opening a trace of `span_count` spans to its rows
    on screen, and from clicking to the flame graph and to the statistics; None without a browser."""
    python = Path(ferrotel).parent / "python"
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists() and python.exists()):
        return None
    body, trace_id = big_trace_request(span_count)
    viewer, (_, http_port, ui_port) = start_viewer(ferrotel, span_count * 2)
    try:
        send_http(http_port, [body])
        url = f"http://127.0.0.1:{ui_port}/#/trace/{trace_id}"
        result = subprocess.run(
            [str(python), "-c", BROWSER_SCRIPT, url, str(repeat)], capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
    finally:
        viewer.kill()
        viewer.wait()


def send_http(port, batches):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    for body in batches:
        connection.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    connection.close()


def send_grpc(port, batches):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=bytes,
        response_deserializer=bytes,
    )
    for body in batches:
        export(body, timeout=30)
    channel.close()


def ingest(send, port, batches):
    """Spans per second with CLIENT_THREADS concurrent clients."""
    shares = [batches[i::CLIENT_THREADS] for i in range(CLIENT_THREADS)]
    threads = [threading.Thread(target=send, args=(port, share)) for share in shares]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(batches) * SPANS_PER_BATCH / (time.perf_counter() - start)


def query_ms(port, path, repeat=15):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status == 200, body[:200]
    connection.close()
    return statistics.median(times), json.loads(body)


def start_viewer(ferrotel, max_spans, *extra):
    ports = free_port(), free_port(), free_port()
    flags = ["--grpc", str(ports[0]), "--http", str(ports[1]), "--ui", str(ports[2]), "--max-spans", str(max_spans)]
    # Room for every span sent: the figures are about a full store, not the memory bound.
    flags += ["--max-memory", "8G"]
    process = subprocess.Popen([ferrotel, "view", *flags, *extra], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while True:
        try:
            socket.create_connection(("127.0.0.1", ports[2]), timeout=1).close()
            return process, ports
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)


def with_db(ferrotel, batches):
    """Ingest rate over OTLP/HTTP with --db, the file's size, and the time a restarted viewer
    takes to reload it and answer."""
    spans = len(batches) * SPANS_PER_BATCH
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "view.db"
        viewer, (_, http_port, _) = start_viewer(ferrotel, spans, "--db", str(db))
        try:
            rate = ingest(send_http, http_port, batches)
        finally:
            viewer.kill()
            viewer.wait()
        size = sum(f.stat().st_size for f in Path(scratch).iterdir()) / 2**20
        start = time.perf_counter()
        # The ports are bound before the file is replayed; the first answer marks the end.
        viewer, (_, _, ui_port) = start_viewer(ferrotel, spans, "--db", str(db))
        try:
            _, status = query_ms(ui_port, "/api/status", repeat=1)
            restart = time.perf_counter() - start
            assert status["spans"] == spans, status
        finally:
            viewer.kill()
            viewer.wait()
    return rate, size, restart


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel")
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    batch_count = args.spans // SPANS_PER_BATCH
    half = batch_count // 2
    print(f"encoding {batch_count} batches of {SPANS_PER_BATCH} spans...", flush=True)
    traces_per_batch = SPANS_PER_BATCH // SPANS_PER_TRACE
    http_batches = encode_batches(half, first_trace=1)
    grpc_batches = encode_batches(batch_count - half, first_trace=1 + half * traces_per_batch)

    viewer, (grpc_port, http_port, ui_port) = start_viewer(args.ferrotel, args.spans)
    try:
        time.sleep(0.5)
        idle_rss = rss_mib(viewer.pid)
        http_rate = ingest(send_http, http_port, http_batches)
        grpc_rate = ingest(send_grpc, grpc_port, grpc_batches)
        full_rss = rss_mib(viewer.pid)
        _, status = query_ms(ui_port, "/api/status", repeat=1)
        assert status["spans"] == args.spans, status
        two_tags = urllib.parse.quote(json.dumps({"http.response.status_code": "500", "http.route": "/users/47"}))
        nowhere = urllib.parse.quote(json.dumps({"http.route": "/nowhere"}))

        def quote(tags):
            return urllib.parse.quote(json.dumps(tags))

        def trace(number):
            return number.to_bytes(16, "big").hex()

        middle = args.spans // SPANS_PER_TRACE // 2
        exception = {"exception.type": "TimeoutError"}
        environment = {"deployment.environment": "prod"}
        errors = quote({"error": "true"})
        # Failing spans are never the /users/1 ones: both conditions hold only across spans.
        apart = quote({"error": "true", "http.route": "/users/1"})
        window = {"endTs": int(time.time() * 1000) + 3_600_000, "lookback": 7_200_000, "step": 60_000}
        monitor = urllib.parse.urlencode(
            {**window, "ratePer": 600_000, "groupByOperation": "true", "service": "service-3"}
        )
        error_tag = quote({"error": "true"})
        classic_tags = "tag=span.kind:server&tag=error:true&limit=20"
        queries = [  # (label, path, whether it finds traces)
            ("latest 20 traces, one service", "/api/traces?service=service-3&limit=20", True),
            (
                "20 traces by operation + min duration",
                "/api/traces?service=service-1&operation=GET%20/route/3&minDuration=1ms&limit=20",
                True,
            ),
            ("20 traces by two tags", f"/api/traces?tags={two_tags}&limit=20", True),
            ("a tag nothing has (scans every span)", f"/api/traces?tags={nowhere}&limit=20", False),
            ("web UI list: 100 newest traces, summarised", "/api/trace-summaries?limit=100", True),
            ("web UI list: by two attributes", f"/api/trace-summaries?tags={two_tags}&limit=100", True),
            ("one trace by id", f"/api/traces/{trace(middle)}", True),
            ("services", "/api/services", True),
            # What issue #17 added: Jaeger's derived tags, event and resource attributes, the
            # tag=k:v form, several ids at once, the UI's counted list, v3, RED.
            ("20 traces with error=true (from the status)", f"/api/traces?tags={error_tag}&limit=20", True),
            ("20 traces by tag=span.kind:server, tag=error:true", f"/api/traces?{classic_tags}", True),
            ("20 traces by an event attribute (exception.type)", f"/api/traces?tags={quote(exception)}&limit=20", True),
            ("20 traces by a resource attribute", f"/api/traces?tags={quote(environment)}&limit=20", True),
            ("Compare: two traces by id", f"/api/traces?traceID={trace(middle)}&traceID={trace(middle + 1)}", True),
            ("web UI list: error=true, 100 rows + total count", f"/api/trace-summaries?tags={errors}&limit=100", True),
            ("web UI list: no match, with the across-spans hint", f"/api/trace-summaries?tags={apart}", False),
            ("v3 trace summaries, one service", "/api/v3/trace-summaries?query.serviceName=service-3", True),
            ("Monitor tab: p95 latency per operation, 1 h", f"/api/metrics/latencies?{monitor}", True),
            ("RED summary of every service and operation", "/api/red", True),
        ]
        latencies = []
        for label, path, finds in queries:
            ms, body = query_ms(ui_port, path)
            found = body.get("data") or body.get("summaries") or body.get("metrics")
            assert bool(found) == finds, (label, str(body)[:300])
            latencies.append((label, ms))
    finally:
        viewer.kill()
        viewer.wait()
    db_rate, db_mib, db_restart = with_db(args.ferrotel, http_batches)
    span_rss, span_counted, span_protobuf = memory_per_http_span(args.ferrotel)
    render = trace_page_render_ms(args.ferrotel)
    render_rows = (
        [
            f"| web UI, 5,000-span trace in headless Chromium: open to rows on screen | {render['timeline']:,.0f} ms |",
            f"| web UI, same trace: switch to the flame graph / the statistics "
            f"| {render['flame']:,.0f} ms / {render['statistics']:,.0f} ms |",
        ]
        if render
        else ["| web UI, 5,000-span trace | not measured: Debian's chromium and chromium-driver are missing |"]
    )
    db_spans = len(http_batches) * SPANS_PER_BATCH

    table = "\n".join(
        [
            f"{measured_on()}; "
            f"{args.spans:,} spans in batches of {SPANS_PER_BATCH}, {CLIENT_THREADS} client threads on the same cores; "
            f"load average {load_at_start:.1f} at the start (anything else running shares the cores)",
            "",
            "| | ferrotel view |",
            "|---|---|",
            f"| ingest, OTLP/HTTP protobuf | {http_rate:,.0f} spans/s |",
            f"| ingest, OTLP/gRPC | {grpc_rate:,.0f} spans/s |",
            f"| resident memory, empty → {args.spans:,} spans | {idle_rss:.0f} → {full_rss:.0f} MiB |",
            f"| memory per realistic HTTP server span (12 attributes, {span_protobuf:.0f} B of protobuf): "
            f"resident / counted by `--max-memory` | {span_rss / 1000:.2f} KB / {span_counted / 1000:.2f} KB |",
            f"| ingest, OTLP/HTTP protobuf, with `--db` (committed before each reply) | {db_rate:,.0f} spans/s |",
            f"| `--db` file for {db_spans:,} spans; restart until queryable "
            f"| {db_mib:.0f} MiB; {db_restart * 1000:,.0f} ms |",
            *(
                f"| query with {args.spans:,} spans stored: {label} | {ms:.1f} ms (median of 15) |"
                for label, ms in latencies
            ),
            *render_rows,
        ]
    )
    publish(table, "view", args.write)


if __name__ == "__main__":
    main()
