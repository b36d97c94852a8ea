"""Client spans for `requests`: every `Session.send`, which every requests call goes through.
Upstream's hooks: `request_hook(span, prepared_request)`, `response_hook(span,
prepared_request, response)`."""

from ferrotel.instrumentation import Instrumentor, excluded_pattern
from ferrotel.instrumentation.http_client import Options, traced_call


class RequestsInstrumentor(Instrumentor):
    name = "requests"

    def _instrument(self, **kwargs):
        import requests

        self._send = send = requests.Session.send
        excluded = excluded_pattern("requests")
        options = Options(kwargs)

        def traced_send(session, request, **kwargs):
            return traced_call(
                "ferrotel.instrumentation.requests",
                request.method or "GET",
                request.url,
                request.headers,
                lambda: send(session, request, **kwargs),
                lambda response: response.status_code,
                excluded,
                options,
                (request,),
            )

        requests.Session.send = traced_send

    def _uninstrument(self, **kwargs):
        import requests

        requests.Session.send = self._send
