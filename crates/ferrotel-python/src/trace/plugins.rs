//! Span processors written in Python on a ferrotel provider: any object with the upstream
//! SDK's `SpanProcessor` methods (a user's, contrib's `BaggageSpanProcessor`, the SDK's own
//! Batch/Simple processors around a vendor exporter). `on_start(span, parent_context)` gets
//! the live span, `on_end(span)` a `ReadableSpan`, on the application's thread as upstream
//! calls them. A provider without them pays one atomic load per span for this.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrotel_config::LogLevel;
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::SpanData;
use ferrotel_sdk::sync::lock;
use pyo3::prelude::*;

use super::shapes::readable_span;
use crate::boundary::shapes;
use crate::export::python::PythonObject;
use crate::runtime::diagnostics::emit;
use crate::runtime::lifecycle::{Flush, Participant};

#[derive(Default)]
pub(crate) struct PythonProcessors {
    processors: Mutex<Arc<Vec<PythonObject>>>,
    /// Read on every span: whether there is anything to call.
    any: AtomicBool,
    /// The resource as the SDK's object, made once per process (a forked child remakes it).
    resource: Mutex<Option<(u32, Py<PyAny>)>>,
    /// Whether a failing processor has been reported (once; later failures at debug level).
    warned: AtomicBool,
}

impl PythonProcessors {
    pub(crate) fn add(&self, processor: &Bound<'_, PyAny>) {
        let mut processors = lock(&self.processors);
        let mut list = (**processors).clone();
        list.push(PythonObject::new(processor));
        *processors = Arc::new(list);
        self.any.store(true, Ordering::Release);
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    fn each(&self) -> Arc<Vec<PythonObject>> {
        lock(&self.processors).clone()
    }

    fn failed(&self, py: Python<'_>, processor: &PythonObject, method: &str, error: PyErr) {
        let level = if self.warned.swap(true, Ordering::Relaxed) {
            LogLevel::Debug
        } else {
            LogLevel::Warning
        };
        emit(
            py,
            level,
            &format!(
                "span processor {}.{method} raised {error}; the app goes on (further failures are reported at debug level)",
                processor.name
            ),
        );
    }

    pub(crate) fn on_start(&self, py: Python<'_>, span: &Bound<'_, PyAny>, parent_context: Option<&Bound<'_, PyAny>>) {
        for processor in self.each().iter() {
            let context = parent_context.map_or_else(|| py.None().into_bound(py), Clone::clone);
            if let Err(error) = processor.object.bind(py).call_method1("on_start", (span, context)) {
                self.failed(py, processor, "on_start", error);
            }
        }
    }

    fn resource_object<'py>(
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

    pub(crate) fn on_end(&self, py: Python<'_>, span: &SpanData, resource: impl FnOnce() -> Resource) {
        let readable = self
            .resource_object(py, resource)
            .and_then(|resource| readable_span(py, span, &resource));
        let processors = self.each();
        let readable = match readable {
            Ok(readable) => readable,
            Err(error) => {
                if let Some(first) = processors.first() {
                    self.failed(py, first, "on_end", error);
                }
                return;
            }
        };
        for processor in processors.iter() {
            if let Err(error) = processor.object.bind(py).call_method1("on_end", (&readable,)) {
                self.failed(py, processor, "on_end", error);
            }
        }
    }

    /// `force_flush(timeout_millis)` on each; `false` if one said so or raised.
    pub(crate) fn force_flush(&self, py: Python<'_>, timeout_millis: f64) -> bool {
        let mut complete = true;
        for processor in self.each().iter() {
            match processor.object.bind(py).call_method1("force_flush", (timeout_millis,)) {
                Ok(result) => complete &= result.extract::<bool>().unwrap_or(true),
                Err(error) => {
                    complete = false;
                    self.failed(py, processor, "force_flush", error);
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
                    self.failed(py, processor, method, error);
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
