//! What every tracer and span of one `TracerProvider` shares: its sampler, its limits and
//! its pipelines. Kept apart from the Python classes so spans, tracers and the provider
//! all depend on it and never on each other in a circle.

use std::sync::Arc;

use ferrotel_config::{Config, SpanLimits};
use ferrotel_sdk::resource::ProcessFacts;
use ferrotel_sdk::span::EndedSpan;
use pyo3::prelude::*;

use super::plugins;
use super::sampling::{Ids, Sampling};
use crate::export::python::PythonProcessors;
use crate::export::{Pipelines, ProcessorRecipe};

pub(crate) struct TraceCore {
    pub(crate) sampling: Sampling,
    pub(crate) ids: Ids,
    pub(crate) limits: SpanLimits,
    /// Taking part in exit and fork themselves.
    pub(crate) pipelines: Arc<Pipelines<EndedSpan>>,
    /// Processors written in Python, called on the application's thread.
    pub(crate) python: Arc<PythonProcessors>,
}

impl TraceCore {
    pub(crate) fn new(
        py: Python<'_>,
        config: Config,
        facts: ProcessFacts,
        recipes: Vec<ProcessorRecipe<EndedSpan>>,
    ) -> Arc<TraceCore> {
        let python = PythonProcessors::taking_part("span processor");
        Arc::new(TraceCore {
            sampling: Sampling::from_config(py, &config.sampler),
            ids: Ids::from_config(py, &config.id_generator),
            limits: config.span_limits,
            pipelines: Pipelines::taking_part(config, facts, recipes),
            python,
        })
    }

    /// Hands an ended span to the Python processors, then (sampled) to every pipeline.
    pub(crate) fn on_end(&self, py: Python<'_>, span: EndedSpan) {
        if !self.python.is_empty() {
            plugins::on_end(py, &self.python, &span, || self.pipelines.resource());
        }
        if span.is_sampled() {
            self.pipelines.on_end(span);
        }
    }
}
