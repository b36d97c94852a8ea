//! Settings as the Python side reads them: the environment (with a caller's overrides) parsed
//! into the typed [`Config`], and the few values the glue asks for by name.

use std::collections::HashMap;

use ferrotel_config::Config;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Reads the config: the environment, with `overrides` (variable name -> value) winning.
pub(crate) fn config_with(overrides: Option<&Bound<'_, PyDict>>) -> PyResult<ferrotel_config::Parsed> {
    let overrides: HashMap<String, String> = match overrides {
        Some(d) => d.extract()?,
        None => HashMap::new(),
    };
    let env = ferrotel_config::parse::environment();
    Ok(Config::from_lookup(|name| {
        overrides.get(name).or_else(|| env.get(name)).cloned()
    }))
}

/// `[(flag, variable)]` for every variable ferrotel knows, as `ferrotel instrument` names them.
#[pyfunction]
pub(crate) fn variables() -> Vec<(String, &'static str)> {
    ferrotel_config::vars::all().map(|v| (v.flag(), v.name)).collect()
}

/// `(OTEL_PYTHON_LOG_CORRELATION, OTEL_PYTHON_LOG_FORMAT or None, OTEL_PYTHON_LOG_LEVEL,
/// service.name)` for the logging instrumentation.
#[pyfunction]
pub(crate) fn logging_settings() -> (bool, Option<String>, &'static str, String) {
    let config = Config::from_env().config;
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
pub(crate) fn excluded_urls(framework: &str) -> Vec<String> {
    let python = Config::from_env().config.python;
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
pub(crate) fn django_instrument() -> bool {
    Config::from_env().config.python.django_instrument
}

/// `OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS`: the Django request attributes to record.
#[pyfunction]
pub(crate) fn django_traced_request_attrs() -> Vec<String> {
    Config::from_env().config.python.django_traced_request_attrs
}

/// `FERROTEL_ASGI_MESSAGE_EVENTS` (default false).
#[pyfunction]
pub(crate) fn asgi_message_events() -> bool {
    Config::from_env().config.python.asgi_message_events
}

/// Which `logging` handler goes on the root logger, as upstream 0.66b1 decides:
/// `("configurator", True, 0)` with the deprecated
/// `OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true` (the SDK-style handler: attached
/// at start-up, `code.*` always, every level), else `("instrumentation", code attributes,
/// level)` when OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION (default true) lets the logging
/// instrumentation attach it (OTEL_PYTHON_LOG_CODE_ATTRIBUTES, OTEL_PYTHON_LOG_HANDLER_LEVEL);
/// `None` without a logs exporter, with the SDK disabled, or when switched off.
#[pyfunction]
pub(crate) fn logging_handler() -> Option<(&'static str, bool, i32)> {
    logging_handler_of(&Config::from_env().config)
}

fn logging_handler_of(config: &Config) -> Option<(&'static str, bool, i32)> {
    if config.logs_exporters.is_empty() || config.sdk_disabled {
        return None;
    }
    let python = &config.python;
    if python.logging_auto_instrumentation {
        Some(("configurator", true, 0))
    } else if python.log_auto_instrumentation {
        Some(("instrumentation", python.log_code_attributes, python.log_handler_level))
    } else {
        None
    }
}

/// What the configurator does at start-up, from one read of the environment: `(prometheus,
/// deprecated logging handler)`. With prometheus in `OTEL_METRICS_EXPORTER` (and the SDK not
/// disabled) it opens the scrape endpoint then, as upstream's does, rather than when the app
/// first imports the Metrics API; with the deprecated handler (see `logging_handler`) it
/// attaches that once `logging` is imported.
#[pyfunction]
pub(crate) fn configurator_actions() -> (bool, bool) {
    let config = Config::from_env().config;
    let prometheus = config
        .metrics_exporters
        .contains(&ferrotel_config::Exporter::Prometheus)
        && !config.sdk_disabled;
    let deprecated_handler = logging_handler_of(&config).is_some_and(|(kind, ..)| kind == "configurator");
    (prometheus, deprecated_handler)
}

/// The library requirements of ferrotel's built-in instrumentation `name`, as the loader
/// checks them (none for the standard library's). Alternatives (psycopg2 from either of its
/// distributions) are none that must all hold, as upstream's `instruments-any` reports them.
#[pyfunction]
pub(crate) fn builtin_requirements(name: &str) -> Vec<&'static str> {
    ferrotel_loader::builtin_requirement(name)
        .filter(|spec| !spec.contains(" | "))
        .into_iter()
        .collect()
}
