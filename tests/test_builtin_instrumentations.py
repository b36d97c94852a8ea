"""ferrotel's built-in instrumentations that need no framework: context into threads and
thread pools, and trace ids in logging records. Run under `ferrotel instrument` in real
processes; spans read back from the console exporter."""

import textwrap

from support.console import console_spans
from support.processes import PYTHON, instrument, run

THREADS = textwrap.dedent(
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from opentelemetry import trace

    tracer = trace.get_tracer("threads")

    class Worker(threading.Thread):
        def run(self):  # an overridden run() is covered too
            with tracer.start_as_current_span("in subclass"):
                pass

    def child(name):
        with tracer.start_as_current_span(name):
            return trace.get_current_span().get_span_context().span_id

    with tracer.start_as_current_span("parent"):
        t = threading.Thread(target=child, args=("in thread",))
        t.start(); t.join()
        w = Worker(); w.start(); w.join()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(child, ["in pool 1", "in pool 2"]))
            pool.submit(child, "in pool submit").result()
    with ThreadPoolExecutor(1) as pool:  # outside any span: a root, not the old parent
        pool.submit(child, "after").result()
    """
)


def spans_by_name(stdout):
    return {s["name"]: s for s in console_spans(stdout)}


def test_threads_and_pools_run_inside_the_span_that_started_them(tmp):
    (tmp / "app.py").write_text(THREADS)
    result = instrument("--traces_exporter", "console", PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    spans = spans_by_name(result.stdout)
    parent = spans["parent"]["span_id"]
    for name in ("in thread", "in subclass", "in pool 1", "in pool 2", "in pool submit"):
        assert spans[name]["parent"] == parent, name
    assert spans["after"]["parent"] is None


def test_disabling_threading_leaves_threads_alone(tmp):
    (tmp / "app.py").write_text(THREADS)
    result = instrument(
        "--traces_exporter", "console", "--disabled_instrumentations", "threading", PYTHON, "app.py", cwd=tmp
    )
    spans = spans_by_name(result.stdout)
    assert spans["in thread"]["parent"] is None and spans["in pool 1"]["parent"] is None


IMPORT_RACE = textwrap.dedent(
    """
    import importlib.util, sys, threading

    # Another thread imports the API's context module and is held inside its execution:
    # the module is in sys.modules, its functions not yet defined.
    entered, release = threading.Event(), threading.Event()

    class HeldLoader:
        def __init__(self, loader):
            self.loader = loader

        def create_module(self, spec):
            return self.loader.create_module(spec)

        def exec_module(self, module):
            entered.set()
            release.wait(10)
            self.loader.exec_module(module)

    class HoldContext:
        def find_spec(self, name, path=None, target=None):
            if name != "opentelemetry.context":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            spec.loader = HeldLoader(spec.loader)
            return spec

    sys.meta_path.insert(0, HoldContext())
    importer = threading.Thread(target=importlib.import_module, args=("opentelemetry.context",))
    importer.start()
    entered.wait(10)
    started = threading.Thread(target=lambda: None)
    started.start()  # while the import is under way
    started.join()
    release.set()
    importer.join()

    from opentelemetry import trace

    with trace.get_tracer("race").start_as_current_span("parent"):
        thread = threading.Thread(target=lambda: trace.get_tracer("race").start_span("child").end())
        thread.start(); thread.join()
    """
)


def test_a_thread_started_while_another_imports_the_api_starts(tmp):
    (tmp / "app.py").write_text(IMPORT_RACE)
    result = instrument("--traces_exporter", "console", PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    spans = spans_by_name(result.stdout)
    assert spans["child"]["parent"] == spans["parent"]["span_id"]


UNINSTRUMENT = textwrap.dedent(
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from aiosqlite.core import Connection
    from ferrotel.instrumentation.threads import ThreadingInstrumentor
    import ferrotel.instrumentation.threads as module

    patched = threading.Thread.start, ThreadPoolExecutor.submit, Connection._execute
    ThreadingInstrumentor().uninstrument()
    restored = threading.Thread.start, ThreadPoolExecutor.submit, Connection._execute
    print(*(before is not after for before, after in zip(patched, restored)))
    print(*(function.__module__ for function in restored))
    ThreadingInstrumentor().instrument()
    print(threading.Thread.start.__module__ == module.__name__)
    """
)


def test_uninstrument_restores_the_originals(tmp):
    (tmp / "app.py").write_text(UNINSTRUMENT)
    result = instrument("--traces_exporter", "none", PYTHON, "app.py", cwd=tmp)
    modules = "threading concurrent.futures.thread aiosqlite.core"
    assert result.stdout.split("\n")[:3] == ["True True True", modules, "True"], result.stderr


UNINSTRUMENT_BEFORE_IMPORT = textwrap.dedent(
    """
    import sys
    from ferrotel.instrumentation.threads import ThreadingInstrumentor

    assert "aiosqlite" not in sys.modules and "concurrent.futures.thread" not in sys.modules
    ThreadingInstrumentor().uninstrument()
    from concurrent.futures import ThreadPoolExecutor
    from aiosqlite.core import Connection
    print(ThreadPoolExecutor.submit.__module__, Connection._execute.__module__)
    ThreadingInstrumentor().instrument()
    ThreadingInstrumentor().uninstrument()
    ThreadingInstrumentor().instrument()
    print(ThreadPoolExecutor.submit.__module__, Connection._execute.__module__)
    ThreadingInstrumentor().uninstrument()
    print(ThreadPoolExecutor.submit.__module__, Connection._execute.__module__)
    """
)


def test_modules_imported_after_uninstrument_stay_bare(tmp):
    # The hooks on import outlive uninstrument: one firing then must leave the module alone,
    # and instrumenting twice must not wrap twice (uninstrument would leave a wrapper).
    (tmp / "app.py").write_text(UNINSTRUMENT_BEFORE_IMPORT)
    result = instrument("--traces_exporter", "none", PYTHON, "app.py", cwd=tmp)
    bare = "concurrent.futures.thread aiosqlite.core"
    patched = "ferrotel.instrumentation.threads ferrotel.instrumentation.threads"
    assert result.stdout.split("\n")[:3] == [bare, patched, bare], result.stderr


AIOSQLITE = textwrap.dedent(
    """
    import asyncio
    import aiosqlite
    from opentelemetry import trace
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    tracer = trace.get_tracer("app")

    async def main():
        with tracer.start_as_current_span("open"):
            db = await aiosqlite.connect(":memory:")
        with tracer.start_as_current_span("direct"):
            await db.execute("select 'direct'")
        await db.close()
        engine = create_async_engine("sqlite+aiosqlite:///:memory:")
        async with engine.connect() as connection:
            with tracer.start_as_current_span("through the engine"):
                print((await connection.execute(text("select 'engine'"))).scalar())
        await engine.dispose()

    asyncio.run(main())
    import inspect
    print(inspect.iscoroutinefunction(aiosqlite.core.Connection._execute))  # an app's mocks see it so
    """
)


def test_aiosqlite_statements_run_inside_the_span_that_awaits_them(tmp):
    # aiosqlite runs a connection's calls on a thread started when it opens: each statement
    # must sit under the span awaiting it, and an AsyncEngine statement be traced once.
    (tmp / "app.py").write_text(AIOSQLITE)
    result = instrument("--traces_exporter", "console", PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0 and result.stdout.startswith("engine\nTrue\n"), result.stderr
    spans = console_spans(result.stdout)
    by_id = {s["span_id"]: s for s in spans}
    statements = sorted(
        (s["scope"], by_id[s["parent"]]["name"] if s["parent"] else None)
        for s in spans
        if s["attributes"].get("db.query.text") == '"select ?"'
    )
    assert statements == [
        ("ferrotel.instrumentation.dbapi", "direct"),
        ("ferrotel.instrumentation.sqlalchemy", "through the engine"),
    ], statements


LOGS = textwrap.dedent(
    """
    import logging
    from opentelemetry import trace

    handler = logging.StreamHandler()
    fields = "%(otelTraceID)s %(otelSpanID)s %(otelTraceSampled)s %(otelServiceName)s %(message)s"
    handler.setFormatter(logging.Formatter(fields))
    log = logging.getLogger("app")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("outside")
    with trace.get_tracer("t").start_as_current_span("request"):
        log.info("inside")
    """
)


def test_log_records_carry_the_current_trace(tmp):
    (tmp / "app.py").write_text(LOGS)
    flags = ["--traces_exporter", "console", "--logs_exporter", "none", "--service_name", "billing"]
    result = instrument(*flags, PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    (span,) = console_spans(result.stdout)
    lines = result.stderr.splitlines()
    assert lines == ["0 0 False billing outside", f"{span['trace_id']} {span['span_id']} True billing inside"]


def test_log_correlation_sets_the_root_format(tmp):
    code = textwrap.dedent(
        """
        import logging
        from opentelemetry import trace
        with trace.get_tracer("t").start_as_current_span("s"):
            logging.getLogger("x").warning("hello")
        """
    )
    (tmp / "app.py").write_text(code)
    flags = ["--traces_exporter", "console", "--logs_exporter", "none", "--service_name", "svc"]
    flags += ["--log_correlation", "true"]
    result = instrument(*flags, PYTHON, "app.py", cwd=tmp)
    (span,) = console_spans(result.stdout)
    assert (
        f"[trace_id={span['trace_id']} span_id={span['span_id']} resource.service.name=svc trace_sampled=True] - hello"
        in result.stderr
    )
    custom = ["--log_format", "%(levelname)s|%(otelSpanID)s|%(message)s"]
    result = instrument(*flags, *custom, PYTHON, "app.py", cwd=tmp)
    (span,) = console_spans(result.stdout)
    assert result.stderr.strip() == f"WARNING|{span['span_id']}|hello"


def test_built_ins_win_over_contrib_packages_of_the_same_name(contrib_python, tmp):
    (tmp / "app.py").write_text("import logging, threading\n")
    launcher = contrib_python.parent / "ferrotel"
    result = run(launcher, "instrument", "--log_level", "debug", contrib_python, "app.py", cwd=tmp)
    lines = result.stderr.splitlines()
    for name in ("logging", "threading"):
        assert f"ferrotel: debug: instrumentor '{name}' (ferrotel) loaded" in lines, result.stderr
        skipped = f"ferrotel: debug: instrumentor '{name}' (opentelemetry-instrumentation-{name}) skipped: "
        assert skipped + "ferrotel's built-in instrumentation is used instead" in lines, result.stderr


CONTRIB_CALLED_BY_THE_APP = textwrap.dedent(
    """
    import flask
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    app = flask.Flask(__name__)
    app.route("/r/<n>")(lambda n: n)

    def get(n):
        with app.test_client().get(f"/r/{n}") as response:
            assert response.status_code == 200

    instrumentor = FlaskInstrumentor()
    print("instrumented at first:", instrumentor.is_instrumented_by_opentelemetry)
    instrumentor.instrument()  # as under upstream's zero-code instrumentation: only a warning
    get(1)
    instrumentor.uninstrument()
    print("after uninstrument:", instrumentor.is_instrumented_by_opentelemetry)
    get(2)
    instrumentor.instrument()
    get(3)
    """
)


def test_a_contrib_instrumentor_the_app_calls_stands_for_the_built_in(contrib_python, tmp):
    """An app written for upstream's `opentelemetry-instrument` that also instruments by hand
    gets no second instrumentation: the contrib instance reads as instrumented, and its
    `uninstrument()` / `instrument()` turn ferrotel's built-in off and on."""
    (tmp / "app.py").write_text(CONTRIB_CALLED_BY_THE_APP)
    launcher = contrib_python.parent / "ferrotel"
    command = ["instrument", "--traces_exporter", "console", "--metrics_exporter", "none", "--logs_exporter", "none"]
    result = run(launcher, *command, contrib_python, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert "instrumented at first: True" in result.stdout and "after uninstrument: False" in result.stdout
    assert "Attempting to instrument while already instrumented" in result.stderr
    spans = [(s["name"], s["kind"], s["scope"]) for s in console_spans(result.stdout)]
    assert spans == [("GET /r/<n>", "SERVER", "ferrotel.instrumentation.wsgi")] * 2, spans
    paths = [s["attributes"]["url.path"] for s in console_spans(result.stdout)]
    assert paths == ['"/r/1"', '"/r/3"']


def test_each_builtin_reports_the_requirement_the_loader_checks():
    from importlib.metadata import entry_points

    from ferrotel import _native

    builtins = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.dist.name == "ferrotel"]
    assert len(builtins) >= 9
    for ep in builtins:
        instrumentor = ep.load()()
        assert instrumentor.name == ep.name
        requirements = instrumentor.instrumentation_dependencies()
        assert requirements == tuple(_native.builtin_requirements(ep.name))
        # Only instrumentations of the standard library have no library to require, and
        # psycopg2's, which either of two distributions satisfies (upstream's instruments-any).
        no_requirement = {"logging", "threading", "sqlite3", "urllib", "exceptions", "psycopg2"}
        assert bool(requirements) == (ep.name not in no_requirement), ep.name
