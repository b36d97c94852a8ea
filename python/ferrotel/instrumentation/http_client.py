"""Client spans for outgoing HTTP calls, shared by the requests, urllib3 and urllib
instrumentations. The span, its attributes and the propagation headers are native. A call
made inside another instrumented one (requests over urllib3) adds nothing: one client span
per request."""

import contextvars

from ferrotel import __version__, _native
from ferrotel.instrumentation import HTTP_DURATION_BUCKETS

inside_client_span = contextvars.ContextVar("ferrotel_inside_client_span", default=False)
_tracers = {}
_durations = {}
_old_durations = {}
_body_sizes = {}


def tracer(name, provider=None):
    """The instrumentation's tracer from `provider` (the global one when None), made once."""
    found = _tracers.get((name, provider))
    if found is None:
        from opentelemetry import trace

        found = _tracers[name, provider] = trace.get_tracer(name, __version__, tracer_provider=provider)
    return found


def duration(name, provider=None):
    """The instrumentation's `http.client.request.duration` histogram from `provider` (the
    global one when None), made once."""
    histogram = _durations.get((name, provider))
    if histogram is None:
        from opentelemetry import metrics

        histogram = _durations[name, provider] = metrics.get_meter(name, __version__, provider).create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
        )
    return histogram


def old_duration(name, provider=None):
    """The old conventions' `http.client.duration` (milliseconds) from `provider`, recorded
    only with OTEL_SEMCONV_STABILITY_OPT_IN=http/dup; made once."""
    histogram = _old_durations.get((name, provider))
    if histogram is None:
        from opentelemetry import metrics

        histogram = _old_durations[name, provider] = metrics.get_meter(name, __version__, provider).create_histogram(
            "http.client.duration", unit="ms", description="measures the duration of the outbound HTTP request"
        )
    return histogram


def body_sizes(name, provider=None):
    """The instrumentation's `http.client.request.body.size` and
    `http.client.response.body.size` histograms from `provider`, made once."""
    histograms = _body_sizes.get((name, provider))
    if histograms is None:
        from opentelemetry import metrics

        meter = metrics.get_meter(name, __version__, provider)
        histograms = _body_sizes[name, provider] = (
            meter.create_histogram(
                "http.client.request.body.size", unit="By", description="Size of HTTP client request bodies."
            ),
            meter.create_histogram(
                "http.client.response.body.size", unit="By", description="Size of HTTP client response bodies."
            ),
        )
    return histograms


def body_length(body):
    """A request body's size as upstream counts it: 0 without a body, its `len()` (bytes, or
    characters of a str), a BytesIO's buffer; None for a stream, whose size is unknown."""
    if body is None:
        return 0
    try:
        return len(body)
    except TypeError:
        getbuffer = getattr(body, "getbuffer", None)
        return getbuffer().nbytes if getbuffer is not None else None


def _version(response):
    """The HTTP version as Python's clients keep it (11 for 1.1): requests wraps urllib3's
    response as `.raw`."""
    version = getattr(getattr(response, "raw", response), "version", None)
    return version if isinstance(version, int) else None


class Options:
    """What an instrumentation was given (upstream's keyword arguments): the providers its
    tracer and duration histogram come from, and the hooks called with the span."""

    __slots__ = ("tracer_provider", "meter_provider", "request_hook", "response_hook")

    def __init__(self, kwargs):
        self.tracer_provider = kwargs.get("tracer_provider")
        self.meter_provider = kwargs.get("meter_provider")
        self.request_hook = kwargs.get("request_hook") if callable(kwargs.get("request_hook")) else None
        self.response_hook = kwargs.get("response_hook") if callable(kwargs.get("response_hook")) else None


DEFAULTS = Options({})


def traced_call(
    instrumentation,
    method,
    url,
    headers,
    call,
    status_of,
    excluded=None,
    options=DEFAULTS,
    hook_args=(),
    response_hook_args=None,
    body_size=False,
):
    """Runs `call()`, which sends the request with `headers`, inside a client span.
    `status_of(response)` gives the status code (the response's `headers` are read for
    capture); an exception carrying `code` (urllib's HTTPError) is a response, anything
    else a failure. The hooks of `options` get the span, then `hook_args` (the request hook)
    or `response_hook_args` (default: the same) and the response. `body_size`: the request
    body's size in bytes (None when it cannot be known) for the instrumentations that record
    the body sizes; False for those that do not."""
    if inside_client_span.get():
        return call()
    if excluded is not None and excluded.search(url):
        # An excluded call stays unrecorded all the way down (urllib3 beneath requests).
        quiet = inside_client_span.set(True)
        try:
            return call()
        finally:
            inside_client_span.reset(quiet)
    client_tracer = tracer(instrumentation, options.tracer_provider)
    histogram = duration(instrumentation, options.meter_provider)
    old_histogram = old_duration(instrumentation, options.meter_provider)
    sizes = None if body_size is False else (*body_sizes(instrumentation, options.meter_provider), body_size)
    request = _native.start_client_request(client_tracer, method, url, headers, histogram, old_histogram, sizes)
    if request is None:  # another SDK's provider is installed: record through it
        from ferrotel.instrumentation import _generic

        if _generic.suppressed(http=True):
            return call()
        request = _generic.ClientRequest(client_tracer, method, url, headers, histogram)
    hooked = options.request_hook is not None or options.response_hook is not None
    span = request.span if hooked else None
    inside = inside_client_span.set(True)
    try:
        if span is not None and options.request_hook is not None:
            options.request_hook(span, *hook_args)
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
        if span is not None and options.response_hook is not None:
            options.response_hook(span, *(hook_args if response_hook_args is None else response_hook_args), response)
        return response
    finally:
        inside_client_span.reset(inside)
        request.end()
        # A raised exception's traceback holds this frame: keeping the response in it would
        # tie a retried urllib3 response (and its connection) into a cycle.
        response = None
