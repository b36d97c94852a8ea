"""ferrotel's built-in sqlite3 instrumentation under `ferrotel instrument`: a span per
statement, whether run by a cursor or by the connection's own shortcuts (which upstream
misses), with query text stripped of literal values, and failures recorded; one connection
traced by `instrument_connection` and the DB-API layer's functions in upstream's shape."""

import json
import subprocess
import textwrap

from support.console import console_spans
from support.processes import PYTHON, clean_env, instrument, run
from support.viewer import UPSTREAM

APP = textwrap.dedent(
    """
    import sqlite3
    from opentelemetry import trace

    class MyConnection(sqlite3.Connection):
        pass

    with trace.get_tracer("app").start_as_current_span("work"):
        db = sqlite3.connect(":memory:")
        assert isinstance(db, sqlite3.Connection)
        db.execute("CREATE TABLE visits (param TEXT, n INTEGER)")
        db.execute("INSERT INTO visits VALUES (?, ?)", ("a", 1))
        db.executemany("INSERT INTO visits VALUES (?, ?)", [("b", 2), ("c", 3)])
        db.executescript("UPDATE visits SET n = n + 1; DELETE FROM visits WHERE n > 10;")
        cursor = db.cursor()
        cursor.execute("SELECT count(*) FROM visits WHERE param = 'secret' AND n > 2")
        print("count", cursor.fetchone()[0])
        try:
            db.execute("SELEC nonsense")
        except sqlite3.OperationalError:
            pass
        custom = sqlite3.connect(":memory:", factory=MyConnection)
        assert isinstance(custom, MyConnection)
        custom.execute("SELECT 1")
    """
)


def test_statements_become_spans(tmp):
    (tmp / "app.py").write_text(APP)
    result = instrument("--traces_exporter", "console", PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert "count 0" in result.stdout  # no row has param 'secret'; the query still ran
    spans = console_spans(result.stdout)
    (work,) = [s for s in spans if s["name"] == "work"]
    db = [s for s in spans if s["kind"] == "CLIENT"]
    assert [s["name"] for s in db] == [
        "CREATE visits",
        "INSERT visits",
        "INSERT visits",
        "UPDATE visits",
        "SELECT visits",
        "SELEC",
        "SELECT",
    ]
    assert all(s["parent"] == work["span_id"] for s in db)
    select = db[4]
    assert select["attributes"] == {
        "db.system.name": '"sqlite"',
        "db.namespace": '":memory:"',
        "db.query.text": '"SELECT count(*) FROM visits WHERE param = ? AND n > ?"',
        "db.operation.name": '"SELECT"',
        "db.collection.name": '"visits"',
    }
    failed = db[5]
    assert failed["status"].startswith("ERROR: OperationalError")
    assert failed["attributes"]["error.type"] == '"sqlite3.OperationalError"'
    assert failed["events"] == ["exception"]


def test_database_dup_adds_the_old_names(tmp):
    (tmp / "app.py").write_text(APP)
    env_flags = ["--traces_exporter", "console", "--semconv_stability_opt_in", "database/dup"]
    result = instrument(*env_flags, PYTHON, "app.py", cwd=tmp)
    select = [s for s in console_spans(result.stdout) if s["name"] == "SELECT visits"][0]
    assert select["attributes"]["db.statement"] == '"SELECT count(*) FROM visits WHERE param = ? AND n > ?"'
    assert select["attributes"]["db.system"] == '"sqlite"'


def test_disabled_sqlite3_records_nothing(tmp):
    (tmp / "app.py").write_text(APP)
    result = instrument(
        "--traces_exporter", "console", "--disabled_instrumentations", "sqlite3", PYTHON, "app.py", cwd=tmp
    )
    assert [s["name"] for s in console_spans(result.stdout)] == ["work"]


METRICS_APP = """
    import sqlite3, sys
    from opentelemetry import metrics
    from ferrotel.instrumentation.sqlite3 import SQLite3Instrumentor

    instrumentor = SQLite3Instrumentor()
    if sys.argv[1] == "noop":
        instrumentor.instrument(meter_provider=metrics.NoOpMeterProvider())
    else:
        instrumentor.instrument()
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a INTEGER)")
    db.execute("SELECT a FROM t WHERE a = 1")
    try:
        db.execute("SELEC x")
    except sqlite3.OperationalError:
        pass
"""


def test_operation_duration_metric_and_meter_provider(tmp):
    (tmp / "app.py").write_text(textwrap.dedent(METRICS_APP))
    flags = ["--traces_exporter", "none", "--metrics_exporter", "console", "--disabled_instrumentations", "sqlite3"]
    result = instrument(*flags, PYTHON, "app.py", "global", cwd=tmp)
    assert result.returncode == 0, result.stderr
    points = [line.strip() for line in result.stdout.splitlines() if 'db.system.name="sqlite"' in line]
    assert "metric db.client.operation.duration (histogram, cumulative) [s]" in result.stdout
    assert len(points) == 3 and all(p.split("} ")[1].startswith("count=1 ") for p in points)
    assert any('db.operation.name="SELECT"' in p and 'db.collection.name="t"' in p for p in points)
    assert any('error.type="sqlite3.OperationalError"' in p for p in points)
    result = instrument(*flags, PYTHON, "app.py", "noop", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert "db.client.operation.duration" not in result.stdout


CONNECTION_APP = """
    import json, sqlite3, sys
    from opentelemetry import trace
    try:
        from ferrotel.instrumentation.sqlite3 import SQLite3Instrumentor
    except ImportError:
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    out = {}
    with trace.get_tracer("app").start_as_current_span("work"):
        if sys.argv[1] == "global":
            SQLite3Instrumentor().instrument()
        plain = sqlite3.connect(":memory:")
        traced = SQLite3Instrumentor.instrument_connection(plain)
        out["is_connection"] = isinstance(traced, sqlite3.Connection)
        out["same_when_global"] = traced is plain
        traced.execute("CREATE TABLE pets (name TEXT)")
        cursor = traced.cursor()
        cursor.execute("INSERT INTO pets VALUES (?)", ("Rex",))
        cursor.executemany("INSERT INTO pets VALUES (?)", [("Io",), ("Ka",)])
        with traced:
            traced.executescript("DELETE FROM pets WHERE name = 'Ka';")
        out["total_changes"] = traced.total_changes
        other = sqlite3.connect(":memory:")
        other.execute("SELECT 'another connection'")
        restored = SQLite3Instrumentor.uninstrument_connection(traced)
        out["restored_is_plain"] = restored is plain
        out["rows"] = restored.execute("SELECT count(*) FROM pets").fetchone()[0]
        again = SQLite3Instrumentor.instrument_connection(restored)
        out["again_rows"] = again.cursor().execute("SELECT name FROM pets ORDER BY name").fetchall()
    print(json.dumps(out))
"""


def test_instrument_connection_traces_one_connection(tmp):
    (tmp / "app.py").write_text(textwrap.dedent(CONNECTION_APP))
    flags = ["--traces_exporter", "console", "--disabled_instrumentations", "sqlite3"]
    result = instrument(*flags, PYTHON, "app.py", "off", cwd=tmp)
    assert result.returncode == 0, result.stderr
    answers = next(json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert answers == {
        "is_connection": True,
        "same_when_global": False,  # a proxy, as upstream's instrument_connection returns
        "total_changes": 4,
        "restored_is_plain": True,
        "rows": 2,
        "again_rows": [["Io"], ["Rex"]],
    }
    spans = console_spans(result.stdout)
    (work,) = [s for s in spans if s["name"] == "work"]
    db = [s for s in spans if s["kind"] == "CLIENT"]
    # The other connection and the uninstrumented one's statement: no span.
    assert [s["name"] for s in db] == ["CREATE pets", "INSERT pets", "INSERT pets", "DELETE pets", "SELECT pets"]
    assert all(s["parent"] == work["span_id"] for s in db)
    assert db[1]["attributes"] == {
        "db.system.name": '"sqlite"',
        "db.query.text": '"INSERT INTO pets VALUES (?)"',
        "db.operation.name": '"INSERT"',
        "db.collection.name": '"pets"',
    }

    # The app sees the same objects and results under upstream's instrumentation.
    upstream = subprocess.run(
        [str(UPSTREAM / "opentelemetry-instrument"), str(UPSTREAM / "python"), "app.py", "off"],
        cwd=tmp,
        env=clean_env(
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="sqlite3",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upstream.returncode == 0, upstream.stderr
    assert next(json.loads(line) for line in upstream.stdout.splitlines() if line.startswith("{")) == answers

    # Instrumented globally, the connection is traced already and stays itself; uninstrumenting
    # it stops its new cursors.
    result = instrument("--traces_exporter", "console", PYTHON, "app.py", "global", cwd=tmp)
    assert result.returncode == 0, result.stderr
    answers = next(json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert answers["same_when_global"] is True and answers["restored_is_plain"] is True
    names = [s["name"] for s in console_spans(result.stdout) if s["kind"] == "CLIENT"]
    assert names == ["CREATE pets", "INSERT pets", "INSERT pets", "DELETE pets", "SELECT", "SELECT pets"]


DBAPI_APP = """
    import json, sqlite3
    from opentelemetry import trace
    from ferrotel.instrumentation import dbapi

    out = {}
    with trace.get_tracer("app").start_as_current_span("work"):
        dbapi.trace_integration(sqlite3, "connect", "sqlite")
        connection = sqlite3.connect(":memory:")
        out["is_connection"] = isinstance(connection, sqlite3.Connection)
        with connection:
            cursor = connection.cursor()
            cursor.execute("CREATE TABLE t (a INTEGER)")
            cursor.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        dbapi.unwrap_connect(sqlite3, "connect")
        plain = sqlite3.connect(":memory:")
        plain.cursor().execute("SELECT 'after unwrap'")
        out["unwrapped_plain"] = type(plain) is sqlite3.Connection
        traced = dbapi.instrument_connection("my.scope", plain, "sqlite", {"database": "no_such_attribute"})
        out["twice_same"] = dbapi.instrument_connection("my.scope", traced, "sqlite") is traced
        traced.cursor().execute("SELECT 1")
        out["restored"] = dbapi.uninstrument_connection(traced) is plain
        plain.cursor().execute("SELECT 2")
    print(json.dumps(out))
"""


def test_dbapi_functions_as_upstream_exposes_them(tmp):
    (tmp / "app.py").write_text(textwrap.dedent(DBAPI_APP))
    flags = ["--traces_exporter", "console", "--disabled_instrumentations", "sqlite3"]
    result = instrument(*flags, PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    answers = next(json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert answers == {"is_connection": True, "unwrapped_plain": True, "twice_same": True, "restored": True}
    spans = console_spans(result.stdout)
    db = [s for s in spans if s["kind"] == "CLIENT"]
    assert [s["name"] for s in db] == ["CREATE t", "INSERT t", "SELECT"]
    assert db[2]["attributes"]["db.query.text"] == '"SELECT ?"'


def test_contribs_instrument_connection_leaves_a_traced_connection_alone(contrib_python, tmp):
    """As under upstream's `opentelemetry-instrument`, where every connection is already
    instrumented: contrib's `instrument_connection` returns it as it is (one span per
    statement) and its `uninstrument_connection` stops its tracing; a connection ferrotel
    was told not to trace is contrib's to instrument."""
    (tmp / "app.py").write_text(
        textwrap.dedent(
            """
            import sqlite3
            from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
            from ferrotel.instrumentation.sqlite3 import SQLite3Instrumentor as Builtin

            db = sqlite3.connect(":memory:")
            print("same:", SQLite3Instrumentor.instrument_connection(db) is db)
            db.execute("SELECT 1")
            print("still same:", SQLite3Instrumentor.uninstrument_connection(db) is db)
            db.execute("SELECT 3")  # untraced now, as upstream's unwrapped connection
            other = Builtin.uninstrument_connection(sqlite3.connect(":memory:"))
            SQLite3Instrumentor.instrument_connection(other).cursor().execute("SELECT 2")
            """
        )
    )
    launcher = contrib_python.parent / "ferrotel"
    command = ["instrument", "--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
    result = run(launcher, *command, contrib_python, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert "same: True" in result.stdout and "Connection already instrumented" in result.stderr
    assert "still same: True" in result.stdout
    spans = [(s["attributes"]["db.query.text"], s["scope"]) for s in console_spans(result.stdout)]
    assert spans == [
        ('"SELECT ?"', "ferrotel.instrumentation.dbapi"),
        ('"SELECT 2"', "opentelemetry.instrumentation.sqlite3"),
    ]
