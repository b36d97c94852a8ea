"""ferrotel's `opentelemetry_configurator` entry point.

It does not build anything at start-up: importing the API there would cost ~30 ms for
every process, including those that never trace. Instead, the moment
`opentelemetry.trace` is first imported (by the app or an instrumentor), ferrotel's
TracerProvider, configured from the environment, is installed as the global one; the same
for `opentelemetry.propagate` and ferrotel's propagator for OTEL_PROPAGATORS, for
`opentelemetry.metrics` and ferrotel's MeterProvider, and for `opentelemetry._logs` and
ferrotel's LoggerProvider. `logging` records are exported by default through the logging
instrumentation's handler; with the deprecated
OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true, the configurator attaches it instead,
as upstream's SDK does, once `logging` is imported (which needs no API import at all).
"""

from ferrotel import _loader, _native


def install_tracer_provider():
    from opentelemetry import trace

    from ferrotel.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider.from_environment())


def install_propagator():
    from opentelemetry import propagate

    from ferrotel.propagate import from_environment

    propagate.set_global_textmap(from_environment())


def install_meter_provider():
    from opentelemetry import metrics as api

    from ferrotel import metrics

    for ours, theirs in (
        (metrics.MeterProvider, api.MeterProvider),
        (metrics.Meter, api.Meter),
        (metrics.Counter, api.Counter),
        (metrics.UpDownCounter, api.UpDownCounter),
        (metrics.Histogram, api.Histogram),
        (metrics.Gauge, api._Gauge),
        (metrics.ObservableInstrument, api.ObservableCounter),
        (metrics.ObservableInstrument, api.ObservableUpDownCounter),
        (metrics.ObservableInstrument, api.ObservableGauge),
    ):
        theirs.register(ours)
    api.set_meter_provider(metrics.get_meter_provider())


def install_logger_provider():
    from opentelemetry import _logs

    from ferrotel import logs

    _logs.LoggerProvider.register(logs.LoggerProvider)
    _logs.Logger.register(logs.Logger)
    _logs.set_logger_provider(logs.get_logger_provider())


def install_deprecated_logging_handler():
    import warnings

    from ferrotel import logs

    # Upstream's SDK warns in the same category (hidden unless the app shows them).
    warnings.warn(
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED is deprecated: logging records are "
        "exported by default (OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION=false turns that off)",
        DeprecationWarning,
        stacklevel=2,
    )
    logs.attach_to_root_logger(log_code_attributes=True)


class Configurator:
    def configure(self, **kwargs):
        from ferrotel import _lifecycle  # noqa: F401 - exit, fork and SIGTERM, before the app's own handlers

        _loader.when_imported("opentelemetry.trace", install_tracer_provider)
        _loader.when_imported("opentelemetry.propagate", install_propagator)
        _loader.when_imported("opentelemetry.metrics", install_meter_provider)
        _loader.when_imported("opentelemetry._logs", install_logger_provider)
        prometheus, deprecated_logging_handler = _native.configurator_actions()
        if prometheus:
            # Scrapers find the endpoint from the start, as upstream's configurator opens it,
            # not once the app first imports the Metrics API (ferrotel.metrics does not import
            # it: the provider is made now and installed then).
            from ferrotel import metrics

            metrics.get_meter_provider()
        if deprecated_logging_handler:
            _loader.when_imported("logging", install_deprecated_logging_handler)
