"""Client spans for outgoing HTTP calls, shared by the requests, urllib3 and urllib
instrumentations. The span, its attributes and the propagation headers are native. A call
made inside another instrumented one (requests over urllib3) adds nothing: one client span
per request."""

import contextvars

from ferrotel import __version__, _native
from ferrotel.instrumentation import HTTP_DURATION_BUCKETS

_inside_client_span = contextvars.ContextVar("ferrotel_inside_client_span", default=False)
_tracers = {}
_durations = {}
_old_durations = {}


def _tracer(name):
    tracer = _tracers.get(name)
    if tracer is None:
        from opentelemetry import trace

        tracer = _tracers[name] = trace.get_tracer(name, __version__)
    return tracer


def _duration(name):
    """The instrumentation's `http.client.request.duration` histogram, made once."""
    histogram = _durations.get(name)
    if histogram is None:
        from opentelemetry import metrics

        histogram = _durations[name] = metrics.get_meter(name, __version__).create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
        )
    return histogram


def _old_duration(name):
    """The old conventions' `http.client.duration` (milliseconds), recorded only with
    OTEL_SEMCONV_STABILITY_OPT_IN=http/dup; made once."""
    histogram = _old_durations.get(name)
    if histogram is None:
        from opentelemetry import metrics

        histogram = _old_durations[name] = metrics.get_meter(name, __version__).create_histogram(
            "http.client.duration", unit="ms", description="measures the duration of the outbound HTTP request"
        )
    return histogram


def _version(response):
    """The HTTP version as Python's clients keep it (11 for 1.1): requests wraps urllib3's
    response as `.raw`."""
    version = getattr(getattr(response, "raw", response), "version", None)
    return version if isinstance(version, int) else None


def traced_call(instrumentation, method, url, headers, call, status_of, excluded=None):
    """Runs `call()`, which sends the request with `headers`, inside a client span.
    `status_of(response)` gives the status code (the response's `headers` are read for
    capture); an exception carrying `code` (urllib's HTTPError) is a response, anything
    else a failure."""
    if _inside_client_span.get():
        return call()
    if excluded is not None and excluded.search(url):
        # An excluded call stays unrecorded all the way down (urllib3 beneath requests).
        quiet = _inside_client_span.set(True)
        try:
            return call()
        finally:
            _inside_client_span.reset(quiet)
    tracer, duration = _tracer(instrumentation), _duration(instrumentation)
    request = _native.start_client_request(tracer, method, url, headers, duration, _old_duration(instrumentation))
    if request is None:  # another SDK's provider is installed: record through it
        from ferrotel.instrumentation import _generic

        if _generic.suppressed(http=True):
            return call()
        request = _generic.ClientRequest(tracer, method, url, headers, duration)
    inside = _inside_client_span.set(True)
    try:
        response = call()
    except BaseException as exc:
        code = getattr(exc, "code", None)
        if isinstance(code, int):
            request.response(code, getattr(exc, "headers", None), _version(getattr(exc, "fp", None)))
        else:
            request.record_exception(exc)
        raise
    else:
        status = status_of(response)
        if isinstance(status, int):
            request.response(status, getattr(response, "headers", None), _version(response))
        return response
    finally:
        _inside_client_span.reset(inside)
        request.end()
        # A raised exception's traceback holds this frame: keeping the response in it would
        # tie a retried urllib3 response (and its connection) into a cycle.
        response = None
