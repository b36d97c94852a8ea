"""The W3C's own trace-context test suite (github.com/w3c/trace-context, test/) against a
zero-code service: a Flask app under `ferrotel instrument` that, for each POST, calls the
URLs it is given with `requests`, so context goes in through ferrotel's server
instrumentation and out through its client instrumentation.

The harness is not part of this repository. It is taken from FERROTEL_W3C_HARNESS (a
checkout of the W3C repository, or its test/ directory) or else downloaded at the pinned
commit below; without either the test is skipped, saying why."""

import io
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest
from support.processes import BIN, ROOT, clean_env, free_port

# The harness at its latest revision when this was written (June 2026: the relaxed
# tracestate key grammar).
HARNESS_COMMIT = "acab820be9db7b3433668baa5cdd43f57f4c4be0"
HARNESS_TARBALL = f"https://github.com/w3c/trace-context/archive/{HARNESS_COMMIT}.tar.gz"
CACHE = ROOT / ".suites" / "w3c-trace-context"

SERVICE = """
import sys
import requests
from flask import Flask, request

app = Flask(__name__)

@app.post("/test")
def forward():
    for call in request.get_json():
        requests.post(call["url"], json=call["arguments"], timeout=10)
    return "done"

app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
"""


def harness_dir():
    """The harness's test/ directory, or None (with the reason) when it cannot be had."""
    given = os.environ.get("FERROTEL_W3C_HARNESS")
    if given:
        path = Path(given)
        path = path / "test" if (path / "test" / "test.py").exists() else path
        return (path, None) if (path / "test.py").exists() else (None, f"FERROTEL_W3C_HARNESS={given} holds no test.py")
    target = CACHE / HARNESS_COMMIT
    if not (target / "test" / "test.py").exists():
        try:
            with urllib.request.urlopen(HARNESS_TARBALL, timeout=30) as response:
                archive = response.read()
        except OSError as error:
            return None, (
                f"the W3C harness is not available: set FERROTEL_W3C_HARNESS to a checkout of "
                f"github.com/w3c/trace-context at {HARNESS_COMMIT} (downloading {HARNESS_TARBALL} failed: {error})"
            )
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(CACHE, filter="data")
        (CACHE / f"trace-context-{HARNESS_COMMIT}").rename(target)
    return target / "test", None


def harness_python(tmp_path_factory):
    """A venv with the harness's pinned dependency."""
    venv = tmp_path_factory.mktemp("w3c") / "venv"
    subprocess.run([str(BIN / "uv"), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    requirements = ROOT / "tests" / "w3c-harness-requirements.txt"
    install = [str(BIN / "uv"), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    subprocess.run([*install, "-r", str(requirements)], check=True, timeout=600)
    return venv / "bin" / "python"


def run_harness(python, harness, service_command, tmp):
    """Starts the service with `service_command` (its port appended), runs the whole suite
    against it; returns the suite's output and exit code."""
    port = free_port()
    app = tmp / "service.py"
    app.write_text(SERVICE)
    env = clean_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    service = subprocess.Popen(
        [*service_command, str(app), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_port(port, service)
        harness_env = {**env, "HARNESS_PORT": str(free_port()), "SPEC_LEVEL": "2", "STRICT_LEVEL": "2"}
        result = subprocess.run(
            [str(python), "test.py", f"http://127.0.0.1:{port}/test"],
            cwd=harness,
            env=harness_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return result.stdout + result.stderr, result.returncode
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()


def wait_port(port, process, deadline=30.0):
    end = time.monotonic() + deadline
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, "the service exited"
            assert time.monotonic() < end, "the service never listened"
            time.sleep(0.1)


def outcome(output):
    """(tests run, failures + errors, skipped) as unittest reports them."""
    ran = int(re.search(r"^Ran (\d+) tests?", output, re.M).group(1))
    failed = sum(int(n) for n in re.findall(r"(?:failures|errors)=(\d+)", output))
    skipped = sum(int(n) for n in re.findall(r"skipped=(\d+)", output))
    return ran, failed, skipped


@pytest.fixture(scope="module")
def harness():
    path, reason = harness_dir()
    if path is None:
        pytest.skip(reason)
    return path


def test_the_w3c_suite_passes_in_full(harness, tmp_path_factory, tmp):
    python = harness_python(tmp_path_factory)
    output, code = run_harness(python, harness, [str(BIN / "ferrotel"), "instrument", str(BIN / "python")], tmp)
    # Every test of every suite: levels 1 and 2, strict (upstream 1.45.1 fails 3 of these 41,
    # all on the tracestate key grammar and duplicated keys).
    assert outcome(output) == (41, 0, 0) and code == 0, output
