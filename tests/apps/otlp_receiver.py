"""An OTLP/HTTP trace receiver for tests, decoding with upstream's opentelemetry-proto
(run it with the upstream reference venv's Python).

Prints `listening PORT`, then one JSON line per request: path, lower-cased headers, the
status it answered and the decoded request (protobuf or JSON) as MessageToDict gives it.
Usage: otlp_receiver.py [--statuses 503,200] [--delay SECONDS] [--retry-after N] [--reject N]
The last status repeats once the list is used up.
"""

import argparse
import base64
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict, Parse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def hex_ids_to_base64(node):
    if isinstance(node, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode() if k in ID_FIELDS else hex_ids_to_base64(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [hex_ids_to_base64(v) for v in node]
    return node


parser = argparse.ArgumentParser()
parser.add_argument("--statuses", default="200")
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--retry-after", type=int)
parser.add_argument("--reject", type=int, default=0)
args = parser.parse_args()
statuses = [int(s) for s in args.statuses.split(",")]
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        if self.headers.get("Content-Type") == "application/json":
            # OTLP/JSON carries ids as hex; protobuf's JSON mapping expects base64.
            Parse(json.dumps(hex_ids_to_base64(json.loads(body))), request)
        else:
            request.ParseFromString(body)
        with lock:
            status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        record = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "status": status,
            "request": MessageToDict(request, preserving_proto_field_name=True),
        }
        print(json.dumps(record), flush=True)
        time.sleep(args.delay)
        response = ExportTraceServiceResponse()
        if args.reject:
            response.partial_success.rejected_spans = args.reject
            response.partial_success.error_message = "too old"
        payload = response.SerializeToString()
        self.send_response(status)
        if args.retry_after is not None and status != 200:
            self.send_header("Retry-After", str(args.retry_after))
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening {server.server_port}", flush=True)
server.serve_forever()
