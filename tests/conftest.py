"""pytest fixtures; the helpers they use live in tests/support/."""

import pytest
from support.dist import user_venv
from support.processes import ROOT
from support.viewer import Viewer


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture(scope="session")
def contrib_python(tmp_path_factory):
    """A user's environment: the pinned contrib instrumentations and libraries of
    tests/contrib-requirements.txt, with ferrotel from this checkout as the SDK."""
    return user_venv(tmp_path_factory.mktemp("contrib"), ROOT / "tests" / "contrib-requirements.txt")


@pytest.fixture(scope="session")
def open_sdk_python(tmp_path_factory):
    """ferrotel beside the upstream SDK and the plug-ins of tests/open-sdk-requirements.txt
    (readers, exporters, the Prometheus exporter, the X-Ray propagator), so one program can
    run on either SDK."""
    return user_venv(tmp_path_factory.mktemp("open-sdk"), ROOT / "tests" / "open-sdk-requirements.txt")


@pytest.fixture
def viewer():
    """A `ferrotel view` on free ports, killed after the test."""
    v = Viewer()
    yield v
    v.process.kill()
    v.process.wait()
