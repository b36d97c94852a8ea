"""A real `ferrotel view` on free ports, and apps run under ferrotel's or upstream's
launcher exporting to it."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.processes import FERROTEL, ROOT, clean_env, free_port, instrument, run

# Upstream's pinned venv (bench/upstream-requirements.txt), made by scripts/test.
UPSTREAM = Path(os.environ.get("FERROTEL_UPSTREAM_VENV", ROOT / ".venv-upstream")) / "bin"


class Api:
    """The query API of a viewer listening on `ui`."""

    def __init__(self, ui):
        self.ui = ui

    def api(self, path):
        return f"http://127.0.0.1:{self.ui}{path}"

    def get(self, path):
        with urllib.request.urlopen(self.api(path), timeout=10) as response:
            return json.loads(response.read())


class Viewer(Api):
    def __init__(self, *extra):
        # free_port() releases each port before the viewer binds it, so another socket can
        # take one in between: a start that fails on a taken port is retried on new ones.
        for _ in range(5):
            self.grpc, self.http, self.ui = free_port(), free_port(), free_port()
            ports = ["--grpc", str(self.grpc), "--http", str(self.http), "--ui", str(self.ui)]
            self.process = subprocess.Popen(
                [FERROTEL, "view", *ports, *extra],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            if self._wait_listening():
                return
            error = self.process.stderr.read()
            assert "already in use" in error, error
        raise AssertionError("no free ports for the viewer after 5 attempts")

    def _wait_listening(self):
        """True once the UI port answers; False if the viewer exited first."""
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.ui), timeout=1).close()
                return True
            except OSError:
                if self.process.poll() is not None:
                    return False
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise AssertionError(
                        f"the viewer did not listen within 20 s: {self.process.communicate()[1]}"
                    ) from None
                time.sleep(0.05)

    def post(self, body, content_type, encoding=None, headers=None):
        return self.post_to("/v1/traces", body, content_type, encoding, headers)

    def post_to(self, path, body, content_type, encoding=None, headers=None):
        headers = {"Content-Type": content_type, **(headers or {})}
        if encoding:
            headers["Content-Encoding"] = encoding
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", body, headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        return self.process.communicate(timeout=10)


def endpoint(viewer, protocol):
    return f"http://127.0.0.1:{viewer.grpc if protocol == 'grpc' else viewer.http}"


def run_ferrotel(viewer, tmp, source, protocol, **env):
    """Runs `source` under `ferrotel instrument`, exporting to `viewer` over `protocol` (to a
    closed port without a viewer); `env` adds or overrides variables. Returns the result."""
    app = tmp / "app.py"
    app.write_text(source)
    settings = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint(viewer, protocol) if viewer else "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
    }
    result = instrument("python", app, env=clean_env(**{**settings, **env}))
    assert result.returncode == 0, result.stderr
    return result


def run_upstream(viewer, tmp, source, protocol, **env):
    """Runs `source` under upstream's opentelemetry-instrument, exporting only what `env`
    turns on to the viewer; returns the app's stdout words."""
    app = tmp / "app.py"
    app.write_text(source)
    settings = {
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint(viewer, protocol),
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "PATH": f"{UPSTREAM}{os.pathsep}{os.environ['PATH']}",
        **env,
    }
    result = run(UPSTREAM / "opentelemetry-instrument", UPSTREAM / "python", app, env=clean_env(**settings))
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


LOGGING_APP = """
import logging
from opentelemetry import trace
logging.getLogger().setLevel(logging.INFO)
with trace.get_tracer("logs.test").start_as_current_span("handle order") as span:
    logging.getLogger("shop").warning("card declined for order %s", 42)
logging.getLogger("shop").info("outside any span")
print(format(span.get_span_context().trace_id, "032x"))
print(format(span.get_span_context().span_id, "016x"))
"""


# ---- the web UI in a real headless Chromium (Debian's, through chromedriver) ----------------

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts" / "view-ui"


class Browser:
    """A headless Chromium at 1400×1000 that saves screenshots under tests/artifacts/view-ui/."""

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="ferrotel-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # The machine's network is closed: keep Chromium from trying to phone home.
        for flag in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,1000",
            # A name of another site that resolves to this machine, as a DNS rebinding attack sets up.
            "--host-resolver-rules=MAP rebinding.test 127.0.0.1",
            f"--user-data-dir={self.profile}",
        ]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.implicitly_wait(0)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def close(self):
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


def chromium():
    """The body of a module-scoped `browser` fixture: a Chromium driver, or the test skipped
    (failed under CI) when Debian's chromium and chromium-driver are missing."""
    import pytest

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        missing = "needs Debian's chromium and chromium-driver (scripts/test installs them)"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    browser = Browser()
    yield browser.driver
    browser.close()


def wait_for(driver, condition, what, timeout=10):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        # The page re-renders as data arrives: an element read mid-render is simply read again.
        wait = WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException])
        return wait.until(lambda d: condition(d))
    except Exception as error:
        shot(driver, "failed-" + what.replace(" ", "-"))
        page = driver.find_element("id", "main").text
        raise AssertionError(f"timed out waiting for {what}; page: {page}") from error


def shot(driver, name):
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def rows(driver, selector):
    return driver.find_elements("css selector", selector)


def trace_ids(driver):
    return [r.get_attribute("data-trace-id") for r in rows(driver, "#trace-table tbody tr")]


def page_errors(driver):
    """What the page logged at error level (scripts that failed, policies that refused)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def post_spans(viewer, spans, service=None):
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]} if service else {}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    status, _ = viewer.post(json.dumps(body).encode(), "application/json")
    assert status == 200


def span_json(trace, number, parent, name, start, duration=1000, **extra):
    """An OTLP/JSON span; times in nanoseconds."""
    fields = {"traceId": trace, "spanId": f"{number:016x}", "name": name}
    fields |= {"startTimeUnixNano": str(start), "endTimeUnixNano": str(start + duration)}
    fields |= {"parentSpanId": f"{parent:016x}"} if parent is not None else {}
    return fields | extra
