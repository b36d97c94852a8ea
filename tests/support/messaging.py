"""Real servers for the messaging and RPC tests: redis-server from Debian's package on a free
port in a temporary directory, and the OTLP receiver (upstream's opentelemetry-proto
decoding) whose spans a scenario is judged by."""

import base64
import contextlib
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

from support.processes import clean_env, free_port

RECEIVER = Path(__file__).resolve().parents[1] / "apps" / "otlp_receiver.py"


def ensure_debian_package(program, package):
    """Installs `package` when `program` is missing, as scripts/test does (root, apt)."""
    if shutil.which(program) is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", package],
            check=True,
            env={**clean_env(), "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
        )


def stop(process, grace=10):
    """SIGTERM, then SIGKILL if it has not gone within `grace` seconds; its output."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


@contextlib.contextmanager
def redis_server(directory):
    """A redis-server on a free 127.0.0.1 port, persisting nothing, in `directory`; its URL."""
    ensure_debian_package("redis-server", "redis-server")
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)]
    command += ["--save", "", "--appendonly", "no"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout != "PONG\n":
            assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(server)


class Receiver:
    """The OTLP/HTTP receiver of tests/apps/otlp_receiver.py, run by `python` (one with
    upstream's opentelemetry-proto)."""

    def __init__(self, python):
        command = [str(python), str(RECEIVER)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=clean_env())
        self.endpoint = f"http://127.0.0.1:{self.process.stdout.readline().split()[1]}"

    def spans(self):
        """Stops the receiver; every span it received, with its scope's name as `scope`."""
        out, _ = stop(self.process)
        spans = []
        for line in out.splitlines():
            if line.startswith("{"):
                for rs in json.loads(line)["request"]["resource_spans"]:
                    for ss in rs["scope_spans"]:
                        for span in ss["spans"]:
                            spans.append({**span, "scope": ss.get("scope", {}).get("name", "")})
        return spans


def attributes(span):
    return {a["key"]: next(iter(a["value"].values()), None) for a in span.get("attributes", [])}


def trace_id(span):
    return base64.b64decode(span["trace_id"]).hex()


def tree(spans, render):
    """The spans as indented lines, children under their parent in start order, each line
    `render(span)`; spans whose parent is not among them are roots."""
    by_id = {s["span_id"]: s for s in spans}
    children = {}
    for s in sorted(spans, key=lambda s: int(s["start_time_unix_nano"])):
        parent = s.get("parent_span_id")
        children.setdefault(parent if parent in by_id else None, []).append(s)
    lines = []

    def walk(parent, depth):
        for s in children.get(parent, []):
            lines.append("  " * depth + render(s))
            walk(s["span_id"], depth + 1)

    walk(None, 0)
    return lines
