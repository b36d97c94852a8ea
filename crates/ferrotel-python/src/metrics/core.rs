//! What a `MeterProvider` and its meters share: the instruments, the readers, and the
//! collection that runs the observable callbacks with the GIL and gathers every
//! instrument's points for one reader.
//!
//! Readers are of three kinds: the provider's own exporters (`OTEL_METRICS_EXPORTER`'s
//! otlp, console and entry-point exporters, behind native pipelines and collected by the
//! reader thread), the native Prometheus endpoint (collected on each scrape), and Python
//! `MetricReader`s (collected when they call their collect callback). Each reader has a slot
//! in every instrument, so each aggregates with its own temporality.
//!
//! Every lock here (the instruments, the readers, each instrument's streams) is taken only
//! with the GIL held and never held across Python code, so none can be held by a thread that
//! did not survive a fork. The collection lock is the exception: a collection runs the
//! callbacks, during which the interpreter may switch to a thread that forks, so it knows
//! which process holds it and a forked child frees it ([`CollectionLock`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrotel_config::{LogLevel, MetricReaderConfig, TemporalityPreference};
use ferrotel_prometheus::Endpoint;
use ferrotel_sdk::metrics::{Aggregation, Instrument, InstrumentKind, MetricData, ReaderSlot, Temporality, View};
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::sync::lock;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::observation::{callback_options, observe};
use crate::export::python::PythonObject;
use crate::export::Pipelines;
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::{interpreter_leaving, Flush, Participant};

/// An instrument with, for observable ones, the callbacks that feed it at each collection.
pub(crate) struct Registered {
    pub(crate) instrument: Arc<Instrument>,
    pub(crate) callbacks: Vec<Py<PyAny>>,
}

/// What makes two instruments the same one (names compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct InstrumentKey {
    pub(crate) scope_name: String,
    pub(crate) scope_version: String,
    pub(crate) name: String,
    pub(crate) kind: InstrumentKind,
}

/// The instruments in the order they were created (the order collections report them).
#[derive(Default)]
pub(crate) struct Instruments {
    by_key: HashMap<InstrumentKey, usize>,
    list: Vec<Arc<Mutex<Registered>>>,
}

impl Instruments {
    /// The instrument `key` names, made by `make` (given the reader slots to aggregate for,
    /// each with the aggregation its reader prefers for the kind) on first request.
    pub(crate) fn get_or_insert(
        &mut self,
        key: InstrumentKey,
        slots: Vec<(ReaderSlot, Aggregation)>,
        make: impl FnOnce(Vec<(ReaderSlot, Aggregation)>) -> Instrument,
    ) -> Arc<Mutex<Registered>> {
        if let Some(at) = self.by_key.get(&key) {
            return self.list[*at].clone();
        }
        let entry = Arc::new(Mutex::new(Registered {
            instrument: Arc::new(make(slots)),
            callbacks: Vec::new(),
        }));
        self.by_key.insert(key, self.list.len());
        self.list.push(entry.clone());
        entry
    }
}

/// The temporality a reader wants for each instrument kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Temporalities([Temporality; 7]);

const KINDS: [InstrumentKind; 7] = [
    InstrumentKind::Counter,
    InstrumentKind::UpDownCounter,
    InstrumentKind::Histogram,
    InstrumentKind::Gauge,
    InstrumentKind::ObservableCounter,
    InstrumentKind::ObservableUpDownCounter,
    InstrumentKind::ObservableGauge,
];

impl Temporalities {
    pub(crate) fn cumulative() -> Temporalities {
        Temporalities([Temporality::Cumulative; 7])
    }

    /// As `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` asks.
    pub(crate) fn preferring(preference: TemporalityPreference) -> Temporalities {
        Temporalities(KINDS.map(|kind| kind.temporality(preference)))
    }

    pub(crate) fn set(&mut self, kind: InstrumentKind, temporality: Temporality) {
        if let Some(at) = KINDS.iter().position(|k| *k == kind) {
            self.0[at] = temporality;
        }
    }

    fn of(&self, kind: InstrumentKind) -> Temporality {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(Temporality::Cumulative, |at| self.0[at])
    }
}

/// The aggregation a reader prefers for each instrument kind, where a view leaves it open.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Aggregations([Aggregation; 7]);

impl Aggregations {
    /// The OTLP exporter's: histograms as `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION` says.
    pub(crate) fn for_otlp(exponential_histograms: bool) -> Aggregations {
        let mut aggregations = Aggregations::default();
        if exponential_histograms {
            aggregations.set(InstrumentKind::Histogram, Aggregation::base2_exponential());
        }
        aggregations
    }

    pub(crate) fn set(&mut self, kind: InstrumentKind, aggregation: Aggregation) {
        if let Some(at) = KINDS.iter().position(|k| *k == kind) {
            self.0[at] = aggregation;
        }
    }

    pub(crate) fn of(&self, kind: InstrumentKind) -> &Aggregation {
        &self.0[KINDS.iter().position(|k| *k == kind).unwrap_or(0)]
    }
}

/// Held for a whole collection, so readers and the exit path never interleave. It records
/// the process holding it: a fork during a collection's callbacks leaves the child a lock no
/// thread of its own holds, which it frees.
struct CollectionLock {
    /// The holder's pid; 0 when free.
    holder: AtomicU32,
}

struct Collecting<'a>(&'a CollectionLock);

impl Drop for Collecting<'_> {
    fn drop(&mut self) {
        self.0.holder.store(0, Ordering::Release);
    }
}

impl CollectionLock {
    fn try_take(&self) -> Option<Collecting<'_>> {
        self.holder
            .compare_exchange(0, std::process::id(), Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Collecting(self))
    }

    /// Takes it without ever blocking while holding the GIL: the holder may need the GIL to
    /// finish (callbacks), so a waiter lets it go between attempts.
    fn take(&self, py: Python<'_>) -> Collecting<'_> {
        loop {
            if let Some(taken) = self.try_take() {
                return taken;
            }
            py.detach(|| std::thread::sleep(Duration::from_millis(1)));
        }
    }

    /// Takes it from a thread that does not hold the GIL.
    fn take_detached(&self) -> Collecting<'_> {
        loop {
            if let Some(taken) = self.try_take() {
                return taken;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// In a forked child: a collection of the parent's is not one of ours.
    fn free_after_fork(&self) {
        let holder = self.holder.load(Ordering::Acquire);
        if holder != 0 && holder != std::process::id() {
            self.holder.store(0, Ordering::Release);
        }
    }
}

/// Who reads the metrics in a slot.
pub(crate) enum ReaderKind {
    /// The provider's own exporters (`pipelines`), collected by the reader thread.
    Pipelines,
    /// The native Prometheus endpoint, collected on each scrape.
    Prometheus(Endpoint),
    /// A Python `MetricReader`, collected when it calls its collect callback.
    Python(PythonObject),
}

pub(crate) struct Reader {
    pub(crate) kind: ReaderKind,
    pub(crate) temporalities: Temporalities,
    pub(crate) aggregations: Aggregations,
}

pub(crate) struct MeterCore {
    pub(crate) reader: MetricReaderConfig,
    pub(crate) pipelines: Pipelines<MetricData>,
    /// Indexed by slot; a removed reader leaves its slot empty for the next one.
    pub(crate) readers: Mutex<Vec<Option<Reader>>>,
    /// Asking twice for the same instrument gives the same one, as the API requires.
    pub(crate) instruments: Mutex<Instruments>,
    /// The views every instrument is matched against when created.
    pub(crate) views: Vec<View>,
    collecting: CollectionLock,
    /// The exit path's last collection is queued; shutting down need not collect again.
    collected_for_exit: AtomicBool,
    /// Whether exit shuts this provider down (`shutdown_on_exit`).
    pub(crate) shutdown_on_exit: bool,
    /// Restarts the provider's reader thread in a forked child (a weak method of the
    /// Python provider, so it does not keep the provider alive).
    pub(crate) reader_restart: Mutex<Option<Py<PyAny>>>,
}

impl MeterCore {
    pub(crate) fn new(
        reader: MetricReaderConfig,
        pipelines: Pipelines<MetricData>,
        shutdown_on_exit: bool,
        views: Vec<View>,
    ) -> MeterCore {
        let core = MeterCore {
            reader,
            pipelines,
            readers: Mutex::new(Vec::new()),
            instruments: Mutex::new(Instruments::default()),
            views,
            collecting: CollectionLock {
                holder: AtomicU32::new(0),
            },
            collected_for_exit: AtomicBool::new(false),
            shutdown_on_exit,
            reader_restart: Mutex::new(None),
        };
        if !core.pipelines.is_empty() {
            let temporalities = Temporalities::preferring(core.reader.temporality_preference);
            let aggregations = Aggregations::for_otlp(core.reader.exponential_histograms);
            let _ = core.add_reader(temporalities, aggregations, |_| Ok::<_, ()>(ReaderKind::Pipelines));
        }
        core
    }

    pub(crate) fn exporting(&self) -> bool {
        self.pipelines.exporting()
    }

    /// The slots of every reader, for a new instrument of `kind`, with the aggregation each
    /// reader prefers for it.
    pub(crate) fn slots(&self, kind: InstrumentKind) -> Vec<(ReaderSlot, Aggregation)> {
        let readers = lock(&self.readers);
        readers
            .iter()
            .enumerate()
            .filter_map(|(slot, reader)| Some((slot, reader.as_ref()?.aggregations.of(kind).clone())))
            .collect()
    }

    /// Adds a reader in the first free slot; `make` builds it knowing its slot. Every
    /// instrument aggregates for it from now on.
    pub(crate) fn add_reader<E>(
        &self,
        temporalities: Temporalities,
        aggregations: Aggregations,
        make: impl FnOnce(ReaderSlot) -> Result<ReaderKind, E>,
    ) -> Result<ReaderSlot, E> {
        let instruments = lock(&self.instruments);
        let mut readers = lock(&self.readers);
        let slot = readers.iter().position(Option::is_none).unwrap_or(readers.len());
        let kind = make(slot)?;
        if slot == readers.len() {
            readers.push(None);
        }
        for entry in &instruments.list {
            let instrument = lock(entry).instrument.clone();
            instrument.add_reader(slot, aggregations.of(instrument.kind));
        }
        readers[slot] = Some(Reader {
            kind,
            temporalities,
            aggregations,
        });
        Ok(slot)
    }

    /// Takes the reader out of `slot`; instruments forget what they held for it.
    pub(crate) fn remove_reader(&self, slot: ReaderSlot) -> Option<Reader> {
        let instruments = lock(&self.instruments);
        let reader = lock(&self.readers).get_mut(slot).and_then(Option::take);
        for entry in &instruments.list {
            lock(entry).instrument.remove_reader(slot);
        }
        reader
    }

    /// The slot of the Python reader `object`, if it is one of ours.
    pub(crate) fn python_slot(&self, object: &Bound<'_, PyAny>) -> Option<ReaderSlot> {
        lock(&self.readers).iter().position(|reader| {
            matches!(reader, Some(Reader { kind: ReaderKind::Python(python), .. }) if python.object.bind(object.py()).is(object))
        })
    }

    /// One collection for the reader in `slot`: the observable callbacks run (when `py` is
    /// given) and report into that slot, then every instrument's points in its temporality.
    fn gather(&self, py: Option<Python<'_>>, slot: ReaderSlot, timeout_millis: f64) -> Vec<MetricData> {
        let Some(temporalities) = lock(&self.readers)
            .get(slot)
            .and_then(|r| r.as_ref().map(|r| r.temporalities))
        else {
            return Vec::new();
        };
        let registered: Vec<Arc<Mutex<Registered>>> = lock(&self.instruments).list.clone();
        let now = ferrotel_sdk::now_ns();
        if let Some(py) = py {
            let mut options = None;
            for entry in &registered {
                let (instrument, callbacks) = {
                    let entry = lock(entry);
                    let callbacks: Vec<Py<PyAny>> = entry.callbacks.iter().map(|c| c.clone_ref(py)).collect();
                    (entry.instrument.clone(), callbacks)
                };
                for callback in callbacks {
                    let options = options.get_or_insert_with(|| callback_options(py, timeout_millis));
                    if let Err(error) = observe(py, &instrument, slot, callback.bind(py), options, now) {
                        emit(
                            py,
                            LogLevel::Warning,
                            &format!("the callback of {} failed and was skipped: {error}", instrument.name),
                        );
                    }
                }
            }
        }
        registered
            .iter()
            .flat_map(|entry| {
                let instrument = lock(entry).instrument.clone();
                instrument.collect(slot, temporalities.of(instrument.kind), now)
            })
            .collect()
    }

    /// The collection a Python reader asked for, on its thread (callbacks get
    /// `timeout_millis`), with the resource it describes.
    pub(crate) fn collect_for(
        &self,
        py: Python<'_>,
        slot: ReaderSlot,
        timeout_millis: f64,
    ) -> (Vec<MetricData>, Resource) {
        let _collecting = self.collecting.take(py);
        (self.gather(Some(py), slot, timeout_millis), self.pipelines.resource())
    }

    /// The collection a scrape asks for, from a thread the interpreter does not know. It
    /// attaches to run the callbacks and to take the locks (see the module's note on fork);
    /// once the interpreter is leaving it collects without it, callbacks left out.
    pub(crate) fn collect_for_scrape(&self, slot: ReaderSlot) -> (Vec<MetricData>, Resource) {
        let timeout_millis = self.callback_timeout_millis();
        if !interpreter_leaving() {
            if let Some(collected) = Python::try_attach(|py| self.collect_for(py, slot, timeout_millis)) {
                return collected;
            }
        }
        let _collecting = self.collecting.take_detached();
        (self.gather(None, slot, timeout_millis), self.pipelines.resource())
    }

    /// What the provider's own collections give callbacks: the export timeout.
    fn callback_timeout_millis(&self) -> f64 {
        self.reader.export_timeout.as_secs_f64() * 1e3
    }

    /// The pipelines' collection, queued for export.
    fn collect(&self, py: Python<'_>) {
        let Some(slot) = self.pipelines_slot() else {
            return;
        };
        for data in self.gather(Some(py), slot, self.callback_timeout_millis()) {
            self.pipelines.on_end(data);
        }
    }

    fn pipelines_slot(&self) -> Option<ReaderSlot> {
        lock(&self.readers).iter().position(|r| {
            matches!(
                r,
                Some(Reader {
                    kind: ReaderKind::Pipelines,
                    ..
                })
            )
        })
    }

    /// A collection for the pipelines, exported, within `timeout`.
    pub(crate) fn collect_and_flush(&self, py: Python<'_>, timeout: Duration) -> bool {
        if !self.exporting() {
            return true;
        }
        let _collecting = self.collecting.take(py);
        self.collect(py);
        self.pipelines.force_flush(py, timeout)
    }

    /// The Python readers, for their own flush and shutdown.
    pub(crate) fn python_readers(&self) -> Vec<PythonObject> {
        lock(&self.readers)
            .iter()
            .filter_map(|reader| match reader {
                Some(Reader {
                    kind: ReaderKind::Python(python),
                    ..
                }) => Some(python.clone()),
                _ => None,
            })
            .collect()
    }

    /// Takes every Prometheus endpoint out of its slot.
    fn take_endpoints(&self) -> Vec<Endpoint> {
        let slots: Vec<ReaderSlot> = lock(&self.readers)
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                matches!(
                    r,
                    Some(Reader {
                        kind: ReaderKind::Prometheus(_),
                        ..
                    })
                )
            })
            .map(|(slot, _)| slot)
            .collect();
        slots
            .into_iter()
            .filter_map(|slot| match self.remove_reader(slot) {
                Some(Reader {
                    kind: ReaderKind::Prometheus(endpoint),
                    ..
                }) => Some(endpoint),
                _ => None,
            })
            .collect()
    }

    /// Each Python reader's `shutdown`, within `deadline` in total, then their slots freed;
    /// the Prometheus endpoint stops and frees its port.
    fn shut_readers_down(&self, py: Python<'_>, deadline: Instant) {
        for reader in self.python_readers() {
            shut_down(py, &reader, deadline);
            if let Some(slot) = self.python_slot(reader.object.bind(py)) {
                self.remove_reader(slot);
            }
        }
        for endpoint in self.take_endpoints() {
            endpoint.stop();
        }
    }
}

/// A Python reader's `shutdown(timeout_millis=...)`, what it raises said and swallowed.
fn shut_down(py: Python<'_>, reader: &PythonObject, deadline: Instant) {
    let remaining = deadline.saturating_duration_since(Instant::now()).as_secs_f64() * 1e3;
    let kwargs = PyDict::new(py);
    let called = kwargs
        .set_item("timeout_millis", remaining)
        .and_then(|_| reader.object.bind(py).call_method("shutdown", (), Some(&kwargs)));
    if let Err(error) = called {
        emit(
            py,
            LogLevel::Warning,
            &format!("{}.shutdown() raised {error}", reader.name),
        );
    }
}

impl MeterCore {
    /// The pipelines' last collection (queued, for the caller to flush), then every other
    /// reader shut down within `deadline`: a periodic Python reader makes its last export, as
    /// upstream's provider has it do at shutdown. Idempotent.
    pub(crate) fn finish(&self, py: Python<'_>, deadline: Instant) {
        {
            let _collecting = self.collecting.take(py);
            if !self.pipelines.is_shut_down() && !self.collected_for_exit.swap(true, Ordering::AcqRel) {
                self.collect(py);
            }
        }
        self.shut_readers_down(py, deadline);
    }
}

impl Participant for MeterCore {
    /// [`MeterCore::finish`], before every signal's flush starts, so the last export runs
    /// beside theirs rather than taking the budget before them.
    fn before_exit(&self, py: Python<'_>, deadline: Instant) {
        if self.shutdown_on_exit {
            self.finish(py, deadline);
        }
    }

    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        if !self.shutdown_on_exit {
            return Vec::new();
        }
        self.pipelines.begin_shutdown()
    }

    fn after_fork(&self, py: Python<'_>, pid: u32) {
        self.collecting.free_after_fork();
        self.pipelines.rebuild_after_fork(pid);
        // The endpoint's thread stayed in the parent, which keeps serving; the child lets
        // go of the listening socket it inherited and stops aggregating for it.
        for endpoint in self.take_endpoints() {
            endpoint.release_after_fork();
        }
        // The parent's reader thread does not exist here: a fresh one.
        let restart = lock(&self.reader_restart).as_ref().map(|r| r.clone_ref(py));
        if let Some(method) = restart
            .and_then(|weak| weak.bind(py).call0().ok())
            .filter(|m| !m.is_none())
        {
            if let Err(error) = method.call0() {
                emit(
                    py,
                    LogLevel::Warning,
                    &format!("the metrics reader could not restart after fork: {error}"),
                );
            }
        }
    }
}
