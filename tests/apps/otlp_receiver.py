"""An OTLP trace receiver for tests, decoding with upstream's opentelemetry-proto (run it
with the upstream reference venv's Python), over HTTP or gRPC, plain or TLS (optionally
requiring client certificates).

Prints `listening PORT`, then one JSON line per request: path, lower-cased headers, the
status it answered and the decoded request as MessageToDict gives it. Over HTTP, a POST to
/v1/logs is decoded as a logs request; every other path as a traces request.
  --grpc                      serve OTLP/gRPC instead of OTLP/HTTP
  --statuses 503,200          HTTP statuses (or gRPC codes with --grpc) to answer, in turn;
                              the last one repeats
  --delay S, --retry-after N  slow answers; Retry-After on HTTP errors
  --reject N                  report N rejected spans as a partial success
  --tls CERT KEY [--client-ca CA]
  --port N                    listen on N (default: any free port)
  --sink                      HTTP only: answer 200 at once without decoding or printing
                              (a fast peer for benchmarks)
  --grpc-encodings gzip,...   gRPC only: the message encodings the server takes besides
                              identity (default: every one grpc knows); a message in
                              another is refused with UNIMPLEMENTED
HTTP bodies may be gzip or deflate (zlib) encoded, as Content-Encoding says.
"""

import argparse
import base64
import gzip
import json
import ssl
import threading
import time
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict, MessageToJson, Parse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

ID_FIELDS = {"traceId", "spanId", "parentSpanId"}

parser = argparse.ArgumentParser()
parser.add_argument("--grpc", action="store_true")
parser.add_argument("--statuses", default="")
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--retry-after", type=int)
parser.add_argument("--reject", type=int, default=0)
parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
parser.add_argument("--client-ca")
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--sink", action="store_true")
parser.add_argument("--grpc-encodings")
args = parser.parse_args()
statuses = [int(s) for s in args.statuses.split(",")] if args.statuses else [0 if args.grpc else 200]
lock = threading.Lock()
output_lock = threading.Lock()


def next_status():
    with lock:
        return statuses.pop(0) if len(statuses) > 1 else statuses[0]


def record(path, headers, status, request):
    line = {
        "path": path,
        "headers": headers,
        "status": status,
        "request": MessageToDict(request, preserving_proto_field_name=True),
    }
    with output_lock:  # requests are served in threads: one line each, never interleaved
        print(json.dumps(line), flush=True)
    time.sleep(args.delay)


def response():
    reply = ExportTraceServiceResponse()
    if args.reject:
        reply.partial_success.rejected_spans = args.reject
        reply.partial_success.error_message = "too old"
    return reply


def hex_ids_to_base64(node):
    """OTLP/JSON carries ids as hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode() if k in ID_FIELDS else hex_ids_to_base64(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [hex_ids_to_base64(v) for v in node]
    return node


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as exporters use it

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if args.sink:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        elif self.headers.get("Content-Encoding") == "deflate":
            body = zlib.decompress(body)
        logs = self.path == "/v1/logs"
        request = ExportLogsServiceRequest() if logs else ExportTraceServiceRequest()
        if self.headers.get("Content-Type") == "application/json":
            Parse(json.dumps(hex_ids_to_base64(json.loads(body))), request)
        else:
            request.ParseFromString(body)
        status = next_status()
        record(self.path, {k.lower(): v for k, v in self.headers.items()}, status, request)
        as_json = self.headers.get("Content-Type") == "application/json"
        reply = ExportLogsServiceResponse() if logs else response()
        payload = MessageToJson(reply).encode() if as_json else reply.SerializeToString()
        self.send_response(status)
        if args.retry_after is not None and status != 200:
            self.send_header("Retry-After", str(args.retry_after))
        self.send_header("Content-Type", "application/json" if as_json else "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_):
        pass


def serve_http():
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*args.tls)
        if args.client_ca:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(args.client_ca)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening {server.server_port}", flush=True)
    server.serve_forever()


def serve_grpc():
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    codes = {code.value[0]: code for code in grpc.StatusCode}

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            status = next_status()
            headers = {k: v for k, v in context.invocation_metadata()}
            record(trace_service_pb2_grpc.TraceService.__name__, headers, status, request)
            if status != 0:
                context.abort(codes[status], "scripted failure")
            return response()

    options = []
    if args.grpc_encodings is not None:
        # grpc's compression algorithms as bits: identity 0, deflate 1, gzip 2.
        bits = {"deflate": 1, "gzip": 2}
        enabled = 1 | sum(1 << bits[name] for name in args.grpc_encodings.split(",") if name)
        options.append(("grpc.compression_enabled_algorithms_bitset", enabled))
    server = grpc.server(futures.ThreadPoolExecutor(4), options=options)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    address = f"127.0.0.1:{args.port}"
    if args.tls:
        cert, key = (open(p, "rb").read() for p in args.tls)
        ca = open(args.client_ca, "rb").read() if args.client_ca else None
        credentials = grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


serve_grpc() if args.grpc else serve_http()
