"""Client spans for aiohttp: one CLIENT span per `ClientSession` request, redirects included,
from the request's start to its response's headers (or its failure). aiohttp calls the
session's trace configs at those points with the URL, the headers it will send and the
response, so the span rides on a `TraceConfig`: once aiohttp is instrumented every new
session gets ferrotel's (one config shared by all of them), and `create_trace_config()` gives
one to an app that instruments its sessions itself. The span, its attributes, the
propagation headers written into the request and the duration are native (the shared client
layer of `http_client`).

Upstream's keyword arguments: `url_filter(url)` gives the text recorded as `url.full`,
`request_hook(span, TraceRequestStartParams)` is called once the span starts,
`response_hook(span, TraceRequestEndParams | TraceRequestExceptionParams)` before it ends,
`trace_configs` are added to every new session beside ferrotel's."""

import functools

from ferrotel import _native
from ferrotel.instrumentation import Instrumentor, excluded_pattern, http_client

SCOPE = "ferrotel.instrumentation.aiohttp_client"

# Marks ferrotel's trace configs, under upstream's name: `uninstrument_session` removes
# configs so marked, whichever instrumentation made them.
_MARK = "_is_instrumented_by_opentelemetry"


class _RequestContext:
    """What aiohttp keeps for one request and one trace config: the app's
    `trace_request_ctx`, and the client request once started."""

    __slots__ = ("trace_request_ctx", "client_request")

    def __init__(self, trace_request_ctx=None, **_ignored):
        self.trace_request_ctx = trace_request_ctx
        self.client_request = None


def _version(response):
    """aiohttp's `HttpVersion(1, 1)` in the client layer's integer form (11)."""
    version = getattr(response, "version", None)
    return None if version is None else version.major * 10 + version.minor


class _Tracing:
    """What one trace config records with: providers, hooks, URL filter, excluded URLs."""

    def __init__(
        self, url_filter=None, request_hook=None, response_hook=None, tracer_provider=None, meter_provider=None
    ):
        self.url_filter = url_filter if callable(url_filter) else None
        self.request_hook = request_hook if callable(request_hook) else None
        self.response_hook = response_hook if callable(response_hook) else None
        self.tracer_provider, self.meter_provider = tracer_provider, meter_provider
        self.excluded = excluded_pattern("aiohttp_client")

    async def on_request_start(self, _session, context, params):
        url = str(params.url)
        if self.excluded is not None and self.excluded.search(url):
            return
        if self.url_filter is not None:
            url = str(self.url_filter(params.url))
        tracer = http_client.tracer(SCOPE, self.tracer_provider)
        duration = http_client.duration(SCOPE, self.meter_provider)
        old_duration = http_client.old_duration(SCOPE, self.meter_provider)
        # Writes the propagation headers into the headers aiohttp is about to send, and makes
        # the span current for the rest of the request (the same task runs it to its end).
        request = _native.start_client_request(tracer, params.method, url, params.headers, duration, old_duration)
        if request is None:  # another SDK's provider: record through it
            from ferrotel.instrumentation import _generic

            if _generic.suppressed(http=True):
                return
            request = _generic.ClientRequest(tracer, params.method, url, params.headers, duration)
        context.client_request = request
        if self.request_hook is not None and request.span is not None:
            self.request_hook(request.span, params)

    async def on_request_end(self, _session, context, params):
        request = context.client_request
        if request is None:
            return
        context.client_request = None
        try:
            response = params.response
            request.response(response.status, response.headers, _version(response))
            if self.response_hook is not None and request.span is not None:
                self.response_hook(request.span, params)
        finally:
            request.end()

    async def on_request_exception(self, _session, context, params):
        request = context.client_request
        if request is None:
            return
        context.client_request = None
        try:
            request.record_exception(params.exception)
            if self.response_hook is not None and request.span is not None:
                self.response_hook(request.span, params)
        finally:
            request.end()


def create_trace_config(
    url_filter=None, request_hook=None, response_hook=None, tracer_provider=None, meter_provider=None
):
    """An `aiohttp.TraceConfig` that traces the requests of the sessions given it
    (`ClientSession(trace_configs=[create_trace_config()])`), as upstream's does."""
    import aiohttp

    tracing = _Tracing(url_filter, request_hook, response_hook, tracer_provider, meter_provider)
    config = aiohttp.TraceConfig(trace_config_ctx_factory=_RequestContext)
    config.on_request_start.append(tracing.on_request_start)
    config.on_request_end.append(tracing.on_request_end)
    config.on_request_exception.append(tracing.on_request_exception)
    setattr(config, _MARK, True)
    return config


def _traced(configs):
    return any(getattr(config, _MARK, False) for config in configs)


class AioHttpClientInstrumentor(Instrumentor):
    name = "aiohttp-client"

    def _instrument(self, **kwargs):
        import aiohttp

        config = create_trace_config(
            kwargs.get("url_filter"),
            kwargs.get("request_hook"),
            kwargs.get("response_hook"),
            kwargs.get("tracer_provider"),
            kwargs.get("meter_provider"),
        )
        extra = list(kwargs.get("trace_configs") or ())
        self._init = init = aiohttp.ClientSession.__init__

        @functools.wraps(init)
        def __init__(session, *args, **options):
            configs = list(options.get("trace_configs") or ())
            configs.extend(extra)
            # A session the app traces itself (create_trace_config) gets no second span.
            if not _traced(configs):
                configs.append(config)
            options["trace_configs"] = configs
            init(session, *args, **options)

        aiohttp.ClientSession.__init__ = __init__

    def _uninstrument(self, **kwargs):
        import aiohttp

        # Sessions made meanwhile keep their config, as upstream's do: `uninstrument_session`.
        aiohttp.ClientSession.__init__ = self._init

    @staticmethod
    def instrument_session(client_session, **kwargs):
        """Traces the requests of one existing session (with `create_trace_config`'s
        keyword arguments); nothing when the session is traced already."""
        if _traced(client_session._trace_configs):
            return
        config = create_trace_config(**kwargs)
        config.freeze()
        client_session._trace_configs = [*client_session._trace_configs, config]

    @staticmethod
    def uninstrument_session(client_session):
        """The session's requests go untraced from now on."""
        configs = client_session._trace_configs
        client_session._trace_configs = [c for c in configs if not getattr(c, _MARK, False)]
