"""Calls tests/apps/grpc/server.py at `127.0.0.1:PORT` once per call shape, then the two
failing methods and the health check, inside one `client` span, with grpc's sync API or,
given `aio`, grpc.aio's. Prints, as one JSON line, what each call gave the application, so
a test can compare runs with and without instrumentation."""

import asyncio
import json
import sys

import grpc
import grpc.aio
from opentelemetry import trace


def failure(error):
    return {"code": error.code().name, "details": error.details(), "is_call": isinstance(error, grpc.Call)}


def calls_sync(target):
    seen = {}
    with grpc.insecure_channel(target) as channel:
        say = channel.unary_unary("/demo.Echo/Say")
        seen["say"] = say(b"you").decode()
        response, call = say.with_call(b"again")
        seen["with_call"] = [response.decode(), call.code().name]
        future = say.future(b"later")
        seen["future"] = [isinstance(future, grpc.Future), future.result().decode()]
        responses = channel.unary_stream("/demo.Echo/Count")(b"3")
        seen["count_is_call"] = isinstance(responses, grpc.Call)
        seen["count"] = [r.decode() for r in responses]
        seen["join"] = channel.stream_unary("/demo.Echo/Join")(iter([b"a", b"b", b"c"])).decode()
        seen["chat"] = [r.decode() for r in channel.stream_stream("/demo.Echo/Chat")(iter([b"ab", b"cd"]))]
        for name in ("Missing", "Crash"):
            try:
                channel.unary_unary(f"/demo.Echo/{name}")(b"")
            except grpc.RpcError as error:
                seen[name] = failure(error)
        seen["health"] = channel.unary_unary("/demo.Health/Check")(b"").decode()
    return seen


async def calls_aio(target):
    seen = {}
    async with grpc.aio.insecure_channel(target) as channel:
        say = channel.unary_unary("/demo.Echo/Say")
        call = say(b"you")
        seen["say"] = (await call).decode()
        seen["say_code"] = (await call.code()).name
        seen["count"] = [r.decode() async for r in channel.unary_stream("/demo.Echo/Count")(b"3")]

        async def letters():
            for letter in (b"a", b"b", b"c"):
                yield letter

        seen["join"] = (await channel.stream_unary("/demo.Echo/Join")(letters())).decode()
        seen["chat"] = [r.decode() async for r in channel.stream_stream("/demo.Echo/Chat")(iter([b"ab", b"cd"]))]
        for name in ("Missing", "Crash"):
            try:
                await channel.unary_unary(f"/demo.Echo/{name}")(b"")
            except grpc.aio.AioRpcError as error:
                seen[name] = failure(error)
        seen["health"] = (await channel.unary_unary("/demo.Health/Check")(b"")).decode()
    return seen


if __name__ == "__main__":
    aio, target = sys.argv[1] == "aio", f"127.0.0.1:{sys.argv[2]}"
    with trace.get_tracer("grpc-test-app").start_as_current_span("client"):
        seen = asyncio.run(calls_aio(target)) if aio else calls_sync(target)
    print(json.dumps(seen, sort_keys=True))
