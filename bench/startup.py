"""Start-up cost of `python -c pass`: bare, under `ferrotel instrument`, and under upstream's
`opentelemetry-instrument`, measured side by side in one run.

Usage: python bench/startup.py FERROTEL_VENV UPSTREAM_VENV [--runs N] [--write BENCHMARKS.md]
                                [--baseline VENV --baseline-label TEXT]

`--baseline`: a venv holding an earlier ferrotel build (say, the commit whose figure set a
budget), measured in the same rounds, so a regression shows against today's machine and not
against a figure measured on another day.

Wall time is the median of N rounds (after warm-up), each round running every command once;
CPU is user+sys of the launched process.
Peak RSS comes from GNU time (`/usr/bin/time`): a process forked from this interpreter would
report this interpreter's pages as its own peak, so a small C parent does the measuring.
The launchers exec, so each figure covers launcher and Python together.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from report import measured_on, publish

GNU_TIME = "/usr/bin/time"


def measure_interleaved(argvs, runs, env):
    """(wall ms, CPU ms, peak RSS MiB) medians per command. Each round runs every command once,
    so a drift of the machine's speed (this VM's varies by tens of percent within minutes)
    reaches all of them alike instead of whichever block of runs it fell on."""
    samples = [([], [], []) for _ in argvs]
    rss_file = tempfile.NamedTemporaryFile(prefix="ferrotel-bench-rss-")
    for i in range(runs + 3):
        for argv, (walls, cpus, rss) in zip(argvs, samples, strict=True):
            timed = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv]
            start = time.perf_counter()
            proc = subprocess.Popen(timed, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise SystemExit(f"{argv} failed: {proc.stderr.read().decode()}")
            proc.stderr.close()
            if i >= 3:  # warm-up rounds fill the page cache and .pyc files
                walls.append(wall)
                cpus.append(usage.ru_utime + usage.ru_stime)
                rss.append(int(Path(rss_file.name).read_text().split()[-1]) / 1024)
    return [
        (statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3, statistics.median(rss))
        for walls, cpus, rss in samples
    ]


def version_of(python, dist):
    code = f"from importlib.metadata import version; print(version({dist!r}))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("ferrotel_venv", type=Path)
    parser.add_argument("upstream_venv", type=Path)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--baseline-label", default="baseline")
    args = parser.parse_args()
    fbin, ubin = args.ferrotel_venv / "bin", args.upstream_venv / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONPATH"}

    cases = [
        ("bare `python -c pass` (ferrotel venv)", [fbin / "python", "-c", "pass"], None),
        ("`ferrotel instrument python -c pass`", [fbin / "ferrotel", "instrument", fbin / "python", "-c", "pass"], 0),
        ("bare `python -c pass` (upstream venv)", [ubin / "python", "-c", "pass"], None),
        (
            "`opentelemetry-instrument python -c pass` (defaults: OTLP exporters)",
            [ubin / "opentelemetry-instrument", ubin / "python", "-c", "pass"],
            2,
        ),
        (
            "`opentelemetry-instrument` with `--traces_exporter none --metrics_exporter none --logs_exporter none`",
            [
                ubin / "opentelemetry-instrument",
                "--traces_exporter",
                "none",
                "--metrics_exporter",
                "none",
                "--logs_exporter",
                "none",
                ubin / "python",
                "-c",
                "pass",
            ],
            2,
        ),
    ]
    if args.baseline:
        bbin, label = args.baseline / "bin", args.baseline_label
        cases += [
            (f"bare `python -c pass` ({label} venv)", [bbin / "python", "-c", "pass"], None),
            (
                f"`ferrotel instrument python -c pass`, {label} build",
                [bbin / "ferrotel", "instrument", bbin / "python", "-c", "pass"],
                len(cases),
            ),
        ]
    # The launcher's own share: it execs the command, so its cost is what it adds to /bin/true.
    true = shutil.which("true") or "/bin/true"
    launcher = [[true], [fbin / "ferrotel", "instrument", true]]
    figures = measure_interleaved([[str(a) for a in argv] for argv in launcher + [c[1] for c in cases]], args.runs, env)
    (true_wall, *_), (launcher_wall, *_) = figures[:2]
    results = []
    for (label, _, baseline), (wall, cpu, rss) in zip(cases, figures[2:], strict=True):
        results.append((label, wall, cpu, rss, baseline))
        print(f"{label}: wall {wall:.1f} ms, cpu {cpu:.1f} ms, peak RSS {rss:.1f} MiB", flush=True)

    lines = [
        f"{measured_on()}, CPython {platform.python_version()}; median of {args.runs} rounds after 3 warm-up "
        "rounds, each round running every command once.",
        f"ferrotel {version_of(str(fbin / 'python'), 'ferrotel')}; upstream opentelemetry-sdk "
        f"{version_of(str(ubin / 'python'), 'opentelemetry-sdk')}, opentelemetry-instrumentation "
        f"{version_of(str(ubin / 'python'), 'opentelemetry-instrumentation')} "
        "(pins in `bench/upstream-requirements.txt`).",
        "",
        "| command | wall | added wall | CPU | peak RSS | added RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, wall, cpu, rss, baseline in results:
        if baseline is None:
            lines.append(f"| {label} | {wall:.1f} ms | – | {cpu:.1f} ms | {rss:.1f} MiB | – |")
        else:
            _, bwall, _, brss, _ = results[baseline]
            added = f"+{wall - bwall:.1f} ms | {cpu:.1f} ms | {rss:.1f} MiB | +{rss - brss:.1f} MiB"
            lines.append(f"| {label} | {wall:.1f} ms | {added} |")
    ferrotel_added = results[1][1] - results[0][1]
    upstream_added = results[3][1] - results[2][1]
    lines += [
        "",
        f"Added wall time: ferrotel +{ferrotel_added:.1f} ms vs upstream +{upstream_added:.1f} ms "
        f"(upstream adds {upstream_added / max(ferrotel_added, 0.1):.0f}× more); "
        f"added peak RSS: ferrotel +{results[1][3] - results[0][3]:.1f} MiB vs upstream "
        f"+{results[3][3] - results[2][3]:.1f} MiB. Of ferrotel's added wall time, the launcher's exec "
        f"is +{launcher_wall - true_wall:.1f} ms (`ferrotel instrument true` against `true`); the rest "
        "is Python loading ferrotel's extension and start-up modules.",
    ]
    if args.baseline:
        (_, bare_wall, _, bare_rss, _), (_, wall, _, rss, _) = results[-2:]
        lines += [
            "",
            f"In the same rounds, the {args.baseline_label} build adds +{wall - bare_wall:.1f} ms and "
            f"+{rss - bare_rss:.1f} MiB (this build: +{ferrotel_added:.1f} ms, "
            f"+{results[1][3] - results[0][3]:.1f} MiB).",
        ]
    table = "\n".join(lines)
    publish(table, "startup", args.write)


if __name__ == "__main__":
    main()
