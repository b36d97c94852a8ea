"""Third-party projects' own test suites, run bare and under `ferrotel instrument`: their
sdists (downloaded at run time, never committed), a venv per project, the runs themselves
and each test's outcome."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

from support.dist import ferrotel_wheel
from support.processes import BIN, ROOT

SUITES = ROOT / "tests" / "suites"
# Downloaded sdists and the projects' venvs, kept between runs (gitignored).
CACHE = ROOT / ".suites"
LOGS = ROOT / "tests" / "artifacts" / "suites"

# An outcome's severity: a test reported by several phases (call, then teardown) takes the worst.
RANK = {"passed": 0, "skipped": 1, "xfailed": 2, "xpassed": 3, "failed": 4}


def sdist(requirement):
    """The sdist of `requirement` ("name==version"), downloaded once into the cache."""
    folder = CACHE / "sdist" / requirement
    archives = list(folder.glob("*.tar.gz"))
    if not archives:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        command += ["--no-binary", ":all:", "--no-deps", "-d", str(folder), requirement]
        subprocess.run(command, check=True, timeout=600)
        archives = list(folder.glob("*.tar.gz"))
    (archive,) = archives
    return archive


def extract(archive, into):
    """Unpacks `archive` under `into`; returns the project's top directory."""
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (top,) = [p for p in Path(into).iterdir() if p.is_dir()]
    return top


def venv(name):
    """The venv of suite `name`: exactly the pins of tests/suites/<name>.txt, then this
    checkout's wheel for this Python without its dependencies."""
    uv = str(BIN / "uv")
    path = CACHE / f"venv-{name}"
    python = path / "bin" / "python"
    if not python.exists():  # new, or its interpreter is gone: (re)made from scratch
        create = [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(path)]
        subprocess.run(create, check=True, timeout=300)
    requirements = str(SUITES / f"{name}.txt")
    subprocess.run([uv, "pip", "sync", "--quiet", "--python", str(python), requirements], check=True, timeout=900)
    wheel = str(ferrotel_wheel())
    install = [uv, "pip", "install", "--quiet", "--python", str(python), "--reinstall", "--no-deps", wheel]
    subprocess.run(install, check=True, timeout=300)
    return path


def env_for(venv_path, **extra):
    """The environment a suite runs in: the caller's without any OTEL_* or PYTHONPATH, the
    suite's venv first on PATH, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}
    env["PATH"] = f"{venv_path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("VIRTUAL_ENV", None)
    env.update(extra)
    return env


def run_suite(command, cwd, env, log, timeout):
    """Runs `command` in its own session with its output in `log`; kills whatever is left of
    its process group afterwards (servers the suite started and did not stop). A run that
    outlives `timeout` is killed and fails the test."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write(f"$ {' '.join(map(str, command))}\n\n")
        out.flush()
        process = subprocess.Popen(
            [str(c) for c in command], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{command[0]} ... still running after {timeout} s; output in {log}") from None
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    return process.returncode


def outcomes(path):
    """{test id: (outcome, message)} from an outcomes file (JSON lines, several per test when
    more than one phase reported): the worst outcome of each test, with its message."""
    result = {}
    if not path.exists():
        return result
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        outcome = entry["outcome"]
        message = f"{entry['phase']}: {entry['message']}" if entry["phase"] != "call" else entry["message"]
        previous = result.get(entry["test"])
        if previous is None or RANK[outcome] > RANK[previous[0]]:
            result[entry["test"]] = (outcome, message)
    return result


def differences(bare, instrumented):
    """One line per test whose outcome differs, with the worse side's message."""
    lines = []
    for test in sorted(bare.keys() | instrumented.keys()):
        before, before_message = bare.get(test, ("not run", ""))
        after, after_message = instrumented.get(test, ("not run", ""))
        if before != after:
            message = after_message if RANK.get(after, 5) >= RANK.get(before, 5) else before_message
            lines.append(f"{test}: bare {before}, ferrotel {after}: {' '.join(message.split())[:400]}")
    return lines


def viewer_has(viewer, service, tags, kind):
    """Whether `viewer` holds a span of `service` with every attribute of `tags` and the
    span kind `kind` (`server`, `client`, `internal`)."""
    query = urllib.parse.urlencode({"service": service, "tags": json.dumps(tags), "limit": 20})
    with urllib.request.urlopen(viewer.api(f"/api/traces?{query}"), timeout=30) as response:
        traces = json.loads(response.read())["data"]
    for trace in traces:
        for span in trace["spans"]:
            values = {t["key"]: t["value"] for t in span["tags"]}
            if values.get("span.kind") == kind and all(values.get(k) == v for k, v in tags.items()):
                return True
    return False


def copy_into(directory, *names):
    """Copies the named files of tests/suites/ into `directory` (a project's test tree)."""
    for name in names:
        shutil.copy(SUITES / name, Path(directory) / name)
