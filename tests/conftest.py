"""pytest fixtures; the helpers they use live in tests/support/."""

import subprocess
import sys

import pytest
from support.processes import ROOT
from support.viewer import Viewer
from support.wheels import pip_install


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def _user_venv(tmp_path_factory, name, requirements):
    """A venv with the pinned packages of tests/`requirements` and ferrotel from this
    checkout; its python."""
    venv = tmp_path_factory.mktemp(name) / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip_install(python, "-r", ROOT / "tests" / requirements)
    pip_install(python, "--no-deps", *(ROOT / "dist").glob("*.whl"))
    return python


@pytest.fixture(scope="session")
def contrib_python(tmp_path_factory):
    """A user's environment: the pinned contrib instrumentations and libraries of
    tests/contrib-requirements.txt, with ferrotel from this checkout as the SDK."""
    return _user_venv(tmp_path_factory, "contrib", "contrib-requirements.txt")


@pytest.fixture(scope="session")
def open_sdk_python(tmp_path_factory):
    """ferrotel beside the upstream SDK and the plug-ins of tests/open-sdk-requirements.txt
    (readers, exporters, the Prometheus exporter, the X-Ray propagator), so one program can
    run on either SDK."""
    return _user_venv(tmp_path_factory, "open-sdk", "open-sdk-requirements.txt")


@pytest.fixture
def viewer():
    """A `ferrotel view` on free ports, killed after the test."""
    v = Viewer()
    yield v
    v.process.kill()
    v.process.wait()
