//! `ferrotel instrument [FLAGS] [--] CMD [ARGS...]`.
//!
//! Turns each flag into its `OTEL_*` variable, puts ferrotel's `sitecustomize` directory at
//! the front of `PYTHONPATH` and replaces itself with CMD (`execvp`), so no launcher process
//! stays around and every Python process CMD starts inherits the set-up. It owns argument
//! handling and the exec; what happens inside Python is the loader's business.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

mod viewer;

use clap::{Arg, ArgAction, Command};
use ferrotel_config::vars::{self, Kind};

/// Where `ferrotel instrument` failed before the command could start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("command not found: {0}")]
    NotFound(String),
    #[error("cannot run {0}: permission denied")]
    PermissionDenied(String),
    #[error("cannot run {0}: {1}")]
    Exec(String, std::io::Error),
    #[error("cannot find ferrotel's sitecustomize next to {0}; reinstall ferrotel (pip install ferrotel)")]
    NoSitecustomize(String),
}

impl LaunchError {
    /// The shell's conventions: 127 not found, 126 found but not runnable.
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::NotFound(_) => 127,
            LaunchError::PermissionDenied(_) | LaunchError::Exec(..) => 126,
            LaunchError::NoSitecustomize(_) => 1,
        }
    }
}

/// What the command line asked for, before anything is executed.
#[derive(Debug, PartialEq, Eq)]
pub struct Launch {
    /// `(variable, value)` for every flag given.
    pub env: Vec<(String, OsString)>,
    pub command: OsString,
    pub args: Vec<OsString>,
    /// `--view`: send to a local `ferrotel view`, starting one if none is listening.
    pub view: bool,
}

fn kind_hint(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "BOOL",
        Kind::Count => "N",
        Kind::Millis => "MS",
        Kind::Seconds => "SECONDS",
        Kind::Ratio => "RATIO",
        Kind::List => "LIST",
        Kind::KeyValues => "K=V,...",
        Kind::Url => "URL",
        Kind::Path => "PATH",
        Kind::Text | Kind::Choice(_) => "VALUE",
    }
}

/// The clap command for `prog` (`ferrotel instrument` or `ferrotel-instrument`).
pub fn command(prog: &'static str) -> Command {
    let mut cmd = Command::new(prog)
        .about("Run a Python command with OpenTelemetry: every flag sets the OTEL_* variable it is named after")
        .override_usage(format!("{prog} [FLAGS] [--] COMMAND [ARGS]..."))
        .after_help(
            "Each flag is an OpenTelemetry environment variable without its OTEL_ (or OTEL_PYTHON_) prefix, \
             lower-cased; a flag overrides the variable for COMMAND and every process it starts.",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::Version)
                .help("Print version"),
        )
        .arg(Arg::new("view").long("view").action(ArgAction::SetTrue).help(
            "Send traces to a local `ferrotel view` (OTLP/HTTP on 127.0.0.1:4318, API on :16686), \
                     starting one in the background if nothing listens there; explicit flags still win",
        ))
        .arg(
            Arg::new("command")
                .value_name("COMMAND")
                .help("The program to run, e.g. python app.py, gunicorn app:app, flask run")
                .required(true)
                .num_args(1..)
                .trailing_var_arg(true)
                .value_parser(clap::value_parser!(OsString)),
        );
    for (heading, group) in vars::groups() {
        for var in group {
            let mut help = format!("{} [{}", var.help, var.name);
            if !var.default.is_empty() {
                help.push_str(&format!(", default {}", var.default));
            }
            if let Kind::Choice(options) = var.kind {
                help.push_str(&format!(", one of {}", options.join("|")));
            }
            help.push(']');
            if let Some(why) = var.not_used {
                help.push_str(&format!(" (passed on, not read by ferrotel: {why})"));
            }
            cmd = cmd.arg(
                Arg::new(var.name)
                    .long(var.flag())
                    .value_name(kind_hint(var.kind))
                    .help(help)
                    .help_heading(heading)
                    .action(ArgAction::Set)
                    .value_parser(clap::value_parser!(OsString)),
            );
        }
    }
    cmd
}

/// Parses `argv` (without the program name). Errors are clap's, with usage.
pub fn parse(prog: &'static str, argv: impl IntoIterator<Item = OsString>) -> Result<Launch, clap::Error> {
    let matches = command(prog).try_get_matches_from(std::iter::once(OsString::from(prog)).chain(argv))?;
    let env = vars::all()
        .filter_map(|var| {
            matches
                .get_one::<OsString>(var.name)
                .map(|v| (var.name.to_string(), v.clone()))
        })
        .collect();
    let mut words = matches.get_many::<OsString>("command").into_iter().flatten().cloned();
    let command = words.next().unwrap_or_default();
    Ok(Launch {
        env,
        command,
        args: words.collect(),
        view: matches.get_flag("view"),
    })
}

/// The `PYTHONPATH` for the child: `dir` first, any earlier occurrence of it removed, the
/// rest kept in order.
pub fn python_path(dir: &Path, existing: Option<&OsStr>) -> OsString {
    let mut parts: Vec<PathBuf> = vec![dir.to_path_buf()];
    if let Some(existing) = existing {
        parts.extend(std::env::split_paths(existing).filter(|p| p != dir && !p.as_os_str().is_empty()));
    }
    std::env::join_paths(parts).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

/// Finds `ferrotel/_auto` in the Python installation this executable belongs to
/// (`<prefix>/bin/ferrotel` next to `<prefix>/lib/pythonX.Y/site-packages/ferrotel`).
pub fn sitecustomize_dir(exe: &Path) -> Option<PathBuf> {
    let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    let prefix = exe.parent()?.parent()?;
    let mut candidates = vec![prefix.join("Lib/site-packages")];
    for lib in ["lib", "lib64"] {
        if let Ok(entries) = std::fs::read_dir(prefix.join(lib)) {
            let mut pythons: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
                .map(|e| e.path().join("site-packages"))
                .collect();
            pythons.sort();
            candidates.extend(pythons);
        }
    }
    candidates
        .into_iter()
        .map(|site| site.join("ferrotel").join("_auto"))
        .find(|dir| dir.join("sitecustomize.py").is_file())
}

/// Replaces this process with the command. Returns only on failure.
#[cfg(unix)]
pub fn exec(launch: Launch, sitecustomize: &Path) -> LaunchError {
    use std::os::unix::process::CommandExt;

    let mut child = std::process::Command::new(&launch.command);
    child.args(&launch.args);
    child.envs(launch.env.iter().map(|(k, v)| (k, v)));
    child.env(
        "PYTHONPATH",
        python_path(sitecustomize, std::env::var_os("PYTHONPATH").as_deref()),
    );
    let error = child.exec();
    let shown = launch.command.to_string_lossy().into_owned();
    match error.kind() {
        std::io::ErrorKind::NotFound => LaunchError::NotFound(shown),
        std::io::ErrorKind::PermissionDenied => LaunchError::PermissionDenied(shown),
        _ => LaunchError::Exec(shown, error),
    }
}

/// Entry for both executables: parses, execs, and on failure prints one line and returns
/// the exit code.
#[cfg(unix)]
pub fn run(prog: &'static str, argv: impl IntoIterator<Item = OsString>) -> i32 {
    let launch = match parse(prog, argv) {
        Ok(launch) => launch,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return code;
        }
    };
    let exe = std::env::current_exe().unwrap_or_default();
    let mut launch = launch;
    if launch.view {
        // The app runs either way: a viewer that cannot start is reported, not fatal.
        match viewer::ensure_running(&exe) {
            Ok(note) => {
                eprintln!("{prog}: {note}");
                viewer::point_at_viewer(&mut launch.env);
            }
            Err(error) => eprintln!("{prog}: warning: not sending to ferrotel view: {error}"),
        }
    }
    let error = match sitecustomize_dir(&exe) {
        Some(dir) => exec(launch, &dir),
        None => LaunchError::NoSitecustomize(exe.display().to_string()),
    };
    eprintln!("{prog}: error: {error}");
    error.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn flags_become_variables_and_the_rest_is_the_command() {
        let launch = parse(
            "ferrotel instrument",
            os(&[
                "--service_name",
                "svc",
                "--traces_exporter=console,otlp",
                "python",
                "app.py",
                "--port",
                "5",
            ]),
        )
        .unwrap();
        assert_eq!(
            launch.env,
            vec![
                ("OTEL_SERVICE_NAME".to_string(), OsString::from("svc")),
                ("OTEL_TRACES_EXPORTER".to_string(), OsString::from("console,otlp"))
            ]
        );
        assert_eq!(launch.command, "python");
        assert_eq!(launch.args, os(&["app.py", "--port", "5"]));
    }

    #[test]
    fn double_dash_separates_flags_from_the_command() {
        let launch = parse(
            "ferrotel instrument",
            os(&["--disabled_instrumentations", "flask", "--", "flask", "run"]),
        )
        .unwrap();
        assert_eq!(
            launch.env,
            vec![(
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS".to_string(),
                OsString::from("flask")
            )]
        );
        assert_eq!(launch.command, "flask");
        assert_eq!(launch.args, os(&["run"]));
    }

    #[test]
    fn a_command_is_required_and_unknown_flags_are_errors() {
        assert!(parse("ferrotel instrument", os(&["--service_name", "x"])).is_err());
        let err = parse("ferrotel instrument", os(&["--servce_name", "x", "python"])).unwrap_err();
        assert!(err.to_string().contains("--servce_name"), "{err}");
    }

    #[test]
    fn every_variable_has_a_flag() {
        let cmd = command("ferrotel instrument");
        for var in vars::all() {
            let arg = cmd.get_arguments().find(|a| a.get_id() == var.name).unwrap();
            assert_eq!(arg.get_long(), Some(var.flag().as_str()));
        }
    }

    #[test]
    fn python_path_puts_ours_first_once() {
        let ours = Path::new("/site/ferrotel/_auto");
        assert_eq!(python_path(ours, None), OsString::from("/site/ferrotel/_auto"));
        assert_eq!(
            python_path(ours, Some(OsStr::new("/a:/site/ferrotel/_auto::/b"))),
            OsString::from("/site/ferrotel/_auto:/a:/b")
        );
    }
}
