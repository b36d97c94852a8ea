"""The built-ins' spans and metrics through any provider of the opentelemetry-api (a vendor
distro's, a user's own upstream SDK set-up), used only when the global provider is not
ferrotel's. Names and attributes are the native path's own (`_native.*_conventions`); here
they are recorded through the API, so that provider's processors and exporters get them.
Each class has the interface of its native counterpart, so the glue treats both alike."""

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from ferrotel import _native
from ferrotel.propagate import HEADER_GETTER


def suppressed(http=False):
    """Whether the current context turns instrumentation off (the SDK's, while exporting)."""
    return bool(
        context_api.get_value(_SUPPRESS_INSTRUMENTATION_KEY)
        or (http and context_api.get_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY))
    )


def _record_error(span, exception, error_type):
    span.record_exception(exception, escaped=True)
    span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
    span.set_attribute("error.type", error_type)


class ServerRequest:
    """A request served: its SERVER span, current until `end()`, and the server metrics."""

    def __init__(self, tracer, request, asgi, duration, active):
        self._conventions, name, attributes, headers = _native.server_conventions(request, asgi)
        carrier = {}
        for header, value in headers:
            carrier.setdefault(header, []).append(value)
        parent = propagate.extract(carrier, getter=HEADER_GETTER)
        self.span = tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        self._token = context_api.attach(trace.set_span_in_context(self.span, parent))
        self._duration, self._active = duration, active
        if active is not None:
            active.add(1, self._conventions.active_attributes())
        self._errored = self._ended = False

    def response(self, status, headers=None):
        answered = self._conventions.response(status, headers)
        if answered is None:
            return
        attributes, error = answered
        self.span.set_attributes(attributes)
        if error and not self._errored:
            self.span.set_status(Status(StatusCode.ERROR))

    def traced_send(self, send):
        async def traced(message):
            kind = message.get("type")
            if kind == "http.response.start" or kind == "websocket.http.response.start":
                self.response(message.get("status"), message.get("headers"))
            await send(message)

        return traced

    def message_event(self, message):
        self.span.add_event(message.get("type", ""))

    def end_asgi(self, scope):
        route = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(template, str):
            self.set_route(scope.get("root_path", "").rstrip("/") + template)
        self.end()

    def set_route(self, route):
        name, attributes = self._conventions.route(route)
        self.span.update_name(name)
        self.span.set_attributes(attributes)

    def record_exception(self, exception):
        error_type = self._conventions.error_type(exception)
        if error_type is not None and not self._errored:
            self._errored = True
            _record_error(self.span, exception, error_type)

    def end(self, restore_context=True):
        if self._ended:
            return
        self._ended = True
        if self._duration is not None:
            self._duration.record(self._conventions.elapsed(), self._conventions.duration_attributes())
        if self._active is not None:
            self._active.add(-1, self._conventions.active_attributes())
        self.span.end()
        if restore_context:
            context_api.detach(self._token)


class ClientRequest:
    """An outgoing request: its CLIENT span, the propagation headers injected, current until
    `end()`, and the client duration."""

    def __init__(self, tracer, method, url, headers, duration):
        self._conventions, name, attributes = _native.client_conventions(method, url, headers)
        self.span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        context = trace.set_span_in_context(self.span)
        propagate.inject(headers, context=context)
        self._token = context_api.attach(context)
        self._duration = duration
        self._ended = False

    def response(self, status, headers=None, version=None):
        attributes, error = self._conventions.response(status, headers, version)
        self.span.set_attributes(attributes)
        if error:
            self.span.set_status(Status(StatusCode.ERROR))

    def record_exception(self, exception):
        error_type = self._conventions.error_type(exception)
        if error_type is not None:
            _record_error(self.span, exception, error_type)

    def end(self):
        if self._ended:
            return
        self._ended = True
        if self._duration is not None:
            self._duration.record(self._conventions.elapsed(), self._conventions.duration_attributes())
        self.span.end()
        context_api.detach(self._token)


class DbOperation:
    """A database statement or a key-value store command: a CLIENT span under the current
    context, ended by `end(exception)`."""

    def __init__(self, tracer, name, attributes):
        self.span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def end(self, exception=None):
        if isinstance(exception, Exception):
            _record_error(self.span, exception, _native.error_type(exception))
        self.span.end()


class Operation:
    """A messaging or RPC operation: its span under the context `carrier` holds (or linked to
    it, with `link`), else the current one; current until `end()` when `current`."""

    def __init__(self, tracer, name, kind, attributes=None, carrier=None, link=False, current=True):
        context = context_api.get_current()
        self._ended = False
        if suppressed():
            self.span, self._context, self._token = trace.INVALID_SPAN, context, None
            return
        links = None
        if carrier is not None:
            carried = propagate.extract(carrier)
            carried_span = trace.get_current_span(carried).get_span_context()
            if carried_span.is_valid:
                if link:
                    links = [trace.Link(carried_span)]
                else:
                    context = carried
        self.span = tracer.start_span(name, context=context, kind=SpanKind(kind), attributes=attributes, links=links)
        self._context = trace.set_span_in_context(self.span, context)
        self._token = context_api.attach(self._context) if current else None

    @property
    def is_recording(self):
        return self.span.is_recording()

    def inject(self, carrier):
        propagate.inject(carrier, context=self._context)

    def set_attributes(self, attributes):
        self.span.set_attributes(attributes)

    def record_exception(self, exception):
        if isinstance(exception, Exception):
            _record_error(self.span, exception, _native.error_type(exception))

    def set_error(self, description=None):
        self.span.set_status(Status(StatusCode.ERROR, description))

    def end(self):
        if self._ended:
            return
        self._ended = True
        self.span.end()
        if self._token is not None:
            context_api.detach(self._token)


class RpcCall(Operation):
    """A gRPC call, named and attributed as the native path's (`_native.rpc_conventions`):
    a client's span is not current (it ends on grpc's thread), a server's is, under the
    context its invocation metadata carries."""

    def __init__(self, tracer, method, server, address, metadata):
        name, attributes = _native.rpc_conventions(method, server, address)
        carrier = {key: value for key, value in metadata or () if isinstance(value, str)} if server else None
        kind = SpanKind.SERVER if server else SpanKind.CLIENT
        super().__init__(tracer, name, kind, attributes, carrier, current=server)
        self._server = server

    def outgoing_metadata(self, metadata):
        if not self.span.get_span_context().is_valid:
            return metadata
        fields = {}
        self.inject(fields)
        return (*(metadata or ()), *((key.lower(), value) for key, value in fields.items()))

    def end_rpc(self, code, description=None, exception=None):
        number, error = _native.rpc_status(self._server, code)
        if error:
            if isinstance(exception, Exception):
                self.record_exception(exception)
            else:
                if isinstance(description, bytes):
                    description = description.decode("utf-8", "replace")
                self.set_error(description)
        self.span.set_attribute("rpc.grpc.status_code", number)
        self.end()
