"""Shared helpers: run real processes under the installed ferrotel executables."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")
FERROTEL = str(BIN / "ferrotel")


def clean_env(**extra):
    """The test process's environment without any OTEL_* or PYTHONPATH, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(*args, env=None, cwd=None, timeout=60):
    return subprocess.run(
        [str(a) for a in args],
        env=env if env is not None else clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def instrument(*args, env=None, cwd=None, timeout=60):
    return run(FERROTEL, "instrument", *args, env=env, cwd=cwd, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, deadline=20.0):
    """GETs url until it answers; returns the body."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def init_pids(stderr):
    """Pids that logged ferrotel's debug 'initialising pid N' line, in order."""
    pids = []
    for line in stderr.splitlines():
        marker = "ferrotel: debug: initialising pid "
        if line.startswith(marker):
            pids.append(int(line[len(marker) :].split(":")[0]))
    return pids


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def console_spans(text):
    """Parses ferrotel's console exporter output into dicts (name, ids as hex, parent,
    kind, status, attributes as raw text values, resource pid)."""
    import re

    spans = []
    for block in re.split(r"\n(?=span \")", text):
        head = re.match(r'span "(.*)"\n', block)
        if not head:
            continue
        ids = re.search(
            r"trace_id +([0-9a-f]{32})\n +span_id +([0-9a-f]{16}) +(?:parent ([0-9a-f]{16})|\(root\))", block
        )
        kind = re.search(r"kind +(\w+) +status (.*)\n", block)
        pid = re.search(r"process\.pid=(\d+)", block)
        attributes = dict(re.findall(r"^    ([\w.]+) = (.*)$", block.split("  events\n")[0], re.M))
        spans.append(
            {
                "name": head.group(1),
                "trace_id": ids.group(1),
                "span_id": ids.group(2),
                "parent": ids.group(3),
                "kind": kind.group(1),
                "status": kind.group(2),
                "attributes": attributes,
                "pid": int(pid.group(1)) if pid else None,
                "events": re.findall(r"^    \S+Z (\S+)$", block, re.M),
            }
        )
    return spans
