"""Per-call cost of the client and database instrumentations, side by side in one run: an
httpx GET to a local server, a redis GET, a psycopg SELECT, a psycopg2 SELECT on a new cursor
(as Django makes one per query) and an in-memory sqlite3 SELECT,
each bare (ferrotel's venv, no instrumentation), under `ferrotel instrument` (the native
built-ins) and under upstream's `opentelemetry-instrument` (the pinned contrib
instrumentations, their own venv). Spans are exported over OTLP/HTTP to a local sink, as in
production. Each side runs in a fresh interpreter; reported: the calling thread's CPU µs per
call (median of repetitions) and the difference to bare.

The servers are real: a local HTTP server (in the worker), redis-server and PostgreSQL from
Debian's packages, started on free ports in a temporary directory and stopped at the end.

Usage: python bench/clients_db.py [--upstream-venv .venv-upstream] [--calls N] [--repeat R]
                                  [--write BENCHMARKS.md]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import measured_on, publish

ROOT = Path(__file__).resolve().parents[1]
RECEIVER = ROOT / "tests" / "apps" / "otlp_receiver.py"
CASES = ["httpx GET", "redis GET", "psycopg SELECT", "psycopg2 cursor + SELECT", "sqlite3 SELECT"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline=30.0):
    end = time.monotonic() + deadline
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_redis(directory):
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    return process, port


def start_postgres(directory):
    """PostgreSQL as the `postgres` user when run as root (it refuses root)."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    data = directory / "data"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(directory, "postgres")
    subprocess.run(
        [*as_postgres, binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = [binaries / "postgres", "-D", data, "-p", str(port), "-k", directory, "-c", "listen_addresses=127.0.0.1"]
    process = subprocess.Popen(
        [*as_postgres, *map(str, server)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_port(port)
    return process, f"host=127.0.0.1 port={port} user=postgres dbname=postgres"


def worker(calls, redis_port, dsn):
    """Runs in the measured interpreter: µs of the calling thread's CPU per call of each
    case, after a warm-up (CPU time, not wall time: what the instrumentation adds to the
    app's thread, unaffected by the servers' latency and by other load on the machine)."""
    import sqlite3
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx
    import psycopg
    import psycopg2
    import redis

    class Ok(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without this, delayed ACKs add 40 ms.
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_port}/item"
    http = httpx.Client()
    kv = redis.Redis(port=redis_port)
    kv.set("key", "value")
    pg = psycopg.connect(dsn, autocommit=True)
    pg_cursor = pg.cursor()
    pg2 = psycopg2.connect(dsn)
    pg2.autocommit = True
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE t (a INTEGER)")
    lite_cursor = lite.cursor()

    def sqlite_select():
        lite_cursor.execute("SELECT a FROM t WHERE a = 1")

    def psycopg_select():
        pg_cursor.execute("SELECT 1 WHERE 1 = 1")
        pg_cursor.fetchall()

    def psycopg2_select():
        with pg2.cursor() as cursor:
            cursor.execute("SELECT 1 WHERE 1 = 1")
            cursor.fetchall()

    calls_of = {
        "httpx GET": lambda: http.get(url).read(),
        "redis GET": lambda: kv.get("key"),
        "psycopg SELECT": psycopg_select,
        "psycopg2 cursor + SELECT": psycopg2_select,
        # A local statement: the instrumentation's own cost shows, not the network's.
        "sqlite3 SELECT": sqlite_select,
    }
    out = {}
    for case in CASES:
        call = calls_of[case]
        n = calls * 20 if case == "sqlite3 SELECT" else calls
        for _ in range(min(n, 200)):
            call()
        started = time.thread_time()
        for _ in range(n):
            call()
        out[case] = (time.thread_time() - started) / n * 1e6
    httpd.shutdown()
    print(json.dumps(out))


def measure(side, python_bin, calls, redis_port, dsn, endpoint):
    bin_dir = Path(python_bin).parent
    command = [python_bin, __file__, "--worker", str(calls), str(redis_port), dsn]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SEMCONV_STABILITY_OPT_IN="http,database",
    )
    if side == "ferrotel":
        command = [str(bin_dir / "ferrotel"), "instrument", *command]
    elif side == "upstream":
        command = [str(bin_dir / "opentelemetry-instrument"), *command]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"{side} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream-venv", default=str(ROOT / ".venv-upstream"))
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", nargs=3)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    if args.worker:
        worker(int(args.worker[0]), int(args.worker[1]), args.worker[2])
        return
    upstream_python = str(Path(args.upstream_venv) / "bin" / "python")
    sides = [("bare", sys.executable), ("ferrotel", sys.executable), ("upstream", upstream_python)]
    directory = Path(tempfile.mkdtemp(prefix="ferrotel-bench-"))
    directory.chmod(0o755)  # PostgreSQL's user reaches its directory inside
    processes = []
    try:
        redis_process, redis_port = start_redis(directory)
        processes.append(redis_process)
        (directory / "pg").mkdir()
        pg_process, dsn = start_postgres(directory / "pg")
        processes.append(pg_process)
        sink = subprocess.Popen(
            [upstream_python, str(RECEIVER), "--sink"], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        processes.append(sink)
        endpoint = f"http://127.0.0.1:{sink.stdout.readline().split()[1]}"
        runs = {side: [] for side, _ in sides}
        for _ in range(args.repeat):
            for side, python_bin in sides:  # interleaved, so drift hits every side alike
                runs[side].append(measure(side, python_bin, args.calls, redis_port, dsn, endpoint))
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(directory, ignore_errors=True)
    median = {side: {case: sorted(r[case] for r in rs)[len(rs) // 2] for case in CASES} for side, rs in runs.items()}
    rows = [
        f"{measured_on()}; the calling thread's CPU per call, median of {args.repeat} runs of {args.calls}"
        " calls (sqlite3: 20 statements per call), each side in a fresh interpreter of its own venv, spans"
        " exported over OTLP/HTTP to a local sink; real redis-server and PostgreSQL from Debian's packages.",
        "",
        "| per call | bare | ferrotel | added | upstream | added | upstream added / ferrotel added |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in CASES:
        bare, ours, theirs = (median[s][case] for s in ("bare", "ferrotel", "upstream"))
        ratio = f"{(theirs - bare) / (ours - bare):.1f}×" if ours - bare > 0 else "–"
        rows.append(
            f"| {case} | {bare:.1f} µs | {ours:.1f} µs | {ours - bare:+.1f} µs | {theirs:.1f} µs"
            f" | {theirs - bare:+.1f} µs | {ratio} |"
        )
    publish("\n".join(rows), "clients-db", args.write)


if __name__ == "__main__":
    main()
