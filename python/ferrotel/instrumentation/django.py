"""Django server spans: every request through Django's WSGI handler (`runserver`, gunicorn,
any WSGI server), named `{METHOD} {route}` from the resolved URL pattern; exceptions Django
turns into 500 responses are recorded once.

Django's handler is patched rather than MIDDLEWARE edited: settings may not be configured
when `django` is first imported, and the handler sees every request whatever the settings."""

from ferrotel import _loader
from ferrotel.instrumentation import Instrumentor, excluded_pattern
from ferrotel.instrumentation.wsgi import serve


def _request_of(django_request):
    environ = getattr(django_request, "environ", None) or getattr(django_request, "META", {})
    return environ.get("ferrotel.request")


class DjangoInstrumentor(Instrumentor):
    name = "django"

    def _instrument(self, **kwargs):
        from ferrotel import _native

        if not _native.django_instrument():  # OTEL_PYTHON_DJANGO_INSTRUMENT=false
            return
        self._originals = {}
        _loader.when_imported("django.core.handlers.wsgi", self._patch_handler)
        _loader.when_imported("django.core.handlers.base", self._patch_resolver)
        _loader.when_imported("django.core.handlers.exception", self._patch_exceptions)

    def _patch_handler(self):
        from django.core.handlers.wsgi import WSGIHandler

        self._originals[(WSGIHandler, "__call__")] = call = WSGIHandler.__call__
        excluded = excluded_pattern("django")

        def traced_call(handler, environ, start_response):
            return serve(environ, start_response, lambda env, start: call(handler, env, start), excluded)

        WSGIHandler.__call__ = traced_call

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
