"""The `exceptions` built-in: uncaught exceptions at top level, in a thread and in an asyncio
task become error log records with the exception's type, message and stack (and the span
the thread ran under), as upstream's `exceptions` instrumentation emits them, while the app's
own handlers and Python's printing still run."""

from support.processes import clean_env, instrument, run
from support.viewer import UPSTREAM, endpoint

APP = """
import asyncio
import gc
import sys
import threading
from opentelemetry import trace

# The app's own asyncio handler must still be called.
def own_handler(loop, context):
    print("own asyncio handler:", context["message"], flush=True)

tracer = trace.get_tracer("exceptions.test")
with tracer.start_as_current_span("work") as span:
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()
print(format(span.get_span_context().trace_id, "032x"), flush=True)

async def lost():
    raise ValueError("nobody awaited this")

async def main():
    asyncio.get_running_loop().set_exception_handler(own_handler)
    task = asyncio.get_running_loop().create_task(lost())
    await asyncio.sleep(0.05)
    del task
    gc.collect()

asyncio.run(main())
try:
    raise KeyboardInterrupt  # not an error: never recorded
except KeyboardInterrupt:
    pass
raise KeyError("top level")
"""


def records(viewer, service):
    found = viewer.get(f"/api/logs?service={service}")["data"]
    return sorted(
        (
            (
                r["eventName"],
                r["severityText"],
                r["severityNumber"],
                r["body"],
                r["attributes"].get("exception.type"),
                r["attributes"]["exception.stacktrace"].strip().splitlines()[-1],
            ),
            r["traceID"],
        )
        for r in found
        if r["scope"].endswith("exceptions")
    )


def test_uncaught_exceptions_become_error_records_as_upstream_emits_them(viewer, tmp):
    (tmp / "app.py").write_text(APP)
    env = clean_env(
        OTEL_SERVICE_NAME="ferrotel-exceptions",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint(viewer, "http/protobuf"),
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )
    result = instrument("python", tmp / "app.py", env=env)
    assert result.returncode == 1, result.stderr
    # Python's own printing of each is untouched, and so is the app's asyncio handler.
    assert "ZeroDivisionError" in result.stderr and "KeyError: 'top level'" in result.stderr
    trace_id, own = result.stdout.splitlines()[0], result.stdout.splitlines()[1]
    assert own == "own asyncio handler: Task exception was never retrieved"

    upstream_env = clean_env(
        OTEL_SERVICE_NAME="upstream-exceptions",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint(viewer, "http/protobuf"),
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="otlp",
    )
    upstream = run(UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python", tmp / "app.py", env=upstream_env)
    assert upstream.returncode == 1, upstream.stderr
    ours = records(viewer, "ferrotel-exceptions")
    assert [fact for fact, _ in ours] == [fact for fact, _ in records(viewer, "upstream-exceptions")]
    facts = [fact for fact, _ in ours]
    assert facts == [
        (
            "KeyError",
            "FATAL",
            21,
            "'top level'",
            "KeyError",
            "KeyError: 'top level'",
        ),
        (
            "Task exception was never retrieved",
            "ERROR",
            17,
            "nobody awaited this",
            "ValueError",
            "ValueError: nobody awaited this",
        ),
        (
            "ZeroDivisionError",
            "ERROR",
            17,
            "division by zero",
            "ZeroDivisionError",
            "ZeroDivisionError: division by zero",
        ),
    ], ours
    thread_record = dict(ours)[facts[2]]
    assert thread_record == trace_id, "the thread's record carries the span it ran under"
