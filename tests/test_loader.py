"""The loader against real installed distributions: a temp venv holding ferrotel and
throwaway packages with entry points, installed by pip from wheels built here."""

import subprocess
import sys
import textwrap

import pytest
from support.dist import ferrotel_wheel
from support.processes import FERROTEL, clean_env, run
from support.wheels import build_wheel

FAKELIB = {"fakelib/__init__.py": "def hello():\n    return 'original'\n"}

INSTRUMENTOR = textwrap.dedent(
    """
    import sys

    class Instrumentor:
        def instrument(self, **kwargs):
            import fakelib
            fakelib.hello = lambda: "patched"
            sys.stderr.write(f"fakelib instrumented skip_dep_check={kwargs.get('skip_dep_check')}\\n")
    """
)

INNER_INSTRUMENTOR = textwrap.dedent(
    """
    class Instrumentor:
        def instrument(self, **kwargs):
            import innerlib, outerlib
            innerlib.PATCHED = outerlib.VALUE
    """
)

BOOM = "class Instrumentor:\n    def instrument(self, **kwargs):\n        raise RuntimeError('boom')\n"

NEEDS_NEW = "class Instrumentor:\n    def instrument(self, **kwargs):\n        raise AssertionError('must not load')\n"

HOOKS = textwrap.dedent(
    """
    import sys

    def pre():
        sys.stderr.write("pre-instrument hook\\n")

    def post():
        sys.stderr.write("post-instrument hook\\n")

    class Distro:
        def configure(self, **kwargs):
            sys.stderr.write("distro configured\\n")

        def load_instrumentor(self, entry_point, **kwargs):
            sys.stderr.write(f"distro loads {entry_point.name}\\n")
            entry_point.load()().instrument(**kwargs)

    class Configurator:
        def configure(self, **kwargs):
            sys.stderr.write(f"configurator {sorted(kwargs)}\\n")

    class OtherConfigurator:
        def configure(self, **kwargs):
            sys.stderr.write("other configurator\\n")
    """
)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    wheels = root / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "fakelib", "1.0", FAKELIB)
    build_wheel(
        wheels,
        "fakelib-instrumentation",
        "0.1",
        {"fakelib_instr.py": INSTRUMENTOR},
        requires=["fakelib>=1.0; extra == 'instruments'"],
        entry_points={"opentelemetry_instrumentor": {"fakelib": "fakelib_instr:Instrumentor"}},
    )
    build_wheel(
        wheels,
        "boom-instrumentation",
        "0.1",
        {"boom_instr.py": BOOM},
        entry_points={"opentelemetry_instrumentor": {"boom": "boom_instr:Instrumentor"}},
    )
    # An entry point whose module is not installed (as a contrib package's entry point for a
    # library variant that is absent): skipped at debug level, not a failure.
    build_wheel(
        wheels,
        "ghost-instrumentation",
        "0.1",
        {"ghost_instr.py": "import ghostlib\n"},
        entry_points={"opentelemetry_instrumentor": {"ghost": "ghost_instr:Instrumentor"}},
    )
    build_wheel(
        wheels,
        "needs-new-fakelib",
        "0.1",
        {"needs_new.py": NEEDS_NEW},
        requires=["fakelib>=2.0; extra == 'instruments'"],
        entry_points={"opentelemetry_instrumentor": {"newfake": "needs_new:Instrumentor"}},
    )
    build_wheel(
        wheels,
        "test-hooks",
        "0.1",
        {"test_hooks.py": HOOKS},
        entry_points={
            "opentelemetry_pre_instrument": {"pre": "test_hooks:pre"},
            "opentelemetry_post_instrument": {"post": "test_hooks:post"},
            "opentelemetry_distro": {"testdistro": "test_hooks:Distro"},
            "opentelemetry_configurator": {
                "testconf": "test_hooks:Configurator",
                "other": "test_hooks:OtherConfigurator",
            },
        },
    )
    # outerlib imports innerlib while outerlib itself is half-initialised; innerlib's
    # instrumentor needs outerlib complete, so its first activation fails and is retried.
    build_wheel(wheels, "outerlib", "1.0", {"outerlib/__init__.py": "import innerlib\nVALUE = 42\n"})
    build_wheel(wheels, "innerlib", "1.0", {"innerlib/__init__.py": "PATCHED = None\n"})
    build_wheel(
        wheels,
        "innerlib-instrumentation",
        "0.1",
        {"innerlib_instr.py": INNER_INSTRUMENTOR},
        requires=["innerlib; extra == 'instruments'"],
        entry_points={"opentelemetry_instrumentor": {"innerlib": "innerlib_instr:Instrumentor"}},
    )
    target = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
        ]
        + [str(ferrotel_wheel())]
        + [str(w) for w in wheels.glob("*.whl")],
        check=True,
    )
    return python


def app(venv, code, *flags, env=None):
    return run(FERROTEL, "instrument", *flags, venv, "-c", textwrap.dedent(code), env=env or clean_env())


def test_instrumentor_activates_only_when_its_library_is_imported(venv):
    result = app(venv, "import sys; print('fakelib' in sys.modules, 'fakelib_instr' in sys.modules)")
    assert result.stdout.split() == ["False", "False"], result.stderr
    assert "fakelib instrumented" not in result.stderr

    result = app(venv, "from fakelib import hello; print(hello())")
    assert result.stdout.strip() == "patched", result.stderr
    assert "fakelib instrumented skip_dep_check=True" in result.stderr


def test_a_library_imported_before_start_up_is_instrumented_at_once(venv, tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import fakelib\n")
    env = clean_env(PYTHONPATH=str(tmp_path))
    result = app(venv, "import fakelib; print(fakelib.hello())", env=env)
    # The user's sitecustomize runs after ferrotel's, so the watcher sees this import too.
    assert result.stdout.strip() == "patched", result.stderr


def test_the_module_keeps_its_real_loader(venv):
    result = app(
        venv,
        "import fakelib; print(type(fakelib.__loader__).__name__, type(fakelib.__spec__.loader).__name__)",
    )
    assert result.stdout.split() == ["SourceFileLoader", "SourceFileLoader"], result.stderr


def test_watcher_leaves_meta_path_when_done(venv):
    code = "import sys, fakelib; print(any(type(f).__name__ == '_ImportWatcher' for f in sys.meta_path))"
    # ferrotel's own configurator would keep watching for opentelemetry.trace, the
    # exceptions built-in for asyncio, and, unless the user chose the semantic conventions,
    # the loader for contrib's semconv helper.
    result = app(
        venv,
        code,
        "--disabled_instrumentations",
        "boom,innerlib,logging,threading,urllib,sqlite3,exceptions",
        "--configurator",
        "testconf",
        env=clean_env(OTEL_SEMCONV_STABILITY_OPT_IN="http"),
    )
    assert result.stdout.strip() == "False", result.stderr


def test_failing_instrumentor_is_reported_once_and_isolated(venv):
    result = app(venv, "import fakelib; print(fakelib.hello())")
    assert result.returncode == 0
    assert result.stdout.strip() == "patched"
    failures = [line for line in result.stderr.splitlines() if "failed and was skipped" in line]
    assert failures == [
        "ferrotel: warning: instrumentor 'boom' (boom-instrumentation) failed and was skipped: RuntimeError: boom"
    ]


def test_an_entry_point_whose_module_is_missing_is_skipped_at_debug_level(venv):
    # ferrotel's built-ins are off too: they warn that this venv has no opentelemetry-api.
    disabled = "boom,sqlite3,urllib,exceptions"
    result = app(venv, "print('ran')", "--log_level", "debug", "--disabled_instrumentations", disabled)
    assert result.stdout.strip() == "ran"
    assert "warning" not in result.stderr, result.stderr
    skipped = "ferrotel: debug: instrumentor 'ghost' (ghost-instrumentation) skipped: No module named 'ghostlib'"
    assert skipped in result.stderr.splitlines(), result.stderr


def test_disable_and_enable_lists(venv):
    result = app(venv, "import fakelib; print(fakelib.hello())", "--disabled_instrumentations", "fakelib,boom")
    assert result.stdout.strip() == "original" and "boom" not in result.stderr
    result = app(venv, "import fakelib; print(fakelib.hello())", "--disabled_instrumentations", "*")
    assert result.stdout.strip() == "original" and "boom" not in result.stderr
    result = app(venv, "import fakelib; print(fakelib.hello())", "--enabled_instrumentations", "boom")
    assert result.stdout.strip() == "original" and "RuntimeError: boom" in result.stderr
    result = app(
        venv,
        "import fakelib; print(fakelib.hello())",
        "--enabled_instrumentations",
        "fakelib,boom",
        "--disabled_instrumentations",
        "boom",
    )
    assert result.stdout.strip() == "patched" and "boom" not in result.stderr


def test_debug_lists_what_activated_and_why_not(venv):
    result = app(venv, "import fakelib", "--log_level", "debug", "--disabled_instrumentations", "boom")
    lines = result.stderr.splitlines()
    expected = [
        "ferrotel: debug: instrumentor 'fakelib' (fakelib-instrumentation) waits for import of fakelib",
        "ferrotel: debug: instrumentor 'boom' (boom-instrumentation) skipped: disabled by "
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        "ferrotel: debug: instrumentor 'newfake' (needs-new-fakelib) skipped: needs fakelib>=2.0; "
        "extra == 'instruments', found fakelib 1.0",
        "ferrotel: debug: instrumentor 'fakelib' (fakelib-instrumentation) loaded",
    ]
    for line in expected:
        assert line in lines, f"{line!r} missing from:\n{result.stderr}"


def test_hooks_distro_and_configurator_run_in_order(venv):
    flags = ["--disabled_instrumentations", "boom", "--distro", "testdistro", "--configurator", "testconf"]
    result = app(venv, "import fakelib", *flags)
    order = [
        line
        for line in result.stderr.splitlines()
        if line in {"distro configured", "pre-instrument hook", "post-instrument hook", "distro loads fakelib"}
        or line.startswith("configurator")
    ]
    assert order == [
        "distro configured",
        "configurator ['auto_instrumentation_version']",
        "pre-instrument hook",
        "post-instrument hook",
        "distro loads fakelib",
    ], result.stderr


def test_ferrotels_configurator_is_the_default_and_another_can_be_named(venv):
    result = app(venv, "pass", "--log_level", "debug", "--disabled_instrumentations", "*")
    assert "ferrotel: debug: configurator: 'ferrotel' (ferrotel)" in result.stderr.splitlines(), result.stderr
    result = app(venv, "pass", "--configurator", "other", "--disabled_instrumentations", "*")
    assert "other configurator" in result.stderr and "configurator [" not in result.stderr
    result = app(venv, "pass", "--configurator", "missing", "--disabled_instrumentations", "*")
    assert 'OTEL_PYTHON_CONFIGURATOR="missing" names no installed opentelemetry_configurator' in result.stderr


def test_sdk_disabled_installs_nothing(venv):
    result = app(venv, "import fakelib; print(fakelib.hello())", "--sdk_disabled", "true")
    assert result.stdout.strip() == "original"
    assert "distro configured" not in result.stderr and "boom" not in result.stderr


def test_start_up_imports_nothing_but_ferrotel(venv):
    code = "import sys; print(' '.join(sorted(sys.modules)))"
    bare = set(run(venv, "-c", code).stdout.split())
    env = clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="", OTEL_PYTHON_DISTRO="", OTEL_PYTHON_CONFIGURATOR="")
    # Without distro/configurator/hooks entry points of its own, ferrotel adds only itself.
    result = app(venv, code, "--disabled_instrumentations", "*", env=env)
    added = set(result.stdout.split()) - bare
    # atexit is built into the interpreter: the exit flush is registered at start-up.
    expected = {"test_hooks", "sitecustomize", "atexit"}
    unexpected = {m for m in added if not m.startswith("ferrotel") and m not in expected}
    assert not unexpected, unexpected
    for heavy in ("importlib.metadata", "packaging", "pkg_resources", "opentelemetry", "logging", "fakelib"):
        assert heavy not in added


def test_activation_failing_inside_an_import_chain_is_retried_when_it_completes(venv):
    code = "import outerlib, innerlib; print(innerlib.PATCHED)"
    result = app(venv, code, "--log_level", "debug", "--disabled_instrumentations", "boom")
    assert result.stdout.strip() == "42", result.stderr
    lines = result.stderr.splitlines()
    retried = [line for line in lines if "'innerlib'" in line and "retried after the imports in progress" in line]
    assert len(retried) == 1 and "partially initialized module 'outerlib'" in retried[0], result.stderr
    assert "ferrotel: debug: instrumentor 'innerlib' (innerlib-instrumentation) loaded" in lines
    assert "failed and was skipped" not in result.stderr


def test_without_the_api_ferrotels_instrumentations_are_off_and_the_app_unharmed(venv, tmp_path):
    # This venv has ferrotel installed with --no-deps: no opentelemetry-api.
    code = """
        import sqlite3, urllib.request
        print(sqlite3.connect(":memory:").execute("select 41 + 1").fetchall())
        try:
            urllib.request.urlopen("http://127.0.0.1:9/", timeout=5)
        except OSError as error:
            print(type(error).__name__)
    """
    result = app(venv, code, "--disabled_instrumentations", "boom")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[(42,)]", "URLError"], result.stderr
    warnings = [line for line in result.stderr.splitlines() if "opentelemetry-api" in line]
    assert warnings == [
        "ferrotel: warning: ferrotel's instrumentation of exceptions, sqlite3, urllib is off: it needs "
        "opentelemetry-api>=1.26, which is not installed (ferrotel depends on it; was it installed with "
        "--no-deps?)"
    ], result.stderr
