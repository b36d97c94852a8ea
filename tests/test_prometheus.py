"""Prometheus: ferrotel's native scrape endpoint (`OTEL_METRICS_EXPORTER=prometheus`) gives
the same names, labels and values as upstream's opentelemetry-exporter-prometheus for the
same program (and upstream's own PrometheusMetricReader works on ferrotel's provider); a
real Prometheus server (Debian's) scrapes an instrumented Flask app and its query API
returns the request durations and a user counter; the endpoint's port is the process's own."""

import json
import os
import signal
import socket
import subprocess
import textwrap
import time
import urllib.parse
import urllib.request

import pytest
from support.processes import clean_env, free_port, http_get, run, spawn, wait_http

PROGRAM = textwrap.dedent(
    """
    import sys, urllib.request
    from opentelemetry.metrics import Observation

    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "ferrotel":
        from ferrotel.metrics import MeterProvider
        provider = MeterProvider()  # OTEL_METRICS_EXPORTER=prometheus and its address
    else:
        from prometheus_client import start_http_server
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        start_http_server(port=port, addr="127.0.0.1")
        if mode == "ferrotel-reader":
            from ferrotel.metrics import MeterProvider
            provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
        else:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.resources import Resource
            provider = MeterProvider(
                metric_readers=[PrometheusMetricReader()], resource=Resource.create({"service.name": "shop"})
            )

    meter = provider.get_meter("shop.metrics", "1.0", attributes={"team": "core", "tier.level": 2})
    stock = provider.get_meter("stock", schema_url="https://opentelemetry.io/schemas/1.21.0")

    orders = meter.create_counter("shop.orders", unit="{order}", description='orders "placed"\\nper \\\\ day')
    for i in range(10):
        orders.add(1, {"outcome": "ok" if i % 3 else "declined", "region": "eu", "http.request.method": "GET"})
    meter.create_counter("requests_total", unit="1").add(4, {"code": 200, "cached": True, "ratio": 0.25})
    meter.create_counter("bytes", unit="By").add(1.5, {"paths": ["/a", "/b"], "sizes": [1, 2], "ok": [True]})
    meter.create_counter("http.3xx-responses/total", unit="{response}").add(2, {"2nd.key": "x", "ключ": "значение"})
    queue = meter.create_up_down_counter("shop.queue", unit="{item}")
    queue.add(5, {"a": "1"})
    queue.add(-7, {"b": "2"})
    latency = meter.create_histogram("shop.latency", unit="ms", description="checkout latency")
    for value in (0, 7.5, 12, 1234567.0):
        latency.record(value, {"route": "/checkout"})
    latency.record(3, {"route": "/cart", "error.type": "timeout"})
    duration = meter.create_histogram(
        "http.server.request.duration", unit="s",
        explicit_bucket_boundaries_advisory=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
    )
    duration.record(0.0123, {"http.route": "/users/{id}"})
    meter.create_histogram("below.zero", explicit_bucket_boundaries_advisory=[-1.0, 0.0, 1.0]).record(0.5)
    temperature = meter.create_gauge("shop.temperature", unit="Cel")
    temperature.set(21.5, {"room": 'the "big" one\\\\\\n'})
    meter.create_observable_gauge(
        "shop.memory", unit="By",
        callbacks=[lambda o: [Observation(1234567.0, {"kind": "rss"}), Observation(1e16, {"kind": "virtual"}),
                              Observation(0.1, {"kind": "ratio"})]],
    )
    meter.create_observable_counter("shop.uptime", unit="s", callbacks=[lambda o: [Observation(120)]])
    meter.create_observable_up_down_counter("shop.sessions", unit="{session}", callbacks=[lambda o: [Observation(-2)]])
    stock.create_counter("stock.flow", unit="m/s").add(3)
    stock.create_up_down_counter("stock.level", unit="%").add(50)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        print(response.read().decode(), end="")
    print("# sdk imported:", "opentelemetry.sdk" in sys.modules)
    """
)

# prometheus_client's own collectors, which its default registry (and so upstream's exporter)
# adds to every scrape: not OpenTelemetry metrics, and not what is compared here.
CLIENT_OWN = ("python_gc_", "python_info", "process_")


def families(text):
    """{family name: (HELP line, TYPE line, sorted sample lines)} of an exposition."""
    found = {}
    name = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            found[name] = [line, None, []]
        elif line.startswith("# TYPE "):
            found[name][1] = line
        elif line and not line.startswith("#"):
            found[name][2].append(line)
    return {n: (h, t, sorted(samples)) for n, (h, t, samples) in found.items() if not n.startswith(CLIENT_OWN)}


def labels(sample):
    """A sample line's labels as a dict (values unescaped only as far as tests need)."""
    inside = sample[sample.index("{") + 1 : sample.rindex("}")]
    return dict(pair.split("=", 1) for pair in inside.replace('"', "").split(","))


def endpoint_env(port, **extra):
    """The environment of an app serving its metrics for Prometheus on 127.0.0.1:`port`."""
    return clean_env(
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        **extra,
    )


def scrape_program(python, tmp, mode):
    port = free_port()
    env = endpoint_env(port, OTEL_SERVICE_NAME="shop", OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="otel")
    (tmp / "app.py").write_text(PROGRAM)
    result = run(python, "app.py", mode, port, cwd=tmp, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


def test_names_labels_and_values_are_upstreams(open_sdk_python, tmp):
    theirs = scrape_program(open_sdk_python, tmp, "upstream")
    ours = scrape_program(open_sdk_python, tmp, "ferrotel")
    through_their_reader = scrape_program(open_sdk_python, tmp, "ferrotel-reader")
    assert ours.endswith("# sdk imported: False\n"), "the native endpoint never imports the SDK"

    theirs, ours, through_their_reader = families(theirs), families(ours), families(through_their_reader)
    # The resource differs by who made it (SDK name and version, each process's random
    # service.instance.id); every other family must be the same, line for line.
    target = {n: (ours.pop(n), theirs.pop(n), through_their_reader.pop(n)) for n in ["target_info"]}
    assert ours == theirs
    assert through_their_reader == theirs

    [ours_target], [theirs_target], _ = (t[2] for t in target["target_info"])
    assert labels(ours_target) == {
        "service_name": "shop",
        "telemetry_sdk_language": "python",
        "telemetry_sdk_name": "ferrotel",
        "telemetry_sdk_version": labels(ours_target)["telemetry_sdk_version"],
        "service_instance_id": labels(ours_target)["service_instance_id"],
    }
    assert set(labels(theirs_target)) == set(labels(ours_target))

    # What they agree on is what the compatibility rules say, not a shared mistake.
    scope = {
        "otel_scope_name": "shop.metrics",
        "otel_scope_schema_url": "",
        "otel_scope_team": "core",
        "otel_scope_tier_level": "2",
        "otel_scope_version": "1.0",
    }

    def sample(name, value, **labels):
        """A sample line: labels sorted by name, values written as given (escaped)."""
        inside = ",".join(f'{k}="{v}"' for k, v in sorted({**scope, **labels}.items()))
        return f"{name}{{{inside}}} {value}"

    assert ours["shop_orders_total"][:2] == (
        '# HELP shop_orders_total orders "placed"\\nper \\\\ day',
        "# TYPE shop_orders_total counter",
    )
    orders = {"http_request_method": "GET", "region": "eu"}
    assert ours["shop_orders_total"][2] == [
        sample("shop_orders_total", "4.0", outcome="declined", **orders),
        sample("shop_orders_total", "6.0", outcome="ok", **orders),
    ]
    assert ours["requests_total"][2] == [sample("requests_total", "4.0", cached="true", code="200", ratio="0.25")]
    assert ours["bytes_bytes_total"][2] == [
        sample("bytes_bytes_total", "1.5", ok="[true]", paths='[\\"/a\\", \\"/b\\"]', sizes="[1, 2]")
    ]
    assert ours["http_3xx_responses_total"][2] == [
        sample("http_3xx_responses_total", "2.0", _nd_key="x", **{"_": "значение"})
    ]
    assert ours["shop_queue"][1] == "# TYPE shop_queue gauge"
    assert ours["shop_queue"][2] == [
        sample("shop_queue", "-7.0", a="", b="2"),
        sample("shop_queue", "5.0", a="1", b=""),
    ]
    latency = ours["shop_latency_milliseconds"][2]
    assert sample("shop_latency_milliseconds_bucket", "2.0", error_type="", le="10.0", route="/checkout") in latency
    assert sample("shop_latency_milliseconds_sum", "1.2345865e+06", error_type="", route="/checkout") in latency
    assert sample("shop_latency_milliseconds_count", "1.0", error_type="timeout", route="/cart") in latency
    duration = ours["http_server_request_duration_seconds"][2]
    bucket = "http_server_request_duration_seconds_bucket"
    assert sample(bucket, "1.0", http_route="/users/{id}", le="0.025") in duration
    assert [s for s in ours["below_zero"][2] if "_count" in s or "_sum" in s] == [], "a bucket below zero: neither"
    assert ours["shop_memory_bytes"][2] == [
        sample("shop_memory_bytes", "0.1", kind="ratio"),
        sample("shop_memory_bytes", "1.234567e+06", kind="rss"),
        sample("shop_memory_bytes", "1e+16", kind="virtual"),
    ]
    assert ours["shop_temperature_celsius"][2] == [
        sample("shop_temperature_celsius", "21.5", room='the \\"big\\" one\\\\\\n')
    ]
    assert ours["shop_uptime_seconds_total"][2] == [sample("shop_uptime_seconds_total", "120.0")]
    assert ours["shop_sessions"][2] == [sample("shop_sessions", "-2.0")]
    scope = {
        "otel_scope_name": "stock",
        "otel_scope_schema_url": "https://opentelemetry.io/schemas/1.21.0",
        "otel_scope_version": "",
    }
    assert ours["stock_flow_meters_per_second_total"][2] == [sample("stock_flow_meters_per_second_total", "3.0")]
    assert ours["stock_level_percent"][2] == [sample("stock_level_percent", "50.0")]


FLASK_PROGRAM = textwrap.dedent(
    """
    import sys, urllib.request
    from flask import Flask

    port = int(sys.argv[2])
    if sys.argv[1] == "upstream":
        from prometheus_client import start_http_server
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.sdk.metrics import MeterProvider
        start_http_server(port=port, addr="127.0.0.1")
        metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))

    app = Flask(__name__)
    if sys.argv[1] == "upstream":
        FlaskInstrumentor().instrument_app(app)

    @app.route("/users/<int:uid>")
    def user(uid):
        return {"id": uid}

    client = app.test_client()
    for path in ["/users/1", "/users/2", "/users/3", "/missing"]:
        client.get(path).close()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        print(response.read().decode(), end="")
    """
)


def test_http_server_metrics_have_upstreams_names_and_labels(open_sdk_python, tmp):
    (tmp / "app.py").write_text(FLASK_PROGRAM)
    port = free_port()
    env = clean_env(OTEL_SEMCONV_STABILITY_OPT_IN="http")
    theirs = run(open_sdk_python, "app.py", "upstream", port, cwd=tmp, env=env)
    assert theirs.returncode == 0, theirs.stderr
    launcher = open_sdk_python.parent / "ferrotel"
    flags = ["--traces_exporter", "none", "--metrics_exporter", "prometheus", "--exporter_prometheus_host", "127.0.0.1"]
    flags += ["--exporter_prometheus_port", str(port)]
    ours = run(launcher, "instrument", *flags, open_sdk_python, "app.py", "ferrotel", port, cwd=tmp)
    assert ours.returncode == 0 and ours.stderr == "", ours.stderr
    theirs, ours = families(theirs.stdout), families(ours.stdout)

    def shape(family):
        """Labels of every sample but the instrumentation scope's (each instrumentation names
        itself: ferrotel.instrumentation.wsgi 0.1.0, or opentelemetry.instrumentation.flask
        0.66b1 with the semantic conventions' schema URL), and the counts."""
        rows = []
        for sample in family[2]:
            found = {k: v for k, v in labels(sample).items() if not k.startswith("otel_scope_")}
            name = sample[: sample.index("{")]
            timed = name.endswith(("_bucket", "_sum"))  # how long requests took varies
            rows.append((name, found, "" if timed else sample.split(" ")[-1]))
        return family[:2], sorted(rows, key=json.dumps)

    for name in ["http_server_request_duration_seconds", "http_server_active_requests"]:
        assert shape(ours[name]) == shape(theirs[name]), name
    counts = [s for s in ours["http_server_request_duration_seconds"][2] if "_count{" in s]
    # The 404 had no route: an empty label, as every point of a metric carries every label.
    assert [(labels(s)["http_route"], s.split(" ")[-1]) for s in counts] == [("/users/<int:uid>", "3.0"), ("", "1.0")]
    assert sum("le=" in s for s in ours["http_server_request_duration_seconds"][2]) == 2 * 15
    assert any('le="1"' in s for s in ours["http_server_request_duration_seconds"][2]), "written as the int it was"


APP_SERVER = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from opentelemetry import metrics

    orders = metrics.get_meter("shop").create_counter("shop.orders", unit="{order}")
    app = Flask(__name__)

    @app.route("/users/<int:uid>")
    def user(uid):
        orders.add(uid, {"region": "eu"})
        return {"id": uid}

    app.run(port=int(sys.argv[1]))
    """
)


class Prometheus:
    """Debian's `prometheus` scraping `target` every 200 ms, with a data directory of its own
    and its API on a free port; stopped with SIGTERM, whatever is left killed."""

    def __init__(self, tmp, target):
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n"
            f"scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"
        )
        self.port = free_port()
        self.process = spawn(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ]
        )
        wait_http(f"http://127.0.0.1:{self.port}/-/ready", deadline=60)

    def query(self, expression):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def wait_for(self, expression, value, deadline=30.0):
        """The single series `expression` selects, once it holds `value`."""
        end = time.monotonic() + deadline
        while True:
            result = self.query(expression)
            if len(result) == 1 and result[0]["value"][1] == value:
                return result[0]["metric"]
            assert time.monotonic() < end, f"{expression} = {result}, waited for {value}"
            time.sleep(0.2)

    def stop(self):
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.communicate()


def test_a_real_prometheus_scrapes_the_native_endpoint(open_sdk_python, tmp):
    (tmp / "app.py").write_text(APP_SERVER)
    app_port, metrics_port = free_port(), free_port()
    launcher = open_sdk_python.parent / "ferrotel"
    flags = ["--traces_exporter", "none", "--logs_exporter", "none", "--service_name", "shop-api"]
    flags += ["--metrics_exporter", "prometheus", "--exporter_prometheus_host", "127.0.0.1"]
    flags += ["--exporter_prometheus_port", str(metrics_port)]
    app = spawn([launcher, "instrument", *flags, open_sdk_python, "app.py", app_port], cwd=tmp)
    prometheus = None
    try:
        for uid in (1, 2, 3):
            wait_http(f"http://127.0.0.1:{app_port}/users/{uid}")
        assert http_get(f"http://127.0.0.1:{app_port}/nowhere")[0] == 404
        prometheus = Prometheus(tmp, f"127.0.0.1:{metrics_port}")
        prometheus.wait_for('up{job="app"}', "1")
        series = prometheus.wait_for('http_server_request_duration_seconds_count{http_route="/users/<int:uid>"}', "3")
        assert (series["http_request_method"], series["http_response_status_code"], series["url_scheme"]) == (
            "GET",
            "200",
            "http",
        )
        assert series["otel_scope_name"] == "ferrotel.instrumentation.wsgi"
        prometheus.wait_for("sum(http_server_request_duration_seconds_count)", "4")
        prometheus.wait_for('http_server_request_duration_seconds_bucket{http_route="/users/<int:uid>",le="+Inf"}', "3")
        # Three requests well under ten seconds: all in the 10 s bucket (its bound written as
        # the instrumentation gave it, an int), and a sum to match.
        prometheus.wait_for('http_server_request_duration_seconds_bucket{http_route="/users/<int:uid>",le="10"}', "3")
        [total] = prometheus.query('http_server_request_duration_seconds_sum{http_route="/users/<int:uid>"}')
        assert 0 < float(total["value"][1]) < 3
        prometheus.wait_for('shop_orders_total{region="eu"}', "6")
        target = prometheus.wait_for('target_info{job="app"}', "1")
        assert target["service_name"] == "shop-api" and target["telemetry_sdk_name"] == "ferrotel"
    finally:
        if prometheus:
            prometheus.stop()
        app.send_signal(signal.SIGINT)
        _, err = app.communicate(timeout=30)
    assert "warning" not in err, err


FORKING = textwrap.dedent(
    """
    import os, sys, time, urllib.request
    from ferrotel.metrics import MeterProvider

    port = int(sys.argv[1])
    provider = MeterProvider()
    provider.get_meter("m").create_counter("forks").add(1)
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        time.sleep(8)
        os._exit(0)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        served = [line for line in response.read().decode().splitlines() if line.startswith("forks_total")]
    print(pid, served)
    """
)


def test_the_port_is_the_process_that_opened_it(open_sdk_python, tmp):
    # A forked child does not keep the parent's endpoint: once the parent is gone, the port is
    # free while the child lives on.
    (tmp / "app.py").write_text(FORKING)
    port = free_port()
    env = endpoint_env(port)
    result = run(open_sdk_python, "app.py", port, cwd=tmp, env=env)
    assert result.returncode == 0, result.stderr
    pid, served = result.stdout.split(" ", 1)
    scope = 'otel_scope_name="m",otel_scope_schema_url="",otel_scope_version=""'
    assert served.strip() == str([f"forks_total{{{scope}}} 1.0"])
    os.kill(int(pid), 0)  # the child is still there
    with socket.socket() as s:
        # (Past the connections the scrape left waiting out TIME_WAIT; never past a listener.)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
    os.kill(int(pid), signal.SIGKILL)

    # A port someone else holds: one warning, and the app runs on.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        (tmp / "busy.py").write_text("from ferrotel.metrics import MeterProvider\nMeterProvider()\nprint('ran')\n")
        result = run(open_sdk_python, "busy.py", cwd=tmp, env=env)
    assert result.stdout == "ran\n"
    assert result.stderr.startswith(
        f"ferrotel: warning: OTEL_METRICS_EXPORTER=prometheus: cannot listen on 127.0.0.1:{port}: "
    ), result.stderr
    assert result.stderr.endswith("; metrics are not served\n")


@pytest.mark.parametrize("encoding", ["gzip", None])
def test_scrapes_run_the_callbacks_and_answer_as_asked(open_sdk_python, tmp, encoding):
    source = textwrap.dedent(
        """
        import gzip, sys, urllib.request
        from opentelemetry.metrics import Observation
        from ferrotel.metrics import MeterProvider

        port, encoding = int(sys.argv[1]), sys.argv[2]
        calls = []
        provider = MeterProvider()
        provider.get_meter("m").create_observable_counter(
            "calls", callbacks=[lambda options: calls.append(1) or [Observation(len(calls))]]
        )
        for _ in range(3):
            headers = {"Accept-Encoding": encoding} if encoding != "-" else {}
            request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
                if response.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                print(response.headers["Content-Type"], response.headers.get("Content-Encoding"))
            print([line for line in body.decode().splitlines() if line.startswith("calls_total")])
        """
    )
    (tmp / "app.py").write_text(source)
    port = free_port()
    env = endpoint_env(port)
    result = run(open_sdk_python, "app.py", port, encoding or "-", cwd=tmp, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"text/plain; version=0.0.4; charset=utf-8 {encoding}"
    assert [line.split("} ")[1] for line in lines[1::2]] == ["1.0']", "2.0']", "3.0']"]


def test_the_endpoint_is_up_from_the_start(open_sdk_python, tmp):
    # As with upstream's configurator, a scraper finds the endpoint before the app records
    # anything or imports the Metrics API (which ferrotel still leaves unimported).
    source = textwrap.dedent(
        """
        import socket, sys
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as scrape:
            scrape.sendall(b"GET /metrics HTTP/1.1\\r\\nHost: app\\r\\n\\r\\n")
            answer = b"".join(iter(lambda: scrape.recv(4096), b""))
        status, empty = answer.split(b"\\r\\n")[0].decode(), answer.endswith(b"\\r\\n\\r\\n")
        print(status, empty, "opentelemetry.metrics" in sys.modules)
        """
    )
    (tmp / "app.py").write_text(source)
    port = free_port()
    launcher = open_sdk_python.parent / "ferrotel"
    result = run(launcher, "instrument", open_sdk_python, "app.py", port, cwd=tmp, env=endpoint_env(port))
    assert (result.stdout, result.stderr) == ("HTTP/1.1 200 OK True False\n", "")
