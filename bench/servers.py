"""Real servers side by side in one run: bare, `ferrotel instrument`, upstream's
`opentelemetry-instrument` and Datadog's `ddtrace-run`, each tool in its own venv, on four
scenarios (apps in bench/server_apps/):

  flask     a trivial Flask route, gunicorn with one sync worker
  fastapi   a trivial FastAPI route, uvicorn
  django    a Django view making three ORM queries on sqlite3, gunicorn with one sync worker
  outgoing  a Flask route making a `requests` call to a local service and three sqlite3
            statements, gunicorn with one sync worker

wrk drives each server from core 0 while the server runs alone on core 1 (taskset); the
receivers (a `ferrotel view` for OTLP/HTTP, bench/ddtrace_agent.py for ddtrace) and the local
service run on core 0 too. Per run: requests/s, p50/p99 latency (wrk), the server process
tree's CPU (utime+stime from /proc) per request, and the spans that reached the receiver,
which must be exactly the requests the app handled times the tool's spans per request. Each
tool is measured right after a bare run in its own venv; the bare runs of one repetition are
also the noise figure.

Then, in-process (no network, OTLP/HTTP export on): the FastAPI route called as an ASGI app,
the Flask route through its WSGI callable (body drained, never closed) and a sqlite3
statement, bare vs ferrotel vs upstream. And a py-spy profile (`--native`) of the FastAPI
server under ferrotel while wrk drives it.

Usage: python bench/servers.py FERROTEL_VENV UPSTREAM_VENV DDTRACE_VENV
           [--only servers,inprocess,profile] [--write BENCHMARKS.md]
Environment: BENCH_SERVER_REPS (default 5) repetitions, BENCH_SERVER_SECONDS (default 10)
seconds of load per run.
"""

import argparse
import collections
import contextlib
import gc
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from receiver import free_port, receiver
from report import measured_on, publish

BENCH = Path(__file__).resolve().parent
APPS = BENCH / "server_apps"
LOAD_CPU, SERVER_CPU = "0", "1"
CONNECTIONS = 8
TOOLS = ("ferrotel", "upstream", "ddtrace")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def gunicorn(app):
    return ["gunicorn", "--workers", "1", "--worker-class", "sync", "--log-level", "warning", app]


SCENARIOS = {
    "flask": {
        "title": "Flask under gunicorn (one sync worker): `GET /users/<int:uid>` returning a string",
        "server": gunicorn("flask_app:app"),
        "path": "/users/42",
    },
    "fastapi": {
        "title": "FastAPI under uvicorn (asyncio loop, h11): `GET /users/{uid}` returning a dict",
        "server": [
            "uvicorn",
            "fastapi_app:app",
            "--loop",
            "asyncio",
            "--http",
            "h11",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        "path": "/users/42",
        # uvicorn re-raises the signal it stopped on; SIGTERM's default action would then skip
        # the exit handlers that flush spans and write the request count, Ctrl+C's does not.
        "stop": signal.SIGINT,
    },
    "django": {
        "title": "Django under gunicorn (one sync worker): a view making three ORM queries on sqlite3",
        "server": gunicorn("djangoapp.wsgi:application"),
        "path": "/items/42",
        "database": "django",
    },
    "outgoing": {
        "title": "Flask under gunicorn (one sync worker): a `requests` call to a local service "
        "plus three sqlite3 statements",
        "server": gunicorn("outgoing_app:app"),
        "path": "/orders/42",
        "database": "sqlite3",
    },
}

# Spans each tool makes per request; every run checks that exactly this many arrived.
SPANS_PER_REQUEST = {
    ("flask", "ferrotel"): 1,  # the server span
    ("flask", "upstream"): 1,
    ("flask", "ddtrace"): 9,  # request, WSGI app, dispatch, view, hooks, response...
    ("fastapi", "ferrotel"): 4,  # the server span and FastAPI's own telemetry spans
    ("fastapi", "upstream"): 3,  # the server span and one per `send` (response start, body)
    ("fastapi", "ddtrace"): 2,
    # ferrotel also traces the statements Django runs on each new connection (PRAGMAs, through
    # `Connection.execute`, which upstream's sqlite3 instrumentation does not see).
    ("django", "ferrotel"): 7,
    ("django", "upstream"): 4,  # the server span and the three queries
    ("django", "ddtrace"): 14,
    ("outgoing", "ferrotel"): 5,  # server, the `requests` client span, three statements
    ("outgoing", "upstream"): 5,
    ("outgoing", "ddtrace"): 13,
}


def otlp_settings(sink, tool):
    return tool_settings(tool, sink.http)


def tool_settings(tool, port):
    """The variables a tool's server runs with, `port` being its receiver's."""
    if tool == "ddtrace":
        return {"DD_TRACE_AGENT_URL": f"http://127.0.0.1:{port}", "DD_SERVICE": "bench-ddtrace"}
    return {
        "OTEL_SERVICE_NAME": f"bench-{tool}",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # As in the other benchmarks: bursts above the default queue of 2048 are not dropped.
        "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
    }


def launcher(tool, venv):
    return {
        "bare": [],
        "ferrotel": [str(venv / "bin" / "ferrotel"), "instrument", "--"],
        "upstream": [str(venv / "bin" / "opentelemetry-instrument")],
        "ddtrace": [str(venv / "bin" / "ddtrace-run")],
    }[tool]


class AgentStub:
    """bench/ddtrace_agent.py on a free port, in the ddtrace venv."""

    def __init__(self, venv):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["taskset", "-c", LOAD_CPU, str(venv / "bin" / "python"), str(BENCH / "ddtrace_agent.py"), str(self.port)]
        )
        wait_until(lambda: http_get(f"http://127.0.0.1:{self.port}/info"), self.process)

    def spans(self):
        return json.loads(http_get(f"http://127.0.0.1:{self.port}/bench/status"))["spans"]

    def stop(self):
        self.process.kill()
        self.process.wait()


@contextlib.contextmanager
def sink_for(tool, venv, ferrotel_bin, like=None):
    """Yields (environment for the server, a function counting the spans received). A bare
    run compared with tool `like` gets `like`'s variables (pointing nowhere): both sides then
    run in the same environment, which matters to code that walks os.environ per call
    (requests' proxy lookup does, per request: ~46k instructions per variable)."""
    if tool == "bare":
        yield (tool_settings(like, 9) if like else {}), lambda: 0
    elif tool == "ddtrace":
        agent = AgentStub(venv)
        try:
            yield tool_settings("ddtrace", agent.port), agent.spans
        finally:
            agent.stop()
    else:
        with receiver(ferrotel_bin, cpus=LOAD_CPU) as sink:
            yield otlp_settings(sink, tool), lambda: sink.get("/api/status")["spans"]


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except OSError:
        return None


def wait_until(ready, process, seconds=60):
    deadline = time.monotonic() + seconds
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.args} not ready after {seconds} s")
        time.sleep(0.1)


def process_tree(root):
    """{pid: utime+stime ticks} of `root` and all its live descendants, from /proc."""
    parent_of, ticks = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    tree, grew = {root}, True
    while grew:
        grown = tree | {pid for pid, parent in parent_of.items() if parent in tree}
        grew, tree = len(grown) > len(tree), grown
    return {pid: ticks[pid] for pid in tree if pid in ticks}


def tree_cpu_seconds(root):
    return sum(process_tree(root).values()) / CLOCK_TICKS


def python_in_tree(root):
    """The Python interpreter serving under `root` (a launcher may run it as a child)."""
    for pid in sorted(process_tree(root)):
        with contextlib.suppress(OSError):
            if Path(os.readlink(f"/proc/{pid}/exe")).name.startswith("python"):
                return pid
    raise RuntimeError(f"no Python process under {root}")


def wrk(url, seconds):
    command = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s"]
    command += ["-s", str(BENCH / "wrk_report.lua"), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(line for line in out.stdout.splitlines() if line.startswith("WRK "))
    return json.loads(line[4:])


def prepare_database(scenario, venv, directory, env):
    kind = SCENARIOS[scenario].get("database")
    if not kind:
        return {}
    path = str(directory / "bench.sqlite3")
    subprocess.run([str(venv / "bin" / "python"), str(APPS / "prepare.py"), kind, path], check=True, env=env)
    return {"BENCH_DB": path}


def stop(process, how):
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for_spans(count_spans, expected, seconds=30):
    """The spans received once they reach `expected` or stop growing for a few seconds."""
    deadline, last, steady_since = time.monotonic() + seconds, -1, time.monotonic()
    while True:
        spans = count_spans()
        if spans == expected or time.monotonic() > deadline:
            return spans
        if spans != last:
            last, steady_since = spans, time.monotonic()
        elif time.monotonic() - steady_since > 5:
            return spans
        time.sleep(0.2)


def server_environment(scenario, venv, tmp, env):
    """The variables every run of `scenario` has, whatever the tool: the venv first on PATH,
    the apps importable, the request counter's directory and the scenario's database."""
    base = {
        **env,
        "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        "PYTHONPATH": str(APPS),
        "DJANGO_SETTINGS_MODULE": "djangoapp.settings",
        "BENCH_COUNT_DIR": str(tmp),
    }
    return {**base, **prepare_database(scenario, venv, tmp, base)}


def bind_to(spec, port):
    return ["--bind", f"127.0.0.1:{port}"] if spec["server"][0] == "gunicorn" else ["--port", str(port)]


def run_server(scenario, tool, venv, ferrotel_bin, seconds, env, on_load=None, like=None):
    """Starts the scenario's server under `tool` on core 1, warms it up, measures a wrk run
    against it, stops it and counts what arrived."""
    spec = SCENARIOS[scenario]
    sink = sink_for(tool, venv, ferrotel_bin, like)
    with tempfile.TemporaryDirectory() as tmp, sink as (settings, count_spans):
        tmp = Path(tmp)
        base = server_environment(scenario, venv, tmp, env)
        port = free_port()
        command = ["taskset", "-c", SERVER_CPU, *launcher(tool, venv), *spec["server"], *bind_to(spec, port)]
        server = subprocess.Popen(command, env={**base, **settings}, cwd=tmp, start_new_session=True)
        url = f"http://127.0.0.1:{port}{spec['path']}"
        try:
            wait_until(lambda: http_get(url), server)
            wrk(url, 2)
            cpu_before = tree_cpu_seconds(server.pid)
            if on_load:
                on_load(server.pid)
            load = wrk(url, seconds)
            cpu = tree_cpu_seconds(server.pid) - cpu_before
        finally:
            stop(server, spec.get("stop", signal.SIGTERM))
        handled = sum(int(path.read_text()) for path in tmp.glob("count.*"))
        per_request = SPANS_PER_REQUEST.get((scenario, tool), 0)
        spans = wait_for_spans(count_spans, handled * per_request)
    assert load["status"] == 0, f"{scenario} {tool}: {load['status']} non-2xx responses"
    return {
        "rps": load["requests"] / (load["duration_us"] / 1e6),
        "p50": load["p50_us"] / 1e3,
        "p99": load["p99_us"] / 1e3,
        "cpu_us": cpu / load["requests"] * 1e6,
        "handled": handled,
        "spans": spans,
        "expected": handled * per_request,
        "errors": load["connect"] + load["read"] + load["write"] + load["timeout"],
    }


class Downstream:
    """server_apps/downstream.py, the local service the outgoing scenario calls, on core 0."""

    def __enter__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["taskset", "-c", LOAD_CPU, sys.executable, str(APPS / "downstream.py"), str(self.port)]
        )
        wait_until(lambda: http_get(f"http://127.0.0.1:{self.port}/stock/1"), self.process)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def run_servers(venvs, ferrotel_bin, env, reps, seconds, scenarios):
    """results[scenario][label] is a list of one dict per repetition; labels are the tools and
    `bare-TOOL` for the bare run in that tool's venv, measured right before it."""
    results = {scenario: collections.defaultdict(list) for scenario in scenarios}
    with Downstream() as downstream:
        env = {**env, "BENCH_DOWNSTREAM": downstream}
        for rep in range(reps):
            for scenario in scenarios:
                for tool in TOOLS:
                    for label, runner in ((f"bare-{tool}", "bare"), (tool, tool)):
                        result = run_server(scenario, runner, venvs[tool], ferrotel_bin, seconds, env, like=tool)
                        results[scenario][label].append(result)
                        print(
                            f"rep {rep + 1}/{reps} {scenario:8} {label:16} {result['rps']:8.0f} req/s "
                            f"p50 {result['p50']:6.2f} ms p99 {result['p99']:6.2f} ms "
                            f"CPU {result['cpu_us']:7.1f} µs/req spans {result['spans']}/{result['expected']}",
                            file=sys.stderr,
                            flush=True,
                        )
    return results


def summary(values, fmt, unit=""):
    """`median (min–max)` of the repetitions."""
    if len(values) == 1:
        return format(values[0], fmt) + unit
    low, middle, high = (format(value, fmt) for value in (min(values), statistics.median(values), max(values)))
    return f"{middle}{unit} ({low}–{high}{unit})"


def ratios(runs, tool, key):
    return [run[key] / bare[key] for run, bare in zip(runs[tool], runs[f"bare-{tool}"], strict=True)]


def bare_spread(runs, key):
    """The largest difference between the bare runs of one repetition, in %."""
    worst = 0.0
    for bares in zip(*(runs[f"bare-{tool}"] for tool in TOOLS), strict=True):
        values = [bare[key] for bare in bares]
        worst = max(worst, (max(values) - min(values)) / min(values) * 100)
    return worst


def scenario_table(scenario, runs):
    labels = ("bare-ferrotel", *TOOLS)

    def row(name, key, fmt, unit=""):
        return f"| {name} | {' | '.join(summary([r[key] for r in runs[label]], fmt, unit) for label in labels)} |"

    def ratio_row(name, key):
        return f"| {name} | – | {' | '.join(summary(ratios(runs, tool, key), '.2f', '×') for tool in TOOLS)} |"

    def delivered(tool):
        spans, expected = (sum(r[key] for r in runs[tool]) for key in ("spans", "expected"))
        return f"{SPANS_PER_REQUEST[(scenario, tool)]}: {spans:,} / {expected:,}"

    return [
        "| | bare (ferrotel's venv) | ferrotel | upstream | ddtrace |",
        "|---|---:|---:|---:|---:|",
        row("requests/s", "rps", ",.0f"),
        ratio_row("requests/s ÷ bare", "rps"),
        row("p50 latency", "p50", ".2f", " ms"),
        row("p99 latency", "p99", ".2f", " ms"),
        row("server CPU per request", "cpu_us", ".0f", " µs"),
        ratio_row("server CPU per request ÷ bare", "cpu_us"),
        f"| spans per request: received / expected | – | {' | '.join(delivered(tool) for tool in TOOLS)} |",
        "",
        f"Bare runs in the three venvs within one repetition differed by up to {bare_spread(runs, 'rps'):.0f}% "
        f"in requests/s and {bare_spread(runs, 'cpu_us'):.0f}% in CPU per request.",
    ]


def servers_report(results, reps, seconds):
    lines = [
        f"{measured_on()}; load average {os.getloadavg()[0]:.1f} at the end; {reps} repetitions of "
        f"{seconds} s of wrk (1 thread, {CONNECTIONS} connections, after 2 s of warm-up) per scenario and tool, "
        "wrk and the receivers on core 0, the server alone on core 1. Figures are the median of the "
        "repetitions (min–max); ratios are to the bare run in the same tool's venv right before it.",
        "",
        "Server CPU per request, instrumented ÷ bare:",
        "",
        "| scenario | ferrotel | upstream | ddtrace | bare vs bare (largest spread in one repetition) |",
        "|---|---:|---:|---:|---:|",
    ]
    for scenario, runs in results.items():
        cells = [summary(ratios(runs, tool, "cpu_us"), ".2f", "×") for tool in TOOLS]
        lines.append(f"| {scenario} | {' | '.join(cells)} | {bare_spread(runs, 'cpu_us'):.0f}% |")
    for scenario, runs in results.items():
        lines += ["", f"**{scenario}** — {SCENARIOS[scenario]['title']}.", "", *scenario_table(scenario, runs)]
    return "\n".join(lines)


# In-process: each child measures one call kind in its own venv, bare or under a launcher.

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/users/42",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_HOST": "localhost",
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "wsgi.version": (1, 0),
}

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/users/42",
    "raw_path": b"/users/42",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"localhost"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 80),
}


def fastapi_calls():
    import asyncio

    from fastapi_app import app

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    async def calls(n):
        for _ in range(n):
            await app(dict(SCOPE), receive, send)

    loop = asyncio.new_event_loop()
    return lambda n: loop.run_until_complete(calls(n))


def flask_calls(close):
    from flask_app import app

    def start_response(status, headers, exc_info=None):
        return None

    def calls(n):
        for _ in range(n):
            environ = dict(ENVIRON)
            environ["wsgi.input"] = io.BytesIO(b"")
            body = app(environ, start_response)
            b"".join(body)
            if close:
                body.close()

    return calls


def sqlite3_calls():
    import sqlite3

    cursor = sqlite3.connect(":memory:").cursor()

    def calls(n):
        for i in range(n):
            cursor.execute("SELECT ?", (i,))
            cursor.fetchone()

    return calls


def sqlalchemy_calls():
    from sqlalchemy import create_engine, text

    connection = create_engine("sqlite://").connect()
    statement = text("SELECT :value")

    def calls(n):
        for i in range(n):
            connection.execute(statement, {"value": i}).fetchone()

    return calls


IN_PROCESS = {
    "fastapi": ("a trivial FastAPI route, the ASGI app called directly", fastapi_calls),
    "flask": (
        "a trivial Flask route through the WSGI callable, body drained without `close()`",
        lambda: flask_calls(close=False),
    ),
    "flask-closed": (
        "the same, body drained and closed as a WSGI server does",
        lambda: flask_calls(close=True),
    ),
    "sqlite3": ("a sqlite3 statement (`cursor.execute('SELECT ?')` + `fetchone()`, in memory)", sqlite3_calls),
    "sqlalchemy": (
        "a SQLAlchemy Core statement (`connection.execute(text('SELECT :value'), ...)` + `fetchone()`, sqlite)",
        sqlalchemy_calls,
    ),
}
IN_PROCESS_WARMUP, IN_PROCESS_ROUNDS = 500, 3
SPANS_PER_CALL = {
    ("fastapi", "ferrotel"): 4,
    ("fastapi", "upstream"): 3,
    # ferrotel ends a WSGI server span at the body's `close()`, which every WSGI server calls
    # (PEP 3333) and this caller never does, or when the unclosed body is collected (the
    # child collects before it exits); upstream's Flask span ends inside the app.
    ("flask", "ferrotel"): 1,
    ("flask", "upstream"): 1,
    ("flask-closed", "ferrotel"): 1,
    ("flask-closed", "upstream"): 1,
    ("sqlite3", "ferrotel"): 1,
    ("sqlite3", "upstream"): 1,
    # Upstream records SQLAlchemy's span and the sqlite3 driver's beside it; ferrotel one.
    ("sqlalchemy", "ferrotel"): 1,
    ("sqlalchemy", "upstream"): 2,
}
# Spans of a case's set-up, once per child: the engine's first `connect` and its PRAGMA.
SET_UP_SPANS = {("sqlalchemy", "ferrotel"): 2, ("sqlalchemy", "upstream"): 2}


def in_process_child(kind, n):
    calls = IN_PROCESS[kind][1]()
    calls(IN_PROCESS_WARMUP)
    best = float("inf")
    for _ in range(IN_PROCESS_ROUNDS):
        start = time.perf_counter()
        calls(n)
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    # Bodies left unclosed end their spans when collected: all of them, before the exit.
    gc.collect()
    return best


def measure_child(command, env):
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.splitlines()[-1])


def run_in_process(venvs, ferrotel_bin, env, n):
    """results[kind][tool] = {"bare": µs, "instrumented": µs, "spans": received, "expected": ...}"""
    results = {}
    for kind in IN_PROCESS:
        results[kind] = {}
        for tool in ("ferrotel", "upstream"):
            venv = venvs[tool]
            child = [
                "taskset",
                "-c",
                SERVER_CPU,
                str(venv / "bin" / "python"),
                __file__,
                "--in-process-child",
                kind,
                str(n),
            ]
            base = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "PYTHONPATH": str(APPS)}
            bare = measure_child(child, base)
            with receiver(ferrotel_bin, cpus=LOAD_CPU) as sink:
                settings = {**base, **otlp_settings(sink, tool)}
                instrumented = measure_child(child[:3] + launcher(tool, venv) + child[3:], settings)
                expected = (IN_PROCESS_WARMUP + IN_PROCESS_ROUNDS * n) * SPANS_PER_CALL[(kind, tool)]
                expected += SET_UP_SPANS.get((kind, tool), 0)
                spans = wait_for_spans(lambda: sink.get("/api/status")["spans"], expected)
            results[kind][tool] = {"bare": bare, "instrumented": instrumented, "spans": spans, "expected": expected}
            print(
                f"in-process {kind:8} {tool:9} bare {bare:7.2f} µs instrumented {instrumented:7.2f} µs "
                f"spans {spans}/{expected}",
                file=sys.stderr,
                flush=True,
            )
    return results


def in_process_report(results, n):
    lines = [
        f"{measured_on()}; best of {IN_PROCESS_ROUNDS} runs of {n:,} calls after {IN_PROCESS_WARMUP} warm-up calls, "
        "each case in a fresh interpreter of its own venv pinned to one core, traces and metrics exported "
        "over OTLP/HTTP protobuf into a `ferrotel view` on the other core.",
        "",
        "| per call | bare | ferrotel | ferrotel ÷ bare | bare (upstream's venv) | upstream | upstream ÷ bare |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, sides in results.items():
        cells = []
        for side in (sides["ferrotel"], sides["upstream"]):
            bare, instrumented = side["bare"], side["instrumented"]
            cells += [
                f"{bare:.2f} µs",
                f"{instrumented:.2f} µs (+{instrumented - bare:.2f})",
                f"{instrumented / bare:.2f}×",
            ]
        lines.append(f"| {IN_PROCESS[kind][0]} | {' | '.join(cells)} |")
    delivered = ", ".join(
        f"{kind} {tool} {r['spans']:,} / {r['expected']:,}"
        for kind, sides in results.items()
        for tool, r in sides.items()
    )
    lines += [
        "",
        f"Spans received / expected: {delivered}. ferrotel ends a WSGI server span at the body's `close()`, "
        "so in the first Flask row the spans end when the unclosed bodies are collected; the second row is "
        "what a request served by a WSGI server costs.",
    ]
    return "\n".join(lines)


# Profile: py-spy on the FastAPI server under ferrotel while wrk drives it.


def run_profile(venvs, ferrotel_bin, env, seconds, keep):
    py_spy = str(venvs["ddtrace"] / "bin" / "py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        samples = Path(tmp) / "samples.txt"
        recorder = []

        def record(pid):
            # Pointed at the interpreter itself: through a parent (`--subprocesses`), py-spy's
            # native unwinding loses the Python frames of most samples.
            command = [
                py_spy,
                "record",
                "--native",
                "--threads",
                "--rate",
                "250",
                "--format",
                "raw",
                "--duration",
                str(seconds),
            ]
            command += ["--output", str(samples), "--pid", str(python_in_tree(pid))]
            recorder.append(subprocess.Popen(["taskset", "-c", LOAD_CPU, *command], stdout=subprocess.DEVNULL))

        run_server("fastapi", "ferrotel", venvs["ferrotel"], ferrotel_bin, seconds + 2, env, on_load=record)
        recorder[0].wait()
        if keep:
            keep.write_text(samples.read_text())
        return parse_samples(samples.read_text())


# Leaves of a thread waiting rather than working: the event loop in epoll, a thread on a lock.
IDLE = ("epoll_wait", "select_epoll_poll", "PyThread_acquire_lock_timed")
FRAME = re.compile(r"^(?P<function>.*) \((?P<where>[^()]*?)(?::\d+)?\)$")


def frame_name(frame):
    """`function (file)` without the line, so that one function's lines count together."""
    match = FRAME.match(frame)
    if not match:
        return frame
    function = "(unresolved)" if match["function"].startswith("0x") else match["function"]
    return f"{function} ({match['where']})"


def innermost_python(frames):
    return next((frame for frame in reversed(frames) if frame.endswith(".py)")), "")


def parse_samples(text):
    """Collapsed stacks (`frame;frame;... count`), idle samples left out, to the top ten
    (function, self share, total share) and the shares of samples whose innermost Python
    frame is ferrotel's glue and FastAPI's own telemetry (native code they call included)."""
    own, inclusive, total = collections.Counter(), collections.Counter(), 0
    in_ferrotel = in_fastapi_telemetry = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame_name(frame) for frame in stack.split(";") if frame]
        if not frames or any(frame.startswith(IDLE) for frame in frames[-3:]):
            continue
        count = int(count)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        python = innermost_python(frames)
        in_ferrotel += count if "(ferrotel/" in python else 0
        in_fastapi_telemetry += count if "(fastapi/telemetry/" in python else 0
    top = [(frame, n / total, inclusive[frame] / total) for frame, n in own.most_common(10)]
    return top, in_ferrotel / total, in_fastapi_telemetry / total, total


def profile_report(profile, seconds):
    top, in_ferrotel, in_fastapi_telemetry, samples = profile
    lines = [
        f"{measured_on()}; `py-spy record --native` at 250 Hz for {seconds} s on the FastAPI scenario's "
        f"uvicorn server under `ferrotel instrument` while wrk drives it: {samples:,} samples with a thread at "
        "work (samples of the event loop waiting in epoll and of threads waiting on a lock left out). The ten "
        "functions most often at the top of the stack (self), with the share of samples they appear in "
        f"(total). The innermost Python frame is ferrotel's glue in {in_ferrotel:.1%} of the samples and "
        f"FastAPI's own telemetry (which records through ferrotel) in {in_fastapi_telemetry:.1%}, native code "
        "they call included; ferrotel's export threads (Rust, no Python frames) are not sampled.",
        "",
        "| function (file or library) | self | total |",
        "|---|---:|---:|",
    ]
    for frame, self_share, total_share in top:
        lines.append(f"| `{frame.replace('|', '/')}` | {self_share:.1%} | {total_share:.1%} |")
    return "\n".join(lines)


def main():
    if sys.argv[1:2] == ["--in-process-child"]:
        sys.path.insert(0, str(APPS))
        print(json.dumps(in_process_child(sys.argv[2], int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path)
    parser.add_argument("ddtrace_venv", type=Path)
    parser.add_argument("--only", default="servers,inprocess,profile")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--n", type=int, default=20_000, help="in-process calls per round")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--samples", type=Path, help="keep the profile's collapsed stacks here (flame graphs)")
    args = parser.parse_args()
    parts = args.only.split(",")
    venvs = {"ferrotel": args.ferrotel_venv, "upstream": args.upstream_venv, "ddtrace": args.ddtrace_venv}
    venvs = {tool: venv.resolve() for tool, venv in venvs.items()}
    ferrotel_bin = str(venvs["ferrotel"] / "bin" / "ferrotel")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "DD_", "BENCH_")) and k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")
    }
    reps = int(os.environ.get("BENCH_SERVER_REPS", "5"))
    seconds = int(os.environ.get("BENCH_SERVER_SECONDS", "10"))
    failures = []
    if "servers" in parts:
        results = run_servers(venvs, ferrotel_bin, env, reps, seconds, args.scenarios.split(","))
        publish(servers_report(results, reps, seconds), "servers", args.write)
        failures += [
            f"{scenario} {label}: {r['spans']} spans of {r['expected']}"
            for scenario, runs in results.items()
            for label, rs in runs.items()
            for r in rs
            if r["spans"] != r["expected"]
        ]
    if "inprocess" in parts:
        results = run_in_process(venvs, ferrotel_bin, env, args.n)
        publish(in_process_report(results, args.n), "servers-in-process", args.write)
        failures += [
            f"in-process {kind} {tool}: {r['spans']} spans of {r['expected']}"
            for kind, sides in results.items()
            for tool, r in sides.items()
            if r["spans"] != r["expected"]
        ]
    if "profile" in parts:
        publish(
            profile_report(run_profile(venvs, ferrotel_bin, env, seconds, args.samples), seconds),
            "servers-profile",
            args.write,
        )
    assert not failures, "spans lost or unexpected: " + "; ".join(failures)


if __name__ == "__main__":
    main()
