//! The process runtime every other layer stands on: start-up, diagnostics, settings and the
//! lifecycle (exit and fork) of every provider. Nothing here knows a signal by name.

pub(crate) mod diagnostics;
pub(crate) mod exit;
pub(crate) mod lifecycle;
pub(crate) mod settings;
pub(crate) mod startup;

use pyo3::prelude::*;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(startup::initialize, m)?)?;
    m.add_function(wrap_pyfunction!(startup::is_initialized, m)?)?;
    m.add_function(wrap_pyfunction!(diagnostics::log, m)?)?;
    m.add_function(wrap_pyfunction!(diagnostics::log_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(settings::variables, m)?)?;
    m.add_function(wrap_pyfunction!(settings::logging_settings, m)?)?;
    m.add_function(wrap_pyfunction!(settings::excluded_urls, m)?)?;
    m.add_function(wrap_pyfunction!(settings::django_instrument, m)?)?;
    m.add_function(wrap_pyfunction!(settings::asgi_message_events, m)?)?;
    m.add_function(wrap_pyfunction!(settings::django_traced_request_attrs, m)?)?;
    m.add_function(wrap_pyfunction!(settings::logging_handler, m)?)?;
    m.add_function(wrap_pyfunction!(settings::configurator_actions, m)?)?;
    m.add_function(wrap_pyfunction!(settings::builtin_requirements, m)?)?;
    m.add_function(wrap_pyfunction!(lifecycle::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(exit::_exit_flush, m)?)?;
    m.add_function(wrap_pyfunction!(exit::_arm_sigterm_flush, m)?)?;
    Ok(())
}
