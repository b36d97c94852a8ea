"""ASGI server spans. `OpenTelemetryMiddleware(app)` wraps any ASGI application; the
Starlette/FastAPI instrumentation uses `serve()` directly. As for WSGI, the per-request work
is native: this file only calls in around the app's coroutine."""

import re

from ferrotel import __version__, _native
from ferrotel.instrumentation.wsgi import server_instruments

SCOPE = "ferrotel.instrumentation.asgi"

_tracer = None


def _get_tracer():
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        _tracer = trace.get_tracer(SCOPE, __version__)
    return _tracer


def _url(scope):
    host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1")
    query = scope.get("query_string") or b""
    path = scope.get("root_path", "") + scope.get("path", "")
    return f"{scope.get('scheme', 'http')}://{host}{path}{'?' + query.decode('latin-1') if query else ''}"


async def serve(scope, receive, send, app, excluded=None):
    """Awaits the ASGI `app` for an HTTP request inside a server span; other connection
    types (websocket, lifespan) pass through untouched."""
    if scope.get("type") != "http" or (excluded is not None and excluded.search(_url(scope))):
        return await app(scope, receive, send)
    request = _native.start_asgi_request(_get_tracer(), scope, *server_instruments(SCOPE))
    if request is None:  # another SDK's provider is installed: record through it
        from ferrotel.instrumentation._generic import ServerRequest

        request = ServerRequest(_get_tracer(), scope, True, *server_instruments(SCOPE)[:2])

    async def traced_send(message):
        if message.get("type") == "http.response.start":
            request.response(message.get("status"), message.get("headers"))
        await send(message)

    try:
        return await app(scope, receive, traced_send)
    except BaseException as exc:
        request.record_exception(exc)
        raise
    finally:
        # Starlette's router leaves the matched route in the scope it was given.
        route = getattr(scope.get("route"), "path", None)
        if isinstance(route, str):
            request.set_route(route)
        request.end()


class OpenTelemetryMiddleware:
    def __init__(self, app, excluded_urls=None):
        self.app = app
        self._excluded = re.compile(excluded_urls) if isinstance(excluded_urls, str) else excluded_urls

    async def __call__(self, scope, receive, send):
        return await serve(scope, receive, send, self.app, self._excluded)
