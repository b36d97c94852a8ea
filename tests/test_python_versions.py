"""ferrotel on every supported CPython this machine has: that version's release wheel (glibc)
installed into a fresh venv, the launcher exec'ing that Python instrumented, the trace,
metrics and logs SDK through the API, and an instrumented Flask app end to end. The full
suite runs on the default version (the venv running these tests); a version this machine
lacks is reported as skipped, saying where it was looked for.

CPython 3.10, the oldest supported, gets the oldest supported opentelemetry-api (the floor
pyproject.toml declares); the others get the pinned one the full suite uses."""

import os
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.version import Version
from support.console import console_spans
from support.dist import VERSION, release_wheel
from support.processes import ROOT, clean_env, free_port, http_get, serving, wait_http

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
API_FLOOR = re.search(r'"opentelemetry-api>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def pinned(name):
    """`name==version` as requirements-dev.txt pins it."""
    text = (ROOT / "requirements-dev.txt").read_text()
    return re.search(rf"^{re.escape(name)}==\S+$", text, re.M).group(0)


def find_python(version):
    """A working CPython `version`: `pythonX.Y` on PATH, else one pyenv installed."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(pyenv.glob(f"{version}.*/bin/python{version}"), reverse=True)
    wanted = tuple(map(int, version.split(".")))
    check = f"import sys; sys.exit(sys.implementation.name != 'cpython' or sys.version_info[:2] != {wanted})"
    for candidate in filter(None, candidates):
        # pyenv's shims are on PATH for versions that are not selected, and fail when run.
        if subprocess.run([candidate, "-c", check], capture_output=True).returncode == 0:
            return str(candidate)
    pytest.skip(f"CPython {version} is not on this machine (looked for python{version} on PATH and in {pyenv})")


@pytest.fixture(scope="module", params=PYTHONS)
def env(request, tmp_path_factory):
    """A fresh venv of CPython `request.param` with its release wheel, Flask and the API."""
    version = request.param
    python = find_python(version)
    venv = tmp_path_factory.mktemp(f"cpython{version}") / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    api = f"opentelemetry-api=={API_FLOOR}" if version == PYTHONS[0] else pinned("opentelemetry-api")
    install = [venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*install, release_wheel(version, "gnu"), pinned("flask"), api], check=True, env=clean_env())
    return SimpleNamespace(version=version, api=api, bin=venv / "bin", python=str(venv / "bin" / "python"))


def variables(env, **extra):
    """The test environment with PATH leading to the version's venv, not the tests' own."""
    result = clean_env(**extra)
    result["PATH"] = f"{env.bin}{os.pathsep}{os.environ['PATH']}"
    return result


def run_in(env, *args, cwd=None):
    return subprocess.run(
        [str(a) for a in args], env=variables(env), cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_the_wheel_installs_the_extension_and_native_launchers(env):
    code = "import ferrotel, ferrotel._native as n, opentelemetry.version as v; "
    code += "print(ferrotel.__version__, n.__file__, v.__version__)"
    result = run_in(env, env.python, "-c", code)
    assert result.returncode == 0, result.stderr
    version, native, api = result.stdout.split()
    cp = env.version.replace(".", "")
    assert version == VERSION and native.endswith(f"_native.cpython-{cp}-x86_64-linux-gnu.so")
    assert Version(api) == Version(env.api.split("==")[1])
    assert run_in(env, env.python, "-m", "pip", "check").returncode == 0
    # Executables, not Python console scripts: launching starts no interpreter of its own.
    for launcher in ("ferrotel", "ferrotel-instrument"):
        assert (env.bin / launcher).read_bytes()[:4] == b"\x7fELF"


@pytest.mark.parametrize("launcher", [["ferrotel", "instrument"], ["ferrotel-instrument"]])
def test_the_launcher_execs_this_python_instrumented(env, launcher):
    code = "import os, sys; print(os.getpid(), sys.version_info[:2])"
    command = [env.bin / launcher[0], *launcher[1:], "python", "-c", code]
    debug = variables(env, OTEL_LOG_LEVEL="debug", OTEL_TRACES_EXPORTER="none")
    process = subprocess.Popen(command, env=debug, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    # The same process: the launcher exec'd the interpreter, which started ferrotel once.
    major, minor = env.version.split(".")
    assert out.split(None, 1) == [str(process.pid), f"({major}, {minor})\n"]
    assert f"ferrotel: debug: initialising pid {process.pid}" in err


SIGNALS = textwrap.dedent(
    """
    import logging
    from opentelemetry import _logs, metrics, trace
    from opentelemetry._logs import LogRecord, SeverityNumber

    tracer = trace.get_tracer("versions")
    checks = metrics.get_meter("versions").create_counter("checks", unit="{check}")
    with tracer.start_as_current_span("api span", attributes={"check.kind": "api"}) as span:
        span.add_event("halfway")
        checks.add(3, {"kind": "api"})
        logging.getLogger("versions.logging").warning("a logging record in the span")
        _logs.get_logger("versions.api").emit(LogRecord(body="a Logs API record", severity_number=SeverityNumber.WARN))
    """
)


def test_traces_metrics_and_logs_through_the_api(env, tmp):
    (tmp / "signals.py").write_text(SIGNALS)
    flags = ["--traces_exporter", "console", "--metrics_exporter", "console", "--logs_exporter", "console"]
    flags += ["--logging_auto_instrumentation_enabled", "true"]
    result = run_in(env, env.bin / "ferrotel", "instrument", *flags, "python", "signals.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    (span,) = console_spans(result.stdout)
    assert (span["name"], span["attributes"], span["events"]) == ("api span", {"check.kind": '"api"'}, ["halfway"])
    assert 'metric checks (sum, cumulative, monotonic) [{check}] (versions)\n  {kind="api"} 3' in result.stdout
    ids = f"trace_id={span['trace_id']} span_id={span['span_id']}"
    assert f"WARN [versions.logging] a logging record in the span  {ids}" in result.stdout
    assert re.search(rf"\[versions\.api\] a Logs API record  {ids}", result.stdout)


FLASK_APP = textwrap.dedent(
    """
    import sys
    from flask import Flask

    app = Flask(__name__)

    @app.route("/hello/<name>")
    def hello(name):
        return f"hello {name}"

    app.run(port=int(sys.argv[1]))
    """
)


def test_an_instrumented_flask_app_end_to_end(env, tmp):
    (tmp / "app.py").write_text(FLASK_APP)
    port = free_port()
    flags = ["--service_name", "versions", "--traces_exporter", "console", "--metrics_exporter", "none"]
    command = [env.bin / "ferrotel", "instrument", *flags, "python", "app.py", str(port)]
    with serving(command, tmp, variables(env)) as app:
        wait_http(f"http://127.0.0.1:{port}/hello/up")
        status, body = http_get(f"http://127.0.0.1:{port}/hello/ada", headers={"traceparent": TRACEPARENT})
        # The span ends once the server has closed the response, just after the client has it.
        time.sleep(0.5)
    assert (status, body) == (200, b"hello ada")
    out, err = app.output
    spans = [s for s in console_spans(out) if s["attributes"].get("url.path") == '"/hello/ada"']
    assert len(spans) == 1, out + err
    (span,) = spans
    assert (span["name"], span["kind"], span["trace_id"], span["parent"]) == (
        "GET /hello/<name>",
        "SERVER",
        TRACEPARENT.split("-")[1],
        TRACEPARENT.split("-")[2],
    )
    assert span["attributes"]["http.route"] == '"/hello/<name>"'
    assert span["attributes"]["http.response.status_code"] == "200"
    assert f'process.runtime.version="{env.version}.' in out
