"""pytest fixtures; the helpers they use live in tests/support/."""

import subprocess
import sys

import pytest
from support.processes import ROOT
from support.viewer import Viewer


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
    subprocess.run([*pip, "--no-deps", *map(str, (ROOT / "dist").glob("*.whl"))], check=True)
    return python


@pytest.fixture
def viewer():
    """A `ferrotel view` on free ports, killed after the test."""
    v = Viewer()
    yield v
    v.process.kill()
    v.process.wait()
