"""ferrotel's `opentelemetry_configurator` entry point.

It does not build anything at start-up: importing the API there would cost ~30 ms for
every process, including those that never trace. Instead, the moment
`opentelemetry.trace` is first imported (by the app or an instrumentor), ferrotel's
TracerProvider, configured from the environment, is installed as the global one; the same
for `opentelemetry.propagate` and ferrotel's propagator for OTEL_PROPAGATORS.
"""

from ferrotel import _loader


def install_tracer_provider():
    from opentelemetry import trace

    from ferrotel.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider.from_environment())


def install_propagator():
    from opentelemetry import propagate

    from ferrotel.propagate import from_environment

    propagate.set_global_textmap(from_environment())


class Configurator:
    def configure(self, **kwargs):
        _loader.when_imported("opentelemetry.trace", install_tracer_provider)
        _loader.when_imported("opentelemetry.propagate", install_propagator)
