"""Real projects' own test suites pass exactly as well under `ferrotel instrument` as bare:
Flask's, requests', urllib3's with_dummyserver tests, httpx's, aiohttp's, redis-py's
(against a real redis-server), SQLAlchemy's (sqlite, sync and asyncio), psycopg2's (against
a real PostgreSQL), Starlette's, FastAPI's and a selection of Django's runtests.py, each from its
sdist at the version this repository pins, in a venv of its own with ferrotel installed from
dist/. Every suite runs twice, bare and instrumented (exporting to a real `ferrotel view`),
and every test must have the same outcome both times.

Where a test asserts the exact bytes of a request's headers or of a body that echoes them,
it runs in a separate instrumented pass with OTEL_PROPAGATORS=none: propagation adds a
`traceparent` header by design, and those tests would count it. Everything else runs with
propagation on, as an instrumented app does."""

import dataclasses
import shutil
import time

import pytest
from support.databases import fresh_database, postgres, redis  # noqa: F401 (fixtures, for the suites that need a server)
from support.suites import (
    LOGS,
    copy_into,
    differences,
    env_for,
    extract,
    outcomes,
    run_suite,
    sdist,
    venv,
    viewer_has,
)

SERVER = ({"url.scheme": "http"}, "server")
CLIENT = ({"http.request.method": "GET"}, "client")
SQLITE = ({"db.system.name": "sqlite"}, "client")


@dataclasses.dataclass
class Suite:
    """A project's pytest suite, run from the top of its sdist."""

    name: str  # also names its requirements file, tests/suites/<name>.txt
    requirement: str  # the sdist its tests come from
    select: tuple  # what to run: paths or node ids
    spans: tuple  # (attributes, kind) of spans the instrumented run must have exported
    min_passed: int  # guards against a suite that silently runs (almost) nothing, bare included
    timeout: int  # seconds, per run
    deselect: dict = dataclasses.field(default_factory=dict)  # node id -> why it is left out
    exact_headers: dict = dataclasses.field(default_factory=dict)  # node id -> what it counts
    options: tuple = ()  # the project's own pytest options for the run
    needs_redis: bool = False  # a redis-server of the run's own, given as --redis-url
    # Variables naming a PostgreSQL database (name, host, port, user) for the suite: each run
    # gets an empty database of its own on the session's server.
    postgres_env: tuple = ()
    # Paths removed from the unpacked sdist: its uncompiled package, which would shadow the
    # installed wheel when the suite runs from the sdist's top.
    hide: tuple = ()
    # A suite taking several minutes a run: only `--all-suites` runs it (scripts/test leaves it
    # out, for CI's time).
    long: bool = False
    directory = "."  # where it runs, in the unpacked sdist
    files = ("ferrotel_outcomes.py",)  # copied there from tests/suites/

    def arguments(self, tests, deselect):
        """What follows `python` to run `tests` (all of `select` when empty) minus `deselect`.
        A test hung for 5 minutes fails alone (pytest-timeout) rather than stopping the run."""
        arguments = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "ferrotel_outcomes", "--timeout", "300"]
        arguments += self.options
        arguments += [f"--deselect={test}" for test in deselect]
        return arguments + list(tests or self.select)


class DjangoSuite(Suite):
    """Django's tests/runtests.py with its SQLite settings; `select` holds test labels."""

    directory = "tests"
    files = ("ferrotel_django_outcomes.py", "ferrotel_django_settings.py")

    def arguments(self, tests, deselect):
        assert not deselect, "runtests.py has no way to leave a single test out"
        # --parallel 2 (CI's cores) forks workers, as runtests.py does by default on a
        # developer's machine.
        return ["runtests.py", "--settings", "ferrotel_django_settings", "--noinput", "--parallel", "2"] + list(
            tests or self.select
        )


SUITES = [
    Suite(
        name="flask",
        requirement="flask==3.1.3",
        select=("tests",),
        spans=(SERVER,),
        min_passed=480,
        timeout=300,
    ),
    Suite(
        name="requests",
        requirement="requests==2.34.2",
        select=("tests",),
        spans=(CLIENT, SERVER),
        min_passed=600,
        timeout=900,
        deselect={
            f"tests/test_requests.py::TestTimeout::{test}": "needs a route to 10.255.255.1 that drops packets "
            "(the connect must time out): the outcome depends on the machine's network, not on requests"
            for test in (
                "test_connect_timeout[timeout0]",
                "test_connect_timeout[timeout1]",
                "test_total_timeout_connect[timeout0]",
                "test_total_timeout_connect[timeout1]",
            )
        },
        exact_headers={
            "tests/test_requests.py::TestRequests::test_response_iter_lines_reentrant": "an xfail that depends on "
            "where httpbin's /stream/4 lines, which echo the request headers, cross 512-byte read boundaries",
        },
    ),
    Suite(
        name="urllib3",
        requirement="urllib3==2.8.0",
        # Not test_proxy_poolmanager.py: its proxy needs urllib3's git fork of hypercorn (not
        # on PyPI; with the released one every proxied test fails bare).
        select=tuple(
            f"test/with_dummyserver/{f}.py"
            for f in (
                "test_poolmanager",
                "test_socketlevel",
                "test_connectionpool",
                "test_connection",
                "test_chunked_transfer",
                "test_https",
                "test_no_ssl",
            )
        ),
        spans=(CLIENT,),
        min_passed=480,
        timeout=600,
        # Some of test_socketlevel.py's TLS tests leave a client SSLSocket unclosed in a cycle
        # (an error's traceback). It warns, an error under the suite's filterwarnings, in
        # whichever later test the cyclic collector next runs, and when that is depends on
        # how many objects the process allocates, which any instrumentation changes (it hit
        # TestSSL::test_ssl_load_default_certs_when_empty under ferrotel once, on CI).
        options=("-W", "ignore:unclosed <ssl.SSLSocket:ResourceWarning"),
        deselect={
            **{
                test: "needs a network where 240.0.0.0 (TARPIT_HOST) drops packets; where it does not, the connect "
                "fails at once (and a socket left unclosed warns, an error under the suite's filterwarnings, in "
                "whichever later test the garbage collector happens to run)"
                for test in (
                    "test/with_dummyserver/test_connectionpool.py::TestConnectionPoolTimeouts::test_connect_timeout",
                    "test/with_dummyserver/test_connectionpool.py::TestConnectionPoolTimeouts::"
                    "test_total_applies_connect",
                    *(
                        f"test/with_dummyserver/test_https.py::TestHTTPS_{tls}::test_http2_probe_blocked_per_thread"
                        for tls in ("TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3")
                    ),
                )
            },
            "test/with_dummyserver/test_connectionpool.py::TestConnectionPool::test_source_address_error"
            "[invalid_source_address0-False]": "expects binding to 192.0.2.255 to fail, which depends on the "
            "machine's addresses",
            **{
                f"test/with_dummyserver/test_https.py::TestHTTPS_{tls}::{test}": "its server endpoint reads the TLS "
                "details (ALPN, client certificate) that only urllib3's git fork of hypercorn puts in the ASGI scope; "
                "with the PyPI release it answers 500 bare"
                for tls in ("TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3")
                for test in (
                    "test_client_intermediate",
                    "test_client_key_password",
                    "test_alpn_default",
                    "test_http2_probe_result_is_cached",
                )
            },
        },
        exact_headers={
            "test/with_dummyserver/test_socketlevel.py::TestContentFraming": "counts the header lines of the request",
            "test/with_dummyserver/test_socketlevel.py::TestHeaders": "compares the request's header lines and "
            "their order with what was set",
            "test/with_dummyserver/test_socketlevel.py::TestProxyManager::test_simple": "compares the request's "
            "header lines with a list",
            **{
                f"test/with_dummyserver/test_poolmanager.py::TestPoolManager::{test}": "compares the header list "
                "the server echoes with what was set"
                for test in (
                    "test_headers_http_header_dict",
                    "test_headers_http_multi_header_multipart",
                    "test_merge_headers_with_pool_manager_headers",
                )
            },
        },
    ),
    Suite(
        name="httpx",
        requirement="httpx==0.29.0",
        select=("tests",),
        spans=(CLIENT,),
        min_passed=1400,
        timeout=600,
        deselect={
            f"tests/client/test_proxies.py::{test}": "fetches http://example.com through a proxy: its outcome "
            "depends on the machine's network, not on the code under test"
            for test in ("test_async_proxy_close[asyncio]", "test_async_proxy_close[trio]", "test_sync_proxy_close")
        },
        exact_headers={
            f"tests/test_main.py::{test}": "the CLI's verbose output lists the request's headers line by line"
            for test in ("test_verbose", "test_auth")
        },
    ),
    Suite(
        name="aiohttp",
        requirement="aiohttp==3.14.5",
        # The client and server tests that make real connections (functional, sessions,
        # middlewares, websockets, sendfile, proxies, runners, the test utilities, gunicorn's
        # worker), aiohttp's own request tracing, and the URL dispatcher, requests, responses
        # and access logs; not its benchmarks (pytest-codspeed) or the autobahn tests.
        select=tuple(
            f"tests/test_{name}.py"
            for name in (
                "client_functional",
                "client_session",
                "client_request",
                "client_response",
                "client_middleware",
                "client_ws",
                "client_ws_functional",
                "client_exceptions",
                "connector",
                "proxy_functional",
                "tracing",
                "web_functional",
                "web_app",
                "web_middleware",
                "web_server",
                "web_request_handler",
                "web_request",
                "web_response",
                "web_urldispatcher",
                "web_log",
                "web_websocket_functional",
                "web_sendfile_functional",
                "web_runner",
                "web_cli",
                "run_app",
                "worker",
                "classbasedview",
                "test_utils",
                "pytest_plugin",
            )
        ),
        # Its pytest.ini asks for xdist and coverage; the markers are those its CI leaves out.
        options=("-o", "addopts=", "-m", "not dev_mode and not autobahn and not internal"),
        hide=("aiohttp",),
        spans=(SERVER, CLIENT),
        min_passed=2250,
        timeout=600,
        long=True,
        exact_headers={
            f"tests/test_client_session.py::{test}": "compares the headers a trace config's callback was "
            "given with the app's: they are the request's own header dictionary, which holds the propagation header "
            "by the time the test reads it"
            for test in ("test_request_tracing[pyloop]", "test_request_tracing_exception")
        },
    ),
    Suite(
        name="redis",
        requirement="redis==8.1.0",
        # The commands, pipelines, pub/sub, locks and pools, sync and asyncio, and redis-py's
        # own OpenTelemetry metrics; not the cluster, sentinel, module or scenario tests,
        # which need servers of other kinds.
        select=tuple(
            f"tests/{path}"
            for path in (
                "test_commands.py",
                "test_pipeline.py",
                "test_pubsub.py",
                "test_lock.py",
                "test_connection_pool.py",
                "test_asyncio/test_commands.py",
                "test_asyncio/test_pipeline.py",
                "test_asyncio/test_pubsub.py",
                "test_observability",
            )
        ),
        options=("-m", "not onlycluster and not redismod"),
        needs_redis=True,
        spans=(({"db.system.name": "redis"}, "client"),),
        min_passed=1650,
        timeout=900,
        long=True,
    ),
    Suite(
        name="sqlalchemy",
        requirement="sqlalchemy==2.1.9",
        # The engine, pool, events, asyncio and sqlite dialect tests, and the Core and ORM
        # tests that execute most (defaults, RETURNING, insertmanyvalues, results, sessions,
        # transactions, the unit of work), each against pysqlite and aiosqlite.
        select=(
            "test/engine",
            "test/base",
            "test/dialect/sqlite",
            "test/ext/asyncio",
            *(
                f"test/sql/{name}.py"
                for name in ("test_defaults", "test_insert_exec", "test_resultset", "test_returning", "test_sequences")
            ),
            "test/sql/test_types.py",
            *(
                f"test/orm/{name}.py"
                for name in ("test_session", "test_transaction", "test_unitofworkv2", "test_events", "test_query")
            ),
        ),
        options=("--db", "sqlite", "--db", "aiosqlite"),
        spans=(SQLITE,),
        min_passed=8200,
        timeout=900,
        long=True,
    ),
    Suite(
        name="psycopg2",
        requirement="psycopg2==2.9.11",
        select=("tests",),
        postgres_env=("PSYCOPG2_TESTDB", "PSYCOPG2_TESTDB_HOST", "PSYCOPG2_TESTDB_PORT", "PSYCOPG2_TESTDB_USER"),
        spans=(({"db.system.name": "postgresql"}, "client"),),
        min_passed=700,
        timeout=600,
        deselect={
            "tests/test_connection.py::ConnectionTests::test_cursor_factory_none": "checks that a cursor's type is "
            "exactly psycopg2's cursor: ferrotel traces a cursor through a subclass of its class (a documented "
            "difference; psycopg2's cursors take no other hook)",
        },
    ),
    Suite(
        name="starlette",
        requirement="starlette==1.10.0",
        select=("tests",),
        spans=(SERVER,),
        min_passed=1400,
        timeout=600,
    ),
    Suite(
        name="fastapi",
        requirement="fastapi==0.165.0",
        select=("tests",),
        spans=(SERVER,),
        min_passed=5150,
        timeout=900,
        deselect={
            **{
                f"tests/test_telemetry/{test}": "sets the API's global providers, or has FastAPI's automatic "
                "configuration, logfire or sentry-sdk set them, and checks what they receive: under `ferrotel "
                "instrument` (as under `opentelemetry-instrument`) the global providers are ferrotel's from start-up, "
                "and the API lets them be set once"
                for test in (
                    "test_background.py::test_background_task_integrations[native_logfire]",
                    *(
                        f"test_environment_integrations.py::test_environment_export_with_existing_integrations[{case}]"
                        for case in (
                            "global",
                            "sentry-first",
                            "fastapi-first",
                            "sentry-classic",
                            "logfire",
                            "logfire-opt-out",
                        )
                    ),
                    "test_http.py::test_late_global_providers_enable_existing_app[False]",
                    "test_http.py::test_late_global_providers_enable_existing_app[True]",
                    "test_integrations.py::test_current_logfire[before]",
                    "test_integrations.py::test_current_logfire[after]",
                    "test_integrations.py::test_logfire_global_provider_without_fastapi_instrumentor",
                    "test_native_integrations.py::test_logfire_native_spans_and_exception_logs",
                    *(
                        f"test_runtime.py::test_real_otlp_export_and_repeated_lifespans[{configuration}-{path}]"
                        for configuration in ("environment", "explicit")
                        for path in ("", "/collector/")
                    ),
                    *(
                        "test_runtime.py::test_external_globals_are_unchanged_when_auto_configuration_is_disabled"
                        f"[env{n}-config{n}]"
                        for n in range(3)
                    ),
                    "test_runtime.py::test_concurrent_provider_owner_wins[False]",
                    "test_runtime.py::test_concurrent_provider_owner_wins[True]",
                )
            },
            **{
                test: "replaces the API's `trace.get_tracer_provider` with a function returning a provider of its "
                "own, which only FastAPI calls: ferrotel's server span goes to the global provider the API holds"
                for test in (
                    "tests/test_telemetry/test_tracer.py::test_cached_tracer_follows_provider_changes",
                    "tests/test_tutorial/test_opentelemetry/test_tutorial003.py::test_disable_operation_spans_example",
                )
            },
            "tests/test_telemetry/test_exceptions.py::test_independent_log_configuration[logs_only]": "turns "
            "FastAPI's own tracing off and expects its log record to carry no trace id: ferrotel still traces the "
            "request (what it is run for), so the record carries ferrotel's server span's",
            **{
                f"tests/test_telemetry/test_integrations.py::test_current_contrib[{mode}]": "instruments the app "
                "with upstream's contrib FastAPIInstrumentor as well: its span, under ferrotel's server span, is then "
                "INTERNAL (as contrib makes it under any server span) where bare it is SERVER"
                for mode in ("app", "global", "uninstrument")
            },
            **{
                f"tests/test_telemetry/test_background.py::test_background_task_integrations[{mode}]": "calls "
                "contrib's FastAPIInstrumentor.instrument_app on an app ferrotel already traces: as under upstream's "
                "launcher, contrib sees it instrumented and adds nothing, where the test expects contrib's spans"
                for mode in ("contrib", "logfire")
            },
        },
    ),
    DjangoSuite(
        name="django",
        requirement="django==5.2.8",
        # The apps (handlers, wsgi, requests_tests, middleware, view_tests, backends,
        # queries) plus the test client, live servers and other request/database paths.
        select=(
            "handlers",
            "wsgi",
            "requests_tests",
            "middleware",
            "view_tests",
            "backends",
            "queries",
            "test_client",
            "test_client_regress",
            "servers",
            "file_uploads",
            "file_storage",
            "logging_tests",
            "responses",
            "asgi",
            "signals",
            "transactions",
            "basic",
            "db_utils",
            "raw_query",
            "expressions",
        ),
        spans=(SERVER, SQLITE),
        min_passed=2100,
        timeout=900,
        long=True,
    ),
]


def run(suite, tree, launcher, env, label, tests=(), deselect=(), server_dsn=None):
    """One run of `suite` in `tree`, its interpreter started through `launcher` (the venv's
    python, or ferrotel instrument ... python); returns its per-test outcomes."""
    # Both runners' recorders (tests/suites/ferrotel_*outcomes.py) append to this file.
    outcomes_file = tree / f"outcomes-{label}.jsonl"
    env = {**env, "FERROTEL_SUITE_OUTCOMES": str(outcomes_file)}
    if suite.postgres_env:
        database = f"suite_{suite.name}_{label}".replace("-", "_")
        parts = dict(part.split("=", 1) for part in fresh_database(server_dsn, database).split())
        values = (parts["dbname"], parts["host"], parts["port"], parts["user"])
        env.update(zip(suite.postgres_env, values, strict=True))
    log = LOGS / f"{suite.name}-{label}.log"
    started = time.monotonic()
    command = [*launcher, *suite.arguments(tests, deselect)]
    returncode = run_suite(command, tree, env, log, suite.timeout)
    print(f"{suite.name} {label}: exit {returncode} in {time.monotonic() - started:.0f} s, output in {log}")
    # 0: everything passed, 1: some tests failed; anything else is a crash or a usage error.
    assert returncode in (0, 1), f"{suite.name} {label} exited {returncode}; output in {log}"
    return outcomes(outcomes_file)


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_suite_passes_the_same_under_ferrotel(suite, tmp, viewer, request):
    if suite.long and not request.config.getoption("all_suites"):
        pytest.skip(f"{suite.name}'s suite takes several minutes a run: `scripts/test --all-suites` runs it")
    if suite.needs_redis:
        host, port = request.getfixturevalue("redis")
        suite = dataclasses.replace(suite, options=(*suite.options, f"--redis-url=redis://{host}:{port}/0"))
    server_dsn = request.getfixturevalue("postgres") if suite.postgres_env else None
    path = venv(suite.name)
    top = extract(sdist(suite.requirement), tmp)
    for hidden in suite.hide:
        shutil.rmtree(top / hidden)
    tree = top / suite.directory
    copy_into(tree, *suite.files)
    python = str(path / "bin" / "python")
    env = env_for(path)

    bare = run(suite, tree, [python], env, "bare", deselect=suite.deselect, server_dsn=server_dsn)
    passed = sum(outcome == "passed" for outcome, _ in bare.values())
    assert passed >= suite.min_passed, f"only {passed} of {len(bare)} tests passed bare; see {LOGS}"

    ferrotel = [str(path / "bin" / "ferrotel"), "instrument", "--service_name", f"suite-{suite.name}"]
    ferrotel += ["--traces_exporter", "otlp", "--exporter_otlp_endpoint", f"http://127.0.0.1:{viewer.grpc}"]
    ferrotel += ["--", python]
    deselect = {**suite.deselect, **suite.exact_headers}
    # A suite's own subprocesses may run thousands of statements in a burst and assert that
    # they print nothing: on a loaded two-core machine the export thread can fall behind the
    # default queue of 2048, and ferrotel then warns of the spans it drops, on stderr. Room
    # for the burst keeps the comparison about the library's behaviour.
    env = {**env, "OTEL_BSP_MAX_QUEUE_SIZE": "100000"}
    instrumented = run(suite, tree, ferrotel, env, "ferrotel", deselect=deselect, server_dsn=server_dsn)
    if suite.exact_headers:
        off = {**env, "OTEL_PROPAGATORS": "none"}
        label = "ferrotel-propagation-off"
        instrumented |= run(suite, tree, ferrotel, off, label, suite.exact_headers, suite.deselect, server_dsn)

    diff = differences(bare, instrumented)
    assert not diff, f"{len(diff)} of {len(bare)} tests differ under ferrotel (logs in {LOGS}):\n" + "\n".join(diff)
    for tags, kind in suite.spans:
        assert viewer_has(viewer, f"suite-{suite.name}", tags, kind), f"no {kind} span with {tags} reached the viewer"
