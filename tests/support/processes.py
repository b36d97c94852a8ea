"""Running real processes under the installed ferrotel executables: environments, ports,
servers in their own session, HTTP helpers."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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


def http_get(url, headers=None):
    """(status, body) of a GET, error statuses included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        error.close()
        return error.code, body


def default_signals():
    # A background job starts with SIGINT ignored, and children inherit that: a server that
    # is to be stopped by a signal must get the default handlers back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spawn(command, cwd=None, env=None):
    """Starts `command` in its own session (so its whole group can be stopped) with SIGINT
    and SIGTERM at their defaults, its output captured as text."""
    return subprocess.Popen(
        [str(c) for c in command],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,
    )


class Server:
    """A server process in its own session; `output` is (stdout, stderr) once stopped."""

    def __init__(self, command, cwd, env):
        self.process = spawn(command, cwd, env)
        self.output = ("", "")


@contextlib.contextmanager
def serving(command, cwd, env, stop=signal.SIGINT):
    """Runs `command` for the duration of the block, then stops its whole process group with
    `stop` (so reloaders and workers go too) and collects its output."""
    server = Server(command, cwd, env)
    try:
        yield server
    finally:
        os.killpg(server.process.pid, stop)
        server.output = server.process.communicate(timeout=30)
