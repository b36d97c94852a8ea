"""ferrotel's metrics signal: `MeterProvider` serves the Metrics API; measurements aggregate
in Rust. The provider's own exporters (OTEL_METRICS_EXPORTER: OTLP, console, an entry
point's exporter) are fed by a reader thread that collects every OTEL_METRIC_EXPORT_INTERVAL
(plus once at exit); a Prometheus endpoint collects on each scrape; upstream's
`MetricReader`s (`MeterProvider(metric_readers=[...])`, or an entry point that is one)
collect when they ask, through the callback the provider gives them.

Importing this module does not import the opentelemetry-api, nor the SDK.
"""

import threading
import weakref

from ferrotel import _lifecycle, _native  # noqa: F401 (_lifecycle: exit and fork)

Meter = _native.Meter
Counter = _native.Counter
UpDownCounter = _native.UpDownCounter
Histogram = _native.Histogram
Gauge = _native.Gauge
ObservableInstrument = _native.ObservableInstrument

_provider = None


class MeterProvider(_native.MeterProvider):
    """Upstream's signature: `metric_readers` (the SDK's MetricReaders) read metrics from it;
    without them, OTEL_METRICS_EXPORTER's exporters and readers do. Configured from the
    environment, with `settings` (variable name -> value) winning. Its own exporters are
    collected on a daemon thread of its own."""

    def __init__(
        self,
        metric_readers=None,
        resource=None,
        exemplar_filter=None,
        shutdown_on_exit=True,
        views=(),
        *,
        settings=None,
    ):
        self._start_reader()
        # A forked child has no reader thread: the lifecycle's fork hook starts a fresh one.
        self._on_fork_restart_reader(weakref.WeakMethod(self._start_reader))

    def _start_reader(self):
        self._stop = threading.Event()
        if not self.exporting:
            return
        interval = self.export_interval_seconds
        stop, ref = self._stop, weakref.ref(self)

        def run():
            while not stop.wait(interval):
                provider = ref()
                if provider is None or not provider.exporting:
                    return
                provider._collect_and_export()
                del provider

        threading.Thread(target=run, name="ferrotel-metrics", daemon=True).start()

    def shutdown(self, timeout_millis=30000.0):
        self._stop.set()
        return super().shutdown(timeout_millis)


def get_meter_provider():
    """The process's provider, configured from the environment on first use."""
    global _provider
    if _provider is None:
        _provider = MeterProvider()
    return _provider
