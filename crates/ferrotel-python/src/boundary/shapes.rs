//! The pieces every signal's Python shapes share: the `ferrotel._shapes` module (imported
//! only once a Python processor or exporter is in use), attributes as dicts, the resource
//! and instrumentation scope as the upstream SDK's objects.

use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::Scope;
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
    for (k, v) in &attributes.items {
        dict.set_item(k, to_python(py, v)?)?;
    }
    Ok(dict)
}

/// The SDK's `Resource` (or its look-alike) for `resource`.
pub(crate) fn resource<'py>(py: Python<'py>, resource: &Resource) -> PyResult<Bound<'py, PyAny>> {
    let attributes = attributes_dict(py, &resource.attributes)?;
    module(py)?.call_method1("resource", (attributes, resource.schema_url.as_str()))
}

/// The SDK's `InstrumentationScope` (or its look-alike) for `scope`.
pub(crate) fn scope<'py>(py: Python<'py>, scope: &Scope) -> PyResult<Bound<'py, PyAny>> {
    let attributes = attributes_dict(py, &scope.attributes)?;
    module(py)?.call_method1(
        "scope",
        (
            scope.name.as_str(),
            scope.version.as_deref(),
            scope.schema_url.as_deref(),
            attributes,
        ),
    )
}
