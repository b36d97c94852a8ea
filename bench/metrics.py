"""Metrics API recording: what one `counter.add` and one `histogram.record` (two attributes)
cost the app thread with ferrotel's MeterProvider and with upstream's (opentelemetry-sdk,
PeriodicExportingMetricReader + OTLP/HTTP metric exporter), each side in a fresh interpreter
of its own venv, exporting at the end to a `ferrotel view` of its own that proves the totals
arrived.

Usage: python bench/metrics.py FERROTEL_VENV UPSTREAM_VENV [--n N] [--write BENCHMARKS.md]
"""

import json
import subprocess
import sys
import time

from receiver import compare, receiver
from report import measured_on, publish

ROUTES = ["/users", "/orders", "/cart", "/checkout"]


def provider_for(side, endpoint):
    if side == "ferrotel":
        from ferrotel.metrics import MeterProvider

        return MeterProvider(
            {
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
                "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
            }
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint), export_interval_millis=3_600_000)
    return MeterProvider(metric_readers=[reader])


def measure(side, n, endpoint):
    provider = provider_for(side, endpoint)
    meter = provider.get_meter("bench")
    counter = meter.create_counter("bench.requests")
    histogram = meter.create_histogram("bench.duration", unit="ms")
    attributes = [{"http.route": route, "http.request.method": "GET"} for route in ROUTES]

    def per_call(record):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for i in range(n):
                record(i, attributes[i & 3])
            best = min(best, (time.perf_counter() - start) / n * 1e6)
        return best

    add = per_call(lambda i, a: counter.add(1, a))
    record = per_call(lambda i, a: histogram.record(i % 500, a))
    bare = per_call(lambda i, a: None)
    provider.force_flush(60_000)
    return {"add": add - bare, "record": record - bare, "sent": 3 * n}


def run_side(ferrotel_bin, venv, side, n, env):
    with receiver(ferrotel_bin) as sink:
        out = subprocess.run(
            [str(venv / "bin" / "python"), __file__, "--child", side, str(n), sink.endpoint("metrics")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        result = json.loads(out.stdout.splitlines()[-1])
        [requests] = sink.get("/api/metrics/bench.requests")["data"]
        latest = {}
        for point in requests["points"]:
            latest[json.dumps(point["attributes"], sort_keys=True)] = point["value"]
        result["received"] = sum(latest.values())
        return result


def main():
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return
    args, f, u = compare(run_side, default_n=100_000)
    table = "\n".join(
        [
            f"{measured_on()}; best of 3 runs of "
            f"{args.n:,} calls over 4 attribute sets of 2 attributes, the loop's own cost subtracted, each side in a "
            "fresh interpreter of its own venv.",
            "",
            "| | ferrotel | upstream | upstream / ferrotel |",
            "|---|---:|---:|---:|",
            f"| `counter.add(1, attributes)` | {f['add']:.2f} µs | {u['add']:.2f} µs | {u['add'] / f['add']:.1f}× |",
            f"| `histogram.record(v, attributes)` | {f['record']:.2f} µs | {u['record']:.2f} µs "
            f"| {u['record'] / f['record']:.1f}× |",
            f"| counter total received by the receiver / added | {f['received']:,} / {f['sent']:,} "
            f"| {u['received']:,} / {u['sent']:,} | |",
        ]
    )
    publish(table, "metrics", args.write)


if __name__ == "__main__":
    main()
