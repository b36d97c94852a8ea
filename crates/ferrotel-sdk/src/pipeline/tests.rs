use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;

/// A test item: an id, and a weight (metrics weigh their points).
#[derive(Debug, Clone)]
struct Thing(u64, u64);

impl Item for Thing {
    const SIGNAL: &'static str = "things";
    const NOUN: &'static str = "thing(s)";

    fn weight(&self) -> u64 {
        self.1
    }
}

fn thing(id: u64) -> Thing {
    Thing(id, 1)
}

/// What the test exporter does with each batch.
#[derive(Clone, Copy)]
enum Behaviour {
    Succeed,
    Fail,
    /// Rejects this many units of every batch.
    Reject(u64),
}

#[derive(Clone)]
struct Sink {
    batches: Arc<Mutex<Vec<Vec<u64>>>>,
    delay: Option<Duration>,
    behaviour: Arc<Mutex<Behaviour>>,
    /// Calls that gave up early because the exit began.
    cut_short: Arc<AtomicU64>,
}

impl Sink {
    fn new(delay: Option<Duration>, behaviour: Behaviour) -> Sink {
        Sink {
            batches: Default::default(),
            delay,
            behaviour: Arc::new(Mutex::new(behaviour)),
            cut_short: Default::default(),
        }
    }

    fn ids(&self) -> Vec<u64> {
        lock(&self.batches).concat()
    }
}

impl Exporter<Thing> for Sink {
    fn export(&mut self, batch: &[Thing], _: &Resource, exit: &ExitControl) -> ExportResult {
        if let Some(delay) = self.delay {
            if !exit.pause(delay) {
                self.cut_short.fetch_add(1, Ordering::Relaxed);
            }
        }
        lock(&self.batches).push(batch.iter().map(|t| t.0).collect());
        match *lock(&self.behaviour) {
            Behaviour::Succeed => ExportResult::Success,
            Behaviour::Fail => ExportResult::Failure("refused".into()),
            Behaviour::Reject(n) => ExportResult::Partial {
                rejected: n,
                reason: "rejected".into(),
            },
        }
    }

    fn destination(&self) -> String {
        "the sink".into()
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

fn balanced(c: &Counts) -> bool {
    c.enqueued == c.exported + c.dropped + c.failed + c.pending + c.in_flight
}

#[test]
fn batches_by_size_and_flushes_on_demand() {
    let sink = Sink::new(None, Behaviour::Succeed);
    let p = Pipeline::batch(config(100, 3, 60_000), Box::new(sink.clone()), Resource::default());
    for id in 1..=7 {
        p.on_end(thing(id));
    }
    assert!(p.force_flush(Duration::from_secs(5)));
    let batches = lock(&sink.batches).clone();
    assert_eq!(batches.concat(), (1..=7).collect::<Vec<_>>());
    assert!(batches.iter().all(|b| b.len() <= 3));
    assert_eq!(
        p.counts(),
        Counts {
            enqueued: 7,
            exported: 7,
            ..Counts::default()
        }
    );
    assert_eq!(p.undelivered(), None);
}

#[test]
fn exports_on_schedule() {
    let sink = Sink::new(None, Behaviour::Succeed);
    let p = Pipeline::batch(config(100, 50, 20), Box::new(sink.clone()), Resource::default());
    p.on_end(thing(1));
    let deadline = Instant::now() + Duration::from_secs(5);
    while sink.ids().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(sink.ids(), vec![1]);
}

#[test]
fn a_full_queue_drops_and_counts_exactly() {
    let sink = Sink::new(Some(Duration::from_millis(200)), Behaviour::Succeed);
    let p = Pipeline::batch(config(10, 10, 60_000), Box::new(sink.clone()), Resource::default());
    for id in 0..10 {
        p.on_end(thing(id)); // the 10th wakes the worker, which then sleeps in export
    }
    std::thread::sleep(Duration::from_millis(50));
    for id in 10..35 {
        p.on_end(thing(id));
    }
    let c = p.counts();
    assert_eq!(
        (c.enqueued, c.in_flight, c.pending, c.dropped),
        (35, 10, 10, 15),
        "{c:?}"
    );
    assert!(p.shutdown(Duration::from_secs(5)));
    let c = p.counts();
    assert_eq!((c.enqueued, c.exported, c.dropped), (35, 20, 15), "{c:?}");
    p.on_end(thing(99));
    let c = p.counts();
    assert_eq!(
        (c.enqueued, c.dropped),
        (36, 16),
        "an item after shutdown is counted, as dropped"
    );
    assert_eq!(
        p.undelivered().unwrap(),
        "16 thing(s) were not delivered to the sink: 15 dropped from a full queue, 1 ended after shutdown"
    );
}

/// The issue this guards: the worker took the whole queue but counted only the batch it was
/// exporting as in flight, so undelivered counts fell short by up to a queue's worth.
#[test]
fn counts_balance_at_every_moment_with_small_batches_and_failures() {
    let sink = Sink::new(Some(Duration::from_millis(2)), Behaviour::Succeed);
    let behaviour = sink.behaviour.clone();
    let p = Arc::new(Pipeline::batch(
        config(64, 4, 5),
        Box::new(sink.clone()),
        Resource::default(),
    ));
    let done = Arc::new(AtomicBool::new(false));
    let checker = {
        let (p, done) = (p.clone(), done.clone());
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !done.load(Ordering::Relaxed) {
                let c = p.counts();
                assert!(balanced(&c), "{c:?}");
                // Items weigh at most 3: at most a queue and a batch are held at once.
                assert!(c.pending <= 64 * 3 && c.in_flight <= 4 * 3, "{c:?}");
                checks += 1;
            }
            checks
        })
    };
    let producers: Vec<_> = (0..3)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for id in 0..3000 {
                    p.on_end(Thing(t * 10_000 + id, 1 + id % 3));
                }
            })
        })
        .collect();
    for flip in 0..10 {
        *lock(&behaviour) = if flip % 2 == 0 {
            Behaviour::Fail
        } else {
            Behaviour::Succeed
        };
        std::thread::sleep(Duration::from_millis(10));
    }
    for producer in producers {
        producer.join().unwrap();
    }
    assert!(p.shutdown(Duration::from_secs(10)));
    done.store(true, Ordering::Relaxed);
    assert!(checker.join().unwrap() > 100);
    let c = p.counts();
    let sent: u64 = (0..3000u64).map(|id| 1 + id % 3).sum::<u64>() * 3;
    assert_eq!(c.enqueued, sent);
    assert!(balanced(&c) && c.pending == 0 && c.in_flight == 0, "{c:?}");
    assert!(c.failed > 0 && c.exported > 0 && c.dropped > 0, "{c:?}");
    let line = p.undelivered().unwrap();
    assert!(
        line.starts_with(&format!(
            "{} thing(s) were not delivered to the sink: ",
            c.dropped + c.failed
        )),
        "{line}"
    );
}

#[test]
fn partial_success_counts_only_the_rejected_as_failed() {
    let sink = Sink::new(None, Behaviour::Reject(2));
    let p = Pipeline::batch(config(100, 10, 60_000), Box::new(sink), Resource::default());
    for id in 0..10 {
        p.on_end(thing(id));
    }
    assert!(p.shutdown(Duration::from_secs(5)));
    let c = p.counts();
    assert_eq!((c.exported, c.failed), (8, 2), "{c:?}");
    assert_eq!(
        p.undelivered().unwrap(),
        "2 thing(s) were not delivered to the sink: 2 failed to export (last: rejected)"
    );
}

#[test]
fn flush_respects_its_deadline_and_shutdown_cuts_the_exporters_wait_short() {
    let slow = Sink::new(Some(Duration::from_millis(1500)), Behaviour::Succeed);
    let p = Pipeline::batch(config(100, 1, 60_000), Box::new(slow.clone()), Resource::default());
    p.on_end(thing(1));
    p.on_end(thing(2));
    let started = Instant::now();
    assert!(!p.force_flush(Duration::from_millis(100)));
    let c = p.counts();
    assert_eq!((c.in_flight, c.pending), (1, 1), "{c:?}");
    p.begin_shutdown();
    assert!(p.wait(Instant::now() + Duration::from_secs(5)));
    // The first export's wait ended when the exit began; the second ran in full.
    assert_eq!(slow.cut_short.load(Ordering::Relaxed), 1);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(p.counts().exported, 2);
}

#[test]
fn a_waiter_sees_what_is_still_queued_and_exporting_at_its_deadline() {
    let stuck = Sink::new(Some(Duration::from_millis(800)), Behaviour::Succeed);
    let p = Pipeline::batch(config(100, 1, 60_000), Box::new(stuck), Resource::default());
    for id in 0..3 {
        p.on_end(thing(id));
    }
    p.force_flush(Duration::from_millis(50));
    let exit = Instant::now() + Duration::from_millis(100);
    // Not begin_shutdown: the exporter keeps its full pause, so the deadline passes first.
    assert!(!p.force_flush(exit.saturating_duration_since(Instant::now())));
    assert_eq!(
        p.undelivered().unwrap(),
        "3 thing(s) were not delivered to the sink: 2 still queued at the exit deadline, \
         1 still being exported at the exit deadline"
    );
}

#[test]
fn simple_exports_inline() {
    let sink = Sink::new(None, Behaviour::Succeed);
    let p = Pipeline::simple(Box::new(sink.clone()), Resource::default());
    p.on_end(thing(5));
    assert_eq!(sink.ids(), vec![5]);
    assert_eq!(p.counts().exported, 1);
}

#[test]
fn trouble_is_told_once_then_summarised_with_exact_counts() {
    let mut trouble = Trouble::new();
    assert_eq!(trouble.due_line::<Thing>("the sink", 8), None);
    trouble.dropped = 3;
    let (level, first) = trouble.due_line::<Thing>("the sink", 8).unwrap();
    assert_eq!(level, LogLevel::Warning);
    assert!(first.starts_with("the thing(s) queue is full (8)"), "{first}");
    assert!(
        first.ends_with("(so far: 3 thing(s) dropped from a full queue)"),
        "{first}"
    );
    trouble.dropped = 1000;
    trouble.failed = 7;
    trouble.reason = Some("connection refused".into());
    assert_eq!(
        trouble.due_line::<Thing>("the sink", 8),
        None,
        "at most one line a minute"
    );
    trouble.last_line -= SUMMARY_EVERY;
    let (_, summary) = trouble.due_line::<Thing>("the sink", 8).unwrap();
    assert_eq!(
        summary,
        "things export to the sink, last minute: 1000 thing(s) dropped from a full queue, 7 failed to export \
         (connection refused)"
    );
    trouble.last_line -= SUMMARY_EVERY;
    assert_eq!(trouble.due_line::<Thing>("the sink", 8), None, "a quiet minute ends it");
    trouble.failed = 2;
    let (_, again) = trouble.due_line::<Thing>("the sink", 8).unwrap();
    assert!(
        again.starts_with("cannot export things to the sink: connection refused;"),
        "{again}"
    );
    trouble.failed = 1;
    let (level, recovered) = trouble.recovered::<Thing>("the sink").unwrap();
    assert_eq!(level, LogLevel::Info);
    assert_eq!(
        recovered,
        "things export to the sink works again (since the last line: 1 thing(s) failed to export \
         (connection refused))"
    );
    assert_eq!(trouble.recovered::<Thing>("the sink"), None);
}

#[test]
fn exit_control_cuts_pauses_short() {
    let exit = Arc::new(ExitControl::default());
    let waiter = {
        let exit = exit.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            (exit.pause(Duration::from_secs(5)), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    exit.begin();
    let (finished, took) = waiter.join().unwrap();
    assert!(!finished && took < Duration::from_secs(1), "{took:?}");
    assert!(exit.is_leaving());
    assert!(
        exit.pause(Duration::from_millis(10)),
        "after the exit began, pauses run in full"
    );
}
