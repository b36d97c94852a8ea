"""ferrotel: zero-code OpenTelemetry for Python with a Rust core.

This module is imported at interpreter start-up by ``ferrotel instrument``; it must stay
free of imports.
"""

from ferrotel._native import __version__

__all__ = ["__version__"]
