"""Metric Views and base-2 exponential histograms, side by side with upstream's SDK on the
same programs: each kind of View (rename, wildcard drop, attribute keys, bucket boundaries,
aggregation per instrument, several views making several streams, the default stream when
none matches), given as upstream's View objects or as ferrotel's own, read by upstream's
in-memory readers with cumulative and delta temporality; exponential histogram points
(scale, offsets, bucket counts, zero count, sum, min, max) for a known stream of values
that forces rescaling; and the default histogram aggregation variable, over OTLP to a real
receiver decoding with upstream's opentelemetry-proto."""

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from support.processes import BIN, ROOT, clean_env, run

RECEIVER = Path(__file__).parent / "apps" / "otlp_metrics_receiver.py"
UPSTREAM = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin"

# The points a reader got, without timestamps: comparable between the two SDKs. Bucket
# arrays are compared without the zero buckets at either end (upstream's grow by powers of
# two and keep an empty one for a sign never seen; the buckets counted are the same).
RECORDING = textwrap.dedent(
    """
    import json
    from opentelemetry.sdk.metrics.export import ExponentialHistogram, Histogram, MetricsData

    def trimmed(buckets):
        counts = list(buckets.bucket_counts)
        offset = buckets.offset
        while counts and counts[0] == 0:
            counts.pop(0)
            offset += 1
        while counts and counts[-1] == 0:
            counts.pop()
        return [offset if counts else 0, counts]

    def points(metrics_data):
        if metrics_data is None:
            return []
        assert isinstance(metrics_data, MetricsData), type(metrics_data)
        found = []
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    data = metric.data
                    rows = []
                    for point in data.data_points:
                        row = {"attributes": dict(point.attributes)}
                        if isinstance(data, ExponentialHistogram):
                            row.update(
                                count=point.count, sum=point.sum, min=point.min, max=point.max,
                                scale=point.scale, zero_count=point.zero_count,
                                positive=trimmed(point.positive), negative=trimmed(point.negative),
                            )
                        elif isinstance(data, Histogram):
                            row.update(
                                count=point.count, sum=point.sum, min=point.min, max=point.max,
                                bucket_counts=list(point.bucket_counts), bounds=list(point.explicit_bounds),
                            )
                        else:
                            row["value"] = point.value
                        rows.append(row)
                    temporality = getattr(data, "aggregation_temporality", None)
                    found.append({
                        "scope": scope_metrics.scope.name,
                        "name": metric.name, "unit": metric.unit, "description": metric.description,
                        "type": type(data).__name__,
                        "temporality": temporality.name if temporality else None,
                        "monotonic": getattr(data, "is_monotonic", None),
                        "points": sorted(rows, key=lambda r: json.dumps(r["attributes"], sort_keys=True)),
                    })
        return sorted(found, key=lambda m: (m["scope"], m["name"], m["description"], m["type"]))
    """
)

# argv: the SDK ("ferrotel" or "upstream"), whose View classes ("upstream" or "ferrotel").
VIEWS_APP = textwrap.dedent(
    """
    import json, sys
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import Counter, Histogram, UpDownCounter
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
    from recording import points

    if sys.argv[1] == "ferrotel":
        from ferrotel.metrics import MeterProvider
    else:
        from opentelemetry.sdk.metrics import MeterProvider
    if sys.argv[2] == "ferrotel":
        from ferrotel.metrics import (
            DefaultAggregation, DropAggregation, ExplicitBucketHistogramAggregation,
            ExponentialBucketHistogramAggregation, LastValueAggregation, SumAggregation, View,
        )
    else:
        from opentelemetry.sdk.metrics.view import (
            DefaultAggregation, DropAggregation, ExplicitBucketHistogramAggregation,
            ExponentialBucketHistogramAggregation, LastValueAggregation, SumAggregation, View,
        )

    views = [
        # Two views on one instrument: two streams, one renamed, one keeping one key.
        View(instrument_name="shop.orders", name="orders.placed", description="renamed"),
        View(instrument_name="shop.orders", attribute_keys={"outcome"}, description="by outcome"),
        View(instrument_name="debug.*", aggregation=DropAggregation()),
        View(instrument_name="shop.latency", aggregation=ExplicitBucketHistogramAggregation((0, 10, 100))),
        View(instrument_type=Histogram, meter_name="stock", aggregation=SumAggregation()),
        View(instrument_name="shop.queue", aggregation=LastValueAggregation()),
        View(instrument_type=UpDownCounter, instrument_name="shop.spr?ad",
             aggregation=ExponentialBucketHistogramAggregation(max_size=20)),
        View(instrument_name="shop.size", aggregation=ExponentialBucketHistogramAggregation()),
        View(instrument_unit="By", description="bytes moved", aggregation=DefaultAggregation()),
        View(meter_name="nobody", aggregation=DropAggregation()),
    ]
    DELTA = AggregationTemporality.DELTA
    cumulative = InMemoryMetricReader()
    delta = InMemoryMetricReader(preferred_temporality={Counter: DELTA, Histogram: DELTA, UpDownCounter: DELTA})
    provider = MeterProvider(metric_readers=[cumulative, delta], views=views)
    shop = provider.get_meter("shop", "1.0")
    stock = provider.get_meter("stock")
    orders = shop.create_counter("shop.orders", unit="{order}", description="orders placed")
    latency = shop.create_histogram("shop.latency", unit="ms")
    size = shop.create_histogram("shop.size", unit="By")
    queue = shop.create_up_down_counter("shop.queue")
    spread = shop.create_up_down_counter("shop.spread")
    noise = shop.create_counter("debug.noise")
    untouched = shop.create_histogram("shop.untouched", explicit_bucket_boundaries_advisory=[1, 2])
    weight = stock.create_histogram("stock.weight")
    shop.create_observable_gauge("debug.level", callbacks=[lambda options: [Observation(1)]])
    shop.create_observable_gauge("shop.rooms", callbacks=[lambda options: [Observation(3, {"room": "a"})]])

    def round_of(values):
        for i, v in enumerate(values):
            orders.add(1, {"outcome": "ok" if i % 3 else "declined", "region": "eu"})
            latency.record(abs(v) % 200)
            size.record(abs(v))
            queue.add(i)
            spread.add(v)
            noise.add(1)
            untouched.record(i)
            weight.record(2.5, {"unit": "kg"})

    round_of([1, -2.5, 0, 3, 0.001, -1e6, 7.25, 0])
    first = [points(cumulative.get_metrics_data()), points(delta.get_metrics_data())]
    round_of([1e-300, -4, 2 ** 40, 1e300])
    second = [points(cumulative.get_metrics_data()), points(delta.get_metrics_data())]
    print(json.dumps([first, second]))
    """
)


def run_program(python, tmp, source, *args):
    (tmp / "recording.py").write_text(RECORDING)
    (tmp / "app.py").write_text(source)
    result = run(python, "app.py", *args, cwd=tmp, env=clean_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def by_name(collection):
    found = {}
    for metric in collection:
        found.setdefault(metric["name"], []).append(metric)
    return found


@pytest.mark.parametrize("classes", ["upstream", "ferrotel"])
def test_views_give_the_streams_upstream_gives(open_sdk_python, tmp, classes):
    ours = run_program(open_sdk_python, tmp, VIEWS_APP, "ferrotel", classes)
    theirs = run_program(open_sdk_python, tmp, VIEWS_APP, "upstream", "upstream")
    assert ours.stderr == "", ours.stderr
    ours, theirs = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert ours == theirs

    # And those are the streams the views ask for, not just the same ones.
    [[first_cumulative, first_delta], [second_cumulative, second_delta]] = ours
    metrics = by_name(second_cumulative)
    assert "debug.noise" not in metrics and "debug.level" not in metrics, "dropped by a wildcard view"
    assert "shop.orders" in metrics, "the second view on shop.orders keeps its name"
    [renamed] = metrics["orders.placed"]
    assert (renamed["description"], renamed["type"]) == ("renamed", "Sum")
    assert {tuple(p["attributes"].items()) for p in renamed["points"]} == {
        (("outcome", "declined"), ("region", "eu")),
        (("outcome", "ok"), ("region", "eu")),
    }
    [by_outcome] = metrics["shop.orders"]
    assert [p["attributes"] for p in by_outcome["points"]] == [{"outcome": "declined"}, {"outcome": "ok"}]
    assert [p["value"] for p in by_outcome["points"]] == [5, 7]
    [latency] = metrics["shop.latency"][0]["points"]
    assert (latency["bounds"], latency["bucket_counts"]) == ([0, 10, 100], [3, 7, 0, 2])
    [weight] = metrics["stock.weight"]
    assert (weight["type"], weight["monotonic"], weight["points"][0]["value"]) == ("Sum", False, 30.0)
    [queue] = metrics["shop.queue"]
    assert (queue["type"], queue["points"][0]["value"]) == ("Gauge", 3)
    [untouched] = metrics["shop.untouched"][0]["points"]
    assert untouched["bounds"] == [1, 2], "no view: the default stream with its advisory boundaries"
    sizes = [(m["type"], m["description"]) for m in metrics["shop.size"]]
    assert sizes == [("ExponentialHistogram", ""), ("Histogram", "bytes moved")], "two views, two streams"

    # 1, -2.5, 0, 3, 0.001, -1e6, 7.25, 0 in at most 20 buckets per sign: scale 0, where
    # 0.001 is in bucket -10, 1 in -1 (its upper bound), 3 in 1, 7.25 in 2, 2.5 in 1, 1e6 in 19.
    [spread] = by_name(first_delta)["shop.spread"][0]["points"]
    assert (spread["count"], spread["zero_count"], spread["scale"]) == (8, 2, 0)
    assert spread["positive"] == [-10, [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1]]
    assert spread["negative"] == [1, [1] + [0] * 17 + [1]]
    assert (spread["min"], spread["max"], spread["sum"]) == (-1e6, 7.25, -999991.249)
    # Then 1e-300 and 1e300: the scale goes down to -7, the total merged down with it.
    [spread] = by_name(second_delta)["shop.spread"][0]["points"]
    assert (spread["count"], spread["scale"], spread["negative"]) == (4, -7, [0, [1]])
    [spread] = by_name(second_cumulative)["shop.spread"][0]["points"]
    assert (spread["count"], spread["zero_count"], spread["scale"]) == (12, 2, -7)
    assert spread["positive"] == [-8, [1, 0, 0, 0, 0, 0, 0, 2, 3, 0, 0, 0, 0, 0, 0, 1]]
    assert spread["negative"] == [0, [3]]


OTLP_APP = textwrap.dedent(
    """
    from opentelemetry import metrics
    meter = metrics.get_meter("shop")
    latency = meter.create_histogram("shop.latency", unit="ms")
    for v in [0, 1, 2, 3.5, 0.001, 1e6, 7.25, 0, 2 ** 40, 1e-300, 1e300]:
        latency.record(v, {"route": "/checkout"})
    """
)


def exponential_points(lines):
    """The exponential histogram points of every request a receiver printed, without
    timestamps, bucket arrays trimmed of zeros at either end."""

    def trimmed(buckets):
        counts = [int(c) for c in buckets.get("bucket_counts", [])]
        offset = buckets.get("offset", 0)
        while counts and counts[0] == 0:
            counts.pop(0)
            offset += 1
        while counts and counts[-1] == 0:
            counts.pop()
        return [offset if counts else 0, counts]

    found = []
    for line in lines:
        for resource_metrics in json.loads(line)["resource_metrics"]:
            for scope_metrics in resource_metrics["scope_metrics"]:
                for metric in scope_metrics["metrics"]:
                    assert "histogram" not in metric, metric
                    histogram = metric["exponential_histogram"]
                    for point in histogram["data_points"]:
                        found.append(
                            {
                                "name": metric["name"],
                                "unit": metric["unit"],
                                "temporality": histogram["aggregation_temporality"],
                                "attributes": point["attributes"],
                                "count": point["count"],
                                "sum": point["sum"],
                                "min": point["min"],
                                "max": point["max"],
                                "scale": point.get("scale", 0),
                                "zero_count": point.get("zero_count", "0"),
                                "positive": trimmed(point.get("positive", {})),
                                "negative": trimmed(point.get("negative", {})),
                            }
                        )
    return found


def received(launcher, python, tmp, source, protocol, **env):
    """(the app's stdout, the requests the receiver got) from one run of `source` under
    `launcher`, exporting metrics only."""
    receiver = subprocess.Popen(
        [str(UPSTREAM / "python"), str(RECEIVER)], stdout=subprocess.PIPE, text=True, env=clean_env()
    )
    try:
        port = receiver.stdout.readline().split()[1]
        (tmp / "app.py").write_text(source)
        settings = clean_env(
            OTEL_TRACES_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_METRICS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}",
            **env,
        )
        result = run(launcher, python, tmp / "app.py", env=settings, timeout=120)
        assert result.returncode == 0, result.stderr
    finally:
        receiver.terminate()
        out, _ = receiver.communicate(timeout=10)
    return result.stdout, [line for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_the_default_histogram_aggregation_variable_sends_what_upstream_sends(tmp, protocol, temporality):
    env = {
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": temporality,
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
    }
    _, ours = received(BIN / "ferrotel-instrument", BIN / "python", tmp, OTLP_APP, protocol, **env)
    upstream = UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python"
    _, theirs = received(*upstream, tmp, OTLP_APP, "http/protobuf", **env)
    ours, theirs = exponential_points(ours), exponential_points(theirs)
    assert ours == theirs
    [point] = ours
    assert point["temporality"] == f"AGGREGATION_TEMPORALITY_{temporality.upper()}"
    # 1e-300 to 1e300 span about 2^11 powers of two: 160 buckets hold them at scale -4.
    assert (point["count"], point["zero_count"], point["scale"]) == ("11", "2", -4)
    assert (point["min"], point["max"]) == (0.0, 1e300)


DUP_APP = textwrap.dedent(
    """
    import threading
    import requests
    from flask import Flask
    from werkzeug.serving import make_server

    app = Flask(__name__)

    @app.route("/hello/<int:n>")
    def hello(n):
        return f"hi {n}"

    server = make_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for path in ["/hello/1", "/hello/2", "/missing"]:
        requests.get(f"http://127.0.0.1:{server.server_port}{path}")
    server.shutdown()
    print(server.server_port)
    """
)

OLD_NAMES = {"http.server.duration", "http.client.duration"}


def http_metrics(stdout, lines):
    """{(name, unit, description): sorted [(attributes, count or value)]}, the app's port
    written as PORT so two runs compare."""
    port = stdout.split()[-1]
    found = {}
    for line in lines:
        for resource_metrics in json.loads(line.replace(port, "PORT"))["resource_metrics"]:
            for scope_metrics in resource_metrics["scope_metrics"]:
                for metric in scope_metrics["metrics"]:
                    kind = "histogram" if "histogram" in metric else "sum"
                    rows = found.setdefault((metric["name"], metric.get("unit"), kind), [])
                    for point in metric[kind]["data_points"]:
                        attributes = {a["key"]: next(iter(a["value"].values())) for a in point.get("attributes", [])}
                        rows.append((attributes, point.get("count") or point.get("as_int") or point.get("as_double")))
    return {key: sorted(rows, key=lambda r: json.dumps(r, sort_keys=True)) for key, rows in found.items()}


def test_dup_mode_records_the_old_http_metric_names_as_upstream_does(tmp):
    env = {"OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"}
    ferrotel = BIN / "ferrotel-instrument", BIN / "python"
    upstream = UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python"
    ours = http_metrics(*received(*ferrotel, tmp, DUP_APP, "http/protobuf", **env))
    theirs = http_metrics(*received(*upstream, tmp, DUP_APP, "http/protobuf", **env))
    # ferrotel's server also measures response bodies, which upstream's Flask instrumentation
    # does not (its GETs carry no request body to measure): the rest is the same.
    [body_sizes] = [ours.pop(key) for key in list(ours) if key[0] == "http.server.response.body.size"]
    assert sorted(count for _, count in body_sizes) == ["1", "2"]
    assert ours == theirs

    # And those are the old names beside the stable ones, not just the same ones.
    assert ("http.server.duration", "ms", "histogram") in ours
    [ok, missing] = ours[("http.server.duration", "ms", "histogram")]
    assert ok == (
        {
            "http.method": "GET",
            "http.scheme": "http",
            "http.flavor": "1.1",
            "http.host": "127.0.0.1:PORT",
            "net.host.name": "127.0.0.1:PORT",
            "net.host.port": "PORT",
            "http.server_name": "127.0.0.1",
            "http.status_code": "200",
            "http.target": "/hello/<int:n>",
        },
        "2",
    )
    assert (missing[0]["http.status_code"], "http.target" in missing[0]) == ("404", False)
    [ok, missing] = ours[("http.client.duration", "ms", "histogram")]
    assert (ok[0]["http.status_code"], ok[0]["net.peer.port"], ok[0]["http.flavor"], ok[1]) == (
        "200",
        "PORT",
        "1.0",
        "2",
    )
    [active] = ours[("http.server.active_requests", "{request}", "sum")]
    assert {"http.method", "http.request.method", "http.server_name"} <= set(active[0]), (
        "old and new names on one counter"
    )

    stable_only = http_metrics(
        *received(*ferrotel, tmp, DUP_APP, "http/protobuf", OTEL_SEMCONV_STABILITY_OPT_IN="http")
    )
    assert {name for name, _, _ in stable_only} == {
        "http.server.request.duration",
        "http.server.active_requests",
        "http.server.response.body.size",
        "http.client.request.duration",
    }
