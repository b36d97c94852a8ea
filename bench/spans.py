"""Cost of spans through the opentelemetry-api: ferrotel's SDK and upstream's SDK side by
side, each in a fresh interpreter of its own venv, with a batch processor exporting to a
console exporter writing to /dev/null (so the export work is real and runs concurrently).

Usage: python bench/spans.py FERROTEL_VENV UPSTREAM_VENV [--spans N] [--children N]
       [--interpreter PYTHON] [--write BENCHMARKS.md]

`--interpreter`: also run both sides under another build of the venvs' Python version (the
venvs' packages on its path), e.g. the distribution's own `/usr/bin/python3`: how the
interpreter was built (PGO, LTO, a shared libpython) moves a span's time by tens of percent.

Each side runs in N fresh children, alternating with the other side's, so that a change of
this VM's speed (tens of percent from one minute to the next) reaches both alike; a figure is
the median of the children's best runs, with the spread of ferrotel's children beside it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import measured_on, publish

ATTRIBUTES = {"http.request.method": "GET", "http.route": "/users/{id}", "http.response.status_code": 200, "port": 8080}


def make_provider(side, sampler, devnull):
    if side == "ferrotel":
        from ferrotel.trace import TracerProvider
        from ferrotel.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        provider = TracerProvider({"OTEL_TRACES_SAMPLER": sampler})
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        return provider, lambda: provider.stats()["dropped"]
    from opentelemetry.sdk.trace import TracerProvider, sampling
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    class Counting(SpanExporter):
        """Upstream's console exporter, counting what it is handed."""

        def __init__(self):
            self.inner, self.count = ConsoleSpanExporter(out=devnull), 0

        def export(self, spans):
            self.count += len(spans)
            return self.inner.export(spans)

    exporter = Counting()
    chosen = sampling.ALWAYS_OFF if sampler == "always_off" else sampling.ParentBased(sampling.ALWAYS_ON)
    provider = TracerProvider(sampler=chosen)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, lambda: None if sampler == "always_off" else ("exporter", exporter)


def measure(side, case, n):
    """Runs in the child: returns µs per span and, for the sustained case, spans dropped."""
    devnull = open(os.devnull, "w")
    # The result goes out on a duplicate of stdout; fd 1 itself (where ferrotel's native
    # console exporter writes) goes to /dev/null.
    result_fd = os.dup(1)
    os.dup2(devnull.fileno(), 1)
    measure.result_out = os.fdopen(result_fd, "w")
    sampler = "always_off" if case == "unsampled" else "parentbased_always_on"
    provider, dropped = make_provider(side, sampler, devnull)
    tracer = provider.get_tracer("bench")
    if case == "sustained":
        # 100k spans/s for 2 s with default processor settings, paced in 1 ms slices.
        total, per_slice, start = 200_000, 100, time.perf_counter()
        for i in range(total // per_slice):
            for _ in range(per_slice):
                with tracer.start_as_current_span("span", attributes=ATTRIBUTES):
                    pass
            while time.perf_counter() < start + (i + 1) / 1000:
                pass
        rate = total / (time.perf_counter() - start)
        provider.force_flush()
        result = dropped()
        if isinstance(result, tuple):  # upstream: what the exporter never received was dropped
            result = total - result[1].count
        return {"dropped": result, "spans": total, "rate": rate}
    for _ in range(2000):  # warm-up
        with tracer.start_as_current_span("span", attributes=ATTRIBUTES):
            pass
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            with tracer.start_as_current_span("span", attributes=ATTRIBUTES):
                pass
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return {"us_per_span": best}


def run_side(venv, side, case, n, interpreter=None):
    """One child of `side`: the venv's own interpreter, or `interpreter` with the venv's
    packages on its path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    python = str(venv / "bin" / "python")
    if interpreter:
        env["PYTHONPATH"] = site_packages(python)
        python = interpreter
    out = subprocess.run(
        [python, __file__, "--child", side, case, str(n)], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def site_packages(python):
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def describe(python):
    """`CPython 3.11.7 `.venv/bin/python` (shared libpython)`: which build ran. A libpython
    loaded as a shared library pays for calls between its own functions through the PLT and
    for its thread state through dynamic TLS; distributions link theirs into the executable."""
    code = (
        "import platform; maps = open('/proc/self/maps').read(); print(platform.python_version(), 'libpython' in maps)"
    )
    version, shared = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    shown = os.path.relpath(python) if python.startswith(os.getcwd()) else python
    return f"CPython {version} `{shown}` ({'shared libpython' if shared == 'True' else 'libpython linked in'})"


def main():
    if sys.argv[1:2] == ["--child"]:
        _, _, side, case, n = sys.argv
        result = measure(side, case, int(n))
        print(json.dumps(result), file=measure.result_out, flush=True)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path)
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--children", type=int, default=5)
    parser.add_argument("--interpreter", help="also run under this build of the same Python version")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    sides = {"ferrotel": args.ferrotel_venv, "upstream": args.upstream_venv}
    interpreters = [None, args.interpreter] if args.interpreter else [None]
    rows = []
    for interpreter in interpreters:
        built = describe(interpreter or str(args.ferrotel_venv / "bin" / "python"))
        for case, label in [
            ("sampled", "`start_as_current_span` + 4 attributes, batch processor exporting"),
            ("unsampled", "the same, sampler `always_off`"),
        ]:
            per_child = {"ferrotel": [], "upstream": []}
            for _ in range(args.children):
                for side, results in per_child.items():
                    results.append(run_side(sides[side], side, case, args.spans, interpreter)["us_per_span"])
            f, u = (statistics.median(per_child[s]) for s in ("ferrotel", "upstream"))
            spread = f"{min(per_child['ferrotel']):.2f}–{max(per_child['ferrotel']):.2f}"
            rows.append(f"| {label} | {built} | {f:.2f} µs ({spread}) | {u:.2f} µs | {u / f:.1f}× |")
            print(rows[-1], flush=True)
    sustained = {s: run_side(sides[s], s, "sustained", 0) for s in ("ferrotel", "upstream")}
    lines = [
        f"{measured_on()}; each side in {args.children} fresh interpreters of its own venv's packages, alternating "
        f"with the other side's; a figure is the median of the children's best of 3 runs of {args.spans} spans "
        "after warm-up (in brackets: ferrotel's fastest and slowest child). Both export "
        "through their batch processor to their console exporter writing to /dev/null.",
        "",
        "| per span | interpreter | ferrotel | upstream | upstream / ferrotel |",
        "|---|---|---:|---:|---:|",
        *rows,
        "",
        "Sustained: 200k spans paced at 100k spans/s with default batch settings (queue 2048, batch 512, "
        "5 s delay), console exporter to /dev/null:",
        "",
        "| | achieved rate | dropped |",
        "|---|---:|---:|",
        *(
            f"| {side} | {r['rate'] / 1000:.0f}k spans/s | {r['dropped']} of {r['spans']} |"
            for side, r in sustained.items()
        ),
    ]
    table = "\n".join(lines)
    publish(table, "spans", args.write)


if __name__ == "__main__":
    main()
