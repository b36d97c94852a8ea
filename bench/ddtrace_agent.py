"""A local stand-in for the Datadog agent, so that `ddtrace-run` does all of its real work
(encoding, flushing over HTTP, remote-config polling, telemetry) against something that answers
as an agent does. It decodes every trace payload (msgpack, v0.4 and v0.5) and counts its
spans; `GET /bench/status` reports the counts. Runs in .venv-ddtrace (msgpack).

Usage: python ddtrace_agent.py PORT"""

import collections
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack

# What a recent agent advertises, minus the endpoints the benchmark never exercises.
INFO = {
    "version": "7.60.0",
    "endpoints": [
        "/v0.4/traces",
        "/v0.5/traces",
        "/v0.6/stats",
        "/v0.7/config",
        "/telemetry/proxy/",
        "/debugger/v1/input",
        "/debugger/v1/diagnostics",
    ],
    "client_drop_p0s": True,
    "span_meta_structs": True,
    "long_running_spans": True,
    "config": {"statsd_port": 0, "receiver_port": 0},
}

lock = threading.Lock()
spans = 0
hits = collections.Counter()


def count_spans(path, body):
    payload = msgpack.unpackb(body, raw=True, strict_map_key=False)
    # v0.5 is [string table, traces]; v0.4 is the list of traces. A trace is a list of spans.
    traces = payload[1] if path == "/v0.5/traces" else payload
    return sum(len(trace) for trace in traces)


class Agent(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        global spans
        with lock:
            hits[f"GET {self.path}"] += 1
        if self.path == "/info":
            self.answer(200, INFO)
        elif self.path == "/bench/status":
            with lock:
                self.answer(200, {"spans": spans, "hits": dict(hits)})
        else:
            self.answer(404, {})

    def do_PUT(self):
        global spans
        path = self.path.split("?", 1)[0]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            hits[f"{self.command} {path}"] += 1
        if path in ("/v0.4/traces", "/v0.5/traces"):
            received = count_spans(path, body)
            with lock:
                spans += received
            self.answer(200, {"rate_by_service": {"service:,env:": 1.0}})
        elif path == "/v0.7/config":
            self.answer(200, {})
        elif path.startswith("/telemetry/proxy/"):
            self.answer(202, {})
        elif path == "/v0.6/stats" or path.startswith("/debugger/"):
            self.answer(200, {})
        else:
            self.answer(404, {})

    do_POST = do_PUT

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Agent).serve_forever()
