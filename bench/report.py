"""Writes a benchmark's table into its marked section of BENCHMARKS.md."""

from pathlib import Path


def write_section(path: Path, name: str, table: str) -> None:
    """Replaces what stands between `<!-- {name}:begin -->` and `<!-- {name}:end -->`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text()
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{table}\n{end}{tail}")
