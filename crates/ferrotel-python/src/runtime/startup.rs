//! Process start-up: read the configuration, scan the installed distributions and hand the
//! loader's plan to the Python glue. Runs at most once per process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ferrotel_config::{Config, LogLevel};
use ferrotel_distributions::{normalize, EntryPoint, Environment, MarkerEnv};
use ferrotel_loader::cache::{self, PlanCache};
use ferrotel_loader::{Plan, Trigger};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::diagnostics::{emit, set_level};
use ferrotel_sdk::diagnostics::enabled;

/// Set once this process has initialised. A forked child inherits it, so it does not start
/// over; a freshly spawned interpreter starts with it unset.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

#[pyfunction]
pub(crate) fn is_initialized() -> bool {
    INITIALIZED.load(Ordering::Acquire)
}

/// The marker values of the running interpreter, from `sys` only (importing `platform`
/// would cost start-up time).
fn marker_env(py: Python<'_>) -> PyResult<MarkerEnv> {
    let sys = py.import("sys")?;
    let version = py.version_info();
    let sys_platform: String = sys.getattr("platform")?.extract()?;
    let implementation: String = sys.getattr("implementation")?.getattr("name")?.extract()?;
    let platform_system = match sys_platform.as_str() {
        p if p.starts_with("linux") => "Linux",
        "darwin" => "Darwin",
        "win32" | "cygwin" => "Windows",
        p if p.starts_with("freebsd") => "FreeBSD",
        _ => "",
    };
    Ok(MarkerEnv {
        python_version: format!("{}.{}", version.major, version.minor),
        python_full_version: format!("{}.{}.{}", version.major, version.minor, version.patch),
        implementation_version: format!("{}.{}.{}", version.major, version.minor, version.patch),
        platform_python_implementation: if implementation == "cpython" {
            "CPython".into()
        } else {
            implementation.clone()
        },
        implementation_name: implementation,
        platform_system: platform_system.to_string(),
        platform_machine: std::env::consts::ARCH.to_string(),
        os_name: if cfg!(windows) { "nt".into() } else { "posix".into() },
        sys_platform,
        ..MarkerEnv::default()
    })
}

fn entry_point<'py>(py: Python<'py>, ep: &EntryPoint) -> PyResult<Bound<'py, PyAny>> {
    Ok((
        ep.name.as_str(),
        ep.module.as_str(),
        ep.attr.as_deref(),
        normalize(&ep.distribution),
    )
        .into_pyobject(py)?
        .into_any())
}

fn optional_entry_point<'py>(py: Python<'py>, ep: &Option<EntryPoint>) -> PyResult<Bound<'py, PyAny>> {
    match ep {
        Some(ep) => entry_point(py, ep),
        None => Ok(py.None().into_bound(py)),
    }
}

fn entry_points<'py>(py: Python<'py>, eps: &[EntryPoint]) -> PyResult<Bound<'py, PyList>> {
    let items = eps.iter().map(|ep| entry_point(py, ep)).collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// The plan as plain Python data:
/// `{"gevent_patch": bool, "distro": ep|None, "configurator": ep|None, "pre_instrument": [ep],
///   "instrumentors": [(ep, [module, ...] | None)], "post_instrument": [ep],
///   "replaced": [(contrib ep, built-in ep)]}`
/// where `ep` is `(name, module, attr|None, distribution)` and `None` modules mean "at start".
fn plan_to_python<'py>(py: Python<'py>, plan: &Plan, gevent_patch: bool) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("gevent_patch", gevent_patch)?;
    dict.set_item("distro", optional_entry_point(py, &plan.distro)?)?;
    dict.set_item("configurator", optional_entry_point(py, &plan.configurator)?)?;
    dict.set_item("pre_instrument", entry_points(py, &plan.pre_instrument)?)?;
    dict.set_item("post_instrument", entry_points(py, &plan.post_instrument)?)?;
    let instrumentors = PyList::empty(py);
    for planned in &plan.instrumentors {
        let modules = match &planned.trigger {
            Trigger::AtStart => None,
            Trigger::OnImport(modules) => Some(modules.clone()),
        };
        instrumentors.append((entry_point(py, &planned.entry_point)?, modules))?;
    }
    dict.set_item("instrumentors", instrumentors)?;
    let replaced = plan
        .replaced_by_builtins()
        .map(|(contrib, builtin)| Ok((entry_point(py, contrib)?, entry_point(py, builtin)?)))
        .collect::<PyResult<Vec<_>>>()?;
    dict.set_item("replaced", PyList::new(py, replaced)?)?;
    Ok(dict)
}

/// Where this process's plan came from, for the debug listing.
enum PlanSource<'a> {
    /// Made from this many distributions' metadata.
    Scan(usize),
    /// Read from this file.
    Cache(&'a std::path::Path),
}

/// Must read as `_describe` in `_loader.py` does, so debug listings are consistent.
fn describe(ep: &EntryPoint) -> String {
    format!("'{}' ({})", ep.name, normalize(&ep.distribution))
}

/// Initialises this process: returns the loader plan, or `None` when this process was
/// already initialised or `OTEL_SDK_DISABLED` is true.
#[pyfunction]
pub(crate) fn initialize<'py>(py: Python<'py>, sys_path: Vec<String>) -> PyResult<Option<Bound<'py, PyDict>>> {
    if INITIALIZED.swap(true, Ordering::AcqRel) {
        return Ok(None);
    }
    let started = Instant::now();
    let parsed = Config::from_env();
    set_level(parsed.config.log_level);
    for warning in &parsed.warnings {
        emit(py, LogLevel::Warning, &warning.to_string());
    }
    let pid = std::process::id();
    if parsed.config.sdk_disabled {
        emit(
            py,
            LogLevel::Debug,
            &format!("OTEL_SDK_DISABLED=true: nothing installed in pid {pid}"),
        );
        return Ok(None);
    }
    let markers = marker_env(py)?;
    // Stat'ed before any scan: a change during the scan leaves a stale key, not a stale plan.
    let cache = cache::default_dir().map(|dir| {
        PlanCache::new(
            &dir,
            env!("CARGO_PKG_VERSION"),
            &parsed.config.python,
            &markers,
            &sys_path,
        )
    });
    let (plan, source) = match cache.as_ref().and_then(|cache| Some((cache.load()?, cache.path()))) {
        Some((plan, file)) => (plan, PlanSource::Cache(file)),
        None => {
            let environment = Environment::scan(&sys_path);
            let plan = ferrotel_loader::plan(&parsed.config.python, &environment, &markers);
            if let Some(cache) = &cache {
                cache.store(&plan, &environment);
            }
            (plan, PlanSource::Scan(environment.distributions().len()))
        }
    };
    for warning in &plan.warnings {
        emit(py, LogLevel::Warning, warning);
    }
    // The plan is described only when asked for: formatting it costs start-up time.
    if enabled(LogLevel::Debug) {
        emit(
            py,
            LogLevel::Debug,
            &format!(
                "initialising pid {pid}: {}, in {:.2} ms",
                match source {
                    PlanSource::Scan(count) => format!("{count} distributions scanned, plan made"),
                    PlanSource::Cache(file) => format!("plan read from {}", file.display()),
                },
                started.elapsed().as_secs_f64() * 1e3
            ),
        );
        for (role, ep) in [("distro", &plan.distro), ("configurator", &plan.configurator)] {
            let text = ep.as_ref().map_or_else(|| "none installed".to_string(), describe);
            emit(py, LogLevel::Debug, &format!("{role}: {text}"));
        }
        for planned in &plan.instrumentors {
            let when = match &planned.trigger {
                Trigger::AtStart => "activates at start".to_string(),
                Trigger::OnImport(modules) => format!("waits for import of {}", modules.join(" or ")),
            };
            emit(
                py,
                LogLevel::Debug,
                &format!("instrumentor {} {when}", describe(&planned.entry_point)),
            );
        }
        for (ep, reason) in &plan.skipped {
            emit(
                py,
                LogLevel::Debug,
                &format!("instrumentor {} skipped: {reason}", describe(ep)),
            );
        }
    }
    Ok(Some(plan_to_python(py, &plan, parsed.config.python.gevent_patch)?))
}
