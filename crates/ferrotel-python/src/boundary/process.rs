//! What the resource is made of, read from the interpreter: the process facts, and what
//! the resource detectors of other packages named in `OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`
//! find (entry points of `opentelemetry_resource_detector`; run once per process).

use std::sync::Mutex;

use ferrotel_config::{Config, LogLevel};
use ferrotel_sdk::resource::ProcessFacts;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use pyo3::prelude::*;

use super::plugins;
use super::value::to_value;
use crate::runtime::diagnostics::emit;

/// The detectors ferrotel runs itself (see `ferrotel_sdk::resource`).
const NATIVE_DETECTORS: &[&str] = &["otel", "process", "os", "host", "all"];

/// What the entry-point detectors found, and the names they were run for.
struct Detected {
    names: Vec<String>,
    attributes: Vec<(String, Value)>,
}

static DETECTED: Mutex<Option<Detected>> = Mutex::new(None);

/// The facts the resource of a provider configured by `config` is made of.
pub(crate) fn resource_facts(py: Python<'_>, config: &Config) -> PyResult<ProcessFacts> {
    let sys = py.import("sys")?;
    let version = py.version_info();
    Ok(ProcessFacts {
        pid: std::process::id(),
        executable: sys.getattr("executable")?.extract().unwrap_or_default(),
        command_args: sys.getattr("argv")?.extract().unwrap_or_default(),
        runtime_name: sys.getattr("implementation")?.getattr("name")?.extract()?,
        runtime_version: format!("{}.{}.{}", version.major, version.minor, version.patch),
        runtime_description: sys.getattr("version")?.extract()?,
        detected: detected(py, &config.resource_detectors),
    })
}

fn detected(py: Python<'_>, names: &[String]) -> Vec<(String, Value)> {
    let plugin_names: Vec<String> = names
        .iter()
        .filter(|n| !NATIVE_DETECTORS.contains(&n.as_str()))
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
        let Some(detector) = plugins::make(
            py,
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS",
            "opentelemetry_resource_detector",
            name,
        ) else {
            continue;
        };
        match detector
            .call_method0("detect")
            .and_then(|resource| resource.getattr("attributes"))
            .and_then(|attributes| attributes.call_method0("items"))
            .and_then(|items| items.try_iter().map(|i| i.flatten().collect::<Vec<_>>()))
        {
            Ok(items) => {
                for item in items {
                    if let Ok((key, value)) = item.extract::<(String, Bound<'_, PyAny>)>() {
                        if let Some(value) = to_value(&value) {
                            found.push((key, value));
                        }
                    }
                }
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
