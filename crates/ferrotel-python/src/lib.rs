//! `ferrotel._native`: the one Python extension module.
//!
//! It owns process-wide state (whether this process is initialised, the diagnostics level)
//! and converts between Rust plans and the few Python objects the glue needs. Policy lives
//! in the pure-Rust crates; this crate must stay a thin boundary that never panics into the
//! interpreter.

mod calls;
mod diagnostics;
mod logs;
pub(crate) mod metrics;
mod propagation;
mod signal;
mod startup;
mod trace;

use pyo3::prelude::*;

/// Span data is allocated on application threads and freed on the export thread; glibc's
/// malloc makes those cross-thread frees contend with the app (measured: 3.7 -> 1.8 µs per
/// span while the console exporter runs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `[(flag, variable)]` for every variable ferrotel knows, as `ferrotel instrument` names them.
#[pyfunction]
fn variables() -> Vec<(String, &'static str)> {
    ferrotel_config::vars::all().map(|v| (v.flag(), v.name)).collect()
}

/// `(OTEL_PYTHON_LOG_CORRELATION, OTEL_PYTHON_LOG_FORMAT or None, OTEL_PYTHON_LOG_LEVEL,
/// service.name)` for the logging instrumentation.
#[pyfunction]
fn logging_settings() -> (bool, Option<String>, &'static str, String) {
    let config = ferrotel_config::Config::from_env().config;
    let python = config.python;
    (
        python.log_correlation,
        python.log_format,
        python.log_level,
        config.service_name,
    )
}

/// URL patterns `framework`'s instrumentation skips: `OTEL_PYTHON_{FRAMEWORK}_EXCLUDED_URLS`
/// when set, else `OTEL_PYTHON_EXCLUDED_URLS`.
#[pyfunction]
fn excluded_urls(framework: &str) -> Vec<String> {
    let python = ferrotel_config::Config::from_env().config.python;
    let framework = framework.to_ascii_lowercase();
    match python
        .excluded_urls_by_framework
        .into_iter()
        .find(|(fw, _)| *fw == framework)
    {
        Some((_, patterns)) => patterns,
        None => python.excluded_urls,
    }
}

/// `OTEL_PYTHON_DJANGO_INSTRUMENT` (default true).
#[pyfunction]
fn django_instrument() -> bool {
    ferrotel_config::Config::from_env().config.python.django_instrument
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(startup::initialize, m)?)?;
    m.add_function(wrap_pyfunction!(variables, m)?)?;
    m.add_function(wrap_pyfunction!(logging_settings, m)?)?;
    m.add_function(wrap_pyfunction!(excluded_urls, m)?)?;
    m.add_function(wrap_pyfunction!(django_instrument, m)?)?;
    m.add_function(wrap_pyfunction!(startup::is_initialized, m)?)?;
    m.add_function(wrap_pyfunction!(diagnostics::log, m)?)?;
    m.add_function(wrap_pyfunction!(diagnostics::log_enabled, m)?)?;
    trace::register(m)?;
    logs::register(m)?;
    metrics::register(m)?;
    m.add_class::<propagation::Propagator>()?;
    m.add_class::<calls::ServerRequest>()?;
    m.add_function(wrap_pyfunction!(calls::start_wsgi_request, m)?)?;
    m.add_function(wrap_pyfunction!(calls::start_asgi_request, m)?)?;
    m.add_class::<calls::ClientRequest>()?;
    m.add_function(wrap_pyfunction!(calls::start_client_request, m)?)?;
    m.add_class::<calls::DbCall>()?;
    m.add_function(wrap_pyfunction!(calls::start_db_call, m)?)?;
    Ok(())
}
