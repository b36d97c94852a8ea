//! `ferrotel`: dispatches to the subcommands; each lives in its own crate.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

const USAGE: &str = "\
ferrotel — zero-code OpenTelemetry for Python, with a Rust core

Usage: ferrotel <COMMAND> [ARGS]...

Commands:
  instrument  Run a Python command with OpenTelemetry (ferrotel instrument --help)
  bootstrap   Show which instrumentations an environment needs; install missing contrib ones
  view        Receive OTLP traces locally and query them, Jaeger-style (ferrotel view --help)
  config      Check a declarative configuration file: ferrotel config check FILE

Options:
  -h, --help     Print help
  -V, --version  Print version
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let code = match args.next().as_deref().and_then(|a| a.to_str()) {
        Some("instrument") => ferrotel_launcher::run("ferrotel instrument", args),
        Some("bootstrap") => bootstrap(args),
        Some("view") => view(args),
        Some("config") => config(args),
        Some("-V" | "--version") => {
            println!("ferrotel {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("-h" | "--help") | None => {
            print!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("ferrotel: error: unknown command {other:?}\n\n{USAGE}");
            2
        }
    };
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Parses a subcommand's arguments; on `--help` or a usage error, prints and returns the exit code.
fn parse(command: Command, args: impl Iterator<Item = OsString>) -> Result<ArgMatches, i32> {
    let name = OsString::from(command.get_name());
    command
        .try_get_matches_from(std::iter::once(name).chain(args))
        .map_err(|e| {
            let _ = e.print();
            if e.use_stderr() {
                2
            } else {
                0
            }
        })
}

fn help_arg() -> Arg {
    Arg::new("help")
        .short('h')
        .long("help")
        .action(ArgAction::Help)
        .help("Print help")
}

fn view_command() -> Command {
    let port = |name: &'static str, default: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .value_name("PORT")
            .default_value(default)
            .value_parser(clap::value_parser!(u16))
            .help(help)
    };
    Command::new("ferrotel view")
        .about(
            "A local OTLP receiver for traces, metrics and logs with a web UI and a Jaeger-compatible query API; \
             no Docker needed",
        )
        .arg(port("grpc", "4317", "OTLP/gRPC receiver port"))
        .arg(port(
            "http",
            "4318",
            "OTLP/HTTP receiver port (POST /v1/traces, protobuf or JSON)",
        ))
        .arg(port(
            "ui",
            "16686",
            "Web UI and query API port (/, /api/traces, /api/services, ...)",
        ))
        .arg(
            Arg::new("db")
                .long("db")
                .value_name("PATH")
                .value_parser(clap::value_parser!(std::path::PathBuf))
                .help("Also keep everything in this SQLite file (created if missing) and reload it at start"),
        )
        .arg(
            Arg::new("max-spans")
                .long("max-spans")
                .value_name("N")
                .default_value("250000")
                .value_parser(clap::value_parser!(u64).range(1..))
                .help(
                    "Spans kept in memory (an HTTP server span with a dozen attributes takes about 2.3 KB; \
                     --max-memory bounds the bytes too); the oldest are evicted first",
                ),
        )
        .arg(
            Arg::new("max-memory")
                .long("max-memory")
                .value_name("SIZE")
                .default_value("1G")
                .value_parser(ferrotel_view::parse_byte_size)
                .help(
                    "Memory the stored telemetry may take, whatever the counts (512M, 2G...): spans up to \
                     3/4, log records and metric points 1/8 each; the oldest are evicted first",
                ),
        )
        .arg(
            Arg::new("max-logs")
                .long("max-logs")
                .value_name("N")
                .default_value("100000")
                .value_parser(clap::value_parser!(u64).range(1..))
                .help("Log records kept in memory; the oldest are evicted first"),
        )
        .arg(
            Arg::new("max-points")
                .long("max-points")
                .value_name("N")
                .default_value("1000")
                .value_parser(clap::value_parser!(u64).range(1..))
                .help("Data points kept per metric series (service + name); the oldest are evicted first"),
        )
        .arg(
            Arg::new("max-body")
                .long("max-body")
                .value_name("BYTES")
                .default_value("16777216")
                .value_parser(clap::value_parser!(u64).range(1..))
                .help("Largest OTLP request accepted, before and after gzip decompression"),
        )
        .arg(
            Arg::new("idle-timeout")
                .long("idle-timeout")
                .value_name("SECONDS")
                .default_value("60")
                .value_parser(clap::value_parser!(u64).range(1..))
                .help(
                    "Close a connection on which nothing moves for this long (a client gone without \
                     closing, a request that never finishes); gRPC clients are pinged so live ones stay",
                ),
        )
        .arg(
            Arg::new("listen")
                .long("listen")
                .value_name("ADDRESS")
                .default_value("127.0.0.1")
                .value_parser(clap::value_parser!(std::net::IpAddr))
                .help("Address to bind; anything but loopback requires --token"),
        )
        .arg(
            Arg::new("token")
                .long("token")
                .value_name("SECRET")
                .help("Require `Authorization: Bearer SECRET` on every request"),
        )
        .arg(
            Arg::new("allow-host")
                .long("allow-host")
                .value_name("NAME")
                .action(ArgAction::Append)
                .value_delimiter(',')
                .help(
                    "Also answer requests whose Host or Origin is NAME (a reverse proxy's name); by default \
                     only the listen address (and localhost on loopback) is accepted, so other web pages \
                     cannot read the viewer",
                ),
        )
        .arg(help_arg())
        .disable_help_flag(true)
}

fn view(args: impl Iterator<Item = OsString>) -> i32 {
    let matches = match parse(view_command(), args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let count =
        |name: &str| usize::try_from(*matches.get_one::<u64>(name).expect("has a default")).unwrap_or(usize::MAX);
    let options = ferrotel_view::Options {
        listen: *matches.get_one("listen").expect("has a default"),
        grpc_port: *matches.get_one("grpc").expect("has a default"),
        http_port: *matches.get_one("http").expect("has a default"),
        ui_port: *matches.get_one("ui").expect("has a default"),
        max_spans: count("max-spans"),
        max_logs: count("max-logs"),
        max_points_per_series: count("max-points"),
        max_body_bytes: count("max-body"),
        max_memory_bytes: *matches.get_one::<usize>("max-memory").expect("has a default"),
        idle_timeout: std::time::Duration::from_secs(*matches.get_one::<u64>("idle-timeout").expect("has a default")),
        token: matches.get_one::<String>("token").cloned(),
        allowed_hosts: matches
            .get_many::<String>("allow-host")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        db: matches.get_one("db").cloned(),
    };
    match ferrotel_view::run(options) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ferrotel view: error: {e}");
            1
        }
    }
}

fn config_command() -> Command {
    Command::new("ferrotel config")
        .about("Declarative configuration files (OTEL_CONFIG_FILE)")
        .subcommand_required(true)
        .subcommand(
            Command::new("check")
                .about(
                    "Validate FILE as ferrotel reads it at start-up (${...} substituted from this \
                     environment); print each problem with its line and key; exit 1 if it is not valid",
                )
                .arg(
                    Arg::new("file")
                        .value_name("FILE")
                        .required(true)
                        .value_parser(clap::value_parser!(String)),
                ),
        )
}

fn config(args: impl Iterator<Item = OsString>) -> i32 {
    let matches = match parse(config_command(), args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let Some(("check", check)) = matches.subcommand() else {
        return 2;
    };
    let file = check.get_one::<String>("file").expect("required");
    match ferrotel_config::file::load(file, &|name| std::env::var(name).ok()) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("ferrotel config: warning: {file}: {warning}");
            }
            println!("{file}: valid");
            0
        }
        Err(e) => {
            eprintln!("ferrotel config: error: {e}");
            1
        }
    }
}

fn bootstrap_command() -> Command {
    Command::new("ferrotel bootstrap")
        .about(
            "Inspect a Python environment: libraries found, which ferrotel built-in instrumentations \
                activate for them, and which need an upstream contrib package",
        )
        .arg(
            Arg::new("python")
                .long("python")
                .value_name("PATH")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Interpreter of the target environment [default: python on PATH]"),
        )
        .arg(
            Arg::new("action")
                .short('a')
                .long("action")
                .value_parser(["requirements", "install"])
                .help(
                    "requirements: print the contrib packages to install; install: install them \
                       in one installer call (pip, or uv for uv environments) without upgrading anything",
                ),
        )
        .arg(help_arg())
        .disable_help_flag(true)
}

fn bootstrap(args: impl Iterator<Item = OsString>) -> i32 {
    let matches = match parse(bootstrap_command(), args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let python = matches
        .get_one::<PathBuf>("python")
        .cloned()
        .unwrap_or_else(|| PathBuf::from("python"));
    let target = match ferrotel_bootstrap::Target::inspect(&python) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ferrotel bootstrap: error: {e}");
            return 1;
        }
    };
    let report = ferrotel_bootstrap::Report::for_target(&target);
    match matches.get_one::<String>("action").map(String::as_str) {
        Some("requirements") => {
            for package in report.missing_contrib() {
                println!("{package}");
            }
            0
        }
        Some(_) => match ferrotel_bootstrap::install(&target, &report) {
            Ok(installed) if installed.is_empty() => {
                println!("ferrotel bootstrap: nothing to install");
                0
            }
            Ok(installed) => {
                println!("ferrotel bootstrap: installed {}", installed.join(", "));
                0
            }
            Err(e) => {
                eprintln!("ferrotel bootstrap: error: {e}");
                1
            }
        },
        None => {
            print!("{}", report.render(&target));
            0
        }
    }
}
