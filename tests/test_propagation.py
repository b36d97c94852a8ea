"""Propagation through the opentelemetry-api: ferrotel's propagators as user code and
contrib instrumentors call them, and between two real processes over HTTP."""

import signal
import subprocess
import textwrap
import time

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator
from support.console import console_spans
from support.processes import FERROTEL, PYTHON, clean_env, default_signals, free_port, run, wait_http

from ferrotel.propagate import (
    B3MultiFormat,
    B3SingleFormat,
    JaegerPropagator,
    Propagator,
    TraceContextTextMapPropagator,
    W3CBaggagePropagator,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID, SPAN_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331


def span_context(ctx):
    return trace.get_current_span(ctx).get_span_context()


def test_they_are_text_map_propagators_with_fields():
    for cls in (TraceContextTextMapPropagator, W3CBaggagePropagator, B3SingleFormat, B3MultiFormat, JaegerPropagator):
        assert isinstance(cls(), TextMapPropagator), cls
    assert TraceContextTextMapPropagator().fields == {"traceparent", "tracestate"}
    assert Propagator(["tracecontext", "baggage"]).fields == {"traceparent", "tracestate", "baggage"}
    with pytest.raises(ValueError, match="unknown propagator"):
        Propagator(["nope"])


@pytest.mark.parametrize(
    ("carrier", "valid"),
    [
        ({"traceparent": TRACEPARENT}, True),
        ({"traceparent": TRACEPARENT.upper()}, False),
        ({"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"}, False),
        ({"traceparent": "ff" + TRACEPARENT[2:]}, False),
        ({"traceparent": "garbage"}, False),
        ({"traceparent": ["a", "b"]}, False),
        ({}, False),
    ],
)
def test_tracecontext_extract_table(carrier, valid):
    ctx = TraceContextTextMapPropagator().extract(carrier)
    sc = span_context(ctx)
    assert sc.is_valid == valid
    if valid:
        assert (sc.trace_id, sc.span_id, sc.is_remote, sc.trace_flags.sampled) == (TRACE_ID, SPAN_ID, True, True)


def test_round_trips_keep_tracestate_and_baggage():
    carrier = {
        "traceparent": TRACEPARENT,
        "tracestate": "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE",
        "baggage": "a=1,b=x%20y",
    }
    both = Propagator(["tracecontext", "baggage"])
    ctx = both.extract(carrier)
    assert span_context(ctx).trace_state.to_header() == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    assert baggage.get_all(ctx) == {"a": "1", "b": "x y"}
    out = {}
    both.inject(out, ctx)
    assert out == {
        "traceparent": TRACEPARENT,
        "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        "baggage": "a=1,b=x%20y",
    }


def test_extract_defaults_to_the_root_context_and_keeps_a_given_one():
    token = context.attach(baggage.set_baggage("current", "1"))
    try:
        ctx = W3CBaggagePropagator().extract({"baggage": "k=v"})
        assert baggage.get_all(ctx) == {"k": "v"}, "extract starts from the root context, not the current one"
        given = baggage.set_baggage("given", "2", context.Context())
        assert baggage.get_all(W3CBaggagePropagator().extract({"baggage": "k=v"}, given)) == {"given": "2", "k": "v"}
        assert W3CBaggagePropagator().extract({}, given) is given
    finally:
        context.detach(token)


def test_inject_uses_the_current_span_from_ferrotels_sdk():
    from ferrotel.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    for propagator, header in [
        (TraceContextTextMapPropagator(), "traceparent"),
        (B3SingleFormat(), "b3"),
        (B3MultiFormat(), "x-b3-traceid"),
        (JaegerPropagator(), "uber-trace-id"),
    ]:
        with tracer.start_as_current_span("client") as span:
            carrier = {}
            propagator.inject(carrier)
            back = span_context(propagator.extract(carrier))
        assert header in carrier, propagator
        assert (back.trace_id, back.span_id) == (span.get_span_context().trace_id, span.get_span_context().span_id)
    nothing = {}
    TraceContextTextMapPropagator().inject(nothing)  # no current span: nothing written
    assert nothing == {}


def test_a_child_keeps_the_current_grammar_tracestate_and_the_random_flag():
    from ferrotel.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    propagator = TraceContextTextMapPropagator()
    state = "foo@@bar=1,foo=1,foo=1,1@v=x"
    incoming = {"traceparent": TRACEPARENT[:-2] + "03", "tracestate": state}
    with tracer.start_as_current_span("server", context=propagator.extract(incoming)) as span:
        carrier = {}
        propagator.inject(carrier)
    assert carrier == {
        "traceparent": f"00-{TRACE_ID:032x}-{span.get_span_context().span_id:016x}-03",
        "tracestate": state,
    }
    # A trace started here keeps Level 1 flags: ferrotel does not set random-trace-id on its own
    # traces (upstream 1.45.1 does).
    with tracer.start_as_current_span("root"):
        carrier = {}
        propagator.inject(carrier)
    assert carrier["traceparent"].endswith("-01")


class ListHeaders(Getter, Setter):
    """A non-dict carrier: a list of (name, value) pairs, matched case-insensitively."""

    def get(self, carrier, key):
        values = [v for k, v in carrier if k.lower() == key]
        return values or None

    def keys(self, carrier):
        return [k for k, _ in carrier]

    def set(self, carrier, key, value):
        carrier.append((key, value))


def test_custom_getter_and_setter():
    headers = [
        ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
        ("X-B3-SpanId", "a2fb4a1d1a96d312"),
        ("X-B3-Sampled", "1"),
    ]
    ctx = B3MultiFormat().extract(headers, getter=ListHeaders())
    assert span_context(ctx).trace_id == 0x463AC35C9F6413AD48485A3953BB6124
    out = []
    JaegerPropagator().inject(out, baggage.set_baggage("tenant", "acme", ctx), setter=ListHeaders())
    assert out == [
        ("uber-trace-id", "463ac35c9f6413ad48485a3953bb6124:a2fb4a1d1a96d312:0:01"),
        ("uberctx-tenant", "acme"),
    ]


class Exploding(Getter):
    def get(self, carrier, key):
        raise RuntimeError("broken carrier")

    def keys(self, carrier):
        raise RuntimeError("broken carrier")


def test_a_failing_getter_or_hostile_headers_never_raise():
    assert not span_context(Propagator(["tracecontext", "jaeger"]).extract({}, getter=Exploding())).is_valid
    hostile = {"traceparent": "\x00" * 100_000, "tracestate": "a=1," * 10_000, "baggage": "k=%zz" * 3000}
    ctx = Propagator(["tracecontext", "baggage"]).extract(hostile)
    assert not span_context(ctx).is_valid and baggage.get_all(ctx) == {}


GLOBAL = textwrap.dedent(
    """
    from opentelemetry import propagate, trace
    print(type(propagate.get_global_textmap()).__name__)
    with trace.get_tracer("t").start_as_current_span("s"):
        carrier = {}
        propagate.inject(carrier)
    print(sorted(carrier))
    """
)


def test_otel_propagators_sets_the_global_propagator(tmp):
    (tmp / "app.py").write_text(GLOBAL)

    result = run(
        FERROTEL,
        "instrument",
        "--propagators",
        "b3multi,jaeger",
        "--traces_exporter",
        "none",
        PYTHON,
        "app.py",
        cwd=tmp,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == [
        "Propagator",
        "['uber-trace-id', 'x-b3-sampled', 'x-b3-spanid', 'x-b3-traceid']",
    ]


SERVER = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from opentelemetry import baggage

    app = Flask(__name__)

    @app.route("/whoami")
    def whoami():
        return baggage.get_baggage("user") or "-"

    app.run(port=int(sys.argv[1]))
    """
)

CLIENT = textwrap.dedent(
    """
    import sys
    import requests
    from opentelemetry import baggage, context

    context.attach(baggage.set_baggage("user", "alice"))
    print("server says", requests.get(f"http://127.0.0.1:{sys.argv[1]}/whoami", timeout=5).text)
    """
)


@pytest.mark.parametrize(
    "propagators", ["tracecontext,baggage", "b3,baggage", "b3multi,baggage", "jaeger", "xray,baggage"]
)
def test_two_processes_share_one_trace_and_baggage(contrib_python, tmp, propagators):
    (tmp / "server.py").write_text(SERVER)
    (tmp / "client.py").write_text(CLIENT)
    launcher = contrib_python.parent / "ferrotel"
    flags = ["--traces_exporter", "console", "--propagators", propagators]
    port = free_port()
    server = subprocess.Popen(
        [str(launcher), "instrument", *flags, str(contrib_python), "server.py", str(port)],
        cwd=tmp,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,  # stopped by SIGINT, which a background job ignores
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/whoami")
        client = run(launcher, "instrument", *flags, contrib_python, "client.py", port, cwd=tmp)
        assert "server says alice" in client.stdout, client.stderr
        time.sleep(0.5)  # the server span ends when the server closes the response
    finally:
        server.send_signal(signal.SIGINT)
        server_out, server_err = server.communicate(timeout=30)
    (client_span,) = [s for s in console_spans(client.stdout) if s["kind"] == "CLIENT"]
    server_spans = [s for s in console_spans(server_out) if s["kind"] == "SERVER"]
    (served,) = [s for s in server_spans if s["trace_id"] == client_span["trace_id"]]
    assert served["parent"] == client_span["span_id"], (propagators, server_err[-2000:])
