"""An OTLP/HTTP-JSON receiver that misbehaves on purpose, for the accounting tests. Standard
library only. Prints `listening PORT`, then `accepted N` for every request it answered
200 (N: the spans, log records or data points in it).

  --mode ok                answer at once
  --mode slow --delay S    answer after S seconds
  --mode stall             read the request, never answer
  --mode flap --period S   stop listening for S seconds, listen for S seconds, and so on
                           (refused connections while down)
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--mode", choices=["ok", "slow", "stall", "flap"], default="ok")
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--period", type=float, default=1.0)
parser.add_argument("--port", type=int, default=0)
args = parser.parse_args()
out = threading.Lock()


def items(request):
    """Spans, log records or data points in an OTLP/JSON export request."""
    count = 0
    for resource in request.get("resourceSpans", []):
        count += sum(len(s.get("spans", [])) for s in resource.get("scopeSpans", []))
    for resource in request.get("resourceLogs", []):
        count += sum(len(s.get("logRecords", [])) for s in resource.get("scopeLogs", []))
    for resource in request.get("resourceMetrics", []):
        for scope in resource.get("scopeMetrics", []):
            for metric in scope.get("metrics", []):
                for kind in ("sum", "gauge", "histogram"):
                    count += len(metric.get(kind, {}).get("dataPoints", []))
    return count


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if args.mode == "stall":
            time.sleep(3600)
        if args.mode == "slow":
            time.sleep(args.delay)
        # Said before answering: once the client has its 200 it may end, and the test with it.
        with out:
            print(f"accepted {items(json.loads(body))}", flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
        self.wfile.flush()

    def log_message(self, *a):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


server = Server(("127.0.0.1", args.port), Handler)
port = server.server_address[1]
print(f"listening {port}", flush=True)
if args.mode != "flap":
    server.serve_forever()
    sys.exit(0)

# Flapping: down (the listening socket closed, so connecting is refused), then up again on
# the same port, in turn.
while True:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    time.sleep(args.period)
    server.shutdown()
    server.socket.close()
    time.sleep(args.period)
    server = Server(("127.0.0.1", port), Handler)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
