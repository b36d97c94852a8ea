"""Flask server spans: every request of every Flask app, named `{METHOD} {route}` with the
route template as `http.route`; exceptions Flask turns into 500s are recorded once."""

from ferrotel.instrumentation import Instrumentor, excluded_pattern
from ferrotel.instrumentation.wsgi import serve


class FlaskInstrumentor(Instrumentor):
    name = "flask"

    def _instrument(self, **kwargs):
        import flask

        app_class = flask.Flask
        self._originals = (app_class.wsgi_app, app_class.full_dispatch_request, app_class.handle_exception)
        wsgi_app, full_dispatch_request, handle_exception = self._originals
        excluded = excluded_pattern("flask")

        def traced_wsgi_app(app, environ, start_response):
            return serve(environ, start_response, lambda env, start: wsgi_app(app, env, start), excluded)

        def traced_full_dispatch_request(app):
            request = flask.request.environ.get("ferrotel.request")
            rule = flask.request.url_rule
            if request is not None and rule is not None:
                request.set_route(rule.rule)
            return full_dispatch_request(app)

        def traced_handle_exception(app, e):
            request = flask.request.environ.get("ferrotel.request")
            if request is not None:
                request.record_exception(e)
            return handle_exception(app, e)

        app_class.wsgi_app = traced_wsgi_app
        app_class.full_dispatch_request = traced_full_dispatch_request
        app_class.handle_exception = traced_handle_exception

    def _uninstrument(self, **kwargs):
        import flask

        flask.Flask.wsgi_app, flask.Flask.full_dispatch_request, flask.Flask.handle_exception = self._originals
