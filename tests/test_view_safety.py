"""ferrotel view on a shared machine or network: who may talk to it (tokens, Host and Origin
headers), what a hostile or careless client can make it hold (bytes, idle connections), and
what another viewer on the same --db file gets. Every check uses the real binary over real
sockets."""

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

from support.processes import FERROTEL, free_port, run
from support.viewer import UPSTREAM, Viewer, run_ferrotel

SPAN = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "sent", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
TRACES = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [SPAN]}]}]}).encode()


def status_of(url, headers, body=None):
    request = urllib.request.Request(url, body, headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


GRPC_EXPORT = """
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                             request_serializer=bytes, response_deserializer=bytes)
metadata = [("authorization", sys.argv[2])] if len(sys.argv) > 2 else []
try:
    export(b"\\x0a\\xff\\xff\\xff\\xff\\x0f garbage", timeout=10, metadata=metadata)
    print("OK")
except grpc.RpcError as error:
    print(error.code().name)
"""


def test_an_empty_or_unusable_token_is_refused_at_start():
    ports = ["--grpc", free_port(), "--http", free_port(), "--ui", free_port()]
    result = run(FERROTEL, "view", "--listen", "0.0.0.0", "--token", "", *ports)
    assert result.returncode == 1
    assert "--token is empty, which would let anyone in" in result.stderr
    result = run(FERROTEL, "view", "--token", "a;b", *ports)
    assert result.returncode == 1
    assert "--token contains ';'" in result.stderr


def test_grpc_token_is_checked_before_the_message_is_decoded(tmp):
    viewer = Viewer("--token", "s3cret")
    try:
        script = tmp / "export.py"
        script.write_text(GRPC_EXPORT)
        address = f"127.0.0.1:{viewer.grpc}"
        # Undecodable bytes: without the token the answer must be about the token, not the body.
        for credentials in ([], ["Bearer wrong"]):
            result = run(UPSTREAM / "python", script, address, *credentials)
            assert result.stdout.split() == ["UNAUTHENTICATED"], result.stderr
        result = run(UPSTREAM / "python", script, address, "Bearer s3cret")
        assert result.stdout.split() == ["INVALID_ARGUMENT"], result.stderr
    finally:
        viewer.process.kill()
        viewer.process.wait()


def test_a_db_file_in_use_is_refused_before_any_port_is_taken(tmp):
    db = tmp / "view.db"
    first = Viewer("--db", str(db))
    try:
        # The second viewer's --http port is taken too: the file must be what it reports,
        # at once (it used to bind its ports first, then wait ~5 s on the lock).
        ports = ["--grpc", free_port(), "--http", first.http, "--ui", free_port()]
        started = time.monotonic()
        try:
            result = run(FERROTEL, "view", "--db", db, *ports, timeout=4)
        except subprocess.TimeoutExpired as error:
            raise AssertionError("a second viewer on the same --db file did not exit at once") from error
        assert result.returncode == 1
        assert f"{db} is in use by another ferrotel view" in result.stderr, result.stderr
        assert time.monotonic() - started < 4
    finally:
        first.process.kill()
        first.process.wait()


def test_only_requests_that_name_the_viewer_get_in():
    viewer = Viewer("--allow-host", "view.proxy.example")
    try:
        api = viewer.api("/api/services")
        intake = f"http://127.0.0.1:{viewer.http}/v1/traces"
        json_body = {"Content-Type": "application/json"}
        # What a page gets when its own name resolves to 127.0.0.1 (DNS rebinding).
        for headers in (
            {"Host": f"attacker.example:{viewer.ui}"},
            {"Host": f"127.0.0.1:{viewer.ui}", "Origin": "http://attacker.example"},
            {"Host": f"127.0.0.1:{viewer.ui}", "Origin": "null"},
            {"Host": f"10.1.2.3:{viewer.ui}"},
        ):
            status, body = status_of(api, headers)
            assert status == 403, (headers, body)
        status, body = status_of(api, {"Host": f"attacker.example:{viewer.ui}"})
        assert '"attacker.example:' in body and "--allow-host attacker.example" in body
        status, _ = status_of(intake, {"Host": f"attacker.example:{viewer.http}", **json_body}, TRACES)
        assert status == 403
        assert viewer.get("/api/status")["spans"] == 0

        # The viewer's own addresses, localhost and the allowed proxy name.
        own_names = (f"127.0.0.1:{viewer.ui}", f"localhost:{viewer.ui}", "view.proxy.example", "VIEW.proxy.example:443")
        for host in own_names:
            assert status_of(api, {"Host": host})[0] == 200, host
        assert status_of(api, {"Host": "127.0.0.1", "Origin": f"http://localhost:{viewer.ui}"})[0] == 200
        assert status_of(api, {"Host": "view.proxy.example", "Origin": "https://view.proxy.example"})[0] == 200
        status, _ = status_of(intake, {"Host": f"localhost:{viewer.http}", **json_body}, TRACES)
        assert status == 200
        assert viewer.get("/api/status")["spans"] == 1
    finally:
        viewer.process.kill()
        viewer.process.wait()


NON_FINITE_APP = """
from opentelemetry import trace, metrics
gauge = metrics.get_meter("odd.numbers").create_gauge("ratio")
gauge.set(float("nan"), {"which": "nan"})
with trace.get_tracer("odd.numbers").start_as_current_span("measure") as span:
    span.set_attributes({"nan": float("nan"), "up": float("inf"), "down": float("-inf"), "fine": 0.25})
print(format(span.get_span_context().trace_id, "032x"))
"""


def test_ferrotel_json_exporter_s_nan_and_infinity_arrive(viewer, tmp):
    result = run_ferrotel(viewer, tmp, NON_FINITE_APP, "http/json", OTEL_METRICS_EXPORTER="otlp")
    [trace] = viewer.get(f"/api/traces/{result.stdout.strip()}")["data"]
    tags = {t["key"]: (t["type"], t["value"]) for t in trace["spans"][0]["tags"]}
    assert [tags[k] for k in ("nan", "up", "down", "fine")] == [
        ("float64", "NaN"),
        ("float64", "Infinity"),
        ("float64", "-Infinity"),
        ("float64", 0.25),
    ]
    [ratio] = viewer.get("/api/metrics/ratio")["data"]
    assert [p["value"] for p in ratio["points"]] == ["NaN"]


def test_otlp_json_enum_names_count_as_their_numbers(viewer):
    span = {**SPAN, "kind": "SPAN_KIND_SERVER", "status": {"code": "STATUS_CODE_ERROR", "message": "boom"}}
    traces = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    record = {"timeUnixNano": "1", "severityNumber": "SEVERITY_NUMBER_ERROR", "body": {"stringValue": "bad"}}
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    point = {"timeUnixNano": "1", "asInt": "4"}
    total = {"dataPoints": [point], "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE", "isMonotonic": True}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "jobs", "sum": total}]}]}]}
    for path, body in (("/v1/traces", traces), ("/v1/logs", logs), ("/v1/metrics", metrics)):
        assert viewer.post_to(path, json.dumps(body).encode(), "application/json") == (200, b"{}"), path
    [trace] = viewer.get(f"/api/traces/{SPAN['traceId']}")["data"]
    tags = {t["key"]: t["value"] for t in trace["spans"][0]["tags"]}
    assert (tags["span.kind"], tags["otel.status_code"], tags["error"]) == ("server", "ERROR", True)
    assert [r["severityNumber"] for r in viewer.get("/api/logs?minSeverity=17")["data"]] == [17]
    [jobs] = viewer.get("/api/metrics/jobs")["data"]
    assert (jobs["type"], [p["value"] for p in jobs["points"]]) == ("sum", [4])
    bad = {"resourceSpans": [{"scopeSpans": [{"spans": [{**SPAN, "kind": "SPAN_KIND_SIDEWAYS"}]}]}]}
    status, body = viewer.post(json.dumps(bad).encode(), "application/json")
    assert status == 400
    assert 'resourceSpans[0].scopeSpans[0].spans[0].kind: unknown value \\"SPAN_KIND_SIDEWAYS\\"' in body.decode()


def closed_by_peer(connection, within):
    """Reads until the peer closes the connection; False if it is still open after `within` s."""
    connection.settimeout(within)
    try:
        while connection.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def test_idle_and_half_finished_connections_are_closed():
    viewer = Viewer("--idle-timeout", "1")
    try:
        stalled = [
            (viewer.ui, b""),
            (viewer.ui, b"GET /api/status HTTP/1.1\r\nHo"),
            (viewer.http, b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"),
            (viewer.grpc, b""),
            (viewer.grpc, b"PRI * HTTP/2.0\r\n"),
        ]
        connections = []
        for port, first_bytes in stalled:
            connection = socket.create_connection(("127.0.0.1", port))
            connection.sendall(first_bytes)
            connections.append(connection)
        # Meanwhile the viewer serves everyone else.
        assert viewer.get("/api/status")["spans"] == 0
        assert [closed_by_peer(c, within=10) for c in connections] == [True] * len(stalled)
        assert viewer.process.poll() is None
    finally:
        viewer.process.kill()
        viewer.process.wait()


def resident_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_is_bounded_in_bytes_not_only_in_counts():
    # Spans get 3/4 of --max-memory less a tenth for archived traces (43.2 MiB here), log
    # records 1/8 (8 MiB).
    viewer = Viewer("--max-memory", "64M")
    megabytes = "x" * (5 << 20)
    blob = [{"key": "blob", "value": {"stringValue": megabytes}}]

    def send(traces):
        for i in traces:
            span = {**SPAN, "traceId": f"{i:032x}", "attributes": blob}
            body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
            assert viewer.post(body, "application/json")[0] == 200
            record = {"timeUnixNano": "1", "body": {"stringValue": megabytes[: 1 << 20]}}
            logs = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}).encode()
            assert viewer.post_to("/v1/logs", logs, "application/json")[0] == 200

    try:
        send(range(1, 41))
        status = viewer.get("/api/status")
        # Eight 5 MiB spans fit in 43.2 MiB, seven 1 MiB records in 8 MiB; the rest were evicted, counted.
        assert (status["spans"], status["evictedSpans"]) == (8, 32), status
        assert (status["logRecords"], status["evictedLogRecords"]) == (7, 33), status
        assert 40 << 20 < status["memoryBytes"]["spans"] <= 43.2 * (1 << 20)
        assert 7 << 20 < status["memoryBytes"]["logs"] <= 8 << 20
        # 240 MiB were sent; resident memory is the bound plus decoding room, and stays there.
        after_first = resident_mib(viewer.process.pid)
        assert after_first < 160, after_first
        send(range(41, 81))
        assert resident_mib(viewer.process.pid) < after_first + 32
        newest = [t["traceID"] for t in viewer.get("/api/traces?limit=20")["data"]]
        assert newest == [f"{i:032x}" for i in range(80, 72, -1)]
    finally:
        viewer.process.kill()
        viewer.process.wait()
