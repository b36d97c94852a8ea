"""Starlette server spans: every request of every app, named `{METHOD} {route}` with the
route template as `http.route`. FastAPI apps are Starlette apps and are covered the same
way, except where FastAPI traces itself (its native telemetry, which records through the
OpenTelemetry API and so through ferrotel's providers): one server span per request."""

from ferrotel.instrumentation import Instrumentor, excluded_pattern
from ferrotel.instrumentation.asgi import serve


class StarletteInstrumentor(Instrumentor):
    name = "starlette"

    def _instrument(self, **kwargs):
        from starlette.applications import Starlette

        self._original = call = Starlette.__call__
        excluded = excluded_pattern("starlette")

        async def traced_call(app, scope, receive, send):
            # A mounted app's request is already traced by the outer one; FastAPI with native
            # telemetry traces its own requests.
            if scope.get("ferrotel.asgi") or getattr(app, "_native_telemetry", None) is not None:
                return await call(app, scope, receive, send)
            scope["ferrotel.asgi"] = True
            return await serve(scope, receive, send, lambda s, r, w: call(app, s, r, w), excluded)

        Starlette.__call__ = traced_call

    def _uninstrument(self, **kwargs):
        from starlette.applications import Starlette

        Starlette.__call__ = self._original
