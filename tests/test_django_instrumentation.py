"""ferrotel's built-in Django instrumentation: a real project served by `manage.py
runserver` (with and without the autoreloader) under `ferrotel instrument`; spans read back
from the console exporter."""

import os
import signal
import subprocess
import textwrap
import time
import urllib.error
import urllib.request

import pytest
from support.console import console_spans
from support.processes import FERROTEL, PYTHON, clean_env, default_signals, free_port, init_pids, wait_http

SETTINGS = textwrap.dedent(
    """
    SECRET_KEY = "test"
    DEBUG = False
    ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    ROOT_URLCONF = "urls"
    INSTALLED_APPS = []
    MIDDLEWARE = []
    DATABASES = {}
    """
)

URLS = textwrap.dedent(
    """
    from django.http import HttpResponse
    from django.urls import path

    def hello(request, name):
        return HttpResponse(f"hello {name}")

    def boom(request):
        raise RuntimeError("exploded")

    urlpatterns = [
        path("hello/<str:name>/", hello),
        path("boom/", boom),
        path("healthz/", lambda request: HttpResponse("ok")),
    ]
    """
)

MANAGE = textwrap.dedent(
    """
    import os, sys
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
    """
)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        error.read()
        error.close()
        return error.code, b""


@pytest.mark.parametrize("reload", [False, True])
def test_runserver_requests_become_server_spans(tmp, reload):
    for name, source in [("settings.py", SETTINGS), ("urls.py", URLS), ("manage.py", MANAGE)]:
        (tmp / name).write_text(source)
    port = free_port()
    command = [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}"] + ([] if reload else ["--noreload"])
    server = subprocess.Popen(
        [FERROTEL, "instrument", "--traces_exporter", "console", "--log_level", "debug", *command],
        cwd=tmp,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=default_signals,  # stopped by SIGINT, which a background job ignores
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz/", deadline=30)
        answers = [get(f"http://127.0.0.1:{port}{p}")[0] for p in ("/hello/ada/", "/boom/", "/missing/")]
        time.sleep(0.5)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert answers == [200, 500, 404]
    if reload:
        pids = init_pids(err)
        assert len(pids) == len(set(pids)) == 2, err[-3000:]  # the reloader and the server
    spans = {s["attributes"].get("url.path"): s for s in console_spans(out) if s["kind"] == "SERVER"}
    hello = spans['"/hello/ada/"']
    assert hello["name"] == "GET /hello/<str:name>/"
    assert hello["attributes"]["http.route"] == '"/hello/<str:name>/"'
    assert hello["attributes"]["http.response.status_code"] == "200" and hello["status"] == "UNSET"
    boom = spans['"/boom/"']
    assert boom["name"] == "GET /boom/" and boom["status"] == "ERROR: RuntimeError: exploded"
    assert boom["events"] == ["exception"] and boom["attributes"]["error.type"] == '"RuntimeError"'
    missing = spans['"/missing/"']
    assert missing["name"] == "GET" and missing["status"] == "UNSET" and missing["events"] == []
