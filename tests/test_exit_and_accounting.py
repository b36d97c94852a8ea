"""Every span is accounted for, whatever the collector does, and leaving is bounded: real
apps under `ferrotel instrument` export OTLP/HTTP-JSON to a receiver that is down, stalled,
slow or flapping (tests/apps/fault_receiver.py). What the receiver accepted plus what the
exit line says was not delivered is exactly what the app recorded; SIGTERM (to a plain
script and to uvicorn) flushes everything and still ends the process by SIGTERM; a second
Ctrl-C during the exit flush ends it at once."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.processes import FERROTEL, PYTHON, clean_env, free_port, http_get, spawn, wait_http

FAULT_RECEIVER = Path(__file__).parent / "apps" / "fault_receiver.py"

APP = """
import json, os, sys, time
from opentelemetry import trace
tracer = trace.get_tracer("accounting")
pace = float(os.environ.get("PACE", "0"))
for i in range(int(os.environ["SPANS"])):
    with tracer.start_as_current_span("work", attributes={"i": i}):
        pass
    if pace:
        time.sleep(pace)
print(json.dumps(trace.get_tracer_provider().stats()), flush=True)
print("produced", file=sys.stderr, flush=True)
time.sleep(float(os.environ.get("LINGER", "0")))
if os.environ.get("WAIT_FOR_SIGNAL"):
    print("ready", flush=True)
    while True:
        time.sleep(1)
"""


class FaultReceiver:
    def __init__(self, *flags):
        self.proc = subprocess.Popen(
            [sys.executable, FAULT_RECEIVER, *flags], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        self.port = int(self.proc.stdout.readline().split()[1])
        self.accepted = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("accepted "):
                self.accepted += int(line.split()[1])

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)
        return self.accepted


@pytest.fixture
def fault_receiver():
    started = []

    def start(*flags):
        started.append(FaultReceiver(*flags))
        return started[-1]

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()


def export_env(endpoint, **extra):
    settings = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
    }
    return clean_env(**{**settings, **{k: str(v) for k, v in extra.items()}})


STARTED = []


@pytest.fixture(autouse=True)
def _kill_leftover_apps():
    """An app a failed assertion left running (a wait timed out) is killed with its group."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_app(tmp, env, source=APP):
    (tmp / "app.py").write_text(source)
    STARTED.append(spawn([FERROTEL, "instrument", PYTHON, "app.py"], tmp, env))
    return STARTED[-1]


def run_app(tmp, env):
    started = time.monotonic()
    proc = start_app(tmp, env)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, json.loads(out.splitlines()[0]), err, time.monotonic() - started


EXIT_LINE = re.compile(r"ferrotel: warning: (\d+) span\(s\) were not delivered to (\S+): (.*)")


def undelivered(stderr):
    """(total, {reason: count}) from the exit line, which must be there exactly once."""
    [line] = [m for m in map(EXIT_LINE.match, stderr.splitlines()) if m]
    parts = {}
    reasons = r"(\d+) (dropped from a full queue|failed to export|still queued|still being)"
    for count, reason in re.findall(reasons, line[3]):
        parts[reason] = int(count)
    assert sum(parts.values()) == int(line[1]), line[0]
    return int(line[1]), parts


def assert_balanced(stats):
    assert stats["enqueued"] == sum(stats[k] for k in ("exported", "dropped", "failed", "pending", "in_flight")), stats


@pytest.mark.parametrize(("spans", "batch"), [(3001, None), (2000, 100)])
def test_a_collector_that_is_never_up_costs_a_second_at_exit_and_every_span_is_counted(tmp, spans, batch):
    endpoint = f"http://127.0.0.1:{free_port()}"
    extra = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": batch} if batch else {}
    code, stats, stderr, elapsed = run_app(tmp, export_env(endpoint, SPANS=spans, **extra))
    assert code == 0, stderr
    assert stats["enqueued"] == spans
    assert_balanced(stats)
    total, parts = undelivered(stderr)
    assert total == spans, stderr
    assert parts["failed to export"] > 0 and set(parts) <= {"dropped from a full queue", "failed to export"}, stderr
    assert "refused" in stderr
    # Start-up, the spans themselves, and one quick retry at exit: well under the 5 s deadline.
    assert elapsed < 4, elapsed


def test_a_stalled_collector_gets_the_exit_deadline_and_the_counts_still_add_up(tmp, fault_receiver):
    r = fault_receiver("--mode", "stall")
    env = export_env(r.endpoint, SPANS=6000, OTEL_EXPORTER_OTLP_TIMEOUT=2, LINGER=2.5)
    code, stats, stderr, elapsed = run_app(tmp, env)
    assert code == 0, stderr
    assert r.stop() == 0
    assert_balanced(stats)
    assert stats["dropped"] > 0, stats
    total, parts = undelivered(stderr)
    assert total == 6000, stderr
    # Drops and failures were told while the app ran, with exact numbers so far.
    before_exit = stderr.split("produced")[1].splitlines()[1:]
    warning = next(line for line in before_exit if line.startswith("ferrotel: warning: cannot export traces"))
    assert re.search(r"so far: \d+ span\(s\) dropped from a full queue, \d+ failed to export", warning), warning
    assert elapsed < 2.5 + 5 + 4, elapsed


def test_a_slow_collector_drops_are_reported_while_the_app_runs(tmp, fault_receiver):
    r = fault_receiver("--mode", "slow", "--delay", "0.3")
    env = export_env(r.endpoint, SPANS=20000, PACE=0.00005, LINGER=1.5, OTEL_BSP_MAX_QUEUE_SIZE=500)
    code, stats, stderr, _ = run_app(tmp, env)
    accepted = r.stop()
    assert code == 0, stderr
    assert_balanced(stats)
    running, _, after = stderr.partition("produced")
    assert "ferrotel: warning: the span(s) queue is full (500)" in running + after.split("were not delivered")[0]
    total, parts = undelivered(stderr)
    assert accepted + total == 20000, (accepted, total, stderr)
    assert parts.get("dropped from a full queue", 0) > 0


def test_a_flapping_collector_every_span_is_delivered_or_counted(tmp, fault_receiver):
    r = fault_receiver("--mode", "flap", "--period", "0.4")
    env = export_env(
        r.endpoint,
        SPANS=3000,
        PACE=0.001,
        OTEL_BSP_SCHEDULE_DELAY=100,
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE=50,
        OTEL_EXPORTER_OTLP_TIMEOUT=1,
    )
    code, stats, stderr, _ = run_app(tmp, env)
    accepted = r.stop()
    assert code == 0, stderr
    assert_balanced(stats)
    lost = undelivered(stderr)[0] if EXIT_LINE.search(stderr) else 0
    assert accepted + lost == 3000, (accepted, lost, stderr)
    assert accepted > 0


def test_a_second_ctrl_c_ends_the_exit_flush_at_once_with_the_count_line(tmp, fault_receiver):
    r = fault_receiver("--mode", "stall")
    proc = start_app(tmp, export_env(r.endpoint, SPANS=100, WAIT_FOR_SIGNAL=1, OTEL_EXPORTER_OTLP_TIMEOUT=30))
    assert proc.stdout.readline().startswith("{")
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)  # KeyboardInterrupt: the app leaves, the exit flush waits
    time.sleep(1)
    assert proc.poll() is None, "the flush waits for the stalled collector"
    second = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - second < 0.5
    assert "ferrotel: warning: the exit flush was cut short by SIGINT" in stderr
    total, parts = undelivered(stderr)
    assert total == 100 and parts == {"still being": 100}, stderr


SIGNAL_APP = """
import sys, time
from opentelemetry import metrics, trace
tracer = trace.get_tracer("terminated")
orders = metrics.get_meter("terminated").create_counter("orders")
for i in range(300):
    with tracer.start_as_current_span("work"):
        orders.add(1, {"shop": str(i % 3)})
print("ready", flush=True)
time.sleep(60)
"""


def test_sigterm_to_a_plain_script_delivers_every_span_and_point_and_ends_by_sigterm(tmp, fault_receiver):
    r = fault_receiver("--mode", "ok")
    proc = start_app(tmp, export_env(r.endpoint, OTEL_METRICS_EXPORTER="otlp"), SIGNAL_APP)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == -signal.SIGTERM, stderr
    assert stderr == ""
    # 300 spans, and the counter's 3 points (one per shop).
    assert r.stop() == 303


NATIVE_WAIT_APP = """
import ctypes
from opentelemetry import trace
with trace.get_tracer("blocked").start_as_current_span("work"):
    pass
print("ready", flush=True)
# libc's system() waits for its child through every EINTR; a PyDLL call keeps the GIL.
ctypes.{library}(None).system(b"exec sleep 30 >/dev/null 2>&1")
"""


def sigterm_during_native_wait(tmp, fault_receiver, library):
    """SIGTERM to an app waiting in native code: (exit status, seconds to end, stderr, spans
    delivered). `system()`'s `sleep` is left behind, as it would be bare, and killed here."""
    r = fault_receiver("--mode", "ok")
    proc = start_app(tmp, export_env(r.endpoint), NATIVE_WAIT_APP.format(library=library))
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    ended = time.monotonic() - sent
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, ended, stderr, r.stop()


def test_sigterm_ends_an_app_whose_stderr_is_gone_while_nothing_can_be_delivered(tmp):
    # The flush's lines about what was not delivered fail to write (the interpreter ignores
    # SIGPIPE, so the write fails with EPIPE); the process still ends by SIGTERM.
    nobody = f"http://127.0.0.1:{free_port()}"
    proc = start_app(tmp, export_env(nobody, OTEL_EXPORTER_OTLP_TIMEOUT=1), SIGNAL_APP)
    proc.stderr.close()
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == -signal.SIGTERM


def test_sigterm_to_an_app_waiting_in_native_code_flushes_and_ends_it_at_once(tmp, fault_receiver):
    # The interpreter's main thread never gets to run a Python-level handler here; a bare app
    # would end at once.
    code, ended, stderr, delivered = sigterm_during_native_wait(tmp, fault_receiver, "CDLL")
    assert code == -signal.SIGTERM, stderr
    assert ended < 10
    assert stderr == ""
    assert delivered == 1


def test_sigterm_ends_an_app_whose_native_code_keeps_the_gil_within_the_deadline_and_grace(tmp, fault_receiver):
    # The flush can never run, and the process still ends by SIGTERM, after the exit
    # deadline (5 s) and the grace (2 s), saying so.
    code, ended, stderr, _ = sigterm_during_native_wait(tmp, fault_receiver, "PyDLL")
    assert code == -signal.SIGTERM, stderr
    assert 6.5 < ended < 12
    assert stderr == "ferrotel: warning: the exit flush after SIGTERM was cut short by the time it may take\n"


FORKED_APP = """
import os, time
from opentelemetry import trace
tracer = trace.get_tracer("forked")
with tracer.start_as_current_span("parent"):
    pass
child = os.fork()
if child == 0:
    for _ in range(5):
        with tracer.start_as_current_span("child"):
            pass
    print("child", os.getpid(), flush=True)
    time.sleep(60)
    os._exit(0)
_, status = os.waitpid(child, 0)
print("child ended by", os.waitstatus_to_exitcode(status), flush=True)
"""


def test_sigterm_to_a_forked_child_flushes_the_childs_spans_and_ends_only_the_child(tmp, fault_receiver):
    r = fault_receiver("--mode", "ok")
    proc = start_app(tmp, export_env(r.endpoint), FORKED_APP)
    child = int(proc.stdout.readline().split()[1])
    os.kill(child, signal.SIGTERM)
    out, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert out == f"child ended by {-signal.SIGTERM}\n"
    assert stderr == ""
    # The parent's span (at its exit) and the child's five (at its SIGTERM).
    assert r.stop() == 6


MASKS_APP = """
import os, threading, time
from opentelemetry import metrics, trace
with trace.get_tracer("masks").start_as_current_span("work"):
    metrics.get_meter("masks").create_counter("orders").add(1)
time.sleep(0.2)
python_names = {t.native_id: t.name for t in threading.enumerate()}
for task in sorted(os.listdir("/proc/self/task"), key=int):
    status = dict(line.split(":\t", 1) for line in open(f"/proc/self/task/{task}/status").read().splitlines())
    blocked = int(status["SigBlk"], 16)
    name = python_names.get(int(task), status["Name"])
    print(name, bool(blocked & 1 << 14), bool(blocked & 1 << 1))
"""


def test_only_the_sigterm_waiter_blocks_signals_and_ferrotels_other_threads_keep_the_apps_mask(tmp, fault_receiver):
    # The waiter is never where the kernel should deliver a signal; the threads that run
    # plugins' Python code (exporters, observable callbacks) keep the app's mask, which the
    # processes they start would inherit.
    r = fault_receiver("--mode", "ok")
    proc = start_app(tmp, export_env(r.endpoint, OTEL_METRICS_EXPORTER="otlp"), MASKS_APP)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    threads = [line.split() for line in out.splitlines()]
    assert threads[0] == ["MainThread", "False", "False"]
    ours = {name: (term, interrupt) for name, term, interrupt in threads[1:]}
    # The kernel keeps a thread's first 15 bytes of name ("ferrotel-sigterm").
    assert ours == {
        "ferrotel-export": ("False", "False"),
        "ferrotel-metrics": ("False", "False"),
        "ferrotel-sigter": ("True", "True"),
    }


UVICORN_APP = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def hello(request):
    return PlainTextResponse("hi")

app = Starlette(routes=[Route("/hello", hello)])
"""


def test_sigterm_to_uvicorn_delivers_every_span_and_point_and_ends_by_sigterm(tmp, fault_receiver):
    r = fault_receiver("--mode", "ok")
    (tmp / "app.py").write_text(UVICORN_APP)
    port = free_port()
    env = export_env(r.endpoint, OTEL_METRICS_EXPORTER="otlp")
    proc = spawn([FERROTEL, "instrument", "uvicorn", "--port", str(port), "app:app"], tmp, env)
    try:
        wait_http(f"http://127.0.0.1:{port}/hello", deadline=30)
        for _ in range(29):
            assert http_get(f"http://127.0.0.1:{port}/hello")[0] == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    # uvicorn shuts down gracefully, then re-raises SIGTERM: the process still ends by it.
    assert proc.returncode == -signal.SIGTERM, stderr
    assert "were not delivered" not in stderr
    # 30 server spans; one point each of the duration histogram, active requests and the
    # response body size (GETs have no request body to measure).
    assert r.stop() == 33


def test_sigterm_to_gunicorn_with_uvicorn_workers_delivers_every_workers_spans(tmp, fault_receiver):
    # The workers reset SIGTERM to its default (uvicorn's worker class does, so that gunicorn
    # sees how subprocesses end), then uvicorn re-raises it after its graceful shutdown: the
    # workers die by SIGTERM, and with it every span still queued unless the reset keeps the
    # flush.
    r = fault_receiver("--mode", "ok")
    (tmp / "app.py").write_text(UVICORN_APP)
    port = free_port()
    gunicorn = [FERROTEL, "instrument", "gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker"]
    proc = spawn([*gunicorn, "-b", f"127.0.0.1:{port}", "app:app"], tmp, export_env(r.endpoint))
    try:
        wait_http(f"http://127.0.0.1:{port}/hello", deadline=30)
        for _ in range(29):
            assert http_get(f"http://127.0.0.1:{port}/hello")[0] == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "were not delivered" not in stderr
    assert r.stop() == 30


def test_the_app_still_sees_sigterm_at_its_default(tmp):
    (tmp / "app.py").write_text(
        "import signal\n"
        "def mine(signum, frame): pass\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
        "print(signal.signal(signal.SIGTERM, mine) is signal.SIG_DFL)\n"
        "print(signal.signal(signal.SIGTERM, signal.SIG_DFL) is mine)\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
        "print(signal.signal(signal.SIGTERM, signal.SIG_IGN) is signal.SIG_DFL)\n"
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)\n"
        "print(bool(signal.signal.__doc__))\n"
    )
    result = subprocess.run(
        [FERROTEL, "instrument", PYTHON, "app.py"], cwd=tmp, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert (result.stdout, result.stderr) == ("True\n" * 7, "")


FLUSHING_THREAD = """
import threading
from ferrotel.logs import LoggerProvider

provider = LoggerProvider()


def flush_forever():
    while True:
        provider.force_flush()


threading.Thread(target=flush_forever, daemon=True).start()
"""


def test_a_thread_waiting_inside_ferrotel_when_the_interpreter_finalizes_ends_quietly(tmp):
    # CPython ends a thread that wants the GIL back during finalization with pthread_exit,
    # which unwinds it through ferrotel's frames when it was waiting in one (here a flush;
    # at exit, the upstream logging handler's flush thread does the same). A wheel whose
    # frames the system unwinder cannot walk died of SIGSEGV in most of these runs.
    (tmp / "app.py").write_text(FLUSHING_THREAD)
    for _ in range(10):
        result = subprocess.run(
            [PYTHON, "app.py"], cwd=tmp, env=clean_env(OTEL_LOGS_EXPORTER="console"), capture_output=True, timeout=60
        )
        assert (result.returncode, result.stderr) == (0, b"")
