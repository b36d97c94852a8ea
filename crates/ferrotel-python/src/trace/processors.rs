//! The span processors and exporters Python code composes (`BatchSpanProcessor`,
//! `SimpleSpanProcessor`, `OTLPSpanExporter`, `ConsoleSpanExporter`,
//! `InMemorySpanExporter`): each is a recipe the provider builds a pipeline from.

use std::collections::HashMap;
use std::time::Duration;

use ferrotel_config::{BatchConfig, Config, LogLevel, OtlpConfig};
use ferrotel_sdk::span::EndedSpan;
use ferrotel_sdk::sync::lock;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::span::span_dict;
use crate::export::python::PythonObject;
use crate::export::{ExporterRecipe, Memory, ProcessorRecipe};
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::millis;

/// `ConsoleSpanExporter()`: one readable block per span on standard output.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct ConsoleSpanExporter;

#[pymethods]
impl ConsoleSpanExporter {
    #[new]
    fn new() -> Self {
        ConsoleSpanExporter
    }
}

/// `InMemorySpanExporter()`: keeps finished spans; `get_finished_spans()` returns them as dicts.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct InMemorySpanExporter {
    store: Memory<EndedSpan>,
}

#[pymethods]
impl InMemorySpanExporter {
    #[new]
    fn new() -> Self {
        InMemorySpanExporter {
            store: Memory::default(),
        }
    }

    fn get_finished_spans<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let spans = lock(&self.store).clone();
        let list = PyList::empty(py);
        for (span, resource) in &spans {
            list.append(span_dict(py, span, resource)?)?;
        }
        Ok(list)
    }

    fn clear(&self) {
        lock(&self.store).clear();
    }
}

/// `OTLPSpanExporter(endpoint=None, headers=None, timeout=None, compression=None,
/// certificate_file=None, client_key_file=None, client_certificate_file=None, protocol=None)`:
/// arguments win over the `OTEL_EXPORTER_OTLP_*` variables, which fill in the rest; the
/// protocol is the argument's, else `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`'s, else
/// http/protobuf. An endpoint given here is used as it is.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct OTLPSpanExporter {
    config: OtlpConfig,
}

#[pymethods]
impl OTLPSpanExporter {
    #[new]
    #[pyo3(signature = (endpoint=None, headers=None, timeout=None, compression=None, certificate_file=None, client_key_file=None, client_certificate_file=None, protocol=None))]
    #[allow(clippy::too_many_arguments)] // upstream's constructor signature
    fn new(
        py: Python<'_>,
        endpoint: Option<String>,
        headers: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        compression: Option<String>,
        certificate_file: Option<String>,
        client_key_file: Option<String>,
        client_certificate_file: Option<String>,
        protocol: Option<String>,
    ) -> PyResult<Self> {
        let overrides: HashMap<&str, String> = [
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", timeout.map(|t| t.to_string())),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", compression),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", certificate_file),
            ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", client_key_file),
            ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", client_certificate_file),
            (
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                protocol.or_else(protocol_from_environment),
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
        let env = ferrotel_config::parse::environment();
        let parsed = Config::from_lookup(|name| overrides.get(name).or_else(|| env.get(name)).cloned());
        for warning in parsed
            .warnings
            .iter()
            .filter(|w| w.var.starts_with("OTEL_EXPORTER_OTLP"))
        {
            emit(py, LogLevel::Warning, &warning.to_string());
        }
        let mut config = parsed.config.otlp_traces;
        if let Some(headers) = headers.filter(|h| !h.is_none()) {
            config.headers = headers.extract::<HashMap<String, String>>()?.into_iter().collect();
        }
        Ok(OTLPSpanExporter { config })
    }
}

/// The protocol the environment names for trace exports, if it names one; else
/// http/protobuf (ferrotel's one exporter class stands for upstream's HTTP and gRPC ones).
fn protocol_from_environment() -> Option<String> {
    ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .or_else(|| Some("http/protobuf".into()))
}

fn exporter_recipe(exporter: &Bound<'_, PyAny>) -> PyResult<ExporterRecipe<EndedSpan>> {
    if exporter.cast::<ConsoleSpanExporter>().is_ok() {
        Ok(ExporterRecipe::Console)
    } else if let Ok(otlp) = exporter.cast::<OTLPSpanExporter>() {
        Ok(ExporterRecipe::Otlp(otlp.get().config.clone()))
    } else if let Ok(memory) = exporter.cast::<InMemorySpanExporter>() {
        Ok(ExporterRecipe::Memory(memory.get().store.clone()))
    } else if exporter.hasattr("export")? {
        // Any other exporter (the SDK's interface): called on the pipeline's worker thread.
        Ok(ExporterRecipe::Python(PythonObject::component(exporter)?))
    } else {
        Err(PyTypeError::new_err(format!(
            "{} is not a span exporter (it has no export method)",
            exporter.get_type().name()?
        )))
    }
}

/// `BatchSpanProcessor(exporter, ...)`: the recipe of a batch pipeline.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct BatchSpanProcessor {
    pub(crate) recipe: ProcessorRecipe<EndedSpan>,
}

#[pymethods]
impl BatchSpanProcessor {
    #[new]
    #[pyo3(signature = (span_exporter, max_queue_size=None, schedule_delay_millis=None, max_export_batch_size=None, export_timeout_millis=None))]
    fn new(
        span_exporter: &Bound<'_, PyAny>,
        max_queue_size: Option<usize>,
        schedule_delay_millis: Option<f64>,
        max_export_batch_size: Option<usize>,
        export_timeout_millis: Option<f64>,
    ) -> PyResult<Self> {
        let defaults = Config::from_env().config.bsp;
        let or_default = |v: Option<f64>, default: Duration| v.map_or(default, millis);
        let max_queue_size = max_queue_size.unwrap_or(defaults.max_queue_size).max(1);
        let config = BatchConfig {
            schedule_delay: or_default(schedule_delay_millis, defaults.schedule_delay),
            export_timeout: or_default(export_timeout_millis, defaults.export_timeout),
            max_queue_size,
            max_export_batch_size: max_export_batch_size
                .unwrap_or(defaults.max_export_batch_size)
                .clamp(1, max_queue_size),
        };
        Ok(BatchSpanProcessor {
            recipe: ProcessorRecipe {
                batch: Some(config),
                exporter: exporter_recipe(span_exporter)?,
            },
        })
    }
}

/// `SimpleSpanProcessor(exporter)`: exports each span as it ends, on the caller's thread.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct SimpleSpanProcessor {
    pub(crate) recipe: ProcessorRecipe<EndedSpan>,
}

#[pymethods]
impl SimpleSpanProcessor {
    #[new]
    fn new(span_exporter: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(SimpleSpanProcessor {
            recipe: ProcessorRecipe {
                batch: None,
                exporter: exporter_recipe(span_exporter)?,
            },
        })
    }
}
