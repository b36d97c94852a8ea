"""The typed stub of `ferrotel._native` must describe the real module: every name, and every
function's and method's signature, checked by mypy's stubtest against the built extension."""

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
