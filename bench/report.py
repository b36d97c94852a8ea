"""What every benchmark does with its results: a line saying where and when they were
measured, and the table printed and written into its marked section of BENCHMARKS.md."""

import os
import platform
import time
from pathlib import Path


def measured_on() -> str:
    """`Measured 2026-12-02 on x86_64, 2 cores`."""
    return f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores"


def write_section(path: Path, name: str, table: str) -> None:
    """Replaces what stands between `<!-- {name}:begin -->` and `<!-- {name}:end -->`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text()
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{table}\n{end}{tail}")


def publish(table: str, name: str, write: Path | None) -> None:
    """Prints the table and, when asked, writes it into BENCHMARKS.md's section `name`."""
    print("\n" + table)
    if write:
        write_section(write, name, table)
