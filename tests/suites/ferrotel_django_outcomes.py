"""Django's own test runner, also writing every test's outcome as a JSON line to the file
named by FERROTEL_SUITE_OUTCOMES. Copied into Django's tests/ directory and selected by
ferrotel_django_settings (TEST_RUNNER). With --parallel, the workers' results are replayed
onto this result class in the parent, so one process writes every line."""

import json
import os
import traceback
import unittest

from django.test.runner import DiscoverRunner


class Result(unittest.TextTestResult):
    def record(self, test, outcome, message=""):
        line = {"test": test.id(), "outcome": outcome, "phase": "call", "message": message}
        with open(os.environ["FERROTEL_SUITE_OUTCOMES"], "a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")

    @staticmethod
    def describe(err):
        return "".join(traceback.format_exception_only(err[0], err[1])).strip()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.record(test, "failed", self.describe(err))

    def addError(self, test, err):
        super().addError(test, err)
        self.record(test, "failed", self.describe(err))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.record(test, "failed", f"{subtest}: {self.describe(err)}")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.record(test, "skipped", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.record(test, "xfailed", self.describe(err))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.record(test, "xpassed")


class Runner(DiscoverRunner):
    def get_resultclass(self):
        return Result
