"""Instructions per call on the app thread, counted by callgrind: the in-process cases of
bench/servers.py (a FastAPI route as an ASGI app, a Flask route through WSGI with the body
closed, a sqlite3 statement) run bare, under `ferrotel instrument` and under upstream's
`opentelemetry-instrument`, each twice (N and 2N calls after a warm-up) so that the
difference, divided by N, is one call's instructions with start-up and warm-up cancelled
out. Unlike wall time on a shared machine, the count does not depend on what else runs.

Usage: python bench/instructions.py FERROTEL_VENV [UPSTREAM_VENV] [--kinds flask-closed,...]
           [--n 1000] [--tools bare,ferrotel,upstream]
Needs valgrind. Each side exports over OTLP/HTTP into a `ferrotel view` as in servers.py.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from receiver import receiver
from servers import APPS, IN_PROCESS, launcher, otlp_settings

WARMUP = 200


def child(kind, n):
    calls = IN_PROCESS[kind][1]()
    calls(WARMUP)
    calls(n)


def app_thread_instructions(command, env):
    """Instructions callgrind counted on the main thread of `command`'s Python process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"]
        subprocess.run(command(valgrind), env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Thread 1 is the interpreter's main thread, the app's.
        main = Path(f"{out}-01")
        for line in main.read_text().splitlines():
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {main}")


def per_call(kind, tool, venv, ferrotel_bin, n, env):
    python = str(venv / "bin" / "python")
    base = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "PYTHONPATH": str(APPS)}

    def command(calls):
        # The launcher execs valgrind, which runs the interpreter with the launcher's settings.
        return lambda valgrind: [*launcher(tool, venv), *valgrind, python, __file__, "--child", kind, str(calls)]

    def measure(settings):
        one = app_thread_instructions(command(n), settings)
        two = app_thread_instructions(command(2 * n), settings)
        return (two - one) / n

    if tool == "bare":
        return measure(base)
    with receiver(ferrotel_bin) as sink:
        return measure({**base, **otlp_settings(sink, tool)})


def main():
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path, nargs="?")
    parser.add_argument("--kinds", default="fastapi,flask-closed,sqlite3")
    parser.add_argument("--tools", default="bare,ferrotel,upstream")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    ferrotel_bin = str(args.ferrotel_venv / "bin" / "ferrotel")
    venvs = {"bare": args.ferrotel_venv, "ferrotel": args.ferrotel_venv, "upstream": args.upstream_venv}
    env = dict(os.environ)
    for kind in args.kinds.split(","):
        for tool in args.tools.split(","):
            if venvs[tool] is None:
                continue
            count = per_call(kind, tool, venvs[tool].resolve(), ferrotel_bin, args.n, env)
            print(f"{kind:13} {tool:9} {count:12,.0f} instructions per call", flush=True)


if __name__ == "__main__":
    main()
