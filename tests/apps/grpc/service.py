"""The gRPC service the instrumentation tests serve and call, in both grpc APIs, without
generated code: grpc's generic handlers with requests and responses as plain bytes.

`demo.Echo` has one method of each shape and two that fail (`Missing` answers NOT_FOUND by
aborting, `Crash` raises); `demo.Health/Check` is the service the tests exclude."""

import grpc
from opentelemetry import trace

tracer = trace.get_tracer("grpc-test-app")


def say(request, context):
    # A span of the handler's own: it must nest under the served call's span.
    with tracer.start_as_current_span("work"):
        return b"hello " + request


def count(request, context):
    for n in range(int(request)):
        yield str(n).encode()


def join(requests, context):
    return b"+".join(requests)


def chat(requests, context):
    for request in requests:
        yield request[::-1]


def missing(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def crash(request, context):
    raise ValueError("handler broke")


def check(request, context):
    return b"SERVING"


async def say_async(request, context):
    with tracer.start_as_current_span("work"):
        return b"hello " + request


async def count_async(request, context):
    for n in range(int(request)):
        yield str(n).encode()


async def count_by_writes(request, context):
    # grpc.aio's other style of response stream: a coroutine writing to the context
    # (upstream's instrumentation breaks it: the side-by-side test serves the other one).
    for n in range(int(request)):
        await context.write(str(n).encode())


async def join_async(requests, context):
    return b"+".join([r async for r in requests])


async def chat_async(requests, context):
    async for request in requests:
        yield request[::-1]


async def missing_async(request, context):
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


async def crash_async(request, context):
    raise ValueError("handler broke")


async def check_async(request, context):
    return b"SERVING"


def handlers(aio, writes=False):
    """The generic handlers of both services, with sync or async functions; `writes`: the
    aio response stream written through the context."""
    f = {
        "say": say_async if aio else say,
        "count": (count_by_writes if writes else count_async) if aio else count,
        "join": join_async if aio else join,
        "chat": chat_async if aio else chat,
        "missing": missing_async if aio else missing,
        "crash": crash_async if aio else crash,
        "check": check_async if aio else check,
    }
    echo = grpc.method_handlers_generic_handler(
        "demo.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(f["say"]),
            "Count": grpc.unary_stream_rpc_method_handler(f["count"]),
            "Join": grpc.stream_unary_rpc_method_handler(f["join"]),
            "Chat": grpc.stream_stream_rpc_method_handler(f["chat"]),
            "Missing": grpc.unary_unary_rpc_method_handler(f["missing"]),
            "Crash": grpc.unary_unary_rpc_method_handler(f["crash"]),
        },
    )
    health = grpc.method_handlers_generic_handler(
        "demo.Health", {"Check": grpc.unary_unary_rpc_method_handler(f["check"])}
    )
    return (echo, health)
