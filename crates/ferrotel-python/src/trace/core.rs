//! What every tracer and span of one `TracerProvider` shares: its sampler, its limits and
//! its pipelines. Kept apart from the Python classes so spans, tracers and the provider
//! all depend on it and never on each other in a circle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use ferrotel_config::{Config, Sampler, SpanLimits};
use ferrotel_sdk::resource::ProcessFacts;
use ferrotel_sdk::span::SpanData;
use pyo3::prelude::*;

use crate::export::{Pipelines, ProcessorRecipe};
use crate::runtime::lifecycle::{self, Flush, Participant};

pub(crate) struct TraceCore {
    pub(crate) sampler: Sampler,
    pub(crate) limits: SpanLimits,
    pub(crate) pipelines: Pipelines<SpanData>,
    shut_down: AtomicBool,
}

impl TraceCore {
    /// A core taking part in exit and fork.
    pub(crate) fn new(config: Config, facts: ProcessFacts, recipes: Vec<ProcessorRecipe<SpanData>>) -> Arc<TraceCore> {
        let core = Arc::new(TraceCore {
            sampler: config.sampler,
            limits: config.span_limits,
            pipelines: Pipelines::new(config, facts, recipes),
            shut_down: AtomicBool::new(false),
        });
        lifecycle::register(Arc::downgrade(&core) as Weak<dyn Participant>);
        core
    }

    /// Hands an ended, sampled span to every pipeline.
    pub(crate) fn on_end(&self, span: SpanData) {
        self.pipelines.on_end(span);
    }
}

impl Participant for TraceCore {
    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Vec::new();
        }
        self.pipelines.begin_shutdown()
    }

    fn after_fork(&self, _py: Python<'_>, pid: u32) {
        self.pipelines.rebuild_after_fork(pid);
    }
}
