"""Starlette and FastAPI server spans: every request and websocket connection of every app,
named `{METHOD} {route}` with the route template as `http.route`.

FastAPI traces itself through the OpenTelemetry API (its native telemetry). Where ferrotel's
`fastapi` instrumentation is on, ferrotel's span is the request's server span and FastAPI's
own operation spans (dependencies, endpoint, serialization) nest under it: FastAPI is told
the request is already traced, so it starts no second server span. Where it is off, FastAPI's
span stands alone and the Starlette instrumentation stays out of its way: one server span
per request either way. Where FastAPI's spans or metrics would go to another provider than
ferrotel's (the app gave FastAPI one of its own, `FastAPI(telemetry={"tracer_provider":
...})`), FastAPI's telemetry stays as it is without ferrotel: its server span, operation
spans and metrics go there, and ferrotel's spans within the request nest under its span."""

import sys
import weakref

from ferrotel import _native
from ferrotel.instrumentation import Instrumentor, excluded_pattern, flag_apps, unflag_apps
from ferrotel.instrumentation.asgi import Options, serve

# The patched-over `__call__`s and each instrumentation's options (excluded URLs, providers,
# hooks), module-level so the per-request path reads them without building anything.
_starlette_call = None
_starlette_options = None
_fastapi_call = None
_fastapi_options = None
# Whether every app is traced (the instrumentor is on), rather than only those
# `instrument_app` named.
_every = {"starlette": False, "fastapi": False}


def _wanted(app, name):
    """Every app is traced and this one was not opted out by `uninstrument_app`, or it was
    opted in by `instrument_app`."""
    choice = app.__dict__.get("_ferrotel_instrumented")
    return _every[name] if choice is None else choice


async def _traced_starlette_call(app, scope, receive, send):
    # A mounted app's request is already traced by the outer one; FastAPI's own span, when
    # ferrotel leaves FastAPI to it, is the server span (none for a request FastAPI excludes).
    if "ferrotel.request" in scope or "fastapi.telemetry" in scope or not _wanted(app, "starlette"):
        return await _starlette_call(app, scope, receive, send)
    return await serve(scope, receive, send, _starlette_call, app, _options_for(app, _starlette_options))


def _traced_by_the_starlette_patch(app):
    """Whether the Starlette patch traces `app`: not a FastAPI app with telemetry of its own,
    which the FastAPI patch traces, or FastAPI itself where that one is off."""
    if not _wanted(app, "starlette"):
        return False
    fastapi = sys.modules.get("fastapi")
    if fastapi is None or not isinstance(app, fastapi.FastAPI):
        return True
    try:
        from fastapi.telemetry import _api  # noqa: F401
    except ImportError:  # an older FastAPI: a Starlette app to the patch
        return True
    return False


def _options_for(app, default):
    """What `instrument_app` gave this app, else what the instrumentor was given."""
    return app.__dict__.get("_ferrotel_options") or default


def _options(kwargs, instrumentation):
    """Options from upstream's keyword arguments; the excluded URLs default to the
    instrumentation's variables."""
    options = Options(**kwargs)
    if kwargs.get("excluded_urls") is None:
        options.excluded = excluded_pattern(instrumentation)
    return options


def _patch_starlette():
    global _starlette_call
    from starlette.applications import Starlette

    if _starlette_call is None:
        _starlette_call = Starlette.__call__
        Starlette.__call__ = _traced_starlette_call
        flag_apps(Starlette, _traced_by_the_starlette_patch)


class StarletteInstrumentor(Instrumentor):
    name = "starlette"

    def _instrument(self, **kwargs):
        global _starlette_options
        _starlette_options = _options(kwargs, "starlette")
        _every["starlette"] = True
        _patch_starlette()

    def _uninstrument(self, **kwargs):
        global _starlette_call
        from starlette.applications import Starlette

        _every["starlette"] = False
        if _starlette_call is not None:
            Starlette.__call__ = _starlette_call
            _starlette_call = None
            unflag_apps(Starlette)

    @staticmethod
    def instrument_app(app, **kwargs):
        """Traces this app's requests, whether or not every Starlette app is, with upstream's
        keyword arguments (`excluded_urls`, the hooks, the providers)."""
        global _starlette_options
        app._ferrotel_instrumented = True
        app._ferrotel_options = _options(kwargs, "starlette")
        if _starlette_options is None:
            _starlette_options = _options({}, "starlette")
        _patch_starlette()

    @staticmethod
    def uninstrument_app(app):
        """Stops tracing this app's requests."""
        app._ferrotel_instrumented = False


# FastAPI's native telemetry, per app: its tracer (for the operation spans) and logger.
_fastapi_telemetry = weakref.WeakKeyDictionary()


def _request_telemetry(app, scope):
    """FastAPI's per-request telemetry object with no server span of its own, so its
    operation spans nest under ferrotel's and its log events (an unhandled exception, a
    failed validation) go where FastAPI sends them; None when the app turned both off."""
    config = getattr(app, "_telemetry", None)
    if not config:
        return None
    shared = _fastapi_telemetry.get(app)
    if shared is None:
        from fastapi import __version__
        from fastapi.telemetry import _api, _asgi
        from opentelemetry import _logs, trace

        # As FastAPI's own telemetry makes them: its scope's schema, and no logger for a
        # logger provider that is a no-op or not configured.
        schema_url = getattr(_asgi, "_SCHEMA_URL", None)
        unconfigured = getattr(_api, "_unconfigured", lambda provider: False)
        tracer = logger = None
        if config.get("tracing", True) and config.get("operation_spans", True):
            provider = config.get("tracer_provider") or trace.get_tracer_provider()
            tracer = provider.get_tracer("fastapi", __version__, schema_url=schema_url)
        logger_provider = config.get("logger_provider") or _logs.get_logger_provider()
        # A global logger provider not configured yet may be later: asked again next time.
        pending = config.get("logger_provider") is None and unconfigured(logger_provider)
        if config.get("logs", True) and not pending and not isinstance(logger_provider, _logs.NoOpLoggerProvider):
            logger = logger_provider.get_logger("fastapi", __version__, schema_url=schema_url)
        shared = (tracer, logger)
        if not (pending and config.get("logs", True)):
            _fastapi_telemetry[app] = shared
    tracer, logger = shared
    if tracer is None and logger is None:
        return None
    return _RequestTelemetry(
        span=None,
        span_method="WS" if scope["type"] == "websocket" else scope.get("method", "HTTP"),
        tracer=tracer,
        logger=logger,
        _mount_prefix=scope.get("app_root_path", scope.get("root_path", "")).rstrip("/"),
    )


def _telemetry_in_context(app, scope):
    """FastAPI's per-request telemetry for the server span's context to carry, so that its
    operation spans nest under ferrotel's; the scope's marker tells FastAPI the request is
    traced."""
    telemetry = scope["fastapi.telemetry"] = _request_telemetry(app, scope)
    return None if telemetry is None else (_REQUEST_TELEMETRY_KEY, telemetry)


def _left_to_fastapi(app, scope, options):
    """Whether FastAPI's own telemetry should handle this request as it does without
    ferrotel: the app gave FastAPI a tracer or meter provider of its own (not the one
    ferrotel's spans or metrics for it go to) for a signal FastAPI records, or its `exclude`
    leaves the request out (asked of HTTP and websocket scopes only, as FastAPI does)."""
    config = getattr(app, "_telemetry", None)
    if not config:
        return False
    exclude = config.get("exclude")
    if exclude is not None and scope["type"] in ("http", "websocket") and exclude(scope):
        return True
    tracer_provider, meter_provider = config.get("tracer_provider"), config.get("meter_provider")
    if tracer_provider is None and meter_provider is None:
        return False
    from opentelemetry import metrics, trace

    if (
        tracer_provider is not None
        and config.get("tracing", True)
        and tracer_provider is not (options.tracer_provider or trace.get_tracer_provider())
    ):
        return True
    return (
        meter_provider is not None
        and bool(config.get("metrics", True))
        and meter_provider is not (options.meter_provider or metrics.get_meter_provider())
    )


async def _traced_fastapi_call(app, scope, receive, send):
    if "ferrotel.request" in scope or "fastapi.telemetry" in scope or not _wanted(app, "fastapi"):
        return await _fastapi_call(app, scope, receive, send)
    options = _options_for(app, _fastapi_options)
    if _left_to_fastapi(app, scope, options):
        return await _fastapi_call(app, scope, receive, send)
    # An excluded request (no server span): FastAPI's own telemetry stays out too.
    scope["fastapi.telemetry"] = None
    try:
        return await serve(scope, receive, send, _fastapi_call, app, options, _telemetry_in_context)
    finally:
        telemetry = scope.pop("fastapi.telemetry", None)
        if telemetry is not None:
            # As FastAPI does once a request is over: contexts kept beyond it (a log
            # record's) must not hold on to the request, its body or its exceptions.
            telemetry.data = None
            telemetry._exceptions.clear()


_RequestTelemetry = _REQUEST_TELEMETRY_KEY = None

# The FastAPI modules that start operation spans through their own `_operation` name, and
# FastAPI's `_operation` while ferrotel's native one stands in for it.
_OPERATION_MODULES = ("fastapi.telemetry._api", "fastapi.routing", "fastapi.background")
_fastapi_operation = None


def _patch_operations(api):
    """FastAPI's operation spans made natively (same names, attributes and error rules) when
    the request traces through ferrotel's tracer; FastAPI's own context manager otherwise."""
    global _fastapi_operation
    try:
        operations = _native.FastapiOperations(
            api._REQUEST_TELEMETRY_KEY,
            api._RequestTelemetry,
            api._NO_OPERATION,
            api._traced_operation,
            (
                api.HTTPException,
                api.RequestValidationError,
                api.WebSocketException,
                api.WebSocketRequestValidationError,
            ),
            api.WebSocketDisconnect,
        )
    except AttributeError:  # another FastAPI's telemetry: left as it is
        return
    _fastapi_operation = api._operation
    for name in _OPERATION_MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "_operation", None) is _fastapi_operation:
            module._operation = operations


def _unpatch_operations():
    global _fastapi_operation
    if _fastapi_operation is None:
        return
    for name in _OPERATION_MODULES:
        module = sys.modules.get(name)
        if isinstance(getattr(module, "_operation", None), _native.FastapiOperations):
            module._operation = _fastapi_operation
    _fastapi_operation = None


def _patch_fastapi():
    """Wraps FastAPI's `__call__`; a FastAPI without native telemetry is a plain Starlette
    app, traced by the Starlette patch instead."""
    global _fastapi_call, _RequestTelemetry, _REQUEST_TELEMETRY_KEY
    if _fastapi_call is not None:
        return
    try:
        from fastapi.telemetry import _api
        from fastapi.telemetry._api import _REQUEST_TELEMETRY_KEY, _RequestTelemetry
    except ImportError:
        _patch_starlette()
        return
    import fastapi.background  # noqa: F401 (its `_operation` is patched)
    import fastapi.routing  # noqa: F401 (its `_operation` is patched)
    from fastapi import FastAPI

    _fastapi_call = FastAPI.__call__
    FastAPI.__call__ = _traced_fastapi_call
    flag_apps(FastAPI, lambda app: _wanted(app, "fastapi"))
    _patch_operations(_api)


class FastAPIInstrumentor(Instrumentor):
    """FastAPI apps' server spans (see the module's docstring); without native telemetry
    (older FastAPI), a FastAPI app is a Starlette app and is traced as one."""

    name = "fastapi"

    def _instrument(self, **kwargs):
        global _fastapi_options
        _fastapi_options = _options(kwargs, "fastapi")
        _every["fastapi"] = True
        _patch_fastapi()

    def _uninstrument(self, **kwargs):
        global _fastapi_call
        _every["fastapi"] = False
        if _fastapi_call is not None:
            from fastapi import FastAPI

            FastAPI.__call__ = _fastapi_call
            _fastapi_call = None
            unflag_apps(FastAPI)
            _unpatch_operations()

    @staticmethod
    def instrument_app(app, **kwargs):
        """Traces this app's requests, whether or not every FastAPI app is (upstream's
        `FastAPIInstrumentor.instrument_app`, with its keyword arguments)."""
        global _fastapi_options
        app._ferrotel_instrumented = True
        app._ferrotel_options = _options(kwargs, "fastapi")
        if _fastapi_options is None:
            _fastapi_options = _options({}, "fastapi")
        _patch_fastapi()

    @staticmethod
    def uninstrument_app(app):
        """Stops tracing this app's requests."""
        app._ferrotel_instrumented = False
