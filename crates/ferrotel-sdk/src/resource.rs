//! The resource: who produces the telemetry.
//!
//! Built from detectors (`OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`), then `OTEL_RESOURCE_ATTRIBUTES`,
//! then `service.name`, later sources winning. The process facts come from the embedding
//! layer (the interpreter knows its executable and arguments).

use ferrotel_config::Config;

use crate::value::{Attributes, Value};

/// What the process detector reports; filled in by the PyO3 layer.
#[derive(Debug, Clone, Default)]
pub struct ProcessFacts {
    pub pid: u32,
    pub executable: String,
    pub command_args: Vec<String>,
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_description: String,
    /// What detectors of other packages (entry points) found, in the order they ran.
    pub detected: Vec<(String, Value)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    pub attributes: Attributes,
    pub schema_url: String,
}

const UNLIMITED: usize = usize::MAX;

impl Resource {
    pub fn from_config(config: &Config, process: &ProcessFacts) -> Resource {
        let mut attrs = Attributes::default();
        let mut set = |k: &str, v: Value| attrs.set(k.to_string(), v, UNLIMITED, None);
        set("telemetry.sdk.language", Value::Str("python".into()));
        set("telemetry.sdk.name", Value::Str("ferrotel".into()));
        set("telemetry.sdk.version", Value::Str(env!("CARGO_PKG_VERSION").into()));
        let detectors = &config.resource_detectors;
        let wants = |name: &str| detectors.iter().any(|d| d == name || d == "all");
        if wants("process") {
            set("process.pid", Value::Int(process.pid as i64));
            set("process.executable.path", Value::Str(process.executable.clone()));
            set("process.command_args", Value::StrArray(process.command_args.clone()));
            set("process.runtime.name", Value::Str(process.runtime_name.clone()));
            set("process.runtime.version", Value::Str(process.runtime_version.clone()));
            set(
                "process.runtime.description",
                Value::Str(process.runtime_description.clone()),
            );
        }
        if wants("os") {
            set("os.type", Value::Str(os_type().into()));
        }
        if wants("host") {
            if let Some(host) = host_name() {
                set("host.name", Value::Str(host));
            }
        }
        for (k, v) in &process.detected {
            set(k, v.clone());
        }
        for (k, v) in &config.resource_attributes {
            set(k, Value::Str(v.clone()));
        }
        // The configuration file's typed attributes, after the plain ones it may also list.
        for (k, v) in &config.resource_typed_attributes {
            set(k, typed(v));
        }
        set("service.name", Value::Str(config.service_name.clone()));
        Resource {
            attributes: attrs,
            schema_url: config.resource_schema_url.clone().unwrap_or_default(),
        }
    }
}

fn typed(value: &ferrotel_config::AttributeValue) -> Value {
    use ferrotel_config::AttributeValue;
    match value {
        AttributeValue::Str(s) => Value::Str(s.clone()),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Int(i) => Value::Int(*i),
        AttributeValue::Double(d) => Value::Double(*d),
        AttributeValue::StrArray(a) => Value::StrArray(a.clone()),
        AttributeValue::BoolArray(a) => Value::BoolArray(a.clone()),
        AttributeValue::IntArray(a) => Value::IntArray(a.clone()),
        AttributeValue::DoubleArray(a) => Value::DoubleArray(a.clone()),
    }
}

fn os_type() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    }
}

fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())).config
    }

    fn facts() -> ProcessFacts {
        ProcessFacts {
            pid: 42,
            executable: "/usr/bin/python3".into(),
            command_args: vec!["app.py".into()],
            ..Default::default()
        }
    }

    #[test]
    fn service_name_wins_and_sdk_attributes_are_present() {
        let r = Resource::from_config(
            &config(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=a,team=x%20y")]),
            &facts(),
        );
        assert_eq!(r.attributes.get("service.name"), Some(&Value::Str("a".into())));
        assert_eq!(r.attributes.get("team"), Some(&Value::Str("x y".into())));
        assert_eq!(
            r.attributes.get("telemetry.sdk.language"),
            Some(&Value::Str("python".into()))
        );
        let r = Resource::from_config(
            &config(&[
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=a"),
                ("OTEL_SERVICE_NAME", "b"),
            ]),
            &facts(),
        );
        assert_eq!(r.attributes.get("service.name"), Some(&Value::Str("b".into())));
        let r = Resource::from_config(&config(&[]), &facts());
        assert_eq!(
            r.attributes.get("service.name"),
            Some(&Value::Str("unknown_service:python".into()))
        );
    }

    #[test]
    fn detectors_can_be_turned_off() {
        let on = Resource::from_config(&config(&[]), &facts());
        assert_eq!(on.attributes.get("process.pid"), Some(&Value::Int(42)));
        assert_eq!(on.attributes.get("os.type"), Some(&Value::Str("linux".into())));
        assert!(on.attributes.get("host.name").is_some());
        let off = Resource::from_config(&config(&[("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "otel")]), &facts());
        assert!(off.attributes.get("process.pid").is_none() && off.attributes.get("host.name").is_none());
    }
}
