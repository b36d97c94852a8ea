//! What the resource is made of, read from the interpreter: the process facts, and what
//! the resource detectors of other packages named in `OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`
//! find (entry points of `opentelemetry_resource_detector`; run once per process).

use std::sync::Mutex;

use ferrotel_config::{Config, LogLevel};
use ferrotel_sdk::resource::{self, ProcessFacts};
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use pyo3::prelude::*;

use super::plugins;
use super::value::to_value;
use crate::runtime::diagnostics::emit;
use crate::runtime::startup::is_initialized;

/// What the entry-point detectors found, and the names they were run for.
struct Detected {
    names: Vec<String>,
    attributes: Vec<(String, Vec<(String, Value)>)>,
}

static DETECTED: Mutex<Option<Detected>> = Mutex::new(None);

/// The facts the resource of a provider configured by `config` is made of.
pub(crate) fn resource_facts(py: Python<'_>, config: &Config) -> PyResult<ProcessFacts> {
    let sys = py.import("sys")?;
    let version = py.version_info();
    let detectors = resource::detector_names(config.resource_detectors.as_deref(), || installed_detectors(py));
    // `orig_argv` (3.10+) keeps `python -m module` as it was typed, as upstream reads it.
    let command_args = sys
        .getattr("orig_argv")
        .or_else(|_| sys.getattr("argv"))?
        .extract()
        .unwrap_or_default();
    Ok(ProcessFacts {
        pid: std::process::id(),
        parent_pid: std::os::unix::process::parent_id(),
        instance_id: resource::instance_id(),
        executable: sys.getattr("executable")?.extract().unwrap_or_default(),
        command_args,
        runtime_name: sys.getattr("implementation")?.getattr("name")?.extract()?,
        runtime_version: format!("{}.{}.{}", version.major, version.minor, version.patch),
        runtime_description: sys.getattr("version")?.extract()?,
        auto_version: is_initialized().then(|| env!("CARGO_PKG_VERSION").to_owned()),
        detected: detected(py, &detectors),
        detectors,
    })
}

/// The names of the installed `opentelemetry_resource_detector` entry points (for `*`).
fn installed_detectors(py: Python<'_>) -> Vec<String> {
    py.import("ferrotel._plugins")
        .and_then(|plugins| plugins.call_method1("names", (GROUP,)))
        .and_then(|names| names.extract())
        .unwrap_or_default()
}

const GROUP: &str = "opentelemetry_resource_detector";

fn detected(py: Python<'_>, names: &[String]) -> Vec<(String, Vec<(String, Value)>)> {
    let plugin_names: Vec<String> = names
        .iter()
        .filter(|n| !resource::NATIVE_DETECTORS.contains(&n.as_str()))
        .cloned()
        .collect();
    if plugin_names.is_empty() {
        return Vec::new();
    }
    if let Some(detected) = lock(&DETECTED).as_ref() {
        if detected.names == plugin_names {
            return detected.attributes.clone();
        }
    }
    let mut found = Vec::new();
    for name in &plugin_names {
        let Some(detector) = plugins::make(py, "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", GROUP, name) else {
            continue;
        };
        match detector
            .call_method0("detect")
            .and_then(|resource| resource.getattr("attributes"))
            .and_then(|attributes| attributes.call_method0("items"))
            .and_then(|items| items.try_iter().map(|i| i.flatten().collect::<Vec<_>>()))
        {
            Ok(items) => {
                let attributes = items
                    .iter()
                    .filter_map(|item| item.extract::<(String, Bound<'_, PyAny>)>().ok())
                    .filter_map(|(key, value)| Some((key, to_value(&value)?)))
                    .collect();
                found.push((name.clone(), attributes));
            }
            Err(error) => emit(
                py,
                LogLevel::Warning,
                &format!("resource detector {name} failed and was skipped: {error}"),
            ),
        }
    }
    *lock(&DETECTED) = Some(Detected {
        names: plugin_names,
        attributes: found.clone(),
    });
    found
}
