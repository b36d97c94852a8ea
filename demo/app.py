"""The demo application: a small seed-style Flask service, with no OpenTelemetry code at all.

`/server_request` is the seed's route; `/chain` calls the service itself over HTTP with
requests and queries SQLite; `/error` raises; anything else is a 404.
"""

import sqlite3
import sys

import requests
from flask import Flask, request

app = Flask(__name__)
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8082
db = sqlite3.connect(":memory:", check_same_thread=False)
db.execute("CREATE TABLE visits (param TEXT)")


@app.route("/server_request")
def server_request():
    param = request.args.get("param", "")
    db.execute("INSERT INTO visits VALUES (?)", (param,))
    return "served"


@app.route("/chain")
def chain():
    answer = requests.get(f"http://127.0.0.1:{PORT}/server_request", params={"param": "chained"}, timeout=5)
    (count,) = db.execute("SELECT count(*) FROM visits").fetchone()
    return f"{answer.text} ({count} visits)"


@app.route("/error")
def error():
    raise RuntimeError("demo failure")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT)
