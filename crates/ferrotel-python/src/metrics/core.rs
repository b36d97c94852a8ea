//! What a `MeterProvider` and its meters share: the instruments, the pipelines, and the
//! collection that runs the observable callbacks with the GIL and queues every instrument's
//! points, one request per collection and exporter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrotel_config::{LogLevel, MetricReaderConfig};
use ferrotel_sdk::metrics::{Instrument, InstrumentKind, MetricData};
use ferrotel_sdk::sync::lock;
use pyo3::prelude::*;

use super::observation::{callback_options, observe};
use crate::export::Pipelines;
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::{Flush, Participant};

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

pub(crate) struct MeterCore {
    pub(crate) reader: MetricReaderConfig,
    pub(crate) pipelines: Pipelines<MetricData>,
    /// Asking twice for the same instrument gives the same one, as the API requires.
    pub(crate) instruments: Mutex<HashMap<InstrumentKey, Arc<Mutex<Registered>>>>,
    /// Held for a whole collection, so the reader thread and the exit path never interleave.
    pub(crate) collecting: Mutex<()>,
    /// The exit path's last collection is queued; shutting down need not collect again.
    pub(crate) collected_for_exit: AtomicBool,
    /// Restarts the provider's reader thread in a forked child (a weak method of the
    /// Python provider, so it does not keep the provider alive).
    pub(crate) reader_restart: Mutex<Option<Py<PyAny>>>,
}

impl MeterCore {
    pub(crate) fn exporting(&self) -> bool {
        self.pipelines.exporting()
    }

    /// Takes the collection lock without ever blocking while holding the GIL: the holder
    /// may need the GIL to finish (callbacks), so a waiter lets it go between attempts.
    fn collection_guard(&self, py: Python<'_>) -> MutexGuard<'_, ()> {
        loop {
            match self.collecting.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    py.detach(|| std::thread::sleep(Duration::from_millis(1)));
                }
            }
        }
    }

    /// Runs the callbacks, gathers every instrument's points and queues them for export.
    fn collect(&self, py: Python<'_>) {
        if self.pipelines.is_empty() {
            return;
        }
        let registered: Vec<Arc<Mutex<Registered>>> = lock(&self.instruments).values().cloned().collect();
        let now = ferrotel_sdk::now_ns();
        let timeout_millis = self.reader.export_timeout.as_secs_f64() * 1e3;
        let options = callback_options(py, timeout_millis);
        for entry in &registered {
            let (instrument, callbacks) = {
                let entry = lock(entry);
                let callbacks: Vec<Py<PyAny>> = entry.callbacks.iter().map(|c| c.clone_ref(py)).collect();
                (entry.instrument.clone(), callbacks)
            };
            for callback in callbacks {
                if let Err(error) = observe(py, &instrument, callback.bind(py), &options, now) {
                    emit(
                        py,
                        LogLevel::Warning,
                        &format!("the callback of {} failed and was skipped: {error}", instrument.name),
                    );
                }
            }
        }
        for entry in &registered {
            let instrument = lock(entry).instrument.clone();
            let temporality = instrument.kind.temporality(self.reader.temporality_preference);
            if let Some(data) = instrument.collect(temporality, now) {
                self.pipelines.on_end(data);
            }
        }
    }

    pub(crate) fn collect_and_flush(&self, py: Python<'_>, timeout: Duration) -> bool {
        if !self.exporting() {
            return true;
        }
        let _guard = self.collection_guard(py);
        self.collect(py);
        self.pipelines.force_flush(py, timeout)
    }
}

impl Participant for MeterCore {
    /// The last collection, queued before every signal's flush starts so its export runs
    /// beside theirs rather than taking the budget before them.
    fn before_exit(&self, py: Python<'_>, _deadline: Instant) {
        let _guard = self.collection_guard(py);
        if self.pipelines.is_shut_down() || self.collected_for_exit.swap(true, Ordering::AcqRel) {
            return;
        }
        self.collect(py);
    }

    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        self.pipelines.begin_shutdown()
    }

    fn after_fork(&self, py: Python<'_>, pid: u32) {
        self.pipelines.rebuild_after_fork(pid);
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
