"""grpc instrumented programmatically with `tracer_provider` an upstream SDK provider, not
ferrotel's (the automatic instrumentation is disabled for it): the spans go through that
provider, named and attributed as on ferrotel's path; a sync server and client of
tests/apps/grpc/service.py in this process. Prints each span's name, kind, status,
attributes and its parent's kind, one JSON line."""

import json
from concurrent import futures

import grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from service import handlers

from ferrotel.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer

exported = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exported))
GrpcInstrumentorServer().instrument(tracer_provider=provider)
GrpcInstrumentorClient().instrument(tracer_provider=provider)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers(handlers(aio=False))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    channel.unary_unary("/demo.Echo/Say")(b"you")
    try:
        channel.unary_unary("/demo.Echo/Crash")(b"")
    except grpc.RpcError:
        pass
server.stop(None).wait()
spans = exported.get_finished_spans()
ids = {s.context.span_id: s for s in spans}
print(
    json.dumps(
        [
            {
                "name": s.name,
                "kind": s.kind.name,
                "status": s.status.status_code.name,
                "attributes": {k: v for k, v in s.attributes.items() if not k.endswith(".port")},
                "parent": ids[s.parent.span_id].kind.name if s.parent and s.parent.span_id in ids else None,
            }
            for s in sorted(spans, key=lambda s: s.start_time)
        ]
    )
)
