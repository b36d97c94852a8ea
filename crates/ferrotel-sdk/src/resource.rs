//! The resource: who produces the telemetry.
//!
//! Built from detectors run in order, later ones winning, as upstream's SDK builds it:
//! `OTEL_EXPERIMENTAL_RESOURCE_DETECTORS` names them (`service_instance` first unless named,
//! `otel` — the environment — last unless placed, `*` for every installed one); unset, ferrotel
//! runs upstream's defaults plus its process, os and host detectors. `process.command_args` and
//! `process.command_line` may carry secrets: only the `process_command_args` detector adds them.
//! The process facts come from the embedding layer (the interpreter knows its executable and
//! arguments).

use std::sync::Mutex;

use ferrotel_config::Config;

use crate::value::{Attributes, Value};

/// The detectors ferrotel runs itself, by upstream's entry-point names.
pub const NATIVE_DETECTORS: &[&str] = &[
    "service_instance",
    "process",
    "os",
    "host",
    "otel",
    COMMAND_ARGS_DETECTOR,
];
/// Adds the command line to the resource; asked for by name only (`*` leaves it out).
pub const COMMAND_ARGS_DETECTOR: &str = "process_command_args";
/// Without `OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`: upstream's defaults (`service_instance`,
/// `otel`) with ferrotel's process, os and host facts between them.
const DEFAULT_DETECTORS: &[&str] = &["service_instance", "process", "os", "host", "otel"];

/// The detectors to run, in order, for the names configured; `installed` lists the
/// `opentelemetry_resource_detector` entry points and is read only for `*`.
pub fn detector_names(configured: Option<&[String]>, installed: impl FnOnce() -> Vec<String>) -> Vec<String> {
    let Some(configured) = configured else {
        return DEFAULT_DETECTORS.iter().map(|d| d.to_string()).collect();
    };
    let mut names: Vec<String> = Vec::new();
    let first = (!configured.iter().any(|n| n == "service_instance")).then(|| "service_instance".to_string());
    for name in first
        .into_iter()
        .chain(configured.iter().cloned())
        .chain(["otel".to_string()])
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if let Some(star) = names.iter().position(|n| n == "*") {
        let mut expansion: Vec<String> = NATIVE_DETECTORS
            .iter()
            .map(|n| n.to_string())
            .chain(installed())
            .filter(|n| n != "otel" && n != COMMAND_ARGS_DETECTOR && !names.contains(n))
            .collect();
        expansion.sort();
        expansion.dedup();
        names.splice(star..=star, expansion);
    }
    names
}

/// This process's `service.instance.id`: a random UUID v4, made anew in a forked child.
pub fn instance_id() -> String {
    static ID: Mutex<Option<(u32, String)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut id = crate::sync::lock(&ID);
    match id.as_ref() {
        Some((owner, uuid)) if *owner == pid => uuid.clone(),
        _ => {
            let uuid = uuid_v4(crate::ids::new_trace_id());
            *id = Some((pid, uuid.clone()));
            uuid
        }
    }
}

fn uuid_v4(random: u128) -> String {
    let bits = (random & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// What the process detector reports; filled in by the PyO3 layer.
#[derive(Debug, Clone, Default)]
pub struct ProcessFacts {
    pub pid: u32,
    pub parent_pid: u32,
    pub instance_id: String,
    pub executable: String,
    /// `sys.orig_argv`: the interpreter's own command line.
    pub command_args: Vec<String>,
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_description: String,
    /// `telemetry.auto.version`, when ferrotel instrumented the process at start-up.
    pub auto_version: Option<String>,
    /// The detectors to run, in order (see [`detector_names`]).
    pub detectors: Vec<String>,
    /// What each detector of another package (entry point) found, by its name.
    pub detected: Vec<(String, Vec<(String, Value)>)>,
}

impl ProcessFacts {
    /// In a forked child: its own pid, parent and instance id, as upstream refreshes its
    /// process-dependent detectors.
    pub fn after_fork(&mut self, pid: u32) {
        self.parent_pid = self.pid;
        self.pid = pid;
        self.instance_id = instance_id();
    }
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
        let text = |s: &str| Value::Str(s.to_owned());
        for detector in &process.detectors {
            match detector.as_str() {
                "service_instance" => set("service.instance.id", text(&process.instance_id)),
                "process" => {
                    set("process.pid", Value::Int(process.pid.into()));
                    set("process.parent_pid", Value::Int(process.parent_pid.into()));
                    let name = process.executable.rsplit('/').next().unwrap_or_default();
                    set("process.executable.name", text(name));
                    set("process.executable.path", text(&process.executable));
                    let command = process.command_args.first().map_or("", String::as_str);
                    set("process.command", text(command));
                    set("process.runtime.name", text(&process.runtime_name));
                    set("process.runtime.version", text(&process.runtime_version));
                    set("process.runtime.description", text(&process.runtime_description));
                }
                COMMAND_ARGS_DETECTOR => {
                    set("process.command_line", text(&process.command_args.join(" ")));
                    set("process.command_args", Value::StrArray(process.command_args.clone()));
                }
                "os" => {
                    set("os.type", text(os_type()));
                    if let Some(release) = os_release() {
                        set("os.version", Value::Str(release));
                    }
                }
                "host" => {
                    if let Some(host) = host_name() {
                        set("host.name", Value::Str(host));
                    }
                    set("host.arch", text(std::env::consts::ARCH));
                    if let Some(id) = host_id() {
                        set("host.id", Value::Str(id));
                    }
                }
                "otel" => {
                    for (k, v) in &config.resource_attributes {
                        set(k, Value::Str(v.clone()));
                    }
                    // The configuration file's typed attributes, after the plain ones it may
                    // also list.
                    for (k, v) in &config.resource_typed_attributes {
                        set(k, typed(v));
                    }
                    set("service.name", Value::Str(config.service_name.clone()));
                }
                other => {
                    let found = process.detected.iter().filter(|(name, _)| name == other);
                    for (k, v) in found.flat_map(|(_, attributes)| attributes) {
                        set(k, v.clone());
                    }
                }
            }
        }
        if attrs.get("service.name").is_none() {
            attrs.set(
                "service.name".into(),
                Value::Str(config.service_name.clone()),
                UNLIMITED,
                None,
            );
        }
        if let Some(version) = &process.auto_version {
            attrs.set(
                "telemetry.auto.version".into(),
                Value::Str(version.clone()),
                UNLIMITED,
                None,
            );
        }
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

/// The kernel release, as Python's `platform.release()` reports it on Linux.
fn os_release() -> Option<String> {
    first_line("/proc/sys/kernel/osrelease")
}

/// The machine id (systemd's, or D-Bus's where systemd has none), as upstream reads it.
fn host_id() -> Option<String> {
    first_line("/etc/machine-id").or_else(|| first_line("/var/lib/dbus/machine-id"))
}

fn first_line(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
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

    fn facts(configured: &[&str]) -> ProcessFacts {
        let configured: Vec<String> = configured.iter().map(|d| d.to_string()).collect();
        ProcessFacts {
            pid: 42,
            executable: "/usr/bin/python3".into(),
            command_args: vec!["python3".into(), "app.py".into(), "--token=secret".into()],
            instance_id: instance_id(),
            detectors: detector_names(Some(&configured).filter(|c| !c.is_empty()).map(Vec::as_slice), || {
                vec!["vendor".into(), "process".into()]
            }),
            detected: vec![("vendor".into(), vec![("vendor.zone".into(), Value::Str("z".into()))])],
            ..Default::default()
        }
    }

    fn keys(r: &Resource) -> Vec<&str> {
        let mut keys: Vec<&str> = r.attributes.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn service_name_wins_and_sdk_attributes_are_present() {
        let r = Resource::from_config(
            &config(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=a,team=x%20y")]),
            &facts(&[]),
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
            &facts(&[]),
        );
        assert_eq!(r.attributes.get("service.name"), Some(&Value::Str("b".into())));
        let r = Resource::from_config(&config(&[]), &facts(&[]));
        assert_eq!(
            r.attributes.get("service.name"),
            Some(&Value::Str("unknown_service:python".into()))
        );
    }

    #[test]
    fn detector_names_read_as_upstream_reads_them() {
        let names = |configured: &[&str]| facts(configured).detectors;
        assert_eq!(names(&[]), ["service_instance", "process", "os", "host", "otel"]);
        assert_eq!(names(&["os"]), ["service_instance", "os", "otel"]);
        assert_eq!(
            names(&["otel", "os", "service_instance"]),
            ["otel", "os", "service_instance"]
        );
        // `*`: every installed detector not named, sorted, where it stands; never the
        // command line.
        assert_eq!(
            names(&["otel", "*"]),
            ["service_instance", "otel", "host", "os", "process", "vendor"]
        );
        assert_eq!(names(&["host", "host"]), ["service_instance", "host", "otel"]);
    }

    #[test]
    fn the_command_line_only_when_asked_for() {
        let default = Resource::from_config(&config(&[]), &facts(&[]));
        assert_eq!(
            keys(&default),
            [
                "host.arch",
                "host.id",
                "host.name",
                "os.type",
                "os.version",
                "process.command",
                "process.executable.name",
                "process.executable.path",
                "process.parent_pid",
                "process.pid",
                "process.runtime.description",
                "process.runtime.name",
                "process.runtime.version",
                "service.instance.id",
                "service.name",
                "telemetry.sdk.language",
                "telemetry.sdk.name",
                "telemetry.sdk.version",
            ]
        );
        assert_eq!(
            default.attributes.get("process.command"),
            Some(&Value::Str("python3".into()))
        );
        let star = Resource::from_config(&config(&[]), &facts(&["*"]));
        assert!(star.attributes.get("process.command_args").is_none());
        assert_eq!(star.attributes.get("vendor.zone"), Some(&Value::Str("z".into())));
        let asked = Resource::from_config(&config(&[]), &facts(&["process", "process_command_args"]));
        assert_eq!(
            asked.attributes.get("process.command_line"),
            Some(&Value::Str("python3 app.py --token=secret".into()))
        );
        assert!(asked.attributes.get("process.command_args").is_some());
    }

    #[test]
    fn upstream_defaults_alone_and_the_environment_last() {
        let r = Resource::from_config(
            &config(&[("OTEL_RESOURCE_ATTRIBUTES", "host.name=mine")]),
            &facts(&["host"]),
        );
        assert_eq!(r.attributes.get("host.name"), Some(&Value::Str("mine".into())));
        assert!(r.attributes.get("process.pid").is_none());
        let r = Resource::from_config(
            &config(&[("OTEL_RESOURCE_ATTRIBUTES", "host.name=mine")]),
            &facts(&["otel", "host"]),
        );
        assert_ne!(r.attributes.get("host.name"), Some(&Value::Str("mine".into())));
    }

    #[test]
    fn one_instance_id_per_process_as_a_uuid_v4() {
        let id = instance_id();
        assert_eq!(id, instance_id());
        let bytes = id.as_bytes();
        assert_eq!((id.len(), bytes[8], bytes[13], bytes[14]), (36, b'-', b'-', b'4'));
        assert!(matches!(bytes[19], b'8' | b'9' | b'a' | b'b'), "{id}");
        let mut forked = facts(&[]);
        forked.after_fork(43);
        assert_eq!((forked.pid, forked.parent_pid), (43, 42));
    }
}
