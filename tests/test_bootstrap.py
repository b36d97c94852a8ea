"""`ferrotel bootstrap` against real environments: inventory, requirements, and a real
install from the package index that must not change anything the user had."""

import subprocess
import sys

import pytest
from support.processes import BIN, FERROTEL, run
from support.wheels import build_wheel


def pip(python, *args):
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *args], check=True)


def versions(python):
    out = run(python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check").stdout
    return dict(line.lower().split("==") for line in out.splitlines() if "==" in line)


@pytest.fixture
def target(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return venv / "bin" / "python"


def test_report_lists_libraries_and_what_covers_them(target, tmp_path):
    build_wheel(tmp_path, "flask", "3.1.2", {"flask/__init__.py": ""})
    build_wheel(tmp_path, "celery", "6.0.0", {"celery/__init__.py": ""})
    build_wheel(tmp_path, "opentelemetry-instrumentation-flask", "0.66b1", {"otel_flask_stub.py": ""})
    pip(target, "install", "--quiet", "--no-index", "--no-deps", *map(str, tmp_path.glob("*.whl")))

    result = run(FERROTEL, "bootstrap", "--python", target)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "flask 3.1.2       flask" in out, out  # covered by ferrotel's built-in
    assert "standard library  opentelemetry-instrumentation-asyncio (missing)" in out
    # Upstream's default set: the DB-API, WSGI and uncaught-exception layers are built in.
    assert "standard library  wsgi" in out and "standard library  dbapi" in out
    assert "standard library  exceptions" in out
    assert "standard library  logging" in out and "standard library  threading" in out
    assert "celery 6.0.0 (instrumentations support celery >= 4.0, < 6.0)" in out

    requirements = run(FERROTEL, "bootstrap", "--python", target, "-a", "requirements").stdout.split()
    assert "opentelemetry-instrumentation-flask" not in requirements  # built in
    assert "opentelemetry-instrumentation-celery" not in requirements  # unsupported version
    assert "opentelemetry-instrumentation-asyncio" in requirements
    for built_in in ("wsgi", "dbapi", "asgi", "exceptions"):  # nothing would activate them
        assert f"opentelemetry-instrumentation-{built_in}" not in requirements


def test_a_missing_interpreter_is_a_clear_error(tmp_path):
    result = run(FERROTEL, "bootstrap", "--python", tmp_path / "nope")
    assert result.returncode == 1
    assert result.stderr.startswith("ferrotel bootstrap: error: cannot run")


def test_install_adds_compatible_contrib_versions_and_upgrades_nothing(target):
    # An app pinned to older releases than the newest on the index: the installer must fit
    # the contrib packages to them, not move them.
    pip(
        target,
        "install",
        "--quiet",
        "flask==3.0.3",
        "requests==2.31.0",
        "opentelemetry-api==1.45.1",
        "opentelemetry-instrumentation==0.66b1",
    )
    before = versions(target)
    result = run(FERROTEL, "bootstrap", "--python", target, "-a", "install", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    after = versions(target)
    for name, version in before.items():
        assert after[name] == version, f"{name} changed from {version} to {after[name]}"
    for builtin in ("flask", "requests", "logging", "sqlite3", "wsgi", "dbapi", "exceptions"):
        assert f"opentelemetry-instrumentation-{builtin}" not in after  # covered by ferrotel's built-ins
    # The contrib release that fits the installed opentelemetry-instrumentation.
    assert after["opentelemetry-instrumentation-asyncio"] == "0.66b1", after
    # A second run has nothing left to do.
    again = run(FERROTEL, "bootstrap", "--python", target, "-a", "install")
    assert again.stdout.strip() == "ferrotel bootstrap: nothing to install"


def test_install_into_a_uv_environment_uses_uv(tmp_path):
    uv = str(BIN / "uv")
    venv = tmp_path / "uvenv"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(python), "requests==2.31.0", "opentelemetry-api==1.45.1"],
        check=True,
    )
    result = run(FERROTEL, "bootstrap", "--python", python, "-a", "install", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"running {uv} pip install --python {python}" in result.stderr
    frozen = run(uv, "pip", "freeze", "--python", python).stdout.lower().split()
    assert "requests==2.31.0" in frozen and "opentelemetry-api==1.45.1" in frozen
    assert any(line.startswith("opentelemetry-instrumentation-asyncio==") for line in frozen), frozen
    assert not any(line.startswith("opentelemetry-instrumentation-requests==") for line in frozen), "built in"


def test_a_package_no_release_fits_is_named_and_nothing_changes(target, tmp_path):
    # An installed opentelemetry-instrumentation no contrib release is made for: bootstrap
    # must neither move it nor install a mismatched contrib package, and must say which
    # package could not be matched.
    build_wheel(tmp_path, "opentelemetry-instrumentation", "9.9", {"otel_instrumentation_stub.py": ""})
    pip(target, "install", "--quiet", "--no-index", "--no-deps", *map(str, tmp_path.glob("*.whl")))
    before = versions(target)
    result = run(FERROTEL, "bootstrap", "--python", target, "-a", "install", timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "opentelemetry-instrumentation-asyncio cannot be matched to what is installed" in result.stderr, (
        result.stderr
    )
    assert versions(target) == before
