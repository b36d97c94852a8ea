"""Running a script under a launcher (`ferrotel instrument` or upstream's
`opentelemetry-instrument`) that exports its spans over OTLP/HTTP to the test receiver."""

import json
import os
import subprocess
from pathlib import Path

from support.processes import ROOT, clean_env, run

RECEIVER = Path(__file__).parent.parent / "apps" / "otlp_receiver.py"
UPSTREAM = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin"


def exported_spans(launcher, python, script, arguments, env, cwd):
    """The spans `python script arguments` exported under `launcher` (traces only, stable
    HTTP and database conventions), each with its scope's name under "scope"."""
    receiver = subprocess.Popen(
        [str(UPSTREAM / "python"), str(RECEIVER)], stdout=subprocess.PIPE, text=True, env=clean_env()
    )
    endpoint = f"http://127.0.0.1:{receiver.stdout.readline().split()[1]}"
    flags = ["--traces_exporter", "otlp", "--metrics_exporter", "none", "--logs_exporter", "none"]
    flags += ["--exporter_otlp_protocol", "http/protobuf", "--exporter_otlp_endpoint", endpoint]
    try:
        result = run(launcher, *flags, python, script, *arguments, env=env, cwd=cwd, timeout=120)
    finally:
        receiver.terminate()
        out, _ = receiver.communicate(timeout=10)
    assert result.returncode == 0, result.stderr[-3000:]
    spans = []
    for line in out.splitlines():
        if line.startswith("{"):
            for resource_spans in json.loads(line)["request"]["resource_spans"]:
                for scope_spans in resource_spans["scope_spans"]:
                    for span in scope_spans["spans"]:
                        spans.append({**span, "scope": scope_spans["scope"]["name"]})
    return spans
