"""Every built-in instrumentation's uninstrument() puts back exactly what instrument()
replaced (run in a plain interpreter, so the originals are the libraries' own)."""

import textwrap

import pytest
from support.processes import PYTHON, clean_env, run

CHECK = textwrap.dedent(
    """
    import importlib, sys
    module_name, class_name, target = sys.argv[1:4]
    owner_path, attribute = target.rsplit(".", 1)

    def current():
        if attribute == "()":
            return eval(owner_path)()
        parts = owner_path.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ImportError:
                continue
        for part in parts[i:]:
            obj = getattr(obj, part)
        return getattr(obj, attribute)

    import logging, threading  # noqa: the targets of two instrumentations
    if module_name.endswith("django"):
        import django.core.handlers.wsgi, django.core.handlers.base, django.core.handlers.exception
    before = current()
    instrumentor = getattr(importlib.import_module(module_name), class_name)()
    instrumentor.instrument()
    patched = current()
    instrumentor.uninstrument()
    after = current()
    print(patched is not before, after is before, instrumentor.is_instrumented_by_opentelemetry)
    """
)

CASES = [
    ("ferrotel.instrumentation.flask", "FlaskInstrumentor", "flask.Flask.wsgi_app"),
    ("ferrotel.instrumentation.django", "DjangoInstrumentor", "django.core.handlers.wsgi.WSGIHandler.__call__"),
    ("ferrotel.instrumentation.requests", "RequestsInstrumentor", "requests.Session.send"),
    ("ferrotel.instrumentation.urllib3", "URLLib3Instrumentor", "urllib3.connectionpool.HTTPConnectionPool.urlopen"),
    ("ferrotel.instrumentation.urllib", "URLLibInstrumentor", "urllib.request.OpenerDirector._open"),
    ("ferrotel.instrumentation.sqlite3", "SQLite3Instrumentor", "sqlite3.connect"),
    ("ferrotel.instrumentation.threads", "ThreadingInstrumentor", "threading.Thread.start"),
    ("ferrotel.instrumentation.log_correlation", "LoggingInstrumentor", "logging.getLogRecordFactory.()"),
]


@pytest.mark.parametrize(("module", "cls", "target"), CASES, ids=[c[1] for c in CASES])
def test_uninstrument_restores_the_original(tmp, module, cls, target):
    (tmp / "check.py").write_text(CHECK)
    result = run(PYTHON, "check.py", module, cls, target, cwd=tmp, env=clean_env())
    assert result.stdout.strip() == "True True False", result.stderr
