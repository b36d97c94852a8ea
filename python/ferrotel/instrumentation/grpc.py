"""gRPC spans for grpcio, sync and `grpc.aio`, client and server: grpc's own interceptor API
carries each call to the native layer (`_native.start_rpc`), which names the span
`package.Service/Method`, records the RPC attributes and the status code, and carries the
caller's context in the call's metadata, so a served call is the child of the call that
made it, across processes.

The entry points are upstream's: `grpc_client` and `grpc_aio_client` add an interceptor to
every channel `grpc.insecure_channel`/`secure_channel` (and their `grpc.aio` twins) make;
`grpc_server` and `grpc_aio_server` add one first to every server `grpc.server` /
`grpc.aio.server` make. The constructors take `filter_` (a call is traced when it returns
true for the call's details, which have `.method`), and `instrument()` takes
`tracer_provider`; the clients take `request_hook(span, request)` and
`response_hook(span, response)` (a unary response, once it has arrived). Services named in
`OTEL_PYTHON_GRPC_EXCLUDED_SERVICES` (comma-separated, `package.Service`) are not traced.

What the application hands over and gets back is grpc's own: requests, responses, the call
objects, futures and response iterators, the servicer context and the status and exception
a call ends with. A client span ends when grpc says the call is done (a done callback), so
nothing wraps what the application iterates or awaits."""

import asyncio
import functools
import inspect
import os

from ferrotel import __version__, _native
from ferrotel.instrumentation import Instrumentor

_OK, _CANCELLED, _UNKNOWN = 0, 1, 2


def _excluded_services():
    listed = os.environ.get("OTEL_PYTHON_GRPC_EXCLUDED_SERVICES", "")
    return frozenset(name.strip() for name in listed.split(",") if name.strip())


def _service(method):
    if isinstance(method, bytes):
        method = method.decode("utf-8", "replace")
    return method.lstrip("/").split("/", 1)[0]


def _call_hook(hook, span, value):
    """A hook's failure is the hook's: the call goes on."""
    try:
        hook(span, value)
    except Exception:  # noqa: BLE001
        import logging

        logging.getLogger(__name__).warning("grpc instrumentation hook %r raised", hook, exc_info=True)


class _Tracing:
    """What one instrumentor's interceptors share: the tracer, which calls to trace, hooks."""

    def __init__(self, instrumentor, kwargs):
        from opentelemetry import trace

        self.tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        self.instrumentor = instrumentor
        self.excluded = _excluded_services()
        request_hook, response_hook = kwargs.get("request_hook"), kwargs.get("response_hook")
        self.request_hook = request_hook if callable(request_hook) else None
        self.response_hook = response_hook if callable(response_hook) else None

    def traced(self, details):
        if self.excluded and _service(details.method) in self.excluded:
            return False
        chosen = self.instrumentor._filter
        return chosen is None or bool(chosen(details))

    def start(self, method, server, address, metadata=None):
        operation = _native.start_rpc(self.tracer, method, server, address, metadata)
        if operation is None:  # another SDK's provider is installed: record through it
            from ferrotel.instrumentation import _generic

            operation = _generic.RpcCall(self.tracer, method, server, address, metadata)
        return operation


class _GrpcInstrumentor(Instrumentor):
    """Upstream's constructors take the call filter; the instance is still one per class."""

    def __new__(cls, filter_=None):
        return super().__new__(cls)

    def __init__(self, filter_=None):
        self._filter = filter_


# Client side ---------------------------------------------------------------------------


def _with_metadata(details, metadata):
    """The call's details with `metadata` in place of theirs (grpc's are named tuples)."""
    try:
        return details._replace(metadata=metadata)
    except AttributeError:
        import grpc

        class Details(grpc.ClientCallDetails):
            pass

        copy = Details()
        for name in ("method", "timeout", "credentials", "wait_for_ready", "compression"):
            setattr(copy, name, getattr(details, name, None))
        copy.metadata = metadata
        return copy


def _client_done(tracing, operation, unary_response, call):
    """A sync call's done callback: the span ends with the call's status."""
    code = call.code()
    if code is not None and code.value[0] == _OK:
        if unary_response and tracing.response_hook is not None:
            _call_hook(tracing.response_hook, operation.span, call.result())
        operation.end_rpc(code)
    else:
        # The call object is the RpcError the application catches.
        operation.end_rpc(code if code is not None else _UNKNOWN, call.details(), call)


class _ClientInterceptor:
    """Every call of one sync channel; the four interceptor interfaces are mixed in below."""

    def __init__(self, tracing, target):
        self._tracing, self._target = tracing, target

    def _intercept(self, continuation, details, request, unary_response):
        tracing = self._tracing
        if not tracing.traced(details):
            return continuation(details, request)
        operation = tracing.start(details.method, False, self._target)
        if tracing.request_hook is not None:
            _call_hook(tracing.request_hook, operation.span, request)
        try:
            call = continuation(_with_metadata(details, operation.outgoing_metadata(details.metadata)), request)
        except BaseException as error:
            operation.end_rpc(_UNKNOWN, None, error)
            raise
        call.add_done_callback(functools.partial(_client_done, tracing, operation, unary_response))
        return call

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return self._intercept(continuation, client_call_details, request, True)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return self._intercept(continuation, client_call_details, request, False)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return self._intercept(continuation, client_call_details, request_iterator, True)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return self._intercept(continuation, client_call_details, request_iterator, False)


def _settled(awaitable):
    """The result of an awaitable that is already done (a finished aio call's status),
    without a task: it completes on its first step. `None` when it would have to wait."""
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        return done.value
    steps.close()
    return None


def _aio_client_done(tracing, operation, unary_response, call):
    """An aio call's done callback (on the event loop): the span ends with its status."""
    import grpc

    try:
        code = _settled(call.code())
    except Exception:  # noqa: BLE001 - a cancelled call has no status to read
        code = grpc.StatusCode.CANCELLED
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    if code is grpc.StatusCode.OK:
        if unary_response and tracing.response_hook is not None:
            _call_hook(tracing.response_hook, operation.span, _settled(call))
        operation.end_rpc(code)
    else:
        try:
            details = _settled(call.details())
        except Exception:  # noqa: BLE001
            details = None
        operation.end_rpc(code, details)


class _AioClientInterceptor:
    """Every call of one aio channel, of one shape: grpc.aio files an interceptor under the
    first interface it implements, so each shape has its own subclass below."""

    def __init__(self, tracing, target):
        self._tracing, self._target = tracing, target

    async def _intercept(self, continuation, details, request, unary_response):
        tracing = self._tracing
        if not tracing.traced(details):
            return await continuation(details, request)
        from grpc.aio import Metadata

        operation = tracing.start(details.method, False, self._target)
        if tracing.request_hook is not None:
            _call_hook(tracing.request_hook, operation.span, request)
        metadata = Metadata.from_tuple(operation.outgoing_metadata(details.metadata))
        try:
            call = await continuation(_with_metadata(details, metadata), request)
        except BaseException as error:
            operation.end_rpc(_UNKNOWN, None, error)
            raise
        call.add_done_callback(functools.partial(_aio_client_done, tracing, operation, unary_response))
        return call


def _aio_client_interceptors(tracing, target):
    import grpc.aio

    class UnaryUnary(_AioClientInterceptor, grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation, client_call_details, request):
            return await self._intercept(continuation, client_call_details, request, True)

    class UnaryStream(_AioClientInterceptor, grpc.aio.UnaryStreamClientInterceptor):
        async def intercept_unary_stream(self, continuation, client_call_details, request):
            return await self._intercept(continuation, client_call_details, request, False)

    class StreamUnary(_AioClientInterceptor, grpc.aio.StreamUnaryClientInterceptor):
        async def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
            return await self._intercept(continuation, client_call_details, request_iterator, True)

    class StreamStream(_AioClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
        async def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
            return await self._intercept(continuation, client_call_details, request_iterator, False)

    return [shape(tracing, target) for shape in (UnaryUnary, UnaryStream, StreamUnary, StreamStream)]


def _channel_factories(kwargs):
    """Which channel factories to patch, as upstream's `channel_type` / `secure_channel` /
    `insecure_channel` arguments choose them."""
    if "channel_type" in kwargs:
        return ("secure_channel",) if kwargs["channel_type"] == "secure" else ("insecure_channel",)
    return tuple(name for name in ("secure_channel", "insecure_channel") if kwargs.get(name, True))


class GrpcInstrumentorClient(_GrpcInstrumentor):
    name = "grpc_client"

    def _instrument(self, **kwargs):
        import grpc

        tracing = _Tracing(self, kwargs)
        sync_interceptor = type(
            "ClientInterceptor",
            (
                _ClientInterceptor,
                grpc.UnaryUnaryClientInterceptor,
                grpc.UnaryStreamClientInterceptor,
                grpc.StreamUnaryClientInterceptor,
                grpc.StreamStreamClientInterceptor,
            ),
            {},
        )
        self._originals = {}
        for name in _channel_factories(kwargs):
            original = self._originals[name] = getattr(grpc, name)

            @functools.wraps(original)
            def channel(target, *args, _original=original, **kw):
                return grpc.intercept_channel(_original(target, *args, **kw), sync_interceptor(tracing, target))

            setattr(grpc, name, channel)

    def _uninstrument(self, **kwargs):
        import grpc

        for name, original in self._originals.items():
            setattr(grpc, name, original)


class GrpcAioInstrumentorClient(_GrpcInstrumentor):
    name = "grpc_aio_client"

    def _instrument(self, **kwargs):
        import grpc.aio

        tracing = _Tracing(self, kwargs)
        self._originals = {}
        for name in ("insecure_channel", "secure_channel"):
            original = self._originals[name] = getattr(grpc.aio, name)

            @functools.wraps(original)
            def channel(target, *args, _original=original, **kw):
                # Ahead of the application's own, so they see the call as sent.
                kw["interceptors"] = [*_aio_client_interceptors(tracing, target), *(kw.get("interceptors") or ())]
                return _original(target, *args, **kw)

            setattr(grpc.aio, name, channel)

    def _uninstrument(self, **kwargs):
        import grpc.aio

        for name, original in self._originals.items():
            setattr(grpc.aio, name, original)


# Server side ---------------------------------------------------------------------------


def _end_served(operation, context, error=None):
    """Ends a served call's span with the status the handler set or aborted with; for an
    exception it chose no status for, UNKNOWN (what grpc answers then), the exception
    recorded; CANCELLED when the caller went away."""
    if isinstance(error, (GeneratorExit, asyncio.CancelledError)):
        operation.end_rpc(_CANCELLED)
        return
    # grpcio before 1.38 cannot say which status a handler set.
    code = context.code() if hasattr(context, "code") else None
    if code is None:
        operation.end_rpc(_OK if error is None else _UNKNOWN, None, error)
        return
    # An abort unwinds the handler with an exception: the status is its answer, not a failure.
    operation.end_rpc(code, context.details())


def _served(start, behavior, response_streaming):
    """`behavior` (a handler's function) traced, of the same kind: grpc.aio tells coroutine
    handlers, async generators and plain functions apart by their function's kind."""
    if inspect.isasyncgenfunction(behavior):

        async def traced(request, context):
            operation = start(context)
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as error:
                _end_served(operation, context, error)
                raise
            _end_served(operation, context)

    elif inspect.iscoroutinefunction(behavior):

        async def traced(request, context):
            operation = start(context)
            try:
                response = await behavior(request, context)
            except BaseException as error:
                _end_served(operation, context, error)
                raise
            _end_served(operation, context)
            return response

    elif response_streaming:

        def traced(request, context):
            operation = start(context)
            try:
                yield from behavior(request, context)
            except BaseException as error:
                _end_served(operation, context, error)
                raise
            _end_served(operation, context)

    else:

        def traced(request, context):
            operation = start(context)
            try:
                response = behavior(request, context)
            except BaseException as error:
                _end_served(operation, context, error)
                raise
            _end_served(operation, context)
            return response

    return traced


def _traced_handler(grpc, handler, start):
    """A method handler like `handler` whose function is traced."""
    if handler.request_streaming:
        if handler.response_streaming:
            behavior, factory = handler.stream_stream, grpc.stream_stream_rpc_method_handler
        else:
            behavior, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        behavior, factory = handler.unary_stream, grpc.unary_stream_rpc_method_handler
    else:
        behavior, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler
    if behavior is None:
        return handler
    return factory(
        _served(start, behavior, handler.response_streaming),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _server_starter(tracing, method):
    def start(context):
        return tracing.start(method, True, context.peer(), context.invocation_metadata())

    return start


def _with_interceptor(args, kwargs, interceptor):
    """`grpc.server`'s / `grpc.aio.server`'s arguments with `interceptor` first (the
    interceptors are their third positional argument or a keyword)."""
    if len(args) > 2:
        return (*args[:2], [interceptor, *(args[2] or ())], *args[3:]), kwargs
    return args, {**kwargs, "interceptors": [interceptor, *(kwargs.get("interceptors") or ())]}


class GrpcInstrumentorServer(_GrpcInstrumentor):
    name = "grpc_server"

    def _instrument(self, **kwargs):
        import grpc

        tracing = _Tracing(self, kwargs)

        class ServerInterceptor(grpc.ServerInterceptor):
            def intercept_service(self, continuation, handler_call_details):
                handler = continuation(handler_call_details)
                if handler is None or not tracing.traced(handler_call_details):
                    return handler
                return _traced_handler(grpc, handler, _server_starter(tracing, handler_call_details.method))

        self._original = original = grpc.server

        @functools.wraps(original)
        def server(*args, **kw):
            args, kw = _with_interceptor(args, kw, ServerInterceptor())
            return original(*args, **kw)

        grpc.server = server

    def _uninstrument(self, **kwargs):
        import grpc

        grpc.server = self._original


class GrpcAioInstrumentorServer(_GrpcInstrumentor):
    name = "grpc_aio_server"

    def _instrument(self, **kwargs):
        import grpc
        import grpc.aio

        tracing = _Tracing(self, kwargs)

        class AioServerInterceptor(grpc.aio.ServerInterceptor):
            async def intercept_service(self, continuation, handler_call_details):
                handler = await continuation(handler_call_details)
                if handler is None or not tracing.traced(handler_call_details):
                    return handler
                return _traced_handler(grpc, handler, _server_starter(tracing, handler_call_details.method))

        self._original = original = grpc.aio.server

        @functools.wraps(original)
        def server(*args, **kw):
            args, kw = _with_interceptor(args, kw, AioServerInterceptor())
            return original(*args, **kw)

        grpc.aio.server = server

    def _uninstrument(self, **kwargs):
        import grpc.aio

        grpc.aio.server = self._original
