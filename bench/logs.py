"""`logging` records exported as OTLP logs: what one `logger.info(...)` costs the app thread
with ferrotel's handler and with upstream's (opentelemetry-sdk's LoggingHandler and
BatchLogRecordProcessor), each batching to OTLP/HTTP protobuf into a real receiver (a
`ferrotel view` of its own), inside an active span so trace correlation is paid for. Each
side runs in a fresh interpreter of its own venv; the queue is sized so neither drops, and
the receiver's count proves every record arrived.

Usage: python bench/logs.py FERROTEL_VENV UPSTREAM_VENV [--n N] [--write BENCHMARKS.md]
"""

import json
import logging
import subprocess
import sys
import time

from receiver import compare, receiver
from report import measured_on, publish

QUEUE = 1_000_000


def handler_for(side, endpoint):
    if side == "ferrotel":
        from ferrotel.logs import LoggerProvider, LoggingHandler
        from ferrotel.trace import TracerProvider

        provider = LoggerProvider(
            {
                "OTEL_LOGS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": endpoint,
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
                "OTEL_BLRP_MAX_QUEUE_SIZE": str(QUEUE),
            }
        )
        return provider, LoggingHandler(logger_provider=provider), TracerProvider()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint), max_queue_size=QUEUE))
    return provider, LoggingHandler(logger_provider=provider), TracerProvider()


def measure(side, n, endpoint):
    """µs per record with the handler, µs per record without (same logger, a NullHandler)."""
    from opentelemetry import trace

    provider, handler, tracer_provider = handler_for(side, endpoint)
    trace.set_tracer_provider(tracer_provider)
    tracer = trace.get_tracer("bench")
    logger = logging.getLogger("bench.orders")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.NullHandler())

    def per_record():
        with tracer.start_as_current_span("request"):
            start = time.perf_counter()
            for i in range(n):
                logger.info("order %d placed", i, extra={"order.id": i, "customer": "c-42"})
            return (time.perf_counter() - start) / n * 1e6

    bare = min(per_record() for _ in range(3))
    logger.addHandler(handler)
    with_handler = min(per_record() for _ in range(3))
    provider.force_flush(60_000)
    return {"bare": bare, "handler": with_handler, "sent": 3 * n}


def run_side(ferrotel_bin, venv, side, n, env):
    with receiver(ferrotel_bin, "--max-logs", str(10 * n)) as sink:
        out = subprocess.run(
            [str(venv / "bin" / "python"), __file__, "--child", side, str(n), sink.endpoint("logs")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        result = json.loads(out.stdout.splitlines()[-1])
        result["received"] = sink.get("/api/status")["logRecords"]
        return result


def main():
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
        return
    args, f, u = compare(run_side, default_n=20_000)
    f_cost, u_cost = f["handler"] - f["bare"], u["handler"] - u["bare"]
    table = "\n".join(
        [
            f"{measured_on()}; best of 3 runs of "
            f"{args.n:,} `logger.info` calls (format argument, two `extra` fields, inside a span), each side in a "
            "fresh interpreter of its own venv, batching to OTLP/HTTP protobuf into a `ferrotel view`.",
            "",
            "| | ferrotel | upstream | upstream / ferrotel |",
            "|---|---:|---:|---:|",
            f"| `logger.info` with the OTel handler | {f['handler']:.2f} µs | {u['handler']:.2f} µs | "
            f"{u['handler'] / f['handler']:.1f}× |",
            f"| of which the handler (vs. the same call without it: {f['bare']:.2f} / {u['bare']:.2f} µs) "
            f"| {f_cost:.2f} µs | {u_cost:.2f} µs | {u_cost / f_cost:.1f}× |",
            f"| records received by the receiver / emitted | {f['received']:,} / {f['sent']:,} "
            f"| {u['received']:,} / {u['sent']:,} | |",
        ]
    )
    publish(table, "logs", args.write)


if __name__ == "__main__":
    main()
