"""Client spans for the standard library's `urllib.request` (every opener's `_open`), with
the body sizes as upstream's records them. Upstream's hooks: `request_hook(span, request)`,
`response_hook(span, request, response)`."""

from ferrotel.instrumentation import Instrumentor, excluded_pattern
from ferrotel.instrumentation.http_client import Options, body_length, traced_call


class URLLibInstrumentor(Instrumentor):
    name = "urllib"

    def _instrument(self, **kwargs):
        from urllib.request import OpenerDirector

        self._open = open_ = OpenerDirector._open
        excluded = excluded_pattern("urllib")
        options = Options(kwargs)

        def traced_open(opener, req, *args, **kwargs):
            headers = {}

            def call():
                for name, value in headers.items():
                    req.add_unredirected_header(name.capitalize(), value)
                return open_(opener, req, *args, **kwargs)

            return traced_call(
                "ferrotel.instrumentation.urllib",
                req.get_method(),
                req.full_url,
                headers,
                call,
                lambda response: getattr(response, "status", None),
                excluded,
                options,
                (req,),
                body_size=body_length(req.data),
            )

        OpenerDirector._open = traced_open

    def _uninstrument(self, **kwargs):
        from urllib.request import OpenerDirector

        OpenerDirector._open = self._open
