"""OTLP export from ferrotel to a real receiver that decodes with upstream's
opentelemetry-proto: every field checked over gRPC, HTTP/protobuf and HTTP/JSON, gzip,
headers, TLS with a test CA and mTLS, and how failures behave (retries, drops, timeouts,
a receiver that comes up late, none at all at exit)."""

import base64
import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from support.processes import FERROTEL, PYTHON, ROOT, clean_env, free_port, run

RECEIVER = Path(__file__).parent / "apps" / "otlp_receiver.py"
UPSTREAM_PYTHON = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin" / "python"

APP = textwrap.dedent(
    """
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    tracer = trace.get_tracer("checkout", "1.2.3")
    remote = TraceContextTextMapPropagator().extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "rojo=1,congo=2"}
    )
    with tracer.start_as_current_span("linked") as other:
        pass
    attributes = {
        "s": "text", "b": True, "i": -42, "f": 2.5,
        "sa": ["x", "y"], "ba": [True, False], "ia": [1, 2], "fa": [0.5, 1.5],
    }
    with tracer.start_as_current_span(
        "GET /pay", context=remote, kind=SpanKind.SERVER, attributes=attributes,
        links=[Link(other.get_span_context(), {"why": "retry"})],
    ) as span:
        span.add_event("charged", {"amount": 12}, timestamp=1_700_000_000_000_000_000)
        with tracer.start_as_current_span("db", kind=SpanKind.CLIENT):
            pass
        span.set_status(Status(StatusCode.ERROR, "card declined"))
    """
)


class Receiver:
    def __init__(self, *flags):
        assert UPSTREAM_PYTHON.exists(), "scripts/test creates the upstream reference venv"
        self.proc = subprocess.Popen(
            [str(UPSTREAM_PYTHON), str(RECEIVER), *flags], stdout=subprocess.PIPE, text=True, env=clean_env()
        )
        self.port = int(self.proc.stdout.readline().split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture
def receiver():
    started = []

    def start(*flags):
        r = Receiver(*flags)
        started.append(r)
        return r

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()


def export_app(tmp, endpoint, *flags, env=None):
    (tmp / "app.py").write_text(APP)
    base = ["--traces_exporter", "otlp", "--exporter_otlp_endpoint", endpoint, "--service_name", "shop"]
    start = time.monotonic()
    result = run(FERROTEL, "instrument", *base, *flags, PYTHON, "app.py", cwd=tmp, env=env, timeout=120)
    return result, time.monotonic() - start


def hex_id(b64):
    return base64.b64decode(b64).hex()


def values(kvs):
    return {kv["key"]: kv["value"] for kv in kvs}


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
@pytest.mark.parametrize("compression", ["none", "gzip", "deflate"])
def test_every_field_arrives(tmp, receiver, protocol, compression):
    r = receiver()
    flags = ["--exporter_otlp_protocol", protocol, "--exporter_otlp_compression", compression]
    flags += ["--exporter_otlp_headers", "api-key=s3cret,x-tenant=acme"]
    result, _ = export_app(tmp, r.endpoint, *flags)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (record,) = r.stop()
    assert record["path"] == "/v1/traces"
    assert record["headers"]["api-key"] == "s3cret" and record["headers"]["x-tenant"] == "acme"
    assert record["headers"]["content-type"] == (
        "application/json" if protocol == "http/json" else "application/x-protobuf"
    )
    assert record["headers"].get("content-encoding") == (None if compression == "none" else compression)

    (resource_spans,) = record["request"]["resource_spans"]
    resource = values(resource_spans["resource"]["attributes"])
    assert resource["service.name"] == {"string_value": "shop"}
    assert resource["telemetry.sdk.name"] == {"string_value": "ferrotel"}
    assert "int_value" in resource["process.pid"]
    (scope_spans,) = resource_spans["scope_spans"]
    assert scope_spans["scope"] == {"name": "checkout", "version": "1.2.3"}
    spans = {s["name"]: s for s in scope_spans["spans"]}
    server, db, linked = spans["GET /pay"], spans["db"], spans["linked"]

    assert hex_id(server["trace_id"]) == "0af7651916cd43dd8448eb211c80319c"
    assert hex_id(server["parent_span_id"]) == "b7ad6b7169203331"
    assert server["trace_state"] == "rojo=1,congo=2"
    assert server["kind"] == "SPAN_KIND_SERVER" and db["kind"] == "SPAN_KIND_CLIENT"
    assert linked["kind"] == "SPAN_KIND_INTERNAL" and "parent_span_id" not in linked
    assert server["flags"] == 0x1 | 0x100 | 0x200  # sampled, parent is remote
    assert db["flags"] == 0x1 | 0x100
    assert hex_id(db["parent_span_id"]) == hex_id(server["span_id"])
    assert hex_id(db["trace_id"]) == hex_id(server["trace_id"])
    assert int(server["start_time_unix_nano"]) <= int(db["start_time_unix_nano"]) <= int(db["end_time_unix_nano"])
    assert int(db["end_time_unix_nano"]) <= int(server["end_time_unix_nano"])
    assert values(server["attributes"]) == {
        "s": {"string_value": "text"},
        "b": {"bool_value": True},
        "i": {"int_value": "-42"},
        "f": {"double_value": 2.5},
        "sa": {"array_value": {"values": [{"string_value": "x"}, {"string_value": "y"}]}},
        "ba": {"array_value": {"values": [{"bool_value": True}, {"bool_value": False}]}},
        "ia": {"array_value": {"values": [{"int_value": "1"}, {"int_value": "2"}]}},
        "fa": {"array_value": {"values": [{"double_value": 0.5}, {"double_value": 1.5}]}},
    }
    (event,) = server["events"]
    assert event["name"] == "charged" and event["time_unix_nano"] == "1700000000000000000"
    assert values(event["attributes"]) == {"amount": {"int_value": "12"}}
    (link,) = server["links"]
    assert hex_id(link["span_id"]) == hex_id(linked["span_id"]) and hex_id(link["trace_id"]) == hex_id(
        linked["trace_id"]
    )
    assert values(link["attributes"]) == {"why": {"string_value": "retry"}}
    assert server["status"] == {"code": "STATUS_CODE_ERROR", "message": "card declined"}
    assert "status" not in db


def test_retryable_status_is_retried(tmp, receiver):
    r = receiver("--statuses", "503,503,200")
    result, _ = export_app(tmp, r.endpoint, "--exporter_otlp_protocol", "http/protobuf")
    records = r.stop()
    assert [rec["status"] for rec in records] == [503, 503, 200]
    assert records[0]["request"] == records[2]["request"]
    assert result.stderr == "", result.stderr  # delivered in the end: nothing to say


def test_retry_after_is_honoured(tmp, receiver):
    r = receiver("--statuses", "429,200", "--retry-after", "1")
    result, elapsed = export_app(tmp, r.endpoint, "--exporter_otlp_protocol", "http/protobuf")
    assert [rec["status"] for rec in r.stop()] == [429, 200]
    assert elapsed >= 1.0


def test_a_rejected_batch_is_dropped_counted_and_reported_once(tmp, receiver):
    r = receiver("--statuses", "400")
    result, _ = export_app(tmp, r.endpoint, "--exporter_otlp_protocol", "http/protobuf")
    assert len(r.stop()) == 1, "400 is not retried"
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"ferrotel: warning: cannot export traces to {r.endpoint}/v1/traces: HTTP 400")
    assert lines[1] == (
        f"ferrotel: warning: 3 span(s) were not delivered to {r.endpoint}/v1/traces: 3 failed to export"
        " (last: HTTP 400)"
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_partial_success_is_counted(tmp, receiver, protocol):
    r = receiver("--reject", "1", *(["--grpc"] if protocol == "grpc" else []))
    result, _ = export_app(tmp, r.endpoint, "--exporter_otlp_protocol", protocol)
    r.stop()
    assert "the collector rejected 1 span(s): too old" in result.stderr


def test_a_slow_receiver_hits_the_timeout(tmp, receiver):
    r = receiver("--delay", "5")
    flags = ["--exporter_otlp_protocol", "http/protobuf", "--exporter_otlp_timeout", "1"]
    result, elapsed = export_app(tmp, r.endpoint, *flags)
    r.stop()
    assert elapsed < 4.5, elapsed
    assert "cannot export traces" in result.stderr and "3 span(s) were not delivered" in result.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_receiver_at_all_costs_the_exit_a_second_and_counts_a_failure(tmp, protocol):
    endpoint = f"http://127.0.0.1:{free_port()}"
    result, elapsed = export_app(tmp, endpoint, "--exporter_otlp_protocol", protocol)
    assert result.returncode == 0
    # A refused connection gets one quick retry at exit, not the 5 s exit deadline.
    assert elapsed < 2.5, elapsed
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("ferrotel: warning: cannot export traces to " + endpoint)
    assert lines[1].startswith(f"ferrotel: warning: 3 span(s) were not delivered to {endpoint}")
    assert ": 3 failed to export (last: " in lines[1], lines[1]


def test_grpc_is_the_default_protocol(tmp, receiver):
    r = receiver("--grpc")
    result, _ = export_app(tmp, r.endpoint)
    assert result.stderr == ""
    (record,) = r.stop()
    assert len(record["request"]["resource_spans"][0]["scope_spans"][0]["spans"]) == 3


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_grpc_messages_are_compressed_as_asked(tmp, receiver, compression):
    # A server that takes the asked encoding decodes the spans; one that takes only the
    # other refuses the message (UNIMPLEMENTED), which proves which encoding it was.
    other = {"gzip": "deflate", "deflate": "gzip"}[compression]
    for encodings, delivered in [(compression, True), (other, False)]:
        r = receiver("--grpc", "--grpc-encodings", encodings)
        result, _ = export_app(tmp, r.endpoint, "--exporter_otlp_compression", compression)
        records = r.stop()
        if delivered:
            assert result.stderr == "", result.stderr
            (record,) = records
            assert len(record["request"]["resource_spans"][0]["scope_spans"][0]["spans"]) == 3
        else:
            assert records == [] and "gRPC status 12" in result.stderr, result.stderr


def test_grpc_retryable_codes_are_retried_and_others_dropped(tmp, receiver):
    r = receiver("--grpc", "--statuses", "14,14,0")  # UNAVAILABLE twice, then OK
    result, _ = export_app(tmp, r.endpoint)
    assert [rec["status"] for rec in r.stop()] == [14, 14, 0]
    assert result.stderr == ""
    r = receiver("--grpc", "--statuses", "3")  # INVALID_ARGUMENT: not retryable
    result, _ = export_app(tmp, r.endpoint)
    assert len(r.stop()) == 1
    assert "cannot export traces" in result.stderr and "gRPC status 3" in result.stderr
    assert "3 span(s) were not delivered" in result.stderr


def test_a_receiver_that_comes_up_late_gets_the_spans(tmp, receiver):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    (tmp / "app.py").write_text(APP + "import time; time.sleep(2.5)\n")
    flags = ["--traces_exporter", "otlp", "--exporter_otlp_protocol", "http/protobuf", "--bsp_schedule_delay", "100"]
    app = subprocess.Popen(
        [FERROTEL, "instrument", *flags, "--exporter_otlp_endpoint", endpoint, PYTHON, "app.py"],
        cwd=tmp,
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # the first exports fail: nothing listens yet
    r = receiver("--port", str(port))
    _, stderr = app.communicate(timeout=60)
    records = r.stop()
    delivered = [
        s for rec in records for rs in rec["request"]["resource_spans"] for ss in rs["scope_spans"] for s in ss["spans"]
    ]
    assert sorted(s["name"] for s in delivered) == ["GET /pay", "db", "linked"], stderr
    assert stderr == ""


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A test CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = tmp_path_factory.mktemp("certs")
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem, cert, key):
        (out / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (out / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("ferrotel test CA"))
        .issuer_name(name("ferrotel test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, ca_key)

    def leaf(stem, cn, usage, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        write(stem, builder.sign(ca_key, hashes.SHA256()), key)

    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf("server", "localhost", ExtendedKeyUsageOID.SERVER_AUTH, san)
    leaf("client", "ferrotel test client", ExtendedKeyUsageOID.CLIENT_AUTH)
    return out


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_tls_with_a_test_ca(tmp, receiver, certificates, protocol):
    tls = ["--tls", str(certificates / "server.pem"), str(certificates / "server.key")]
    r = receiver(*(["--grpc"] if protocol == "grpc" else []), *tls)
    endpoint = f"https://localhost:{r.port}"
    flags = ["--exporter_otlp_protocol", protocol, "--exporter_otlp_certificate", str(certificates / "ca.pem")]
    result, _ = export_app(tmp, endpoint, *flags)
    assert result.stderr == "", result.stderr
    assert len(r.stop()) == 1
    # Without the test CA the server is not trusted: nothing is delivered, and it is said.
    r = receiver(*(["--grpc"] if protocol == "grpc" else []), *tls)
    result, _ = export_app(tmp, f"https://localhost:{r.port}", "--exporter_otlp_protocol", protocol)
    assert r.stop() == []
    assert "cannot export traces" in result.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_mtls(tmp, receiver, certificates, protocol):
    tls = ["--tls", str(certificates / "server.pem"), str(certificates / "server.key")]
    tls += ["--client-ca", str(certificates / "ca.pem")]
    grpc_flag = ["--grpc"] if protocol == "grpc" else []
    flags = ["--exporter_otlp_protocol", protocol, "--exporter_otlp_certificate", str(certificates / "ca.pem")]
    client = ["--exporter_otlp_client_certificate", str(certificates / "client.pem")]
    client += ["--exporter_otlp_client_key", str(certificates / "client.key")]
    r = receiver(*grpc_flag, *tls)
    result, _ = export_app(tmp, f"https://localhost:{r.port}", *flags, *client)
    assert result.stderr == "", result.stderr
    assert len(r.stop()) == 1
    # Without a client certificate nothing is delivered and the user is told where. (A gRPC
    # server may just close the connection, which reads as a network error and is retried
    # until the exit deadline, so the exit line is what says it.)
    r = receiver(*grpc_flag, *tls)
    result, _ = export_app(tmp, f"https://localhost:{r.port}", *flags)
    assert r.stop() == []
    assert f"span(s) were not delivered to https://localhost:{r.port}" in result.stderr
