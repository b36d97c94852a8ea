//! The export layer every signal shares: the recipes of its processors and exporters (what
//! `OTEL_*_EXPORTER` names, or what user code composes), the live pipelines built from them,
//! their rebuild in a forked child, and their counts as `stats()` reports them.
//!
//! A recipe is kept next to the pipeline it made so that a forked child can build fresh
//! ones (new worker thread, empty queue, its own pid in the resource); the parent is
//! untouched. Every exporter gets a pipeline of its own, so each one's counts are exact.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ferrotel_config::{BatchConfig, Config, Exporter as Configured, LogLevel, OtlpConfig, ProcessorConfig};
use ferrotel_otlp::{Logs, Metrics, OtlpExporter, Traces};
use ferrotel_sdk::export::console::ConsoleExporter;
use ferrotel_sdk::log::LogData;
use ferrotel_sdk::metrics::MetricData;
use ferrotel_sdk::pipeline::{Counts, ExitControl, ExportResult, Exporter, Item, Pipeline};
use ferrotel_sdk::resource::{ProcessFacts, Resource};
use ferrotel_sdk::span::EndedSpan;
use ferrotel_sdk::sync::lock;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use self::python::{PythonExporter, PythonObject, PythonShape};
use crate::boundary::plugins;
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::{self, Flush, Participant};

pub(crate) mod python;

/// What a signal's items need to be exported by the exporters ferrotel builds itself, and
/// to be handed to Python exporters.
pub(crate) trait SignalData: Item + Clone + PythonShape {
    fn otlp_exporter(config: OtlpConfig) -> Box<dyn Exporter<Self>>;
    fn console_exporter() -> Box<dyn Exporter<Self>>;
}

impl SignalData for EndedSpan {
    fn otlp_exporter(config: OtlpConfig) -> Box<dyn Exporter<Self>> {
        Box::new(OtlpExporter::<Traces>::new(config))
    }

    fn console_exporter() -> Box<dyn Exporter<Self>> {
        Box::new(ConsoleExporter::stdout())
    }
}

impl SignalData for LogData {
    fn otlp_exporter(config: OtlpConfig) -> Box<dyn Exporter<Self>> {
        Box::new(OtlpExporter::<Logs>::new(config))
    }

    fn console_exporter() -> Box<dyn Exporter<Self>> {
        Box::new(ConsoleExporter::stdout())
    }
}

impl SignalData for MetricData {
    fn otlp_exporter(config: OtlpConfig) -> Box<dyn Exporter<Self>> {
        Box::new(OtlpExporter::<Metrics>::new(config))
    }

    fn console_exporter() -> Box<dyn Exporter<Self>> {
        Box::new(ConsoleExporter::stdout())
    }
}

/// Finished items kept in memory with their resource, for tests and code that inspects
/// what it recorded.
pub(crate) type Memory<T> = Arc<Mutex<Vec<(T, Arc<Resource>)>>>;

struct MemoryExporter<T>(Memory<T>);

impl<T: Clone + Send> Exporter<T> for MemoryExporter<T> {
    fn export(&mut self, batch: &[T], resource: &Resource, _: &ExitControl) -> ExportResult {
        let resource = Arc::new(resource.clone());
        lock(&self.0).extend(batch.iter().map(|item| (item.clone(), resource.clone())));
        ExportResult::Success
    }

    fn destination(&self) -> String {
        "memory".into()
    }
}

/// An exporter, as a recipe.
pub(crate) enum ExporterRecipe<T> {
    Console,
    Otlp(OtlpConfig),
    Memory(Memory<T>),
    /// A Python exporter object: `export(batch)` called on the pipeline's worker thread.
    Python(PythonObject),
}

impl<T> Clone for ExporterRecipe<T> {
    fn clone(&self) -> Self {
        match self {
            ExporterRecipe::Console => ExporterRecipe::Console,
            ExporterRecipe::Otlp(config) => ExporterRecipe::Otlp(config.clone()),
            ExporterRecipe::Memory(memory) => ExporterRecipe::Memory(memory.clone()),
            ExporterRecipe::Python(exporter) => ExporterRecipe::Python(exporter.clone()),
        }
    }
}

impl<T: SignalData> ExporterRecipe<T> {
    fn build(&self) -> Box<dyn Exporter<T>> {
        match self {
            ExporterRecipe::Console => T::console_exporter(),
            ExporterRecipe::Otlp(config) => T::otlp_exporter(config.clone()),
            ExporterRecipe::Memory(memory) => Box::new(MemoryExporter(memory.clone())),
            ExporterRecipe::Python(exporter) => Box::new(PythonExporter::new(exporter.clone())),
        }
    }
}

/// A processor, as a recipe: batching (`Some`) or exporting on the caller's thread.
pub(crate) struct ProcessorRecipe<T> {
    pub(crate) batch: Option<BatchConfig>,
    pub(crate) exporter: ExporterRecipe<T>,
}

impl<T> Clone for ProcessorRecipe<T> {
    fn clone(&self) -> Self {
        ProcessorRecipe {
            batch: self.batch,
            exporter: self.exporter.clone(),
        }
    }
}

impl<T: SignalData> ProcessorRecipe<T> {
    fn build(&self, resource: Resource) -> Pipeline<T> {
        let exporter = self.exporter.build();
        match self.batch {
            Some(config) => Pipeline::batch(config, exporter, resource),
            None => Pipeline::simple(exporter, resource),
        }
    }

    /// The processors the configuration names (from `variable`, or from the configuration
    /// file), as upstream's configurator sets them up: ferrotel's own exporters natively, any
    /// other name as the exporter its package registers in the signal's entry-point group,
    /// behind a native pipeline. Nothing when the SDK is disabled.
    pub(crate) fn from_environment(
        py: Python<'_>,
        variable: &str,
        processors: &[ProcessorConfig],
        sdk_disabled: bool,
    ) -> Vec<ProcessorRecipe<T>> {
        if sdk_disabled {
            return Vec::new();
        }
        let group = exporter_group(variable);
        let mut recipes = Vec::new();
        for processor in processors {
            let exporter = match &processor.exporter {
                Configured::Console => ExporterRecipe::Console,
                Configured::Otlp => ExporterRecipe::Otlp(processor.otlp.clone()),
                // Parsed for OTEL_METRICS_EXPORTER only, whose provider serves it itself (a
                // scrape endpoint is a reader, not an exporter behind a pipeline).
                Configured::Prometheus => continue,
                Configured::EntryPoint(name) => {
                    let made = plugins::make(py, variable, group, name).map(|made| PythonObject::component(&made));
                    match made {
                        Some(Ok(exporter)) => ExporterRecipe::Python(exporter),
                        Some(Err(error)) => {
                            emit(py, LogLevel::Warning, &format!("{variable}={name}: {error}; ignored"));
                            continue;
                        }
                        None => continue,
                    }
                }
            };
            recipes.push(ProcessorRecipe {
                batch: processor.batch,
                exporter,
            });
        }
        recipes
    }
}

/// The entry-point group of the exporters `variable` names.
fn exporter_group(variable: &str) -> &'static str {
    match variable {
        "OTEL_METRICS_EXPORTER" => "opentelemetry_metrics_exporter",
        "OTEL_LOGS_EXPORTER" => "opentelemetry_logs_exporter",
        _ => "opentelemetry_traces_exporter",
    }
}

/// The pipelines items are handed to, in the order their processors were added.
type PipelineList<T> = Vec<Arc<Pipeline<T>>>;

struct Processor<T> {
    recipe: ProcessorRecipe<T>,
    pipeline: Arc<Pipeline<T>>,
}

/// One provider's pipelines, the recipes they were built from, what their resource is made
/// of, and whether they were shut down.
pub(crate) struct Pipelines<T> {
    config: Config,
    facts: Mutex<ProcessFacts>,
    /// A resource user code gave the provider, used as given instead of the configured one.
    given: Option<Resource>,
    processors: Mutex<Vec<Processor<T>>>,
    /// The newest of `lists`, read by every item's hand-off with a plain load: no lock and
    /// no reference count, whose locked instructions would wait for the item's stores.
    live: AtomicPtr<PipelineList<T>>,
    /// Every list `live` pointed to, kept until the provider goes so that a reader's borrow
    /// stays valid: one per processor added and per fork, a handful. Boxed: `live` points
    /// at a list itself, which must not move when `lists` grows.
    #[allow(clippy::vec_box)]
    lists: Mutex<Vec<Box<PipelineList<T>>>>,
    shut_down: AtomicBool,
}

impl<T: SignalData> Pipelines<T> {
    pub(crate) fn new(config: Config, facts: ProcessFacts, recipes: Vec<ProcessorRecipe<T>>) -> Pipelines<T> {
        Pipelines::with_resource(config, facts, None, recipes)
    }

    /// The same, with `given` (when some) as the resource instead of the configured one.
    pub(crate) fn with_resource(
        config: Config,
        facts: ProcessFacts,
        given: Option<Resource>,
        recipes: Vec<ProcessorRecipe<T>>,
    ) -> Pipelines<T> {
        let pipelines = Pipelines {
            config,
            facts: Mutex::new(facts),
            given,
            processors: Mutex::new(Vec::new()),
            live: AtomicPtr::new(std::ptr::null_mut()),
            lists: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        };
        for recipe in recipes {
            pipelines.add(recipe);
        }
        pipelines
    }

    /// The same, taking part in exit and fork on its own (a provider with nothing else to
    /// do at those moments).
    pub(crate) fn taking_part(
        config: Config,
        facts: ProcessFacts,
        recipes: Vec<ProcessorRecipe<T>>,
    ) -> Arc<Pipelines<T>> {
        let pipelines = Arc::new(Pipelines::new(config, facts, recipes));
        lifecycle::register(Arc::downgrade(&pipelines) as Weak<dyn Participant>);
        pipelines
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Relaxed)
    }

    /// Whether items are exported at all: some exporter, not shut down.
    pub(crate) fn exporting(&self) -> bool {
        !self.is_shut_down() && !self.is_empty()
    }

    pub(crate) fn resource(&self) -> Resource {
        match &self.given {
            Some(given) => given.clone(),
            None => Resource::from_config(&self.config, &lock(&self.facts)),
        }
    }

    pub(crate) fn add(&self, recipe: ProcessorRecipe<T>) {
        let pipeline = Arc::new(recipe.build(self.resource()));
        let mut processors = lock(&self.processors);
        processors.push(Processor { recipe, pipeline });
        self.publish(&processors);
    }

    /// Makes the pipelines of `processors` the live list.
    fn publish(&self, processors: &[Processor<T>]) {
        let list: Box<PipelineList<T>> = Box::new(processors.iter().map(|p| p.pipeline.clone()).collect());
        let mut lists = lock(&self.lists);
        self.live
            .store(std::ptr::from_ref(&*list).cast_mut(), Ordering::Release);
        lists.push(list);
    }

    #[allow(unsafe_code)]
    pub(crate) fn current(&self) -> &[Arc<Pipeline<T>>] {
        let live = self.live.load(Ordering::Acquire);
        // SAFETY: `live` points into a box of `lists` (published before this load could see
        // it, by the Release store), which is never changed or freed while `self` lives.
        unsafe { live.as_ref() }.map_or(&[], Vec::as_slice)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// Hands a finished item to every pipeline.
    pub(crate) fn on_end(&self, item: T) {
        let pipelines = self.current();
        if let Some((last, others)) = pipelines.split_last() {
            for pipeline in others {
                pipeline.on_end(item.clone());
            }
            last.on_end(item);
        }
    }

    /// The pipelines, each told to start shutting down, for the caller to wait on; nothing
    /// the second time.
    pub(crate) fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        self.current()
            .iter()
            .map(|pipeline| {
                pipeline.begin_shutdown();
                pipeline.clone() as Arc<dyn Flush>
            })
            .collect()
    }

    /// Flushes and stops every pipeline by `deadline`, then says what was not delivered;
    /// `False` if the deadline passed first. Idempotent.
    pub(crate) fn shutdown(&self, py: Python<'_>, deadline: Instant) -> bool {
        lifecycle::finish(py, &self.begin_shutdown(), deadline, false)
    }

    /// Exports everything queued so far, in every pipeline; `False` if the deadline passed.
    pub(crate) fn force_flush(&self, py: Python<'_>, timeout: Duration) -> bool {
        let pipelines = self.current();
        let deadline = Instant::now() + timeout;
        py.detach(|| {
            pipelines
                .iter()
                .all(|p| p.force_flush(deadline.saturating_duration_since(Instant::now())))
        })
    }

    /// The counts summed over pipelines.
    pub(crate) fn counts(&self) -> Counts {
        self.current()
            .iter()
            .map(|p| p.counts())
            .fold(Counts::default(), |a, c| Counts {
                enqueued: a.enqueued + c.enqueued,
                dropped: a.dropped + c.dropped,
                exported: a.exported + c.exported,
                failed: a.failed + c.failed,
                pending: a.pending + c.pending,
                in_flight: a.in_flight + c.in_flight,
            })
    }

    /// In a forked child: every pipeline rebuilt from its recipe with this process's pid.
    /// The parent's pipelines are left as they are (leaked): their worker threads do not
    /// exist here, and one may have been holding their locks at the fork.
    pub(crate) fn rebuild_after_fork(&self, pid: u32) {
        lock(&self.facts).after_fork(pid);
        let resource = self.resource();
        let mut processors = lock(&self.processors);
        for processor in processors.iter_mut() {
            let fresh = Arc::new(processor.recipe.build(resource.clone()));
            std::mem::forget(std::mem::replace(&mut processor.pipeline, fresh));
        }
        self.publish(&processors);
    }
}

impl<T: SignalData> Participant for Pipelines<T> {
    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        Pipelines::begin_shutdown(self)
    }

    fn after_fork(&self, _py: Python<'_>, pid: u32) {
        self.rebuild_after_fork(pid);
    }
}

/// `stats()` as every provider reports it: exact counts summed over its pipelines.
pub(crate) fn stats_dict<'py>(py: Python<'py>, counts: Counts) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("enqueued", counts.enqueued)?;
    dict.set_item("dropped", counts.dropped)?;
    dict.set_item("exported", counts.exported)?;
    dict.set_item("failed", counts.failed)?;
    dict.set_item("pending", counts.pending)?;
    dict.set_item("in_flight", counts.in_flight)?;
    Ok(dict)
}
