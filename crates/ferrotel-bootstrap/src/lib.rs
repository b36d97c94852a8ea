//! `ferrotel bootstrap`: inventory a target Python environment and install the upstream
//! contrib instrumentations ferrotel does not cover natively.
//!
//! Installing never upgrades what the user has: every installed distribution is pinned in a
//! constraints file, and the installer's resolver picks contrib versions that exist and fit
//! (upstream pins one exact version, which fails whenever that release is missing).

mod catalog;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use ferrotel_distributions::{Environment, Requirement};

pub use catalog::{Coverage, CATALOG, UPSTREAM_DEFAULTS};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot run {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("{0} could not be inspected: {1}")]
    Inspect(String, String),
    #[error("{0} has neither pip nor uv to install with")]
    NoInstaller(String),
    #[error("cannot write the constraints file {0}: {1}")]
    Constraints(String, std::io::Error),
    #[error("the installer failed ({0})")]
    InstallFailed(String),
    #[error("{0}")]
    Unmatched(String),
}

/// How packages get into the target environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    Pip,
    /// `uv pip install --python ...`, for environments uv created.
    Uv(PathBuf),
}

/// A target interpreter and what is installed for it.
#[derive(Debug)]
pub struct Target {
    pub python: PathBuf,
    pub version: String,
    pub prefix: PathBuf,
    pub environment: Environment,
}

const INSPECT: &str = "import sys\n\
print('version', '%d.%d.%d' % sys.version_info[:3])\n\
print('prefix', sys.prefix)\n\
for p in sys.path: print('path', p)\n";

impl Target {
    /// Asks `python` for its version and import path, then reads the metadata found there.
    pub fn inspect(python: &Path) -> Result<Target, BootstrapError> {
        let shown = python.display().to_string();
        let output = Command::new(python)
            .args(["-c", INSPECT])
            // Inspection must not start ferrotel if the caller runs under `ferrotel instrument`.
            .env("OTEL_SDK_DISABLED", "true")
            .output()
            .map_err(|e| BootstrapError::Spawn(shown.clone(), e))?;
        if !output.status.success() {
            return Err(BootstrapError::Inspect(
                shown,
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let (mut version, mut prefix, mut paths) = (String::new(), PathBuf::new(), Vec::new());
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("version", v)) => version = v.to_string(),
                Some(("prefix", p)) => prefix = PathBuf::from(p),
                Some(("path", p)) if !p.is_empty() => paths.push(PathBuf::from(p)),
                _ => {}
            }
        }
        Ok(Target {
            python: python.to_path_buf(),
            version,
            prefix,
            environment: Environment::scan(&paths),
        })
    }

    /// uv when the environment is uv's and uv is on PATH; otherwise pip when installed.
    pub fn installer(&self) -> Result<Installer, BootstrapError> {
        let made_by_uv = std::fs::read_to_string(self.prefix.join("pyvenv.cfg"))
            .is_ok_and(|cfg| cfg.lines().any(|l| l.trim_start().starts_with("uv =")));
        let uv = find_on_path("uv");
        match (made_by_uv, uv, self.environment.get("pip").is_some()) {
            (true, Some(uv), _) => Ok(Installer::Uv(uv)),
            (_, _, true) => Ok(Installer::Pip),
            (_, Some(uv), false) => Ok(Installer::Uv(uv)),
            _ => Err(BootstrapError::NoInstaller(self.python.display().to_string())),
        }
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// One catalog row that applies to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `name version`, or `standard library`.
    pub library: String,
    pub coverage: Coverage,
    /// The contrib package is already installed.
    pub installed: bool,
}

/// What the target needs.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Installed libraries with a catalog entry whose version no instrumentation supports.
    pub unsupported: Vec<String>,
}

impl Report {
    pub fn for_target(target: &Target) -> Report {
        let env = &target.environment;
        let mut report = Report::default();
        for entry in CATALOG {
            let library = match entry.library {
                None => "standard library".to_string(),
                Some(spec) => {
                    let Ok(req) = Requirement::parse(spec) else {
                        continue;
                    };
                    let Some(dist) = env.get(&req.name) else {
                        continue;
                    };
                    let found = format!("{} {}", dist.name, dist.version);
                    if !req.is_satisfied_by(&dist.version) {
                        if !report.unsupported.contains(&found) {
                            report
                                .unsupported
                                .push(format!("{found} (instrumentations support {spec})"));
                        }
                        continue;
                    }
                    found
                }
            };
            let installed = match entry.coverage {
                Coverage::Contrib(package) => env.get(package).is_some(),
                Coverage::BuiltIn(_) => true,
            };
            let finding = Finding {
                library,
                coverage: entry.coverage,
                installed,
            };
            if !report.findings.contains(&finding) {
                report.findings.push(finding);
            }
        }
        report
    }

    /// Contrib packages still to install, each once.
    pub fn missing_contrib(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for finding in &self.findings {
            if let (Coverage::Contrib(package), false) = (finding.coverage, finding.installed) {
                if !out.contains(&package) {
                    out.push(package);
                }
            }
        }
        out
    }

    /// The human-readable inventory.
    pub fn render(&self, target: &Target) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Python {} at {}", target.version, target.python.display());
        let width = self.findings.iter().map(|f| f.library.len()).max().unwrap_or(0);
        let builtin: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| matches!(f.coverage, Coverage::BuiltIn(_)))
            .collect();
        let _ = writeln!(out, "\nferrotel built-in instrumentations that will activate:");
        if builtin.is_empty() {
            let _ = writeln!(out, "  none for the libraries found");
        }
        for f in &builtin {
            if let Coverage::BuiltIn(name) = f.coverage {
                let _ = writeln!(out, "  {:width$}  {name}", f.library);
            }
        }
        let _ = writeln!(out, "\nLibraries only an upstream contrib package covers:");
        for f in &self.findings {
            if let Coverage::Contrib(package) = f.coverage {
                let state = if f.installed { "installed" } else { "missing" };
                let _ = writeln!(out, "  {:width$}  {package} ({state})", f.library);
            }
        }
        let defaults: Vec<String> = UPSTREAM_DEFAULTS
            .iter()
            .map(|name| {
                let package = format!("opentelemetry-instrumentation-{name}");
                let contrib = self
                    .findings
                    .iter()
                    .any(|f| matches!(f.coverage, Coverage::Contrib(p) if p == package));
                format!("{name} ({})", if contrib { "contrib" } else { "built in" })
            })
            .collect();
        let _ = writeln!(out, "\nUpstream's default set: {}", defaults.join(", "));
        if !self.unsupported.is_empty() {
            let _ = writeln!(out, "\nInstalled, but at versions no instrumentation supports:");
            for u in &self.unsupported {
                let _ = writeln!(out, "  {u}");
            }
        }
        let missing = self.missing_contrib();
        let _ = match missing.len() {
            0 => writeln!(out, "\nNothing to install."),
            n => writeln!(
                out,
                "\n{n} contrib package(s) to install: ferrotel bootstrap -a install"
            ),
        };
        out
    }
}

/// `name==version` for every installed distribution whose version is valid PEP 440,
/// OpenTelemetry's own included, so the installer can add packages but change none of the
/// user's: it picks the contrib releases that fit the installed API and instrumentation.
pub fn constraints(env: &Environment) -> String {
    env.distributions()
        .iter()
        .filter(|d| pep440_rs::Version::from_str(&d.version).is_ok())
        .map(|d| format!("{}=={}\n", d.name, d.version))
        .collect()
}

/// The installer invocation for `packages`, constrained by `constraints_file`.
pub fn install_command(target: &Target, installer: &Installer, constraints_file: &Path, packages: &[&str]) -> Command {
    let mut cmd = match installer {
        Installer::Pip => {
            let mut c = Command::new(&target.python);
            c.args(["-m", "pip", "install", "--disable-pip-version-check"]);
            c
        }
        Installer::Uv(uv) => {
            let mut c = Command::new(uv);
            c.args(["pip", "install", "--python"]).arg(&target.python);
            c
        }
    };
    cmd.arg("--constraint").arg(constraints_file).args(packages);
    cmd.env("OTEL_SDK_DISABLED", "true");
    cmd
}

/// Installs what `report` says is missing, in one installer call. Returns the packages.
pub fn install(target: &Target, report: &Report) -> Result<Vec<&'static str>, BootstrapError> {
    let packages = report.missing_contrib();
    if packages.is_empty() {
        return Ok(packages);
    }
    let installer = target.installer()?;
    let path = std::env::temp_dir().join(format!("ferrotel-bootstrap-constraints-{}.txt", std::process::id()));
    std::fs::write(&path, constraints(&target.environment))
        .map_err(|e| BootstrapError::Constraints(path.display().to_string(), e))?;
    let mut cmd = install_command(target, &installer, &path, &packages);
    eprintln!("ferrotel bootstrap: running {}", describe(&cmd));
    let status = cmd.status();
    let result = match status {
        Ok(s) if s.success() => Ok(packages),
        Ok(s) => Err(unmatched(target, &installer, &path, &packages)
            .unwrap_or_else(|| BootstrapError::InstallFailed(s.to_string()))),
        Err(e) => Err(BootstrapError::Spawn(describe(&cmd), e)),
    };
    let _ = std::fs::remove_file(&path);
    result
}

/// After a failed install: which packages no release fits without changing an installed
/// distribution, each with the installer's reason (a dry run per package).
fn unmatched(
    target: &Target,
    installer: &Installer,
    constraints_file: &Path,
    packages: &[&str],
) -> Option<BootstrapError> {
    let mut lines = Vec::new();
    for package in packages {
        let mut cmd = install_command(target, installer, constraints_file, &[package]);
        cmd.arg("--dry-run");
        let output = cmd.output().ok()?;
        if output.status.success() {
            continue;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("ERROR: Cannot install") && !l.starts_with("To fix"))
            .take(4)
            .collect();
        lines.push(format!(
            "{package} cannot be matched to what is installed (no release of it fits without changing an installed distribution): {}",
            reason.join(" / ")
        ));
    }
    (!lines.is_empty()).then(|| BootstrapError::Unmatched(lines.join("\n")))
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
