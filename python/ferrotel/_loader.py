"""Start-up glue: load what the native plan names, isolating every entry point.

The plan (which distro, configurator, hooks and instrumentors, and when) is decided in Rust
from metadata; Python is needed here only because entry points are Python objects to import
and call. Every call is guarded: a failing entry point is reported once and skipped, and
the application always starts.
"""

import os
import sys
from _thread import allocate_lock

from ferrotel import __version__, _native

_SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"


def start() -> None:
    plan = _native.initialize(sys.path)
    if plan is None:
        return
    # Only for contrib instrumentations, and only once their semconv helper is imported: a
    # variable set at start would be in every app's os.environ, where libraries that scan it
    # per call pay for it (requests' proxy lookup walks the whole environment per request).
    if _SEMCONV_OPT_IN not in os.environ:
        when_imported("opentelemetry.instrumentation._semconv", default_stable_semconv)
    if plan["gevent_patch"]:
        _guarded("gevent patch", _patch_gevent)
    distro = None
    if plan["distro"] is not None:
        distro = _guarded(_describe("distro", plan["distro"]), _configure_distro, plan["distro"])
    if plan["configurator"] is not None:
        _guarded(_describe("configurator", plan["configurator"]), _configure, plan["configurator"])
    for hook in plan["pre_instrument"]:
        _guarded(_describe("pre-instrument hook", hook), lambda h=hook: _load(h)())
    for spec, modules in plan["instrumentors"]:
        activate = _Once(_describe("instrumentor", spec), _instrument, spec, distro)
        activate.missing_module_skips = True
        if modules is None:
            activate()
        else:
            _WATCHER.watch(modules, activate)
    for contrib, builtin in plan["replaced"]:
        _WATCHER.watch([contrib[1]], _Once(_describe("stand-in for", contrib), _stand_in, contrib, builtin))
    _WATCHER.install()
    for hook in plan["post_instrument"]:
        _guarded(_describe("post-instrument hook", hook), lambda h=hook: _load(h)())


def default_stable_semconv():
    """Contrib instrumentors read OTEL_SEMCONV_STABILITY_OPT_IN (through their semconv
    helper, on first use, not on import) to choose between the old and the stable attribute
    names; unless the user chose, they get the stable ones, as ferrotel's built-ins emit."""
    os.environ.setdefault(_SEMCONV_OPT_IN, "http,database")


def when_imported(module, callback):
    """Runs callback (guarded, once) when module has been imported, or now if it is."""
    _WATCHER.watch([module], _Once(f"hook on import of {module}", callback))
    _WATCHER.install()


def _describe(role, spec):
    name, _module, _attr, distribution = spec
    return f"{role} {name!r} ({distribution})"


def _guarded(what, func, *args):
    """Calls func; a failure is reported once and swallowed so the application goes on."""
    try:
        result = func(*args)
    except Exception as exc:  # noqa: BLE001 - isolation is the point
        _report_failure(what, exc)
        return None
    _native.log("debug", f"{what} loaded")
    return result


def _report_failure(what, exc):
    _native.log("warning", f"{what} failed and was skipped: {type(exc).__name__}: {exc}")
    if _native.log_enabled("debug"):
        import traceback

        _native.log("debug", "".join(traceback.format_exception(exc)).rstrip())


class _EntryPoint:
    """The part of importlib.metadata.EntryPoint that distros' load_instrumentor() uses."""

    group = "opentelemetry_instrumentor"

    def __init__(self, spec):
        self.name, module, attr, self.dist_name = spec
        self.value = f"{module}:{attr}" if attr else module
        self._spec = spec

    def load(self):
        return _load(self._spec)


def _load(spec):
    _name, module, attr, _distribution = spec
    obj = __import__(module, fromlist=["_"])
    for part in (attr or "").split("."):
        if part:
            obj = getattr(obj, part)
    return obj


def _patch_gevent():
    from gevent import monkey

    monkey.patch_all()


def _configure_distro(spec):
    distro = _load(spec)()
    distro.configure()
    return distro


def _configure(spec):
    _load(spec)().configure(auto_instrumentation_version=__version__)


def _instrument(spec, distro):
    load_instrumentor = getattr(distro, "load_instrumentor", None)
    if load_instrumentor is not None:
        load_instrumentor(_EntryPoint(spec), skip_dep_check=True)
    else:
        _load(spec)().instrument(skip_dep_check=True)


def _stand_in(contrib_spec, builtin_spec):
    """A contrib instrumentor skipped for ferrotel's built-in of the same name, imported by
    the app to call itself (`RedisInstrumentor().instrument()`). Under upstream's zero-code
    instrumentation that instance is already instrumented, so the call only warns; a second
    instrumentation here would record everything twice. So it stands for the built-in: it
    reads as instrumented while the built-in is, and its `instrument()` / `uninstrument()`
    (still contrib's, with their warnings and checks) turn the built-in on and off."""
    contrib = _load(contrib_spec)()
    builtin = _load(builtin_spec)()
    contrib_class = type(contrib)

    def in_step():
        contrib._is_instrumented_by_opentelemetry = builtin.is_instrumented_by_opentelemetry

    def instrument(**kwargs):
        in_step()
        return contrib_class.instrument(contrib, **kwargs)

    def uninstrument(**kwargs):
        in_step()
        return contrib_class.uninstrument(contrib, **kwargs)

    contrib.instrument, contrib.uninstrument = instrument, uninstrument
    contrib._instrument, contrib._uninstrument = builtin.instrument, builtin.uninstrument
    in_step()


class _Once:
    """Runs a guarded activation at most once, whichever watched module triggers it.

    Activation runs as soon as the watched module is imported. If it fails while other
    imports are still in progress (`logging` imports `threading`, and a `threading`
    instrumentor that imports OpenTelemetry meets a half-initialised `logging`), it is tried
    once more when those imports have finished.
    """

    # An instrumentor whose entry point names a module that is not installed (a contrib
    # package's entry point for a library variant absent here) is skipped quietly, as
    # upstream's loader does: that is not a failure.
    missing_module_skips = False

    def __init__(self, what, func, *args):
        self._what, self._func, self._args = what, func, args
        self._lock = allocate_lock()
        self._done = False

    def __call__(self):
        with self._lock:
            if self._done:
                return
            self._done = True
        self._attempt(retry=True)

    def _attempt(self, retry):
        try:
            self._func(*self._args)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            if self.missing_module_skips and isinstance(exc, ModuleNotFoundError):
                _native.log("debug", f"{self._what} skipped: {exc}")
                return
            if retry and _imports_in_progress():
                _native.log("debug", f"{self._what} retried after the imports in progress: {type(exc).__name__}: {exc}")
                _after_imports_in_progress(lambda: self._attempt(retry=False))
            else:
                _report_failure(self._what, exc)
            return
        _native.log("debug", f"{self._what} loaded")


class _ImportWatcher:
    """A sys.meta_path finder that runs callbacks once a watched module has been imported.

    It answers only for watched names (one dict lookup per import otherwise) and leaves
    sys.meta_path as soon as nothing is left to watch.
    """

    def __init__(self):
        self._callbacks = {}

    def watch(self, modules, callback):
        for module in modules:
            self._callbacks.setdefault(module, []).append(callback)

    def install(self):
        # Modules already imported fire now; one still executing (this may run from inside
        # its import chain) fires once that import has finished.
        for module in [m for m in self._callbacks if m in sys.modules]:
            spec = getattr(sys.modules[module], "__spec__", None)
            if getattr(spec, "_initializing", False):
                _after_imports_in_progress(lambda m=module: self._fire(m))
            else:
                self._fire(module)
        if self._callbacks and self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def _fire(self, module):
        callbacks = self._callbacks.pop(module, ())
        if not self._callbacks and self in sys.meta_path:
            sys.meta_path.remove(self)
        for callback in callbacks:
            callback()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self._callbacks:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _NotifyingLoader(spec.loader, self, fullname)
        return spec


_ModuleSpec = type(sys.modules["sys"].__spec__)


class _SpecAwaitingInit(_ModuleSpec):
    """Stands in for a ModuleSpec while its module is still executing: the import system
    clears `_initializing` in a `finally` once the module is done, which is the signal."""

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name == "_initializing" and not value:
            object.__setattr__(self, "__class__", _ModuleSpec)
            for waiter in _WAITERS.pop(id(self), ()):
                waiter.done(id(self))


_WAITERS = {}


class _AfterImports:
    """Runs `action` once every module that was initialising when it was made is done."""

    def __init__(self, action, pending):
        self._action, self._pending = action, set(pending)

    def done(self, spec_id):
        self._pending.discard(spec_id)
        if not self._pending:
            self._action()


def _imports_in_progress():
    """Specs of the modules whose code is still executing (the import chain in progress)."""
    return [
        spec
        for module in list(sys.modules.values())
        if type(spec := getattr(module, "__spec__", None)) in (_ModuleSpec, _SpecAwaitingInit)
        and getattr(spec, "_initializing", False)
    ]


def _after_imports_in_progress(action):
    initializing = _imports_in_progress()
    if not initializing:
        action()
        return
    waiter = _AfterImports(action, map(id, initializing))
    for spec in initializing:
        object.__setattr__(spec, "__class__", _SpecAwaitingInit)
        _WAITERS.setdefault(id(spec), []).append(waiter)


class _NotifyingLoader:
    """Wraps a module's loader for one exec_module, then hands the module its real loader."""

    def __init__(self, loader, watcher, fullname):
        self._loader, self._watcher, self._fullname = loader, watcher, fullname

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._watcher._fire(self._fullname)


_WATCHER = _ImportWatcher()
