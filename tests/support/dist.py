"""The wheels this checkout built into dist/ (scripts/lib.sh build_ferrotel for this
interpreter, scripts/release for every CPython and libc), and user venvs holding them."""

import re
import subprocess
import sys

import pytest
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

from support.processes import ROOT

VERSION = re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
# Release wheel platform tags (as maturin spells them: the manylinux2014 alias, then PEP 600's).
RELEASE_TAGS = {"gnu": "manylinux2014_x86_64.manylinux_2_17_x86_64", "musl": "musllinux_1_2_x86_64"}


def ferrotel_wheel():
    """The wheel in dist/ that this interpreter's pip installs (the one in .venv)."""
    supported = set(sys_tags())
    wheels = [w for w in (ROOT / "dist").glob("ferrotel-*.whl") if parse_wheel_filename(w.name)[3] & supported]
    assert len(wheels) == 1, f"expected one ferrotel wheel for this Python in dist/, found {wheels}"
    return wheels[0]


def release_wheel(python, libc):
    """dist/'s release wheel for CPython `python` ("3.12") and `libc` ("gnu" or "musl")."""
    cp = "cp" + python.replace(".", "")
    wheel = ROOT / "dist" / f"ferrotel-{VERSION}-{cp}-{cp}-{RELEASE_TAGS[libc]}.whl"
    if not wheel.is_file():
        pytest.fail(f"{wheel.name} is missing from dist/: scripts/release builds it (scripts/test runs it)")
    return wheel


def pip_install(python, *args):
    """`pip install` into the venv of `python` (the venvs are made without pip of their own)."""
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *map(str, args)], check=True)


def user_venv(directory, requirements):
    """A venv in `directory` with the pinned packages of the file `requirements` and ferrotel
    from this checkout; its python."""
    venv = directory / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip_install(python, "-r", requirements)
    pip_install(python, "--no-deps", ferrotel_wheel())
    return python
