"""WSGI server spans. `OpenTelemetryMiddleware(app)` wraps any WSGI application; framework
instrumentations (Flask, Django) use `serve()` directly. The per-request work (environ,
parent context, span, attributes, status, the end riding on the body's close) is native;
this file only calls in."""

import re

from ferrotel import __version__, _native
from ferrotel.instrumentation import HTTP_DURATION_BUCKETS


def _url(environ):
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    query = environ.get("QUERY_STRING")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{path}{'?' + query if query else ''}"


_tracer = None
_instruments = {}


def _get_tracer():
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        _tracer = trace.get_tracer("ferrotel.instrumentation.wsgi", __version__)
    return _tracer


def server_instruments(scope_name):
    """`http.server.request.duration`, `http.server.active_requests` and the old conventions'
    `http.server.duration` (recorded only with OTEL_SEMCONV_STABILITY_OPT_IN=http/dup) of one
    instrumentation scope, made once."""
    instruments = _instruments.get(scope_name)
    if instruments is None:
        from opentelemetry import metrics

        meter = metrics.get_meter(scope_name, __version__)
        instruments = _instruments[scope_name] = (
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
                "http.server.duration", unit="ms", description="Measures the duration of inbound HTTP requests."
            ),
        )
    return instruments


_telemetry = None


def serve(environ, start_response, app, excluded=None):
    """Calls the WSGI `app` inside a server span that ends when the response is closed."""
    global _telemetry
    if excluded is not None and excluded.search(_url(environ)):
        return app(environ, start_response)
    if _telemetry is None:
        _telemetry = (_get_tracer(), *server_instruments("ferrotel.instrumentation.wsgi"))
    request = _native.start_wsgi_request(_telemetry[0], environ, *_telemetry[1:])
    if request is None:  # another SDK's provider is installed: record through it
        from ferrotel.instrumentation._generic import ServerRequest

        request = ServerRequest(_telemetry[0], environ, False, _telemetry[1], _telemetry[2])
    environ["ferrotel.request"] = request

    def traced_start_response(status, headers, *args):
        request.response(status, headers)
        return start_response(status, headers, *args)

    try:
        body = app(environ, traced_start_response)
    except BaseException as exc:
        request.record_exception(exc)
        request.end()
        raise
    # The app's own object goes back to the server, the span's end riding on its close.
    return _native.hand_back_body(request, body)


class OpenTelemetryMiddleware:
    def __init__(self, wsgi, excluded_urls=None):
        self.wsgi = wsgi
        self._excluded = re.compile(excluded_urls) if isinstance(excluded_urls, str) else excluded_urls

    def __call__(self, environ, start_response):
        return serve(environ, start_response, self.wsgi, self._excluded)
