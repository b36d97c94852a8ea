"""ferrotel: zero-code OpenTelemetry for Python with a Rust core.

This module is imported at interpreter start-up by ``ferrotel instrument``; it must stay
free of imports.
"""

from ferrotel._native import __version__


def configure(**settings):
    """Sets up tracing in code: ``ferrotel.configure(service_name="shop", traces_exporter="console")``.

    Settings are named as the ``ferrotel instrument`` flags and win over the environment.
    Returns the installed TracerProvider.
    """
    from ferrotel._configure import configure as _configure

    return _configure(**settings)


__all__ = ["__version__", "configure"]
