"""The Celery app of tests/test_messaging_rpc.py: a task that succeeds (and logs through a
module logger and Celery's task logger), one that fails and one that retries once, on the
redis broker and result backend that CELERY_BROKER names."""

import logging
import os

from celery import Celery
from celery.utils.log import get_task_logger

app = Celery("tasks", broker=os.environ["CELERY_BROKER"], backend=os.environ["CELERY_BROKER"])
app.conf.broker_connection_retry_on_startup = True
module_log = logging.getLogger(__name__)
task_log = get_task_logger(__name__)


@app.task
def add(x, y):
    module_log.warning("adding %s and %s (module logger)", x, y)
    task_log.warning("adding %s and %s (task logger)", x, y)
    return x + y


@app.task
def fail():
    raise ValueError("boom")


@app.task(bind=True, max_retries=1)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(exc=RuntimeError("not yet"), countdown=0)
    return "done"
