"""ferrotel's `opentelemetry_distro` entry point, for upstream's `opentelemetry-instrument`,
which accepts only `BaseDistro` subclasses. ferrotel's own loader needs no distro and never
imports this module."""

from opentelemetry.instrumentation.distro import BaseDistro


class FerrotelDistro(BaseDistro):
    def _configure(self, **kwargs):
        """ferrotel's defaults are those of the variables themselves; nothing to set."""
