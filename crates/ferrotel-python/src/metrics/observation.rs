//! Values from Python as the metrics record them: a measurement's number, and what an
//! observable instrument's callback reports at a collection.

use ferrotel_sdk::metrics::{Instrument, Number, ReaderSlot};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt};

use crate::boundary::value;

/// `opentelemetry.metrics.CallbackOptions(timeout_millis=...)`, or `None` without the API.
pub(crate) fn callback_options(py: Python<'_>, timeout_millis: f64) -> Py<PyAny> {
    py.import("opentelemetry.metrics")
        .and_then(|m| m.getattr("CallbackOptions"))
        .and_then(|c| {
            let kwargs = PyDict::new(py);
            kwargs.set_item("timeout_millis", timeout_millis)?;
            c.call((), Some(&kwargs))
        })
        .map(Bound::unbind)
        .unwrap_or_else(|_| py.None())
}

/// Calls one callback and records what it observed, for the reader in `slot` only: an
/// iterable of `Observation`s (each with `.value` and `.attributes`).
pub(crate) fn observe(
    py: Python<'_>,
    instrument: &Instrument,
    slot: ReaderSlot,
    callback: &Bound<'_, PyAny>,
    options: &Py<PyAny>,
    now: u64,
) -> PyResult<()> {
    let observations = callback.call1((options.bind(py),))?;
    for observation in observations.try_iter()? {
        let observation = observation?;
        let Some(value) = number(&observation.getattr("value")?) else {
            continue;
        };
        let attributes = observation.getattr("attributes").ok().filter(|a| !a.is_none());
        instrument.observe(slot, value, value::attributes(attributes.as_ref()), now);
    }
    Ok(())
}

pub(crate) fn number(obj: &Bound<'_, PyAny>) -> Option<Number> {
    if obj.cast::<PyBool>().is_ok() {
        return None;
    }
    if obj.cast::<PyInt>().is_ok() {
        return obj
            .extract::<i64>()
            .ok()
            .map(Number::Int)
            .or_else(|| obj.extract::<f64>().ok().map(Number::Double));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Some(Number::Double(f.value()));
    }
    obj.extract::<f64>().ok().map(Number::Double)
}
