//! ferrotel's own messages to the user from threads that hold the interpreter, filtered by
//! `OTEL_LOG_LEVEL` (one level for the process, shared with the export workers'
//! [`ferrotel_sdk::diagnostics`]).
//!
//! Written to Python's `sys.stderr` (so redirections and captures see them) with a
//! `ferrotel:` prefix; never through `logging`, which would cost start-up time and could
//! loop back into an instrumented logger.

use ferrotel_config::LogLevel;
use ferrotel_sdk::diagnostics::{enabled, line};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

pub(crate) use ferrotel_sdk::diagnostics::set_level;

/// Writes one message if its level is enabled.
pub(crate) fn emit(py: Python<'_>, level: LogLevel, message: &str) {
    if !enabled(level) {
        return;
    }
    let line = line(level, message);
    let written = py
        .import("sys")
        .and_then(|sys| sys.getattr("stderr"))
        .and_then(|stderr| stderr.call_method1("write", (line.as_str(),)));
    if written.is_err() {
        ferrotel_sdk::diagnostics::write_stderr(&line);
    }
}

fn parse_level(level: &str) -> PyResult<LogLevel> {
    match level {
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warning" => Ok(LogLevel::Warning),
        "error" => Ok(LogLevel::Error),
        _ => Err(PyValueError::new_err(format!("unknown level {level:?}"))),
    }
}

/// `log(level, message)`: a diagnostic from the Python glue.
#[pyfunction]
pub(crate) fn log(py: Python<'_>, level: &str, message: &str) -> PyResult<()> {
    emit(py, parse_level(level)?, message);
    Ok(())
}

/// Whether messages of `level` are shown; lets the glue skip building costly ones.
#[pyfunction]
pub(crate) fn log_enabled(level: &str) -> PyResult<bool> {
    Ok(enabled(parse_level(level)?))
}
