"""Scenario d: a Flask route (gunicorn, sync worker) that asks a local service over `requests`
and runs three sqlite3 statements, the shape of a typical backend endpoint. The connection
and the HTTP session live as long as the worker, as a pool's would."""

import os
import sqlite3

import counter
import requests
from flask import Flask

app = Flask(__name__)
session = requests.Session()
stock_service = os.environ["BENCH_DOWNSTREAM"]
cursor = sqlite3.connect(os.environ["BENCH_DB"], check_same_thread=False).cursor()


@app.route("/orders/<int:oid>")
def order(oid):
    counter.handled += 1
    item = oid % 100 + 1
    stock = session.get(f"{stock_service}/stock/{item}", timeout=5).text
    cursor.execute("SELECT name, price FROM items WHERE id = ?", (item,))
    name, price = cursor.fetchone()
    cursor.execute("SELECT COUNT(*) FROM items WHERE price > ?", (price,))
    dearer = cursor.fetchone()[0]
    cursor.execute("SELECT SUM(price) FROM items WHERE id <= ?", (item,))
    total = cursor.fetchone()[0]
    return {"name": name, "stock": stock, "dearer": dearer, "total": total}
