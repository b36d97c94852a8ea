"""Jaeger UI's requests, replayed against a real `ferrotel view`: the classic API that Jaeger
UI 2.14 and later calls (search, trace, Compare's multi-id fetch, operations by kind, the
service map's window, archive, file transform, the Monitor tab's RED metrics) and the v3 API
of 2.15 and later (services, operations, trace summaries, OTLP-shaped traces). The requests
are written as jaeger-ui's own source builds them (src/api/jaeger.ts, src/api/v3/client.ts,
src/actions/jaeger-api.ts, the Monitor's ServicesView); the assertions check the fields its
code reads (model/transform-trace-data.ts, reducers/metrics.ts, api/v3/schemas.ts)."""

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from support.viewer import Viewer

NOW_MS = int(time.time() * 1000)
# Every span ends within the last few minutes, so the Monitor's windows hold them.
BASE_NS = (NOW_MS - 5 * 60_000) * 1_000_000
TRACE_A = "0a" * 16
TRACE_B = "0b" * 16
HEX_ID = re.compile(r"^[0-9a-f]{32}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def attribute(key, value):
    kind = {bool: "boolValue", int: "intValue", float: "doubleValue", str: "stringValue"}[type(value)]
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def span(trace, number, parent, name, start_ms, duration_ms, kind=2, error=False, **extra):
    fields = {
        "traceId": trace,
        "spanId": f"{number:016x}",
        "parentSpanId": f"{parent:016x}" if parent else "",
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(BASE_NS + start_ms * 1_000_000),
        "endTimeUnixNano": str(BASE_NS + (start_ms + duration_ms) * 1_000_000),
        "status": {"code": 2, "message": "declined"} if error else {},
    }
    return fields | extra


def resource(service, *spans):
    attributes = [attribute("service.name", service), attribute("deployment.environment", "test")]
    return {"resource": {"attributes": attributes}, "scopeSpans": [{"scope": {"name": "shop"}, "spans": list(spans)}]}


EXCEPTION = {"name": "exception", "timeUnixNano": str(BASE_NS + 30_000_000)}
EXCEPTION["attributes"] = [attribute("exception.type", "CardDeclined")]

# Trace A: frontend → payments, the payment failing with an exception event.
# Trace B: frontend only, fast and fine.
DATASET = {
    "resourceSpans": [
        resource(
            "frontend",
            span(TRACE_A, 1, 0, "GET /checkout", 0, 120, attributes=[attribute("http.route", "/checkout")]),
            span(TRACE_A, 2, 1, "POST /pay", 10, 100, kind=3),
            span(TRACE_B, 10, 0, "GET /health", 60_000, 5),
        ),
        resource("payments", span(TRACE_A, 3, 2, "POST /pay", 20, 80, error=True, events=[EXCEPTION])),
    ]
}


@pytest.fixture(scope="module")
def jaeger():
    viewer = Viewer()
    status, _ = viewer.post(json.dumps(DATASET).encode(), "application/json")
    assert status == 200
    yield viewer
    viewer.process.kill()
    viewer.process.wait()


def query(viewer, path, params):
    """GETs `path` with params encoded as Jaeger UI's query-string library does (lists repeat)."""
    return viewer.get(f"{path}?{urllib.parse.urlencode(params, doseq=True)}")


def failure(viewer, path, method="GET", body=None):
    request = urllib.request.Request(viewer.api(path), body, method=method)
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    return error.value.code, json.loads(error.value.read())


def post(viewer, path, body=b""):
    request = urllib.request.Request(viewer.api(path), body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def assert_jaeger_trace(trace, trace_id, span_count):
    """What Jaeger UI's transformTraceData and its trace views read."""
    assert trace["traceID"] == trace_id
    assert len(trace["spans"]) == span_count
    for s in trace["spans"]:
        assert s["traceID"] == trace_id and re.match(r"^[0-9a-f]{16}$", s["spanID"])
        assert s["processID"] in trace["processes"]
        assert isinstance(s["startTime"], int) and isinstance(s["duration"], int)
        assert s["flags"] & 1 == 1, "exported spans were sampled"
        assert all(set(t) == {"key", "type", "value"} for t in s["tags"])
        assert all(set(log) == {"timestamp", "fields"} for log in s["logs"])
        assert all(r["refType"] in ("CHILD_OF", "FOLLOWS_FROM") for r in s["references"])
    for process in trace["processes"].values():
        assert isinstance(process["serviceName"], str) and isinstance(process["tags"], list)


def test_services_and_operations(jaeger):
    assert jaeger.get("/api/services")["data"] == ["frontend", "payments"]
    assert jaeger.get("/api/services/frontend/operations")["data"] == ["GET /checkout", "GET /health", "POST /pay"]
    # The Monitor tab's fetchServiceServerOps.
    server_ops = query(jaeger, "/api/operations", {"service": "frontend", "spanKind": "server"})["data"]
    assert server_ops == [
        {"name": "GET /checkout", "spanKind": "server"},
        {"name": "GET /health", "spanKind": "server"},
    ]
    every_kind = query(jaeger, "/api/operations", {"service": "frontend"})["data"]
    assert {"name": "POST /pay", "spanKind": "client"} in every_kind and len(every_kind) == 3


def test_search_as_the_search_form_submits_it(jaeger):
    end_us = NOW_MS * 1000
    form = {
        "service": "payments",
        "limit": 20,
        "lookback": "1h",
        "start": end_us - 3_600_000_000,
        "end": end_us,
        "tags": json.dumps({"exception.type": "CardDeclined"}),
        "minDuration": "50ms",
    }
    [trace] = query(jaeger, "/api/traces", form)["data"]
    assert_jaeger_trace(trace, TRACE_A, 3)
    payment = next(s for s in trace["spans"] if trace["processes"][s["processID"]]["serviceName"] == "payments")
    assert {t["key"]: t["value"] for t in payment["tags"]}["error"] is True
    [event] = payment["logs"]
    assert event["fields"][:2] == [
        {"key": "event", "type": "string", "value": "exception"},
        {"key": "exception.type", "type": "string", "value": "CardDeclined"},
    ]
    # A look-back alone (older clients send no start) counts back from now; newest received first.
    assert [t["traceID"] for t in query(jaeger, "/api/traces", {"service": "frontend", "lookback": "1h"})["data"]] == [
        TRACE_A,
        TRACE_B,
    ]
    assert query(jaeger, "/api/traces", {"service": "frontend", "lookback": "1m"})["data"] == []


def test_compare_fetches_several_ids_at_once(jaeger):
    missing = "0c" * 16
    body = query(jaeger, "/api/traces", {"traceID": [TRACE_A, TRACE_B, missing]})
    assert [t["traceID"] for t in body["data"]] == [TRACE_A, TRACE_B]
    assert body["errors"] == [{"code": 404, "msg": "trace not found", "traceID": missing}]


def test_one_trace_and_its_json_views(jaeger):
    [trace] = jaeger.get(f"/api/traces/{TRACE_A}")["data"]
    assert_jaeger_trace(trace, TRACE_A, 3)
    with urllib.request.urlopen(jaeger.api(f"/api/traces/{TRACE_A}?raw=true&prettyPrint=true"), timeout=10) as r:
        text = r.read().decode()
    assert text.startswith("{\n") and json.loads(text)["data"][0]["traceID"] == TRACE_A
    code, body = failure(jaeger, f"/api/traces/{'0c' * 16}")
    assert code == 404 and body["errors"][0]["code"] == 404


def test_dependencies_over_the_window_the_ui_sends(jaeger):
    week = 7 * 24 * 3600 * 1000
    [edge] = query(jaeger, "/api/dependencies", {"endTs": NOW_MS, "lookback": week})["data"]
    assert (edge["parent"], edge["child"], edge["callCount"]) == ("frontend", "payments", 1)
    before_any = {"endTs": NOW_MS - 10 * 60_000, "lookback": 60_000}
    assert query(jaeger, "/api/dependencies", before_any)["data"] == []


def test_archive_and_transform(jaeger):
    assert post(jaeger, f"/api/archive/{TRACE_B}")["data"] == []
    assert jaeger.get("/api/status")["archivedTraces"] == 1
    code, _ = failure(jaeger, f"/api/archive/{'0c' * 16}", method="POST", body=b"")
    assert code == 404
    transformed = post(jaeger, "/api/transform", json.dumps(DATASET).encode())["data"]
    assert sorted(t["traceID"] for t in transformed) == [TRACE_A, TRACE_B]
    assert_jaeger_trace(next(t for t in transformed if t["traceID"] == TRACE_A), TRACE_A, 3)
    assert jaeger.get("/api/status")["spans"] == 4, "transform keeps nothing"


def monitor(jaeger, measure, **extra):
    """One of the Monitor tab's requests: fetchMetrics joins services as `service=a,service=b`."""
    payload = {
        "quantile": 0.95,
        "endTs": NOW_MS,
        "lookback": 3_600_000,
        "step": 60_000,
        "ratePer": 600_000,
        "spanKind": "server",
    }
    payload |= extra
    return jaeger.get(f"/api/metrics/{measure}?service=frontend&{urllib.parse.urlencode(payload)}")


def test_monitor_tab_red_metrics(jaeger):
    latencies = monitor(jaeger, "latencies", quantile=0.5)
    assert (latencies["name"], latencies["type"]) == ("service_latencies", "GAUGE")
    [series] = latencies["metrics"]
    assert series["labels"][0] == {"name": "service_name", "value": "frontend"}
    points = series["metricPoints"]
    assert points and all(ISO_MS.match(p["timestamp"]) for p in points)
    # Two frontend server spans (120 ms and 5 ms) within the latest 10-minute window.
    assert points[-1]["gaugeValue"]["doubleValue"] == 5.0
    assert (
        monitor(jaeger, "latencies", quantile=1)["metrics"][0]["metricPoints"][-1]["gaugeValue"]["doubleValue"] == 120
    )
    calls = monitor(jaeger, "calls")
    assert calls["name"] == "service_call_rate"
    assert calls["metrics"][0]["metricPoints"][-1]["gaugeValue"]["doubleValue"] == pytest.approx(2 / 600)
    assert monitor(jaeger, "errors")["metrics"][0]["metricPoints"][-1]["gaugeValue"]["doubleValue"] == 0
    grouped = monitor(jaeger, "latencies", groupByOperation="true")
    assert grouped["name"] == "service_operation_latencies"
    operations = {
        next(label["value"] for label in m["labels"] if label["name"] == "operation"): m["metricPoints"][-1]
        for m in grouped["metrics"]
    }
    assert {k: v["gaugeValue"]["doubleValue"] for k, v in operations.items()} == {
        "GET /checkout": 120,
        "GET /health": 5,
    }
    failing = jaeger.get(
        "/api/metrics/errors?service=payments&"
        + urllib.parse.urlencode({"endTs": NOW_MS, "lookback": 3_600_000, "step": 60_000, "ratePer": 600_000})
    )
    assert failing["metrics"][0]["metricPoints"][-1]["gaugeValue"]["doubleValue"] == 1.0


def test_v3_services_and_operations(jaeger):
    assert jaeger.get("/api/v3/services") == {"services": ["frontend", "payments"]}
    operations = jaeger.get("/api/v3/operations?service=frontend")["operations"]
    assert {"name": "GET /checkout", "spanKind": "server"} in operations
    assert {"name": "POST /pay", "spanKind": "client"} in operations


def v3_search(jaeger, path, **query_fields):
    start = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(NOW_MS / 1000 - 3600))
    end = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(NOW_MS / 1000 + 60))
    params = {"query.startTimeMin": start, "query.startTimeMax": end, "query.searchDepth": "20"}
    params |= {f"query.{k}": v for k, v in query_fields.items()}
    return query(jaeger, path, params)


def test_v3_trace_summaries_as_the_search_page_asks(jaeger):
    summaries = v3_search(jaeger, "/api/v3/trace-summaries", serviceName="frontend")["summaries"]
    assert [s["traceId"] for s in summaries] == [TRACE_A, TRACE_B]
    checkout = summaries[0]
    assert (checkout["rootServiceName"], checkout["rootOperationName"]) == ("frontend", "GET /checkout")
    assert (checkout["spanCount"], checkout["errorSpanCount"], checkout["orphanSpanCount"]) == (3, 1, 0)
    assert checkout["services"] == [
        {"name": "frontend", "spanCount": 2, "errorSpanCount": 0},
        {"name": "payments", "spanCount": 1, "errorSpanCount": 1},
    ]
    assert re.match(r"^\d+$", checkout["minStartTimeUnixNano"]) and HEX_ID.match(checkout["traceId"])
    assert int(checkout["maxEndTimeUnixNano"]) - int(checkout["minStartTimeUnixNano"]) == 120_000_000
    found = v3_search(jaeger, "/api/v3/trace-summaries", attributes=json.dumps({"error": "true"}), durationMin="0.05s")
    assert [s["traceId"] for s in found["summaries"]] == [TRACE_A]


REQUIRED_SPAN_FIELDS = {
    "traceId",
    "spanId",
    "traceState",
    "parentSpanId",
    "flags",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "attributes",
    "droppedAttributesCount",
    "events",
    "droppedEventsCount",
    "links",
    "droppedLinksCount",
    "status",
}


def test_v3_traces_are_otlp_with_every_field_the_schema_requires(jaeger):
    result = v3_search(jaeger, "/api/v3/traces", serviceName="payments")["result"]
    spans = [s for r in result["resourceSpans"] for ss in r["scopeSpans"] for s in ss["spans"]]
    assert {s["traceId"] for s in spans} == {TRACE_A}
    for resource_spans in result["resourceSpans"]:
        assert set(resource_spans) >= {"resource", "scopeSpans", "schemaUrl"}
        assert set(resource_spans["scopeSpans"][0]["scope"]) >= {
            "name",
            "version",
            "attributes",
            "droppedAttributesCount",
        }
    for s in spans:
        assert set(s) >= REQUIRED_SPAN_FIELDS
        assert isinstance(s["kind"], int) and set(s["status"]) == {"message", "code"}
    [one] = jaeger.get(f"/api/v3/traces/{TRACE_B}")["result"]["resourceSpans"]
    assert one["scopeSpans"][0]["spans"][0]["name"] == "GET /health"
    code, body = failure(jaeger, f"/api/v3/traces/{'0c' * 16}")
    assert code == 404 and body["code"] == 5 and "not found" in body["message"]
    code, body = failure(jaeger, "/api/v3/traces?query.startTimeMin=yesterday")
    assert code == 400 and body["code"] == 3


def test_search_matches_what_developers_type(jaeger):
    def found(*pairs):
        return [t["traceID"] for t in query(jaeger, "/api/traces", list(pairs))["data"]]

    both = [TRACE_A, TRACE_B]
    # The values Jaeger shows as tags: derived from status and kind, not attributes.
    assert found(("tags", '{"error":"true"}')) == [TRACE_A]
    assert found(("tag", "error:true")) == [TRACE_A]
    assert found(("tag", "otel.status_code:ERROR")) == [TRACE_A]
    assert found(("tag", "otel.status_description:declined")) == [TRACE_A]
    assert found(("tag", "span.kind:client")) == [TRACE_A]
    assert found(("tag", "span.kind:server"), ("service", "frontend")) == both
    # Span, resource and event attributes.
    assert found(("tag", "http.route:/checkout")) == [TRACE_A]
    assert found(("tag", "deployment.environment:test")) == both
    assert found(("tag", "exception.type:CardDeclined")) == [TRACE_A]
    assert found(("tag", "event:exception")) == [TRACE_A]
    # The classic `tag=` form is a condition, never ignored; several must all hold.
    assert found(("tag", "http.route:/nowhere")) == []
    assert found(("tag", "span.kind:client"), ("tag", "error:true")) == []
    with pytest.raises(urllib.error.HTTPError) as bad:
        found(("tag", "no-colon"))
    assert bad.value.code == 400


def test_trace_list_counts_every_match_and_hints_at_conditions_over_several_spans(jaeger):
    listed = query(jaeger, "/api/trace-summaries", {"limit": 1})
    assert (len(listed["data"]), listed["total"], listed["totalExact"], listed["limit"]) == (1, 2, True, 1)
    # The client span and the failing span are different spans of trace A.
    apart = query(jaeger, "/api/trace-summaries", {"tags": json.dumps({"span.kind": "client", "error": "true"})})
    assert (apart["data"], apart["total"], apart["hint"]) == ([], 0, {"acrossSpans": 1, "acrossSpansExact": True})
    across = query(
        jaeger, "/api/trace-summaries", {"tags": json.dumps({"span.kind": "client", "error": "true"}), "match": "trace"}
    )
    [row] = across["data"]
    assert row["traceID"] == TRACE_A and sorted(row["matchedSpanIDs"]) == [f"{2:016x}", f"{3:016x}"]
