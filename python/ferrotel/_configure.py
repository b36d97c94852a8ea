"""`ferrotel.configure(...)`: programmatic set-up with the same names and semantics as the
`ferrotel instrument` flags (`service_name=...` is OTEL_SERVICE_NAME, and so on)."""

from opentelemetry import trace

from ferrotel import _native
from ferrotel.trace import TracerProvider


def configure(**settings):
    by_flag = dict(_native.variables())
    unknown = sorted(set(settings) - set(by_flag))
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; they are named as the ferrotel instrument flags")
    overrides = {by_flag[key]: _text(value) for key, value in settings.items()}
    provider = TracerProvider.from_environment(overrides)
    trace.set_tracer_provider(provider)
    return provider


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)
