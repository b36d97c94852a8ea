"""`ferrotel instrument`: flags, exec model, command shapes, and exactly-once start-up."""

import os
import signal
import subprocess
import sys
import textwrap

from support.processes import FERROTEL, PYTHON, clean_env, free_port, init_pids, instrument, run, serving, wait_http

SHOW_ENV = "import os, sys; print(os.environ.get(sys.argv[1], '<unset>'))"


def test_flags_set_their_variables_for_the_command():
    result = instrument(
        "--service_name",
        "svc",
        "--exporter_otlp_traces_endpoint=http://127.0.0.1:9/x",
        "--disabled_instrumentations",
        "flask,requests",
        "--",
        PYTHON,
        "-c",
        "import os; print(os.environ['OTEL_SERVICE_NAME'], os.environ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],"
        " os.environ['OTEL_PYTHON_DISABLED_INSTRUMENTATIONS'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svc", "http://127.0.0.1:9/x", "flask,requests"]


def test_upstream_form_without_double_dash_passes_the_commands_own_flags():
    result = instrument("--traces_exporter", "console", PYTHON, "-c", SHOW_ENV, "OTEL_TRACES_EXPORTER")
    assert result.stdout.strip() == "console"
    result = instrument(PYTHON, "-c", "import sys; print(sys.argv[1:])", "--service_name", "x")
    assert result.stdout.strip() == "['--service_name', 'x']"


def test_flag_overrides_the_environment_and_unflagged_variables_pass_through():
    env = clean_env(OTEL_SERVICE_NAME="from-env", OTEL_TRACES_SAMPLER="always_off")
    result = instrument("--service_name", "from-flag", PYTHON, "-c", SHOW_ENV, "OTEL_SERVICE_NAME", env=env)
    assert result.stdout.strip() == "from-flag"
    result = instrument(PYTHON, "-c", SHOW_ENV, "OTEL_TRACES_SAMPLER", env=env)
    assert result.stdout.strip() == "always_off"


def test_exec_replaces_the_launcher():
    proc = subprocess.Popen(
        [FERROTEL, "instrument", PYTHON, "-c", "import os; print(os.getpid(), os.getppid())"],
        env=clean_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=30)
    pid, ppid = map(int, out.split())
    assert pid == proc.pid, "the command must run in the launcher's own process"
    assert ppid == os.getpid()


def test_sitecustomize_dir_is_first_on_pythonpath_once(tmp):
    env = clean_env(PYTHONPATH=str(tmp))
    code = "import os; print(os.environ['PYTHONPATH'])"
    # Nested launchers must not stack the directory twice.
    result = instrument(FERROTEL, "instrument", PYTHON, "-c", code, env=env)
    parts = result.stdout.strip().split(os.pathsep)
    assert parts[0].endswith(os.path.join("ferrotel", "_auto"))
    assert parts[1:] == [str(tmp)]


def test_python_module_and_path_commands(tmp):
    pkg = tmp / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import ferrotel._native as n; print('main', n.is_initialized())\n")
    result = instrument(PYTHON, "-m", "mypkg", cwd=tmp)
    assert result.stdout.strip() == "main True", result.stderr

    script = tmp / "tool.py"
    script.write_text(f"#!{PYTHON}\nimport ferrotel._native as n; print('script', n.is_initialized())\n")
    script.chmod(0o755)
    result = instrument(str(script))
    assert result.stdout.strip() == "script True", result.stderr
    result = instrument("./tool.py", cwd=tmp)
    assert result.stdout.strip() == "script True", result.stderr


def test_missing_command_is_one_line_and_127(tmp):
    result = instrument("no-such-command-xyz", "arg")
    assert result.returncode == 127
    assert result.stderr == "ferrotel instrument: error: command not found: no-such-command-xyz\n"

    not_executable = tmp / "data.txt"
    not_executable.write_text("hello")
    result = instrument(str(not_executable))
    assert result.returncode == 126
    assert len(result.stderr.splitlines()) == 1 and "permission denied" in result.stderr


def test_usage_errors_help_and_version():
    result = instrument("--servce_name", "x", PYTHON)
    assert result.returncode == 2 and "--servce_name" in result.stderr
    result = instrument("--service_name", "x")
    assert result.returncode == 2 and "COMMAND" in result.stderr
    help_text = instrument("--help").stdout
    for expected in [
        "--service_name",
        "--traces_exporter",
        "default otlp",
        "--exporter_otlp_endpoint",
        "--exporter_otlp_logs_client_certificate",
        "--bsp_max_queue_size",
        "default 2048",
        "--disabled_instrumentations",
        "--enabled_instrumentations",
        "--flask_excluded_urls",
        "--semconv_stability_opt_in",
    ]:
        assert expected in help_text, expected
    assert run(FERROTEL, "--version").stdout.strip() == "ferrotel 0.1.0"
    assert run(FERROTEL + "-instrument", "--version").stdout.strip() == "ferrotel-instrument 0.1.0"


def test_alias_executable_runs_the_same_launcher():
    result = run(FERROTEL + "-instrument", "--service_name", "alias", PYTHON, "-c", SHOW_ENV, "OTEL_SERVICE_NAME")
    assert result.stdout.strip() == "alias"


def test_bad_values_warn_once_and_the_app_runs():
    result = instrument("--bsp_max_queue_size", "abc", "--traces_sampler_arg", "2", PYTHON, "-c", "print('ran')")
    assert result.returncode == 0 and result.stdout.strip() == "ran"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("ferrotel: warning:")]
    assert warnings == [
        'ferrotel: warning: OTEL_BSP_MAX_QUEUE_SIZE="abc" is not a non-negative integer; using the default 2048'
    ]
    env = clean_env(OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="2")
    result = instrument(PYTHON, "-c", "pass", env=env)
    assert result.stderr == (
        'ferrotel: warning: OTEL_TRACES_SAMPLER_ARG="2" is not a ratio between 0 and 1; using the default 1.0\n'
    )


def test_secret_header_values_never_reach_the_output():
    result = instrument("--exporter_otlp_headers", "api-key=s3cr3t,garbage-s3cr3t", PYTHON, "-c", "pass")
    assert "OTEL_EXPORTER_OTLP_HEADERS" in result.stderr
    assert "s3cr3t" not in result.stderr


def test_users_own_sitecustomize_still_runs(tmp):
    (tmp / "sitecustomize.py").write_text("MARK = 'user sitecustomize ran'\n")
    code = "import sitecustomize, ferrotel._native as n; print(sitecustomize.MARK, n.is_initialized())"
    result = instrument(PYTHON, "-c", code, env=clean_env(PYTHONPATH=str(tmp)))
    assert result.stdout.strip() == "user sitecustomize ran True", result.stderr


def test_a_python_without_ferrotel_runs_uninstrumented_with_one_line(tmp):
    # The base interpreter (outside the venv) cannot import ferrotel.
    base = os.path.realpath(os.path.join(sys.base_prefix, "bin", "python3"))
    result = instrument(base, "-I", "-c", "print('isolated')")
    assert result.stdout.strip() == "isolated"
    result = instrument(base, "-c", "print('plain')")
    assert result.stdout.strip() == "plain"
    assert result.stderr.count("ferrotel: warning: not instrumenting") == 1


CHILDREN = textwrap.dedent(
    """
    import multiprocessing, os, subprocess, sys
    import ferrotel._native as native

    def child(queue):
        queue.put((os.getpid(), native.is_initialized()))

    if __name__ == "__main__":
        results = []
        for method in ("spawn", "fork", "forkserver"):
            ctx = multiprocessing.get_context(method)
            queue = ctx.Queue()
            proc = ctx.Process(target=child, args=(queue,))
            proc.start()
            results.append((method,) + queue.get(timeout=30))
            proc.join()
        sub = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                             stdout=subprocess.PIPE, text=True)
        results.append(("subprocess", int(sub.stdout), True))
        pid = os.fork()
        if pid == 0:
            os._exit(0 if native.is_initialized() else 1)
        _, status = os.waitpid(pid, 0)
        results.append(("os.fork", pid, os.waitstatus_to_exitcode(status) == 0))
        print(repr(results))
    """
)


def test_every_python_process_initialises_exactly_once(tmp):
    script = tmp / "children.py"
    script.write_text(CHILDREN)
    result = instrument("--log_level", "debug", PYTHON, str(script), timeout=120)
    assert result.returncode == 0, result.stderr
    results = {method: (pid, initialized) for method, pid, initialized in eval(result.stdout)}
    assert all(initialized for _, initialized in results.values()), results
    pids = init_pids(result.stderr)
    assert len(pids) == len(set(pids)), f"a process initialised twice: {pids}"
    # Fresh interpreters initialise themselves; forked children inherit the parent's state.
    for fresh in ("spawn", "subprocess"):
        assert results[fresh][0] in pids, fresh
    for forked in ("fork", "os.fork"):
        assert results[forked][0] not in pids, forked


FLASK_APP = textwrap.dedent(
    """
    import os
    import ferrotel._native as native
    from flask import Flask

    app = Flask(__name__)

    @app.route("/")
    def index():
        return f"{os.getpid()} {native.is_initialized()}"
    """
)


def _serve(command, port, tmp, extra_env=None):
    env = clean_env(**(extra_env or {}))
    with serving([FERROTEL, "instrument", "--log_level", "debug", *command], tmp, env, signal.SIGTERM) as server:
        bodies = [wait_http(f"http://127.0.0.1:{port}/") for _ in range(4)]
    return bodies, server.output[1]


def test_flask_run_with_reloader_initialises_each_process_once(tmp):
    (tmp / "app.py").write_text(FLASK_APP)
    port = free_port()
    bodies, stderr = _serve(["flask", "--app", "app", "run", "--debug", "--port", str(port)], port, tmp)
    pids = init_pids(stderr)
    served_by = {int(b.split()[0]) for b in bodies}
    assert all(b.endswith("True") for b in bodies), bodies
    assert len(pids) == 2 and len(set(pids)) == 2, stderr  # reloader parent + serving child
    assert served_by <= set(pids)


def test_gunicorn_workers_inherit_the_masters_start_up(tmp):
    (tmp / "app.py").write_text(FLASK_APP)
    port = free_port()
    command = ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"]
    bodies, stderr = _serve(command, port, tmp)
    assert all(b.endswith("True") for b in bodies), bodies
    assert len(init_pids(stderr)) == 1, stderr  # pre-fork: only the master starts ferrotel


def test_uvicorn_reload_child_is_initialised(tmp):
    (tmp / "asgi.py").write_text(
        textwrap.dedent(
            """
            import os
            import ferrotel._native as native

            async def app(scope, receive, send):
                if scope["type"] != "http":
                    return
                body = f"{os.getpid()} {native.is_initialized()}".encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
            """
        )
    )
    port = free_port()
    bodies, stderr = _serve(["uvicorn", "--reload", "--port", str(port), "asgi:app"], port, tmp)
    pids = init_pids(stderr)
    assert all(b.endswith("True") for b in bodies), bodies
    assert {int(b.split()[0]) for b in bodies} <= set(pids)
    assert len(pids) == len(set(pids)) >= 2, stderr
