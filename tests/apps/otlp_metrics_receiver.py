"""An OTLP/HTTP metrics receiver for tests, decoding with upstream's opentelemetry-proto (run
it with the upstream reference venv's Python): protobuf or JSON bodies, as Content-Type says.

Prints `listening PORT`, then one JSON line per request: the decoded request as
MessageToDict gives it (proto field names)."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict, Parse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        json_body = "json" in self.headers.get("Content-Type", "")
        request = ExportMetricsServiceRequest()
        if json_body:
            Parse(body.decode(), request)
        else:
            request.ParseFromString(body)
        print(json.dumps(MessageToDict(request, preserving_proto_field_name=True)), flush=True)
        reply = ExportMetricsServiceResponse()
        answer = b"{}" if json_body else reply.SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if json_body else "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
