//! What the logs and metrics providers share: the exporters their `OTEL_*_EXPORTER` list
//! names (otlp, console), kept as recipes; the pipeline built from them and rebuilt in a
//! forked child; and the registry of live providers the fork and exit hooks walk.

use std::sync::{Arc, Mutex, Weak};

use ferrotel_config::{BatchConfig, Config, Exporter, LogLevel, OtlpConfig};
use ferrotel_otlp::OtlpExporter;
use ferrotel_sdk::export::console::ConsoleExporter;
use ferrotel_sdk::pipeline::{self, Pipeline};
use ferrotel_sdk::resource::{ProcessFacts, Resource};
use ferrotel_sdk::sync::lock;
use pyo3::Python;

use crate::diagnostics::emit;

#[derive(Clone)]
pub enum ExporterSpec {
    Console,
    Otlp(OtlpConfig),
}

impl ExporterSpec {
    /// The recipes for `list` (the parsed `variable`); entry-point names ferrotel does not
    /// provide get one warning each. Nothing when the SDK is disabled.
    pub fn from_list(
        py: Python<'_>,
        variable: &str,
        list: &[Exporter],
        otlp: &OtlpConfig,
        sdk_disabled: bool,
    ) -> Vec<ExporterSpec> {
        if sdk_disabled {
            return Vec::new();
        }
        let mut specs = Vec::new();
        for exporter in list {
            match exporter {
                Exporter::Console => specs.push(ExporterSpec::Console),
                Exporter::Otlp => specs.push(ExporterSpec::Otlp(otlp.clone())),
                Exporter::EntryPoint(name) => emit(
                    py,
                    LogLevel::Warning,
                    &format!("{variable}={name}: not a ferrotel exporter (otlp, console, none); ignored"),
                ),
            }
        }
        specs
    }

    /// A running exporter; `otlp` makes the signal's OTLP exporter from its config.
    pub fn build<T>(&self, otlp: fn(OtlpConfig) -> OtlpExporter) -> Box<dyn pipeline::Exporter<T>>
    where
        ConsoleExporter<std::io::Stdout>: pipeline::Exporter<T>,
        OtlpExporter: pipeline::Exporter<T>,
    {
        match self {
            ExporterSpec::Console => Box::new(ConsoleExporter::stdout()),
            ExporterSpec::Otlp(config) => Box::new(otlp(config.clone())),
        }
    }
}

/// One signal's pipeline (`None` when no exporter is configured) and how to rebuild it.
pub struct SignalPipeline<T> {
    config: Config,
    facts: Mutex<ProcessFacts>,
    exporters: Vec<ExporterSpec>,
    batch: BatchConfig,
    otlp: fn(OtlpConfig) -> OtlpExporter,
    current: Mutex<Option<Arc<Pipeline<T>>>>,
}

impl<T: Send + 'static> SignalPipeline<T>
where
    ConsoleExporter<std::io::Stdout>: pipeline::Exporter<T>,
    OtlpExporter: pipeline::Exporter<T>,
{
    pub fn new(
        config: Config,
        facts: ProcessFacts,
        exporters: Vec<ExporterSpec>,
        batch: BatchConfig,
        otlp: fn(OtlpConfig) -> OtlpExporter,
    ) -> Self {
        let signal = SignalPipeline {
            config,
            facts: Mutex::new(facts),
            exporters,
            batch,
            otlp,
            current: Mutex::new(None),
        };
        *lock(&signal.current) = signal.build();
        signal
    }

    fn build(&self) -> Option<Arc<Pipeline<T>>> {
        if self.exporters.is_empty() {
            return None;
        }
        let resource = Resource::from_config(&self.config, &lock(&self.facts));
        let exporters = self.exporters.iter().map(|e| e.build(self.otlp)).collect();
        Some(Arc::new(Pipeline::batch(self.batch, exporters, resource)))
    }

    pub fn current(&self) -> Option<Arc<Pipeline<T>>> {
        lock(&self.current).clone()
    }

    /// In a forked child: the parent's worker thread does not exist here, so a fresh
    /// pipeline (empty queue, the child's pid in the resource) replaces it.
    pub fn rebuild_after_fork(&self, pid: u32) {
        lock(&self.facts).pid = pid;
        let fresh = self.build();
        *lock(&self.current) = fresh;
    }
}

/// The live providers of one kind, for the fork and exit hooks.
pub struct Registry<T>(Mutex<Vec<Weak<T>>>);

impl<T> Registry<T> {
    pub const fn new() -> Self {
        Registry(Mutex::new(Vec::new()))
    }

    pub fn add(&self, provider: &Arc<T>) {
        let mut providers = lock(&self.0);
        providers.retain(|p| p.strong_count() > 0);
        providers.push(Arc::downgrade(provider));
    }

    pub fn live(&self) -> Vec<Arc<T>> {
        lock(&self.0).iter().filter_map(Weak::upgrade).collect()
    }
}
