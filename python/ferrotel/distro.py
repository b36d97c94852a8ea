"""ferrotel's `opentelemetry_distro` entry point, for upstream's `opentelemetry-instrument`,
which accepts only `BaseDistro` subclasses. ferrotel's own loader needs no distro and never
imports this module."""

from opentelemetry.instrumentation.distro import BaseDistro


class FerrotelDistro(BaseDistro):
    def _configure(self, **kwargs):
        """Contrib instrumentors get the stable semantic conventions unless the user chose
        (ferrotel's built-ins emit them); every other default is the variables' own."""
        from ferrotel._loader import default_stable_semconv

        default_stable_semconv()
