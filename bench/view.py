"""ferrotel view under load: OTLP ingest rate over HTTP/protobuf and gRPC, then query latency
with the store full, then ingest and restart with a --db file, all in one run against the
release binary.

Batches are encoded up front with upstream's opentelemetry-proto (run this with the upstream
venv's Python, which also has grpcio) so the clients cost as little as possible during the
timed part; client and viewer share this machine's cores, so the rates are a lower bound.
Upstream ships no local receiver to compare with (its docs point at a Collector or Jaeger in
Docker), so the figures stand alone.

Usage: python bench/view.py FERROTEL_BIN [--spans N] [--write BENCHMARKS.md]
"""

import argparse
import http.client
import json
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
            ("one trace by id", f"/api/traces/{(12345).to_bytes(16, 'big').hex()}", True),
            ("services", "/api/services", True),
        ]
        latencies = []
        for label, path, finds in queries:
            ms, body = query_ms(ui_port, path)
            assert bool(body["data"]) == finds, (label, body)
            latencies.append((label, ms))
    finally:
        viewer.kill()
        viewer.wait()
    db_rate, db_mib, db_restart = with_db(args.ferrotel, http_batches)
    span_rss, span_counted, span_protobuf = memory_per_http_span(args.ferrotel)
    db_spans = len(http_batches) * SPANS_PER_BATCH

    table = "\n".join(
        [
            f"{measured_on()}; "
            f"{args.spans:,} spans in batches of {SPANS_PER_BATCH}, {CLIENT_THREADS} client threads on the same cores",
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
        ]
    )
    publish(table, "view", args.write)


if __name__ == "__main__":
    main()
