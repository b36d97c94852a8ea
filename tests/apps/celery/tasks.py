"""The Celery app of tests/test_messaging_rpc.py: a task that succeeds, one that fails and
one that retries once, on the redis broker and result backend that CELERY_BROKER names."""

import os

from celery import Celery

app = Celery("tasks", broker=os.environ["CELERY_BROKER"], backend=os.environ["CELERY_BROKER"])
app.conf.broker_connection_retry_on_startup = True


@app.task
def add(x, y):
    return x + y


@app.task
def fail():
    raise ValueError("boom")


@app.task(bind=True, max_retries=1)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(exc=RuntimeError("not yet"), countdown=0)
    return "done"
