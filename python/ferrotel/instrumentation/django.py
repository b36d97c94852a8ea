"""Django server spans: every request through Django's WSGI handler (`runserver`, gunicorn,
any WSGI server) or its ASGI handler (uvicorn, hypercorn, any ASGI server), named
`{METHOD} {route}` from the resolved URL pattern; exceptions Django turns into 500
responses are recorded once.

Django's handlers are patched rather than MIDDLEWARE edited: settings may not be configured
when `django` is first imported, and the handlers see every request whatever the settings."""

from types import MethodType

from ferrotel import _loader
from ferrotel.instrumentation import Instrumentor, asgi, compile_excluded, excluded_pattern, wsgi


def _request_of(django_request):
    scope = getattr(django_request, "scope", None)  # an ASGIRequest
    if scope is not None:
        return scope.get("ferrotel.request")
    environ = getattr(django_request, "environ", None) or getattr(django_request, "META", {})
    return environ.get("ferrotel.request")


_asgi_call = None
_asgi_options = None


async def _traced_asgi_call(handler, scope, receive, send):
    # Django's handler serves HTTP only (it refuses websockets): other scopes go through.
    if scope.get("type") != "http":
        return await _asgi_call(handler, scope, receive, send)
    return await asgi.serve(scope, receive, send, _asgi_call, handler, _asgi_options)


class DjangoInstrumentor(Instrumentor):
    name = "django"

    def _instrument(self, **kwargs):
        from ferrotel import _native

        if not _native.django_instrument():  # OTEL_PYTHON_DJANGO_INSTRUMENT=false
            return
        self._originals = {}
        # Upstream's keyword arguments and OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS: Django's
        # request and response are seen (one more patch) only when something asks for them.
        self._request_hook = kwargs.get("request_hook") if callable(kwargs.get("request_hook")) else None
        self._response_hook = kwargs.get("response_hook") if callable(kwargs.get("response_hook")) else None
        self._traced_attributes = tuple(_native.django_traced_request_attrs())
        self._excluded = compile_excluded(kwargs.get("excluded_urls")) or excluded_pattern("django")
        self._providers = {k: kwargs.get(k) for k in ("tracer_provider", "meter_provider")}
        if self._request_hook or self._response_hook or self._traced_attributes:
            _loader.when_imported("django.core.handlers.base", self._patch_get_response)
        _loader.when_imported("django.core.handlers.wsgi", self._patch_handler)
        _loader.when_imported("django.core.handlers.asgi", self._patch_asgi_handler)
        _loader.when_imported("django.core.handlers.base", self._patch_resolver)
        _loader.when_imported("django.core.handlers.exception", self._patch_exceptions)

    def _patch_handler(self):
        from django.core.handlers.wsgi import WSGIHandler

        self._originals[(WSGIHandler, "__call__")] = call = WSGIHandler.__call__
        options = wsgi.Options(**self._providers)
        options.excluded = self._excluded

        def traced_call(handler, environ, start_response):
            return wsgi.serve(environ, start_response, MethodType(call, handler), options)

        WSGIHandler.__call__ = traced_call

    def _patch_asgi_handler(self):
        global _asgi_call, _asgi_options
        from django.core.handlers.asgi import ASGIHandler

        _asgi_options = asgi.Options(**self._providers)
        _asgi_options.excluded = self._excluded
        self._originals[(ASGIHandler, "__call__")] = _asgi_call = ASGIHandler.__call__
        ASGIHandler.__call__ = _traced_asgi_call

    def _patch_get_response(self):
        from django.core.handlers.base import BaseHandler

        request_hook, response_hook, attributes = self._request_hook, self._response_hook, self._traced_attributes

        def before(request):
            traced = _request_of(request)
            if traced is None:
                return None
            span = traced.span
            for name in attributes:
                value = getattr(request, name, None)
                if value is not None:
                    span.set_attribute(name, str(value))
            if request_hook is not None:
                request_hook(span, request)
            return span

        def after(span, request, response):
            if span is not None and response_hook is not None:
                response_hook(span, request, response)
            return response

        self._originals[(BaseHandler, "get_response")] = get_response = BaseHandler.get_response
        self._originals[(BaseHandler, "get_response_async")] = get_response_async = BaseHandler.get_response_async

        def traced_get_response(handler, request):
            span = before(request)
            return after(span, request, get_response(handler, request))

        async def traced_get_response_async(handler, request):
            span = before(request)
            return after(span, request, await get_response_async(handler, request))

        BaseHandler.get_response = traced_get_response
        BaseHandler.get_response_async = traced_get_response_async

    def _patch_resolver(self):
        from django.core.handlers.base import BaseHandler

        if not hasattr(BaseHandler, "resolve_request"):  # Django < 3.1 resolves elsewhere
            return
        self._originals[(BaseHandler, "resolve_request")] = resolve = BaseHandler.resolve_request

        def traced_resolve(handler, request):
            match = resolve(handler, request)
            traced = _request_of(request)
            route = getattr(match, "route", None)
            if traced is not None and route:
                traced.set_route(route if route.startswith("/") else "/" + route)
            return match

        BaseHandler.resolve_request = traced_resolve

    def _patch_exceptions(self):
        from django.core.handlers import exception

        self._originals[(exception, "response_for_exception")] = respond = exception.response_for_exception

        def traced_response_for_exception(request, exc):
            from django.core.exceptions import PermissionDenied, SuspiciousOperation
            from django.http import Http404

            traced = _request_of(request)
            if traced is not None and not isinstance(exc, (Http404, PermissionDenied, SuspiciousOperation)):
                traced.record_exception(exc)
            return respond(request, exc)

        exception.response_for_exception = traced_response_for_exception

    def _uninstrument(self, **kwargs):
        for (owner, name), original in getattr(self, "_originals", {}).items():
            setattr(owner, name, original)
        self._originals = {}
