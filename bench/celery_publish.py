"""A Celery task publish (`apply_async`, kombu's in-memory transport, so the figure is Celery's
and the instrumentation's, not a broker's round trip): what it costs bare, under `ferrotel
instrument` (the built-in celery instrumentation) and under upstream's
`opentelemetry-instrument` (contrib celery 0.66b1), traces exported over OTLP/HTTP into a
`ferrotel view` of each side's own. Each side's venv needs celery (ferrotel's: the libraries
of tests/messaging-requirements.txt; upstream's: bench/upstream-requirements.txt).

Usage: python bench/celery_publish.py FERROTEL_VENV UPSTREAM_VENV [--n N] [--write BENCHMARKS.md]
"""

import json
import sys
import time

from receiver import bare_then_instrumented, compare
from report import measured_on, publish


def measure(n):
    from celery import Celery

    app = Celery("bench", broker="memory://")

    @app.task
    def add(x, y):
        return x + y

    for _ in range(500):
        add.apply_async((1, 2))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            add.apply_async((1, 2))
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main():
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    args, f, u = compare(bare_then_instrumented(__file__, "none"), default_n=5_000)
    sent = (3 * args.n) + 500
    f_added, u_added = f["instrumented"] - f["bare"], u["instrumented"] - u["bare"]
    table = "\n".join(
        [
            f"{measured_on()}; best of 3 runs of {args.n:,} `apply_async` publishes of a Celery task "
            "(kombu's in-memory transport), traces exported over OTLP/HTTP protobuf.",
            "",
            "| per publish | ferrotel | upstream |",
            "|---|---:|---:|",
            f"| bare Celery (no instrumentation), in each side's venv | {f['bare']:.1f} µs | {u['bare']:.1f} µs |",
            f"| instrumented | {f['instrumented']:.1f} µs | {u['instrumented']:.1f} µs |",
            f"| instrumented − bare | {f_added:.1f} µs | {u_added:.1f} µs |",
            f"| producer spans received / publishes | {f['spans']:,} / {sent:,} | {u['spans']:,} / {sent:,} |",
        ]
    )
    publish(table, "celery", args.write)


if __name__ == "__main__":
    main()
