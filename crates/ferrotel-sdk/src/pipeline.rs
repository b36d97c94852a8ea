//! Carrying ended spans (and emitted log records) to exporters.
//!
//! A batch pipeline keeps a bounded queue that application threads append to under a
//! short lock, and one worker thread that drains it every `schedule_delay` (or as soon as a
//! batch is full, or on flush) and calls the exporters: encoding and I/O never happen on an
//! application thread. A full queue drops the item and counts it. A simple pipeline exports
//! on the caller's thread, one item at a time. Items are spans unless said otherwise.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ferrotel_config::BatchConfig;

use crate::resource::Resource;
use crate::span::SpanData;
use crate::sync::{lock, wait_until};

/// Whether an export reached its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportResult {
    Success,
    Failure(String),
}

/// Where items go. Called from one thread at a time.
pub trait Exporter<T>: Send {
    fn export(&mut self, batch: &[T], resource: &Resource) -> ExportResult;
    fn shutdown(&mut self) {}
    /// Where spans go, for messages (`""` when there is nothing useful to say).
    fn destination(&self) -> String {
        String::new()
    }
}

/// Exact counts a user can read at any time.
#[derive(Debug, Default)]
pub struct Counters {
    pub enqueued: AtomicU64,
    /// Spans dropped because the queue was full (or the pipeline shut down).
    pub dropped: AtomicU64,
    pub exported: AtomicU64,
    /// Spans in batches an exporter reported as failed.
    pub failed: AtomicU64,
    /// Spans handed to the exporters whose export has not finished yet.
    pub in_flight: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub enqueued: u64,
    pub dropped: u64,
    pub exported: u64,
    pub failed: u64,
    pub in_flight: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            enqueued: self.enqueued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            exported: self.exported.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

struct Queue<T> {
    spans: Vec<T>,
    /// Flush tickets: requested increments per flush call; completed catches up.
    flush_requested: u64,
    flush_completed: u64,
    stop: bool,
    worker_exited: bool,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    /// Wakes the worker.
    work: Condvar,
    /// Wakes flush/shutdown waiters.
    progress: Condvar,
    config: BatchConfig,
    counters: Counters,
    exporters: Mutex<Vec<Box<dyn Exporter<T>>>>,
    /// Read once: asking the exporters later would wait for an export in progress.
    destinations: Vec<String>,
    resource: Resource,
    shut_down: AtomicBool,
}

impl<T> Shared<T> {
    fn export(&self, batch: &[T]) {
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        self.counters.in_flight.fetch_add(count, Ordering::Relaxed);
        let mut exporters = lock(&self.exporters);
        for exporter in exporters.iter_mut() {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exporter.export(batch, &self.resource)));
            match result {
                Ok(ExportResult::Success) => self.counters.exported.fetch_add(batch.len() as u64, Ordering::Relaxed),
                _ => self.counters.failed.fetch_add(batch.len() as u64, Ordering::Relaxed),
            };
        }
        self.counters.in_flight.fetch_sub(count, Ordering::Relaxed);
    }
}

enum Mode {
    Batch,
    Simple,
}

/// A processor: items in, exporters called. Cheap to share across threads.
pub struct Pipeline<T = SpanData> {
    shared: Arc<Shared<T>>,
    mode: Mode,
}

impl<T: Send + 'static> Pipeline<T> {
    pub fn batch(config: BatchConfig, exporters: Vec<Box<dyn Exporter<T>>>, resource: Resource) -> Pipeline<T> {
        let pipeline = Pipeline::new(config, exporters, resource, Mode::Batch);
        let shared = pipeline.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("ferrotel-export".into())
            .spawn(move || worker(shared));
        if spawned.is_err() {
            // Without a worker, flush synchronously on demand rather than lose spans silently.
            lock(&pipeline.shared.queue).worker_exited = true;
        }
        pipeline
    }

    pub fn simple(exporters: Vec<Box<dyn Exporter<T>>>, resource: Resource) -> Pipeline<T> {
        let config = BatchConfig {
            schedule_delay: Duration::ZERO,
            export_timeout: Duration::from_secs(30),
            max_queue_size: 1,
            max_export_batch_size: 1,
        };
        Pipeline::new(config, exporters, resource, Mode::Simple)
    }

    fn new(config: BatchConfig, exporters: Vec<Box<dyn Exporter<T>>>, resource: Resource, mode: Mode) -> Pipeline<T> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                spans: Vec::with_capacity(config.max_export_batch_size),
                flush_requested: 0,
                flush_completed: 0,
                stop: false,
                worker_exited: false,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            config,
            counters: Counters::default(),
            destinations: exporters
                .iter()
                .map(|e| e.destination())
                .filter(|d| !d.is_empty())
                .collect(),
            exporters: Mutex::new(exporters),
            resource,
            shut_down: AtomicBool::new(false),
        });
        Pipeline { shared, mode }
    }

    pub fn counters(&self) -> Snapshot {
        self.shared.counters.snapshot()
    }

    pub fn resource(&self) -> &Resource {
        &self.shared.resource
    }

    /// Hands over an ended, sampled span (or an emitted log record). Never blocks on export
    /// in batch mode.
    pub fn on_end(&self, span: T) {
        let counters = &self.shared.counters;
        if self.shared.shut_down.load(Ordering::Relaxed) {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        counters.enqueued.fetch_add(1, Ordering::Relaxed);
        match self.mode {
            Mode::Simple => self.shared.export(std::slice::from_ref(&span)),
            Mode::Batch => {
                let mut queue = lock(&self.shared.queue);
                if queue.spans.len() >= self.shared.config.max_queue_size {
                    drop(queue);
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                queue.spans.push(span);
                // Wake the worker only when a batch is due, not for every span.
                if queue.spans.len() == self.shared.config.max_export_batch_size {
                    self.shared.work.notify_one();
                }
            }
        }
    }

    /// Exports everything queued so far; `false` if `timeout` passed first.
    pub fn force_flush(&self, timeout: Duration) -> bool {
        if matches!(self.mode, Mode::Simple) {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut queue = lock(&self.shared.queue);
        if queue.worker_exited {
            let spans = std::mem::take(&mut queue.spans);
            drop(queue);
            for chunk in spans.chunks(self.shared.config.max_export_batch_size.max(1)) {
                self.shared.export(chunk);
            }
            return true;
        }
        queue.flush_requested += 1;
        let ticket = queue.flush_requested;
        self.shared.work.notify_one();
        wait_until(&self.shared.progress, queue, deadline, |q| {
            q.flush_completed < ticket && !q.worker_exited
        })
        .1
    }

    /// Flushes, stops the worker and shuts the exporters down, within `timeout`. Spans
    /// ended afterwards are counted as dropped. Returns `false` if the deadline passed.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        if self.shared.shut_down.swap(true, Ordering::AcqRel) {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let flushed = self.force_flush(timeout);
        let mut queue = lock(&self.shared.queue);
        queue.stop = true;
        self.shared.work.notify_one();
        let batch = matches!(self.mode, Mode::Batch);
        let (queue, stopped) = wait_until(&self.shared.progress, queue, deadline, |q| batch && !q.worker_exited);
        drop(queue);
        if !stopped {
            return false;
        }
        for exporter in lock(&self.shared.exporters).iter_mut() {
            exporter.shutdown();
        }
        flushed
    }

    /// Where the exporters send, for messages.
    pub fn destinations(&self) -> &[String] {
        &self.shared.destinations
    }

    /// Spans still queued (not yet handed to an exporter).
    pub fn pending(&self) -> usize {
        lock(&self.shared.queue).spans.len()
    }
}

fn worker<T>(shared: Arc<Shared<T>>) {
    let config = shared.config;
    let mut next_export = Instant::now() + config.schedule_delay;
    loop {
        let mut queue = lock(&shared.queue);
        loop {
            let due = queue.spans.len() >= config.max_export_batch_size
                || queue.flush_requested > queue.flush_completed
                || queue.stop
                || Instant::now() >= next_export;
            if due {
                break;
            }
            let wait = next_export.saturating_duration_since(Instant::now());
            queue = shared
                .work
                .wait_timeout(queue, wait)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        let spans = std::mem::replace(&mut queue.spans, Vec::with_capacity(config.max_export_batch_size));
        let ticket = queue.flush_requested;
        let stop = queue.stop;
        drop(queue);

        for chunk in spans.chunks(config.max_export_batch_size.max(1)) {
            shared.export(chunk);
        }
        next_export = Instant::now() + config.schedule_delay;

        let mut queue = lock(&shared.queue);
        queue.flush_completed = queue.flush_completed.max(ticket);
        if stop && queue.spans.is_empty() {
            queue.worker_exited = true;
            shared.progress.notify_all();
            return;
        }
        shared.progress.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<Vec<u64>>>>, Option<Duration>);

    impl Exporter<SpanData> for Collect {
        fn export(&mut self, batch: &[SpanData], _: &Resource) -> ExportResult {
            if let Some(d) = self.1 {
                std::thread::sleep(d);
            }
            lock(&self.0).push(batch.iter().map(|s| s.span_id).collect());
            ExportResult::Success
        }
    }

    fn span(id: u64) -> SpanData {
        SpanData {
            span_id: id,
            end_ns: 1,
            ..SpanData::for_tests()
        }
    }

    fn config(queue: usize, batch: usize, delay_ms: u64) -> BatchConfig {
        BatchConfig {
            schedule_delay: Duration::from_millis(delay_ms),
            export_timeout: Duration::from_secs(1),
            max_queue_size: queue,
            max_export_batch_size: batch,
        }
    }

    #[test]
    fn batches_by_size_and_flushes_on_demand() {
        let sink = Collect::default();
        let p = Pipeline::batch(
            config(100, 3, 60_000),
            vec![Box::new(sink.clone())],
            Resource::default(),
        );
        for id in 1..=7 {
            p.on_end(span(id));
        }
        assert!(p.force_flush(Duration::from_secs(5)));
        let batches = lock(&sink.0).clone();
        assert_eq!(batches.concat(), (1..=7).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.len() <= 3));
        assert_eq!(
            p.counters(),
            Snapshot {
                enqueued: 7,
                dropped: 0,
                exported: 7,
                failed: 0,
                in_flight: 0
            }
        );
    }

    #[test]
    fn exports_on_schedule() {
        let sink = Collect::default();
        let p = Pipeline::batch(config(100, 50, 20), vec![Box::new(sink.clone())], Resource::default());
        p.on_end(span(1));
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&sink.0).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(lock(&sink.0).concat(), vec![1]);
    }

    #[test]
    fn a_full_queue_drops_and_counts_exactly() {
        let sink = Collect(Default::default(), Some(Duration::from_millis(200)));
        let p = Pipeline::batch(
            config(10, 10, 60_000),
            vec![Box::new(sink.clone())],
            Resource::default(),
        );
        for id in 0..10 {
            p.on_end(span(id)); // the 10th wakes the worker, which then sleeps in export
        }
        std::thread::sleep(Duration::from_millis(50));
        for id in 10..35 {
            p.on_end(span(id));
        }
        assert!(p.shutdown(Duration::from_secs(5)));
        let c = p.counters();
        assert_eq!(c.enqueued, 35);
        assert_eq!(c.exported + c.dropped, 35, "{c:?}");
        assert_eq!(c.dropped, 15, "{c:?}");
        p.on_end(span(99));
        assert_eq!(p.counters().dropped, 16, "spans after shutdown are counted as dropped");
    }

    #[test]
    fn flush_and_shutdown_respect_their_deadline() {
        let slow = Collect(Default::default(), Some(Duration::from_millis(1500)));
        let p = Pipeline::batch(config(100, 1, 60_000), vec![Box::new(slow)], Resource::default());
        p.on_end(span(1));
        p.on_end(span(2));
        let started = Instant::now();
        assert!(!p.force_flush(Duration::from_millis(100)));
        assert!(!p.shutdown(Duration::from_millis(200)));
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn simple_exports_inline() {
        let sink = Collect::default();
        let p = Pipeline::simple(vec![Box::new(sink.clone())], Resource::default());
        p.on_end(span(5));
        assert_eq!(lock(&sink.0).concat(), vec![5]);
    }
}
