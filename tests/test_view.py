"""ferrotel view: real OTLP clients (ferrotel's and upstream's exporters) send traces; the
Jaeger-compatible API must return exactly what was sent, and bad input must change nothing."""

import gzip
import json
import os
import re
import signal
import socket
import urllib.error
import urllib.request
import zlib

import pytest
from support.processes import FERROTEL, clean_env, free_port, instrument, run
from support.viewer import LOGGING_APP, UPSTREAM, Api, Viewer, endpoint, run_upstream

APP = """
from opentelemetry import trace
tracer = trace.get_tracer("view.test", "1.2")
with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER,
        attributes={"user.id": 7, "paid": True, "ratio": 0.5, "items": ["a", "b"]}) as root:
    with tracer.start_as_current_span("charge card", kind=trace.SpanKind.CLIENT) as child:
        child.add_event("retry", {"attempt": 2})
        child.set_status(trace.Status(trace.StatusCode.ERROR, "card declined"))
print(format(root.get_span_context().trace_id, "032x"))
print(format(root.get_span_context().span_id, "016x"))
"""


def send_with_ferrotel(viewer, tmp, protocol, service, compression="none"):
    app = tmp / "app.py"
    app.write_text(APP)
    env = clean_env(
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint(viewer, protocol),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_COMPRESSION=compression,
    )
    result = instrument("python", app, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def assert_trace_as_sent(viewer, trace_id, root_id, service):
    [trace] = viewer.get(f"/api/traces/{trace_id}")["data"]
    assert trace["traceID"] == trace_id
    spans = {s["operationName"]: s for s in trace["spans"]}
    assert set(spans) == {"checkout", "charge card"}
    root, child = spans["checkout"], spans["charge card"]
    assert root["spanID"] == root_id and root["references"] == []
    assert child["references"] == [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": root_id}]
    root_tags = {t["key"]: (t["type"], t["value"]) for t in root["tags"]}
    assert root_tags["user.id"] == ("int64", 7)
    assert root_tags["paid"] == ("bool", True)
    assert root_tags["ratio"] == ("float64", 0.5)
    assert root_tags["items"] == ("string", '["a","b"]')
    assert root_tags["span.kind"] == ("string", "server")
    assert root_tags["otel.scope.name"] == ("string", "view.test")
    assert root_tags["otel.scope.version"] == ("string", "1.2")
    child_tags = {t["key"]: t["value"] for t in child["tags"]}
    assert child_tags["span.kind"] == "client"
    assert (child_tags["otel.status_code"], child_tags["error"]) == ("ERROR", True)
    assert child_tags["otel.status_description"] == "card declined"
    [event] = child["logs"]
    assert event["fields"] == [
        {"key": "event", "type": "string", "value": "retry"},
        {"key": "attempt", "type": "int64", "value": 2},
    ]
    assert root["startTime"] <= child["startTime"] <= event["timestamp"]
    assert child["startTime"] + child["duration"] <= root["startTime"] + root["duration"] + 1
    process = trace["processes"][root["processID"]]
    assert process["serviceName"] == service
    assert {"key": "telemetry.sdk.language", "type": "string", "value": "python"} in process["tags"]


@pytest.mark.parametrize(
    "protocol,compression",
    [
        ("grpc", "none"),
        ("grpc", "gzip"),
        ("grpc", "deflate"),
        ("http/protobuf", "none"),
        ("http/protobuf", "gzip"),
        ("http/protobuf", "deflate"),
        ("http/json", "none"),
        ("http/json", "gzip"),
        ("http/json", "deflate"),
    ],
)
def test_ferrotel_exporter_traces_come_back_as_sent(viewer, tmp, protocol, compression):
    trace_id, root_id = send_with_ferrotel(viewer, tmp, protocol, "shop", compression)
    assert_trace_as_sent(viewer, trace_id, root_id, "shop")
    assert viewer.get("/api/services")["data"] == ["shop"]
    assert viewer.get("/api/services/shop/operations")["data"] == ["charge card", "checkout"]


# Upstream's Python exporters speak http/protobuf and grpc only; http/json is ferrotel's.
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_upstream_exporter_traces_come_back_as_sent(viewer, tmp, protocol, compression):
    # Compression only when on: upstream's gRPC exporter refuses the spec's `none`.
    gzip_setting = {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"} if compression == "gzip" else {}
    trace_id, root_id = run_upstream(
        viewer, tmp, APP, protocol, OTEL_SERVICE_NAME="upstream-shop", OTEL_TRACES_EXPORTER="otlp", **gzip_setting
    )
    assert_trace_as_sent(viewer, trace_id, root_id, "upstream-shop")


def test_search_filters_like_jaeger(viewer, tmp):
    trace_id, _ = send_with_ferrotel(viewer, tmp, "http/protobuf", "shop")
    other_id, _ = send_with_ferrotel(viewer, tmp, "http/protobuf", "warehouse")

    def found(query):
        return [t["traceID"] for t in viewer.get(f"/api/traces?{query}")["data"]]

    assert found("service=shop") == [trace_id]
    assert found("service=shop&operation=charge%20card") == [trace_id]
    assert found("service=shop&operation=nope") == []
    assert found("tags=" + urllib.request.quote('{"user.id":"7"}')) == [other_id, trace_id]
    # `error` is derived from the status, as Jaeger shows it: "charge card" failed.
    assert found("service=warehouse&tags=error%3Dtrue") == [other_id]
    assert found("service=warehouse&tags=user.id%3D8") == []
    assert found("minDuration=1h") == []
    assert found("limit=1") == [other_id]
    with pytest.raises(urllib.error.HTTPError) as bad:
        viewer.get("/api/traces?minDuration=soon")
    assert bad.value.code == 400
    otlp = viewer.get(f"/api/traces/{trace_id}/otlp")
    [resource_spans] = otlp["resourceSpans"]
    assert {s["name"] for s in resource_spans["scopeSpans"][0]["spans"]} == {"checkout", "charge card"}
    assert resource_spans["scopeSpans"][0]["spans"][0]["traceId"] == trace_id
    with pytest.raises(urllib.error.HTTPError) as missing:
        viewer.get("/api/traces/" + "ab" * 16)
    assert missing.value.code == 404


def test_bad_input_is_refused_and_changes_nothing(viewer, tmp):
    trace_id, root_id = send_with_ferrotel(viewer, tmp, "http/protobuf", "shop")
    status, body = viewer.post(b"\x0a\xff\xff\xff\xff\x0f garbage", "application/x-protobuf")
    assert status == 400 and b"malformed OTLP" in body
    status, body = viewer.post(b'{"resourceSpans": [', "application/json")
    assert status == 400 and json.loads(body)["code"] == 3
    assert viewer.post(b"{}", "text/plain")[0] == 415
    assert viewer.post(b"not gzip", "application/json", "gzip")[0] == 400
    assert viewer.post(b"\0" * (17 << 20), "application/x-protobuf")[0] == 413
    bomb = gzip.compress(b"\0" * (17 << 20))
    assert viewer.post(bomb, "application/x-protobuf", "gzip")[0] == 400
    assert viewer.post(zlib.compress(b"\0" * (17 << 20)), "application/x-protobuf", "deflate")[0] == 400
    status, body = viewer.post(b"{}", "application/json", "br")
    assert status == 415 and "unsupported content encoding" in json.loads(body)["message"]
    bad_ids = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "abcd", "spanId": "00", "name": "x"}]}]}]}
    status, body = viewer.post(json.dumps(bad_ids).encode(), "application/json")
    assert status == 200 and json.loads(body)["partialSuccess"]["rejectedSpans"] == 1
    status = viewer.get("/api/status")
    memory = status.pop("memoryBytes")
    assert status == {
        "spans": 2,
        "evictedSpans": 0,
        "rejectedSpans": 1,
        "logRecords": 0,
        "evictedLogRecords": 0,
        "metricSeries": 0,
        "refusedMetricSeries": 0,
        "evictedMetricPoints": 0,
        "archivedTraces": 0,
    }
    assert memory["spans"] > 0 and (memory["logs"], memory["metrics"]) == (0, 0)
    assert_trace_as_sent(viewer, trace_id, root_id, "shop")
    assert viewer.process.poll() is None


GRPC_GARBAGE = """
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                             request_serializer=bytes, response_deserializer=bytes)
for body in [b"\\x0a\\xff\\xff\\xff\\xff\\x0f garbage", b"\\x0a\\x00" * (9 << 20)]:
    try:
        export(body, timeout=10)
        print("OK")
    except grpc.RpcError as error:
        print(error.code().name)
"""


def test_bad_grpc_input_is_refused_and_changes_nothing(viewer, tmp):
    trace_id, root_id = send_with_ferrotel(viewer, tmp, "grpc", "shop")
    script = tmp / "garbage.py"
    script.write_text(GRPC_GARBAGE)
    result = run(UPSTREAM / "python", script, f"127.0.0.1:{viewer.grpc}")
    assert result.stdout.split() == ["INVALID_ARGUMENT", "OUT_OF_RANGE"], result.stderr
    assert viewer.get("/api/status")["spans"] == 2
    assert_trace_as_sent(viewer, trace_id, root_id, "shop")
    assert viewer.process.poll() is None


def test_flood_beyond_the_cap_evicts_oldest_first(tmp):
    viewer = Viewer("--max-spans", "5")
    try:
        sent = [send_with_ferrotel(viewer, tmp, "http/protobuf", "shop")[0] for _ in range(4)]
        status = viewer.get("/api/status")
        assert (status["spans"], status["evictedSpans"], status["rejectedSpans"]) == (5, 3, 0)
        newest = [t["traceID"] for t in viewer.get("/api/traces?service=shop")["data"]]
        assert newest == [sent[3], sent[2], sent[1]]
        assert [len(t["spans"]) for t in viewer.get("/api/traces?service=shop")["data"]] == [2, 2, 1]
    finally:
        stdout, _ = viewer.stop()
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{viewer.http}" in stdout
    assert viewer.process.returncode == 0


def test_db_file_brings_everything_back_after_a_crash(tmp):
    db = tmp / "view.db"
    first = Viewer("--db", str(db), "--max-spans", "5")
    try:
        sent = [send_with_ferrotel(first, tmp, "http/protobuf", "shop") for _ in range(4)]
        last_trace, last_root = sent[-1]
        record = {
            "timeUnixNano": "1700000000000000000",
            "severityText": "WARN",
            "severityNumber": 13,
            "body": {"stringValue": "kept on disk"},
            "traceId": last_trace,
            "spanId": last_root,
        }
        logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
        assert first.post_to("/v1/logs", json.dumps(logs).encode(), "application/json")[0] == 200
        point = {"timeUnixNano": "1700000000000000000", "asInt": "3"}
        metric = {"name": "orders", "sum": {"dataPoints": [point], "aggregationTemporality": 2, "isMonotonic": True}}
        metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]}
        assert first.post_to("/v1/metrics", json.dumps(metrics).encode(), "application/json")[0] == 200
        before = [first.get(path) for path in ("/api/traces?service=shop&limit=10", "/api/logs", "/api/metrics/orders")]
        assert [len(t["spans"]) for t in before[0]["data"]] == [2, 2, 1]

        ports = ["--grpc", free_port(), "--http", free_port(), "--ui", free_port()]
        result = run(FERROTEL, "view", "--db", db, *ports)
        assert result.returncode == 1
        assert f"{db} is in use by another ferrotel view" in result.stderr
    finally:
        # SIGKILL: what was acknowledged must already be in the file.
        first.process.kill()
        first.process.wait()

    second = Viewer("--db", str(db), "--max-spans", "5")
    try:
        after = [second.get(path) for path in ("/api/traces?service=shop&limit=10", "/api/logs", "/api/metrics/orders")]
        assert after == before
        assert_trace_as_sent(second, last_trace, last_root, "shop")
        assert second.get("/api/status")["spans"] == 5
    finally:
        stdout, _ = second.stop()
    assert f"Restored from {db}: 5 spans, 1 log records, 1 metric series" in stdout

    junk = tmp / "notes.txt"
    junk.write_text("shopping list: " * 100)
    result = run(FERROTEL, "view", "--db", junk, *ports)
    assert result.returncode == 1
    assert f"{junk} is not a ferrotel view database; choose another --db PATH" in result.stderr
    assert junk.read_text() == "shopping list: " * 100


def test_port_in_use_and_public_bind_get_clear_errors(viewer):
    result = run(FERROTEL, "view", "--http", viewer.http, "--ui", free_port())
    assert result.returncode == 1
    assert f"port {viewer.http} on 127.0.0.1 is already in use; choose another with --http PORT" in result.stderr
    result = run(FERROTEL, "view", "--listen", "0.0.0.0", "--http", free_port(), "--ui", free_port())
    assert result.returncode == 1 and "pass --token" in result.stderr


def test_token_guards_every_endpoint(tmp):
    viewer = Viewer("--token", "s3cret")
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(viewer.api("/api/services"), timeout=5)
        assert denied.value.code == 401
        assert viewer.post(b"", "application/x-protobuf")[0] == 401
        app = tmp / "app.py"
        app.write_text(APP)

        def export(protocol, headers):
            env = clean_env(
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint(viewer, protocol),
                OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                OTEL_EXPORTER_OTLP_HEADERS=headers,
                OTEL_EXPORTER_OTLP_TIMEOUT="2",
            )
            assert instrument("python", app, env=env).returncode == 0

        for protocol in ("grpc", "http/protobuf"):
            export(protocol, "Authorization=Bearer%20wrong")
            export(protocol, "Authorization=Bearer%20s3cret")
        request = urllib.request.Request(viewer.api("/api/status"), headers={"Authorization": "Bearer s3cret"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["spans"] == 4  # two per protocol, none with the wrong token
    finally:
        viewer.process.kill()
        viewer.process.wait()


def test_instrument_view_starts_a_viewer_once_and_sends_to_it(tmp, default_ports):
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 4318)) != 0, "this test needs 127.0.0.1:4318 free"
    app = tmp / "app.py"
    app.write_text(APP)
    env = clean_env(OTEL_SERVICE_NAME="viewed")
    first = instrument("--view", "python", app, env=env)
    assert first.returncode == 0, first.stderr
    started = re.search(r"started ferrotel view in the background \(pid (\d+)", first.stderr)
    assert started, first.stderr
    try:
        second = instrument("--view", "python", app, env=env)
        assert "sending traces, metrics and logs to the OTLP receiver on 127.0.0.1:4318" in second.stderr, second.stderr
        viewer = Api(16686)
        for run_output in (first.stdout, second.stdout):
            trace_id, root_id = run_output.split()
            assert_trace_as_sent(viewer, trace_id, root_id, "viewed")
        assert len(viewer.get("/api/traces?service=viewed")["data"]) == 2
    finally:
        os.kill(int(started.group(1)), signal.SIGKILL)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_upstream_logs_come_back_linked_to_their_span(viewer, tmp, protocol):
    trace_id, span_id = run_upstream(
        viewer,
        tmp,
        LOGGING_APP,
        protocol,
        OTEL_SERVICE_NAME="upstream-logs",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
    )

    def logs(query):
        # Only the app's own: upstream also logs (and exports) a notice about its handlers.
        records = viewer.get(f"/api/logs?{query}")["data"]
        return [(r["severityText"], r["body"], r["traceID"]) for r in records if r["scope"] == "shop"]

    assert logs("service=upstream-logs") == [
        ("INFO", "outside any span", None),
        ("WARN", "card declined for order 42", trace_id),
    ]
    [warning] = viewer.get(f"/api/logs?traceID={trace_id}")["data"]
    assert (warning["spanID"], warning["severityNumber"], warning["scope"]) == (span_id, 13, "shop")
    assert warning["attributes"]["code.function.name"] or warning["attributes"]
    assert logs("minSeverity=13") == [("WARN", "card declined for order 42", trace_id)]
    assert logs("q=DECLINED") == [("WARN", "card declined for order 42", trace_id)]
    assert logs("service=nobody") == []
    [trace] = viewer.get(f"/api/traces/{trace_id}")["data"]
    assert [s["spanID"] for s in trace["spans"]] == [span_id]


def test_logs_over_otlp_json_and_their_bad_input(viewer):
    record = {
        "timeUnixNano": "1700000000000000000",
        "severityNumber": 17,
        "severityText": "ERROR",
        "body": {"kvlistValue": {"values": [{"key": "order", "value": {"intValue": "42"}}]}},
        "attributes": [{"key": "retry", "value": {"boolValue": True}}],
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
    }
    request = {"resourceLogs": [{"scopeLogs": [{"scope": {"name": "raw"}, "logRecords": [record]}]}]}
    status, body = viewer.post_to("/v1/logs", json.dumps(request).encode(), "application/json")
    assert (status, json.loads(body)) == (200, {})
    assert viewer.post_to("/v1/logs", b"\x0a\xff\xff", "application/x-protobuf")[0] == 400
    [stored] = viewer.get("/api/logs?spanID=eee19b7ec3c1b174")["data"]
    assert stored["body"] == {"order": 42}
    assert stored["attributes"] == {"retry": True}
    assert (stored["service"], stored["scope"], stored["timeUnixNano"]) == (
        "unknown_service",
        "raw",
        record["timeUnixNano"],
    )
    assert viewer.get("/api/status")["logRecords"] == 1


METRICS_APP = """
from opentelemetry import metrics
meter = metrics.get_meter("shop.meter")
orders = meter.create_counter("orders", unit="{order}", description="Orders placed")
amount = meter.create_histogram("order.amount", unit="EUR")
queue = meter.create_gauge("queue.depth")
for value in (10, 250):
    orders.add(1, {"channel": "web"})
    amount.record(value, {"channel": "web"})
orders.add(1, {"channel": "shop"})
queue.set(7)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_upstream_metrics_come_back_as_series(viewer, tmp, protocol):
    run_upstream(viewer, tmp, METRICS_APP, protocol, OTEL_SERVICE_NAME="upstream-metrics", OTEL_METRICS_EXPORTER="otlp")
    listed = {m["name"]: m for m in viewer.get("/api/metrics?service=upstream-metrics")["data"]}
    assert set(listed) == {"orders", "order.amount", "queue.depth"}
    assert (listed["orders"]["type"], listed["orders"]["unit"]) == ("sum", "{order}")
    assert listed["orders"]["description"] == "Orders placed"
    assert (listed["order.amount"]["type"], listed["queue.depth"]["type"]) == ("histogram", "gauge")

    [orders] = viewer.get("/api/metrics/orders?service=upstream-metrics")["data"]
    by_channel = {p["attributes"]["channel"]: p["value"] for p in orders["points"]}
    assert by_channel == {"web": 2, "shop": 1}
    [amount] = viewer.get("/api/metrics/order.amount")["data"]
    [point] = amount["points"]
    assert (point["count"], point["sum"], point["min"], point["max"]) == (2, 260.0, 10.0, 250.0)
    assert sum(point["bucketCounts"]) == 2 and len(point["bucketCounts"]) == len(point["explicitBounds"]) + 1
    [queue] = viewer.get("/api/metrics/queue.depth")["data"]
    assert [p["value"] for p in queue["points"]] == [7]
    with pytest.raises(urllib.error.HTTPError) as missing:
        viewer.get("/api/metrics/nothing")
    assert missing.value.code == 404


def test_dependencies_count_calls_and_errors_across_services(viewer):
    trace_id = "0af7651916cd43dd8448eb211c80319c"

    def span(span_id, parent, name, error=False):
        fields = {"traceId": trace_id, "spanId": span_id, "parentSpanId": parent, "name": name}
        return fields | ({"status": {"code": 2}} if error else {})

    def service(name, *spans):
        resource = {"attributes": [{"key": "service.name", "value": {"stringValue": name}}]}
        return {"resource": resource, "scopeSpans": [{"spans": list(spans)}]}

    request = {
        "resourceSpans": [
            service(
                "frontend", span("00000000000000a1", "", "GET /"), span("00000000000000a2", "00000000000000a1", "call")
            ),
            service(
                "backend",
                span("00000000000000b1", "00000000000000a2", "GET /api", error=True),
                span("00000000000000b2", "00000000000000a2", "GET /api"),
                span("00000000000000b3", "00000000000000b1", "SELECT"),
            ),
        ]
    }
    assert viewer.post(json.dumps(request).encode(), "application/json")[0] == 200
    assert viewer.get("/api/dependencies")["data"] == [
        {"parent": "frontend", "child": "backend", "callCount": 2, "errorCount": 1}
    ]
