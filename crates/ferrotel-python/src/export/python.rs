//! Exporters written in Python (a vendor's, a user's, one loaded by entry-point name) behind
//! ferrotel's own pipelines: the batch is handed over on the pipeline's worker thread, as
//! the objects the upstream SDK's exporters receive, so the app thread pays nothing for it.
//!
//! The worker attaches to the interpreter only for the call, and never once the interpreter
//! is shutting down (then the batch fails, counted, with that reason).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use ferrotel_config::LogLevel;
use ferrotel_sdk::sync::lock;
use pyo3::types::PyTuple;

use ferrotel_sdk::pipeline::{ExitControl, ExportResult, Exporter};
use ferrotel_sdk::resource::Resource;
use pyo3::prelude::*;

use crate::boundary::shapes;
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::{self, Flush, Participant};

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
    /// A Python exporter or processor: the shapes it will be handed are imported now, not
    /// at its first export, which may happen at exit, when importing the SDK's modules fails.
    pub(crate) fn component(object: &Bound<'_, PyAny>) -> PyResult<PythonObject> {
        shapes::module(object.py())?;
        Ok(PythonObject::new(object))
    }

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
            // As the SDK does while it exports: an exporter's own HTTP calls (Zipkin's over
            // requests) must not be traced, or each export would make spans to export.
            let context = py.import("opentelemetry.context")?;
            let suppressed =
                context.call_method1("set_value", (context.getattr("_SUPPRESS_INSTRUMENTATION_KEY")?, true))?;
            let token = context.call_method1("attach", (suppressed,))?;
            let exported = T::call_export(self.exporter.bind(py), &objects);
            context.call_method1("detach", (token,))?;
            exported
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

/// Processors written in Python on a ferrotel provider (any object with the upstream SDK's
/// processor methods), called on the application's thread, as upstream calls them. A
/// provider without any pays one atomic load per item for them.
pub(crate) struct PythonProcessors {
    /// What they are, for messages: `span processor`.
    kind: &'static str,
    processors: Mutex<Arc<Vec<PythonObject>>>,
    any: AtomicBool,
    /// The resource as the SDK's object, made once per process (a forked child remakes it).
    resource: Mutex<Option<(u32, Py<PyAny>)>>,
    /// Whether a failing processor has been reported (once; later failures at debug level).
    warned: AtomicBool,
}

impl PythonProcessors {
    /// A set taking part in exit (flushed and shut down with the interpreter held).
    pub(crate) fn taking_part(kind: &'static str) -> Arc<PythonProcessors> {
        let processors = Arc::new(PythonProcessors {
            kind,
            processors: Mutex::default(),
            any: AtomicBool::new(false),
            resource: Mutex::new(None),
            warned: AtomicBool::new(false),
        });
        lifecycle::register(Arc::downgrade(&processors) as Weak<dyn Participant>);
        processors
    }

    pub(crate) fn add(&self, processor: &Bound<'_, PyAny>) -> PyResult<()> {
        let processor = PythonObject::component(processor)?;
        let mut processors = lock(&self.processors);
        let mut list = (**processors).clone();
        list.push(processor);
        *processors = Arc::new(list);
        self.any.store(true, Ordering::Release);
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    pub(crate) fn each(&self) -> Arc<Vec<PythonObject>> {
        lock(&self.processors).clone()
    }

    /// Calls `method` on each processor with `args`; a processor that raises is reported,
    /// never raised into the app.
    pub(crate) fn call_each<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        args: impl Fn() -> PyResult<Bound<'py, PyTuple>>,
    ) {
        for processor in self.each().iter() {
            let called = args().and_then(|args| processor.object.bind(py).call_method1(method, args));
            if let Err(error) = called {
                self.failed(py, &processor.name, method, error);
            }
        }
    }

    pub(crate) fn failed(&self, py: Python<'_>, name: &str, method: &str, error: PyErr) {
        let level = if self.warned.swap(true, Ordering::Relaxed) {
            LogLevel::Debug
        } else {
            LogLevel::Warning
        };
        emit(
            py,
            level,
            &format!(
                "{} {name}.{method} raised {error}; the app goes on (further failures are reported at debug level)",
                self.kind
            ),
        );
    }

    /// The resource as the SDK's object, made on first use in this process.
    pub(crate) fn resource_object<'py>(
        &self,
        py: Python<'py>,
        resource: impl FnOnce() -> Resource,
    ) -> PyResult<Bound<'py, PyAny>> {
        let pid = std::process::id();
        let mut cached = lock(&self.resource);
        if let Some((made_in, object)) = cached.as_ref() {
            if *made_in == pid {
                return Ok(object.bind(py).clone());
            }
        }
        let object = shapes::resource(py, &resource())?;
        *cached = Some((pid, object.clone().unbind()));
        Ok(object)
    }

    /// `force_flush(timeout_millis)` on each; `false` if one said so or raised.
    pub(crate) fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let mut complete = true;
        for processor in self.each().iter() {
            match processor.object.bind(py).call_method1("force_flush", (timeout_millis,)) {
                Ok(result) => complete &= result.extract::<bool>().unwrap_or(true),
                Err(error) => {
                    complete = false;
                    self.failed(py, &processor.name, "force_flush", error);
                }
            }
        }
        complete
    }

    /// Flushed within what is left until `deadline`, then `shutdown()`, once.
    pub(crate) fn shutdown(&self, py: Python<'_>, deadline: Instant) {
        let processors = std::mem::take(&mut *lock(&self.processors));
        self.any.store(false, Ordering::Release);
        for processor in processors.iter() {
            let millis = deadline.saturating_duration_since(Instant::now()).as_secs_f64() * 1e3;
            let bound = processor.object.bind(py);
            for (method, result) in [
                ("force_flush", bound.call_method1("force_flush", (millis,))),
                ("shutdown", bound.call_method0("shutdown")),
            ] {
                if let Err(error) = result {
                    self.failed(py, &processor.name, method, error);
                }
            }
        }
    }
}

impl Participant for PythonProcessors {
    /// Python processors flush with the interpreter held, before the native pipelines'
    /// parallel flush starts.
    fn before_exit(&self, py: Python<'_>, deadline: Instant) {
        if !self.is_empty() {
            self.shutdown(py, deadline);
        }
    }

    fn begin_shutdown(&self) -> Vec<Arc<dyn Flush>> {
        Vec::new()
    }

    fn after_fork(&self, _py: Python<'_>, _pid: u32) {}
}
