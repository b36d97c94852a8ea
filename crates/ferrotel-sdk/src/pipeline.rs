//! Carrying finished telemetry (spans, log records, metrics) to one exporter.
//!
//! A batch pipeline keeps a bounded queue that application threads append to under a short
//! lock, and one worker thread that takes it a batch at a time every `schedule_delay` (or as
//! soon as a batch is full, or on flush) and calls the exporter: encoding and I/O never
//! happen on an application thread. A full queue drops the item and counts it. A simple
//! pipeline exports on the caller's thread, one item at a time.
//!
//! Accounting is exact: every count changes under the queue lock, so at every moment
//! `enqueued = exported + dropped + failed + pending + in_flight` (in [`Item::weight`]
//! units), and so does a [`Counts`] snapshot. The pipeline also tells the user about
//! trouble: one warning when drops or failures start, then at most one summary a minute
//! with the exact counts since the previous line, and a line when exports work again.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrotel_config::{BatchConfig, LogLevel};

use crate::diagnostics;
use crate::resource::Resource;
use crate::sync::{lock, wait_until};

/// How often, at most, a summary of ongoing trouble is printed.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// What travels through a pipeline.
pub trait Item: Send + 'static {
    /// The signal, as messages name it: `traces`.
    const SIGNAL: &'static str;
    /// What one unit of weight is called in messages: `span(s)`.
    const NOUN: &'static str;
    /// How many units the counters count this item as (a metric's data points).
    fn weight(&self) -> u64 {
        1
    }
}

/// Whether an export reached its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportResult {
    Success,
    /// Delivered, except `rejected` units the receiver refused.
    Partial {
        rejected: u64,
        reason: String,
    },
    Failure(String),
}

/// Where items go. Called from one thread at a time.
pub trait Exporter<T>: Send {
    /// Sends `batch`; `exit` says whether the process is leaving (see [`ExitControl`]).
    fn export(&mut self, batch: &[T], resource: &Resource, exit: &ExitControl) -> ExportResult;
    fn shutdown(&mut self) {}
    /// Where items go, for messages (`""` when there is nothing useful to say).
    fn destination(&self) -> String {
        String::new()
    }
}

/// Shared by a pipeline and its exporter. Once the pipeline shuts down, an exporter stops
/// waiting out backoff delays and gives up on an unreachable destination after one quick
/// retry, so leaving costs a second, not the export timeout.
#[derive(Default)]
pub struct ExitControl {
    leaving: Mutex<bool>,
    changed: Condvar,
}

impl ExitControl {
    pub fn is_leaving(&self) -> bool {
        *lock(&self.leaving)
    }

    pub fn begin(&self) {
        *lock(&self.leaving) = true;
        self.changed.notify_all();
    }

    /// Waits `delay`, or less if the exit begins meanwhile; `false` in that case.
    pub fn pause(&self, delay: Duration) -> bool {
        let leaving = lock(&self.leaving);
        if *leaving {
            drop(leaving);
            std::thread::sleep(delay);
            return true;
        }
        let (leaving, began) = wait_until(&self.changed, leaving, Instant::now() + delay, |leaving| !*leaving);
        drop(leaving);
        !began
    }
}

/// Exact counts, in weight units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Everything handed to the pipeline.
    pub enqueued: u64,
    /// Dropped from a full queue, or ended after shutdown.
    pub dropped: u64,
    pub exported: u64,
    /// In batches the exporter could not deliver, or that the receiver rejected.
    pub failed: u64,
    /// Queued, not yet handed to the exporter.
    pub pending: u64,
    /// Handed to the exporter, export not finished.
    pub in_flight: u64,
}

impl Counts {
    pub fn undelivered(&self) -> u64 {
        self.dropped + self.failed + self.pending + self.in_flight
    }
}

/// Trouble not yet told to the user, and whether a warning is standing.
struct Trouble {
    dropped: u64,
    failed: u64,
    reason: Option<String>,
    /// A warning was printed and trouble has not cleared since.
    warned: bool,
    /// The current trouble includes export failures (cleared by a success).
    failing: bool,
    last_line: Instant,
    /// The worker has been woken to announce the first drop.
    woken: bool,
}

impl Trouble {
    fn new() -> Trouble {
        Trouble {
            dropped: 0,
            failed: 0,
            reason: None,
            warned: false,
            failing: false,
            last_line: Instant::now(),
            woken: false,
        }
    }

    fn pending(&self) -> bool {
        self.dropped > 0 || self.failed > 0
    }

    /// When the next line is due, if one will be.
    fn next_line_at(&self) -> Option<Instant> {
        match (self.warned, self.pending()) {
            (false, true) => Some(Instant::now()),
            (true, _) => Some(self.last_line + SUMMARY_EVERY),
            (false, false) => None,
        }
    }

    /// `12 span(s) dropped from a full queue, 3 failed to export (reason)`: the trouble
    /// since the last line.
    fn since_last_line(&self, noun: &str, with_reason: bool) -> String {
        let reason = match (&self.reason, with_reason) {
            (Some(reason), true) => format!(" ({reason})"),
            _ => String::new(),
        };
        match (self.dropped, self.failed) {
            (0, failed) => format!("{failed} {noun} failed to export{reason}"),
            (dropped, 0) => format!("{dropped} {noun} dropped from a full queue"),
            (dropped, failed) => {
                format!("{dropped} {noun} dropped from a full queue, {failed} failed to export{reason}")
            }
        }
    }

    fn said(&mut self, now: Instant) {
        self.dropped = 0;
        self.failed = 0;
        self.last_line = now;
        self.woken = false;
    }

    /// The line due now, if any.
    fn due_line<T: Item>(&mut self, destination: &str, queue_size: usize) -> Option<(LogLevel, String)> {
        let now = Instant::now();
        if !self.warned {
            if !self.pending() {
                return None;
            }
            let so_far = self.since_last_line(T::NOUN, false);
            let line = if self.failed > 0 {
                self.failing = true;
                format!(
                    "cannot export {} to {destination}: {}; exports are retried with backoff and what cannot be \
                     delivered is counted, with a summary at most once a minute while this lasts (so far: {so_far})",
                    T::SIGNAL,
                    self.reason.as_deref().unwrap_or("unknown reason"),
                )
            } else {
                format!(
                    "the {} queue is full ({queue_size}): new ones are dropped and counted while export to \
                     {destination} does not keep up, with a summary at most once a minute while this lasts \
                     (so far: {so_far})",
                    T::NOUN,
                )
            };
            self.warned = true;
            self.said(now);
            return Some((LogLevel::Warning, line));
        }
        if now < self.last_line + SUMMARY_EVERY {
            return None;
        }
        if !self.pending() {
            // A quiet minute ends the episode; the next trouble gets a fresh warning.
            self.warned = false;
            self.failing = false;
            self.last_line = now;
            return None;
        }
        let line = format!(
            "{} export to {destination}, last minute: {}",
            T::SIGNAL,
            self.since_last_line(T::NOUN, true)
        );
        self.said(now);
        Some((LogLevel::Warning, line))
    }

    /// After a successful export: if failures had been reported, a line saying so.
    fn recovered<T: Item>(&mut self, destination: &str) -> Option<(LogLevel, String)> {
        if !self.failing {
            return None;
        }
        self.failing = false;
        self.warned = false;
        let since = if self.pending() {
            format!(" (since the last line: {})", self.since_last_line(T::NOUN, true))
        } else {
            String::new()
        };
        let line = format!("{} export to {destination} works again{since}", T::SIGNAL);
        self.said(Instant::now());
        Some((LogLevel::Info, line))
    }
}

struct State<T> {
    items: VecDeque<T>,
    counts: Counts,
    /// Of `counts.dropped`: items that arrived after shutdown (not a full queue).
    dropped_after_shutdown: u64,
    last_failure: Option<String>,
    trouble: Trouble,
    /// Flush tickets: requested increments per flush call; completed catches up.
    flush_requested: u64,
    flush_completed: u64,
    /// Shut down: new items are dropped, the worker exports what is queued and stops.
    shut_down: bool,
    worker_exited: bool,
    exporter_shut_down: bool,
}

impl<T: Item> State<T> {
    /// Accounts for an export of `weight` units that ended with `result`.
    fn settle(&mut self, weight: u64, result: ExportResult) {
        self.counts.in_flight -= weight;
        let (failed, reason) = match result {
            ExportResult::Success => (0, None),
            ExportResult::Partial { rejected, reason } => (rejected.min(weight), Some(reason)),
            ExportResult::Failure(reason) => (weight, Some(reason)),
        };
        self.counts.exported += weight - failed;
        if failed > 0 {
            self.counts.failed += failed;
            self.trouble.failed += failed;
            self.trouble.reason.clone_from(&reason);
            self.last_failure = reason;
        }
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the worker.
    work: Condvar,
    /// Wakes flush/shutdown waiters.
    progress: Condvar,
    config: BatchConfig,
    exporter: Mutex<Box<dyn Exporter<T>>>,
    /// Read once: asking the exporter later would wait for an export in progress.
    destination: String,
    resource: Resource,
    exit: ExitControl,
    mode: Mode,
}

impl<T: Item> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// Calls the exporter; a panic in it is a failed export, never a dead worker.
    fn call_exporter(&self, batch: &[T]) -> ExportResult {
        let mut exporter = lock(&self.exporter);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            exporter.export(batch, &self.resource, &self.exit)
        }))
        .unwrap_or_else(|_| ExportResult::Failure("the exporter panicked".into()))
    }

    /// Takes up to `n` queued items and exports them, releasing the lock meanwhile.
    fn export_front<'a>(&'a self, mut state: MutexGuard<'a, State<T>>, n: usize) -> MutexGuard<'a, State<T>> {
        let n = n.min(state.items.len());
        let batch: Vec<T> = state.items.drain(..n).collect();
        let weight: u64 = batch.iter().map(Item::weight).sum();
        state.counts.pending -= weight;
        state.counts.in_flight += weight;
        drop(state);
        let result = self.call_exporter(&batch);
        drop(batch);
        let mut state = self.state();
        let succeeded = result == ExportResult::Success;
        state.settle(weight, result);
        let line = if succeeded {
            state.trouble.recovered::<T>(&self.destination)
        } else {
            None
        };
        self.tell(state, line)
    }

    /// Prints `line` and whatever trouble line is due, without holding the lock.
    fn tell<'a>(
        &'a self,
        mut state: MutexGuard<'a, State<T>>,
        line: Option<(LogLevel, String)>,
    ) -> MutexGuard<'a, State<T>> {
        let due = state
            .trouble
            .due_line::<T>(&self.destination, self.config.max_queue_size);
        if line.is_none() && due.is_none() {
            return state;
        }
        drop(state);
        for (level, text) in line.into_iter().chain(due) {
            diagnostics::say(level, &text);
        }
        self.state()
    }

    /// Shuts the exporter down (once), without holding the queue lock meanwhile: an exporter
    /// may need what a thread waiting for that lock holds (a Python exporter, the GIL).
    fn shut_exporter_down<'a>(&'a self, mut state: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        if std::mem::replace(&mut state.exporter_shut_down, true) {
            return state;
        }
        drop(state);
        lock(&self.exporter).shutdown();
        self.state()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Batch,
    Simple,
}

/// A processor: items in, the exporter called. Cheap to share across threads.
pub struct Pipeline<T> {
    shared: Arc<Shared<T>>,
}

impl<T: Item> Pipeline<T> {
    pub fn batch(config: BatchConfig, exporter: Box<dyn Exporter<T>>, resource: Resource) -> Pipeline<T> {
        let pipeline = Pipeline::new(config, exporter, resource, Mode::Batch);
        let shared = pipeline.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("ferrotel-export".into())
            .spawn(move || worker(shared));
        if spawned.is_err() {
            // Without a worker, flush synchronously on demand rather than lose items silently.
            pipeline.shared.state().worker_exited = true;
        }
        pipeline
    }

    pub fn simple(exporter: Box<dyn Exporter<T>>, resource: Resource) -> Pipeline<T> {
        let config = BatchConfig {
            schedule_delay: Duration::ZERO,
            export_timeout: Duration::from_secs(30),
            max_queue_size: 1,
            max_export_batch_size: 1,
        };
        Pipeline::new(config, exporter, resource, Mode::Simple)
    }

    fn new(config: BatchConfig, exporter: Box<dyn Exporter<T>>, resource: Resource, mode: Mode) -> Pipeline<T> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(config.max_export_batch_size.min(config.max_queue_size)),
                counts: Counts::default(),
                dropped_after_shutdown: 0,
                last_failure: None,
                trouble: Trouble::new(),
                flush_requested: 0,
                flush_completed: 0,
                shut_down: false,
                worker_exited: false,
                exporter_shut_down: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            config,
            destination: exporter.destination(),
            exporter: Mutex::new(exporter),
            resource,
            exit: ExitControl::default(),
            mode,
        });
        Pipeline { shared }
    }

    /// A consistent snapshot of the counts.
    pub fn counts(&self) -> Counts {
        self.shared.state().counts
    }

    pub fn resource(&self) -> &Resource {
        &self.shared.resource
    }

    /// Where the exporter sends, for messages.
    pub fn destination(&self) -> &str {
        &self.shared.destination
    }

    /// Hands over a finished item. Never blocks on export in batch mode.
    pub fn on_end(&self, item: T) {
        let shared = &*self.shared;
        let weight = item.weight();
        let mut state = shared.state();
        state.counts.enqueued += weight;
        if state.shut_down {
            state.counts.dropped += weight;
            state.dropped_after_shutdown += weight;
            return;
        }
        match shared.mode {
            Mode::Simple => {
                state.counts.in_flight += weight;
                drop(state);
                let result = shared.call_exporter(std::slice::from_ref(&item));
                drop(item);
                let mut state = shared.state();
                let succeeded = result == ExportResult::Success;
                state.settle(weight, result);
                let line = if succeeded {
                    state.trouble.recovered::<T>(&shared.destination)
                } else {
                    None
                };
                drop(shared.tell(state, line));
            }
            Mode::Batch => {
                if state.items.len() >= shared.config.max_queue_size {
                    state.counts.dropped += weight;
                    state.trouble.dropped += weight;
                    // The first drop of an episode is announced by the worker, woken once.
                    if !state.trouble.warned && !std::mem::replace(&mut state.trouble.woken, true) {
                        shared.work.notify_one();
                    }
                    return;
                }
                state.items.push_back(item);
                state.counts.pending += weight;
                // Wake the worker only when a batch is due, not for every item.
                if state.items.len() == shared.config.max_export_batch_size {
                    shared.work.notify_one();
                }
            }
        }
    }

    /// Exports everything queued so far; `false` if `timeout` passed first.
    pub fn force_flush(&self, timeout: Duration) -> bool {
        let shared = &*self.shared;
        if shared.mode == Mode::Simple {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut state = shared.state();
        if state.worker_exited {
            while !state.items.is_empty() {
                state = shared.export_front(state, shared.config.max_export_batch_size);
            }
            return true;
        }
        state.flush_requested += 1;
        let ticket = state.flush_requested;
        shared.work.notify_one();
        wait_until(&shared.progress, state, deadline, |s| {
            s.flush_completed < ticket && !s.worker_exited
        })
        .1
    }

    /// Starts shutting down without waiting: items ended from now on are dropped (and
    /// counted), the exporter is told the process is leaving, and the worker exports what
    /// is queued, then stops. [`Pipeline::wait`] waits for it.
    pub fn begin_shutdown(&self) {
        let shared = &*self.shared;
        let mut state = shared.state();
        if state.shut_down {
            return;
        }
        state.shut_down = true;
        state.flush_requested += 1;
        drop(state);
        shared.exit.begin();
        shared.work.notify_one();
    }

    /// Waits until the worker has stopped and the exporter is shut down, or `deadline`;
    /// `true` if it stopped. May be called again after a `false`.
    pub fn wait(&self, deadline: Instant) -> bool {
        let shared = &*self.shared;
        let mut state = shared.state();
        if state.worker_exited {
            // No worker (a simple pipeline, or one that could not start): export and stop here.
            while !state.items.is_empty() {
                state = shared.export_front(state, shared.config.max_export_batch_size);
            }
            drop(shared.shut_exporter_down(state));
            return true;
        }
        if shared.mode == Mode::Simple {
            drop(shared.shut_exporter_down(state));
            return true;
        }
        wait_until(&shared.progress, state, deadline, |s| !s.worker_exited).1
    }

    /// [`Pipeline::begin_shutdown`] and [`Pipeline::wait`] within `timeout`.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.begin_shutdown();
        self.wait(Instant::now() + timeout)
    }

    /// What was not delivered and why, as the exit line says it; `None` if nothing was lost.
    pub fn undelivered(&self) -> Option<String> {
        let state = self.shared.state();
        let c = state.counts;
        let lost = c.undelivered();
        if lost == 0 {
            return None;
        }
        let mut parts = Vec::new();
        let full_queue = c.dropped - state.dropped_after_shutdown;
        if full_queue > 0 {
            parts.push(format!("{full_queue} dropped from a full queue"));
        }
        if c.failed > 0 {
            let reason = state.last_failure.as_deref().unwrap_or("unknown reason");
            parts.push(format!("{} failed to export (last: {reason})", c.failed));
        }
        if c.pending > 0 {
            parts.push(format!("{} still queued at the exit deadline", c.pending));
        }
        if c.in_flight > 0 {
            parts.push(format!("{} still being exported at the exit deadline", c.in_flight));
        }
        if state.dropped_after_shutdown > 0 {
            parts.push(format!("{} ended after shutdown", state.dropped_after_shutdown));
        }
        let to = match self.shared.destination.as_str() {
            "" => String::new(),
            destination => format!(" to {destination}"),
        };
        Some(format!(
            "{lost} {} were not delivered{to}: {}",
            T::NOUN,
            parts.join(", ")
        ))
    }
}

fn worker<T: Item>(shared: Arc<Shared<T>>) {
    let config = shared.config;
    let batch = config.max_export_batch_size.max(1);
    let mut next_export = Instant::now() + config.schedule_delay;
    let mut state = shared.state();
    loop {
        loop {
            let now = Instant::now();
            let flushing = state.flush_requested > state.flush_completed;
            let trouble_due = state.trouble.next_line_at().is_some_and(|at| at <= now);
            if state.items.len() >= batch || flushing || state.shut_down || now >= next_export || trouble_due {
                break;
            }
            let wake_at = state
                .trouble
                .next_line_at()
                .map_or(next_export, |at| at.min(next_export));
            state = shared
                .work
                .wait_timeout(state, wake_at.saturating_duration_since(now))
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        let ticket = state.flush_requested;
        let stopping = state.shut_down;
        let everything = ticket > state.flush_completed || stopping || Instant::now() >= next_export;
        // A flush, the schedule and shutdown take what is queued now; otherwise only full
        // batches go, so a steady stream is sent in full batches.
        let mut remaining = if everything {
            state.items.len()
        } else {
            state.items.len() - state.items.len() % batch
        };
        while remaining > 0 && !state.items.is_empty() {
            let n = remaining.min(batch);
            remaining -= n;
            state = shared.export_front(state, n);
        }
        if everything {
            next_export = Instant::now() + config.schedule_delay;
        }
        state = shared.tell(state, None);
        state.flush_completed = state.flush_completed.max(ticket);
        if stopping && state.items.is_empty() {
            state = shared.shut_exporter_down(state);
            state.worker_exited = true;
            shared.progress.notify_all();
            return;
        }
        shared.progress.notify_all();
    }
}

#[cfg(test)]
mod tests;
