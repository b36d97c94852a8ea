"""Shared helpers: run real processes under the installed ferrotel executables."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "demo"))
from summarize import console_spans  # noqa: E402,F401 - one parser for the demo and the tests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")
FERROTEL = str(BIN / "ferrotel")
VERSION = re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
# Release wheel platform tags (as maturin spells them: the manylinux2014 alias, then PEP 600's).
RELEASE_TAGS = {"gnu": "manylinux2014_x86_64.manylinux_2_17_x86_64", "musl": "musllinux_1_2_x86_64"}


def ferrotel_wheel():
    """The wheel in dist/ that this interpreter's pip installs (the one in .venv)."""
    supported = set(sys_tags())
    wheels = [w for w in (ROOT / "dist").glob("ferrotel-*.whl") if parse_wheel_filename(w.name)[3] & supported]
    assert len(wheels) == 1, f"expected one ferrotel wheel for this Python in dist/, found {wheels}"
    return wheels[0]


def release_wheel(python, libc):
    """dist/'s release wheel for CPython `python` ("3.12") and `libc` ("gnu" or "musl")."""
    cp = "cp" + python.replace(".", "")
    wheel = ROOT / "dist" / f"ferrotel-{VERSION}-{cp}-{cp}-{RELEASE_TAGS[libc]}.whl"
    if not wheel.is_file():
        pytest.fail(f"{wheel.name} is missing from dist/: scripts/release builds it (scripts/test runs it)")
    return wheel


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


@pytest.fixture(scope="session")
def contrib_python(tmp_path_factory):
    """A user's environment: the pinned contrib instrumentations and libraries of
    tests/contrib-requirements.txt, with ferrotel from this checkout as the SDK."""
    venv = tmp_path_factory.mktemp("contrib") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(ROOT / "tests" / "contrib-requirements.txt")], check=True)
    subprocess.run([*pip, "--no-deps", str(ferrotel_wheel())], check=True)
    return python


@pytest.fixture
def viewer():
    """A `ferrotel view` on free ports (test_view.Viewer), killed after the test."""
    from test_view import Viewer

    v = Viewer()
    yield v
    v.process.kill()
    v.process.wait()


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


class Server:
    """A server process in its own session; `output` is (stdout, stderr) once stopped."""

    def __init__(self, command, cwd, env):
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
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
