"""Instructions per call of ferrotel's logs and metrics paths on the app thread, counted by
callgrind, for one or more ferrotel venvs: an earlier build given beside the current one is
measured in the same run, which is how "no regression" is checked on a VM whose speed varies
by tens of percent from one minute to the next.

The calls are those of bench/logs.py and bench/metrics.py: `logger.info` inside a span with
ferrotel's `LoggingHandler` (and with a `NullHandler` only, so that the handler's own cost is
the difference), `counter.add` and `histogram.record` over 4 attribute sets. Export goes to a
closed port, with queues that never fill and a delay of an hour, so only the app thread's work
is counted. Each case runs N and 2N calls after a warm-up; the difference divided by N is one
call.

Usage: python bench/sdk_instructions.py VENV[=LABEL] [VENV[=LABEL] ...] [--n 5000]
Needs valgrind.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from instructions import app_thread_instructions

CLOSED = "http://127.0.0.1:9"
CASES = ["logs", "logs-bare", "counter", "histogram"]
ROUTES = ["/users", "/orders", "/cart", "/checkout"]
WARMUP = 200


def calls_for(case):
    """A function making n calls of `case` (set up once, outside the counted calls)."""
    if case.startswith("logs"):
        return logging_calls(case)
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


def logging_calls(case):
    from opentelemetry import context, trace

    from ferrotel.logs import LoggerProvider, LoggingHandler
    from ferrotel.trace import TracerProvider

    provider = LoggerProvider(
        {
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{CLOSED}/v1/logs",
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
            "OTEL_BLRP_MAX_QUEUE_SIZE": "1000000",
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "1000000",
            "OTEL_BLRP_SCHEDULE_DELAY": "3600000",
        }
    )
    trace.set_tracer_provider(TracerProvider())
    # One span current for every call, as a request's would be.
    context.attach(trace.set_span_in_context(trace.get_tracer("bench").start_span("request")))
    logger = logging.getLogger("bench.orders")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.NullHandler() if case == "logs-bare" else LoggingHandler(logger_provider=provider))

    def log(n):
        for i in range(n):
            logger.info("order %d placed", i, extra={"order.id": i, "customer": "c-42"})

    return log


def per_call(venv, case, n):
    def command(calls):
        return lambda valgrind: [*valgrind, str(venv / "bin" / "python"), __file__, "--child", case, str(calls)]

    # A fixed hash seed, as in bench/instructions.py: dict layouts then agree between runs.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
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
    rows = [
        ("`logger.info`, the handler's part", lambda c: c["logs"] - c["logs-bare"]),
        ("`logger.info` without the handler", lambda c: c["logs-bare"]),
        ("`counter.add(1, attributes)`", lambda c: c["counter"]),
        ("`histogram.record(v, attributes)`", lambda c: c["histogram"]),
    ]
    for name, value in rows:
        print(f"| {name} | {' | '.join(f'{value(counts[label]):,.0f}' for _, label in builds)} |")


if __name__ == "__main__":
    main()
