"""OTLP/HTTP (protobuf) export, ferrotel's exporter vs upstream's Python one, side by side
in one run, each side in a fresh interpreter of its own venv, to the same local receiver
(tests/apps/otlp_receiver.py --sink, which answers at once).

- export cost: process CPU (all threads) to record N spans and export them all, minus the
  CPU to record them with no exporter: CPU per span exported, and so spans per second one
  core encodes and sends;
- app thread: time to record N spans while the exporter works concurrently, against
  recording them with no exporter.

Usage: python bench/otlp.py FERROTEL_VENV UPSTREAM_VENV [--spans N] [--write BENCHMARKS.md]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import measured_on, publish

ATTRIBUTES = {"http.request.method": "GET", "http.route": "/users/{id}", "http.response.status_code": 200, "port": 8080}
RECEIVER = Path(__file__).resolve().parent.parent / "tests" / "apps" / "otlp_receiver.py"


def provider_for(side, endpoint, export):
    if side == "ferrotel":
        from ferrotel.trace import TracerProvider
        from ferrotel.trace.export import BatchSpanProcessor, OTLPSpanExporter

        provider = TracerProvider()
        exporter = OTLPSpanExporter(endpoint=endpoint, protocol="http/protobuf") if export else None
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        exporter = OTLPSpanExporter(endpoint=endpoint) if export else None
    if exporter is not None:
        # A queue that holds everything: the comparison is about cost, not drops.
        processor = BatchSpanProcessor(exporter, max_queue_size=1_000_000, max_export_batch_size=512)
        provider.add_span_processor(processor)
    return provider


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(side, endpoint, n, export):
    """(wall seconds recording, CPU seconds recording + exporting everything)."""
    provider = provider_for(side, endpoint, export)
    tracer = provider.get_tracer("bench")
    cpu = cpu_seconds()
    start = time.perf_counter()
    for _ in range(n):
        with tracer.start_as_current_span("span", attributes=ATTRIBUTES):
            pass
    wall = time.perf_counter() - start
    provider.force_flush(600_000)
    cpu = cpu_seconds() - cpu
    provider.shutdown()
    return wall, cpu


def measure(side, endpoint, n):
    """Medians of three rounds: the CPU difference is noisy on a 2-core machine."""
    run(side, endpoint, 2000, export=True)  # warm-up: imports, connection
    rounds = [(run(side, endpoint, n, export=False), run(side, endpoint, n, export=True)) for _ in range(3)]
    quiet_wall = statistics.median(q[0] for q, _ in rounds)
    busy_wall = statistics.median(b[0] for _, b in rounds)
    export_cpu = max(statistics.median(b[1] - q[1] for q, b in rounds), 1e-9) / n
    return {
        "spans_per_s": 1 / export_cpu,
        "cpu_us": export_cpu * 1e6,
        "quiet_us": quiet_wall / n * 1e6,
        "busy_us": busy_wall / n * 1e6,
    }


def main():
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(measure(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    receiver = subprocess.Popen(
        [str(args.upstream_venv / "bin" / "python"), str(RECEIVER), "--sink"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        endpoint = f"http://127.0.0.1:{receiver.stdout.readline().split()[1]}/v1/traces"
        results = {}
        for side, venv in (("ferrotel", args.ferrotel_venv), ("upstream", args.upstream_venv)):
            out = subprocess.run(
                [str(venv / "bin" / "python"), __file__, "--child", side, endpoint, str(args.spans)],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        receiver.kill()
    f, u = results["ferrotel"], results["upstream"]

    def slowdown(r):
        return f"{r['busy_us']:.2f} µs vs {r['quiet_us']:.2f} µs ({(r['busy_us'] / r['quiet_us'] - 1) * 100:+.0f}%)"

    rows = [
        f"| CPU per span encoded and sent | {f['cpu_us']:.2f} µs | {u['cpu_us']:.2f} µs "
        f"| {u['cpu_us'] / f['cpu_us']:.1f}× |",
        f"| so, spans encoded and sent per second on one core | {f['spans_per_s']:,.0f} | {u['spans_per_s']:,.0f} | |",
        f"| app thread per span, exporting beside it vs no exporter | {slowdown(f)} | {slowdown(u)} | |",
    ]
    table = "\n".join(
        [
            f"{measured_on()}; {args.spans} spans "
            "with 4 attributes, OTLP/HTTP protobuf, batches of 512, to a local receiver that answers at once "
            "(upstream: opentelemetry-exporter-otlp-proto-http, pinned). CPU per span is the process's CPU to record "
            "and export minus its CPU to record with no processor at all, so it also counts the hand-off of each span "
            "to the export thread.",
            "",
            "| | ferrotel | upstream | ratio |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )
    publish(table, "otlp", args.write)


if __name__ == "__main__":
    main()
