"""Server spans for `aiohttp.web` apps: one SERVER span per request an `Application` handles,
around its `_handle` (routing, every middleware and the handler), so each app made before or
after instrumentation is covered and sub-applications add no second span. The request is
handed to the native server layer as the ASGI-shaped facts it reads (method, path, query,
raw headers, the socket's two ends), so the span, its parent, the captured headers, client
address, user agent, status rules and the server metrics are exactly the ASGI path's; the
route template aiohttp matched (`resource.canonical`) becomes `http.route` and names the span.

An `HTTPException` raised by the app is its response (its status recorded; a 5xx also gets an
`exception` event, as upstream's); any other exception is recorded as the app's failure.
Excluded URLs: OTEL_PYTHON_AIOHTTP_SERVER_EXCLUDED_URLS, else OTEL_PYTHON_EXCLUDED_URLS,
matched against the path (as upstream's) and the full URL (as ferrotel's other servers)."""

import functools

from ferrotel import __version__, _native
from ferrotel.instrumentation import Instrumentor, excluded_pattern
from ferrotel.instrumentation.wsgi import server_instruments

SCOPE = "ferrotel.instrumentation.aiohttp_server"


class _Options:
    """One instrumentation's providers and excluded URLs; the tracer and instruments are
    made at the first request, when the providers are configured."""

    __slots__ = ("tracer_provider", "meter_provider", "excluded", "telemetry", "http_exception")

    def __init__(self, tracer_provider=None, meter_provider=None):
        from aiohttp import web

        self.http_exception = web.HTTPException
        self.tracer_provider, self.meter_provider = tracer_provider, meter_provider
        self.excluded = excluded_pattern("aiohttp_server")
        self.telemetry = None

    def get_telemetry(self):
        if self.telemetry is None:
            from opentelemetry import trace

            tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=self.tracer_provider)
            self.telemetry = (tracer, server_instruments(SCOPE, self.meter_provider))
        return self.telemetry


def _address(transport, name):
    """`(host, port)` of one end of the request's socket (IPv6 adds flow and scope ids;
    a Unix socket has none)."""
    info = transport.get_extra_info(name) if transport is not None else None
    return info[:2] if isinstance(info, tuple) and len(info) >= 2 else None


def _scope(request):
    """The request as the native layer reads an ASGI `http` scope."""
    version = request.version
    transport = request.transport
    return {
        "type": "http",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "query_string": request.rel_url.raw_query_string.encode("latin-1", "replace"),
        "headers": request.raw_headers,
        "http_version": f"{version.major}.{version.minor}",
        "client": _address(transport, "peername"),
        "server": _address(transport, "sockname"),
    }


def _response_headers(response):
    """The response's headers, with the body's length when aiohttp has yet to write it as
    `Content-Length` (a `web.Response` writes it when it is sent, after the handler)."""
    headers = response.headers
    if "Content-Length" in headers:
        return headers
    length = response.content_length
    if length is None:
        return headers
    return (*headers.items(), ("content-length", str(length)))


def _route(request):
    """The template of the resource aiohttp matched (`/users/{id}`); None when nothing
    matched (a 404), the resource has no template, or the router raised before matching
    (aiohttp then asserts on `match_info`: that must not replace the app's answer)."""
    try:
        return request.match_info.route.resource.canonical
    except (AttributeError, AssertionError):
        return None


async def _serve(options, handle, app, request):
    excluded = options.excluded
    if excluded is not None and (excluded.search(request.path) or excluded.search(str(request.url))):
        return await handle(app, request)
    tracer, instruments = options.telemetry or options.get_telemetry()
    scope = _scope(request)
    served = _native.start_asgi_request(tracer, scope, instruments)
    if served is None:  # another SDK's provider is installed: record through it
        from ferrotel.instrumentation._generic import ServerRequest

        served = ServerRequest(tracer, scope, True, *instruments[:2])
    try:
        response = await handle(app, request)
    except options.http_exception as exc:
        served.response(exc.status, exc.headers)
        if exc.status >= 500:
            served.span.record_exception(exc)
        raise
    except BaseException as exc:
        served.record_exception(exc)
        raise
    else:
        served.response(response.status, _response_headers(response))
        return response
    finally:
        route = _route(request)
        if route:
            served.set_route(route)
        served.end()


class AioHttpServerInstrumentor(Instrumentor):
    name = "aiohttp-server"

    def _instrument(self, **kwargs):
        from aiohttp import web_app

        options = _Options(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._handle = handle = web_app.Application._handle

        @functools.wraps(handle)
        async def _handle(app, request):
            return await _serve(options, handle, app, request)

        web_app.Application._handle = _handle

    def _uninstrument(self, **kwargs):
        from aiohttp import web_app

        web_app.Application._handle = self._handle
