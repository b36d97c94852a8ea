"""A `ferrotel view` of its own for a benchmark side to export to: a real OTLP receiver whose
status API proves what arrived; and the command line both signal benchmarks share."""

import argparse
import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    def __init__(self, http, ui):
        self.http, self.ui = http, ui

    def endpoint(self, signal):
        return f"http://127.0.0.1:{self.http}/v1/{signal}"

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}{path}", timeout=10) as response:
            return json.loads(response.read())


@contextlib.contextmanager
def receiver(ferrotel_bin, *flags, cpus=None):
    """`cpus` (e.g. "0") pins the receiver, so that it stays off the core being measured."""
    grpc, http, ui = free_port(), free_port(), free_port()
    ports = ["--grpc", str(grpc), "--http", str(http), "--ui", str(ui)]
    pin = ["taskset", "-c", cpus] if cpus else []
    process = subprocess.Popen([*pin, ferrotel_bin, "view", *ports, *flags], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", ui), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        yield Receiver(http, ui)
    finally:
        process.kill()
        process.wait()


def bare_then_instrumented(script, metrics_exporter):
    """A `run_side` for `compare`: `script --child N` (printing its figure as the last line of
    JSON) run bare, then under the side's launcher exporting traces (and metrics, when
    `metrics_exporter` is `otlp`) over OTLP/HTTP into a viewer that counts the spans."""

    def run_side(ferrotel_bin, venv, side, n, env):
        child = [str(venv / "bin" / "python"), script, "--child", str(n)]

        def run(command, extra):
            out = subprocess.run(command, capture_output=True, text=True, check=True, env={**env, **extra})
            return json.loads(out.stdout.splitlines()[-1])

        bare = run(child, {})
        with receiver(ferrotel_bin) as sink:
            settings = {
                "OTEL_SERVICE_NAME": f"bench-{side}",
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": metrics_exporter,
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.http}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
                "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
            }
            if side == "ferrotel":
                launcher = [str(venv / "bin" / "ferrotel"), "instrument", "--"]
            else:
                launcher = [str(venv / "bin" / "opentelemetry-instrument")]
            instrumented = run(launcher + child, settings)
            spans = sink.get("/api/status")["spans"]
        return {"bare": bare, "instrumented": instrumented, "spans": spans}

    return run_side


def compare(run_side, default_n):
    """Parses `FERROTEL_VENV UPSTREAM_VENV [--n N] [--write FILE]` and runs
    `run_side(ferrotel_bin, venv, side, n, env)` for ferrotel, then upstream, each with the
    caller's OTEL_* settings removed. Returns (args, ferrotel's result, upstream's)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path)
    parser.add_argument("--n", type=int, default=default_n)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    ferrotel_bin = str(args.ferrotel_venv / "bin" / "ferrotel")
    ferrotel = run_side(ferrotel_bin, args.ferrotel_venv, "ferrotel", args.n, env)
    upstream = run_side(ferrotel_bin, args.upstream_venv, "upstream", args.n, env)
    return args, ferrotel, upstream
