"""A pytest plugin copied next to a third-party project's tests (so `-p ferrotel_outcomes`
imports it from the current directory): every test's outcome, appended as one JSON line per
report to the file named by FERROTEL_SUITE_OUTCOMES as it happens, so even a run that is
killed leaves what it got through. It only observes; the project's own configuration and
plugins run as they would without it."""

import json
import os


def pytest_configure(config):
    config.pluginmanager.register(Recorder(os.environ["FERROTEL_SUITE_OUTCOMES"]), "ferrotel-outcomes-recorder")


def _message(report):
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return report.longrepr[2]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    lines = str(report.longrepr or "").strip().splitlines()
    return lines[-1] if lines else ""


class Recorder:
    def __init__(self, path):
        # Open for the whole session; flushed after every line.
        self.file = open(path, "a", encoding="utf-8")

    def write(self, test, outcome, phase, message):
        self.file.write(json.dumps({"test": test, "outcome": outcome, "phase": phase, "message": message}) + "\n")
        self.file.flush()

    def pytest_runtest_logreport(self, report):
        # Setup and teardown only matter when they did not pass (an error or a skip).
        if report.when != "call" and report.passed:
            return
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        self.write(report.nodeid, outcome, report.when, _message(report))

    def pytest_collectreport(self, report):
        if report.failed:
            self.write(report.nodeid, "failed", "collect", _message(report))

    def pytest_unconfigure(self):
        self.file.close()
