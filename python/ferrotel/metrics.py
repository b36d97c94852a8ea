"""ferrotel's metrics signal: `MeterProvider` serves the Metrics API; measurements aggregate
in Rust. The provider's own exporters (OTEL_METRICS_EXPORTER: OTLP, console, an entry
point's exporter) are fed by a reader thread that collects every OTEL_METRIC_EXPORT_INTERVAL
(plus once at exit); a Prometheus endpoint collects on each scrape; upstream's
`MetricReader`s (`MeterProvider(metric_readers=[...])`, or an entry point that is one)
collect when they ask, through the callback the provider gives them.

Views (`MeterProvider(views=[View(...)])`) take upstream's `View` and aggregation objects
or the equivalents below, which need no upstream SDK; aggregation happens in Rust either way.

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


class DefaultAggregation:
    """What the instrument kind calls for: sums for counters, last values for gauges,
    explicit buckets for histograms (or what the reader prefers)."""


class DropAggregation:
    """Nothing recorded, nothing exported."""


class SumAggregation:
    pass


class LastValueAggregation:
    pass


class ExplicitBucketHistogramAggregation:
    """Explicit buckets at `boundaries` (else the instrument's advisory ones, else the spec's
    defaults). `record_min_max` is taken for upstream's signature; min and max are always kept."""

    def __init__(self, boundaries=None, record_min_max=True):
        self._boundaries = None if boundaries is None else tuple(boundaries)
        self._record_min_max = record_min_max


class ExponentialBucketHistogramAggregation:
    """Base-2 exponential buckets: at most `max_size` per sign, starting at `max_scale`.
    `record_min_max` is taken for upstream's signature; min and max are always kept."""

    def __init__(self, max_size=160, max_scale=20, record_min_max=True):
        if not 2 <= max_size <= 16384:
            raise ValueError(f"max_size {max_size} is not between 2 and 16384")
        self._max_size = max_size
        self._max_scale = max_scale
        self._record_min_max = record_min_max


class View:
    """Selects instruments (`instrument_name` with `*` and `?` wildcards, `instrument_type`,
    `instrument_unit`, `meter_name`, `meter_version`, `meter_schema_url`) and configures the
    stream each makes: `name`, `description`, `attribute_keys` kept, `aggregation`. Several
    matching views make several streams; an instrument no view selects gets the default one."""

    def __init__(
        self,
        instrument_type=None,
        instrument_name=None,
        meter_name=None,
        meter_version=None,
        meter_schema_url=None,
        name=None,
        description=None,
        attribute_keys=None,
        aggregation=None,
        exemplar_reservoir_factory=None,
        instrument_unit=None,
    ):
        criteria = (instrument_type, instrument_name, instrument_unit, meter_name, meter_version, meter_schema_url)
        if all(criterion is None for criterion in criteria):
            raise ValueError(f"View {name}: some instrument selection criteria must be given")
        if name is not None and instrument_name is not None and ("*" in instrument_name or "?" in instrument_name):
            raise ValueError(f"View {name}: a renamed stream must come from one instrument, not a wildcard name")
        self._instrument_type = instrument_type
        self._instrument_name = instrument_name
        self._instrument_unit = instrument_unit
        self._meter_name = meter_name
        self._meter_version = meter_version
        self._meter_schema_url = meter_schema_url
        self._name = name
        self._description = description
        self._attribute_keys = None if attribute_keys is None else frozenset(attribute_keys)
        self._aggregation = aggregation or DefaultAggregation()
        # Exemplars are kept by ferrotel's own reservoirs; a factory is accepted for
        # upstream's signature.
        self._exemplar_reservoir_factory = exemplar_reservoir_factory


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
