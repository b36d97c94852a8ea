"""The logs signal: `logging` records and Logs API emits become OTLP log records, linked to
their spans, sent over every OTLP protocol to a real receiver (ferrotel view) and compared
with what upstream's SDK sends for the same app."""

import re
import time

import pytest
from support.processes import clean_env, instrument
from support.viewer import LOGGING_APP, run_ferrotel, run_upstream

APP = """
import logging
from opentelemetry import trace
log = logging.getLogger("shop")
log.setLevel(logging.INFO)
tracer = trace.get_tracer("shop.tracer")
log.info("cart has %d items", 3, extra={"order.id": 42, "vip": True})
with tracer.start_as_current_span("checkout") as span:
    log.warning("card declined for order %s", 42)
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("charge failed")
logging.getLogger("shop.quiet").debug("below the logger's level, never sent")
print(format(span.get_span_context().trace_id, "032x"))
print(format(span.get_span_context().span_id, "016x"))
"""


def records(viewer, service):
    """The service's records oldest first, without upstream's notice about its own handler."""
    found = viewer.get(f"/api/logs?service={service}")["data"]
    return [r for r in reversed(found) if not r["scope"].startswith("opentelemetry.")]


def comparable(record):
    kept = {k: record[k] for k in ("severityNumber", "severityText", "body", "scope", "eventName")}
    attributes = dict(record["attributes"])
    # The stack trace's text differs by where each SDK caught it; its last line must not.
    if "exception.stacktrace" in attributes:
        attributes["exception.stacktrace"] = attributes["exception.stacktrace"].strip().splitlines()[-1]
    kept["attributes"] = attributes
    kept["linked"] = record["traceID"] is not None
    return kept


def send_with_ferrotel(viewer, tmp, protocol, service, source=APP, **extra):
    switch = {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}
    return run_ferrotel(viewer, tmp, source, protocol, OTEL_SERVICE_NAME=service, **{**switch, **extra})


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_logging_records_arrive_as_upstream_sends_them(viewer, tmp, protocol):
    ours = send_with_ferrotel(viewer, tmp, protocol, "ferrotel-logs").stdout.split()
    theirs = run_upstream(
        viewer,
        tmp,
        APP,
        "http/protobuf",
        OTEL_SERVICE_NAME="upstream-logs",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
    )
    ferrotel_records = records(viewer, "ferrotel-logs")
    upstream_records = records(viewer, "upstream-logs")
    assert [comparable(r) for r in ferrotel_records] == [comparable(r) for r in upstream_records]

    info, warning, failure = ferrotel_records
    assert (info["body"], info["severityText"], info["severityNumber"]) == ("cart has 3 items", "INFO", 9)
    assert info["attributes"]["order.id"] == 42 and info["attributes"]["vip"] is True
    assert info["attributes"]["code.line.number"] == 7 and info["attributes"]["code.function.name"] == "<module>"
    assert info["traceID"] is None and info["spanID"] is None
    trace_id, span_id = ours
    for record in (warning, failure):
        assert (record["traceID"], record["spanID"]) == (trace_id, span_id)
    assert (warning["severityText"], warning["severityNumber"]) == ("WARN", 13)
    assert failure["attributes"]["exception.type"] == "ZeroDivisionError"
    assert failure["attributes"]["exception.message"] == "division by zero"
    assert "1 / 0" in failure["attributes"]["exception.stacktrace"]
    assert int(info["timeUnixNano"]) <= int(info["observedTimeUnixNano"])
    [trace] = viewer.get(f"/api/traces/{trace_id}")["data"]
    assert [s["spanID"] for s in trace["spans"]] == [span_id]
    assert len(theirs) == 2


def test_without_the_switch_logging_is_left_alone(viewer, tmp):
    send_with_ferrotel(viewer, tmp, "http/protobuf", "quiet", OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="false")
    assert viewer.get("/api/logs?service=quiet")["data"] == []


API_APP = """
import logging
from opentelemetry import _logs, trace
from opentelemetry._logs import LogRecord, SeverityNumber
provider = _logs.get_logger_provider()
assert isinstance(provider, _logs.LoggerProvider), type(provider)
logger = _logs.get_logger("orders.events", "1.0")
assert isinstance(logger, _logs.Logger) and logger.enabled()
with trace.get_tracer("t").start_as_current_span("place order") as span:
    logger.emit(body="order placed", severity_number=SeverityNumber.INFO, severity_text="INFO",
                attributes={"order.id": 7}, event_name="order.placed")
logger.emit(LogRecord(body={"not": "a plain value"}, severity_number=SeverityNumber.ERROR2,
                      attributes={"retry": 2}, timestamp=1_700_000_000_000_000_000))
# Attaching twice (the app's own configure, say) must not send records twice.
from ferrotel import logs
logs.attach_to_root_logger()
logs.attach_to_root_logger()
logging.getLogger("once").warning("exactly once")
print(format(span.get_span_context().span_id, "016x"))
"""


def test_logs_api_emits_and_one_handler_only(viewer, tmp):
    [span_id] = send_with_ferrotel(viewer, tmp, "http/protobuf", "api-logs", source=API_APP).stdout.split()
    # The viewer orders records by their time, and one of them is dated 2023.
    by_scope = {}
    for record in records(viewer, "api-logs"):
        by_scope.setdefault(record["scope"], []).append(record)
    [once] = by_scope.pop("once")
    placed, odd = sorted(by_scope["orders.events"], key=lambda r: r["eventName"] != "order.placed")
    assert (placed["body"], placed["eventName"], placed["scope"]) == ("order placed", "order.placed", "orders.events")
    assert (placed["severityNumber"], placed["attributes"], placed["spanID"]) == (9, {"order.id": 7}, span_id)
    assert (odd["body"], odd["severityNumber"], odd["attributes"]) == ("{'not': 'a plain value'}", 18, {"retry": 2})
    assert (odd["timeUnixNano"], odd["spanID"]) == ("1700000000000000000", None)
    assert (once["body"], once["scope"]) == ("exactly once", "once")


def test_console_exporter_prints_records_with_their_span(tmp):
    app = tmp / "app.py"
    app.write_text(LOGGING_APP)
    env = clean_env(
        OTEL_SERVICE_NAME="console-logs",
        OTEL_TRACES_EXPORTER="none",
        OTEL_LOGS_EXPORTER="console",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
    )
    result = instrument("python", app, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The app prints the ids; the exporter's lines come at exit, attributes indented.
    [trace_id] = [line for line in lines if re.fullmatch("[0-9a-f]{32}", line)]
    [span_id] = [line for line in lines if re.fullmatch("[0-9a-f]{16}", line)]
    [declined] = [line for line in lines if "card declined" in line]
    assert " WARN [shop] card declined for order 42" in declined
    assert declined.endswith(f"trace_id={trace_id} span_id={span_id}")
    assert any(line.endswith("INFO [shop] outside any span") for line in lines)


FLOOD_APP = """
import logging
logging.getLogger().setLevel(logging.INFO)
for i in range(5000):
    logging.getLogger("flood").info("record %d", i)
"""


def test_collector_down_never_slows_or_floods_the_app(tmp):
    app = tmp / "app.py"
    app.write_text(FLOOD_APP)
    env = clean_env(
        OTEL_TRACES_EXPORTER="none",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
    )
    started = time.monotonic()
    result = instrument("python", app, env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # One warning when trouble starts and one account at exit: export failures are not
    # logged through `logging`, so nothing feeds back into the handler.
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, lines
    assert lines[0].startswith("ferrotel: warning: cannot export logs to http://127.0.0.1:9/v1/logs")
    assert "5000 log record(s) were not delivered to http://127.0.0.1:9/v1/logs" in lines[1]
    assert elapsed < 10, elapsed


def test_records_keep_flowing_after_fork(viewer, tmp):
    source = """
import logging, os
logging.getLogger().setLevel(logging.INFO)
logging.getLogger("parent").info("before fork")
pid = os.fork()
if pid == 0:
    logging.getLogger("child").info("in the child")
    os._exit(0)
os.waitpid(pid, 0)
logging.getLogger("parent").info("after fork")
"""
    send_with_ferrotel(viewer, tmp, "http/protobuf", "forked", source=source)
    bodies = sorted(r["body"] for r in records(viewer, "forked"))
    assert bodies == ["after fork", "before fork", "in the child"]
