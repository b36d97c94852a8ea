"""Metrics with components from the ecosystem on ferrotel's MeterProvider: upstream's
MetricReaders (a periodic reader with a Python exporter, the in-memory reader, two readers
with different temporalities side by side) get exactly the points upstream's own
MeterProvider gives them for the same program, as the SDK's MetricsData; exporters and
readers installed as `opentelemetry_metrics_exporter` entry points work by name."""

import json
import sys
import textwrap

import pytest
from support.processes import clean_env, run
from support.wheels import build_wheel

# What a Python exporter or reader received, without timestamps or resource: comparable
# between the two SDKs. Written next to each program as `recording.py`.
RECORDING = textwrap.dedent(
    """
    import json
    from opentelemetry.sdk.metrics.export import (
        Histogram, MetricExporter, MetricExportResult, MetricsData, NumberDataPoint,
    )

    def points(metrics_data):
        assert isinstance(metrics_data, MetricsData), type(metrics_data)
        found = []
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                scope = scope_metrics.scope
                for metric in scope_metrics.metrics:
                    data = metric.data
                    rows = []
                    for point in data.data_points:
                        start = point.start_time_unix_nano
                        assert start is None or start <= point.time_unix_nano
                        row = {"attributes": dict(point.attributes), "start": start is not None}
                        if isinstance(data, Histogram):
                            row.update(
                                count=point.count, sum=point.sum, min=point.min, max=point.max,
                                bucket_counts=list(point.bucket_counts), bounds=list(point.explicit_bounds),
                            )
                        else:
                            assert isinstance(point, NumberDataPoint)
                            row["value"] = point.value
                        rows.append(row)
                    temporality = getattr(data, "aggregation_temporality", None)
                    found.append({
                        "scope": [scope.name, scope.version, dict(scope.attributes or {})],
                        "name": metric.name, "unit": metric.unit, "description": metric.description,
                        "type": type(data).__name__,
                        "temporality": temporality.name if temporality else None,
                        "monotonic": getattr(data, "is_monotonic", None),
                        "points": sorted(rows, key=lambda r: json.dumps(r["attributes"], sort_keys=True)),
                    })
        return sorted(found, key=lambda m: (m["scope"][0], m["name"]))

    class RecordingExporter(MetricExporter):
        def __init__(self, **preferences):
            super().__init__(**preferences)
            self.exports = []

        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            self.exports.append(points(metrics_data))
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kwargs):
            self.exports.append("shutdown")
    """
)

READERS_APP = textwrap.dedent(
    """
    import json, sys
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import Counter, Histogram, ObservableCounter
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality, InMemoryMetricReader, PeriodicExportingMetricReader,
    )
    from recording import RecordingExporter, points

    if sys.argv[1] == "ferrotel":
        from ferrotel.metrics import MeterProvider
    else:
        from opentelemetry.sdk.metrics import MeterProvider

    DELTA = AggregationTemporality.DELTA
    exporter = RecordingExporter()
    periodic = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    delta = InMemoryMetricReader(preferred_temporality={Counter: DELTA, Histogram: DELTA, ObservableCounter: DELTA})
    provider = MeterProvider(metric_readers=[periodic, delta])

    meter = provider.get_meter("shop", "1.0", attributes={"team": "core"})
    other = provider.get_meter("stock")
    orders = meter.create_counter("shop.orders", unit="{order}", description="orders placed")
    latency = meter.create_histogram("shop.latency", unit="ms", description="checkout latency")
    sizes = meter.create_histogram("shop.size", explicit_bucket_boundaries_advisory=[1.0, 10.0])
    queue = meter.create_up_down_counter("shop.queue")
    temperature = meter.create_gauge("shop.temperature", unit="Cel")
    level = other.create_counter("stock.level", unit="By")
    uptime = [100]

    def rooms(options):
        return [Observation(3, {"room": "a"}), Observation(4.5, {"room": "b"})]

    def seconds_up(options):
        uptime[0] += 20
        return [Observation(uptime[0])]

    meter.create_observable_gauge("shop.occupancy", callbacks=[rooms])
    meter.create_observable_counter("shop.uptime", unit="s", callbacks=[seconds_up])
    meter.create_observable_up_down_counter("shop.sessions", callbacks=[lambda options: [Observation(-2)]])

    def round_of(n):
        for i in range(n):
            orders.add(1, {"outcome": "ok" if i % 3 else "declined", "region": "eu"})
            latency.record(i * 10.5, {"route": "/checkout"})
            sizes.record(i)
        queue.add(n)
        queue.add(-2)
        temperature.set(20 + n)
        level.add(1.5)

    round_of(10)
    periodic.collect()
    first_delta = points(delta.get_metrics_data())
    round_of(4)
    periodic.collect()
    second_delta = points(delta.get_metrics_data())
    provider.shutdown()
    print(json.dumps({"cumulative": exporter.exports, "delta": [first_delta, second_delta]}))
    """
)


def run_program(python, tmp, source, *args, env=None):
    (tmp / "recording.py").write_text(RECORDING)
    (tmp / "app.py").write_text(source)
    result = run(python, "app.py", *args, cwd=tmp, env=env or clean_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_readers_get_exactly_what_upstreams_provider_gives_them(open_sdk_python, tmp):
    ours = run_program(open_sdk_python, tmp, READERS_APP, "ferrotel")
    theirs = run_program(open_sdk_python, tmp, READERS_APP, "upstream")
    assert ours.stderr == "", ours.stderr
    ours, theirs = json.loads(ours.stdout), json.loads(theirs.stdout)
    assert ours == theirs

    # And those are the right numbers, not just the same ones.
    first, second, at_shutdown, shutdown = ours["cumulative"]
    assert shutdown == "shutdown", "the reader's last collection, then the exporter's end"
    assert [m["name"] for m in at_shutdown] == [m["name"] for m in second]
    by_name = {m["name"]: m for m in second}
    orders = by_name["shop.orders"]
    assert (orders["type"], orders["temporality"], orders["monotonic"]) == ("Sum", "CUMULATIVE", True)
    assert [(p["attributes"]["outcome"], p["value"]) for p in orders["points"]] == [("declined", 6), ("ok", 8)]
    assert orders["scope"] == ["shop", "1.0", {"team": "core"}]
    [sizes] = by_name["shop.size"]["points"]
    assert (sizes["bounds"], sizes["bucket_counts"], sizes["count"]) == ([1.0, 10.0], [4, 10, 0], 14)
    assert [p["value"] for p in by_name["shop.queue"]["points"]] == [10]
    # The callback counts its calls: each collection of each reader calls it once.
    assert [p["value"] for p in by_name["shop.uptime"]["points"]] == [160]
    assert by_name["stock.level"]["points"][0]["value"] == 3.0

    first_delta, second_delta = ours["delta"]
    delta = {m["name"]: m for m in second_delta}
    assert delta["shop.orders"]["temporality"] == "DELTA"
    assert [p["value"] for p in delta["shop.orders"]["points"]] == [2, 2], "only what the second round added"
    [latency] = delta["shop.latency"]["points"]
    assert (latency["count"], latency["min"], latency["max"]) == (4, 0.0, 31.5)
    assert [p["value"] for p in delta["shop.uptime"]["points"]] == [40], "each reader observes on its own"
    assert delta["shop.queue"]["temporality"] == "CUMULATIVE", "the reader asked delta for three kinds only"
    assert {m["name"] for m in first_delta} == {m["name"] for m in first}


REMOVE_APP = textwrap.dedent(
    """
    import json
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
    from ferrotel.metrics import MeterProvider
    from recording import RecordingExporter

    class Printing(RecordingExporter):
        def shutdown(self, timeout_millis=30_000, **kwargs):
            print("exported", json.dumps(self.exports))

    provider = MeterProvider(metric_readers=[])
    counter = provider.get_meter("m").create_counter("hits")
    counter.add(1)
    late = InMemoryMetricReader()
    provider.add_metric_reader(late)
    provider.add_metric_reader(late)
    counter.add(2)
    [[[metric]]] = [[s.metrics for s in r.scope_metrics] for r in late.get_metrics_data().resource_metrics]
    print("late reader", metric.data.data_points[0].value)
    provider.remove_metric_reader(late)
    print("removed", late.get_metrics_data())
    try:
        MeterProvider(metric_readers=[object()])
    except TypeError as error:
        print("refused", error)
    periodic = PeriodicExportingMetricReader(Printing(), export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[periodic])
    provider.get_meter("m").create_counter("at.exit").add(7)
    """
)


def test_readers_come_and_go_and_a_periodic_reader_exports_at_exit(open_sdk_python, tmp):
    result = run_program(open_sdk_python, tmp, REMOVE_APP)
    lines = result.stdout.splitlines()
    assert lines[0] == "late reader 2", "a reader added later sees what was recorded since"
    assert lines[1] == "removed None"
    assert lines[2] == "refused object is not a MetricReader (it has no _set_collect_callback)"
    assert result.stderr.count("ferrotel: warning: the InMemoryMetricReader is registered with a MeterProvider") == 1
    # The exit flush shut the periodic reader down: it made its last export, then shut its
    # exporter down.
    assert lines[3].startswith("exported "), lines
    [[at_exit]] = json.loads(lines[3][len("exported ") :])
    assert (at_exit["name"], at_exit["points"][0]["value"]) == ("at.exit", 7)


PLUGINS = textwrap.dedent(
    """
    import json, os
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricReader

    def totals(metrics_data):
        return {
            metric.name: sum(p.value for p in metric.data.data_points)
            for resource_metrics in metrics_data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        }

    def record(line):
        with open(os.environ["RECORD_TO"], "a") as out:
            out.write(json.dumps(line) + "\\n")

    class RecordingExporter(MetricExporter):
        def export(self, metrics_data, timeout_millis=10_000, **kwargs):
            record({"exporter": totals(metrics_data)})
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kwargs):
            record("exporter shutdown")

    class DumpingReader(MetricReader):
        def _receive_metrics(self, metrics_data, timeout_millis=10_000, **kwargs):
            record({"reader": totals(metrics_data)})

        def shutdown(self, timeout_millis=30_000, **kwargs):
            self.collect()
            record("reader shutdown")
    """
)

ENTRY_POINT_APP = textwrap.dedent(
    """
    import time
    from opentelemetry import metrics
    counter = metrics.get_meter("app").create_counter("jobs")
    counter.add(5)
    time.sleep(0.6)
    counter.add(2)
    """
)


@pytest.fixture(scope="module")
def metric_plugins(tmp_path_factory):
    """A directory to put on PYTHONPATH holding a throwaway package whose exporter and reader
    are `opentelemetry_metrics_exporter` entry points."""
    wheel = build_wheel(
        tmp_path_factory.mktemp("wheels"),
        "ferrotel-test-metric-plugins",
        "1.0",
        {"metric_plugins.py": PLUGINS},
        entry_points={
            "opentelemetry_metrics_exporter": {
                "recording": "metric_plugins:RecordingExporter",
                "dumping": "metric_plugins:DumpingReader",
            }
        },
    )
    target = tmp_path_factory.mktemp("plugins")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check"]
    assert run(*pip, "--target", target, wheel, timeout=120).returncode == 0
    return target


def test_exporters_and_readers_by_entry_point_name(open_sdk_python, metric_plugins, tmp):
    (tmp / "app.py").write_text(ENTRY_POINT_APP)
    launcher = open_sdk_python.parent / "ferrotel"
    record_to = tmp / "recorded.jsonl"
    flags = ["--metrics_exporter", "recording,dumping,nope", "--metric_export_interval", "250"]
    env = clean_env(RECORD_TO=str(record_to), PYTHONPATH=str(metric_plugins))
    flags += ["--traces_exporter", "none"]
    result = run(launcher, "instrument", *flags, open_sdk_python, "app.py", cwd=tmp, env=env)
    assert result.returncode == 0, result.stderr
    [warning] = result.stderr.splitlines()
    assert warning.startswith(
        "ferrotel: warning: OTEL_METRICS_EXPORTER=nope: no opentelemetry_metrics_exporter entry point named 'nope' "
        "is installed (installed: "
    ), warning
    assert "dumping" in warning and "recording" in warning
    lines = [json.loads(line) for line in record_to.read_text().splitlines()]
    exports = [line["exporter"] for line in lines if isinstance(line, dict) and "exporter" in line]
    # The exporter sits behind ferrotel's periodic collection: some exports while the app
    # slept, the last one at exit with everything.
    assert exports[0] == {"jobs": 5} and exports[-1] == {"jobs": 7}, exports
    assert lines[-1] in ("exporter shutdown", "reader shutdown") and "exporter shutdown" in lines
    # The reader is one in its own right: asked only at shutdown, where it collects once.
    assert [line for line in lines if isinstance(line, dict) and "reader" in line] == [{"reader": {"jobs": 7}}]
    assert "reader shutdown" in lines
