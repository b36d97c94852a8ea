"""Creates the database a scenario reads, run bare before its server starts so that no setup
statement becomes a span. Usage: python prepare.py django|sqlite3 PATH"""

import sqlite3
import sys

ITEMS = [(i, f"item-{i}", (i * 37) % 101) for i in range(1, 101)]


def prepare_sqlite3(path):
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price INTEGER)")
        connection.executemany("INSERT INTO items VALUES (?, ?, ?)", ITEMS)


def prepare_django(path):
    import os

    import django

    os.environ["BENCH_DB"] = path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangoapp.settings")
    django.setup()
    from django.db import connection
    from djangoapp.models import Item

    with connection.schema_editor() as editor:
        editor.create_model(Item)
    Item.objects.bulk_create(Item(id=i, name=name, price=price) for i, name, price in ITEMS)


if __name__ == "__main__":
    {"django": prepare_django, "sqlite3": prepare_sqlite3}[sys.argv[1]](sys.argv[2])
