"""Propagators with the opentelemetry-api's TextMapPropagator interface; the parsing and
formatting are ferrotel's Rust (crates/ferrotel-propagation). Each class also serves as an
`opentelemetry_propagator` entry point, so `OTEL_PROPAGATORS=b3,jaeger,xray` works through
the API's own loader without other packages."""

from opentelemetry.propagators.textmap import TextMapPropagator

import ferrotel.trace  # noqa: F401 - binds the API types propagators build contexts from
from ferrotel._native import Propagator

TextMapPropagator.register(Propagator)


def _single(format_name):
    class _Format(Propagator):
        def __new__(cls):
            return super().__new__(cls, [format_name])

    return _Format


class TraceContextTextMapPropagator(_single("tracecontext")):
    """W3C Trace Context: traceparent and tracestate."""


class W3CBaggagePropagator(_single("baggage")):
    """W3C Baggage."""


class B3SingleFormat(_single("b3")):
    """Zipkin B3, single `b3` header (extracts the multi-header form too)."""


class B3MultiFormat(_single("b3multi")):
    """Zipkin B3, `x-b3-*` headers (extracts the single header too)."""


class JaegerPropagator(_single("jaeger")):
    """Jaeger `uber-trace-id`, and `uberctx-*` baggage."""


class AwsXRayPropagator(_single("xray")):
    """AWS X-Ray `X-Amzn-Trace-Id` (Root, Parent, Sampled)."""


def from_environment():
    """The propagator OTEL_PROPAGATORS asks for: ferrotel's formats natively, any other
    name as the opentelemetry_propagator entry point of that name, composed in order."""
    from ferrotel import _native

    propagators = _native.configured_propagators()
    if len(propagators) == 1:
        return propagators[0]
    from opentelemetry.propagators.composite import CompositePropagator

    return CompositePropagator(propagators)


class HeaderGetter:
    """A getter over `{lower-case name: [values]}`, for propagators of other packages that
    ask for headers in any case (`X-Amzn-Trace-Id`)."""

    def get(self, carrier, key):
        return carrier.get(key.lower())

    def keys(self, carrier):
        return list(carrier)


HEADER_GETTER = HeaderGetter()


__all__ = [
    "AwsXRayPropagator",
    "B3MultiFormat",
    "B3SingleFormat",
    "JaegerPropagator",
    "Propagator",
    "TraceContextTextMapPropagator",
    "W3CBaggagePropagator",
    "from_environment",
]
