"""Instructions per call of ferrotel's metrics API on the app thread, counted by callgrind,
for one or more ferrotel venvs: an earlier build given beside the current one is measured in
the same run, which is how "no regression" is checked on a VM whose speed varies by tens of
percent from one minute to the next.

The calls are those of bench/metrics.py: `counter.add` and `histogram.record` over 4
attribute sets, exporting to a closed port once an hour, so only the app thread's recording is
counted. Each case runs N and 2N calls after a warm-up; the difference divided by N is one
call. (A `logger.info` through the handler is left out: its count moved by up to 20% between
runs of the same build, so it could not show a regression either way.)

Usage: python bench/metrics_instructions.py VENV[=LABEL] [VENV[=LABEL] ...] [--n 5000]
Needs valgrind.
"""

import argparse
import sys
from pathlib import Path

from instructions import app_thread_instructions

CLOSED = "http://127.0.0.1:9"
CASES = ["counter", "histogram"]
ROUTES = ["/users", "/orders", "/cart", "/checkout"]
WARMUP = 200


def calls_for(case):
    """A function making n calls of `case` (set up once, outside the counted calls)."""
    from ferrotel.metrics import MeterProvider

    provider = MeterProvider(
        {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{CLOSED}/v1/metrics",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "3600000",
        }
    )
    meter = provider.get_meter("bench")
    counter = meter.create_counter("bench.requests")
    histogram = meter.create_histogram("bench.duration", unit="ms")
    attributes = [{"http.route": route, "http.request.method": "GET"} for route in ROUTES]

    def add(n):
        for i in range(n):
            counter.add(1, attributes[i & 3])

    def record(n):
        for i in range(n):
            histogram.record(i % 500, attributes[i & 3])

    return add if case == "counter" else record


def per_call(venv, case, n):
    def command(calls):
        return lambda valgrind: [*valgrind, str(venv / "bin" / "python"), __file__, "--child", case, str(calls)]

    env = {"PATH": "/usr/bin:/bin"}
    return (app_thread_instructions(command(2 * n), env) - app_thread_instructions(command(n), env)) / n


def main():
    if sys.argv[1:2] == ["--child"]:
        calls = calls_for(sys.argv[2])
        calls(WARMUP)
        calls(int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("venvs", nargs="+", help="VENV or VENV=LABEL")
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    builds = [(Path(v.split("=", 1)[0]), v.split("=", 1)[-1]) for v in args.venvs]
    print(f"| instructions per call | {' | '.join(label for _, label in builds)} |")
    print(f"|---|{'---:|' * len(builds)}")
    counts = {label: {case: per_call(venv, case, args.n) for case in CASES} for venv, label in builds}
    for case, name in [("counter", "`counter.add(1, attributes)`"), ("histogram", "`histogram.record(v, attributes)`")]:
        print(f"| {name} | {' | '.join(f'{counts[label][case]:,.0f}' for _, label in builds)} |")


if __name__ == "__main__":
    main()
