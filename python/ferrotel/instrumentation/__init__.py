"""ferrotel's built-in instrumentations.

Each is an `opentelemetry_instrumentor` entry point of the ferrotel distribution: the loader
activates it when its library is first imported, the disable/enable lists name it as
upstream's do, a contrib package of the same name is skipped in its favour, and upstream's
`opentelemetry-instrument` can load it too.
"""

# The stable HTTP conventions' advisory boundaries for request durations, in seconds.
HTTP_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]


def excluded_pattern(instrumentation):
    """One compiled regex for the URLs an instrumentation skips
    (OTEL_PYTHON_{NAME}_EXCLUDED_URLS, else OTEL_PYTHON_EXCLUDED_URLS), or None."""
    from ferrotel import _native

    return compile_excluded(_native.excluded_urls(instrumentation))


def compile_excluded(excluded_urls):
    """One regex for URL patterns given as upstream's `excluded_urls` argument takes them
    (a comma-separated string), as a list, or already compiled; None for none."""
    import re

    if isinstance(excluded_urls, str):
        excluded_urls = [p.strip() for p in excluded_urls.split(",") if p.strip()]
    if not excluded_urls:
        return None
    if isinstance(excluded_urls, re.Pattern):
        return excluded_urls
    return re.compile("|".join(f"(?:{p})" for p in excluded_urls))


# Upstream's per-object "already instrumented" flag, which contrib's explicit APIs
# (`FastAPIInstrumentor.instrument_app(app)` and the like) read before instrumenting.
CONTRIB_FLAG = "_is_instrumented_by_opentelemetry"


class ContribFlag:
    """Contrib's flag on an app class ferrotel patches. It reads true of an app ferrotel
    traces, so contrib's `instrument_app` leaves that app alone (with its warning) as it does
    under upstream's zero-code instrumentation, where every app is already instrumented.
    Contrib writes the flag when it instruments or uninstruments an app itself: from then on
    the app's tracing is contrib's and ferrotel stays out of it."""

    def __init__(self, traced):
        self._traced = traced

    def __get__(self, app, owner=None):
        if app is None:
            return self
        value = app.__dict__.get(CONTRIB_FLAG)
        return self._traced(app) if value is None else value

    def __set__(self, app, value):
        app.__dict__[CONTRIB_FLAG] = value
        app.__dict__["_ferrotel_instrumented"] = False

    def __delete__(self, app):
        app.__dict__.pop(CONTRIB_FLAG, None)


def flag_apps(app_class, traced):
    """Puts contrib's flag on `app_class`, `traced(app)` telling whether ferrotel traces an app."""
    setattr(app_class, CONTRIB_FLAG, ContribFlag(traced))


def unflag_apps(app_class):
    if isinstance(app_class.__dict__.get(CONTRIB_FLAG), ContribFlag):
        delattr(app_class, CONTRIB_FLAG)


class Instrumentor:
    """Upstream's contract: one instance per class; `instrument()` and `uninstrument()`
    are idempotent, and `uninstrument()` restores what `instrument()` replaced."""

    # The entry-point name; its library requirement is the loader's (one source for both).
    name = None
    _instances = {}

    def __new__(cls):
        instance = Instrumentor._instances.get(cls)
        if instance is None:
            instance = super().__new__(cls)
            instance._instrumented = False
            Instrumentor._instances[cls] = instance
        return instance

    @property
    def is_instrumented_by_opentelemetry(self):
        return self._instrumented

    def instrumentation_dependencies(self):
        from ferrotel import _native

        return tuple(_native.builtin_requirements(self.name))

    def instrument(self, **kwargs):
        if not self._instrumented:
            self._instrument(**kwargs)
            self._instrumented = True

    def uninstrument(self, **kwargs):
        if self._instrumented:
            self._uninstrument(**kwargs)
            self._instrumented = False

    def _instrument(self, **kwargs):
        raise NotImplementedError

    def _uninstrument(self, **kwargs):
        raise NotImplementedError
