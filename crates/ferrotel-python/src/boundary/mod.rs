//! The Python↔Rust boundary every signal crosses: the API's objects bound once (its context
//! variable, types and keys), attribute values converted once, exceptions read into
//! attributes. Below the signals: nothing here knows a span, a log record or a metric.

pub(crate) mod api;
pub(crate) mod exception;
pub(crate) mod gil_cell;
pub(crate) mod misuse;
pub(crate) mod plugins;
pub(crate) mod process;
pub(crate) mod shapes;
pub(crate) mod value;
pub(crate) mod with_statement;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(api::_bind_api, m)?)?;
    m.add_function(wrap_pyfunction!(misuse::api_misuse_counts, m)?)?;
    m.add_function(wrap_pyfunction!(exception::error_type, m)?)?;
    Ok(())
}
