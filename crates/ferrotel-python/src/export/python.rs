//! Exporters written in Python (a vendor's, a user's, one loaded by entry-point name) behind
//! ferrotel's own pipelines: the batch is handed over on the pipeline's worker thread, as
//! the objects the upstream SDK's exporters receive, so the app thread pays nothing for it.
//!
//! The worker attaches to the interpreter only for the call, and never once the interpreter
//! is shutting down (then the batch fails, counted, with that reason).

use std::marker::PhantomData;

use ferrotel_sdk::pipeline::{ExitControl, ExportResult, Exporter};
use ferrotel_sdk::resource::Resource;
use pyo3::prelude::*;

use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle;

/// How a signal's items look to Python exporters and processors.
pub(crate) trait PythonShape: Sized {
    /// The resource as the Python objects carry it (built once per pipeline).
    fn resource<'py>(py: Python<'py>, resource: &Resource) -> PyResult<Bound<'py, PyAny>>;
    /// The batch as the signal's Python exporters receive it.
    fn batch<'py>(py: Python<'py>, batch: &[Self], resource: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>>;
    /// Calls the exporter with the batch; `Ok(true)` when it reported success.
    fn call_export(exporter: &Bound<'_, PyAny>, batch: &Bound<'_, PyAny>) -> PyResult<bool> {
        let result = exporter.call_method1("export", (batch,))?;
        result_is_success(&result)
    }
}

/// Whether an exporter's result (the SDK's `*ExportResult` enum, or its value) is SUCCESS.
pub(crate) fn result_is_success(result: &Bound<'_, PyAny>) -> PyResult<bool> {
    let value = match result.getattr("value") {
        Ok(value) => value,
        Err(_) => result.clone(),
    };
    Ok(value.extract::<i64>().is_ok_and(|v| v == 0) || value.extract::<bool>().is_ok_and(|v| v))
}

/// A Python exporter object behind a native pipeline.
pub(crate) struct PythonExporter<T> {
    exporter: std::sync::Arc<Py<PyAny>>,
    /// The resource as Python objects, made at the first export.
    resource: Option<Py<PyAny>>,
    /// The exporter's class, for messages.
    name: String,
    items: PhantomData<fn(T)>,
}

impl<T> PythonExporter<T> {
    pub(crate) fn new(exporter: PythonObject) -> PythonExporter<T> {
        PythonExporter {
            exporter: exporter.object,
            resource: None,
            name: exporter.name,
            items: PhantomData,
        }
    }
}

/// A Python object a recipe refers to, with its class name for messages (read once, with
/// the GIL, so recipes can be cloned and built without it).
pub(crate) struct PythonObject {
    pub(crate) object: std::sync::Arc<Py<PyAny>>,
    pub(crate) name: String,
}

impl PythonObject {
    pub(crate) fn new(object: &Bound<'_, PyAny>) -> PythonObject {
        let name = object
            .get_type()
            .qualname()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "a Python object".into());
        PythonObject {
            object: std::sync::Arc::new(object.clone().unbind()),
            name,
        }
    }
}

impl Clone for PythonObject {
    fn clone(&self) -> Self {
        PythonObject {
            object: self.object.clone(),
            name: self.name.clone(),
        }
    }
}

fn attached<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    if lifecycle::interpreter_leaving() {
        return None;
    }
    Python::try_attach(f)
}

impl<T: PythonShape + Send> Exporter<T> for PythonExporter<T> {
    fn export(&mut self, batch: &[T], resource: &Resource, _: &ExitControl) -> ExportResult {
        let outcome = attached(|py| -> PyResult<bool> {
            let resource = match &self.resource {
                Some(made) => made.bind(py).clone(),
                None => {
                    let made = T::resource(py, resource)?;
                    self.resource = Some(made.clone().unbind());
                    made
                }
            };
            let objects = T::batch(py, batch, &resource)?;
            T::call_export(self.exporter.bind(py), &objects)
        });
        match outcome {
            Some(Ok(true)) => ExportResult::Success,
            Some(Ok(false)) => ExportResult::Failure(format!("{} reported a failure", self.name)),
            Some(Err(error)) => ExportResult::Failure(format!("{} raised {error}", self.name)),
            None => ExportResult::Failure("the interpreter was shutting down".into()),
        }
    }

    fn shutdown(&mut self) {
        attached(|py| {
            if let Err(error) = self.exporter.bind(py).call_method0("shutdown") {
                emit(
                    py,
                    ferrotel_config::LogLevel::Warning,
                    &format!("{}.shutdown() raised {error}", self.name),
                );
            }
        });
    }

    fn destination(&self) -> String {
        self.name.clone()
    }
}
