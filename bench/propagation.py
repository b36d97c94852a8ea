"""extract + inject of a typical traceparent + tracestate + baggage set: ferrotel's
propagators and upstream's (the opentelemetry-api's own W3C propagators behind its
composite), each in a fresh interpreter of its own venv, in one run.

Usage: python bench/propagation.py FERROTEL_VENV UPSTREAM_VENV [--n N] [--write BENCHMARKS.md]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from report import measured_on, publish

CARRIER = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@vendor=opaque-value",
    "baggage": "userId=alice,serverNode=DF%2028,isProduction=false",
}


def measure(side, n):
    if side == "ferrotel":
        from ferrotel.propagate import Propagator

        propagator = Propagator(["tracecontext", "baggage"])
    else:
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.propagators.composite import CompositePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        propagator = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    ctx = propagator.extract(CARRIER)
    out = {}
    propagator.inject(out, ctx)
    assert out["traceparent"] == CARRIER["traceparent"], out
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            out = {}
            propagator.inject(out, propagator.extract(CARRIER))
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main():
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    result = {}
    for side, venv in (("ferrotel", args.ferrotel_venv), ("upstream", args.upstream_venv)):
        out = subprocess.run(
            [str(venv / "bin" / "python"), __file__, "--child", side, str(args.n)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        result[side] = json.loads(out.stdout)
    f, u = result["ferrotel"], result["upstream"]
    table = "\n".join(
        [
            f"{measured_on()}; best of 3 runs of {args.n}, each side in a "
            "fresh interpreter of its own venv. Carrier: traceparent, a 3-member tracestate, a 3-member baggage.",
            "",
            "| extract + inject (tracecontext, baggage) | ferrotel | upstream | upstream / ferrotel |",
            "|---|---:|---:|---:|",
            f"| per carrier | {f:.2f} µs | {u:.2f} µs | {u / f:.1f}× |",
        ]
    )
    publish(table, "propagation", args.write)


if __name__ == "__main__":
    main()
