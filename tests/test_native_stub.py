"""The typed stub of `ferrotel._native` must describe the real module: every name, and every
function's and method's signature, checked by mypy's stubtest against the built extension;
and the classes it names are made when first asked for, not at import."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_stub_matches_the_extension_signature_by_signature(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            # PyO3 classes are disjoint bases by nature; saying so in the stub adds nothing.
            "--ignore-disjoint-bases",
            "--allowlist",
            str(ROOT / "tests" / "stubtest-allowlist.txt"),
            "ferrotel._native",
        ],
        # The checkout's stub (the wheel ships no py.typed), against the installed extension.
        env={**os.environ, "MYPYPATH": str(ROOT / "python")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_classes_are_made_on_first_access_and_kept():
    # Importing the extension makes none of its type objects (each costs ~16k instructions of
    # start-up); the first access makes one and leaves it on the module.
    code = """
import ferrotel._native as native
assert "Span" not in vars(native) and "TracerProvider" not in vars(native)
span = native.Span
assert vars(native)["Span"] is span and span.__module__ == "ferrotel._native"
from ferrotel._native import TracerProvider
assert native.TracerProvider is TracerProvider
try:
    native.NoSuchThing
except AttributeError as error:
    assert str(error) == "module 'ferrotel._native' has no attribute 'NoSuchThing'", error
else:
    raise AssertionError("no AttributeError")
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout == "ok\n", result.stderr
