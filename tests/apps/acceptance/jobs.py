"""The Celery app of the FastAPI shop, on the redis broker CELERY_BROKER names. The task
marks the order shipped in redis, so the test can tell when the worker has run it."""

import logging
import os

import redis
from celery import Celery

app = Celery("jobs", broker=os.environ["CELERY_BROKER"])
app.conf.broker_connection_retry_on_startup = True
app.conf.task_ignore_result = True


@app.task
def ship(order_id):
    logging.getLogger("jobs").warning("shipping order %s", order_id)
    redis.Redis.from_url(os.environ["CELERY_BROKER"]).set(f"shipped:{order_id}", "yes")
