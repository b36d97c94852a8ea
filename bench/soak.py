"""Soak: a steady stream of spans for minutes while the collector flaps (down 20 s, up 20 s),
ferrotel and upstream in turn, each exporting OTLP/HTTP to a `ferrotel view` that is killed
and restarted on the same ports. The viewer journals to a `--db` file, so its span count
after the last restart is everything it ever accepted. Records each side's RSS over the
run, the spans it recorded, what the collector received, and (ferrotel) what its exit line
says was not delivered: received + not delivered must equal recorded.

Usage: soak.py FERROTEL_VENV UPSTREAM_VENV [--seconds 120] [--rate 1000] [--write FILE]"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from receiver import free_port
from report import measured_on, publish

APP = """
import sys, time
from opentelemetry import trace
tracer = trace.get_tracer("soak")
seconds, rate = float(sys.argv[1]), int(sys.argv[2])
start = time.monotonic()
recorded = 0
while time.monotonic() - start < seconds:
    tick = time.monotonic()
    for _ in range(rate // 100):
        with tracer.start_as_current_span("work", attributes={"a": 1, "b": "x", "c": 2.5, "d": True}):
            pass
        recorded += 1
    time.sleep(max(0.0, 0.01 - (time.monotonic() - tick)))
print(recorded, flush=True)
"""


class FlappingViewer:
    """A `ferrotel view` killed and restarted on the same ports every `period` seconds."""

    def __init__(self, ferrotel_bin, db, period):
        self.ferrotel_bin, self.db, self.period = ferrotel_bin, db, period
        self.ports = [free_port(), free_port(), free_port()]
        self.process = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._flap, daemon=True)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.ports[1]}"

    def _start(self):
        grpc, http, ui = self.ports
        flags = ["--grpc", str(grpc), "--http", str(http), "--ui", str(ui), "--db", str(self.db)]
        self.process = subprocess.Popen(
            [self.ferrotel_bin, "view", *flags, "--max-spans", "5000000"], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                return self.status()
            time.sleep(0.05)
        raise RuntimeError("the viewer did not start")

    def _stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)

    def _flap(self):
        while not self.stopping.wait(self.period):
            self._stop()
            if self.stopping.wait(self.period):
                break
            self._start()

    def __enter__(self):
        self._start()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()
        if self.process.poll() is not None:
            self._start()
        self.received = self.status()["spans"]
        self._stop()

    def status(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[2]}/api/status", timeout=5) as response:
            return json.loads(response.read())


def rss_mib(pid):
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def run_side(ferrotel_bin, venv, side, args, env, workdir):
    app = workdir / f"{side}.py"
    app.write_text(APP)
    db = workdir / f"{side}.db"
    with FlappingViewer(ferrotel_bin, db, args.period) as viewer:
        env = {
            **env,
            "OTEL_SERVICE_NAME": f"soak-{side}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": viewer.endpoint,
            "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}",
        }
        launcher = venv / "bin" / ("ferrotel-instrument" if side == "ferrotel" else "opentelemetry-instrument")
        command = [str(launcher), str(venv / "bin" / "python"), str(app), str(args.seconds), str(args.rate)]
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples = []
        while process.poll() is None:
            rss = rss_mib(process.pid)
            if rss is not None:
                samples.append((time.monotonic() - started, rss))
            time.sleep(1)
        out, err = process.communicate()
        ended = time.monotonic() - started
    recorded = int(out.split()[0])
    lost = sum(int(m) for m in re.findall(r"(\d+) span\(s\) were not delivered", err))
    steady = [rss for t, rss in samples if t > args.period]
    return {
        "recorded": recorded,
        "received": viewer.received,
        "lost": lost if side == "ferrotel" else None,
        "rss_steady_min": min(steady),
        "rss_steady_max": max(steady),
        "rss_last": samples[-1][1],
        "exit_after_run": ended - args.seconds,
        "warnings": sum(1 for line in err.splitlines() if "warning" in line.lower()),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--period", type=float, default=20)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    ferrotel_bin = str(args.ferrotel_venv / "bin" / "ferrotel")
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for side, venv in (("ferrotel", args.ferrotel_venv), ("upstream", args.upstream_venv)):
            results[side] = run_side(ferrotel_bin, venv, side, args, env, Path(workdir))
            print(side, results[side], flush=True)
    f, u = results["ferrotel"], results["upstream"]

    def accounted(r):
        if r["lost"] is None:
            return f"{r['received']:,} received of {r['recorded']:,}; loss not reported"
        balance = "exact" if r["received"] + r["lost"] == r["recorded"] else "MISMATCH"
        return f"{r['received']:,} received + {r['lost']:,} reported lost = {r['recorded']:,} recorded ({balance})"

    def rss(r):
        return f"{r['rss_steady_min']:.0f}–{r['rss_steady_max']:.0f} MiB, {r['rss_last']:.0f} MiB"

    lines = [
        f"{measured_on()}; each side {args.seconds:.0f} s at {args.rate:,} spans/s (4 attributes each), "
        f"exporting OTLP/HTTP to a `ferrotel view` killed and restarted every {args.period:.0f} s "
        "(its `--db` journal keeps what it accepted across restarts).",
        "",
        "| | ferrotel | upstream |",
        "|---|---|---|",
        f"| spans | {accounted(f)} | {accounted(u)} |",
        f"| RSS after the first period: lowest–highest, last | {rss(f)} | {rss(u)} |",
        f"| exit after the last span | {f['exit_after_run']:.1f} s | {u['exit_after_run']:.1f} s |",
        f"| warning lines on stderr | {f['warnings']} | {u['warnings']} |",
    ]
    publish("\n".join(lines), "soak", args.write)


if __name__ == "__main__":
    main()
