"""pytest fixtures; the helpers they use live in tests/support/."""

import fcntl

import pytest
from support.dist import user_venv
from support.processes import ROOT
from support.viewer import Viewer

# scripts/test runs the files on two pytest-xdist workers, a file at a time, in collection order
# (--dist loadfile --no-loadscope-reorder): the longest go first, to different workers, so that
# neither is left for the end.
LONGEST_FIRST = ("test_third_party_suites.py", "test_install.py")


def pytest_addoption(parser):
    parser.addoption(
        "--all-suites",
        action="store_true",
        help="also run the long third-party suites (tests/test_third_party_suites.py)",
    )


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its own order


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


@pytest.fixture
def default_ports():
    """Held by the tests that need OTLP's and the viewer's default ports (4317, 4318, 16686)
    free or their own: tests on other workers take free ports, but these must take turns."""
    with open("/tmp/ferrotel-tests-default-ports.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


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
