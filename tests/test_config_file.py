"""OTEL_CONFIG_FILE: a real app under `ferrotel instrument`, configured only by a declarative
configuration file, exporting to a real OTLP receiver (upstream's opentelemetry-proto
decodes). The file's endpoint, sampler, resource, batch settings and propagators take
effect while the SDK variables set beside it are ignored; an invalid file leaves the app
running untouched, with one error naming file, line and key on stderr. The parsing rules
themselves (every example under tests/config_files/) are unit-tested in ferrotel-config."""

import base64
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from support.processes import FERROTEL, PYTHON, ROOT, clean_env, free_port, run

RECEIVER = Path(__file__).parent / "apps" / "otlp_receiver.py"
UPSTREAM_PYTHON = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin" / "python"
EXAMPLES = Path(__file__).parent / "config_files"

# Five root spans, then one child of a remote parent that was not sampled (in B3; the
# traceparent beside it says sampled, for a propagator the file does not name), and what
# the global propagator injects.
APP = textwrap.dedent(
    """
    import json
    from opentelemetry import propagate, trace

    tracer = trace.get_tracer("orders")
    for i in range(5):
        with tracer.start_as_current_span(f"root-{i}"):
            pass
    unsampled = propagate.extract(
        {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736",
            "x-b3-spanid": "00f067aa0ba902b7",
            "x-b3-sampled": "0",
        }
    )
    with tracer.start_as_current_span("child-of-unsampled", context=unsampled):
        pass
    with tracer.start_as_current_span("outgoing"):
        headers = {}
        propagate.inject(headers)
    print(json.dumps(sorted(headers)))
    """
)

# What the environment says, all of it contradicting the file: ignored when the file is set.
CONTRADICTING_ENV = {
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    "OTEL_SERVICE_NAME": "from-env",
    "OTEL_RESOURCE_ATTRIBUTES": "team=env",
    "OTEL_TRACES_SAMPLER": "always_off",
    "OTEL_PROPAGATORS": "tracecontext",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512",
}

CONFIG = textwrap.dedent(
    """
    file_format: "1.1"
    resource:
      attributes:
        - name: service.name
          value: ${SHOP_SERVICE:-orders-api}
        - name: shard
          value: 7
        - name: zones
          value: [a, b]
      attributes_list: team=${TEAM}
    propagator:
      composite:
        - b3multi:
    tracer_provider:
      processors:
        - batch:
            schedule_delay: 60000
            max_export_batch_size: 2
            exporter:
              otlp_http:
                endpoint: ${RECEIVER_URL}/v1/traces
                headers:
                  - name: x-config
                    value: from-file
      sampler:
        parent_based:
          root:
            always_on:
          remote_parent_not_sampled:
            always_on:
    """
)


class Receiver:
    def __init__(self):
        assert UPSTREAM_PYTHON.exists(), "scripts/test creates the upstream reference venv"
        self.proc = subprocess.Popen(
            [str(UPSTREAM_PYTHON), str(RECEIVER)], stdout=subprocess.PIPE, text=True, env=clean_env()
        )
        self.port = int(self.proc.stdout.readline().split()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    if r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait()


def run_app(tmp, config_text, **env):
    (tmp / "app.py").write_text(APP)
    (tmp / "otel.yaml").write_text(config_text)
    environment = clean_env(OTEL_CONFIG_FILE=str(tmp / "otel.yaml"), **env)
    return run(FERROTEL, "instrument", PYTHON, "app.py", cwd=tmp, env=environment, timeout=120)


def values(kvs):
    return {kv["key"]: kv["value"] for kv in kvs}


def test_the_file_configures_export_and_the_environment_is_ignored(tmp, receiver):
    result = run_app(tmp, CONFIG, RECEIVER_URL=receiver.endpoint, TEAM="payments", **CONTRADICTING_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # The file's propagator (B3 multi-header), not OTEL_PROPAGATORS; no console exporter.
    assert result.stdout.splitlines() == ['["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]']

    records = receiver.stop()
    assert {r["path"] for r in records} == {"/v1/traces"}
    assert {r["headers"]["x-config"] for r in records} == {"from-file"}
    # max_export_batch_size 2: seven spans leave in requests of at most two.
    sizes = [sum(len(s["spans"]) for rs in r["request"]["resource_spans"] for s in rs["scope_spans"]) for r in records]
    assert sum(sizes) == 7 and max(sizes) == 2, sizes

    spans = {}
    for record in records:
        (resource_spans,) = record["request"]["resource_spans"]
        resource = values(resource_spans["resource"]["attributes"])
        assert resource["service.name"] == {"string_value": "orders-api"}
        assert resource["team"] == {"string_value": "payments"}
        assert resource["shard"] == {"int_value": "7"}
        assert resource["zones"] == {"array_value": {"values": [{"string_value": "a"}, {"string_value": "b"}]}}
        # No detector is listed in the file, so none ran.
        assert "process.pid" not in resource
        for scope_spans in resource_spans["scope_spans"]:
            for span in scope_spans["spans"]:
                spans[span["name"]] = span
    assert sorted(spans) == ["child-of-unsampled", "outgoing"] + [f"root-{i}" for i in range(5)]
    # Extracted by B3 (the file's propagator), and remote_parent_not_sampled: always_on keeps
    # the child the default would drop.
    child = spans["child-of-unsampled"]
    assert base64.b64decode(child["trace_id"]).hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert base64.b64decode(child["parent_span_id"]).hex() == "00f067aa0ba902b7"


def test_sampler_from_the_file_drops_what_it_says(tmp, receiver):
    default_children = "      remote_parent_not_sampled:\n        always_on:\n"
    config = CONFIG.replace(default_children, "")
    config = config.replace("root:\n        always_on:", "root:\n        trace_id_ratio_based:\n          ratio: 0")
    assert "ratio: 0" in config and "remote_parent_not_sampled" not in config
    result = run_app(tmp, config, RECEIVER_URL=receiver.endpoint, TEAM="t", OTEL_TRACES_SAMPLER="always_on")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert receiver.stop() == []


def test_simple_processor_with_console_exporter(tmp):
    config = textwrap.dedent(
        """
        file_format: "1.1"
        tracer_provider:
          processors:
            - simple:
                exporter:
                  console:
        """
    )
    result = run_app(tmp, config, OTEL_TRACES_EXPORTER="none")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    # Each span is printed as it ends (no batching), before the app's own last line; no
    # propagator is configured, so nothing is injected.
    assert lines[-1] == "[]"
    printed = result.stdout.count('span "root-')
    assert printed == 5, result.stdout


def test_logs_and_metrics_from_the_file(tmp):
    (tmp / "signals.py").write_text(
        textwrap.dedent(
            """
            import logging
            from opentelemetry import metrics

            logging.getLogger("shop").warning("stock low: %s", 3)
            metrics.get_meter("shop").create_counter("orders").add(2, {"region": "eu"})
            print("app done")
            """
        )
    )
    (tmp / "otel.yaml").write_text(
        textwrap.dedent(
            """
            file_format: "1.1"
            logger_provider:
              processors:
                - simple:
                    exporter:
                      console:
            meter_provider:
              readers:
                - periodic:
                    interval: 600000
                    exporter:
                      console:
            """
        )
    )
    env = clean_env(
        OTEL_CONFIG_FILE=str(tmp / "otel.yaml"),
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
    )
    result = run(FERROTEL, "instrument", PYTHON, "signals.py", cwd=tmp, env=env)
    # The app configures no logging: Python's last resort prints the warning, as bare.
    assert result.returncode == 0 and result.stderr == "stock low: 3\n", result.stderr
    lines = result.stdout.splitlines()
    # The simple processor prints the record as it is emitted, before the app's next line;
    # the periodic reader's last collection comes at exit.
    log = next(i for i, line in enumerate(lines) if line.endswith("WARN [shop] stock low: 3"))
    assert log < lines.index("app done")
    assert lines[-2:] == ["metric orders (sum, cumulative, monotonic) [] (shop)", '  {region="eu"} 2']


def test_views_from_the_file_rename_filter_and_drop(tmp):
    (tmp / "views.py").write_text(
        textwrap.dedent(
            """
            from opentelemetry import metrics

            meter = metrics.get_meter("shop")
            orders = meter.create_counter("orders")
            orders.add(2, {"region": "eu", "channel": "web"})
            orders.add(3, {"region": "eu", "channel": "app"})
            meter.create_counter("visits").add(7)
            """
        )
    )
    (tmp / "otel.yaml").write_text(
        textwrap.dedent(
            """
            file_format: "1.1"
            meter_provider:
              readers:
                - periodic:
                    interval: 600000
                    exporter:
                      console:
              views:
                - selector:
                    instrument_name: orders
                  stream:
                    name: shop.orders
                    attribute_keys:
                      included: [region]
                - selector:
                    instrument_name: visits
                  stream:
                    aggregation:
                      drop:
            """
        )
    )
    env = clean_env(OTEL_CONFIG_FILE=str(tmp / "otel.yaml"))
    result = run(FERROTEL, "instrument", PYTHON, "views.py", cwd=tmp, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    metric_lines = [line for line in result.stdout.splitlines() if line.startswith(("metric ", "  {"))]
    assert metric_lines == ["metric shop.orders (sum, cumulative, monotonic) [] (shop)", '  {region="eu"} 5']


def test_prometheus_pull_reader_from_the_file(tmp):
    (tmp / "scrape.py").write_text(
        textwrap.dedent(
            """
            import os, urllib.request
            from opentelemetry import metrics

            metrics.get_meter("shop").create_counter("orders").add(2, {"region": "eu"})
            url = f"http://127.0.0.1:{os.environ['SCRAPE_PORT']}/metrics"
            print(urllib.request.urlopen(url).read().decode())
            """
        )
    )
    (tmp / "otel.yaml").write_text(
        textwrap.dedent(
            """
            file_format: "1.1"
            meter_provider:
              readers:
                - pull:
                    exporter:
                      prometheus/development:
                        host: 127.0.0.1
                        port: ${SCRAPE_PORT}
            """
        )
    )
    port = free_port()
    env = clean_env(OTEL_CONFIG_FILE=str(tmp / "otel.yaml"), SCRAPE_PORT=str(port), OTEL_EXPORTER_PROMETHEUS_PORT="1")
    result = run(FERROTEL, "instrument", PYTHON, "scrape.py", cwd=tmp, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert 'orders_total{otel_scope_name="shop",otel_scope_schema_url="",otel_scope_version="",region="eu"} 2.0' in (
        result.stdout.splitlines()
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("wrong_type.yaml", ":7: tracer_provider.processors[0].batch.schedule_delay: expected an integer"),
        ("file_format_old.yaml", ':2: file_format: "0.4" is not supported'),
        ("syntax_error.yaml", ":5: YAML syntax error: illegal placement of ':' indicator"),
    ],
)
def test_invalid_file_leaves_the_app_alone_and_says_why(tmp, receiver, name, expected):
    config = (EXAMPLES / "invalid" / name).read_text()
    result = run_app(tmp, config, OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    assert result.returncode == 0
    # The app ran as it would without ferrotel: its output, no propagation.
    assert result.stdout.splitlines() == ["[]"]
    (line,) = result.stderr.splitlines()
    path = tmp / "otel.yaml"
    assert f"OTEL_CONFIG_FILE is not valid: {path}{expected}" in line, line
    assert line.endswith("; using no telemetry (the SDK stays off until the file is fixed)")
    assert receiver.stop() == []


def test_missing_file(tmp):
    (tmp / "app.py").write_text(APP)
    environment = clean_env(OTEL_CONFIG_FILE=str(tmp / "absent.yaml"))
    result = run(FERROTEL, "instrument", PYTHON, "app.py", cwd=tmp, env=environment)
    assert result.returncode == 0 and result.stdout.splitlines() == ["[]"]
    assert f"OTEL_CONFIG_FILE is not valid: {tmp / 'absent.yaml'}: cannot be read: No such file" in result.stderr


def test_config_check_command():
    ok = run(FERROTEL, "config", "check", EXAMPLES / "kitchen_sink.yaml", env=clean_env(TOKEN="t"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == f"{EXAMPLES / 'kitchen_sink.yaml'}: valid\n"
    assert ok.stderr == (
        f"ferrotel config: warning: {EXAMPLES / 'kitchen_sink.yaml'}: line 94: meter_provider.views[0]: "
        "record_min_max: false not applied (the view applies without it)\n"
    )
    bad = EXAMPLES / "invalid" / "unknown_key.yaml"
    result = run(FERROTEL, "config", "check", bad)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"ferrotel config: error: {bad}:5: tracer_provider.procesors: "
        "unknown key (expected one of: processors, limits, sampler, id_generator)\n"
    )
