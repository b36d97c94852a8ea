"""Django's own test settings (tests/test_sqlite.py: SQLite, the default backend) with the
runner that records each test's outcome."""

from test_sqlite import *  # noqa: F403

TEST_RUNNER = "ferrotel_django_outcomes.Runner"
