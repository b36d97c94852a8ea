//! What every tracer and span of one `TracerProvider` shares: its sampler, its limits and
//! its pipelines. Kept apart from the Python classes so spans, tracers and the provider
//! all depend on it and never on each other in a circle.

use std::sync::Arc;

use ferrotel_config::{Config, Sampler, SpanLimits};
use ferrotel_sdk::resource::ProcessFacts;
use ferrotel_sdk::span::SpanData;

use crate::export::{Pipelines, ProcessorRecipe};

pub(crate) struct TraceCore {
    pub(crate) sampler: Sampler,
    pub(crate) limits: SpanLimits,
    /// Taking part in exit and fork themselves.
    pub(crate) pipelines: Arc<Pipelines<SpanData>>,
}

impl TraceCore {
    pub(crate) fn new(config: Config, facts: ProcessFacts, recipes: Vec<ProcessorRecipe<SpanData>>) -> Arc<TraceCore> {
        Arc::new(TraceCore {
            sampler: config.sampler.clone(),
            limits: config.span_limits,
            pipelines: Pipelines::taking_part(config, facts, recipes),
        })
    }

    /// Hands an ended, sampled span to every pipeline.
    pub(crate) fn on_end(&self, span: SpanData) {
        self.pipelines.on_end(span);
    }
}
