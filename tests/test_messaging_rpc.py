"""Messaging and RPC built-ins against upstream's contrib instrumentors, on real servers: the
same scenario under `ferrotel instrument` (a user venv with the libraries of
tests/messaging-requirements.txt) and under upstream's `opentelemetry-instrument`
(.venv-upstream, contrib pinned at 0.66b1), both exporting to the same OTLP receiver. Every
span upstream produces, ferrotel produces with the same kind and parent; the exact trees
are asserted. Attribute names differ where ferrotel uses the current messaging conventions:
`messaging.destination.name` and `messaging.message.conversation_id` for upstream's
`messaging.destination` and `messaging.conversation_id`."""

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from support.dist import user_venv
from support.messaging import Receiver, attributes, redis_server, stop, trace_id, tree
from support.processes import ROOT, clean_env, free_port, spawn, wait_http

APPS = Path(__file__).parent / "apps"
UPSTREAM = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin"
KIND = {f"SPAN_KIND_{k}": k.lower() for k in ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")}


@pytest.fixture(scope="module")
def messaging_bin(tmp_path_factory):
    """The bin directory of a user venv holding the messaging and RPC libraries and ferrotel."""
    return user_venv(tmp_path_factory.mktemp("messaging"), ROOT / "tests" / "messaging-requirements.txt").parent


@pytest.fixture
def broker(tmp):
    with redis_server(tmp) as url:
        yield url


def otlp_env(receiver, bin_dir, **extra):
    settings = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "OTEL_SERVICE_NAME": "messaging",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    return clean_env(**{**settings, **extra})


def celery_scenario(launcher, bin_dir, broker, **extra_env):
    """A prefork Celery worker and a client publishing to it, both under `launcher`; the
    spans the receiver got, and the worker's standard output."""
    receiver = Receiver(UPSTREAM / "python")
    # The broker's own redis commands (kombu polls it) would be traced too, on both sides:
    # this scenario is about Celery's spans.
    env = otlp_env(receiver, bin_dir, CELERY_BROKER=broker, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="redis", **extra_env)
    cwd = APPS / "celery"
    worker_command = [launcher, bin_dir / "celery", "-A", "tasks", "worker", "--pool", "prefork"]
    worker_command += ["--concurrency", "1", "--loglevel", "info", "--without-gossip", "--without-mingle"]
    worker = spawn(worker_command, cwd, env)
    try:
        client = subprocess.run(
            [str(launcher), str(bin_dir / "python"), "client.py"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        time.sleep(1.0)  # the worker's batch goes out every 100 ms
    finally:
        worker_out, worker_err = stop(worker, grace=30)
    spans = receiver.spans()
    assert client.returncode == 0, client.stderr[-3000:] + worker_err[-3000:]
    return [s for s in spans if "celery" in s["scope"] or s["name"] == "client"], worker_out


def structure(span):
    status = span.get("status", {}).get("code", "").replace("STATUS_CODE_", "")
    events = ",".join(e["name"] for e in span.get("events", []))
    return " ".join(p for p in (span["name"], KIND[span["kind"]], status, events) if p)


def celery_attributes(span, names):
    found = attributes(span)
    return {n: found[n] for n in names if n in found}


CELERY_TREE = [
    "client internal",
    "  apply_async/tasks.add producer",
    "    run/tasks.add consumer",
    "  apply_async/tasks.fail producer",
    "    run/tasks.fail consumer ERROR exception",
    "  apply_async/tasks.flaky producer",
    "    run/tasks.flaky consumer",
    "      apply_async/tasks.flaky producer",
    "        run/tasks.flaky consumer",
]


def test_celery_spans_match_upstream(messaging_bin, broker):
    ours, _ = celery_scenario(messaging_bin / "ferrotel-instrument", messaging_bin, broker)
    theirs, _ = celery_scenario(UPSTREAM / "opentelemetry-instrument", UPSTREAM, broker)

    # One trace from the client's span down to the retried run, on both sides.
    for spans in (ours, theirs):
        assert len({trace_id(s) for s in spans}) == 1, [s["name"] for s in spans]
    assert tree(ours, structure) == CELERY_TREE
    assert tree(theirs, structure) == CELERY_TREE

    common = ["celery.action", "celery.task_name", "celery.state", "messaging.message.id", "celery.retries"]
    common += ["celery.retry.reason", "celery.hostname", "celery.delivery_info"]

    def described(span):
        return f"{span['name']} {sorted(celery_attributes(span, common).keys())}"

    assert tree(ours, described) == tree(theirs, described)
    runs = [s for s in ours if s["name"].startswith("run/")]
    assert {attributes(s)["celery.state"] for s in runs} == {"SUCCESS", "FAILURE", "RETRY"}
    retried = next(s for s in runs if attributes(s)["celery.state"] == "RETRY")
    assert attributes(retried)["celery.retry.reason"] == "Retry in 0s: RuntimeError('not yet')"
    assert attributes(retried)["messaging.operation.type"] == "process"
    rerun = next(s for s in runs if "celery.retries" in attributes(s))
    assert (rerun["name"], attributes(rerun)["celery.retries"]) == ("run/tasks.flaky", "1")  # int64 as JSON text
    for span in ours:
        if span["name"].startswith(("apply_async/", "run/")):
            assert attributes(span)["messaging.destination.name"] == "celery", span
    failed = next(s for s in ours if s["name"] == "run/tasks.fail")
    (event,) = failed["events"]
    assert {a["key"]: a["value"]["string_value"] for a in event["attributes"][:2]} == {
        "exception.type": "ValueError",
        "exception.message": "boom",
    }
    assert attributes(failed)["error.type"] == "ValueError"


def test_celery_worker_logs_are_exported_under_the_runs_span(messaging_bin, broker):
    # The worker empties the root logger's handlers when it sets up its logging, and its
    # task logger does not propagate: both log records of `add` must still be exported, each
    # with the ids of the task's run span.
    spans, worker_out = celery_scenario(
        messaging_bin / "ferrotel-instrument", messaging_bin, broker, OTEL_LOGS_EXPORTER="console"
    )
    run = next(s for s in spans if s["name"] == "run/tasks.add")
    ids = f"trace_id={trace_id(run)} span_id={base64.b64decode(run['span_id']).hex()}"
    records = [line for line in worker_out.splitlines() if line.startswith("log ") and "adding" in line]
    assert len(records) == 2, worker_out[-3000:]
    assert [r.split("] ", 1)[1] for r in sorted(records, key=lambda r: "task logger" in r)] == [
        f"adding 2 and 3 (module logger)  {ids}",
        f"adding 2 and 3 (task logger)  {ids}",
    ]


@pytest.fixture
def aws_endpoint(messaging_bin, tmp):
    """moto's server mode (a real HTTP server speaking the AWS APIs) on a free port; its URL."""
    port = free_port()
    server = spawn([messaging_bin / "moto_server", "-H", "127.0.0.1", "-p", port], tmp, clean_env())
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/moto-api/", deadline=30)
        yield url
    finally:
        stop(server)


def aws_scenario(launcher, bin_dir, endpoint):
    """tests/apps/aws_client.py under `launcher`: the spans the receiver got, and the message
    attributes the SNS message arrived with."""
    receiver = Receiver(UPSTREAM / "python")
    env = otlp_env(receiver, bin_dir, AWS_ENDPOINT_URL=endpoint)
    client = subprocess.run(
        [str(launcher), str(bin_dir / "python"), str(APPS / "aws_client.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    spans = receiver.spans()
    assert client.returncode == 0, client.stderr[-3000:]
    return spans, json.loads(client.stdout.splitlines()[-1])


AWS_TREE = [
    "client internal",
    "  S3.CreateBucket client",
    "  S3.PutObject client",
    "  S3.GetObject client",
    "  S3.GetObject client ERROR exception",
    "  SQS.CreateQueue client",
    "  SQS.SendMessage client",
    "  SQS.ReceiveMessage client",
    "  SNS.CreateTopic client",
    "  SQS.CreateQueue client",
    "  SQS.GetQueueAttributes client",
    "  SNS.Subscribe client",
    "  topic send producer",
    "  SQS.ReceiveMessage client",
]


def test_botocore_spans_match_upstream(messaging_bin, aws_endpoint):
    ours, delivered = aws_scenario(messaging_bin / "ferrotel-instrument", messaging_bin, aws_endpoint)
    theirs, _ = aws_scenario(UPSTREAM / "opentelemetry-instrument", UPSTREAM, aws_endpoint)
    assert tree(theirs, structure) == AWS_TREE
    assert tree(ours, structure) == AWS_TREE
    assert len({trace_id(s) for s in ours}) == 1

    common = ["rpc.system", "rpc.service", "rpc.method", "aws.request_id", "server.address", "aws.queue_url"]
    common += ["messaging.system", "aws.sns.topic.arn", "messaging.message.id", "retry_attempts", "cloud.region"]

    def described(span):
        found = attributes(span)
        # Request and message ids are the server's, different on each run: present is enough.
        varying = ("aws.request_id", "messaging.message.id")
        shown = [n if n in varying else f"{n}={found[n]!r}" for n in common if n in found]
        return f"{span['name']} " + " ".join(shown)

    assert tree(ours, described) == tree(theirs, described)
    for span in ours:
        found = attributes(span)
        if span["name"] != "client":
            assert found["rpc.system"] == "aws-api" and found["cloud.region"] == "us-east-1", span
            assert found["aws.request_id"] and found["server.port"] == aws_endpoint.rsplit(":", 1)[1], span
            failed = span.get("status", {}).get("code") == "STATUS_CODE_ERROR"
            assert found["http.response.status_code"] == ("404" if failed else "200"), span  # int64 as JSON text
    # The published message carries the producer span's context to whoever receives it.
    producer = next(s for s in ours if s["name"] == "topic send")
    traceparent = delivered["traceparent"]["Value"]
    assert traceparent == f"00-{trace_id(producer)}-{base64.b64decode(producer['span_id']).hex()}-01"


def test_botocore_hooks(messaging_bin, aws_endpoint):
    receiver = Receiver(UPSTREAM / "python")
    env = otlp_env(receiver, messaging_bin, AWS_ENDPOINT_URL=aws_endpoint)
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "botocore"
    command = [messaging_bin / "ferrotel-instrument", messaging_bin / "python", APPS / "aws_hooks.py"]
    client = subprocess.run(list(map(str, command)), env=env, capture_output=True, text=True, timeout=60)
    spans = receiver.spans()
    assert client.returncode == 0, client.stderr[-3000:]
    (span,) = spans
    assert span["name"] == "S3.CreateBucket"
    assert attributes(span)["hook.request"] == "s3.CreateBucket ['Bucket']"
    assert attributes(span)["hook.response"] == "200"
