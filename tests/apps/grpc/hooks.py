"""grpc instrumented programmatically with upstream's arguments (the automatic instrumentation
is disabled for it): the client with a `filter_` that leaves `Join` out and both hooks, the
server plainly; a sync server and client of tests/apps/grpc/service.py in this process."""

from concurrent import futures

import grpc
from service import handlers

from ferrotel.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer


def request_hook(span, request):
    span.set_attribute("hook.request", request.decode())


def response_hook(span, response):
    span.set_attribute("hook.response", response.decode())


GrpcInstrumentorServer().instrument()
GrpcInstrumentorClient(filter_=lambda details: not details.method.endswith("/Join")).instrument(
    request_hook=request_hook, response_hook=response_hook
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers(handlers(aio=False))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    assert channel.unary_unary("/demo.Echo/Say")(b"you") == b"hello you"
    assert channel.stream_unary("/demo.Echo/Join")(iter([b"a", b"b"])) == b"a+b"
server.stop(None).wait()
