"""Publishes the tasks of tasks.py inside one span of the caller's and waits for each result,
so every task's spans belong to the caller's trace."""

from opentelemetry import trace
from tasks import add, fail, flaky

with trace.get_tracer("client").start_as_current_span("client"):
    assert add.delay(2, 3).get(timeout=30) == 5
    try:
        fail.delay().get(timeout=30)
    except ValueError:
        pass
    else:
        raise AssertionError("fail() did not fail")
    assert flaky.delay().get(timeout=30) == "done"
print("published")
