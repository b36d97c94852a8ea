"""WSGI server spans. `OpenTelemetryMiddleware(app)` wraps any WSGI application; framework
instrumentations (Flask, Django) use `serve()` directly. The per-request work (environ,
parent context, span, attributes, the `start_response` handed to the app, status, the end
riding on the body's close) is one native call; this file only calls in."""

from sys import modules

from ferrotel import __version__, _native
from ferrotel.instrumentation import HTTP_DURATION_BUCKETS, compile_excluded


def _url(environ):
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    query = environ.get("QUERY_STRING")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}{'?' + query if query else ''}"


SCOPE = "ferrotel.instrumentation.wsgi"
_instruments = {}


def server_instruments(scope_name, meter_provider=None):
    """`http.server.request.duration`, `http.server.active_requests`, the request and response
    body sizes and the old conventions' `http.server.duration` (recorded only with
    OTEL_SEMCONV_STABILITY_OPT_IN=http/dup) of one instrumentation scope, made once."""
    key = (scope_name, id(meter_provider))
    instruments = _instruments.get(key)
    if instruments is None:
        from opentelemetry import metrics

        meter = metrics.get_meter(scope_name, __version__, meter_provider)
        instruments = _instruments[key] = (
            meter.create_histogram(
                "http.server.request.duration",
                unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
            ),
            meter.create_up_down_counter(
                "http.server.active_requests", unit="{request}", description="Number of active HTTP server requests."
            ),
            meter.create_histogram(
                "http.server.request.body.size", unit="By", description="Size of HTTP server request bodies."
            ),
            meter.create_histogram(
                "http.server.response.body.size", unit="By", description="Size of HTTP server response bodies."
            ),
            meter.create_histogram(
                "http.server.duration", unit="ms", description="Measures the duration of inbound HTTP requests."
            ),
        )
    return instruments


class Options:
    """One instrumentation's settings, as upstream's keyword arguments give them; the hooks
    in the WSGI middleware's shape: `request_hook(span, environ)`,
    `response_hook(span, environ, status, response_headers)`."""

    __slots__ = ("excluded", "tracer_provider", "meter_provider", "request_hook", "response_hook", "telemetry")

    def __init__(
        self,
        excluded_urls=None,
        tracer_provider=None,
        meter_provider=None,
        request_hook=None,
        response_hook=None,
        **_ignored,
    ):
        self.excluded = compile_excluded(excluded_urls)
        self.tracer_provider, self.meter_provider = tracer_provider, meter_provider
        self.request_hook = request_hook if callable(request_hook) else None
        self.response_hook = response_hook if callable(response_hook) else None
        self.telemetry = None

    def get_telemetry(self):
        """(tracer, the `server_instruments` tuple, whether the tracer is ferrotel's), made on
        the first request: the providers are configured by then."""
        if self.telemetry is None:
            from opentelemetry import trace

            tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=self.tracer_provider)
            native = isinstance(tracer, _native.Tracer)
            self.telemetry = (tracer, server_instruments(SCOPE, self.meter_provider), native)
        return self.telemetry


DEFAULT = Options()


def serve(environ, start_response, app, options=DEFAULT, werkzeug_route=False):
    """Calls the WSGI `app` inside a server span that ends when the response is closed.
    `werkzeug_route`: `app` is a werkzeug one (Flask); the rule it matched names the span."""
    excluded = options.excluded
    if excluded is not None and excluded.search(_url(environ)):
        return app(environ, start_response)
    tracer, instruments, native = options.telemetry or options.get_telemetry()
    if native:
        return _native.serve_wsgi(
            tracer,
            instruments,
            environ,
            start_response,
            app,
            options.request_hook,
            options.response_hook,
            werkzeug_route,
        )
    return _serve_other(environ, start_response, app, options, tracer, instruments, werkzeug_route)


def _note_werkzeug_route(request, environ):
    """The rule werkzeug matched (Flask's request leaves itself in the environ) as the route."""
    rule = getattr(environ.get("werkzeug.request"), "url_rule", None)
    if rule is not None:
        request.set_route(rule.rule)


def _serve_other(environ, start_response, app, options, tracer, instruments, werkzeug_route):
    """`serve` when another SDK's provider is installed: the span recorded through it."""
    from ferrotel.instrumentation._generic import ServerRequest

    request = ServerRequest(tracer, environ, False, *instruments[:2])
    environ["ferrotel.request"] = request
    response_hook = options.response_hook

    def traced_start_response(status, headers, *args):
        if werkzeug_route:
            _note_werkzeug_route(request, environ)
        request.response(status, headers)
        propagators = modules.get("opentelemetry.instrumentation.propagators")
        propagator = propagators and propagators._RESPONSE_PROPAGATOR
        if propagator is not None:
            _inject_response(propagator, request.span, headers)
        if response_hook is not None:
            response_hook(request.span, environ, status, headers)
        return start_response(status, headers, *args)

    try:
        if options.request_hook is not None:
            options.request_hook(request.span, environ)
        body = app(environ, traced_start_response)
    except BaseException as exc:
        if werkzeug_route:
            _note_werkzeug_route(request, environ)
        request.record_exception(exc)
        request.end()
        raise
    # The app's own object goes back to the server, the span's end riding on its close.
    return _native.hand_back_body(request, body)


def _inject_response(propagator, span, headers):
    """Upstream's response propagator (`traceresponse`), set with its
    `set_global_response_propagator`, writes the server span's context into the response
    headers (a WSGI list of text pairs)."""
    from opentelemetry import trace
    from opentelemetry.context import Context

    propagator.inject(headers, context=trace.set_span_in_context(span, Context()), setter=_HEADER_SETTER)


class _HeaderListSetter:
    def set(self, carrier, key, value):
        carrier.append((key, value))


_HEADER_SETTER = _HeaderListSetter()


class OpenTelemetryMiddleware:
    """Upstream's middleware shape: `OpenTelemetryMiddleware(wsgi, request_hook=...,
    response_hook=..., tracer_provider=..., meter_provider=...)`, plus `excluded_urls`."""

    def __init__(self, wsgi, request_hook=None, response_hook=None, tracer_provider=None, **kwargs):
        self.wsgi = wsgi
        self._options = Options(
            request_hook=request_hook, response_hook=response_hook, tracer_provider=tracer_provider, **kwargs
        )

    def __call__(self, environ, start_response):
        return serve(environ, start_response, self.wsgi, self._options)
