"""One command installs ferrotel, as users install packages: from a fresh clone of this
checkout's HEAD (commit what you test), each command builds it from source in a fresh
environment with nothing preinstalled, and the installed `ferrotel instrument` then exports a
span made through the opentelemetry-api.

The builds compile the Rust workspace in release mode. They share this checkout's target/
(CARGO_TARGET_DIR), so each one after the first recompiles only ferrotel's own crates, and
only when the source sits at a new path (pip's git clone, the unpacked sdist)."""

import os
import subprocess
import sys

import pytest
from support.console import console_spans
from support.processes import BIN, ROOT

BUILD_TIMEOUT = 1800
PROGRAM = """
from opentelemetry import trace
with trace.get_tracer("install-check").start_as_current_span("installed span"):
    pass
"""


def user_env(tmp_path, **extra):
    """What a user's shell has: no OTEL_* and none of this test run's venvs on PATH, so only
    the Rust toolchain, git and the installers' own build environments build ferrotel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "VIRTUAL_ENV")) and k != "PYTHONPATH"}
    path = os.environ["PATH"].split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if p and os.path.realpath(p) != os.path.realpath(BIN))
    env["CARGO_TARGET_DIR"] = str(ROOT / "target")
    # Empty installer caches, as on a fresh machine: no wheel built by an earlier run is reused.
    env["PIP_CACHE_DIR"] = str(tmp_path / "pip-cache")
    env["UV_CACHE_DIR"] = str(tmp_path / "uv-cache")
    # uv gets the base interpreter explicitly and never downloads one.
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.update(extra)
    return env


def run(*args, env, cwd=None):
    result = subprocess.run(
        [str(a) for a in args], env=env, cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
UV = BIN / "uv"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("install")


@pytest.fixture(scope="module")
def clone(workdir):
    """A fresh clone of this checkout at its HEAD commit."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    target = workdir / "ferrotel"
    env = user_env(workdir)
    run("git", "clone", "--quiet", "--no-checkout", ROOT, target, env=env)
    run("git", "-C", target, "checkout", "--quiet", "--detach", head.stdout.strip(), env=env)
    return target


@pytest.fixture(scope="module")
def sdist(clone, workdir):
    """The sdist a frontend builds from the clone, through the project's build backend."""
    out = workdir / "sdist"
    run(UV, "build", "--sdist", "--out-dir", out, "--python", BASE_PYTHON, clone, env=user_env(workdir))
    (archive,) = out.glob("ferrotel-*.tar.gz")
    return archive


def fresh_venv(path, env):
    run(BASE_PYTHON, "-m", "venv", path, env=env)
    return path / "bin"


def exports_a_span(bin_dir, env, tmp_path):
    result = run(
        bin_dir / "ferrotel",
        "instrument",
        "--traces_exporter",
        "console",
        "--metrics_exporter",
        "none",
        "--",
        bin_dir / "python",
        "-c",
        PROGRAM,
        env=env,
        cwd=tmp_path,
    )
    assert [s["name"] for s in console_spans(result.stdout)] == ["installed span"], result.stdout + result.stderr


def test_pip_install_a_checkout(clone, tmp_path):
    env = user_env(tmp_path)
    bin_dir = fresh_venv(tmp_path / "venv", env)
    run(bin_dir / "python", "-m", "pip", "install", clone, env=env)
    exports_a_span(bin_dir, env, tmp_path)


def test_pip_install_a_git_url(clone, tmp_path):
    env = user_env(tmp_path)
    bin_dir = fresh_venv(tmp_path / "venv", env)
    run(bin_dir / "python", "-m", "pip", "install", f"git+file://{clone}", env=env)
    exports_a_span(bin_dir, env, tmp_path)


def test_pip_install_the_sdist(sdist, tmp_path):
    env = user_env(tmp_path)
    bin_dir = fresh_venv(tmp_path / "venv", env)
    run(bin_dir / "python", "-m", "pip", "install", sdist, env=env)
    exports_a_span(bin_dir, env, tmp_path)


def test_uv_pip_install_a_checkout(clone, tmp_path):
    env = user_env(tmp_path)
    run(UV, "venv", "--quiet", "--python", BASE_PYTHON, tmp_path / "venv", env=env)
    run(UV, "pip", "install", "--python", tmp_path / "venv" / "bin" / "python", clone, env=env)
    exports_a_span(tmp_path / "venv" / "bin", env, tmp_path)


def test_uv_add_to_a_new_project(clone, tmp_path):
    env = user_env(tmp_path)
    project = tmp_path / "app"
    run(UV, "init", "--quiet", "--bare", "--python", BASE_PYTHON, project, env=env)
    run(UV, "add", "--quiet", "--python", BASE_PYTHON, clone, env=env, cwd=project)
    exports_a_span(project / ".venv" / "bin", env, tmp_path)
