"""A trivial Flask route called in-process through WSGI: what a request costs bare, under
`ferrotel instrument` and under upstream's `opentelemetry-instrument` (flask instrumentation,
pinned), both exporting traces and metrics over OTLP/HTTP into a `ferrotel view` of their
own. Each side runs in its own venv, bare and instrumented, so each is compared with its own
bare figure (PRODUCT.md's budget: at most 1.25x bare).

Usage: python bench/flask_requests.py FERROTEL_VENV UPSTREAM_VENV [--n N] [--write BENCHMARKS.md]
"""

import io
import json
import sys
import time

from receiver import bare_then_instrumented, compare
from report import measured_on, publish


def measure(n):
    from flask import Flask

    app = Flask("bench")

    @app.route("/users/<int:uid>")
    def user(uid):
        return "ok"

    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/users/42",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }

    def start_response(status, headers, exc_info=None):
        return None

    def request():
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(b"")
        body = app(environ, start_response)
        try:
            b"".join(body)
        finally:
            body.close()

    for _ in range(500):
        request()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            request()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main():
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(measure(int(sys.argv[2]))))
        return
    args, f, u = compare(bare_then_instrumented(__file__, "otlp"), default_n=5_000)
    sent = (3 * args.n) + 500
    table = "\n".join(
        [
            f"{measured_on()}; best of 3 runs of "
            f"{args.n:,} in-process WSGI requests to `GET /users/<int:uid>` (Flask, body read and closed), "
            "traces and metrics exported over OTLP/HTTP protobuf.",
            "",
            "| per request | ferrotel | upstream |",
            "|---|---:|---:|",
            f"| bare Flask (no instrumentation), in each side's venv | {f['bare']:.1f} µs | {u['bare']:.1f} µs |",
            f"| instrumented | {f['instrumented']:.1f} µs | {u['instrumented']:.1f} µs |",
            f"| instrumented / bare | {f['instrumented'] / f['bare']:.2f}× | {u['instrumented'] / u['bare']:.2f}× |",
            f"| server spans received / requests | {f['spans']:,} / {sent:,} | {u['spans']:,} / {sent:,} |",
        ]
    )
    publish(table, "flask", args.write)


if __name__ == "__main__":
    main()
