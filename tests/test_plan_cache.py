"""The start-up plan cache against real installs: pip adds and removes an instrumentor's
distribution in a user venv between runs, and each run instruments what is installed then."""

import os
import subprocess
import sys
import time

import pytest
from support.dist import ferrotel_wheel, pip_install
from support.processes import FERROTEL, clean_env, run
from support.wheels import build_wheel

FAKELIB = {"fakelib/__init__.py": "def hello():\n    return 'original'\n"}
INSTRUMENTOR = (
    "class Instrumentor:\n"
    "    def instrument(self, **kwargs):\n"
    "        import fakelib\n"
    "        fakelib.hello = lambda: 'patched'\n"
)
CALL = "import fakelib; print(fakelib.hello())"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheels")
    return {
        "fakelib": build_wheel(out, "fakelib", "1.0", FAKELIB),
        "instrumentation": build_wheel(
            out,
            "fakelib-instrumentation",
            "0.1",
            {"fakelib_instr.py": INSTRUMENTOR},
            requires=["fakelib>=1.0; extra == 'instruments'"],
            entry_points={"opentelemetry_instrumentor": {"fakelib": "fakelib_instr:Instrumentor"}},
        ),
    }


@pytest.fixture
def venv(tmp_path, wheels):
    target = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    pip_install(python, "--no-index", "--no-deps", ferrotel_wheel(), wheels["fakelib"])
    return python


def settle(python):
    """No plan is stored while a sys.path directory changed in the last 2 s (its times might
    not move again on a change within their granularity): the install is dated back, as if
    it had happened a while ago. The directory's change time still says it changed."""
    site_packages = next((python.parent.parent / "lib").glob("python3*/site-packages"))
    past = time.time() - 10
    os.utime(site_packages, (past, past))


def start(python, cache_home):
    """Runs CALL under ferrotel; its output and where the plan came from."""
    # The venv has no opentelemetry-api, which these built-ins would warn about.
    env = clean_env(XDG_CACHE_HOME=str(cache_home), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="exceptions,sqlite3,urllib")
    result = run(FERROTEL, "instrument", "--log_level", "debug", python, "-c", CALL, env=env)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr and "error" not in result.stderr, result.stderr
    [initialising] = [line for line in result.stderr.splitlines() if "initialising pid" in line]
    source = "cache" if "plan read from" in initialising else "scan"
    return result.stdout.strip(), source


def plan_files(cache_home):
    return sorted((cache_home / "ferrotel").glob("plan-*"))


def test_installing_and_uninstalling_an_instrumentor_between_runs(venv, wheels, tmp_path):
    cache_home = tmp_path / "cache"
    settle(venv)
    assert start(venv, cache_home) == ("original", "scan")
    assert len(plan_files(cache_home)) == 1
    assert start(venv, cache_home) == ("original", "cache")

    pip_install(venv, "--no-index", "--no-deps", wheels["instrumentation"])
    assert start(venv, cache_home) == ("patched", "scan")
    settle(venv)
    assert start(venv, cache_home) == ("patched", "scan")
    assert start(venv, cache_home) == ("patched", "cache")

    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv), "uninstall", "-y", "-q", "fakelib-instrumentation"],
        check=True,
    )
    settle(venv)
    assert start(venv, cache_home) == ("original", "scan")
    assert start(venv, cache_home) == ("original", "cache")
    # One plan per path list and variables, rewritten in place on each change.
    assert len(plan_files(cache_home)) == 1


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"", b"ferrotel-plan 2 0.0.0\nplan\nend\n"])
def test_a_corrupt_or_foreign_cache_file_is_ignored_and_replaced(venv, wheels, tmp_path, content):
    pip_install(venv, "--no-index", "--no-deps", wheels["instrumentation"])
    settle(venv)
    cache_home = tmp_path / "cache"
    assert start(venv, cache_home) == ("patched", "scan")
    [plan] = plan_files(cache_home)
    plan.write_bytes(content)
    assert start(venv, cache_home) == ("patched", "scan")
    assert start(venv, cache_home) == ("patched", "cache")


def test_an_unwritable_cache_location_does_not_break_start_up(venv, wheels, tmp_path):
    pip_install(venv, "--no-index", "--no-deps", wheels["instrumentation"])
    settle(venv)
    # A regular file where the cache's parent directory would be: unwritable even for root.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    for _ in range(2):
        assert start(venv, blocker / "cache") == ("patched", "scan")
    assert blocker.read_text() == ""
