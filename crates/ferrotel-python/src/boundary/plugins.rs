//! Python components of other packages named in the environment and found by entry point
//! (`ferrotel._plugins`), with one warning naming the variable, the value and what is
//! installed when one cannot be loaded.

use ferrotel_config::LogLevel;
use pyo3::prelude::*;

use crate::runtime::diagnostics::emit;

/// The object entry point `name` of `group` refers to, or `None` after saying why not.
pub(crate) fn load<'py>(py: Python<'py>, variable: &str, group: &str, name: &str) -> Option<Bound<'py, PyAny>> {
    let loaded = py
        .import("ferrotel._plugins")
        .and_then(|plugins| plugins.call_method1("load", (group, name)));
    match loaded {
        Ok(object) => Some(object),
        Err(error) => {
            emit(
                py,
                LogLevel::Warning,
                &format!("{variable}={name}: {}; ignored", error.value(py)),
            );
            None
        }
    }
}

/// Loads entry point `name` of `group` and calls it with no arguments (how upstream makes
/// exporters, samplers, id generators and detectors from their classes).
pub(crate) fn make<'py>(py: Python<'py>, variable: &str, group: &str, name: &str) -> Option<Bound<'py, PyAny>> {
    let class = load(py, variable, group, name)?;
    match class.call0() {
        Ok(object) => Some(object),
        Err(error) => {
            emit(
                py,
                LogLevel::Warning,
                &format!("{variable}={name}: making it raised {error}; ignored"),
            );
            None
        }
    }
}
