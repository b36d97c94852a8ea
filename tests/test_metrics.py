"""The metrics signal: Metrics API instruments aggregate in ferrotel's SDK and are exported
over every OTLP protocol to a real receiver (ferrotel view), where they must equal what
upstream's SDK sends for the same app."""

import re

import pytest
from support.viewer import run_ferrotel, run_upstream

APP = """
import time
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
meter = metrics.get_meter("shop.metrics", "1.0")
orders = meter.create_counter("shop.orders", unit="{order}", description="orders placed")
latency = meter.create_histogram("shop.latency", unit="ms", description="checkout latency")
bounded = meter.create_histogram("shop.size", explicit_bucket_boundaries_advisory=[1.0, 10.0])
queue = meter.create_up_down_counter("shop.queue")
temperature = meter.create_gauge("shop.temperature", unit="Cel")

def rooms(options):
    assert isinstance(options, CallbackOptions)
    return [Observation(3, {"room": "a"}), Observation(4.5, {"room": "b"})]

meter.create_observable_gauge("shop.occupancy", callbacks=[rooms])
meter.create_observable_counter("shop.uptime", callbacks=[lambda options: [Observation(120)]])
assert isinstance(orders, metrics.Counter) and isinstance(latency, metrics.Histogram)
assert meter.create_counter("shop.orders", unit="{order}", description="orders placed") is not None
for i in range(10):
    orders.add(1, {"outcome": "ok" if i % 3 else "declined", "region": "eu"})
    latency.record(i * 10.5, {"route": "/checkout"})
    bounded.record(i)
queue.add(5)
queue.add(-2)
temperature.set(20)
temperature.set(21.5)
"""


def series(viewer, service):
    """{name: (type, unit, description, points without timestamps)} for one service."""
    result = {}
    for metric in viewer.get(f"/api/metrics?service={service}")["data"]:
        [data] = viewer.get(f"/api/metrics/{metric['name']}?service={service}")["data"]
        points = [
            {k: v for k, v in p.items() if k not in ("timeUnixNano", "startTimeUnixNano")} for p in data["points"]
        ]
        points.sort(key=lambda p: sorted(p["attributes"].items()))
        result[metric["name"]] = (metric["type"], metric["unit"], metric["description"], points)
    return result


def send_with_ferrotel(viewer, tmp, protocol, service, source=APP, **extra):
    settings = {"OTEL_SERVICE_NAME": service, "OTEL_TRACES_EXPORTER": "none", **extra}
    return run_ferrotel(viewer, tmp, source, protocol, **settings)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_instruments_arrive_as_upstream_sends_them(viewer, tmp, protocol):
    send_with_ferrotel(viewer, tmp, protocol, "ferrotel-metrics")
    run_upstream(viewer, tmp, APP, "http/protobuf", OTEL_SERVICE_NAME="upstream-metrics", OTEL_METRICS_EXPORTER="otlp")
    ours, theirs = series(viewer, "ferrotel-metrics"), series(viewer, "upstream-metrics")
    assert ours == theirs

    assert ours["shop.orders"][:3] == ("sum", "{order}", "orders placed")
    assert [(p["attributes"]["outcome"], p["value"]) for p in ours["shop.orders"][3]] == [("declined", 4), ("ok", 6)]
    [latency] = ours["shop.latency"][3]
    assert (latency["count"], latency["sum"], latency["min"], latency["max"]) == (10, 472.5, 0.0, 94.5)
    assert latency["explicitBounds"][:3] == [0.0, 5.0, 10.0]
    [size] = ours["shop.size"][3]
    assert (size["explicitBounds"], size["bucketCounts"]) == ([1.0, 10.0], [2, 8, 0])
    assert [p["value"] for p in ours["shop.queue"][3]] == [3]
    assert [p["value"] for p in ours["shop.temperature"][3]] == [21.5]
    occupancy = [(p["attributes"], p["value"]) for p in ours["shop.occupancy"][3]]
    assert occupancy == [({"room": "a"}, 3), ({"room": "b"}, 4.5)]
    assert [p["value"] for p in ours["shop.uptime"][3]] == [120]


def test_periodic_collection_and_delta_temporality(viewer, tmp):
    source = """
import time
from opentelemetry import metrics
counter = metrics.get_meter("ticks").create_counter("ticks")
for _ in range(3):
    counter.add(2)
    time.sleep(0.4)
"""
    send_with_ferrotel(
        viewer,
        tmp,
        "http/protobuf",
        "ticker",
        source=source,
        OTEL_METRIC_EXPORT_INTERVAL="300",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta",
    )
    [data] = viewer.get("/api/metrics/ticks?service=ticker")["data"]
    values = [p["value"] for p in data["points"]]
    # Each interval reports only what was added in it; together they add up to every add.
    assert len(values) >= 2 and sum(values) == 6 and max(values) <= 4, values


def test_console_exporter_and_bad_instruments(tmp):
    source = """
from opentelemetry import metrics
meter = metrics.get_meter("console.test")
meter.create_counter("1-not-a-name").add(1)
counter = meter.create_counter("requests", unit="{request}")
counter.add(3, {"route": "/a"})
counter.add(-1)
counter.add("three")
meter.create_histogram("sizes").record(-1)
meter.create_observable_gauge("broken", callbacks=[lambda options: 1 / 0])
"""
    result = send_with_ferrotel(None, tmp, "http/protobuf", "console", source=source, OTEL_METRICS_EXPORTER="console")
    assert "metric requests (sum, cumulative, monotonic) [{request}] (console.test)" in result.stdout
    assert re.search(r"\{route=\"/a\"\} 3\n", result.stdout), result.stdout
    assert '"1-not-a-name" is not a valid instrument name' in result.stderr
    assert "counter requests was given a negative amount" in result.stderr
    assert "histogram sizes was given a negative amount" in result.stderr
    assert "the callback of broken failed and was skipped: ZeroDivisionError" in result.stderr


FLASK_APP = """
from flask import Flask
app = Flask(__name__)

@app.route("/users/<int:uid>")
def user(uid):
    return {"id": uid}

@app.route("/boom")
def boom():
    raise ValueError("no")

client = app.test_client()
for path in ["/users/1", "/users/2", "/users/3", "/boom", "/missing"]:
    client.get(path).close()
"""


def test_http_server_requests_are_measured_as_upstream_measures_them(viewer, tmp):
    send_with_ferrotel(viewer, tmp, "http/protobuf", "ferrotel-flask", source=FLASK_APP, OTEL_TRACES_EXPORTER="otlp")
    run_upstream(
        viewer,
        tmp,
        FLASK_APP,
        "http/protobuf",
        OTEL_SERVICE_NAME="upstream-flask",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_SEMCONV_STABILITY_OPT_IN="http",
    )
    ours, theirs = series(viewer, "ferrotel-flask"), series(viewer, "upstream-flask")

    def counted(points):
        # Upstream types an error by the status Flask answered with; ferrotel by the exception
        # Flask caught, as its span does (both are what the convention allows).
        return [({k: v for k, v in p["attributes"].items() if k != "error.type"}, p["count"]) for p in points]

    unit, description = "s", "Duration of HTTP server requests."
    assert (
        ours["http.server.request.duration"][:3]
        == theirs["http.server.request.duration"][:3]
        == (
            "histogram",
            unit,
            description,
        )
    )
    assert counted(ours["http.server.request.duration"][3]) == counted(theirs["http.server.request.duration"][3])
    by_route = {p["attributes"].get("http.route"): p for p in ours["http.server.request.duration"][3]}
    assert by_route["/users/<int:uid>"]["count"] == 3
    assert by_route["/boom"]["attributes"]["error.type"] == "ValueError"
    assert by_route[None]["attributes"]["http.response.status_code"] == 404
    assert by_route["/users/<int:uid>"]["explicitBounds"][:2] == [0.005, 0.01]
    # Exemplars (trace_based, the default) point at the server span each request was measured in.
    [exemplar] = by_route["/boom"]["exemplars"]
    [trace] = viewer.get(f"/api/traces/{exemplar['traceID']}")["data"]
    [span] = [s for s in trace["spans"] if s["spanID"] == exemplar["spanID"]]
    assert span["operationName"] == "GET /boom" and exemplar["value"] == pytest.approx(span["duration"] / 1e6, rel=0.5)
    assert [p["value"] for p in ours["http.server.active_requests"][3]] == [0]
    assert ours["http.server.active_requests"][3] == theirs["http.server.active_requests"][3]


CLIENT_APP = """
import os
import requests
target = os.environ["TARGET"]
requests.get(f"{target}/api/status")
requests.get(f"{target}/api/status")
requests.get(f"{target}/api/nothing-here")
try:
    requests.get("http://127.0.0.1:9/refused", timeout=2)
except requests.ConnectionError:
    pass
"""


def test_http_client_calls_are_measured_as_upstream_measures_them(viewer, tmp):
    target = f"http://127.0.0.1:{viewer.ui}"
    send_with_ferrotel(viewer, tmp, "http/protobuf", "ferrotel-client", source=CLIENT_APP, TARGET=target)
    run_upstream(
        viewer,
        tmp,
        CLIENT_APP,
        "http/protobuf",
        OTEL_SERVICE_NAME="upstream-client",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_SEMCONV_STABILITY_OPT_IN="http",
        TARGET=target,
    )
    ours = series(viewer, "ferrotel-client")["http.client.request.duration"]
    theirs = series(viewer, "upstream-client")["http.client.request.duration"]

    def counted(points):
        # Upstream names a failure's type without its module; ferrotel as its spans do.
        return [
            ({k: v.rsplit(".", 1)[-1] if k == "error.type" else v for k, v in p["attributes"].items()}, p["count"])
            for p in points
        ]

    assert ours[:3] == theirs[:3] == ("histogram", "s", "Duration of HTTP client requests.")
    assert counted(ours[3]) == counted(theirs[3])
    statuses = {p["attributes"].get("http.response.status_code"): p for p in ours[3]}
    assert statuses[200]["count"] == 2 and statuses[200]["attributes"]["network.protocol.version"] == "1.1"
    assert statuses[404]["attributes"]["error.type"] == "404"
    assert statuses[None]["attributes"]["error.type"] == "requests.exceptions.ConnectionError"
    assert statuses[None]["attributes"]["server.port"] == 9
