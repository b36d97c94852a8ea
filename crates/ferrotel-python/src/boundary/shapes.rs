//! The pieces every signal's Python shapes share: the `ferrotel._shapes` module (imported
//! only once a Python processor or exporter is in use), attributes as dicts, the resource
//! and instrumentation scope as the upstream SDK's objects.

use std::sync::Mutex;

use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::ScopeRef;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Attributes;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};

use super::value::to_python;

/// `ferrotel._shapes`. Imported through `sys.modules` every time rather than kept in a
/// once-cell: its import imports the SDK, which can make a provider that sets up a Python
/// component, which asks for this module again on the same thread.
pub(crate) fn module(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import("ferrotel._shapes")
}

pub(crate) fn attributes_dict<'py>(py: Python<'py>, attributes: &Attributes) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in attributes.iter() {
        dict.set_item(k, to_python(py, v)?)?;
    }
    Ok(dict)
}

/// The SDK's `Resource` (or its look-alike) for `resource`.
pub(crate) fn resource<'py>(py: Python<'py>, resource: &Resource) -> PyResult<Bound<'py, PyAny>> {
    let attributes = attributes_dict(py, &resource.attributes)?;
    module(py)?.call_method1("resource", (attributes, resource.schema_url.as_str()))
}

/// Scopes already shaped, by identity: a span or record names its tracer's scope, and making
/// an `InstrumentationScope` per item would cost more than the rest of its shape. Holding
/// the reference keeps its address from being reused; a program that makes tracers without
/// end starts over at the cap.
static SCOPES: Mutex<Vec<(ScopeRef, Py<PyAny>)>> = Mutex::new(Vec::new());
const SCOPES_CAP: usize = 256;

/// The SDK's `InstrumentationScope` (or its look-alike) for `scope`.
pub(crate) fn scope<'py>(py: Python<'py>, scope: &ScopeRef) -> PyResult<Bound<'py, PyAny>> {
    if let Some((_, shaped)) = lock(&SCOPES).iter().find(|(known, _)| known.as_ptr() == scope.as_ptr()) {
        return Ok(shaped.bind(py).clone());
    }
    let attributes = attributes_dict(py, &scope.attributes)?;
    let shaped = module(py)?.call_method1(
        "scope",
        (
            scope.name.as_str(),
            scope.version.as_deref(),
            scope.schema_url.as_deref(),
            attributes,
        ),
    )?;
    let mut known = lock(&SCOPES);
    if known.len() >= SCOPES_CAP {
        known.clear();
    }
    known.push((scope.clone(), shaped.clone().unbind()));
    Ok(shaped)
}
