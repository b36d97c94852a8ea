//! `TracerProvider`: the tracers' factory, configured from the environment (sampler,
//! limits, resource, and with `from_environment` the exporters of `OTEL_TRACES_EXPORTER`),
//! plus the processors Python code adds.

use std::sync::Arc;

use ferrotel_config::{Config, LogLevel};
use ferrotel_sdk::span::{Scope, ScopeRef};
use ferrotel_sdk::value::Attributes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::core::TraceCore;
use super::processors::{BatchSpanProcessor, SimpleSpanProcessor};
use super::tracer::Tracer;
use crate::boundary::process::resource_facts;
use crate::boundary::value;
use crate::export::{stats_dict, ProcessorRecipe};
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::{deadline_in, millis};
use crate::runtime::settings::config_with;

/// `TracerProvider(settings=None)`: sampler, limits and resource from the environment (and
/// `settings`, variable name -> value, which win). Processors are added explicitly, or from
/// `OTEL_TRACES_EXPORTER` by `from_environment()`.
#[pyclass(frozen, module = "ferrotel._native", name = "TracerProvider", subclass)]
pub(crate) struct TracerProvider {
    pub(crate) core: Arc<TraceCore>,
}

impl TracerProvider {
    fn build(
        py: Python<'_>,
        config: Config,
        recipes: Vec<ProcessorRecipe<ferrotel_sdk::span::EndedSpan>>,
    ) -> PyResult<Self> {
        let facts = resource_facts(py, &config)?;
        Ok(TracerProvider {
            core: TraceCore::new(py, config, facts, recipes),
        })
    }
}

#[pymethods]
impl TracerProvider {
    #[new]
    #[pyo3(signature = (settings=None))]
    fn new(py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        Self::build(py, config_with(settings)?.config, Vec::new())
    }

    /// A provider configured entirely from the environment (and `settings`): its exporters
    /// come from `OTEL_TRACES_EXPORTER`, each behind a batch processor, as upstream's
    /// configurator does. Configuration warnings are reported here.
    #[staticmethod]
    #[pyo3(signature = (settings=None))]
    fn from_environment(py: Python<'_>, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let parsed = config_with(settings)?;
        for warning in &parsed.warnings {
            emit(py, LogLevel::Warning, &warning.to_string());
        }
        let config = parsed.config;
        let recipes = ProcessorRecipe::from_environment(
            py,
            "OTEL_TRACES_EXPORTER",
            &config.traces_processors,
            config.sdk_disabled,
        );
        Self::build(py, config, recipes)
    }

    #[pyo3(signature = (instrumenting_module_name, instrumenting_library_version=None, schema_url=None, attributes=None))]
    fn get_tracer(
        &self,
        instrumenting_module_name: Option<&Bound<'_, PyAny>>,
        instrumenting_library_version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> Tracer {
        let mut scope_attributes = Attributes::default();
        for (k, v) in value::attributes(attributes) {
            scope_attributes.set(k, v, usize::MAX, None);
        }
        let scope = Scope {
            name: instrumenting_module_name.map(value::name_of).unwrap_or_default(),
            version: instrumenting_library_version,
            schema_url,
            attributes: scope_attributes,
        };
        Tracer::new(self.core.clone(), ScopeRef::new(scope))
    }

    /// ferrotel's processors become native pipelines; any other object with the SDK's
    /// `SpanProcessor` methods is called from Python, in the order added.
    fn add_span_processor(&self, span_processor: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(p) = span_processor.cast::<BatchSpanProcessor>() {
            self.core.pipelines.add(p.get().recipe.clone());
        } else if let Ok(p) = span_processor.cast::<SimpleSpanProcessor>() {
            self.core.pipelines.add(p.get().recipe.clone());
        } else if span_processor.hasattr("on_end")? {
            self.core.python.add(span_processor)?;
        } else {
            return Err(PyTypeError::new_err(format!(
                "{} is not a span processor (it has no on_end method)",
                span_processor.get_type().name()?
            )));
        }
        Ok(())
    }

    /// Exports everything recorded so far; `False` if the deadline passed first.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let python = self.core.python.force_flush(py, timeout_millis);
        self.core.pipelines.force_flush(py, millis(timeout_millis)) && python
    }

    /// Flushes and stops every pipeline within `timeout_millis`; says on stderr how many
    /// spans were not delivered, if any. Idempotent.
    #[pyo3(signature = (timeout_millis=30000.0))]
    fn shutdown(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let deadline = deadline_in(timeout_millis);
        self.core.python.shutdown(py, deadline);
        self.core.pipelines.shutdown(py, deadline)
    }

    /// Exact counts, summed over pipelines: enqueued, dropped, exported, failed, pending,
    /// in_flight (`enqueued` is always the sum of the others).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, self.core.pipelines.counts())
    }

    /// The resource attributes, as a dict.
    #[getter]
    fn resource<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (k, v) in self.core.pipelines.resource().attributes.iter() {
            dict.set_item(k, value::to_python(py, v)?)?;
        }
        Ok(dict)
    }

    #[getter]
    fn sampler_description(&self, py: Python<'_>) -> String {
        self.core.sampling.describe(py)
    }
}
