"""What a Python component costs on ferrotel's TracerProvider, side by side with the same
component on upstream's: a span through the opentelemetry-api with no Python component, with
one Python `on_end` processor, and with a Python exporter behind a batch processor.

ferrotel runs in a venv holding ferrotel and opentelemetry-sdk (the components subclass the
SDK's interfaces, as a user's do); upstream in its own venv. Each case runs in a fresh
interpreter. Reported: wall time per span on the app thread, and process CPU per span
(every thread, the export included: measured after a flush).

Usage: python bench/open_sdk.py FERROTEL_OPEN_VENV UPSTREAM_VENV [--spans N] [--write BENCHMARKS.md]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from report import measured_on, publish

ATTRIBUTES = {"http.request.method": "GET", "http.route": "/users/{id}", "http.response.status_code": 200, "port": 8080}
CASES = [
    ("none", "no Python component: batch processor, console exporter to /dev/null"),
    ("processor", "plus one Python processor (`on_end` counts)"),
    ("exporter", "a Python exporter (counts) behind the batch processor, instead of the console one"),
]


def make_provider(side, case):
    """The provider for `case`, and a function giving how many spans Python components saw."""
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class CountingProcessor(SpanProcessor):
        seen = 0

        def on_end(self, span):
            CountingProcessor.seen += 1

    class CountingExporter(SpanExporter):
        seen = 0

        def export(self, spans):
            CountingExporter.seen += len(spans)
            return SpanExportResult.SUCCESS

    if side == "ferrotel":
        from ferrotel.trace import TracerProvider
        from ferrotel.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        provider = TracerProvider()
    else:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        provider = TracerProvider()
    if case == "exporter":
        # A queue that holds a whole run on both sides: the cost of every span's export is
        # measured, none is dropped because the app outran the exporter.
        queue = 200_000
        provider.add_span_processor(BatchSpanProcessor(CountingExporter(), max_queue_size=queue))
        return provider, lambda: CountingExporter.seen
    # Upstream's console exporter takes where to write; ferrotel's writes to fd 1 (/dev/null here).
    console = ConsoleSpanExporter() if side == "ferrotel" else ConsoleSpanExporter(out=open(os.devnull, "w"))
    provider.add_span_processor(BatchSpanProcessor(console))
    if case == "processor":
        provider.add_span_processor(CountingProcessor())
        return provider, lambda: CountingProcessor.seen
    return provider, lambda: None


def measure(side, case, n):
    """In the child: µs per span (app thread) and CPU µs per span (all threads, flushed)."""
    provider, seen = make_provider(side, case)
    tracer = provider.get_tracer("bench")
    for _ in range(2000):  # warm-up
        with tracer.start_as_current_span("span", attributes=ATTRIBUTES):
            pass
    provider.force_flush()
    best_wall = best_cpu = float("inf")
    for _ in range(3):
        cpu, start = time.process_time(), time.perf_counter()
        for _ in range(n):
            with tracer.start_as_current_span("span", attributes=ATTRIBUTES):
                pass
        wall = time.perf_counter() - start
        provider.force_flush()
        best_wall = min(best_wall, wall / n * 1e6)
        best_cpu = min(best_cpu, (time.process_time() - cpu) / n * 1e6)
    expected = None if seen() is None else 2000 + 3 * n
    return {"wall": best_wall, "cpu": best_cpu, "seen": seen(), "expected": expected}


def run_side(venv, side, case, n):
    out = subprocess.run(
        [str(venv / "bin" / "python"), __file__, "--child", side, case, str(n)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["seen"] != result["expected"]:
        raise SystemExit(f"{side} {case}: the Python component saw {result['seen']} of {result['expected']} spans")
    return result


def main():
    if sys.argv[1:2] == ["--child"]:
        _, _, side, case, n = sys.argv
        devnull = os.open(os.devnull, os.O_WRONLY)
        result_out = os.fdopen(os.dup(1), "w")
        os.dup2(devnull, 1)  # the console exporters' output
        print(json.dumps(measure(side, case, int(n))), file=result_out, flush=True)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_open_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path)
    parser.add_argument("--spans", type=int, default=30_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    sides = {"ferrotel": args.ferrotel_open_venv, "upstream": args.upstream_venv}
    rows = []
    for case, label in CASES:
        f, u = (run_side(sides[s], s, case, args.spans) for s in ("ferrotel", "upstream"))
        rows.append(
            f"| {label} | {f['wall']:.2f} µs | {u['wall']:.2f} µs | {u['wall'] / f['wall']:.1f}× "
            f"| {f['cpu']:.2f} µs | {u['cpu']:.2f} µs | {u['cpu'] / f['cpu']:.1f}× |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(
        [
            f"{measured_on()}; load average {os.getloadavg()[0]:.1f}; best of 3 runs of {args.spans} spans "
            "(`start_as_current_span` + 4 attributes) after warm-up, each case in a fresh interpreter; "
            "ferrotel with opentelemetry-sdk installed beside it, upstream in its own venv. "
            "Every span reached the Python component on both sides (checked).",
            "",
            "| per span | ferrotel wall | upstream wall | ratio | ferrotel CPU | upstream CPU | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    publish(table, "open-sdk", args.write)


if __name__ == "__main__":
    main()
