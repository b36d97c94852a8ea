"""ferrotel view's pages in a real headless Chromium at 1400×1000, on traces built to make
each promise checkable: a 60-level trace (names not clipped), a 221-span wide one with one
error far below the fold, a trace with a known critical path, two traces to compare, spans
searched by what developers type, live logs, metric series over time, eleven services. Each
test asserts layout facts the page must keep and saves screenshots under
tests/artifacts/view-ui/."""

import json
import time
import urllib.request

import pytest
from support.viewer import (
    ARTIFACTS,
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
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

MS = 1_000_000
NOW = time.time_ns()
BASE = NOW - 10 * 60_000 * MS

DEEP = "d1" * 16
WIDE = "e1" * 16
KNOWN = "c1" * 16
BEFORE, AFTER = "a1" * 16, "b1" * 16
APART = "5e" * 16
OLD = "01" * 16


def trace_of(*services_and_spans):
    return {"resourceSpans": [resource(service, spans) for service, spans in services_and_spans]}


def resource(service, spans):
    return {
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
    }


def deep_trace():
    """60 levels across six services, each name as long as a real route."""
    levels = {}
    for depth in range(60):
        span = span_json(DEEP, depth + 1, depth or None, f"GET /api/v1/level/{depth}/items", BASE + depth * MS)
        span["endTimeUnixNano"] = str(BASE + (200 - depth) * MS)
        levels.setdefault(f"service-{depth % 6}", []).append(span)
    return trace_of(*levels.items())


def wide_trace():
    """A root and 220 children; only child 200, far below the fold, fails."""
    children = []
    for i in range(220):
        child = span_json(WIDE, i + 2, 1, f"SELECT item {i}", BASE + i * MS // 2, 5 * MS)
        if i == 200:
            child["status"] = {"code": 2, "message": "deadlock"}
        children.append(child)
    return trace_of(("api", [span_json(WIDE, 1, None, "GET /catalog", BASE, 120 * MS)]), ("db", children))


def known_trace():
    """root 0–100 ms; A 10–40 and B 30–90 under it; C 50–80 under B, with an exception event.
    Its critical path: root 90–100, B 80–90, C 50–80, B 30–50, A 10–30, root 0–10."""
    exception = {"name": "exception", "timeUnixNano": str(BASE + 60 * MS)}
    exception["attributes"] = [{"key": "exception.type", "value": {"stringValue": "KeyError"}}]
    return trace_of(
        ("api", [span_json(KNOWN, 1, None, "root", BASE, 100 * MS)]),
        ("db", [span_json(KNOWN, 2, 1, "A", BASE + 10 * MS, 30 * MS)]),
        (
            "worker",
            [
                span_json(KNOWN, 3, 1, "B", BASE + 30 * MS, 60 * MS),
                span_json(KNOWN, 4, 3, "C", BASE + 50 * MS, 30 * MS, events=[exception]),
            ],
        ),
    )


def compared_traces():
    """BEFORE: root → x 20 ms, y 30 ms. AFTER: root → x 40 ms, y 30 ms, z 10 ms."""
    before = [
        span_json(BEFORE, 1, None, "root", BASE, 60 * MS),
        span_json(BEFORE, 2, 1, "x", BASE, 20 * MS),
        span_json(BEFORE, 3, 1, "y", BASE + 20 * MS, 30 * MS),
    ]
    after = [
        span_json(AFTER, 1, None, "root", BASE, 90 * MS),
        span_json(AFTER, 2, 1, "x", BASE, 40 * MS),
        span_json(AFTER, 3, 1, "y", BASE + 40 * MS, 30 * MS),
        span_json(AFTER, 4, 1, "z", BASE + 70 * MS, 10 * MS),
    ]
    return trace_of(("shop", before + after))


def apart_trace():
    """A client call and, in another span, the failure: conditions that only hold across spans."""
    client = span_json(APART, 1, None, "POST /orders", BASE, 20 * MS, kind=3)
    failing = span_json(APART, 2, 1, "save order", BASE + MS, 10 * MS, status={"code": 2})
    failing["events"] = [
        {
            "name": "exception",
            "timeUnixNano": str(BASE + 2 * MS),
            "attributes": [{"key": "exception.type", "value": {"stringValue": "IntegrityError"}}],
        }
    ]
    old = span_json(OLD, 1, None, "nightly job", NOW - 2 * 3600_000 * MS, 5 * MS)
    return trace_of(("frontend", [client]), ("orders", [failing]), ("batch", [old]))


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture(scope="module")
def viewer():
    v = Viewer()
    for dataset in (deep_trace(), wide_trace(), known_trace(), compared_traces(), apart_trace()):
        status, body = v.post(json.dumps(dataset).encode(), "application/json")
        assert status == 200, body
    yield v
    v.process.kill()
    v.process.wait()


def open_page(browser, viewer, route):
    browser.get(f"http://127.0.0.1:{viewer.ui}/#/{route}")


def no_horizontal_overflow(browser):
    return browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def name_of(browser, selector):
    """The span name of the row `selector` picks, read at once: rows are redrawn as they scroll."""
    script = "const row = document.querySelector(arguments[0]); return row && row.dataset.name"
    return browser.execute_script(script, selector)


CLIPPED_NAMES = """
return [...document.querySelectorAll('.span-row')].map((row) => {
  const name = row.querySelector('.span-name');
  return [row.dataset.name, name.scrollWidth > name.clientWidth + 1];
}).filter(([, clipped]) => clipped).map(([name]) => name);
"""


def test_a_60_level_trace_keeps_every_name_whole(browser, viewer):
    page_errors(browser)
    open_page(browser, viewer, f"trace/{DEEP}")
    waterfall = wait_for(browser, lambda d: rows(d, '#waterfall[data-rows="60"]'), "60 rows")[0]
    assert browser.execute_script(CLIPPED_NAMES) == []
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", waterfall)
    wait_for(browser, lambda d: rows(d, '.span-row[data-depth="59"]'), "the deepest span in view")
    assert browser.execute_script(CLIPPED_NAMES) == []
    deepest = rows(browser, '.span-row[data-depth="59"] .name-col')[0]
    assert deepest.get_attribute("title") == "service-5: GET /api/v1/level/59/items (depth 59)"
    # Names of six services, each with its colour in the legend.
    assert len(rows(browser, ".service-legend .legend-item")) == 6
    assert no_horizontal_overflow(browser)
    assert page_errors(browser) == []
    shot(browser, "20-deep-trace-names")


LABELS_OUT_OF_PLACE = """
return [...document.querySelectorAll('.span-row')].flatMap((row) => {
  const column = row.querySelector('.bar-col').getBoundingClientRect();
  const label = row.querySelector('.bar-label');
  const box = label.getBoundingClientRect();
  const style = getComputedStyle(label);
  const inside = label.classList.contains('inside');
  const white = style.color === 'rgb(255, 255, 255)';
  const misplaced = box.left < column.left - 1 || box.right > column.right + 1 || box.width === 0;
  return misplaced || inside !== white ? [row.dataset.name + ' ' + label.className] : [];
});
"""


def test_a_wide_trace_points_to_its_only_error_and_keeps_labels_readable(browser, viewer):
    open_page(browser, viewer, f"trace/{WIDE}")
    wait_for(browser, lambda d: rows(d, '#waterfall[data-rows="221"]'), "221 rows")
    # The error is far below the fold: not drawn, but the minimap shows it and a button goes there.
    assert not rows(browser, ".span-row.error")
    minimap = browser.find_element(By.ID, "minimap")
    assert minimap.is_displayed() and minimap.get_attribute("data-errors") == "1"
    assert browser.execute_script(LABELS_OUT_OF_PLACE) == []
    shot(browser, "21-wide-trace-top")
    browser.find_element(By.ID, "next-error").click()
    wait_for(browser, lambda d: rows(d, ".span-row.error.selected"), "the error selected")
    # Read at once: the rows are redrawn as the waterfall scrolls.
    name, top = browser.execute_script(
        "const row = document.querySelector('.span-row.error.selected');"
        "return [row.dataset.name, row.getBoundingClientRect().top];"
    )
    assert name == "SELECT item 200"
    box = browser.find_element(By.ID, "waterfall").rect
    assert box["y"] <= top and top + 24 <= box["y"] + box["height"]
    # The details sit beside the span, in view, not below the whole waterfall.
    panel = browser.find_element(By.ID, "span-details")
    wait_for(browser, lambda d: "deadlock" in panel.text, "the error's details")
    assert panel.rect["x"] > box["x"] + box["width"] - 2 and 0 <= panel.rect["y"] < 1000
    assert browser.execute_script(LABELS_OUT_OF_PLACE) == []
    assert no_horizontal_overflow(browser)
    shot(browser, "22-wide-trace-error")


def test_find_in_trace_expand_and_collapse_all(browser, viewer):
    open_page(browser, viewer, f"trace/{WIDE}")
    wait_for(browser, lambda d: rows(d, '#waterfall[data-rows="221"]'), "221 rows")
    browser.find_element(By.ID, "collapse-all").click()
    wait_for(browser, lambda d: rows(d, '#waterfall[data-rows="1"]'), "everything folded")
    find = browser.find_element(By.ID, "find-in-trace")
    find.send_keys("item 150")
    wait_for(browser, lambda d: d.find_element(By.ID, "find-count").text == "1 found", "one match")
    find.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: name_of(d, ".span-row.found.selected") == "SELECT item 150", "the match revealed")
    assert browser.find_element(By.ID, "waterfall").get_attribute("data-rows") == "221", "its parent unfolded"
    browser.find_element(By.ID, "expand-all").click()
    shot(browser, "23-find-in-trace")


def critical_micros(browser):
    return {r.get_attribute("data-name"): r.get_attribute("data-critical-us") for r in rows(browser, ".span-row")}


def test_critical_path_self_time_statistics_and_flame_graph(browser, viewer):
    open_page(browser, viewer, f"trace/{KNOWN}?critical=1")
    wait_for(browser, lambda d: len(rows(d, ".span-row")) == 4, "four spans")
    assert critical_micros(browser) == {"root": "20000", "A": "20000", "B": "30000", "C": "30000"}
    assert "null" not in browser.find_element(By.ID, "main").text.split()
    ruler = [t.text for t in rows(browser, ".ruler span")]
    assert ruler == ["0µs", "20.0ms", "40.0ms", "60.0ms", "80.0ms"]
    assert len(rows(browser, ".critical-segment")) == 6
    assert rows(browser, '.span-row[data-name="C"] .event-mark.exception')
    rows(browser, '.span-row[data-name="B"]')[0].click()
    panel = browser.find_element(By.ID, "span-details")
    wait_for(browser, lambda d: "Self time" in panel.text, "B's details")
    assert panel.find_element(By.CSS_SELECTOR, ".self-time").text == "30.0ms"
    shot(browser, "24-critical-path")

    browser.find_element(By.ID, "tab-statistics").click()
    table = wait_for(browser, lambda d: rows(d, "#trace-statistics tbody tr"), "the statistics")
    self_times = {r.get_attribute("data-operation"): r.find_element(By.CSS_SELECTOR, ".self-total").text for r in table}
    assert self_times == {"api: root": "20.0ms", "db: A": "30.0ms", "worker: B": "30.0ms", "worker: C": "30.0ms"}
    assert not browser.find_element(By.ID, "span-details").is_displayed()
    assert no_horizontal_overflow(browser)
    shot(browser, "25-statistics")

    browser.find_element(By.ID, "tab-flame").click()
    frames = wait_for(browser, lambda d: rows(d, "#flame-graph .frame"), "the flame graph")
    assert len(frames) == 4
    graph = browser.find_element(By.ID, "flame-graph").rect
    by_name = {f.text: f for f in frames}
    assert by_name["root"].rect["width"] == pytest.approx(graph["width"], abs=2)
    assert by_name["C"].rect["width"] == pytest.approx(graph["width"] * 0.3, abs=2)
    assert by_name["C"].get_attribute("data-depth") == "2"
    by_name["C"].click()
    wait_for(browser, lambda d: "KeyError" in d.find_element(By.ID, "span-details").text, "C's details")
    shot(browser, "26-flame-graph")


def test_compare_two_traces_path_by_path(browser, viewer):
    open_page(browser, viewer, "traces?live=0&service=shop")
    wait_for(browser, lambda d: sorted(trace_ids(d)) == [BEFORE, AFTER], "the two shop traces")
    for trace in (BEFORE, AFTER):
        browser.find_element(By.CSS_SELECTOR, f'tr[data-trace-id="{trace}"] input.choose').click()
    browser.find_element(By.ID, "compare-selected").click()
    table = wait_for(browser, lambda d: rows(d, "#compare-table tbody tr"), "the comparison")
    states = {r.get_attribute("data-path"): r.get_attribute("class").split()[-1] for r in table}
    assert states == {
        "shop: root": "slower",
        "shop: root > shop: x": "slower",
        "shop: root > shop: y": "same",
        "shop: root > shop: z": "only-b",
    }
    assert "1 only in B" in browser.find_element(By.ID, "compare-summary").text
    assert no_horizontal_overflow(browser)
    shot(browser, "27-compare")


def search(browser, attributes):
    tags = browser.find_element(By.ID, "filter-tags")
    tags.clear()
    tags.send_keys(attributes)
    browser.find_element(By.ID, "search").click()


def test_search_what_developers_type(browser, viewer):
    open_page(browser, viewer, "traces?live=0")
    wait_for(browser, lambda d: trace_ids(d), "the list")
    for condition in ("error=true", "exception.type=IntegrityError", "otel.status_code=ERROR"):
        search(browser, condition)
        wait_for(browser, lambda d: APART in trace_ids(d), f"{condition} to find the failing trace")
    search(browser, "span.kind=client error=true")
    hint = wait_for(browser, lambda d: rows(d, "#search-hint"), "the hint about several spans")[0]
    assert "1 trace meets them across several spans" in hint.text
    shot(browser, "28-search-hint")
    browser.find_element(By.ID, "match-across").click()
    wait_for(browser, lambda d: trace_ids(d) == [APART], "the trace matched across spans")

    # A trace id opens the trace; a page of results says how many there are in all.
    open_page(browser, viewer, "traces?live=0&limit=2")
    count = wait_for(browser, lambda d: rows(d, "#result-count"), "the count")[0]
    wait_for(browser, lambda d: count.text.startswith("2 of 7 traces shown"), "2 of 7")
    browser.find_element(By.ID, "load-more").click()
    wait_for(browser, lambda d: len(trace_ids(d)) == 7, "all seven after loading more")
    box = browser.find_element(By.ID, "trace-id")
    box.send_keys(KNOWN, Keys.ENTER)
    wait_for(browser, lambda d: len(rows(d, ".span-row")) == 4, "the trace opened by its id")

    # An absolute time range: only the job two hours ago.
    open_page(browser, viewer, "traces?live=0&lookback=custom")
    wait_for(browser, lambda d: rows(d, "#filter-from"), "the range inputs")
    local = time.strftime("%Y-%m-%dT%H:%M", time.localtime((NOW - 3 * 3600 * 10**9) / 1e9))
    until = time.strftime("%Y-%m-%dT%H:%M", time.localtime((NOW - 3600 * 10**9) / 1e9))
    browser.execute_script(
        "document.getElementById('filter-from').value = arguments[0];"
        "document.getElementById('filter-to').value = arguments[1];",
        local,
        until,
    )
    browser.find_element(By.ID, "search").click()
    wait_for(browser, lambda d: trace_ids(d) == [OLD], "only the old trace in the range")
    assert no_horizontal_overflow(browser)
    shot(browser, "29-search-time-range")


def log_record(seconds_ago, body, **attributes):
    record = {
        "timeUnixNano": str(NOW - seconds_ago * 10**9),
        "severityNumber": 17,
        "severityText": "ERROR",
        "body": {"stringValue": body},
        "attributes": [{"key": k.replace("_", "."), "value": {"stringValue": v}} for k, v in attributes.items()],
    }
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}


def post_log(viewer, *args, **kwargs):
    assert viewer.post_to("/v1/logs", json.dumps(log_record(*args, **kwargs)).encode(), "application/json")[0] == 200


def test_live_logs_keep_what_is_open_and_can_pause(browser, viewer):
    stack = 'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\nKeyError: 7'
    post_log(viewer, 60, "order lookup failed", exception_type="KeyError", exception_stacktrace=stack)
    post_log(viewer, 120, "earlier, arrived later")
    open_page(browser, viewer, "logs")
    wait_for(browser, lambda d: len(rows(d, "#log-table tr.log-row")) == 2, "two records")
    bodies = [r.find_element(By.CSS_SELECTOR, ".message").text.split("\n")[0] for r in rows(browser, "tr.log-row")]
    assert bodies == ["order lookup failed", "earlier, arrived later"], "newest first by time, not arrival"
    assert not browser.find_element(By.ID, "main").text.startswith("null")
    first = rows(browser, "tr.log-row")[0]
    assert "KeyError: 7" in first.find_element(By.CSS_SELECTOR, "pre.stack").text
    first.find_element(By.CSS_SELECTOR, "summary").click()
    details = first.find_element(By.CSS_SELECTOR, "details")
    assert details.get_attribute("open") is not None
    # The expanded attribute values are not styled as the severity cell is.
    value = details.find_element(By.CSS_SELECTOR, "td")
    severity = first.find_element(By.CSS_SELECTOR, "td.severity")
    assert value.value_of_css_property("color") != severity.value_of_css_property("color")
    assert value.value_of_css_property("font-weight") == "400"

    post_log(viewer, 1, "a new failure")
    wait_for(browser, lambda d: len(rows(d, "tr.log-row")) == 3, "the new record, live")
    assert rows(browser, "tr.log-row")[0].find_element(By.CSS_SELECTOR, ".message").text == "a new failure"
    assert details.get_attribute("open") is not None, "the row opened before is still open"
    shot(browser, "30-live-logs-kept-open")

    browser.find_element(By.ID, "live-toggle").click()
    assert browser.find_element(By.ID, "live-toggle").text == "▶ Resume live"
    post_log(viewer, 0, "while paused")
    time.sleep(4)  # longer than a refresh: nothing may arrive while paused
    assert len(rows(browser, "tr.log-row")) == 3
    browser.find_element(By.ID, "live-toggle").click()
    wait_for(browser, lambda d: len(rows(d, "tr.log-row")) == 4, "the record sent while paused")
    assert no_horizontal_overflow(browser)


def histogram_point(seconds_ago, route, counts, exemplar_span=None):
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
    point = {
        "timeUnixNano": str(NOW - seconds_ago * 10**9),
        "startTimeUnixNano": str(NOW - 3600 * 10**9),
        "count": str(sum(counts)),
        "sum": 0.01 * sum(counts),
        "bucketCounts": [str(c) for c in counts],
        "explicitBounds": bounds,
        "attributes": [
            {"key": "http.route", "value": {"stringValue": route}},
            {"key": "http.request.method", "value": {"stringValue": "GET"}},
            {"key": "url.scheme", "value": {"stringValue": "http"}},
        ],
    }
    if exemplar_span:
        point["exemplars"] = [
            {
                "timeUnixNano": point["timeUnixNano"],
                "asDouble": 0.042,
                "traceId": KNOWN,
                "spanId": exemplar_span,
            }
        ]
    return point


def test_metric_cards_fit_show_percentiles_and_old_exemplars(browser, viewer):
    routes = ["/checkout/{order_id}/confirm", "/cart", "/health", "/api/v1/products/{product_id}/reviews"]
    points = []
    for step, seconds_ago in enumerate((180, 120, 60)):
        for i, route in enumerate(routes):
            counts = [0, step + 1, 2 * (step + 1), 0, step, 0, 0, 0, i]
            exemplar = f"{4:016x}" if step == 0 and i == 0 else None
            points.append(histogram_point(seconds_ago, route, counts, exemplar))
    duration = {"dataPoints": points, "aggregationTemporality": 2}
    metric = {"name": "http.server.request.duration", "unit": "s", "histogram": duration}
    request = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]}
    assert viewer.post_to("/v1/metrics", json.dumps(request).encode(), "application/json")[0] == 200
    open_page(browser, viewer, "metrics?live=0")
    wait_for(browser, lambda d: rows(d, '[data-metric="http.server.request.duration"] svg.buckets'), "the histogram")
    card = browser.find_element(By.CSS_SELECTOR, '[data-metric="http.server.request.duration"]')
    assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth", card)
    for row in card.find_elements(By.CSS_SELECTOR, "table.per-set tr"):
        assert row.rect["x"] + row.rect["width"] <= card.rect["x"] + card.rect["width"] + 1
    assert len(card.find_elements(By.CSS_SELECTOR, "table.per-set tr")) == 4
    percentiles = card.find_element(By.CSS_SELECTOR, 'svg[data-type="percentiles"]')
    assert len(percentiles.find_elements(By.CSS_SELECTOR, "polyline")) == 3
    lines = percentiles.find_elements(By.CSS_SELECTOR, "polyline")
    assert all(len(line.get_attribute("points").split()) == 3 for line in lines)
    ticks = [t.text for t in percentiles.find_elements(By.CSS_SELECTOR, ".axes > g > text")]
    assert len(ticks) >= 3 and all(t.endswith("s") for t in ticks), ticks
    assert len(percentiles.find_elements(By.CSS_SELECTOR, "line.gridline")) >= 3
    # The exemplar came with the oldest point; the card still links it to its span.
    [link] = card.find_elements(By.CSS_SELECTOR, "a.exemplar-link")
    assert link.get_attribute("href").endswith(f"#/trace/{KNOWN}?span={4:016x}") and link.text == "42.0ms"
    assert no_horizontal_overflow(browser)
    shot(browser, "31-metrics-cards")


def test_services_red_summary_and_layered_map(browser):
    viewer = Viewer()
    try:
        # Eleven services in four layers: gateway → 3 → 4 → 3, every service serving.
        calls = {
            "gateway": ["auth", "catalog", "orders"],
            "auth": ["users"],
            "catalog": ["search", "pricing"],
            "orders": ["payments", "pricing"],
            "search": ["index"],
            "payments": ["ledger", "fraud"],
        }
        services = ["gateway", "auth", "catalog", "orders", "users", "search", "pricing", "payments", "index"]
        services += ["ledger", "fraud"]
        number = iter(range(1, 10_000))
        spans_by_service = {s: [] for s in services}
        trace = "7a" * 16
        ids = {}
        for service in services:
            ids[service] = next(number)
        for service in services:
            parent = next((p for p, children in calls.items() if service in children), None)
            span = span_json(trace, ids[service], ids.get(parent), f"GET /{service}", BASE, 10 * MS, kind=2)
            if service == "fraud":
                span["status"] = {"code": 2}
            spans_by_service[service].append(span)
        for service, spans in spans_by_service.items():
            post_spans(viewer, spans, service=service)
        open_page(browser, viewer, "services?live=0")
        table = wait_for(browser, lambda d: len(rows(d, "#red-table tr.service-row")) == 11, "11 services")
        fraud = browser.find_element(By.CSS_SELECTOR, 'tr.service-row[data-service="fraud"]')
        assert [c.text for c in fraud.find_elements(By.CSS_SELECTOR, "td")][2:5] == ["1", "1", "100%"]
        assert table
        svg_map = browser.find_element(By.CSS_SELECTOR, "svg.service-map")
        assert svg_map.get_attribute("data-layers") == "4"
        boxes = [n.find_element(By.CSS_SELECTOR, "rect").rect for n in rows(browser, ".service-map .node")]
        assert len(boxes) == 11
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                apart = (
                    a["x"] + a["width"] <= b["x"]
                    or b["x"] + b["width"] <= a["x"]
                    or a["y"] + a["height"] <= b["y"]
                    or b["y"] + b["height"] <= a["y"]
                )
                assert apart, (a, b)
        assert no_horizontal_overflow(browser)
        shot(browser, "32-services")
        browser.find_element(By.CSS_SELECTOR, '.service-map .node[data-service="payments"]').click()
        wait_for(browser, lambda d: "service=payments" in d.current_url and trace_ids(d) == [trace], "its traces")
    finally:
        viewer.process.kill()
        viewer.process.wait()


def test_dark_mode_keyboard_favicon_and_upload(browser, viewer, tmp_path):
    with urllib.request.urlopen(viewer.api("/favicon.ico"), timeout=10) as response:
        assert (response.status, response.headers["Content-Type"]) == (200, "image/svg+xml")

    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    try:
        open_page(browser, viewer, f"trace/{KNOWN}")
        wait_for(browser, lambda d: len(rows(d, ".span-row")) == 4, "the trace, dark")
        background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(c) for c in background[4:-1].split(", ")[:3])
        assert red + green + blue < 120, background
        shot(browser, "33-dark-mode")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    def press(*keys):
        ActionChains(browser).send_keys(*keys).perform()

    press("j")
    wait_for(browser, lambda d: rows(d, '.span-row.selected[data-name="root"]'), "j selects the first span")
    press("j")
    wait_for(browser, lambda d: rows(d, '.span-row.selected[data-name="A"]'), "j moves down")
    press(Keys.ESCAPE)
    wait_for(browser, lambda d: not rows(d, ".span-row.selected"), "Esc lets go")
    press("?")
    wait_for(browser, lambda d: d.find_element(By.ID, "help").is_displayed(), "the help")
    shot(browser, "34-keyboard-help")
    press(Keys.ESCAPE)
    wait_for(browser, lambda d: not d.find_element(By.ID, "help").is_displayed(), "the help closed")
    press("/")
    assert browser.switch_to.active_element.get_attribute("id") == "find-in-trace"

    open_page(browser, viewer, "traces?live=0")
    wait_for(browser, lambda d: trace_ids(d), "the list")
    press("j", Keys.ENTER)
    wait_for(browser, lambda d: "#/trace/" in d.current_url, "Enter opens the focused trace")

    # Upload: the known trace under a new id, as a user would load a downloaded file.
    with urllib.request.urlopen(viewer.api(f"/api/traces/{KNOWN}/otlp"), timeout=10) as response:
        exported = response.read().decode()
    uploaded = "f0" * 16
    path = tmp_path / "trace.json"
    path.write_text(exported.replace(KNOWN, uploaded))
    open_page(browser, viewer, "traces?live=0")
    field = wait_for(browser, lambda d: rows(d, "#upload-file"), "the upload field")[0]
    browser.execute_script("arguments[0].hidden = false", field)
    field.send_keys(str(path))
    wait_for(browser, lambda d: d.current_url.endswith(f"#/trace/{uploaded}"), "the uploaded trace opened")
    wait_for(browser, lambda d: len(rows(d, ".span-row")) == 4, "its four spans")
    assert page_errors(browser) == []
    assert (ARTIFACTS / "33-dark-mode.png").exists()
