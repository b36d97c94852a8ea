"""The grpc built-in on real grpcio servers and clients, each its own process under
`ferrotel instrument` (a user venv with tests/grpc-requirements.txt), exporting OTLP to the
test receiver: the app of tests/apps/grpc calls every call shape, a method that aborts
with NOT_FOUND, one whose handler raises, and an excluded service, with grpc's sync API and
with grpc.aio. The exact trees (the server spans children of the client spans across the
processes), attributes and statuses are asserted; the same program under upstream's
`opentelemetry-instrument` (.venv-upstream, contrib 0.66b1) gives the same spans; what the
application sees is what it sees without instrumentation."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from support.dist import user_venv
from support.messaging import Receiver, attributes, stop, trace_id, tree
from support.processes import ROOT, clean_env, spawn

APP = Path(__file__).parent / "apps" / "grpc"
UPSTREAM = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin"
KIND = {f"SPAN_KIND_{k}": k.lower() for k in ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")}


@pytest.fixture(scope="module")
def grpc_bin(tmp_path_factory):
    """The bin directory of a user venv holding grpcio and ferrotel."""
    return user_venv(tmp_path_factory.mktemp("grpc"), ROOT / "tests" / "grpc-requirements.txt").parent


def run_app(mode, bin_dir, launcher=None, receiver=None, served=None):
    """tests/apps/grpc's server (`served`, else `mode`) and client (`sync` or `aio`), each
    under `launcher` when given; what the client printed, and the spans the receiver got."""
    env = clean_env(
        OTEL_SERVICE_NAME="grpc-app",
        OTEL_TRACES_EXPORTER="otlp" if receiver else "none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint if receiver else "http://127.0.0.1:9",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_PYTHON_GRPC_EXCLUDED_SERVICES="demo.Health",
    )
    prefix = [launcher] if launcher else []
    server = spawn([*prefix, bin_dir / "python", "server.py", served or mode], APP, env)
    try:
        line = server.stdout.readline()
        if not line.startswith("port "):
            pytest.fail(f"the server did not start: {line}{stop(server)[1][-3000:]}")
        port = line.split()[1]
        command = [*prefix, bin_dir / "python", "client.py", mode, port]
        client = subprocess.run(list(map(str, command)), cwd=APP, env=env, capture_output=True, text=True, timeout=120)
        time.sleep(1.0)  # the server's last batch goes out every 100 ms
    finally:
        _, server_err = stop(server)
    spans = receiver.spans() if receiver else []
    assert client.returncode == 0, client.stderr[-3000:] + server_err[-3000:]
    return json.loads(client.stdout.splitlines()[-1]), spans, int(port)


def structure(span):
    status = span.get("status", {}).get("code", "").replace("STATUS_CODE_", "")
    events = ",".join(e["name"] for e in span.get("events", []))
    # Upstream names a call by its full method with the leading `/`; the conventions do not.
    return " ".join(p for p in (span["name"].lstrip("/"), KIND[span["kind"]], status, events) if p)


def calls(*shapes):
    lines = []
    for method, client, server in shapes:
        lines.append(f"  demo.Echo/{method} client{client}")
        lines.append(f"    demo.Echo/{method} server{server}")
        if method == "Say":
            lines.append("      work internal")
    return ["client internal", *lines]


SUCCEEDED = [("Count", "", ""), ("Join", "", ""), ("Chat", "", "")]
# NOT_FOUND is the caller's error, not the server's: only the client span is an error.
SYNC_TREE = calls(
    *[("Say", "", "")] * 3,
    *SUCCEEDED,
    ("Missing", " ERROR exception", ""),
    ("Crash", " ERROR exception", " ERROR exception"),
)
# grpc.aio raises an AioRpcError of its own when the call is awaited, after the span ended.
AIO_TREE = calls(("Say", "", ""), *SUCCEEDED, ("Missing", " ERROR", ""), ("Crash", " ERROR", " ERROR exception"))
CODES = {"Missing": "5", "Crash": "2"}  # int64 attributes arrive as JSON text


@pytest.mark.parametrize("mode", ["sync", "aio"])
def test_grpc_spans(grpc_bin, mode):
    # The aio server streams its responses through `context.write` here, its other style.
    served = "aio-writes" if mode == "aio" else mode
    bare_seen, _, _ = run_app(mode, grpc_bin, served=served)
    receiver = Receiver(UPSTREAM / "python")
    seen, spans, port = run_app(mode, grpc_bin, grpc_bin / "ferrotel-instrument", receiver, served)

    # The application gets exactly what it gets without instrumentation: responses, call
    # objects (a sync response stream is still grpc's call), statuses and errors.
    assert seen == bare_seen
    assert seen["health"] == "SERVING" and seen["Missing"]["code"] == "NOT_FOUND"

    assert tree(spans, structure) == (SYNC_TREE if mode == "sync" else AIO_TREE)
    assert len({trace_id(s) for s in spans}) == 1  # across both processes
    for span in spans:
        if span["name"] in ("client", "work"):
            continue
        found = attributes(span)
        method = span["name"].split("/")[1]
        expected = {"rpc.system": "grpc", "rpc.service": "demo.Echo", "rpc.method": method}
        expected["rpc.grpc.status_code"] = CODES.get(method, "0")
        if span["kind"] == "SPAN_KIND_CLIENT":
            expected |= {"server.address": "127.0.0.1", "server.port": str(port)}
        else:
            assert int(found.pop("network.peer.port")) > 0
            expected["network.peer.address"] = "127.0.0.1"
        if method == "Crash" and span["kind"] == "SPAN_KIND_SERVER":
            expected["error.type"] = "ValueError"
        elif method in CODES and mode == "sync" and span["kind"] == "SPAN_KIND_CLIENT":
            expected["error.type"] = "grpc._channel._InactiveRpcError"  # what the caller catches
        assert found == expected, span
    statuses = {(s["name"], s["kind"]): s.get("status", {}).get("message") for s in spans}
    if mode == "aio":
        assert statuses["demo.Echo/Missing", "SPAN_KIND_CLIENT"] == "no such thing"
    crash = next(s for s in spans if s["name"] == "demo.Echo/Crash" and s["kind"] == "SPAN_KIND_SERVER")
    assert crash["status"]["message"] == "ValueError: handler broke"


@pytest.mark.parametrize("mode", ["sync", "aio"])
def test_grpc_spans_match_upstream(grpc_bin, mode):
    _, ours, _ = run_app(mode, grpc_bin, grpc_bin / "ferrotel-instrument", Receiver(UPSTREAM / "python"))
    _, theirs, _ = run_app(mode, UPSTREAM, UPSTREAM / "opentelemetry-instrument", Receiver(UPSTREAM / "python"))

    # Same calls, kinds and parents on both sides, the server spans under the client spans.
    def shape(span):
        return f"{span['name'].lstrip('/')} {KIND[span['kind']]}"

    assert tree(ours, shape) == tree(theirs, shape)

    key = ("rpc.system", "rpc.service", "rpc.method")

    def described(span):
        found = attributes(span)
        shown = [f"{n}={found[n]}" for n in key if n in found]
        # The two differ on served calls that fail: upstream leaves a raised exception's
        # UNKNOWN as 0 and UNSET, where ferrotel records the status grpc answers.
        if span["kind"] == "SPAN_KIND_CLIENT" or "Crash" not in span["name"]:
            shown.append(f"code={found.get('rpc.grpc.status_code')}")
            shown.append(span.get("status", {}).get("code", "UNSET").replace("STATUS_CODE_", ""))
        return f"{span['name'].lstrip('/')} " + " ".join(shown)

    assert tree(ours, described) == tree(theirs, described)


def test_grpc_filter_and_hooks(grpc_bin):
    receiver = Receiver(UPSTREAM / "python")
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="grpc_client,grpc_server",
    )
    command = [grpc_bin / "ferrotel-instrument", grpc_bin / "python", "hooks.py"]
    app = subprocess.run(list(map(str, command)), cwd=APP, env=env, capture_output=True, text=True, timeout=120)
    spans = receiver.spans()
    assert app.returncode == 0, app.stderr[-3000:]
    # The filtered-out call has no client span and sends no context: its server span is a root.
    assert tree(spans, structure) == [
        "demo.Echo/Say client",
        "  demo.Echo/Say server",
        "    work internal",
        "demo.Echo/Join server",
    ]
    say = next(s for s in spans if s["name"] == "demo.Echo/Say" and s["kind"] == "SPAN_KIND_CLIENT")
    assert attributes(say)["hook.request"] == "you"
    assert attributes(say)["hook.response"] == "hello you"


def test_grpc_through_another_provider(grpc_bin):
    command = [grpc_bin / "ferrotel-instrument", grpc_bin / "python", "other_provider.py"]
    env = clean_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "grpc_client,grpc_server"
    app = subprocess.run(list(map(str, command)), cwd=APP, env=env, capture_output=True, text=True, timeout=120)
    assert app.returncode == 0, app.stderr[-3000:]
    rpc = {"rpc.system": "grpc", "rpc.service": "demo.Echo"}
    client = {**rpc, "server.address": "127.0.0.1"}
    server = {**rpc, "network.peer.address": "127.0.0.1"}
    assert json.loads(app.stdout.splitlines()[-1]) == [
        {
            "name": "demo.Echo/Say",
            "kind": "CLIENT",
            "status": "UNSET",
            "attributes": {**client, "rpc.method": "Say", "rpc.grpc.status_code": 0},
            "parent": None,
        },
        {
            "name": "demo.Echo/Say",
            "kind": "SERVER",
            "status": "UNSET",
            "attributes": {**server, "rpc.method": "Say", "rpc.grpc.status_code": 0},
            "parent": "CLIENT",
        },
        {
            "name": "demo.Echo/Crash",
            "kind": "CLIENT",
            "status": "ERROR",
            "attributes": {
                **client,
                "rpc.method": "Crash",
                "error.type": "grpc._channel._InactiveRpcError",
                "rpc.grpc.status_code": 2,
            },
            "parent": None,
        },
        {
            "name": "demo.Echo/Crash",
            "kind": "SERVER",
            "status": "ERROR",
            "attributes": {**server, "rpc.method": "Crash", "error.type": "ValueError", "rpc.grpc.status_code": 2},
            "parent": "CLIENT",
        },
    ]
