"""ferrotel view's web UI in a real headless Chromium (Debian's, through chromedriver): the
telemetry comes from upstream's Python SDK and OTLP exporters; every step reads what the page
shows and saves a screenshot under tests/artifacts/view-ui/."""

import json
import os

import pytest
from support.processes import clean_env, run
from support.viewer import (
    UPSTREAM,
    Viewer,
    chromium,
    page_errors,
    post_spans,
    rows,
    shot,
    span_json,
    trace_ids,
    wait_for,
)

pytest.importorskip("selenium")
from selenium.webdriver.common.by import By  # noqa: E402

# Two services, one call between them that fails inside the callee, a link, a correlated log,
# a counter and a histogram: everything the UI has a view for.
SHOP = """
import logging
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

def provider(service):
    p = TracerProvider(resource=Resource.create({"service.name": service}))
    p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return p

frontend_provider, payments_provider = provider("frontend"), provider("payments")
frontend = frontend_provider.get_tracer("shop.frontend", "2.0")
payments = payments_provider.get_tracer("shop.payments", "1.0")
logs = LoggerProvider(resource=Resource.create({"service.name": "payments"}))
logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
logger = logging.getLogger("payments")
logger.addHandler(LoggingHandler(logger_provider=logs))
logger.setLevel(logging.INFO)
meters = MeterProvider(
    resource=Resource.create({"service.name": "frontend"}),
    metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=60000)],
)
meter = meters.get_meter("shop.frontend")
orders = meter.create_counter("shop.orders", unit="{order}", description="orders placed")
latency = meter.create_histogram("shop.checkout.duration", unit="ms")

with frontend.start_as_current_span("GET /health", kind=trace.SpanKind.SERVER) as health:
    health.set_attribute("http.route", "/health")
earlier = health.get_span_context()

server = trace.SpanKind.SERVER
with frontend.start_as_current_span("GET /checkout", kind=server, attributes={"http.route": "/checkout"}) as root:
    with frontend.start_as_current_span("load cart", links=[trace.Link(earlier, {"why": "warm cache"})]):
        pass
    with frontend.start_as_current_span("POST /charge", kind=trace.SpanKind.CLIENT) as call:
        try:
            with payments.start_as_current_span("POST /charge", kind=server, attributes={"customer.id": "c-42"}):
                with payments.start_as_current_span("charge card") as charge:
                    logger.warning("card declined for customer c-42")
                    raise ValueError("card declined")
        except ValueError:
            call.set_attribute("http.response.status_code", 502)
for ms in (12, 40, 95, 400):
    latency.record(ms, {"http.route": "/checkout"})
latency.record(100, {"http.route": "/cart"})
orders.add(3, {"outcome": "declined"})

for p in (frontend_provider, payments_provider, logs, meters):
    p.shutdown()
print(format(root.get_span_context().trace_id, "032x"))
print(format(charge.get_span_context().span_id, "016x"))
print(format(earlier.trace_id, "032x"))
"""


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    viewer = Viewer()
    app = tmp_path_factory.mktemp("shop") / "shop.py"
    app.write_text(SHOP)
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{viewer.http}",
        PATH=f"{UPSTREAM}{os.pathsep}{os.environ['PATH']}",
    )
    result = run(UPSTREAM / "python", app, env=env)
    assert result.returncode == 0, result.stderr
    checkout_trace, charge_span, health_trace = result.stdout.split()
    yield viewer, checkout_trace, charge_span, health_trace
    viewer.process.kill()
    viewer.process.wait()


def test_trace_list_filter_waterfall_details_and_linked_logs(browser, shop):
    viewer, checkout_trace, charge_span, health_trace = shop
    # Not live: the rows read below must not be redrawn under the test (live is tested apart).
    browser.get(f"http://127.0.0.1:{viewer.ui}/#/traces?live=0")

    # The list: both traces, the failing one marked, newest first by start time.
    wait_for(browser, lambda d: len(trace_ids(d)) == 2, "two traces in the list")
    assert trace_ids(browser) == [checkout_trace, health_trace]
    checkout_row = rows(browser, f'tr[data-trace-id="{checkout_trace}"] td')
    assert checkout_row[1].text.startswith("frontend GET /checkout")
    assert [c.text for c in checkout_row[4:]] == ["5", "2", "frontend, payments"]
    assert "2 of 2 traces shown" in browser.find_element(By.ID, "result-count").text
    shot(browser, "01-trace-list")

    # Sorting by span count, ascending then descending.
    def spans_header(d):
        return d.find_element(By.CSS_SELECTOR, 'th[data-sort="spanCount"]')

    spans_header(browser).click()
    wait_for(browser, lambda d: "sorted-desc" in spans_header(d).get_attribute("class"), "sort by spans")
    assert trace_ids(browser) == [checkout_trace, health_trace]
    spans_header(browser).click()
    wait_for(browser, lambda d: trace_ids(d) == [health_trace, checkout_trace], "ascending span count")

    # Filter by an attribute that only a payments span carries.
    tags = browser.find_element(By.ID, "filter-tags")
    tags.clear()
    tags.send_keys("customer.id=c-42")
    browser.find_element(By.ID, "search").click()
    wait_for(browser, lambda d: trace_ids(d) == [checkout_trace], "the attribute filter to leave one trace")
    shot(browser, "02-filtered-by-attribute")

    # The waterfall: the whole tree, the error spans and the span that matched marked.
    browser.find_element(By.CSS_SELECTOR, f'tr[data-trace-id="{checkout_trace}"] a.trace-link').click()
    wait_for(browser, lambda d: len(rows(d, ".span-row")) == 5, "five spans in the waterfall")
    names = [r.get_attribute("data-name") for r in rows(browser, ".span-row")]
    assert names == ["GET /checkout", "load cart", "POST /charge", "POST /charge", "charge card"]
    matched = rows(browser, ".span-row.matched")
    assert [(m.get_attribute("data-name"), m.find_element(By.CSS_SELECTOR, ".service").text) for m in matched] == [
        ("POST /charge", "payments")
    ]
    errors = [r.get_attribute("data-name") for r in rows(browser, ".span-row.error")]
    assert errors == ["POST /charge", "charge card"]
    # Bars are drawn to scale: every child starts within and ends inside the root's bar.
    bars = [r.find_element(By.CSS_SELECTOR, ".bar").rect for r in rows(browser, ".span-row")]
    assert all(bars[0]["x"] <= b["x"] and b["x"] + b["width"] <= bars[0]["x"] + bars[0]["width"] + 2 for b in bars)
    # Opened from the search, the matching span's details are shown: read its attribute.
    details = browser.find_element(By.ID, "span-details")
    wait_for(browser, lambda d: "customer.id" in details.text, "the matched span's details")
    value = details.find_element(By.CSS_SELECTOR, '.span-attributes tr[data-key="customer.id"] td').text
    assert value == "c-42"
    shot(browser, "03-waterfall-matched-span")

    # Collapse and expand the tree.
    root_toggle = rows(browser, ".span-row")[0].find_element(By.CSS_SELECTOR, "button.toggle")
    root_toggle.click()
    wait_for(browser, lambda d: len(rows(d, ".span-row")) == 1, "the tree to collapse")
    assert "+4" in rows(browser, ".span-row")[0].text
    rows(browser, ".span-row")[0].find_element(By.CSS_SELECTOR, "button.toggle").click()
    wait_for(browser, lambda d: len(rows(d, ".span-row")) == 5, "the tree to expand")

    # Expand the failing span: status, the exception's stack trace and the linked log.
    rows(browser, '.span-row[data-name="charge card"]')[0].click()
    wait_for(browser, lambda d: "Traceback" in d.find_element(By.ID, "span-details").text, "the stack trace")
    details = browser.find_element(By.ID, "span-details")
    assert "error" in details.find_element(By.CSS_SELECTOR, ".status-error").text
    stack = details.find_element(By.CSS_SELECTOR, "pre.stack").text
    assert "ValueError: card declined" in stack
    assert details.find_element(By.CSS_SELECTOR, ".summary tr:nth-child(2) td").text == charge_span
    wait_for(
        browser,
        lambda d: "card declined for customer c-42" in d.find_element(By.CSS_SELECTOR, ".span-logs").text,
        "the span's log",
    )
    shot(browser, "04-span-details-exception")

    # The linked logs page, filtered to the span; its link leads back to the span.
    details.find_element(By.CSS_SELECTOR, "a.span-logs-link").click()
    wait_for(browser, lambda d: len(rows(d, "#log-table tr.log-row")) == 1, "the span's log in the logs page")
    [log] = rows(browser, "#log-table tr.log-row")
    assert "WARN" in log.text and "payments" in log.text and "card declined for customer c-42" in log.text
    shot(browser, "05-linked-logs")
    log.find_element(By.CSS_SELECTOR, "a.log-span-link").click()
    wait_for(browser, lambda d: len(rows(d, ".span-row.selected")) == 1, "the log's span selected")
    assert rows(browser, ".span-row.selected")[0].get_attribute("data-span-id") == charge_span

    # The link on "load cart" leads to the earlier trace.
    rows(browser, '.span-row[data-name="load cart"]')[0].click()
    wait_for(browser, lambda d: "warm cache" in d.find_element(By.ID, "span-details").text, "the link's attributes")
    link = browser.find_element(By.CSS_SELECTOR, "#span-details .link a")
    assert link.text.startswith(health_trace)


def test_logs_page_filters_by_severity_and_text(browser, shop):
    viewer, checkout_trace, charge_span, _ = shop
    browser.get(f"http://127.0.0.1:{viewer.ui}/#/logs?live=0")
    wait_for(browser, lambda d: len(rows(d, "#log-table tr.log-row")) == 1, "the log list")
    text = browser.find_element(By.ID, "filter-text")
    text.send_keys("no such words")
    text.submit()
    wait_for(browser, lambda d: "No log records match" in d.find_element(By.ID, "log-results").text, "no match")
    browser.get(f"http://127.0.0.1:{viewer.ui}/#/logs?minSeverity=17")
    wait_for(browser, lambda d: "No log records match" in d.find_element(By.ID, "log-results").text, "nothing at ERROR")


def test_metrics_charts_and_service_map(browser, shop):
    viewer = shop[0]
    browser.get(f"http://127.0.0.1:{viewer.ui}/#/metrics")
    wait_for(browser, lambda d: len(rows(d, ".metric svg.chart")) == 3, "three charts in two metric cards")
    histogram = browser.find_element(By.CSS_SELECTOR, '[data-metric="shop.checkout.duration"]')
    # Both routes' latest points, folded: five values, four of them in distinct buckets.
    assert "histogram" in histogram.text and "count 5, sum 647.0ms" in histogram.text
    assert "over 2 attribute sets" in histogram.text
    per_set = [r.text for r in histogram.find_elements(By.CSS_SELECTOR, "table.per-set tr")]
    assert per_set == ["http.route=/checkout count 4, mean 136.8ms", "http.route=/cart count 1, mean 100.0ms"]
    bars = histogram.find_elements(By.CSS_SELECTOR, "svg.buckets rect")
    assert sum(float(r.get_attribute("height")) > 0 for r in bars) == 4, "five values land in four buckets"
    # One export, so one point per percentile line.
    assert len(histogram.find_elements(By.CSS_SELECTOR, 'svg[data-type="percentiles"] circle')) == 3
    counter = browser.find_element(By.CSS_SELECTOR, '[data-metric="shop.orders"]')
    assert "sum" in counter.text and "latest: 3 " in counter.text and "outcome=declined" in counter.text
    assert counter.find_elements(By.CSS_SELECTOR, "polyline")
    shot(browser, "06-metrics")

    browser.get(f"http://127.0.0.1:{viewer.ui}/#/map")
    wait_for(browser, lambda d: len(rows(d, "#edge-table tbody tr")) == 1, "the service map")
    [edge] = rows(browser, "#edge-table tbody tr")
    assert [c.text for c in edge.find_elements(By.TAG_NAME, "td")] == ["frontend", "payments", "1", "1"]
    assert {n.get_attribute("data-service") for n in rows(browser, ".service-map .node")} == {"frontend", "payments"}
    assert rows(browser, ".service-map .edge.failing")
    shot(browser, "07-service-map")


def test_live_list_behind_a_token(browser, tmp_path):
    viewer = Viewer("--token", "s3cret")
    try:
        browser.get(f"http://127.0.0.1:{viewer.ui}/")
        assert "missing or wrong bearer token" in browser.page_source
        browser.get(f"http://127.0.0.1:{viewer.ui}/?token=s3cret#/traces")
        wait_for(browser, lambda d: "No traces match" in d.find_element(By.ID, "main").text, "the empty list")
        # A trace sent now shows up on its own: the list is live by default.
        span = {
            "traceId": "ab" * 16,
            "spanId": "cd" * 8,
            "name": "late arrival",
            "startTimeUnixNano": "1",
            "endTimeUnixNano": "2",
        }
        body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
        status, _ = viewer.post(
            json.dumps(body).encode(), "application/json", headers={"Authorization": "Bearer s3cret"}
        )
        assert status == 200
        wait_for(browser, lambda d: trace_ids(d) == ["ab" * 16], "the live list to pick up a new trace")
    finally:
        browser.delete_all_cookies()
        viewer.process.kill()
        viewer.process.wait()


def test_a_page_under_another_name_cannot_read_the_viewer(browser, shop):
    viewer, checkout_trace, _, _ = shop
    browser.get(f"http://rebinding.test:{viewer.ui}/#/traces")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "does not name this viewer" in body and "--allow-host rebinding.test" in body
    browser.get(f"http://rebinding.test:{viewer.ui}/api/traces/{checkout_trace}")
    assert checkout_trace not in browser.page_source
    shot(browser, "08-rebinding-refused")


def test_traces_with_loops_missing_parents_and_great_depth_render_whole(browser):
    viewer = Viewer()
    page_errors(browser)  # what earlier tests caused on purpose
    try:
        tangled = "0c" * 16
        post_spans(
            viewer,
            [
                span_json(tangled, 1, None, "root", 100),
                span_json(tangled, 2, 0xDEAD, "orphan", 200),
                span_json(tangled, 3, 2, "orphan child", 300),
                span_json(tangled, 10, 12, "loop a", 400),
                span_json(tangled, 11, 10, "loop b", 500),
                span_json(tangled, 12, 11, "loop c", 600),
                span_json(tangled, 20, 20, "own parent", 700),
            ],
        )
        browser.get(f"http://127.0.0.1:{viewer.ui}/#/trace/{tangled}")
        wait_for(browser, lambda d: len(rows(d, ".span-row")) == 7, "all seven tangled spans")
        shown = [(r.get_attribute("data-name"), r.get_attribute("data-depth")) for r in rows(browser, ".span-row")]
        assert shown == [
            ("root", "0"),
            ("orphan", "0"),
            ("orphan child", "1"),
            ("loop a", "0"),
            ("loop b", "1"),
            ("loop c", "2"),
            ("own parent", "0"),
        ]
        assert [r.get_attribute("data-name") for r in rows(browser, ".span-row.orphan")] == ["orphan"]
        assert [r.get_attribute("data-name") for r in rows(browser, ".span-row.cycle")] == ["loop a", "own parent"]
        assert "parent missing" in rows(browser, ".span-row.orphan")[0].text
        shot(browser, "09-loops-and-orphans")

        deep = "0d" * 16
        depth = 20_000
        post_spans(viewer, [span_json(deep, n + 1, n or None, f"level {n}", n) for n in range(depth)])
        browser.get(f"http://127.0.0.1:{viewer.ui}/#/trace/{deep}")
        waterfall = wait_for(
            browser, lambda d: rows(d, f'#waterfall[data-rows="{depth}"]'), "a 20,000-deep chain", timeout=60
        )[0]
        # Only the rows in view are in the page; the last one is there once scrolled to.
        browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", waterfall)
        wait_for(browser, lambda d: rows(d, '.span-row[data-name="level 19999"]'), "the deepest span")
        last = rows(browser, '.span-row[data-name="level 19999"]')[0]
        assert last.get_attribute("data-depth") == "19999"
        assert not rows(browser, ".error-box") and not page_errors(browser)
        shot(browser, "10-deep-chain")
    finally:
        viewer.process.kill()
        viewer.process.wait()
