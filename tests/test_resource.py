"""The default resource, side by side with upstream's SDK on the same program: the same keys
(values such as the pid or the random service.instance.id differ by nature), ferrotel's
extra process, os and host facts, never the command line unless asked for, and
OTEL_EXPERIMENTAL_RESOURCE_DETECTORS read as upstream reads it."""

import pytest
from support.viewer import run_ferrotel, run_upstream

PROGRAM = """
import sys
from opentelemetry import trace
trace.get_tracer("resource.test").start_span("one span").end()
"""

# What ferrotel's default adds to upstream's: the process, os and host detectors' keys
# (upstream runs them only when named), without process.command_args / command_line.
EXTRAS = {
    "process.pid",
    "process.parent_pid",
    "process.executable.name",
    "process.executable.path",
    "process.command",
    "process.runtime.name",
    "process.runtime.version",
    "process.runtime.description",
    "os.type",
    "os.version",
    "host.name",
    "host.arch",
    "host.id",
}


def resource_keys(viewer, service):
    [trace] = viewer.get(f"/api/traces?service={service}")["data"]
    [process] = trace["processes"].values()
    return {tag["key"] for tag in process["tags"]}, {tag["key"]: tag["value"] for tag in process["tags"]}


def both(viewer, tmp, name, **env):
    run_ferrotel(viewer, tmp, PROGRAM, "http/protobuf", OTEL_SERVICE_NAME=f"ferrotel-{name}", **env)
    run_upstream(
        viewer, tmp, PROGRAM, "http/protobuf", OTEL_SERVICE_NAME=f"upstream-{name}", OTEL_TRACES_EXPORTER="otlp", **env
    )
    return resource_keys(viewer, f"ferrotel-{name}"), resource_keys(viewer, f"upstream-{name}")


def test_default_resource_has_upstreams_keys_and_no_command_line(viewer, tmp):
    (ours, values), (theirs, _) = both(viewer, tmp, "default")
    assert {"service.instance.id", "telemetry.auto.version", "telemetry.sdk.version"} <= theirs
    assert ours - theirs == EXTRAS
    assert theirs <= ours
    assert len(values["service.instance.id"]) == 36 and values["service.instance.id"][14] == "4"


@pytest.mark.parametrize("detectors", ["process,os,host", "*", "os,otel,service_instance"])
def test_named_detectors_give_upstreams_keys(viewer, tmp, detectors):
    (ours, _), (theirs, _) = both(viewer, tmp, "named", OTEL_EXPERIMENTAL_RESOURCE_DETECTORS=detectors)
    assert ours == theirs
    assert "process.command_args" not in ours


def test_the_command_line_only_when_asked_for(viewer, tmp):
    run_ferrotel(
        viewer,
        tmp,
        PROGRAM,
        "http/protobuf",
        OTEL_SERVICE_NAME="asked",
        OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="process,process_command_args",
    )
    keys, values = resource_keys(viewer, "asked")
    assert {"process.command_args", "process.command_line"} <= keys
    assert values["process.command_line"].endswith("app.py")
