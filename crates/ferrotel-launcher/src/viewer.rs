//! `ferrotel instrument --view`: find or start the local viewer and aim the exporter at it.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OTLP_HTTP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4318);
const WEB_UI: &str = "http://127.0.0.1:16686/";

fn listening() -> bool {
    TcpStream::connect_timeout(&OTLP_HTTP, Duration::from_millis(200)).is_ok()
}

/// Starts `ferrotel view` detached (own process group, so the app's Ctrl-C leaves it up and
/// its traces stay queryable after the app ends) unless something already takes OTLP there.
pub(crate) fn ensure_running(exe: &Path) -> Result<String, String> {
    if listening() {
        return Ok(format!(
            "sending traces, metrics and logs to the OTLP receiver on {OTLP_HTTP}; browse {WEB_UI}"
        ));
    }
    let ferrotel = exe.with_file_name("ferrotel");
    let log_path = std::env::temp_dir().join("ferrotel-view.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("cannot write {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(&ferrotel)
            .arg("view")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", ferrotel.display()))?
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !listening() {
        if let Ok(Some(status)) = child.try_wait() {
            let output = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("ferrotel view exited ({status}): {}", output.trim()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "ferrotel view did not listen on {OTLP_HTTP} within 5 s; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(format!(
        "started ferrotel view in the background (pid {}, log {}); browse {WEB_UI}; stop it with `kill {}`",
        child.id(),
        log_path.display(),
        child.id()
    ))
}

/// Exporter settings for the viewer, traces, metrics and logs (the app's `logging` records,
/// linked to their spans), except those a flag on this command line already chose (a
/// generic flag counts: a per-signal variable set here would silently override it).
pub(crate) fn point_at_viewer(env: &mut Vec<(String, OsString)>) {
    let settings = [
        (["OTEL_TRACES_EXPORTER", "OTEL_TRACES_EXPORTER"], "otlp"),
        (
            ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
            "http://127.0.0.1:4318/v1/traces",
        ),
        (
            ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"],
            "http/protobuf",
        ),
        (["OTEL_METRICS_EXPORTER", "OTEL_METRICS_EXPORTER"], "otlp"),
        (
            ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"],
            "http://127.0.0.1:4318/v1/metrics",
        ),
        (
            ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"],
            "http/protobuf",
        ),
        (["OTEL_LOGS_EXPORTER", "OTEL_LOGS_EXPORTER"], "otlp"),
        (
            ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"],
            "http://127.0.0.1:4318/v1/logs",
        ),
        (
            ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"],
            "http/protobuf",
        ),
        (
            [
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED",
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED",
            ],
            "true",
        ),
    ];
    for (names, value) in settings {
        if !env.iter().any(|(set, _)| names.contains(&set.as_str())) {
            env.push((names[1].to_owned(), value.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_given_on_the_command_line_win() {
        let mut env = vec![(
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            OsString::from("http://collector:4318"),
        )];
        point_at_viewer(&mut env);
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_TRACES_EXPORTER",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_METRICS_EXPORTER",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
                "OTEL_LOGS_EXPORTER",
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"
            ]
        );
    }
}
