"""The integrated acceptance test of the async and data stack: a FastAPI shop (SQLAlchemy over
asyncpg, psycopg, redis asyncio, httpx and aiohttp calls to a partner service, a Celery task
run by a real worker, a websocket, a route that raises) on uvicorn, and a Django shop
(psycopg2, the redis cache, requests) on gunicorn (WSGI) and on uvicorn (ASGI), all of
tests/apps/acceptance/. Each runs under `ferrotel instrument` (a user venv where `ferrotel
bootstrap -a install` added the contrib packages for what ferrotel does not instrument
itself) and under upstream's `opentelemetry-instrument` (.venv-upstream, pinned 1.45.1 /
0.66b1), on real PostgreSQL, redis-server and a Celery worker, exporting OTLP to the same
kind of receiver.

Every request carries a traceparent with a trace id of its own, so each request's trace is
read back whole: the spans of the app, the partner service and the worker. The exact trees
are asserted for each side, and every span upstream produces is matched by ferrotel's with
the same name, kind and parent; the differences are deliberate and named where they are
encoded."""

import base64
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from support.databases import postgres, redis  # noqa: F401 (fixtures)
from support.dist import user_venv
from support.processes import BIN, ROOT, clean_env, free_port, http_get, run, spawn, wait_http

APPS = Path(__file__).parent / "apps" / "acceptance"
RECEIVER = Path(__file__).parent / "apps" / "otlp_receiver.py"
UPSTREAM = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin"
KIND = {f"SPAN_KIND_{k}": k.lower() for k in ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")}
REMOTE_PARENT = "00f067aa0ba902b7"


def trace_of(request):
    """The trace id the test's request number `request` carries in its traceparent."""
    return f"{request + 1:032x}"


def traceparent(request):
    return {"traceparent": f"00-{trace_of(request)}-{REMOTE_PARENT}-01"}


@pytest.fixture(scope="module")
def shop_bin(tmp_path_factory):
    """The bin directory of the apps' user venv: their libraries, ferrotel, and what
    `ferrotel bootstrap -a install` adds to them."""
    python = user_venv(tmp_path_factory.mktemp("acceptance"), ROOT / "tests" / "acceptance-requirements.txt")
    bootstrap = run(python.parent / "ferrotel", "bootstrap", "--python", python, "-a", "install", timeout=600)
    assert bootstrap.returncode == 0, bootstrap.stdout + bootstrap.stderr
    frozen = run(BIN / "uv", "pip", "freeze", "--python", python).stdout.split()
    # Every library of the apps has a ferrotel built-in: bootstrap adds no contrib package
    # that one would shadow.
    for package in ("sqlalchemy", "aiohttp-client", "aiohttp-server", "fastapi", "django", "redis", "asyncpg"):
        assert not any(f.startswith(f"opentelemetry-instrumentation-{package}==") for f in frozen), frozen
    return python.parent


@pytest.fixture(scope="module")
def orders(postgres):  # noqa: F811
    """The shops' table, with order 7 in it."""
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, item text)")
        connection.execute("INSERT INTO orders VALUES (7, 'teapot') ON CONFLICT DO NOTHING")
    return postgres


class Receiver:
    """tests/apps/otlp_receiver.py run by upstream's Python: the spans and log records it got.
    Its output is read as it comes: a full pipe would block its handlers, and the exporters
    waiting on them."""

    def __init__(self):
        command = [str(UPSTREAM / "python"), str(RECEIVER)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=clean_env())
        self.endpoint = f"http://127.0.0.1:{self.process.stdout.readline().split()[1]}"
        self.lines = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.reader.start()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=10)
        spans, logs = [], []
        for line in self.lines:
            if not line.startswith("{"):
                continue
            received = json.loads(line)
            for resource in received["request"].get("resource_spans", []):
                service = service_name(resource)
                for scope in resource["scope_spans"]:
                    for span in scope["spans"]:
                        spans.append({**span, "service": service, "scope": scope.get("scope", {}).get("name", "")})
            for resource in received["request"].get("resource_logs", []):
                service = service_name(resource)
                for scope in resource["scope_logs"]:
                    logs.extend({**record, "service": service} for record in scope["log_records"])
        return spans, logs


def service_name(resource):
    for attribute in resource.get("resource", {}).get("attributes", []):
        if attribute["key"] == "service.name":
            return attribute["value"]["string_value"]
    return None


def hexid(value):
    return base64.b64decode(value).hex() if value else ""


def attributes(span):
    return {a["key"]: next(iter(a["value"].values()), None) for a in span.get("attributes", [])}


class Side:
    """How one side launches a program: its launcher, its venv and its environment."""

    def __init__(self, name, bin_dir, receiver):
        self.name, self.bin = name, bin_dir
        self.launcher = bin_dir / ("ferrotel-instrument" if name == "ferrotel" else "opentelemetry-instrument")
        self.receiver = receiver

    def env(self, service, **extra):
        env = clean_env(
            PATH=f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            OTEL_SERVICE_NAME=service,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=self.receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_BLRP_SCHEDULE_DELAY="100",
            OTEL_PYTHON_EXCLUDED_URLS="healthz",
            PYTHONPATH=str(APPS),
            **extra,
        )
        if self.name == "upstream":
            # Upstream's contrib packages record the stable HTTP and database conventions only
            # when asked; ferrotel's built-ins, and the contrib packages running on ferrotel,
            # record them by default. Upstream attaches its OTLP log handler only when asked.
            env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http,database"
            env["OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"] = "true"
        return env

    def spawn(self, service, command, **extra):
        return spawn([self.launcher, self.bin / "python", *command], APPS, self.env(service, **extra))


def stop_group(process, signal_number):
    """Stops a server's whole process group (workers, reloaders) with `signal_number`, then
    SIGKILL if it lingers; its stderr."""
    if process.poll() is None:
        os.killpg(process.pid, signal_number)
    try:
        return process.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()[1]


def run_shop(side_name, bin_dir, shop, server, services, make_requests):
    """Starts the partner service, the Celery worker when the shop has one, and `shop` on
    `server`, all under one side's launcher; makes the requests; stops everything. The spans
    and log records the receiver got."""
    receiver = Receiver()
    side = Side(side_name, bin_dir, receiver)
    partner_port, shop_port = free_port(), free_port()
    processes = []
    try:
        partner = side.spawn("partner", [APPS / "partner.py", partner_port])
        processes.append((partner, signal.SIGINT))
        if shop == "fastapi":
            # kombu's polling of the broker would be traced as redis commands of their own,
            # outside any request: the worker's redis instrumentation is off.
            worker = side.spawn(
                "worker",
                [
                    "-m",
                    "celery",
                    "-A",
                    "jobs",
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    "1",
                    "--without-gossip",
                    "--without-mingle",
                ],
                OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="redis",
                **services,
            )
            processes.append((worker, signal.SIGTERM))
        env = {**services, "PARTNER_URL": f"http://127.0.0.1:{partner_port}"}
        if shop == "fastapi":
            target = "shop:app"
        else:
            env["DJANGO_SETTINGS_MODULE"] = "shop_django_settings"
            target = f"shop_django:{'wsgi' if server == 'gunicorn' else 'asgi'}"
        if server == "gunicorn":
            command = ["-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{shop_port}", target]
        else:
            command = ["-m", "uvicorn", "--port", str(shop_port), target]
        app = side.spawn("shop", command, **env)
        processes.append((app, signal.SIGTERM if server == "gunicorn" else signal.SIGINT))
        wait_http(f"http://127.0.0.1:{partner_port}/healthz", deadline=30)
        wait_http(f"http://127.0.0.1:{shop_port}/healthz", deadline=30)
        make_requests(f"http://127.0.0.1:{shop_port}", shop_port)
        time.sleep(1)  # batches go out every 100 ms
        failure = None
    except Exception as error:  # noqa: BLE001 (re-raised below with the processes' output)
        failure = error
    finally:
        errors = [stop_group(process, signal_number) for process, signal_number in reversed(processes)]
        spans, logs = receiver.stop()
    if failure is not None:
        raise AssertionError("\n".join(e[-3000:] for e in errors)) from failure
    return spans, logs, errors


def render(span):
    status = span.get("status", {}).get("code", "").replace("STATUS_CODE_", "")
    events = ",".join(e["name"] for e in span.get("events", []))
    return " ".join(p for p in (f"{span['service']}:", span["name"], KIND[span["kind"]], status, events) if p)


def trees(spans):
    """Per trace id: its spans as indented lines, children under their parent in start order."""
    out = {}
    for trace in sorted({hexid(s["trace_id"]) for s in spans}):
        in_trace = [s for s in spans if hexid(s["trace_id"]) == trace]
        by_id = {s["span_id"]: s for s in in_trace}
        children = {}
        for s in sorted(in_trace, key=lambda s: int(s["start_time_unix_nano"])):
            parent = s.get("parent_span_id")
            children.setdefault(parent if parent in by_id else None, []).append(s)
        lines = []

        def walk(parent, depth, lines=lines, children=children):
            for s in children.get(parent, []):
                lines.append("  " * depth + render(s))
                walk(s["span_id"], depth + 1)

        walk(None, 0)
        out[trace] = lines
    return out


def wait_shipped(broker, order_id):
    """Waits until the Celery worker has run the task for `order_id` (it marks it in redis)."""
    import redis as redis_client

    client = redis_client.Redis.from_url(broker)
    deadline = time.monotonic() + 30
    while client.getdel(f"shipped:{order_id}") is None:
        assert time.monotonic() < deadline, "the Celery worker did not run the task"
        time.sleep(0.05)


def fastapi_requests(base, port, broker):
    from websockets.sync.client import connect

    statuses = [
        http_get(f"{base}/orders/7", traceparent(0))[0],
        http_get(f"{base}/partners", traceparent(1))[0],
        http_get(f"{base}/ship/7", traceparent(2))[0],
        http_get(f"{base}/boom", traceparent(3))[0],
    ]
    wait_shipped(broker, 7)
    with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=traceparent(4)) as ws:
        ws.send("hello")
        assert ws.recv() == "HELLO"
    assert statuses == [200, 200, 200, 500]


def django_requests(base, port):
    statuses = [http_get(f"{base}/orders/7", traceparent(0))[0], http_get(f"{base}/boom", traceparent(1))[0]]
    assert statuses == [200, 500]


@pytest.fixture(scope="module")
def services(orders, redis):  # noqa: F811
    port = orders.split("port=")[1].split()[0]
    return {
        "SQLALCHEMY_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres",
        "DATABASE_DSN": orders,
        "REDIS_URL": f"redis://{redis[0]}:{redis[1]}/0",
        "CELERY_BROKER": f"redis://{redis[0]}:{redis[1]}/1",
    }


def request_trees(spans, requests):
    """The trees of the test's requests' traces, in request order. Traces without a request
    (the SQLAlchemy pool's warm-up at start, the CLI span of the click instrumentation that
    bootstrap installs) are start-up work, not compared."""
    found = trees(spans)
    return [found.get(trace_of(i), []) for i in range(requests)]


def kombu_commands(spans):
    """The ids of the redis spans under a Celery producer span: kombu's commands to the
    broker while it publishes."""
    producers = {s["span_id"] for s in spans if s["name"].startswith("apply_async/")}
    return {s["span_id"] for s in spans if s["scope"].endswith("redis") and s.get("parent_span_id") in producers}


# Span names and kinds that are one side's alone, by design; `comparable` leaves them out.
ASGI_MESSAGE_SPANS = (" http send", " http receive", " websocket send", " websocket receive")


def comparable(spans, side):
    """Per request, its trace as the lines both sides must agree on, and the span of each
    line. Deliberate differences are normalised here:
    - upstream's ASGI instrumentation adds an INTERNAL span per ASGI message sent or
      received; ferrotel makes none (per-message work costs every request).
    - FastAPI's own telemetry (scope `fastapi`) stays on under ferrotel, its operation spans
      nesting under ferrotel's one server span; upstream's contrib switches it off. Their
      children are compared as children of the server span.
    - kombu's redis commands while Celery publishes: ferrotel records them under the
      producer span in every run; upstream's uvicorn process records them in some runs and
      none of them in others, so they are not compared (see `kombu_commands`).
    - SQL spans: ferrotel names them `{operation} {table}` as the conventions advise,
      upstream by the query's first word (`BEGIN;`): compared by operation.
    - Server span names: upstream's Django names them by the URL pattern without its
      leading slash, and upstream names a websocket's `HTTP /ws` where ferrotel gives the
      handshake's method (`GET /ws`): compared by route.
    - SQLAlchemy statements: ferrotel records one span per statement, the engine's; upstream
      records the engine's and, beside it, the driver's spans for what the driver sends while
      the engine executes it (the statement again, and the `BEGIN` the asyncpg dialect sends
      first). Upstream's driver spans inside an engine statement are not compared.
    """
    by_id = {s["span_id"]: s for s in spans}
    engine_statements = [s for s in spans if s["scope"] == SQLALCHEMY_SCOPE and s["name"] != "connect"]

    def inside_engine_statement(span):
        start = int(span["start_time_unix_nano"])
        return span["scope"] != SQLALCHEMY_SCOPE and any(
            s.get("parent_span_id") == span.get("parent_span_id")
            and int(s["start_time_unix_nano"]) <= start <= int(s["end_time_unix_nano"])
            for s in engine_statements
        )

    def dropped(span):
        if span["span_id"] in kombu_commands(spans):
            return True
        if side == "upstream":
            is_message = span["kind"] == "SPAN_KIND_INTERNAL" and span["name"].endswith(ASGI_MESSAGE_SPANS)
            return is_message or inside_engine_statement(span)
        return span["scope"] == "fastapi"

    def parent_of(span):
        parent = by_id.get(span.get("parent_span_id"))
        while parent is not None and dropped(parent):
            parent = by_id.get(parent.get("parent_span_id"))
        return parent["span_id"] if parent else None

    def name(span):
        found = attributes(span)
        if "db.system.name" in found and found["db.system.name"] == "postgresql":
            return span["name"].split()[0].rstrip(";")
        if span["kind"] == "SPAN_KIND_SERVER" and "http.route" in found:
            return f"{found.get('http.request.method', 'GET')} {route(found['http.route'])}"
        return span["name"]

    kept = [s for s in spans if not dropped(s)]
    out = []
    for request in range(5):
        in_trace = [s for s in kept if hexid(s["trace_id"]) == trace_of(request)]
        children = {}
        for s in sorted(in_trace, key=lambda s: int(s["start_time_unix_nano"])):
            children.setdefault(parent_of(s), []).append(s)
        lines = []

        def walk(parent, depth, lines=lines, children=children):
            for s in children.get(parent, []):
                status = s.get("status", {}).get("code", "").replace("STATUS_CODE_", "")
                lines.append(("  " * depth + f"{s['service']}: {name(s)} {KIND[s['kind']]} {status}".rstrip(), s))
                walk(s["span_id"], depth + 1)

        walk(None, 0)
        out.append(lines)
    return out


SQLALCHEMY_SCOPE = "opentelemetry.instrumentation.sqlalchemy"

# Attributes both sides record under the stable conventions with the same value, and those
# whose value is the run's own (ports, ids, URLs with ports): present on both.
SAME_VALUE = ("http.request.method", "http.response.status_code", "http.route", "url.path", "url.scheme")
SAME_VALUE += ("db.system.name", "db.namespace", "db.operation.name", "celery.action", "celery.task_name")
PRESENT = ("server.address", "server.port", "client.address", "url.full", "db.query.text", "user_agent.original")


def route(value):
    """Upstream's Django records the URL pattern without its leading slash as the route."""
    return "/" + value.lstrip("/")


def assert_same_spans(ours, theirs):
    """Every span upstream produced, ferrotel produced with the same name, kind, parent and
    status, carrying the stable attributes upstream's has."""
    ours_requests, theirs_requests = comparable(*ours), comparable(*theirs)
    for mine, upstream in zip(ours_requests, theirs_requests, strict=True):
        assert [line for line, _ in mine] == [line for line, _ in upstream]
        for (line, my_span), (_, their_span) in zip(mine, upstream, strict=True):
            my_attributes, their_attributes = attributes(my_span), attributes(their_span)
            for key in SAME_VALUE:
                # Upstream gives a websocket connection the status 200 once a message is sent;
                # ferrotel none (the handshake's 101 is the server's, not the app's).
                if key == "http.response.status_code" and their_attributes.get("url.scheme") == "ws":
                    continue
                if key == "http.route" and key in their_attributes:
                    assert my_attributes.get(key) == route(their_attributes[key]), (line, my_attributes)
                elif key in their_attributes:
                    assert my_attributes.get(key) == their_attributes[key], (line, key, my_attributes)
            for key in PRESENT:
                # Upstream's requests records the user agent it sent on the client span (an
                # opt-in attribute for clients); ferrotel's HTTP clients do not, as upstream's
                # httpx and aiohttp do not.
                if key == "user_agent.original" and their_span["kind"] == "SPAN_KIND_CLIENT":
                    continue
                if key in their_attributes:
                    assert key in my_attributes, (line, key, my_attributes)


def log_span(spans, logs, body):
    """The trace id of the log record with `body`, and the name of the span it was logged in."""
    (record,) = [r for r in logs if r["body"].get("string_value") == body]
    span_id = record.get("span_id")
    names = [s["name"] for s in spans if s["span_id"] == span_id]
    return hexid(record.get("trace_id")), names


# SQLAlchemy's statement is one span, the engine's (`SELECT orders` after `connect`): the
# `BEGIN` the asyncpg dialect sends while executing it is part of it; the `ROLLBACK` the pool
# sends when the connection goes back is asyncpg's own. The second `SELECT orders` is
# psycopg's.
FERROTEL_FASTAPI = [
    [
        "shop: GET /orders/{order_id} server",
        "  shop: fastapi.dependencies internal",
        "  shop: fastapi.endpoint internal",
        "    shop: connect client",
        "    shop: SELECT orders client",
        "    shop: ROLLBACK client",
        "    shop: SELECT orders client",
        "    shop: SET client",
        "    shop: GET client",
        "  shop: fastapi.serialization internal",
    ],
    [
        "shop: GET /partners server",
        "  shop: fastapi.dependencies internal",
        "  shop: fastapi.endpoint internal",
        "    shop: GET client",
        "      partner: GET /greet server",
        "    shop: GET client",
        "      partner: GET /greet server",
        "  shop: fastapi.serialization internal",
    ],
    [
        "shop: GET /ship/{order_id} server",
        "  shop: fastapi.dependencies internal",
        "  shop: fastapi.endpoint internal",
        "    shop: apply_async/jobs.ship producer",
        "      shop: PING client",
        "      shop: LLEN LLEN LLEN LLEN client",
        "      shop: SADD SADD client",
        "      shop: LPUSH client",
        "      worker: run/jobs.ship consumer",
        "  shop: fastapi.serialization internal",
    ],
    [
        "shop: GET /boom server ERROR exception",
        "  shop: fastapi.dependencies internal",
        "  shop: fastapi.endpoint internal ERROR",
    ],
    [
        "shop: GET /ws server",
        "  shop: fastapi.dependencies internal",
        "  shop: fastapi.endpoint internal",
    ],
]

UPSTREAM_FASTAPI = [
    [
        "shop: GET /orders/{order_id} server",
        "  shop: connect client",
        "  shop: SELECT client",
        "  shop: BEGIN; client",
        "  shop: SELECT client",
        "  shop: ROLLBACK; client",
        "  shop: SELECT client",
        "  shop: SET client",
        "  shop: GET client",
        "  shop: GET /orders/{order_id} http send internal",
        "  shop: GET /orders/{order_id} http send internal",
    ],
    [
        "shop: GET /partners server",
        "  shop: GET client",
        "    partner: GET /greet server",
        "  shop: GET client",
        "    partner: GET /greet server",
        "  shop: GET /partners http send internal",
        "  shop: GET /partners http send internal",
    ],
    [
        "shop: GET /ship/{order_id} server",
        "  shop: apply_async/jobs.ship producer",
        "    worker: run/jobs.ship consumer",
        "  shop: GET /ship/{order_id} http send internal",
        "  shop: GET /ship/{order_id} http send internal",
    ],
    [
        "shop: GET /boom server ERROR exception",
        "  shop: GET /boom http send internal ERROR",
        "  shop: GET /boom http send internal",
    ],
    [
        "shop: HTTP /ws server",
        "  shop: HTTP /ws websocket receive internal",
        "  shop: HTTP /ws websocket send internal",
        "  shop: HTTP /ws websocket receive internal",
        "  shop: HTTP /ws websocket send internal",
        "  shop: HTTP /ws websocket send internal",
    ],
]


def test_fastapi_shop_on_uvicorn(shop_bin, services):
    def make_requests(base, port):
        fastapi_requests(base, port, services["CELERY_BROKER"])

    ours = run_shop("ferrotel", shop_bin, "fastapi", "uvicorn", services, make_requests)
    theirs = run_shop("upstream", UPSTREAM, "fastapi", "uvicorn", services, make_requests)
    assert request_trees(ours[0], 5) == FERROTEL_FASTAPI, request_trees(ours[0], 5)
    # Upstream's tree without kombu's redis commands, which it records in some runs only.
    theirs_kept = [span for span in theirs[0] if span["span_id"] not in kombu_commands(theirs[0])]
    assert request_trees(theirs_kept, 5) == UPSTREAM_FASTAPI, request_trees(theirs[0], 5)
    assert_same_spans((ours[0], "ferrotel"), (theirs[0], "upstream"))
    # The log record of the order view carries the request's trace and the span it ran in:
    # FastAPI's endpoint span under ferrotel, the server span under upstream.
    assert log_span(ours[0], ours[1], "order 7 is teapot") == (trace_of(0), ["fastapi.endpoint"])
    assert log_span(theirs[0], theirs[1], "order 7 is teapot") == (trace_of(0), ["GET /orders/{order_id}"])


FERROTEL_DJANGO = [
    [
        "shop: GET /orders/<int:order_id> server",
        # Django sets the connection's time zone when it opens it (each request here).
        "  shop: SELECT client",
        "  shop: SELECT orders client",
        "  shop: SET client",
        "  shop: GET client",
        "  shop: GET client",
        "    partner: GET /greet server",
    ],
    ["shop: GET /boom server ERROR exception"],
]

UPSTREAM_DJANGO = [
    [
        "shop: GET orders/<int:order_id> server",
        "  shop: SELECT client",
        "  shop: SELECT client",
        "  shop: SET client",
        "  shop: GET client",
        "  shop: GET client",
        "    partner: GET /greet server",
    ],
    ["shop: GET boom server ERROR exception"],
]


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_django_shop(server, shop_bin, services):
    ours = run_shop("ferrotel", shop_bin, "django", server, services, django_requests)
    theirs = run_shop("upstream", UPSTREAM, "django", server, services, django_requests)
    assert request_trees(ours[0], 2) == FERROTEL_DJANGO, request_trees(ours[0], 2)
    assert request_trees(theirs[0], 2) == UPSTREAM_DJANGO, request_trees(theirs[0], 2)
    assert_same_spans((ours[0], "ferrotel"), (theirs[0], "upstream"))
    for spans, logs in (ours[:2], theirs[:2]):
        order_span, boom_span = (
            next(
                s["name"]
                for s in spans
                if hexid(s["trace_id"]) == trace_of(i) and (s["service"], s["kind"]) == ("shop", "SPAN_KIND_SERVER")
            )
            for i in (0, 1)
        )
        assert log_span(spans, logs, "order 7 is teapot") == (trace_of(0), [order_span])
        assert log_span(spans, logs, "Internal Server Error: /boom") == (trace_of(1), [boom_span])
