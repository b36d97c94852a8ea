"""Prometheus scrapes: how long one scrape of about 1,000 series takes from ferrotel's native
endpoint (`OTEL_METRICS_EXPORTER=prometheus`, collected and rendered in Rust) and from
upstream's opentelemetry-exporter-prometheus (the SDK's collection, prometheus_client's
rendering), each app idle in a fresh interpreter of its own venv, scraped over HTTP by this
process as Prometheus scrapes (text format; gzip when asked).

Usage: python bench/prometheus.py FERROTEL_VENV UPSTREAM_VENV [--n N] [--write BENCHMARKS.md]
"""

import gzip
import statistics
import subprocess
import sys
import time
import urllib.request

from receiver import compare, free_port
from report import measured_on, publish

COUNTERS = 1000
# 16 buckets, a count and a sum each: 56 histograms make 1,008 series.
HISTOGRAMS = 56
WARM_UP = 10


def serve(side, port, kind):
    """The app: one instrument with as many attribute sets as make ~1,000 series, recorded
    once, then idle until stdin closes."""
    if side == "ferrotel":
        from ferrotel.metrics import MeterProvider

        provider = MeterProvider(
            {
                "OTEL_METRICS_EXPORTER": "prometheus",
                "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
                "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
            }
        )
    else:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server

        start_http_server(port=port, addr="127.0.0.1")
        provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    meter = provider.get_meter("bench")
    if kind == "counters":
        counter = meter.create_counter("bench.requests", unit="{request}")
        for i in range(COUNTERS):
            counter.add(i + 1, {"http.route": f"/route/{i}", "http.request.method": "GET"})
    else:
        histogram = meter.create_histogram("bench.duration", unit="ms")
        for i in range(HISTOGRAMS):
            for value in (3, 40, 700):
                histogram.record(value, {"http.route": f"/route/{i}", "http.request.method": "GET"})
    print("ready", flush=True)
    sys.stdin.read()


def scrape(port, gzipped):
    headers = {"Accept": "text/plain;version=0.0.4"}
    if gzipped:
        headers["Accept-Encoding"] = "gzip"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        encoded = response.headers.get("Content-Encoding") == "gzip"
    elapsed = time.perf_counter() - start
    return elapsed, gzip.decompress(body) if encoded else body


def series(body):
    """The sample lines of an exposition, prometheus_client's own process and gc families left
    out (upstream's exporter adds them; they are not OpenTelemetry metrics)."""
    own = (b"python_", b"process_", b"#")
    return sum(1 for line in body.splitlines() if line and not line.startswith(own))


def measure(venv, side, kind, n, env):
    port = free_port()
    app = subprocess.Popen(
        [str(venv / "bin" / "python"), __file__, "--serve", side, str(port), kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert app.stdout.readline().strip() == "ready"
        result = {}
        for gzipped in (False, True):
            for _ in range(WARM_UP):
                scrape(port, gzipped)
            times = []
            for _ in range(n):
                elapsed, body = scrape(port, gzipped)
                times.append(elapsed)
            result["gzip" if gzipped else "plain"] = statistics.median(times) * 1e3
        result["series"] = series(body)
        return result
    finally:
        app.stdin.close()
        app.wait(timeout=30)


def run_side(ferrotel_bin, venv, side, n, env):
    return {kind: measure(venv, side, kind, n, env) for kind in ("counters", "histograms")}


def main():
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    args, f, u = compare(run_side, default_n=200)
    rows = []
    for kind, what in (("counters", "counter series"), ("histograms", "histogram series (56 histograms)")):
        assert f[kind]["series"] == u[kind]["series"], (kind, f[kind]["series"], u[kind]["series"])
        for encoding, how in (("plain", ""), ("gzip", ", gzip")):
            ours, theirs = f[kind][encoding], u[kind][encoding]
            label = f"{f[kind]['series'] - 1:,} {what}{how}"
            rows.append(f"| {label} | {ours:.2f} ms | {theirs:.2f} ms | {theirs / ours:.1f}× |")
    table = "\n".join(
        [
            f"{measured_on()}; median of {args.n} scrapes after {WARM_UP} warm-up ones, each side an idle app in a "
            "fresh interpreter of its own venv, scraped over HTTP on 127.0.0.1 in the text format (with and without "
            "gzip, which Prometheus asks for); both return the same series (plus `target_info`, and upstream's "
            "prometheus_client process and gc families, not counted).",
            "",
            "| one scrape of | ferrotel | upstream | upstream / ferrotel |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    publish(table, "prometheus", args.write)


if __name__ == "__main__":
    main()
