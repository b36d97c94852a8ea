"""ASGI server spans. `OpenTelemetryMiddleware(app)` wraps any ASGI application; the
Starlette, FastAPI and Django instrumentations use `serve()` directly. As for WSGI, the
per-request work is native: the span's start (scope, headers, parent, metrics) is one call,
the `send` handed to the app is a native callable that looks at the response start only,
and the end (route from the scope, metrics) is one call. What an instrumentation was given
(excluded URLs, providers, hooks) is an `Options` built once, not per request.

Upstream's ASGI middleware makes an INTERNAL span per `send`/`receive` message; ferrotel
makes none (that would cost every request). Its hooks keep their signatures: the
`client_request_hook(span, scope, message)` and `client_response_hook(span, scope, message)`
are called with the server span for each message received and sent, and only when given."""

import functools

from ferrotel import __version__, _native
from ferrotel.instrumentation import compile_excluded
from ferrotel.instrumentation.wsgi import server_instruments

SCOPE = "ferrotel.instrumentation.asgi"


class Options:
    """One instrumentation's settings, as upstream's keyword arguments give them."""

    __slots__ = (
        "excluded",
        "tracer_provider",
        "meter_provider",
        "server_request_hook",
        "client_request_hook",
        "client_response_hook",
        "telemetry",
    )

    def __init__(
        self,
        excluded_urls=None,
        tracer_provider=None,
        meter_provider=None,
        server_request_hook=None,
        client_request_hook=None,
        client_response_hook=None,
        **_ignored,
    ):
        self.excluded = compile_excluded(excluded_urls)
        self.tracer_provider, self.meter_provider = tracer_provider, meter_provider
        self.server_request_hook = server_request_hook if callable(server_request_hook) else None
        self.client_request_hook = client_request_hook if callable(client_request_hook) else None
        self.client_response_hook = client_response_hook if callable(client_response_hook) else None
        self.telemetry = None

    def get_telemetry(self):
        """(tracer, the `server_instruments` tuple), made on the
        first request: the providers are configured by then."""
        if self.telemetry is None:
            from opentelemetry import trace

            tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=self.tracer_provider)
            self.telemetry = (tracer, server_instruments(SCOPE, self.meter_provider))
        return self.telemetry


DEFAULT = Options()


def _url(scope):
    host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1")
    query = scope.get("query_string") or b""
    path = scope.get("root_path", "") + scope.get("path", "")
    return f"{scope.get('scheme', 'http')}://{host}{path}{'?' + query.decode('latin-1') if query else ''}"


async def _receiving(request, hook, scope, receive):
    """The app's `receive` when messages are to be seen: the websocket message events, or
    the `client_request_hook`."""
    message = await receive()
    if hook is not None:
        hook(request.span, scope, message)
    else:
        request.message_event(message)
    return message


async def _sending(request, hook, scope, send, message):
    """The app's `send` (over the traced one) when a `client_response_hook` is given."""
    hook(request.span, scope, message)
    await send(message)


async def serve(scope, receive, send, call, app, options=DEFAULT, context_value=None):
    """Awaits `call(app, scope, receive, send)` for an HTTP request or a websocket connection
    inside a server span; lifespan and other scopes pass through untouched.
    `context_value(app, scope)`: a `(key, value)` for the request's context to carry too, or
    None (FastAPI's request telemetry)."""
    kind = scope.get("type")
    excluded = options.excluded
    if (kind != "http" and kind != "websocket") or (excluded is not None and excluded.search(_url(scope))):
        return await call(app, scope, receive, send)
    tracer, instruments = options.telemetry or options.get_telemetry()
    entry = context_value(app, scope) if context_value is not None else None
    request = _native.start_asgi_request(tracer, scope, instruments, entry)
    token = None
    if request is None:  # another SDK's provider is installed: record through it
        from ferrotel.instrumentation._generic import ServerRequest

        request = ServerRequest(tracer, scope, True, *instruments[:2])
        if entry is not None:
            from opentelemetry import context

            token = context.attach(context.set_value(*entry))
    scope["ferrotel.request"] = request
    try:
        traced_send = request.traced_send(send)
        if options.server_request_hook is not None:
            options.server_request_hook(request.span, scope)
        if options.client_request_hook is not None:
            receive = functools.partial(_receiving, request, options.client_request_hook, scope, receive)
        elif kind == "websocket" and _message_events():
            receive = functools.partial(_receiving, request, None, scope, receive)
        if options.client_response_hook is not None:
            traced_send = functools.partial(_sending, request, options.client_response_hook, scope, traced_send)
        return await call(app, scope, receive, traced_send)
    except BaseException as exc:
        request.record_exception(exc)
        raise
    finally:
        if token is not None:
            from opentelemetry import context

            context.detach(token)
        request.end_asgi(scope)


def inject_response(propagator, span, message):
    """Upstream's response propagator (`traceresponse`) writes the server span's context into
    the response start's headers; called natively only when one is set."""
    from opentelemetry import trace
    from opentelemetry.context import Context

    headers = message.get("headers")
    message["headers"] = headers = list(headers) if headers is not None else []
    propagator.inject(headers, context=trace.set_span_in_context(span, Context()), setter=_HEADER_SETTER)


class _HeaderListSetter:
    """Sets a header in an ASGI header list (byte pairs)."""

    def set(self, carrier, key, value):
        carrier.append((key.lower().encode("latin-1"), value.encode("latin-1")))


_HEADER_SETTER = _HeaderListSetter()

_events = None


def _message_events():
    global _events
    if _events is None:
        _events = _native.asgi_message_events()
    return _events


def _call(app, scope, receive, send):
    return app(scope, receive, send)


class OpenTelemetryMiddleware:
    """Upstream's middleware shape: `OpenTelemetryMiddleware(app, excluded_urls=...,
    server_request_hook=..., client_request_hook=..., client_response_hook=...,
    tracer_provider=..., meter_provider=...)`."""

    def __init__(self, app, excluded_urls=None, **kwargs):
        self.app = app
        self._options = Options(excluded_urls, **kwargs)

    async def __call__(self, scope, receive, send):
        return await serve(scope, receive, send, _call, self.app, self._options)
