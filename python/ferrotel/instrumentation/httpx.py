"""Client spans for httpx and httpx2 (its successor, the same API under another name): every
request sent through the library's own transports (`HTTPTransport.handle_request`,
`AsyncHTTPTransport.handle_async_request`), which every `Client` and `AsyncClient` uses
unless given another, and through any transport of a client passed to `instrument_client`
(`HTTPXClientInstrumentor`'s, or `HTTPX2ClientInstrumentor`'s for httpx2). The span, its attributes, the
propagation headers and the duration are native (the shared client layer of
`http_client`); this file reads the request and response and calls the hooks.

Hooks take upstream's arguments: `request_hook(span, RequestInfo)` before the request is
sent, `response_hook(span, RequestInfo, ResponseInfo)` once it is answered; an AsyncClient's
are awaited (`async_request_hook`, `async_response_hook`)."""

import importlib
import inspect
from typing import Any, NamedTuple

from ferrotel import _native
from ferrotel.instrumentation import Instrumentor, excluded_pattern, http_client

SCOPE = "ferrotel.instrumentation.httpx"

# httpx keeps the negotiated version as text; the client layer takes Python's integer form.
_VERSIONS = {"HTTP/1.0": 10, "HTTP/1.1": 11, "HTTP/2": 20, "HTTP/3": 30}


class RequestInfo(NamedTuple):
    method: bytes
    url: Any
    headers: Any
    stream: Any
    extensions: Any


class ResponseInfo(NamedTuple):
    status_code: int
    headers: Any
    stream: Any
    extensions: Any


class _Tracing:
    """What one instrumentation (global, or of one client) records with."""

    def __init__(self, tracer_provider=None, meter_provider=None, request_hook=None, response_hook=None):
        self.tracer_provider, self.meter_provider = tracer_provider, meter_provider
        self.request_hook, self.response_hook = request_hook, response_hook
        self.excluded = excluded_pattern("httpx")

    def start(self, request):
        """The client request of `request`, its span current; None when it goes untraced
        (excluded, or inside another client span)."""
        if http_client.inside_client_span.get():
            return None
        url = str(request.url)
        if self.excluded is not None and self.excluded.search(url):
            return None
        tracer = http_client.tracer(SCOPE, self.tracer_provider)
        duration = http_client.duration(SCOPE, self.meter_provider)
        old_duration = http_client.old_duration(SCOPE, self.meter_provider)
        started = _native.start_client_request(tracer, request.method, url, request.headers, duration, old_duration)
        if started is None:  # another SDK's provider: record through it
            from ferrotel.instrumentation import _generic

            if _generic.suppressed(http=True):
                return None
            started = _generic.ClientRequest(tracer, request.method, url, request.headers, duration)
        return started


def _request_info(request):
    return RequestInfo(request.method.encode(), request.url, request.headers, request.stream, request.extensions)


def _answered(client_request, response):
    client_request.response(response.status_code, response.headers, _VERSIONS.get(response.http_version))


def _response_info(response):
    return ResponseInfo(response.status_code, response.headers, response.stream, response.extensions)


def _send(tracing, send, transport, request):
    client_request = tracing.start(request)
    if client_request is None:
        return send(transport, request)
    span = client_request.span
    inside = http_client.inside_client_span.set(True)
    try:
        # The hooks' arguments are made only for hooks: most apps have none.
        hooked = span is not None and (tracing.request_hook is not None or tracing.response_hook is not None)
        info = _request_info(request) if hooked else None
        if hooked and tracing.request_hook is not None:
            tracing.request_hook(span, info)
        response = send(transport, request)
        _answered(client_request, response)
        if hooked and tracing.response_hook is not None:
            tracing.response_hook(span, info, _response_info(response))
        return response
    except BaseException as exc:
        client_request.record_exception(exc)
        raise
    finally:
        http_client.inside_client_span.reset(inside)
        client_request.end()


async def _send_async(tracing, send, transport, request):
    client_request = tracing.start(request)
    if client_request is None:
        return await send(transport, request)
    span = client_request.span
    inside = http_client.inside_client_span.set(True)
    try:
        # The hooks' arguments are made only for hooks: most apps have none.
        hooked = span is not None and (tracing.request_hook is not None or tracing.response_hook is not None)
        info = _request_info(request) if hooked else None
        if hooked and tracing.request_hook is not None:
            await tracing.request_hook(span, info)
        response = await send(transport, request)
        _answered(client_request, response)
        if hooked and tracing.response_hook is not None:
            await tracing.response_hook(span, info, _response_info(response))
        return response
    except BaseException as exc:
        client_request.record_exception(exc)
        raise
    finally:
        http_client.inside_client_span.reset(inside)
        client_request.end()


def _coroutine_function_or_none(hook):
    return hook if inspect.iscoroutinefunction(hook) else None


def _callable_or_none(hook):
    return hook if callable(hook) and not inspect.iscoroutinefunction(hook) else None


def _transports(client):
    """The transports a client sends through: its own and those mounted for some URLs."""
    transports = [getattr(client, "_transport", None)]
    transports += list(getattr(client, "_mounts", {}).values())
    return [t for t in transports if t is not None]


class HTTPXClientInstrumentor(Instrumentor):
    name = "httpx"
    # The library instrumented; excluded URLs are OTEL_PYTHON_HTTPX_EXCLUDED_URLS for both.
    _module = "httpx"

    def _instrument(self, **kwargs):
        httpx = importlib.import_module(self._module)

        sync = _Tracing(
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            _callable_or_none(kwargs.get("request_hook")),
            _callable_or_none(kwargs.get("response_hook")),
        )
        asynchronous = _Tracing(
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
            _coroutine_function_or_none(kwargs.get("async_request_hook")),
            _coroutine_function_or_none(kwargs.get("async_response_hook")),
        )
        self._handle_request = handle_request = httpx.HTTPTransport.handle_request
        self._handle_async_request = handle_async_request = httpx.AsyncHTTPTransport.handle_async_request

        def traced_handle_request(transport, request):
            return _send(sync, handle_request, transport, request)

        async def traced_handle_async_request(transport, request):
            return await _send_async(asynchronous, handle_async_request, transport, request)

        httpx.HTTPTransport.handle_request = traced_handle_request
        httpx.AsyncHTTPTransport.handle_async_request = traced_handle_async_request

    def _uninstrument(self, **kwargs):
        httpx = importlib.import_module(self._module)
        httpx.HTTPTransport.handle_request = self._handle_request
        httpx.AsyncHTTPTransport.handle_async_request = self._handle_async_request

    @staticmethod
    def instrument_client(client, tracer_provider=None, meter_provider=None, request_hook=None, response_hook=None):
        """Traces every request of `client` (a Client or an AsyncClient), whatever its
        transports, with these hooks; a client instrumented this way gets one span per
        request even when the library is instrumented globally too."""
        if getattr(client, "_is_instrumented_by_opentelemetry", False):
            return
        # By the client's own `send`, so an httpx client given to httpx2's instrumentor (or
        # the other way round) is told right too.
        is_async = inspect.iscoroutinefunction(type(client).send)
        pick = _coroutine_function_or_none if is_async else _callable_or_none
        tracing = _Tracing(tracer_provider, meter_provider, pick(request_hook), pick(response_hook))
        for transport in _transports(client):
            # The class's method, called with the transport: the instance's own attribute
            # below takes its place for this transport only.
            if is_async:
                send = type(transport).handle_async_request

                async def traced(request, send=send, transport=transport):
                    return await _send_async(tracing, send, transport, request)

                transport.handle_async_request = traced
            else:
                send = type(transport).handle_request

                def traced(request, send=send, transport=transport):
                    return _send(tracing, send, transport, request)

                transport.handle_request = traced
        client._is_instrumented_by_opentelemetry = True

    @staticmethod
    def uninstrument_client(client):
        """Undoes `instrument_client`: the client's transports send as their class does."""
        for transport in _transports(client):
            for method in ("handle_request", "handle_async_request"):
                transport.__dict__.pop(method, None)
        client._is_instrumented_by_opentelemetry = False


class HTTPX2ClientInstrumentor(HTTPXClientInstrumentor):
    name = "httpx2"
    _module = "httpx2"
