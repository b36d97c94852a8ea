"""Flask server spans: every request of every Flask app, named `{METHOD} {route}` with the
route template as `http.route`; exceptions Flask turns into 500s are recorded once.

Upstream's keyword arguments are taken by `instrument()` (every app) and `instrument_app(app)`
(one app): `request_hook(span, environ)`, `response_hook(span, status, response_headers)`,
`excluded_urls`, `tracer_provider`, `meter_provider`."""

from types import MethodType

from ferrotel._native import serve_wsgi
from ferrotel.instrumentation import Instrumentor, excluded_pattern, flag_apps, unflag_apps
from ferrotel.instrumentation.wsgi import Options, serve


def _options(kwargs):
    response_hook = kwargs.get("response_hook")
    if callable(response_hook):
        # Flask's hook has no environ; adapted once here, not per request.
        def wsgi_response_hook(span, environ, status, headers):
            response_hook(span, status, headers)

        kwargs = {**kwargs, "response_hook": wsgi_response_hook}
    options = Options(**kwargs)
    if kwargs.get("excluded_urls") is None:
        options.excluded = excluded_pattern("flask")
    return options


class FlaskInstrumentor(Instrumentor):
    name = "flask"

    # Whether every app is traced, rather than only those `instrument_app` named; the
    # options of every app.
    _every = False
    _default = None

    def _instrument(self, **kwargs):
        FlaskInstrumentor._every = True
        FlaskInstrumentor._default = _options(kwargs)
        _patch()

    def _uninstrument(self, **kwargs):
        FlaskInstrumentor._every = False
        _unpatch()

    @staticmethod
    def instrument_app(app, **kwargs):
        """Traces this app's requests, whether or not every Flask app is."""
        app.__dict__["_ferrotel_instrumented"] = True
        app.__dict__["_ferrotel_options"] = _options(kwargs)
        if FlaskInstrumentor._default is None:
            FlaskInstrumentor._default = _options({})
        _patch()

    @staticmethod
    def uninstrument_app(app):
        """Stops tracing this app's requests."""
        app.__dict__["_ferrotel_instrumented"] = False


_originals = None


def _patch():
    global _originals
    import flask

    if _originals is not None:
        return
    app_class = flask.Flask
    _originals = (app_class.wsgi_app, app_class.handle_exception)
    wsgi_app, handle_exception = _originals

    def traced_wsgi_app(app, environ, start_response):
        if not _traced(app):
            return wsgi_app(app, environ, start_response)
        options = app.__dict__.get("_ferrotel_options") or FlaskInstrumentor._default
        telemetry = options.telemetry
        # The route is the rule Flask's request matched, read natively from the environ.
        if telemetry is not None and telemetry[2] and options.excluded is None:
            # `serve`'s common case (ferrotel's tracer, no excluded URLs) without its frame.
            tracer, instruments, _ = telemetry
            return serve_wsgi(
                tracer,
                instruments,
                environ,
                start_response,
                MethodType(wsgi_app, app),
                options.request_hook,
                options.response_hook,
                True,
            )
        return serve(environ, start_response, MethodType(wsgi_app, app), options, True)

    def traced_handle_exception(app, e):
        request = flask.request.environ.get("ferrotel.request")
        if request is not None:
            request.record_exception(e)
        return handle_exception(app, e)

    app_class.wsgi_app = traced_wsgi_app
    app_class.handle_exception = traced_handle_exception
    flag_apps(app_class, _traced)


def _traced(app):
    """Every app is traced and this one was not opted out, or it was opted in."""
    choice = app.__dict__.get("_ferrotel_instrumented")
    return FlaskInstrumentor._every if choice is None else choice


def _unpatch():
    global _originals
    import flask

    if _originals is not None:
        flask.Flask.wsgi_app, flask.Flask.handle_exception = _originals
        _originals = None
        unflag_apps(flask.Flask)
