"""Instructions per call, counted by callgrind, bare, under `ferrotel instrument` and under
upstream's `opentelemetry-instrument`, each twice (N and 2N calls after a warm-up) so that
the difference, divided by N, is one call's instructions with start-up and warm-up cancelled
out. Unlike wall or CPU time on this VM (whose speed varies by tens of percent from one
minute to the next), the count does not depend on what else runs.

Two kinds of case:
- in-process (`--kinds`): the in-process cases of bench/servers.py (a FastAPI route as an
  ASGI app, a Flask route through WSGI with the body closed, a sqlite3 statement); the app
  thread's instructions.
- real servers (`--servers`): the scenarios of bench/servers.py, each server started under
  callgrind and sent N (then 2N) requests one after another; every thread of the process
  serving them (gunicorn's worker, uvicorn's process), export threads included: the server
  CPU per request of servers.py's table, counted.

Usage: python bench/instructions.py FERROTEL_VENV [UPSTREAM_VENV] [--kinds flask-closed,...]
           [--servers flask,fastapi,django,outgoing] [--n 1000] [--requests 300]
           [--tools bare,ferrotel,upstream,ddtrace] [--ddtrace-venv DDTRACE_VENV] [--write BENCHMARKS.md]
Needs valgrind. Each side exports over OTLP/HTTP into a `ferrotel view` as in servers.py.
"""

import argparse
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from receiver import free_port, receiver
from report import measured_on, publish
from servers import (
    APPS,
    IN_PROCESS,
    SCENARIOS,
    SET_UP_SPANS,
    SPANS_PER_CALL,
    SPANS_PER_REQUEST,
    Downstream,
    bind_to,
    launcher,
    otlp_settings,
    server_environment,
    sink_for,
    stop,
    wait_for_spans,
    wait_until,
)

WARMUP = 200


def child(kind, n):
    calls = IN_PROCESS[kind][1]()
    calls(WARMUP)
    calls(n)


def app_thread_instructions(command, env):
    """Instructions callgrind counted on the main thread of `command`'s Python process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"]
        subprocess.run(command(valgrind), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Thread 1 is the interpreter's main thread, the app's.
        main = Path(f"{out}-01")
        for line in main.read_text().splitlines():
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {main}")


def per_call(kind, tool, venv, ferrotel_bin, n, env):
    """Instructions per call, and whether every span of the runs it comes from arrived."""
    python = str(venv / "bin" / "python")
    base = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "PYTHONPATH": str(APPS)}

    def command(calls):
        # The launcher execs valgrind, which runs the interpreter with the launcher's settings.
        return lambda valgrind: [*launcher(tool, venv), *valgrind, python, __file__, "--child", kind, str(calls)]

    def delivered_run(calls, settings, count_spans):
        """One run's count; run again (up to three times) when spans were dropped: valgrind
        runs one thread at a time, so the export thread may fall behind and the queue fill,
        and a span dropped on the app thread costs less than one exported (the count would
        be low by thousands)."""
        expected = (WARMUP + calls) * SPANS_PER_CALL[(kind, tool)] + SET_UP_SPANS.get((kind, tool), 0)
        for _ in range(3):
            before = count_spans()
            instructions = app_thread_instructions(command(calls), settings)
            received = wait_for_spans(lambda before=before: count_spans() - before, expected)
            if received == expected:
                return instructions, True
            print(f"{kind} {tool}: {received:,} of {expected:,} spans arrived; measuring again", file=sys.stderr)
        return instructions, False

    # One run outside callgrind first: the launcher's first run after an install scans the
    # venv and writes its plan cache (only once the venv's directories are 2 s old), millions
    # of instructions that would land in one of the two measured runs and not the other (a
    # Flask request counted ~3,000 low right after a build).
    time.sleep(2.1)
    subprocess.run(command(WARMUP)([]), env=base, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if tool == "bare":
        one = app_thread_instructions(command(n), base)
        two = app_thread_instructions(command(2 * n), base)
        return (two - one) / n, True
    with receiver(ferrotel_bin) as sink:
        settings = {**base, **otlp_settings(sink, tool)}
        (one, complete_one), (two, complete_two) = (
            delivered_run(calls, settings, lambda: sink.get("/api/status")["spans"]) for calls in (n, 2 * n)
        )
        return (two - one) / n, complete_one and complete_two


def totals(callgrind_file):
    for line in Path(callgrind_file).read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {callgrind_file}")


def get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def server_run(scenario, tool, venv, ferrotel_bin, requests, env, like=None):
    """(instructions of the process that served, requests it handled, spans received):
    the scenario's server under callgrind, WARMUP requests and then `requests` more, one at a
    time, then stopped as servers.py stops it (its exit flush included)."""
    spec = SCENARIOS[scenario]
    python = str(venv / "bin" / "python")
    with tempfile.TemporaryDirectory() as tmp, sink_for(tool, venv, ferrotel_bin, like) as (settings, count_spans):
        tmp = Path(tmp)
        base = server_environment(scenario, venv, tmp, env)
        port = free_port()
        program, *options = spec["server"]
        # gunicorn's worker is a fork of its master: callgrind writes one file per process.
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out.%p"]
        valgrind.append(f"--log-file={tmp}/valgrind.%p.log")
        command = [*launcher(tool, venv), *valgrind, python, "-m", program, *options, *bind_to(spec, port)]
        server = subprocess.Popen(command, env={**base, **settings}, cwd=tmp, start_new_session=True)
        try:
            wait_until(lambda: get_or_none(port, spec["path"]), server, seconds=600)
            for _ in range(WARMUP // 4 + requests):
                assert get(port, spec["path"]) == 200
        finally:
            stop(server, spec.get("stop", signal.SIGTERM))
        handled = sum(int(path.read_text()) for path in tmp.glob("count.*"))
        spans = wait_for_spans(count_spans, handled * SPANS_PER_REQUEST.get((scenario, tool), 0))
        serving = max(tmp.glob("callgrind.out.*"), key=totals)
        return totals(serving), handled, spans


def get_or_none(port, path):
    try:
        return get(port, path)
    except OSError:
        return None


def per_request(scenario, tool, venv, ferrotel_bin, requests, env, like=None):
    """Instructions per request of the serving process, and whether every span arrived;
    `like`: for a bare run, the tool whose variables it runs with."""
    one, handled_one, spans_one = server_run(scenario, tool, venv, ferrotel_bin, requests, env, like)
    two, handled_two, spans_two = server_run(scenario, tool, venv, ferrotel_bin, 2 * requests, env, like)
    expected = (handled_one + handled_two) * SPANS_PER_REQUEST.get((scenario, tool), 0)
    return (two - one) / (handled_two - handled_one), spans_one + spans_two, expected


def main():
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path, nargs="?")
    parser.add_argument("--ddtrace-venv", type=Path, help="adds ddtrace-run to the real-server cases")
    parser.add_argument("--kinds", default="fastapi,flask-closed,sqlite3", help="in-process cases; '' for none")
    parser.add_argument("--servers", default="", help="real-server scenarios, e.g. flask,fastapi,django,outgoing")
    parser.add_argument("--requests", type=int, default=300, help="requests per server run (and twice that)")
    parser.add_argument("--tools", default="bare,ferrotel,upstream")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--write", type=Path, help="writes the real-server table into BENCHMARKS.md")
    args = parser.parse_args()
    ferrotel_bin = str(args.ferrotel_venv / "bin" / "ferrotel")
    venvs = {
        "bare": args.ferrotel_venv,
        "ferrotel": args.ferrotel_venv,
        "upstream": args.upstream_venv,
        "ddtrace": args.ddtrace_venv,
    }
    # A fixed hash seed: with a random one, dict layouts and so the counts vary by ~0.5%.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    tools = [tool for tool in args.tools.split(",") if venvs[tool] is not None]
    for kind in filter(None, args.kinds.split(",")):
        for tool in (tool for tool in tools if tool != "ddtrace"):
            count, complete = per_call(kind, tool, venvs[tool].resolve(), ferrotel_bin, args.n, env)
            dropped = "" if complete else " (spans were dropped: not a valid figure)"
            print(f"{kind:13} {tool:9} {count:12,.0f} instructions per call{dropped}", flush=True)
    scenarios = list(filter(None, args.servers.split(",")))
    if scenarios:
        results = measure_servers(scenarios, [t for t in tools if t != "bare"], venvs, ferrotel_bin, args.requests, env)
        publish(servers_table(results, args.requests), "server-instructions", args.write)


def measure_servers(scenarios, tools, venvs, ferrotel_bin, requests, env):
    """results[scenario][tool] = (instructions per request, bare's in the tool's venv, spans
    received, spans expected). Each tool is compared with a bare run in its own venv (the
    venvs' library versions may differ) and with its variables."""
    results = {}
    with Downstream() as downstream:
        env = {**env, "BENCH_DOWNSTREAM": downstream}
        for scenario in scenarios:
            bare_in = {}
            for tool in tools:
                venv = venvs[tool].resolve()
                if venv not in bare_in:
                    bare_in[venv] = per_request(scenario, "bare", venv, ferrotel_bin, requests, env, like=tool)[0]
                count, spans, expected = per_request(scenario, tool, venv, ferrotel_bin, requests, env)
                results.setdefault(scenario, {})[tool] = (count, bare_in[venv], spans, expected)
                print(
                    f"server {scenario:9} {tool:9} {count:12,.0f} instructions per request, bare "
                    f"{bare_in[venv]:,.0f} ({count / bare_in[venv]:.3f}×), spans {spans:,}/{expected:,}",
                    flush=True,
                )
    return results


def servers_table(results, requests):
    tools = list(next(iter(results.values())))
    lines = [
        f"{measured_on()}; callgrind, every thread of the serving process (gunicorn's worker, "
        f"uvicorn's process), the difference of a {requests}- and a {2 * requests}-request run after "
        f"{WARMUP // 4} warm-up requests, divided by the requests handled; requests one at a time "
        "from a client; each tool against a bare run in its own venv with the tool's variables set.",
        "",
        f"| instructions per request | {' | '.join(f'{tool} (÷ bare)' for tool in tools)} |",
        f"|---|{'---:|' * len(tools)}",
    ]
    for scenario, by_tool in results.items():
        cells = [f"{count:,.0f} ({count / bare:.3f}×)" for count, bare, _, _ in by_tool.values()]
        lines.append(f"| {scenario} | {' | '.join(cells)} |")

    def per_scenario(cell):
        return "; ".join(
            f"{scenario} {', '.join(cell(tool, *figures) for tool, figures in by_tool.items())}"
            for scenario, by_tool in results.items()
        )

    bares = per_scenario(lambda tool, _count, bare, _spans, _expected: f"{tool}'s venv {bare:,.0f}")
    delivered = per_scenario(lambda tool, _count, _bare, spans, expected: f"{tool} {spans:,} / {expected:,}")
    lines += ["", f"Bare: {bares}. Spans received / expected: {delivered}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
