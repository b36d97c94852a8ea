"""The logs signal: `logging` records and Logs API emits become OTLP log records, linked to
their spans, sent over every OTLP protocol to a real receiver (ferrotel view) and compared
with what upstream's SDK sends for the same app."""

import re
import subprocess
import time

import pytest
from support.processes import PYTHON, clean_env, instrument
from support.viewer import LOGGING_APP, UPSTREAM, run_ferrotel, run_upstream

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
    """Runs `source` under ferrotel; the deprecated switch is on unless `extra` sets it to
    None (left unset, the default)."""
    switch = {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}
    env = {k: v for k, v in {**switch, **extra}.items() if v is not None}
    return run_ferrotel(viewer, tmp, source, protocol, OTEL_SERVICE_NAME=service, **env)


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


def test_the_instrumentation_switch_turns_export_off(viewer, tmp):
    send_with_ferrotel(
        viewer,
        tmp,
        "http/protobuf",
        "quiet",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="false",
        OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION="false",
    )
    assert viewer.get("/api/logs?service=quiet")["data"] == []


# A seed-style service: a Flask /ping route that logs, pinged once after each way the
# standard library reconfigures logging. The app's own console output must go on as well.
PING_APP = """
import logging, logging.config, os, sys, tempfile
from flask import Flask

app = Flask(__name__)
log = logging.getLogger("pinger")

@app.route("/ping/<int:round>")
def ping(round):
    log.info("ping received", extra={"round": round})
    return "pong"

client = app.test_client()
console = {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"}
plain = {"format": "console: %(message)s"}

logging.basicConfig(level=logging.INFO, format="console: %(message)s", stream=sys.stdout)
client.get("/ping/1")
logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "formatters": {"plain": plain},
                           "handlers": {"console": console}, "root": {"level": "INFO", "handlers": ["console"]}})
client.get("/ping/2")
ini = os.path.join(tempfile.mkdtemp(), "logging.ini")
with open(ini, "w") as f:
    f.write('''[loggers]
keys=root
[handlers]
keys=console
[formatters]
keys=plain
[logger_root]
level=INFO
handlers=console
[handler_console]
class=StreamHandler
formatter=plain
args=(sys.stdout,)
[formatter_plain]
format=console: %(message)s
''')
logging.config.fileConfig(ini, disable_existing_loggers=False)
client.get("/ping/3")
logging.basicConfig(level=logging.INFO, format="console: %(message)s", stream=sys.stdout, force=True)
client.get("/ping/4")
logging.basicConfig(level=logging.DEBUG)  # the root has handlers: does nothing, as without ferrotel
client.get("/ping/5")
if os.environ.get("OWN_HANDLER"):
    # A configuration that names the handler itself: still one record per ping.
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, "formatters": {"plain": plain},
                               "handlers": {"console": console, "otel": {"class": os.environ["OWN_HANDLER"]}},
                               "root": {"level": "INFO", "handlers": ["console", "otel"]}})
    client.get("/ping/6")
print("handlers:", len(logging.getLogger().handlers))
"""


def pings(viewer, service):
    found = [r for r in records(viewer, service) if r["body"] == "ping received"]
    return sorted(r["attributes"]["round"] for r in found), found


def test_records_arrive_by_default_and_survive_every_reconfiguration(viewer, tmp):
    result = send_with_ferrotel(
        viewer,
        tmp,
        "http/protobuf",
        "pinger",
        source=PING_APP,
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=None,
        OWN_HANDLER="ferrotel.logs.LoggingHandler",
    )
    rounds, found = pings(viewer, "pinger")
    assert rounds == [1, 2, 3, 4, 5, 6]
    # Linked to the Flask request's span; no code.* attributes unless asked for.
    assert all(r["traceID"] and r["spanID"] for r in found)
    assert all(set(r["attributes"]) == {"round"} for r in found)
    # The app's own console handler printed each ping once: its configuration was honoured.
    assert result.stdout.count("console: ping received") == 6, result.stdout
    assert "handlers: 2" in result.stdout


def test_upstream_keeps_its_handler_the_same_way(viewer, tmp):
    run_upstream(
        viewer,
        tmp,
        PING_APP,
        "http/protobuf",
        OTEL_SERVICE_NAME="upstream-pinger",
        OTEL_LOGS_EXPORTER="otlp",
    )
    assert pings(viewer, "upstream-pinger")[0] == [1, 2, 3, 4, 5]


EXTRAS_APP = """
import logging

class Order:
    def __repr__(self):
        return "Order(7)"

class Opaque:
    pass

log = logging.getLogger("extras")
log.warning("with extras", extra={"order": Order(), "opaque": Opaque(), "when": 1.5, "tags": ["a", "b"], "none": None})
log.critical("on fire", extra={"otel.event.name": "fire.started"})
"""


def test_default_records_match_upstream(viewer, tmp):
    send_with_ferrotel(
        viewer,
        tmp,
        "http/protobuf",
        "ferrotel-extras",
        source=EXTRAS_APP,
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=None,
    )
    run_upstream(
        viewer, tmp, EXTRAS_APP, "http/protobuf", OTEL_SERVICE_NAME="upstream-extras", OTEL_LOGS_EXPORTER="otlp"
    )
    ours, theirs = records(viewer, "ferrotel-extras"), records(viewer, "upstream-extras")
    assert [comparable(r) for r in ours] == [comparable(r) for r in theirs]
    extras, fire = ours
    assert (extras["attributes"]["order"], extras["attributes"]["opaque"]) == ("Order(7)", None)
    assert (fire["severityText"], fire["eventName"]) == ("FATAL", "fire.started")


def test_code_attributes_and_handler_level(viewer, tmp):
    source = """
import logging
logging.getLogger().setLevel(logging.INFO)
logging.getLogger("lvl").info("too low")
logging.getLogger("lvl").error("kept")
"""
    send_with_ferrotel(
        viewer,
        tmp,
        "http/protobuf",
        "levels",
        source=source,
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=None,
        OTEL_PYTHON_LOG_CODE_ATTRIBUTES="true",
        OTEL_PYTHON_LOG_HANDLER_LEVEL="Warning",
    )
    [kept] = records(viewer, "levels")
    assert kept["body"] == "kept"
    assert kept["attributes"] == {
        "code.file.path": str(tmp / "app.py"),
        "code.function.name": "<module>",
        "code.line.number": 5,
    }


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


UNCONFIGURED_APP = """
import logging
logging.getLogger("quiet").info("below the last resort's level")
logging.getLogger("x").warning("unconfigured warning")
logging.getLogger("x").propagate = False
logging.getLogger("x").error("not propagated")
logging.getLogger("x").propagate = True
logging.basicConfig(format="configured:%(message)s")
logging.getLogger("x").warning("configured warning")
logging.getLogger("x").error("configured error")
"""


def test_an_app_that_configures_no_logging_keeps_its_warnings_on_stderr(tmp):
    """Without a handler of its own, Python prints warnings on stderr (`logging.lastResort`);
    ferrotel's handler on the root logger must not take that away, nor print twice once
    the app configures logging."""
    app = tmp / "app.py"
    app.write_text(UNCONFIGURED_APP)
    bare = subprocess.run([PYTHON, app], env=clean_env(), capture_output=True, text=True, timeout=60)
    configured = "configured:configured warning\nconfigured:configured error\n"
    assert bare.stderr == "unconfigured warning\nnot propagated\n" + configured
    env = clean_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="console")
    # The handler's level chooses what is exported, not what reaches stderr.
    for level, expected in (
        (None, ["unconfigured warning", "configured warning", "configured error"]),
        ("error", ["configured error"]),
    ):
        result = instrument("python", app, env={**env, **({"OTEL_PYTHON_LOG_HANDLER_LEVEL": level} if level else {})})
        assert result.returncode == 0 and result.stderr == bare.stderr, (level, result.stderr)
        exported = [line.split("] ", 1)[1] for line in result.stdout.splitlines() if line.startswith("log ")]
        assert exported == expected, (level, result.stdout)

    # The app may set the handler's level itself, lower as well as higher.
    (tmp / "levels.py").write_text(LEVELS_APP)
    result = instrument("python", tmp / "levels.py", env={**env, "OTEL_PYTHON_LOG_HANDLER_LEVEL": "warning"})
    exported = [line.split("] ", 1)[1] for line in result.stdout.splitlines() if line.startswith("log ")]
    assert result.returncode == 0 and exported == ["after"], (result.stdout, result.stderr)


LEVELS_APP = """
import logging
from ferrotel import logs
logging.getLogger().setLevel(logging.INFO)
(handler,) = [h for h in logging.getLogger().handlers if isinstance(h, logs.LoggingHandler)]
logging.getLogger("x").info("before")
handler.setLevel(logging.INFO)
logging.getLogger("x").info("after")
"""


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


CORRELATION_APP = """
import logging, sys
from opentelemetry import trace
try:
    from ferrotel.instrumentation.log_correlation import LoggingInstrumentor
except ImportError:
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

def log_hook(span, record):
    record.order = span.name

if sys.argv[1] == "kwargs":
    LoggingInstrumentor().instrument(
        set_logging_format=True,
        logging_format="%(levelname)s %(otelTraceID)s %(otelSpanID)s %(otelTraceSampled)s "
        "%(otelServiceName)s [%(order)s] %(message)s",
        log_level=logging.INFO,
        log_hook=log_hook,
    )
log = logging.getLogger("shop")
with trace.get_tracer("t").start_as_current_span("checkout") as span:
    log.debug("below the root's level")
    log.info("info inside")
    log.warning("inside")
print("ids", format(span.get_span_context().trace_id, "032x"), format(span.get_span_context().span_id, "016x"))
"""


def correlation_lines(tmp, upstream, mode, **env):
    """`CORRELATION_APP` under ferrotel or upstream, neither exporting: stdout's ids and
    stderr's lines with those ids written as TRACE and SPAN."""
    (tmp / "app.py").write_text(CORRELATION_APP)
    env = clean_env(OTEL_SERVICE_NAME="shop", OTEL_TRACES_EXPORTER="console", **env)
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    if upstream:
        launcher, python = UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python"
        result = subprocess.run(
            [str(launcher), str(python), "app.py", mode], cwd=tmp, env=env, capture_output=True, text=True, timeout=60
        )
    else:
        result = instrument(PYTHON, "app.py", mode, env=env, cwd=tmp)
    assert result.returncode == 0, result.stderr
    _, trace_id, span_id = next(line for line in result.stdout.splitlines() if line.startswith("ids ")).split()
    lines = result.stderr.replace(trace_id, "TRACE").replace(span_id, "SPAN").splitlines()
    return [line for line in lines if "TRACE" in line or "inside" in line or "below" in line]


@pytest.mark.parametrize("upstream", [False, True], ids=["ferrotel", "upstream"])
def test_logging_instrumentor_keywords_and_variables(tmp, upstream):
    # The keywords: format, root level (INFO, not the default WARNING) and the hook's field.
    off = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging"}
    assert correlation_lines(tmp, upstream, "kwargs", **off) == [
        "INFO TRACE SPAN True shop [checkout] info inside",
        "WARNING TRACE SPAN True shop [checkout] inside",
    ]
    # The variables, under the instrumentation the launcher runs.
    env = {
        "OTEL_PYTHON_LOG_CORRELATION": "true",
        "OTEL_PYTHON_LOG_FORMAT": "%(levelname)s|%(otelTraceID)s|%(otelSpanID)s|%(otelServiceName)s|%(message)s",
        "OTEL_PYTHON_LOG_LEVEL": "info",
    }
    lines = correlation_lines(tmp, upstream, "env", **env)
    assert lines == ["INFO|TRACE|SPAN|shop|info inside", "WARNING|TRACE|SPAN|shop|inside"]
    env["OTEL_PYTHON_LOG_LEVEL"] = "error"
    assert correlation_lines(tmp, upstream, "env", **env) == []


EXTRA_APP = """
import collections, logging

class Opaque:
    pass

class Named:
    def __str__(self):
        return "named thing"

logging.getLogger().setLevel(logging.INFO)
logging.getLogger("extra").info("structured", extra={
    "order": {"id": 42, "lines": [{"sku": "A1", "qty": 2}], "vip": True, "none": None},
    "mixed": [1, "two", None, [3, 4]],
    "ids": [7, 8],
    "queue": collections.deque(["x", "y"]),
    "named": Named(),
    "opaque": Opaque(),
    "keys": {1: "int key", "": "empty key dropped"},
})
"""


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_extra_dicts_and_lists_arrive_as_upstream_sends_them(viewer, tmp, protocol):
    service = f"extra-{protocol.replace('/', '-')}"
    send_with_ferrotel(
        viewer, tmp, protocol, service, source=EXTRA_APP, OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=None
    )
    run_upstream(
        viewer, tmp, EXTRA_APP, "http/protobuf", OTEL_SERVICE_NAME=f"upstream-{service}", OTEL_LOGS_EXPORTER="otlp"
    )
    [ours] = records(viewer, service)
    [theirs] = records(viewer, f"upstream-{service}")
    assert ours["attributes"] == theirs["attributes"]
    assert ours["attributes"] == {
        "order": {"id": 42, "lines": [{"sku": "A1", "qty": 2}], "vip": True, "none": None},
        "mixed": [1, "two", None, [3, 4]],
        "ids": [7, 8],
        "queue": ["x", "y"],
        "named": "named thing",
        "opaque": None,
        "keys": {"1": "int key"},
    }
