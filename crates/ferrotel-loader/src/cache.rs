//! A cache of the start-up plan: a process whose environment has not changed reads one small
//! file instead of every installed distribution's metadata.
//!
//! The plan depends on the metadata directories found on `sys.path`, on the loader's
//! variables, on the interpreter's marker values and on ferrotel's version. Installers add and
//! remove whole `*.dist-info` / `*.egg-info` directories, which moves the containing
//! directory's modification and change times, so the key holds those times (with device and
//! inode) for every `sys.path` entry, besides the path list, the variables, the markers and the
//! version. A file whose key differs, or that does not parse, is ignored and rewritten; a
//! location that cannot be written costs the scan and nothing else. `*.egg-info` directories
//! are the exception to whole-directory replacement (`setup.py develop` and legacy editable
//! installs rewrite their files in place), so the files the plan reads from each are stat'ed
//! too. Editing a wheel's `*.dist-info` in place (which installers do not do) goes unnoticed
//! until the next install or removal in that directory.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferrotel_config::PythonConfig;
use ferrotel_distributions::{EntryPoint, Environment, MarkerEnv};

use crate::{Plan, PlannedInstrumentor, SkipReason, Trigger};

/// Bumped whenever the file's layout or the planning rules change meaning.
const FORMAT: &str = "ferrotel-plan 2";
/// A directory changed this recently may change again within its timestamps' granularity
/// (whole seconds on some file systems) without its times moving, so no plan is stored then.
const SETTLE: Duration = Duration::from_secs(2);
/// Plans of other path lists or variables are kept side by side; past this many files the
/// least recently written are removed when another is written.
const MAX_FILES: usize = 32;
const PREFIX: &str = "plan-";
/// The files of an `*.egg-info` directory the plan may read.
const EGG_INFO_FILES: &[&str] = &[
    "entry_points.txt",
    "requires.txt",
    "PKG-INFO",
    "top_level.txt",
    "RECORD",
];

/// Where plans are kept: `$XDG_CACHE_HOME/ferrotel`, else `~/.cache/ferrotel`. Not inside the
/// installed package: files an installer did not write would stay behind on uninstall.
pub fn default_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
    // The XDG spec has relative values ignored.
    let base = match xdg.filter(|p| p.is_absolute()) {
        Some(base) => base,
        None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(base.join("ferrotel"))
}

/// The cache entry of one process's planning inputs.
#[derive(Debug)]
pub struct PlanCache {
    file: PathBuf,
    /// Everything the plan depends on, as the first lines of the file.
    key: String,
    /// No `sys.path` directory changed within [`SETTLE`]: a stored plan will stay checkable.
    settled: bool,
}

impl PlanCache {
    /// Stats every `sys.path` entry (call it before scanning, so a change during the scan makes
    /// the stored key stale rather than the plan).
    pub fn new<P: AsRef<Path>>(
        dir: &Path,
        version: &str,
        config: &PythonConfig,
        markers: &MarkerEnv,
        sys_path: &[P],
    ) -> PlanCache {
        let mut key = format!(
            "{FORMAT} {version}\nvariables {:?} {:?} {:?} {:?}\nmarkers {markers:?}\n",
            config.distro, config.configurator, config.disabled_instrumentations, config.enabled_instrumentations
        );
        for path in sys_path {
            key.push_str(&format!("path {:?}\n", path.as_ref()));
        }
        // The file is named for the inputs that do not change on install, so each path list and
        // set of variables keeps its own plan.
        let file = dir.join(format!("{PREFIX}{:016x}", fnv1a(key.as_bytes())));
        let now = SystemTime::now();
        let mut settled = true;
        for path in sys_path {
            key.push_str(&format!("stat {}\n", stat(path.as_ref(), now, &mut settled)));
        }
        key.push_str("plan\n");
        PlanCache { file, key, settled }
    }

    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The stored plan, if its key matches this process's inputs.
    pub fn load(&self) -> Option<Plan> {
        let text = fs::read_to_string(&self.file).ok()?;
        parse(text.strip_prefix(self.key.as_str())?)
    }

    /// Stores `plan`, made from `env`, for the next process with the same inputs. Failures are
    /// ignored: the cache only saves time.
    pub fn store(&self, plan: &Plan, env: &Environment) {
        let (Some(watched), true) = (watched_files(env), self.settled) else {
            return;
        };
        if let Some(body) = serialize(plan) {
            let _ = self.write(&format!("{watched}{body}"));
        }
    }

    fn write(&self, body: &str) -> io::Result<()> {
        let dir = self.file.parent().ok_or(io::ErrorKind::NotFound)?;
        create_private_dir(dir)?;
        let name = self.file.file_name().ok_or(io::ErrorKind::NotFound)?.to_string_lossy();
        // Written aside and renamed over: a reader sees the old file or the whole new one.
        let temporary = dir.join(format!(".{name}.{}", std::process::id()));
        let written = fs::File::create(&temporary)
            .and_then(|mut f| f.write_all(format!("{}{body}", self.key).as_bytes()))
            .and_then(|()| fs::rename(&temporary, &self.file));
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written?;
        prune(dir);
        Ok(())
    }
}

/// A path's fingerprint, or `-` when it cannot be stat'ed; clears `settled` when it changed
/// within [`SETTLE`] of `now`.
fn stat(path: &Path, now: SystemTime, settled: &mut bool) -> String {
    match fs::metadata(path) {
        Ok(meta) => {
            let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok());
            *settled &= age.is_some_and(|age| age >= SETTLE);
            fingerprint(&meta)
        }
        Err(_) => "-".to_string(),
    }
}

/// One `watch` record per file of every `*.egg-info` directory in `env`: its fingerprint and
/// path. `None` when one of them cannot be recorded (a path that is not UTF-8, or holds a tab
/// or line break) or changed just now.
fn watched_files(env: &Environment) -> Option<String> {
    let now = SystemTime::now();
    let mut settled = true;
    let mut out = String::new();
    let egg_infos = env
        .distributions()
        .iter()
        .map(|d| &d.metadata_dir)
        .filter(|dir| dir.extension().is_some_and(|e| e == "egg-info"));
    for dir in egg_infos {
        for name in EGG_INFO_FILES {
            let path = dir.join(name);
            let text = path.to_str().filter(|p| !p.contains(['\t', '\n', '\r']))?;
            out.push_str(&format!("watch\t{}\t{text}\n", stat(&path, now, &mut settled)));
        }
    }
    settled.then_some(out)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn fingerprint(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    )
}

#[cfg(not(unix))]
fn fingerprint(meta: &fs::Metadata) -> String {
    let since_epoch = |t: io::Result<SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos())
    };
    format!("{} {}", since_epoch(meta.modified()), since_epoch(meta.created()))
}

/// Removes the least recently written plans past [`MAX_FILES`] (and temporaries left by a
/// process that died while writing).
fn prune(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(PREFIX) || name.starts_with(&format!(".{PREFIX}"))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= MAX_FILES {
        return;
    }
    files.sort_unstable();
    for (_, path) in &files[..files.len() - MAX_FILES] {
        let _ = fs::remove_file(path);
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One record per line, fields separated by tabs, ending with `end`. `None` when a field holds
/// a tab or line break (nothing a real entry point has): such a plan is simply not stored.
fn serialize(plan: &Plan) -> Option<String> {
    let mut records: Vec<Vec<&str>> = Vec::new();
    records.extend(plan.distro.iter().map(|ep| with_entry_point("distro", ep)));
    records.extend(plan.configurator.iter().map(|ep| with_entry_point("configurator", ep)));
    records.extend(plan.pre_instrument.iter().map(|ep| with_entry_point("pre", ep)));
    records.extend(plan.post_instrument.iter().map(|ep| with_entry_point("post", ep)));
    for planned in &plan.instrumentors {
        records.push(match &planned.trigger {
            Trigger::AtStart => with_entry_point("at-start", &planned.entry_point),
            Trigger::OnImport(modules) => {
                let mut record = with_entry_point("on-import", &planned.entry_point);
                record.extend(modules.iter().map(String::as_str));
                record
            }
        });
    }
    for (ep, reason) in &plan.skipped {
        let mut record = with_entry_point("skip", ep);
        match reason {
            SkipReason::Disabled => record.push("disabled"),
            SkipReason::NotInEnableList => record.push("not-enabled"),
            SkipReason::Duplicate { chosen } => record.extend(["duplicate", chosen.as_str()]),
            SkipReason::Missing { requirement } => record.extend(["missing", requirement.as_str()]),
            SkipReason::WrongVersion { requirement, found } => {
                record.extend(["wrong-version", requirement.as_str(), found.as_str()]);
            }
        }
        records.push(record);
    }
    records.extend(plan.warnings.iter().map(|w| vec!["warning", w.as_str()]));
    records.push(vec!["end"]);
    let mut out = String::new();
    for record in records {
        if record.iter().any(|f| f.contains(['\t', '\n', '\r'])) {
            return None;
        }
        out.push_str(&record.join("\t"));
        out.push('\n');
    }
    Some(out)
}

fn with_entry_point<'a>(kind: &'static str, ep: &'a EntryPoint) -> Vec<&'a str> {
    vec![
        kind,
        &ep.group,
        &ep.name,
        &ep.module,
        ep.attr.as_deref().unwrap_or(""),
        &ep.distribution,
    ]
}

fn parse(text: &str) -> Option<Plan> {
    let mut plan = Plan::default();
    let mut ended = false;
    for line in text.lines() {
        if ended {
            return None;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let kind = fields[0];
        if let ["watch", recorded, path] = fields[..] {
            // A rewritten egg-info file: the plan may be stale.
            if stat(Path::new(path), SystemTime::now(), &mut true) != recorded {
                return None;
            }
            continue;
        }
        if kind == "end" && fields.len() == 1 {
            ended = true;
            continue;
        }
        if kind == "warning" && fields.len() == 2 {
            plan.warnings.push(fields[1].to_string());
            continue;
        }
        let (ep, rest) = entry_point(&fields[1..])?;
        match (kind, rest) {
            ("distro", []) if plan.distro.is_none() => plan.distro = Some(ep),
            ("configurator", []) if plan.configurator.is_none() => plan.configurator = Some(ep),
            ("pre", []) => plan.pre_instrument.push(ep),
            ("post", []) => plan.post_instrument.push(ep),
            ("at-start", []) => plan.instrumentors.push(PlannedInstrumentor {
                entry_point: ep,
                trigger: Trigger::AtStart,
            }),
            ("on-import", modules) if !modules.is_empty() => plan.instrumentors.push(PlannedInstrumentor {
                entry_point: ep,
                trigger: Trigger::OnImport(modules.iter().map(|m| m.to_string()).collect()),
            }),
            ("skip", reason) => {
                let reason = match reason {
                    ["disabled"] => SkipReason::Disabled,
                    ["not-enabled"] => SkipReason::NotInEnableList,
                    ["duplicate", chosen] => SkipReason::Duplicate {
                        chosen: chosen.to_string(),
                    },
                    ["missing", requirement] => SkipReason::Missing {
                        requirement: requirement.to_string(),
                    },
                    ["wrong-version", requirement, found] => SkipReason::WrongVersion {
                        requirement: requirement.to_string(),
                        found: found.to_string(),
                    },
                    _ => return None,
                };
                plan.skipped.push((ep, reason));
            }
            _ => return None,
        }
    }
    ended.then_some(plan)
}

/// The entry point in the first five fields, and the fields after it.
fn entry_point<'a, 'b>(fields: &'a [&'b str]) -> Option<(EntryPoint, &'a [&'b str])> {
    let (&[group, name, module, attr, distribution], rest) = fields.split_first_chunk::<5>()?;
    if [group, name, module, distribution].iter().any(|f| f.is_empty()) {
        return None;
    }
    let ep = EntryPoint {
        group: group.to_string(),
        name: name.to_string(),
        module: module.to_string(),
        attr: (!attr.is_empty()).then(|| attr.to_string()),
        distribution: distribution.to_string(),
    };
    Some((ep, rest))
}

#[cfg(test)]
mod tests;
