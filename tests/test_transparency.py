"""An instrumented call hands the application's own objects through untouched: urllib3 sends
repeated header fields as the separate lines, in the order, it sends them bare; a WSGI app's
return value reaches the server as the app's own object (Flask's response iterable, Django's
HttpResponse, the server's `wsgi.file_wrapper`, so gunicorn still takes its sendfile path);
and Django on its default SQLite backend gets spans for the app's own queries. Every case
also checks that ferrotel still recorded the call."""

import itertools
import json
import os
import signal
import socket
import subprocess
import textwrap
import threading

import pytest
from support.console import console_spans
from support.processes import FERROTEL, PYTHON, clean_env, free_port, instrument, run, wait_http

# Spans to stdout for the assertions; no metrics exporter to wait for at exit.
CONSOLE = ("--traces_exporter", "console", "--metrics_exporter", "none")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class RawServer:
    """Answers each connection's request with the next of `answers` (in a cycle), then
    closes it; keeps the raw bytes of each request head."""

    def __init__(self, answers=(OK,)):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.heads = []
        self.answers = itertools.cycle(answers)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed by stop()
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                self.heads.append(head.split(b"\r\n\r\n")[0])
                conn.sendall(next(self.answers))

    def stop(self):
        self.listener.close()


URLLIB3_CLIENT = textwrap.dedent(
    """
    import sys
    import urllib3

    url = f"http://127.0.0.1:{sys.argv[1]}/"
    # Repeated fields, interleaved with others, on the request and as a pool's defaults.
    headers = urllib3.HTTPHeaderDict()
    for name, value in [("Cookie", "a=1"), ("X-Multi", "1"), ("Cookie", "b=2"), ("X-Other", "x"), ("X-Multi", "2")]:
        headers.add(name, value)
    urllib3.PoolManager().request("GET", url, headers=headers)
    urllib3.PoolManager(headers=headers).request("GET", url)
    """
)


def header_lines(head):
    return head.split(b"\r\n")[1:]


@pytest.mark.parametrize("propagators", ["tracecontext,baggage", "none"])
def test_urllib3_sends_repeated_header_fields_as_it_does_bare(tmp, propagators):
    (tmp / "client.py").write_text(URLLIB3_CLIENT)
    server = RawServer()
    try:
        bare = run(PYTHON, "client.py", server.port, cwd=tmp)
        assert bare.returncode == 0, bare.stderr
        env = clean_env(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_PROPAGATORS=propagators)
        instrumented = instrument(PYTHON, "client.py", server.port, cwd=tmp, env=env)
        assert instrumented.returncode == 0, instrumented.stderr
    finally:
        server.stop()
    bare_heads, instrumented_heads = server.heads[:2], server.heads[2:]
    assert len(instrumented_heads) == 2, server.heads
    for bare_head, instrumented_head in zip(bare_heads, instrumented_heads, strict=True):
        # The premise: urllib3 itself sends each value of a repeated field on its own line.
        assert b"\r\nCookie: a=1\r\nCookie: b=2\r\n" in bare_head, bare_head
        lines = header_lines(instrumented_head)
        propagated = [line for line in lines if line.lower().startswith(b"traceparent:")]
        assert len(propagated) == (0 if propagators == "none" else 1), instrumented_head
        sent = [line for line in lines if line not in propagated]
        assert sent == header_lines(bare_head), f"under ferrotel {sent}, bare {header_lines(bare_head)}"
    spans = [s for s in console_spans(instrumented.stdout) if s["kind"] == "CLIENT"]
    assert len(spans) == 2, instrumented.stdout


RETRIED_RESPONSE = textwrap.dedent(
    """
    import gc, sys, weakref
    import urllib3

    gc.disable()  # from here on only reference counting frees anything
    with urllib3.HTTPConnectionPool("127.0.0.1", int(sys.argv[1])) as pool:
        # The first answer is malformed; the retry's response is never read nor closed.
        response = weakref.ref(pool.urlopen("GET", "/", preload_content=False, retries=urllib3.Retry(read=1)))
    print("freed" if response() is None else "alive")
    """
)


def test_a_retried_urllib3_response_is_freed_as_soon_as_bare(tmp):
    """A retry keeps the first attempt's exception (and so its traceback's frames) in the
    response's `retries.history`; a frame of the instrumentation that holds the response
    would close a reference cycle, leaving the response, its connection and its socket to
    the cyclic garbage collector: the socket then warns ResourceWarning wherever the
    collector happens to run (a later test of urllib3's own suite)."""
    (tmp / "client.py").write_text(RETRIED_RESPONSE)
    server = RawServer(answers=(b"HTTP/0.5 200 OK\r\n\r\n", OK))
    try:
        bare = run(PYTHON, "client.py", server.port, cwd=tmp)
        instrumented = instrument(*CONSOLE, PYTHON, "client.py", server.port, cwd=tmp)
    finally:
        server.stop()
    assert bare.stdout == "freed\n", bare.stderr
    assert instrumented.stdout.split("\n")[0] == "freed", "under ferrotel the response outlived the call"
    assert [s["kind"] for s in console_spans(instrumented.stdout)] == ["CLIENT"], instrumented.stdout


# A server's side of a WSGI call, done in-process as servers do it: call the app with an
# environ carrying the server's own `wsgi.file_wrapper`, iterate the result, close it.
SERVER_SIDE = textwrap.dedent(
    """
    import json
    from wsgiref.util import setup_testing_defaults


    class FileWrapper:
        # The server's `wsgi.file_wrapper`: an app returning one of these gets sendfile.
        def __init__(self, filelike, block_size=8192):
            self.filelike, self.block_size = filelike, block_size

        def __iter__(self):
            return iter(lambda: self.filelike.read(self.block_size), b"")

        def close(self):
            self.filelike.close()


    def serve(app, path):
        environ = {"PATH_INFO": path, "wsgi.file_wrapper": FileWrapper}
        setup_testing_defaults(environ)
        statuses = []
        result = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        body = b"".join(result)
        result.close()
        return result, statuses[0], body
    """
)

FLASK_APP = textwrap.dedent(
    """
    from flask import Flask, Response, send_file

    made = []


    class RecordingResponse(Response):
        # What Flask's response object hands to the server, kept to compare identities.
        def __call__(self, environ, start_response):
            made.append(super().__call__(environ, start_response))
            return made[-1]


    app = Flask(__name__)
    app.response_class = RecordingResponse
    app.add_url_rule("/hello", "hello", lambda: "hello")
    app.add_url_rule("/file", "file", lambda: send_file(__file__, mimetype="text/plain"))

    hello, hello_status, _ = serve(app, "/hello")
    file, file_status, body = serve(app, "/file")
    print("result:", json.dumps({
        "hello": [hello_status, type(hello).__qualname__, hello is made[0]],
        "file": [file_status, type(file).__qualname__, file is made[1], body == open(__file__, "rb").read()],
    }))
    """
)

DJANGO_APP = textwrap.dedent(
    """
    import django
    from django.conf import settings

    settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["127.0.0.1"], SECRET_KEY="test")
    django.setup()

    from django.core.handlers.wsgi import WSGIHandler
    from django.http import FileResponse, HttpResponse
    from django.urls import path

    made = []


    def hello(request):
        made.append(HttpResponse("hello"))
        return made[-1]


    urlpatterns = [path("hello/", hello), path("file/", lambda request: FileResponse(open(__file__, "rb")))]

    hello, hello_status, _ = serve(WSGIHandler(), "/hello/")
    file, file_status, body = serve(WSGIHandler(), "/file/")
    print("result:", json.dumps({
        "hello": [hello_status, type(hello).__qualname__, hello is made[0]],
        "file": [file_status, type(file).__qualname__, body == open(__file__, "rb").read()],
    }))
    """
)


def served(tmp, app):
    """Runs `app` under ferrotel; returns what its server side saw and the server spans."""
    (tmp / "app.py").write_text(SERVER_SIDE + app)
    result = instrument(*CONSOLE, PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("result: "))
    spans = [s for s in console_spans(result.stdout) if s["kind"] == "SERVER"]
    return json.loads(line.removeprefix("result: ")), spans


def assert_two_server_spans(spans):
    assert sorted(s["attributes"].get("http.response.status_code") for s in spans) == ["200", "200"], spans


def test_flask_returns_its_own_response_iterable_and_the_servers_file_wrapper(tmp):
    seen, spans = served(tmp, FLASK_APP)
    # Flask's response iterable (werkzeug's ClosingIterator), the very object Flask made.
    assert seen["hello"] == ["200 OK", "ClosingIterator", True]
    # send_file answers with the server's own file wrapper, so the server can sendfile it.
    assert seen["file"] == ["200 OK", "FileWrapper", True, True]
    assert_two_server_spans(spans)


def test_django_handler_returns_its_httpresponse_and_the_servers_file_wrapper(tmp):
    seen, spans = served(tmp, DJANGO_APP)
    assert seen["hello"] == ["200 OK", "HttpResponse", True]
    # FileResponse: Django's handler hands the file to the server's wsgi.file_wrapper.
    assert seen["file"] == ["200 OK", "FileWrapper", True]
    assert_two_server_spans(spans)


# gunicorn's configuration file, run in its master before workers fork: records whether
# gunicorn recognised a response as its own file wrapper and sent it with sendfile.
SENDFILE_PROBE = textwrap.dedent(
    """
    # Names are private: gunicorn reads its settings (one is `sendfile`) from this module.
    import os as _os
    from gunicorn.http import wsgi as _wsgi

    _sendfile = _wsgi.Response.sendfile


    def _recorded_sendfile(response, respiter):
        sent = _sendfile(response, respiter)
        with open(_os.environ["SENDFILE_LOG"], "a") as log:
            log.write(f"{response.req.path} {sent}\\n")
        return sent


    _wsgi.Response.sendfile = _recorded_sendfile
    """
)

GUNICORN_APPS = {
    "flask": textwrap.dedent(
        """
        import os
        from flask import Flask, send_file

        app = Flask(__name__)
        app.add_url_rule("/file", "file", lambda: send_file(os.environ["SERVED_FILE"], mimetype="text/plain"))
        """
    ),
    "django": textwrap.dedent(
        """
        import os
        import django
        from django.conf import settings

        settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["127.0.0.1"], SECRET_KEY="test")

        from django.core.wsgi import get_wsgi_application
        from django.http import FileResponse
        from django.urls import path

        urlpatterns = [path("file", lambda request: FileResponse(open(os.environ["SERVED_FILE"], "rb")))]
        app = get_wsgi_application()
        """
    ),
}


def gunicorn_serves_file(tmp, framework, launcher):
    """Serves a file from `framework` on gunicorn started through `launcher`; returns
    gunicorn's sendfile records and the console's spans."""
    (tmp / "app.py").write_text(GUNICORN_APPS[framework])
    (tmp / "probe.py").write_text(SENDFILE_PROBE)
    served_file = tmp / "served.txt"
    served_file.write_bytes(os.urandom(4096).hex().encode())
    log = tmp / "sendfile.log"
    log.unlink(missing_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [*launcher, PYTHON, "-m", "gunicorn", "-c", "probe.py", "-w", "1", "-b", f"127.0.0.1:{port}", "app:app"],
        cwd=tmp,
        env=clean_env(SENDFILE_LOG=str(log), SERVED_FILE=str(served_file)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        body = wait_http(f"http://127.0.0.1:{port}/file")
    except OSError:
        body = None
    finally:
        # gunicorn handles SIGTERM itself (a graceful stop), even where the parent ignores
        # it; anything of the group still alive afterwards is killed.
        os.killpg(server.pid, signal.SIGTERM)
        try:
            out, err = server.communicate(timeout=30)
        finally:
            kill_group(server.pid)
    assert body is not None, f"gunicorn did not answer: {err[-3000:]}"
    assert body.encode() == served_file.read_bytes()
    # No file: gunicorn never took its file-wrapper path.
    return log.read_text().splitlines() if log.exists() else [], console_spans(out), err


def kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.parametrize("framework", ["flask", "django"])
def test_gunicorn_still_sendfiles_what_the_app_returns(tmp, framework):
    # One record per request that reached the app (wait_http retries only refused ones, and
    # one that timed out while the worker booted).
    records, _, err = gunicorn_serves_file(tmp, framework, [])
    assert records and set(records) == {"/file True"}, f"bare gunicorn did not sendfile: {records} {err[-3000:]}"
    records, spans, err = gunicorn_serves_file(tmp, framework, [FERROTEL, "instrument", *CONSOLE])
    assert records and set(records) == {"/file True"}, f"gunicorn's sendfile under ferrotel: {records}"
    statuses = [s["attributes"].get("http.response.status_code") for s in spans if s["kind"] == "SERVER"]
    assert statuses == ["200"] * len(records), err[-3000:]


DJANGO_ORM = textwrap.dedent(
    """
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["shop"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "shop.sqlite3"}},
    )
    django.setup()

    from django.db import connection
    from shop.models import Visit

    with connection.schema_editor() as editor:
        editor.create_model(Visit)
    Visit.objects.create(n=1)
    print(Visit.objects.filter(n=1).count())
    """
)


def test_django_on_sqlite_traces_the_apps_own_queries(tmp):
    (tmp / "shop").mkdir()
    (tmp / "shop" / "__init__.py").write_text("")
    (tmp / "shop" / "models.py").write_text(
        "from django.db import models\n\n\nclass Visit(models.Model):\n    n = models.IntegerField()\n"
    )
    (tmp / "app.py").write_text(DJANGO_ORM)
    result = instrument(*CONSOLE, PYTHON, "app.py", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1\n")
    queries = [s["attributes"].get("db.query.text", "") for s in console_spans(result.stdout)]
    assert any(q.startswith('"CREATE TABLE') and "shop_visit" in q for q in queries), queries
    assert any(q.startswith('"INSERT INTO') and "shop_visit" in q for q in queries), queries
    assert any(q.startswith('"SELECT COUNT(*)') and "shop_visit" in q for q in queries), queries


def test_libraries_loaded_after_ferrotel_find_the_static_tls_space_they_find_bare(tmp_path):
    # glibc keeps a small reserve (under 2 KiB) for the initial-exec thread-locals of
    # libraries loaded with dlopen, as every Python extension is. An extension marked
    # STATIC_TLS takes its whole TLS block from it; ferrotel's used to (mimalloc's
    # thread-locals), and a library needing most of the reserve then failed to load after it.
    source = tmp_path / "tls.c"
    source.write_text(
        '__thread char block[SIZE] __attribute__((tls_model("initial-exec")));\nchar *get(void) { return block; }\n'
    )

    def library(size):
        path = tmp_path / f"tls{size}.so"
        if not path.exists():
            subprocess.run(["cc", "-shared", "-fPIC", f"-DSIZE={size}", "-o", path, source], check=True)
        return path

    def loads(size, first=""):
        code = f"{first}import ctypes; ctypes.CDLL({str(library(size))!r})"
        return subprocess.run([PYTHON, "-c", code], env=clean_env(), capture_output=True).returncode == 0

    # The largest block (to 16 bytes) a bare interpreter can load, found by bisection.
    low, high = 16, 64 * 1024
    assert loads(low) and not loads(high)
    while high - low > 16:
        middle = (low + high) // 2 // 16 * 16
        low, high = (middle, high) if loads(middle) else (low, middle)
    assert loads(low, first="import ferrotel._native; ")


def test_the_apps_environment_is_the_bare_one_with_ferrotel_on_its_python_path():
    # Without contrib instrumentations ferrotel sets no variable of its own: an app (or a
    # library scanning os.environ per call, as requests' proxy lookup does) sees what it
    # sees bare, apart from PYTHONPATH, which carries ferrotel into child processes.
    show = "import json, os; print(json.dumps(dict(os.environ)))"
    bare = json.loads(run(PYTHON, "-c", show, env=clean_env()).stdout)
    instrumented = json.loads(instrument(*CONSOLE, PYTHON, "-c", show, env=clean_env()).stdout)
    assert {k: v for k, v in instrumented.items() if k != "PYTHONPATH"} == {
        **{k: v for k, v in bare.items() if k != "PYTHONPATH"},
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
    }


def test_importing_the_extension_maps_no_huge_page():
    # With transparent huge pages on (madvise or always), mimalloc's advised arena faulted in a
    # whole 2 MiB page at import: +1.9 MiB resident in every instrumented process.
    code = "import ferrotel._native; print(open('/proc/self/smaps_rollup').read())"
    result = subprocess.run([PYTHON, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=60)
    huge = [line for line in result.stdout.splitlines() if line.startswith("AnonHugePages:")]
    assert huge == ["AnonHugePages:         0 kB"], result.stdout
