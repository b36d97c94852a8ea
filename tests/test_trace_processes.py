"""ferrotel's trace SDK across real processes: seed 003's manual propagation over HTTP,
automatic set-up under `ferrotel instrument`, and delivery from forked and spawned
children and gunicorn workers. Spans are read from the console exporter's output."""

import os
import signal
import subprocess
import textwrap
import time

from support.console import console_spans
from support.processes import FERROTEL, PYTHON, clean_env, default_signals, free_port, instrument, run, wait_http

COMMON = textwrap.dedent(
    """
    from opentelemetry import trace
    from ferrotel.trace import TracerProvider
    from ferrotel.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    def get_tracer():
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        return trace.get_tracer(__name__)
    """
)

SERVER = textwrap.dedent(
    """
    import sys
    from flask import Flask, request
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from common import get_tracer

    tracer = get_tracer()
    app = Flask(__name__)

    @tracer.start_as_current_span("redis_integration")
    def redis_integration():
        with tracer.start_as_current_span("server redis operation"):
            return "PONG"

    @app.route("/ping")
    def ping():
        carrier = {"traceparent": request.headers.get_all("traceparent")[0]}
        ctx = TraceContextTextMapPropagator().extract(carrier)
        with tracer.start_as_current_span("/ping", context=ctx):
            return redis_integration()

    app.run(port=int(sys.argv[1]))
    """
)

CLIENT = textwrap.dedent(
    """
    import sys
    import requests
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from common import get_tracer

    tracer = get_tracer()
    with tracer.start_as_current_span("client operation"):
        carrier = {}
        TraceContextTextMapPropagator().inject(carrier)
        header = {"traceparent": carrier["traceparent"]}
        print("response", requests.get(f"http://127.0.0.1:{sys.argv[1]}/ping", headers=header).text)
    """
)


def test_seed_manual_propagation_between_two_processes(tmp):
    for name, source in [("common.py", COMMON), ("server.py", SERVER), ("client.py", CLIENT)]:
        (tmp / name).write_text(source)
    port = free_port()
    server = subprocess.Popen(
        [PYTHON, "server.py", str(port)],
        cwd=tmp,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_signals,  # stopped by SIGINT, which a background job ignores
    )
    try:
        # The client is retried until the server listens.
        for _ in range(100):
            client = subprocess.run(
                [PYTHON, "client.py", str(port)], cwd=tmp, env=clean_env(), capture_output=True, text=True
            )
            if client.returncode == 0:
                break
            time.sleep(0.1)
        assert "response PONG" in client.stdout, client.stderr
    finally:
        server.send_signal(signal.SIGINT)
        server_out, _ = server.communicate(timeout=30)
    client_spans = console_spans(client.stdout)
    server_spans = {s["name"]: s for s in console_spans(server_out.decode())}
    (client_span,) = [s for s in client_spans if s["name"] == "client operation"]
    assert set(server_spans) == {"/ping", "redis_integration", "server redis operation"}
    assert {s["trace_id"] for s in server_spans.values()} == {client_span["trace_id"]}
    assert server_spans["/ping"]["parent"] == client_span["span_id"]
    assert server_spans["redis_integration"]["parent"] == server_spans["/ping"]["span_id"]
    assert server_spans["server redis operation"]["parent"] == server_spans["redis_integration"]["span_id"]
    assert client_span["parent"] is None


APP = textwrap.dedent(
    """
    from opentelemetry import trace

    tracer = trace.get_tracer("app", "2.0")
    with tracer.start_as_current_span("work", attributes={"job": "nightly"}):
        with tracer.start_as_current_span("step"):
            pass
    """
)


def test_ferrotel_instrument_sets_up_tracing_from_flags(tmp):
    (tmp / "app.py").write_text(APP)
    result = instrument("--traces_exporter", "console", "--service_name", "nightly-batch", PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    spans = {s["name"]: s for s in console_spans(result.stdout)}
    assert spans["step"]["parent"] == spans["work"]["span_id"]
    assert spans["work"]["attributes"] == {"job": '"nightly"'}
    assert 'service.name="nightly-batch"' in result.stdout
    assert result.stderr == ""


def test_default_export_is_otlp_grpc_to_localhost_and_exit_stays_bounded(tmp, default_ports):
    (tmp / "app.py").write_text(APP)
    start = time.monotonic()
    result = instrument(PYTHON, "app.py", cwd=tmp)  # nothing listens on 4317 here
    assert result.returncode == 0 and time.monotonic() - start < 8
    assert result.stderr.splitlines()[-1].startswith(
        "ferrotel: warning: 2 span(s) were not delivered to http://localhost:4317"
    )


def test_sdk_disabled_records_nothing(tmp):
    (tmp / "app.py").write_text(APP + "print(type(trace.get_tracer_provider()).__name__)\n")
    result = instrument("--traces_exporter", "console", "--sdk_disabled", "true", PYTHON, "app.py", cwd=tmp)
    assert result.stdout.strip() == "ProxyTracerProvider"


FORKS = textwrap.dedent(
    """
    import multiprocessing, os, sys
    from opentelemetry import trace

    tracer = trace.get_tracer("forks")

    def child(i):
        with tracer.start_as_current_span(f"child-{i}"):
            pass

    if __name__ == "__main__":
        method = sys.argv[1]
        with tracer.start_as_current_span("parent"):
            pass
        if method == "os.fork":
            pids = []
            for i in range(3):
                pid = os.fork()
                if pid == 0:
                    child(i)
                    os._exit(0)
                pids.append(pid)
            for pid in pids:
                os.waitpid(pid, 0)
        else:
            ctx = multiprocessing.get_context(method)
            procs = [ctx.Process(target=child, args=(i,)) for i in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(timeout=60)
                assert p.exitcode == 0
    """
)


def test_every_process_delivers_its_spans_once(tmp):
    (tmp / "forks.py").write_text(FORKS)
    for method in ("fork", "spawn", "forkserver", "os.fork"):
        result = instrument("--traces_exporter", "console", PYTHON, "forks.py", method, cwd=tmp, timeout=120)
        assert result.returncode == 0, (method, result.stderr)
        spans = console_spans(result.stdout)
        names = sorted(s["name"] for s in spans)
        assert names == ["child-0", "child-1", "child-2", "parent"], (method, names)
        assert len({s["span_id"] for s in spans}) == 4, method
        pids = {s["name"]: s["pid"] for s in spans}
        assert len(set(pids.values())) == 4, (method, pids)  # each child reports its own pid


GUNICORN_APP = textwrap.dedent(
    """
    import os
    from opentelemetry import trace

    tracer = trace.get_tracer("gunicorn-app")

    def app(environ, start_response):
        with tracer.start_as_current_span("request", attributes={"path": environ["PATH_INFO"]}):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [str(os.getpid()).encode()]
    """
)


def run_gunicorn(tmp, *extra):
    (tmp / "wsgi.py").write_text(GUNICORN_APP)
    port = free_port()
    proc = subprocess.Popen(
        [FERROTEL, "instrument", "--traces_exporter", "console", "gunicorn", "-w", "2", *extra]
        + ["-b", f"127.0.0.1:{port}", "wsgi:app"],
        cwd=tmp,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        served = {wait_http(f"http://127.0.0.1:{port}/r{i}") for i in range(12)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    return served, console_spans(out), err


def test_gunicorn_workers_deliver_every_request_once(tmp):
    for extra in ([], ["--preload"]):
        served_by, spans, err = run_gunicorn(tmp, *extra)
        paths = sorted(s["attributes"]["path"] for s in spans)
        assert paths == sorted(f'"/r{i}"' for i in range(12)), (extra, paths, err[-2000:])
        assert {str(s["pid"]) for s in spans} == served_by


CONFIGURED = textwrap.dedent(
    """
    import ferrotel
    from opentelemetry import trace

    provider = ferrotel.configure(service_name="coded", traces_exporter=["console"], span_attribute_count_limit=1)
    assert trace.get_tracer_provider() is provider
    with trace.get_tracer("t").start_as_current_span("configured", attributes={"a": 1, "b": 2}):
        pass
    try:
        ferrotel.configure(servce_name="typo")
    except TypeError as error:
        print("error:", error)
    """
)


def test_configure_in_code_has_the_flags_names_and_semantics(tmp):
    (tmp / "app.py").write_text(CONFIGURED)
    result = run(PYTHON, "app.py", cwd=tmp, env=clean_env(OTEL_SERVICE_NAME="from-env"))
    assert result.returncode == 0, result.stderr
    (span,) = console_spans(result.stdout)
    assert span["name"] == "configured" and span["attributes"] == {"a": "1"}
    assert 'service.name="coded"' in result.stdout
    assert "error: unknown setting(s) servce_name" in result.stdout
