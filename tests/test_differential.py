"""Upstream contrib instrumentors, used programmatically, must produce the same spans on
ferrotel's TracerProvider as on upstream's SDK: names, kinds, parents, attributes, status
and exception events, for a Flask app calling itself with requests."""

import json
import os
import subprocess
from pathlib import Path

from support.processes import ROOT, clean_env

APP = Path(__file__).resolve().parent / "apps" / "differential.py"

UPSTREAM_PYTHON = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin" / "python"


def record(python, side):
    assert python.exists(), f"{python} is missing: scripts/test creates the upstream reference venv"
    env = clean_env(OTEL_SEMCONV_STABILITY_OPT_IN="http")
    out = subprocess.run([str(python), str(APP), side], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def comparable(run):
    """Spans as a sorted list of hashable facts, with ids replaced by parent names and the
    run's port and stack traces (paths differ) taken out."""
    port = str(run["port"])
    # Ephemeral client ports differ between runs.
    volatile = {"client.port", "network.peer.port"}
    by_id = {s["id"]: s for s in run["spans"]}

    def clean(value):
        return value.replace(port, "<port>") if isinstance(value, str) else ("<port>" if str(value) == port else value)

    facts = []
    for s in run["spans"]:
        parent = by_id.get(s["parent"])
        events = [
            (name, {k: clean(v) for k, v in attrs.items() if k != "exception.stacktrace"})
            for name, attrs in s["events"]
        ]
        facts.append(
            json.dumps(
                {
                    "name": s["name"],
                    "kind": s["kind"],
                    "parent": parent and (parent["name"], parent["kind"]),
                    "same_trace_as_parent": parent is None or parent["trace"] == s["trace"],
                    "attributes": {k: clean(v) for k, v in sorted(s["attributes"].items()) if k not in volatile},
                    "status": s["status"],
                    "events": events,
                },
                sort_keys=True,
                default=list,
            )
        )
    return sorted(facts)


def test_contrib_instrumentors_produce_the_same_spans_on_both_sdks(contrib_python):
    ferrotel = record(contrib_python, "ferrotel")
    upstream = record(UPSTREAM_PYTHON, "upstream")
    assert ferrotel["statuses"] == upstream["statuses"] == [200, 500, 404]
    ours, theirs = comparable(ferrotel), comparable(upstream)
    assert len(ours) == len(theirs) == 8, (ours, theirs)
    assert ours == theirs
    names = sorted(json.loads(f)["name"] for f in ours)
    assert names == ["GET", "GET", "GET", "GET", "GET /boom", "GET /chain", "GET /hello/<name>", "GET /missing"]
    boom = next(json.loads(f) for f in ours if json.loads(f)["name"] == "GET /boom")
    assert boom["status"] == ["ERROR", "ValueError: exploded"]
    assert [e[0] for e in boom["events"]] == ["exception"]
