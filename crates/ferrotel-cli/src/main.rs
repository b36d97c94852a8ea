//! `ferrotel`: dispatches to the subcommands; each lives in its own crate.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgAction, Command};

const USAGE: &str = "\
ferrotel — zero-code OpenTelemetry for Python, with a Rust core

Usage: ferrotel <COMMAND> [ARGS]...

Commands:
  instrument  Run a Python command with OpenTelemetry (ferrotel instrument --help)
  bootstrap   Show which instrumentations an environment needs; install missing contrib ones

Options:
  -h, --help     Print help
  -V, --version  Print version
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let code = match args.next().as_deref().and_then(|a| a.to_str()) {
        Some("instrument") => ferrotel_launcher::run("ferrotel instrument", args),
        Some("bootstrap") => bootstrap(args),
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
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help)
                .help("Print help"),
        )
        .disable_help_flag(true)
}

fn bootstrap(args: impl Iterator<Item = OsString>) -> i32 {
    let matches = match bootstrap_command()
        .try_get_matches_from(std::iter::once(OsString::from("ferrotel bootstrap")).chain(args))
    {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
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
