"""Put first on PYTHONPATH by ``ferrotel instrument``: starts ferrotel in every Python
process of the tree, then runs the ``sitecustomize`` this file shadows, if there is one."""

import sys


def _start_ferrotel():
    try:
        from ferrotel._loader import start
    except ImportError as exc:
        sys.stderr.write(f"ferrotel: warning: not instrumenting {sys.executable}: {exc}\n")
        return
    try:
        start()
    except Exception as exc:  # noqa: BLE001 - the application must start regardless
        sys.stderr.write(f"ferrotel: error: start-up failed, running uninstrumented: {type(exc).__name__}: {exc}\n")


def _run_shadowed_sitecustomize():
    from os.path import abspath, dirname

    # The import system's own (always loaded) modules: importing importlib.machinery would
    # add importlib and warnings to every process's start-up.
    bootstrap = sys.modules["_frozen_importlib"]
    path_finder = sys.modules["_frozen_importlib_external"].PathFinder
    here = dirname(abspath(__file__))
    others = [p for p in sys.path if abspath(p or ".") != here]
    spec = path_finder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = bootstrap.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_start_ferrotel()
_run_shadowed_sitecustomize()
