"""Scenario a: a trivial Flask route, served by gunicorn's sync worker."""

import counter
from flask import Flask

app = Flask(__name__)


@app.route("/users/<int:uid>")
def user(uid):
    counter.handled += 1
    return "ok"
