//! The loader's plan: from the typed configuration and the installed distributions' metadata,
//! decide which distro, configurator, pre/post hooks and instrumentors to load, and when
//! each instrumentor activates (at start, or when its target library is first imported).
//!
//! It only decides; importing and calling entry points is the Python glue's job
//! (`ferrotel/_loader.py`). Nothing here imports or runs Python, so the whole policy —
//! upstream's entry-point groups, `OTEL_PYTHON_DISTRO` / `OTEL_PYTHON_CONFIGURATOR`, the
//! disable and enable lists, dependency checks — is unit-tested in Rust.

use std::fmt;

pub mod cache;

use ferrotel_config::PythonConfig;
use ferrotel_distributions::{EntryPoint, Environment, MarkerEnv, Requirement};

pub const DISTRO_GROUP: &str = "opentelemetry_distro";
pub const CONFIGURATOR_GROUP: &str = "opentelemetry_configurator";
pub const INSTRUMENTOR_GROUP: &str = "opentelemetry_instrumentor";
pub const PRE_INSTRUMENT_GROUP: &str = "opentelemetry_pre_instrument";
pub const POST_INSTRUMENT_GROUP: &str = "opentelemetry_post_instrument";

/// The distribution whose entry points win when no variable names another.
pub const FERROTEL_DISTRIBUTION: &str = "ferrotel";

/// Instrumentors of standard-library modules declare no requirement to key on; these are
/// the modules they patch, so they too wait for their import.
const STDLIB_TARGETS: &[(&str, &[&str])] = &[
    ("asyncio", &["asyncio"]),
    ("logging", &["logging"]),
    ("sqlite3", &["sqlite3"]),
    ("threading", &["threading"]),
    ("urllib", &["urllib.request"]),
];

/// ferrotel's built-in instrumentations live in one distribution, so their target library is
/// declared here per entry point instead of through the distribution's `instruments` extra.
const BUILTIN_TARGETS: &[(&str, &str)] = &[
    // Trace configs, `web.Application._handle` and the request's raw headers: all of 3.x.
    ("aiohttp-client", "aiohttp ~= 3.0"),
    ("aiohttp-server", "aiohttp ~= 3.0"),
    ("asyncpg", "asyncpg >= 0.12.0"),
    ("botocore", "botocore ~= 1.0"),
    ("celery", "celery >= 4.0, < 6.0"),
    ("django", "django >= 2.0"),
    ("fastapi", "fastapi >= 0.92"),
    ("flask", "flask >= 1.0"),
    // grpc's interceptor API (sync and grpc.aio) as upstream's contrib package needs it.
    ("grpc_aio_client", "grpcio >= 1.42.0"),
    ("grpc_aio_server", "grpcio >= 1.42.0"),
    ("grpc_client", "grpcio >= 1.42.0"),
    ("grpc_server", "grpcio >= 1.42.0"),
    // Transports take a Request object from 0.20 on.
    ("httpx", "httpx >= 0.20.0"),
    ("httpx2", "httpx2 >= 2.0.0"),
    ("psycopg", "psycopg >= 3.1.0"),
    // The same module from either distribution.
    ("psycopg2", "psycopg2 >= 2.7.3.1 | psycopg2-binary >= 2.7.3.1"),
    // Pipelines as classes of their own from 4.0 (asyncio clients from 4.2 are taken when present).
    ("redis", "redis >= 4.0"),
    ("requests", "requests ~= 2.0"),
    // Engine events and `AsyncEngine` as 1.4 has them, through 2.1 (upstream's contrib stops at 2.0).
    ("sqlalchemy", "sqlalchemy >= 1.4.0, < 2.2.0"),
    ("starlette", "starlette >= 0.13"),
    ("urllib3", "urllib3 >= 1.0.0, < 3.0.0"),
];

/// Built-ins that work without the opentelemetry-api: the log handler and record factory are
/// ferrotel's own, and thread propagation waits for the API to be in use.
const API_FREE_BUILTINS: &[&str] = &["logging", "threading"];

/// The library requirement of ferrotel's built-in instrumentation `name` (its entry-point
/// name), alternatives separated by ` | `; `None` for those of the standard library. The Python instrumentors report this
/// as their `instrumentation_dependencies()`, so the two cannot disagree.
pub fn builtin_requirement(name: &str) -> Option<&'static str> {
    BUILTIN_TARGETS.iter().find(|(n, _)| *n == name).map(|(_, spec)| *spec)
}

/// When an instrumentor activates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// At start-up: nothing to wait for.
    AtStart,
    /// When the first of these modules has been imported (or at once if one already is).
    OnImport(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedInstrumentor {
    pub entry_point: EntryPoint,
    pub trigger: Trigger,
}

/// Why an instrumentor is not loaded; shown by `OTEL_LOG_LEVEL=debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    Disabled,
    NotInEnableList,
    /// Another distribution already provides an instrumentor of this name.
    Duplicate {
        chosen: String,
    },
    /// The target library is not installed.
    Missing {
        requirement: String,
    },
    WrongVersion {
        requirement: String,
        found: String,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Disabled => f.write_str("disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"),
            SkipReason::NotInEnableList => f.write_str("not in OTEL_PYTHON_ENABLED_INSTRUMENTATIONS"),
            SkipReason::Duplicate { chosen } if ferrotel_distributions::normalize(chosen) == FERROTEL_DISTRIBUTION => {
                f.write_str("ferrotel's built-in instrumentation is used instead")
            }
            SkipReason::Duplicate { chosen } => write!(f, "the one from {chosen} is used instead"),
            SkipReason::Missing { requirement } => {
                write!(f, "needs {requirement}, which is not installed")
            }
            SkipReason::WrongVersion { requirement, found } => {
                write!(f, "needs {requirement}, found {found}")
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub distro: Option<EntryPoint>,
    pub configurator: Option<EntryPoint>,
    pub pre_instrument: Vec<EntryPoint>,
    pub instrumentors: Vec<PlannedInstrumentor>,
    pub post_instrument: Vec<EntryPoint>,
    pub skipped: Vec<(EntryPoint, SkipReason)>,
    /// Problems worth a warning (e.g. a variable naming an entry point that does not exist).
    pub warnings: Vec<String>,
}

impl Plan {
    /// Each instrumentor skipped because ferrotel's built-in of the same name is planned,
    /// with that built-in.
    pub fn replaced_by_builtins(&self) -> impl Iterator<Item = (&EntryPoint, &EntryPoint)> {
        self.skipped.iter().filter_map(|(ep, reason)| {
            let SkipReason::Duplicate { .. } = reason else {
                return None;
            };
            self.instrumentors
                .iter()
                .map(|planned| &planned.entry_point)
                .find(|builtin| builtin.name == ep.name && is_ferrotel(builtin))
                .map(|builtin| (ep, builtin))
        })
    }
}

/// Plans the start-up of one process.
pub fn plan(config: &PythonConfig, env: &Environment, markers: &MarkerEnv) -> Plan {
    let mut plan = Plan {
        pre_instrument: env.entry_points(PRE_INSTRUMENT_GROUP),
        post_instrument: env.entry_points(POST_INSTRUMENT_GROUP),
        ..Plan::default()
    };
    // ferrotel's own distro exists only for upstream's launcher; ferrotel's loader needs none.
    plan.distro = choose_one(
        env,
        DISTRO_GROUP,
        config.distro.as_deref(),
        "OTEL_PYTHON_DISTRO",
        &mut plan.warnings,
    )
    .filter(|ep| !is_ferrotel(ep));
    plan.configurator = choose_one(
        env,
        CONFIGURATOR_GROUP,
        config.configurator.as_deref(),
        "OTEL_PYTHON_CONFIGURATOR",
        &mut plan.warnings,
    );

    let disabled = &config.disabled_instrumentations;
    let all_disabled = disabled.iter().any(|d| d == "*");
    let mut unmet_dependency: Option<(SkipReason, Vec<String>)> = None;
    // ferrotel's built-in instrumentations come first, so a contrib package providing the
    // same name is the one skipped, whatever the scan order.
    let mut instrumentors = env.entry_points(INSTRUMENTOR_GROUP);
    instrumentors.sort_by_key(|ep| !is_ferrotel(ep));
    for ep in instrumentors {
        let reason = if all_disabled || disabled.contains(&ep.name) {
            Some(SkipReason::Disabled)
        } else if config
            .enabled_instrumentations
            .as_ref()
            .is_some_and(|e| !e.contains(&ep.name))
        {
            Some(SkipReason::NotInEnableList)
        } else {
            let chosen = plan.instrumentors.iter().find(|p| p.entry_point.name == ep.name);
            chosen.map(|p| SkipReason::Duplicate {
                chosen: p.entry_point.distribution.clone(),
            })
        };
        match reason.map_or_else(|| trigger(&ep, env, markers), Err) {
            Ok(trigger) => match unmet_own_dependency(&ep, env, markers) {
                None => plan.instrumentors.push(PlannedInstrumentor {
                    entry_point: ep,
                    trigger,
                }),
                Some(reason) => {
                    let names = &mut unmet_dependency.get_or_insert_with(|| (reason.clone(), Vec::new())).1;
                    names.push(ep.name.clone());
                    plan.skipped.push((ep, reason));
                }
            },
            Err(reason) => plan.skipped.push((ep, reason)),
        }
    }
    // Only an install that skipped ferrotel's dependencies (`--no-deps`) or downgraded them
    // gets here; the app runs uninstrumented instead of failing inside its own calls.
    if let Some((reason, mut names)) = unmet_dependency {
        names.sort();
        plan.warnings.push(format!(
            "ferrotel's instrumentation of {} is off: it {reason} (ferrotel depends on it; was it \
             installed with --no-deps?)",
            names.join(", ")
        ));
    }
    plan
}

/// For a ferrotel built-in whose library is present: why ferrotel's own dependencies (the
/// opentelemetry-api its instrumentations call) do not hold, if they do not.
fn unmet_own_dependency(ep: &EntryPoint, env: &Environment, markers: &MarkerEnv) -> Option<SkipReason> {
    if !is_ferrotel(ep) || API_FREE_BUILTINS.contains(&ep.name.as_str()) {
        return None;
    }
    let requirements = env.get(&ep.distribution)?.requirements();
    requirements
        .iter()
        .filter(|req| req.applies(markers))
        .find_map(|req| check(req, env).err())
}

/// Picks the entry point named by `wanted`, else ferrotel's own, else the first installed.
fn choose_one(
    env: &Environment,
    group: &str,
    wanted: Option<&str>,
    var: &str,
    warnings: &mut Vec<String>,
) -> Option<EntryPoint> {
    let candidates = env.entry_points(group);
    if let Some(name) = wanted {
        if let Some(ep) = candidates.iter().find(|ep| ep.name == name) {
            return Some(ep.clone());
        }
        let installed: Vec<&str> = candidates.iter().map(|ep| ep.name.as_str()).collect();
        warnings.push(format!(
            "{var}={name:?} names no installed {group} entry point (installed: {}); using the default",
            if installed.is_empty() {
                "none".to_string()
            } else {
                installed.join(", ")
            }
        ));
    }
    let own = candidates.iter().find(|ep| is_ferrotel(ep));
    own.or(candidates.first()).cloned()
}

fn is_ferrotel(ep: &EntryPoint) -> bool {
    ferrotel_distributions::normalize(&ep.distribution) == FERROTEL_DISTRIBUTION
}

/// Checks the instrumentor's declared target libraries (extras `instruments`: all must hold;
/// `instruments-any`: one must) and derives the modules whose import activates it.
fn trigger(ep: &EntryPoint, env: &Environment, markers: &MarkerEnv) -> Result<Trigger, SkipReason> {
    if is_ferrotel(ep) {
        if let Some(spec) = builtin_requirement(&ep.name) {
            // Alternatives (`a | b`): the first installed one activates it.
            let mut first_error = None;
            for alternative in spec.split(" | ") {
                let req = Requirement::parse(alternative).expect("built-in requirements are valid");
                match check(&req, env) {
                    Ok(modules) => return Ok(Trigger::OnImport(modules)),
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
            return Err(first_error.expect("a requirement has at least one alternative"));
        }
    }
    let requirements = env.get(&ep.distribution).map(|d| d.requirements()).unwrap_or_default();
    let of_extra =
        |extra: &str| -> Vec<&Requirement> { requirements.iter().filter(|r| r.is_for_extra(extra, markers)).collect() };
    let (all, any) = (of_extra("instruments"), of_extra("instruments-any"));
    let mut modules = Vec::new();
    for req in &all {
        modules.extend(check(req, env)?);
    }
    if !any.is_empty() {
        let satisfied: Vec<Vec<String>> = any.iter().filter_map(|req| check(req, env).ok()).collect();
        if satisfied.is_empty() {
            return Err(check(any[0], env).expect_err("unsatisfied"));
        }
        modules.extend(satisfied.into_iter().flatten());
    }
    if modules.is_empty() && all.is_empty() && any.is_empty() {
        if let Some((_, targets)) = STDLIB_TARGETS.iter().find(|(name, _)| *name == ep.name) {
            modules = targets.iter().map(|m| m.to_string()).collect();
        }
    }
    modules.dedup();
    Ok(if modules.is_empty() {
        Trigger::AtStart
    } else {
        Trigger::OnImport(modules)
    })
}

/// The top-level modules of the installed library satisfying `req`.
fn check(req: &Requirement, env: &Environment) -> Result<Vec<String>, SkipReason> {
    let Some(lib) = env.get(&req.name) else {
        return Err(SkipReason::Missing {
            requirement: req.to_string(),
        });
    };
    if !req.is_satisfied_by(&lib.version) {
        return Err(SkipReason::WrongVersion {
            requirement: req.to_string(),
            found: format!("{} {}", lib.name, lib.version),
        });
    }
    Ok(lib.top_level_modules())
}

#[cfg(test)]
mod tests;
