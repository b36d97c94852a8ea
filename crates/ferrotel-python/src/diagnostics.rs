//! ferrotel's own messages to the user, filtered by `OTEL_LOG_LEVEL`.
//!
//! Written to Python's `sys.stderr` (so redirections and captures see them) with a
//! `ferrotel:` prefix; never through `logging`, which would cost start-up time and could
//! loop back into an instrumented logger.

use std::sync::atomic::{AtomicU8, Ordering};

use ferrotel_config::LogLevel;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

pub fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

fn enabled(level: LogLevel) -> bool {
    level != LogLevel::None && level as u8 >= LEVEL.load(Ordering::Relaxed)
}

fn label(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warning => "warning",
        LogLevel::Error | LogLevel::None => "error",
    }
}

/// Writes one message if its level is enabled.
pub fn emit(py: Python<'_>, level: LogLevel, message: &str) {
    if !enabled(level) {
        return;
    }
    let line = format!("ferrotel: {}: {message}\n", label(level));
    let written = py
        .import("sys")
        .and_then(|sys| sys.getattr("stderr"))
        .and_then(|stderr| stderr.call_method1("write", (line.as_str(),)));
    if written.is_err() {
        eprint!("{line}");
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
pub fn log(py: Python<'_>, level: &str, message: &str) -> PyResult<()> {
    emit(py, parse_level(level)?, message);
    Ok(())
}

/// Whether messages of `level` are shown; lets the glue skip building costly ones.
#[pyfunction]
pub fn log_enabled(level: &str) -> PyResult<bool> {
    Ok(enabled(parse_level(level)?))
}
