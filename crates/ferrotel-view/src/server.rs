//! Start-up: the options, the three listeners bound before anything else (so a port in use
//! is reported by name), the `--db` file reloaded, the banner printed, then serving until
//! Ctrl-C on a small tokio runtime.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use axum::Router;

use crate::archive::Archive;
use crate::auth::{self, Access};
use crate::conn::WatchedListener;
use crate::intake;
use crate::journal::{self, Journal};
use crate::logs::LogStore;
use crate::metrics::MetricStore;
use crate::query;
use crate::store::Store;
use crate::ui;
use crate::viewer::Viewer;

pub struct Options {
    pub listen: IpAddr,
    pub grpc_port: u16,
    pub http_port: u16,
    pub ui_port: u16,
    pub max_spans: usize,
    pub max_logs: usize,
    pub max_points_per_series: usize,
    /// Bytes all stores together may hold (`--max-memory`), shared as `MemoryShares` says.
    pub max_memory_bytes: usize,
    pub max_body_bytes: usize,
    /// Connections on which nothing moves this long are closed.
    pub idle_timeout: Duration,
    pub token: Option<String>,
    /// Host names besides the listen address that requests may use (reverse proxies).
    pub allowed_hosts: Vec<String>,
    pub db: Option<PathBuf>,
}

/// How `--max-memory` is shared: spans take most; logs and metric points an eighth each;
/// archived traces (Jaeger's archive call) a tenth of the spans' share.
struct MemoryShares {
    spans: usize,
    archive: usize,
    logs: usize,
    metrics: usize,
}

impl MemoryShares {
    fn of(total: usize) -> Self {
        let traces = total / 4 * 3;
        MemoryShares {
            spans: traces - traces / 10,
            archive: traces / 10,
            logs: total / 8,
            metrics: total / 8,
        }
    }
}

/// `--max-memory` values: bytes, or a number with K, M, G (powers of 1024; `KiB`, `MB`... too).
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 512M, 2G, 1000000)"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?} in {text:?} (use K, M or G)")),
    };
    let bytes = number * scale as f64;
    if bytes < 1.0 || bytes > usize::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as usize)
}

/// A byte count for people: "1.0 GiB", "300 MiB".
fn human_bytes(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b.div_ceil(1024)),
    }
}

/// A `--db` file keeps this many metric points: a hundred series at full depth.
const DB_SERIES_AT_FULL_DEPTH: usize = 100;

/// Opens the `--db` file and binds every port up front, so a file in use or a port taken is
/// reported by name before anything is served; then serves until Ctrl-C.
pub fn run(options: Options) -> Result<(), String> {
    if !options.listen.is_loopback() && options.token.is_none() {
        return Err(format!(
            "listening on {} exposes your telemetry to the network; pass --token SECRET \
             (clients then send `Authorization: Bearer SECRET`)",
            options.listen
        ));
    }
    let access = Access::new(options.token.clone(), options.listen, &options.allowed_hosts)?;
    // The --db file first: a file another viewer holds is refused before any port is taken.
    let (journal, restored) = match &options.db {
        Some(path) => {
            let caps = journal::Caps {
                spans: options.max_spans as u64,
                metric_points: (options.max_points_per_series * DB_SERIES_AT_FULL_DEPTH) as u64,
                log_records: options.max_logs as u64,
            };
            let (journal, restored) = Journal::open(path, caps)?;
            (Some(journal), restored.batches)
        }
        None => (None, Vec::new()),
    };
    let bind = |port: u16, flag: &str| {
        TcpListener::bind(SocketAddr::new(options.listen, port)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                format!(
                    "port {port} on {} is already in use; choose another with {flag} PORT",
                    options.listen
                )
            } else {
                format!("cannot listen on {}:{port} ({flag}): {e}", options.listen)
            }
        })
    };
    let grpc_listener = bind(options.grpc_port, "--grpc")?;
    let otlp_listener = bind(options.http_port, "--http")?;
    let ui_listener = bind(options.ui_port, "--ui")?;
    let shares = MemoryShares::of(options.max_memory_bytes);
    let viewer = Arc::new(Viewer::new(
        Store::new(options.max_spans, shares.spans),
        Archive::new(shares.archive),
        LogStore::new(options.max_logs, shares.logs),
        MetricStore::new(options.max_points_per_series, shares.metrics),
        journal,
        options.max_body_bytes,
        access,
    ));
    let unreadable = viewer.restore(restored);
    print_instructions(&options, &grpc_listener, &otlp_listener, &ui_listener);
    if let Some(path) = &options.db {
        println!(
            "Restored from {}: {} spans, {} log records, {} metric series{}",
            path.display(),
            viewer.store().span_count(),
            viewer.logs().len(),
            viewer.metrics().series_count(),
            if unreadable > 0 {
                format!(" ({unreadable} unreadable requests skipped)")
            } else {
                String::new()
            }
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let idle = options.idle_timeout;
        let grpc = intake::grpc::serve(grpc_listener, viewer.clone(), idle);
        let otlp = serve(otlp_listener, intake::http::routes(viewer.clone()), idle);
        let ui = serve(ui_listener, ui_and_api_routes(viewer), idle);
        tokio::select! {
            result = grpc => result,
            result = otlp => result,
            result = ui => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

/// The UI port: the web UI's files and the query API, behind the same token rules.
fn ui_and_api_routes(viewer: Arc<Viewer>) -> Router {
    ui::routes()
        .merge(query::routes(viewer.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            viewer.clone(),
            auth::require_token_or_cookie,
        ))
        .layer(middleware::from_fn_with_state(viewer.clone(), auth::require_own_host))
        .with_state(viewer)
}

async fn serve(listener: TcpListener, routes: Router, idle: Duration) -> Result<(), String> {
    let listener = WatchedListener::new(listener, idle, false).map_err(|e| e.to_string())?;
    axum::serve(listener, routes).await.map_err(|e| e.to_string())
}

/// The start-up banner: what is kept, where each listener is, and how to point an app at it.
fn print_instructions(options: &Options, grpc: &TcpListener, otlp: &TcpListener, ui: &TcpListener) {
    let address = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let grpc = address(grpc);
    let otlp = address(otlp);
    let ui = address(ui);
    let place = match &options.db {
        Some(path) => format!("in memory and in {}", path.display()),
        None => "in memory".to_owned(),
    };
    println!(
        "ferrotel view: keeping up to {} spans, {} log records and {} points per metric {place}, \
         within {} (--max-memory)",
        options.max_spans,
        options.max_logs,
        options.max_points_per_series,
        human_bytes(options.max_memory_bytes)
    );
    let token_query = if options.token.is_some() { "?token=<token>" } else { "" };
    println!("  web UI:     http://{ui}/{token_query}");
    println!("  query API:  http://{ui}/api/traces?service=NAME");
    println!(
        "  OTLP/HTTP:  http://{otlp}/v1/traces, /v1/metrics, /v1/logs (protobuf or JSON, gzip or deflate accepted)"
    );
    println!("  OTLP/gRPC:  http://{grpc}");
    println!("Point an app at it:");
    println!("  OTEL_EXPORTER_OTLP_ENDPOINT=http://{otlp} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf ferrotel instrument -- python app.py");
    println!("  or: ferrotel instrument --exporter_otlp_endpoint http://{otlp} --exporter_otlp_protocol http/protobuf -- python app.py");
    if options.token.is_some() {
        println!("  and send the token: OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("1000"), Ok(1000));
        assert_eq!(parse_byte_size("512M"), Ok(512 << 20));
        assert_eq!(parse_byte_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_byte_size("2 gb"), Ok(2 << 30));
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("5 parsecs").is_err());
        assert!(parse_byte_size("0").is_err());
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
        assert_eq!(human_bytes(300 << 20), "300 MiB");
    }
}
