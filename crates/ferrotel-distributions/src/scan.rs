//! Finding distributions on a list of import paths.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::metadata::{self, EntryPoint};
use crate::requirement::Requirement;

/// One installed distribution.
#[derive(Debug, Clone)]
pub struct Distribution {
    /// The project name as the metadata spells it (or as the directory name does).
    pub name: String,
    pub version: String,
    /// The `*.dist-info` or `*.egg-info` directory.
    pub metadata_dir: PathBuf,
}

/// PEP 503 normalisation: lower-case, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            in_separator = true;
        } else {
            if in_separator && !out.is_empty() {
                out.push('-');
            }
            in_separator = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

impl Distribution {
    fn from_metadata_dir(dir: &Path) -> Option<Distribution> {
        let file_name = dir.file_name()?.to_str()?;
        let (stem, is_egg) = match file_name.strip_suffix(".dist-info") {
            Some(stem) => (stem, false),
            None => (file_name.strip_suffix(".egg-info")?, true),
        };
        // `name-version[-pyX.Y]`; the name part has no `-` in wheel-installed metadata.
        let mut parts = stem.splitn(3, '-');
        let name = parts.next()?.to_string();
        let version = parts.next().map(str::to_string);
        let version = match version {
            Some(v) if !is_egg || !v.is_empty() => v,
            // A development egg-info (`name.egg-info`) keeps its version inside PKG-INFO.
            _ => metadata::header(&fs::read_to_string(dir.join("PKG-INFO")).ok()?, "Version")?,
        };
        if name.is_empty() {
            return None;
        }
        Some(Distribution {
            name,
            version,
            metadata_dir: dir.to_path_buf(),
        })
    }

    fn is_egg(&self) -> bool {
        self.metadata_dir.extension().is_some_and(|e| e == "egg-info")
    }

    /// The `entry_points.txt` text; a missing or unreadable file means none.
    fn entry_points_text(&self) -> Option<String> {
        fs::read_to_string(self.metadata_dir.join("entry_points.txt")).ok()
    }

    /// Every requirement line of the distribution, markers unevaluated. Unparseable lines are
    /// skipped.
    pub fn requirements(&self) -> Vec<Requirement> {
        let lines = if self.is_egg() {
            fs::read_to_string(self.metadata_dir.join("requires.txt"))
                .map(|t| metadata::egg_requires(&t))
                .unwrap_or_default()
        } else {
            fs::read_to_string(self.metadata_dir.join("METADATA"))
                .map(|t| metadata::headers(&t, "Requires-Dist"))
                .unwrap_or_default()
        };
        lines.iter().filter_map(|line| Requirement::parse(line).ok()).collect()
    }

    /// The top-level import names this distribution provides: `top_level.txt` when present,
    /// otherwise the first path component of every module in `RECORD`.
    pub fn top_level_modules(&self) -> Vec<String> {
        if let Ok(text) = fs::read_to_string(self.metadata_dir.join("top_level.txt")) {
            let names: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            if !names.is_empty() {
                return names;
            }
        }
        let Ok(record) = fs::read_to_string(self.metadata_dir.join("RECORD")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = Vec::new();
        for line in record.lines() {
            let path = line.split(',').next().unwrap_or("");
            if path.starts_with("..") || path.starts_with('/') {
                continue; // scripts and data installed outside site-packages
            }
            let first = path.split('/').next().unwrap_or("");
            let name = if path.contains('/') {
                first
            } else if let Some(stem) = first.strip_suffix(".py") {
                stem
            } else if first.contains(".cpython-") || first.ends_with(".so") || first.ends_with(".pyd") {
                first.split('.').next().unwrap_or("")
            } else {
                continue;
            };
            let usable = !name.is_empty()
                && !name.ends_with(".dist-info")
                && !name.ends_with(".data")
                && name != "__pycache__"
                && name.chars().all(|c| c.is_alphanumeric() || c == '_');
            if usable && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    }
}

/// Every distribution visible on an import path, first occurrence winning (as Python's
/// `importlib.metadata` resolves duplicates).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    distributions: Vec<Distribution>,
    by_name: HashMap<String, usize>,
    /// Each distribution's `entry_points.txt`, read once on first use: start-up asks for
    /// several groups, and reading every file per group was most of its cost.
    entry_points_texts: OnceLock<Vec<Option<String>>>,
}

impl Environment {
    /// Scans each path entry (usually `sys.path`) for metadata directories. Entries that do
    /// not exist or cannot be read are skipped.
    pub fn scan<P: AsRef<Path>>(paths: &[P]) -> Environment {
        let mut env = Environment::default();
        for path in paths {
            let Ok(entries) = fs::read_dir(path.as_ref()) else {
                continue;
            };
            // Names are checked before any path is built or stat'ed: a site-packages directory
            // holds a few metadata directories among many packages and modules. The directory
            // entry's own type suffices except for a symbolic link, whose target is stat'ed.
            let mut names: Vec<(String, bool)> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let kind = e.file_type().ok()?;
                    if !kind.is_dir() && !kind.is_symlink() {
                        return None;
                    }
                    let name = e.file_name().into_string().ok()?;
                    let is_metadata = name.ends_with(".dist-info") || name.ends_with(".egg-info");
                    is_metadata.then_some((name, kind.is_symlink()))
                })
                .collect();
            // Directory order is arbitrary; sorting keeps the result reproducible.
            names.sort_unstable();
            let dirs = names
                .iter()
                .map(|(name, is_link)| (path.as_ref().join(name), is_link))
                .filter(|(dir, is_link)| !**is_link || dir.is_dir())
                .map(|(dir, _)| dir);
            for dir in dirs {
                if let Some(dist) = Distribution::from_metadata_dir(&dir) {
                    let key = normalize(&dist.name);
                    if !env.by_name.contains_key(&key) {
                        env.by_name.insert(key, env.distributions.len());
                        env.distributions.push(dist);
                    }
                }
            }
        }
        env
    }

    pub fn get(&self, name: &str) -> Option<&Distribution> {
        self.by_name.get(&normalize(name)).map(|&i| &self.distributions[i])
    }

    pub fn distributions(&self) -> &[Distribution] {
        &self.distributions
    }

    /// Every entry point of `group` across the environment, in scan order.
    pub fn entry_points(&self, group: &str) -> Vec<EntryPoint> {
        let texts = self
            .entry_points_texts
            .get_or_init(|| self.distributions.iter().map(Distribution::entry_points_text).collect());
        self.distributions
            .iter()
            .zip(texts)
            .filter_map(|(dist, text)| Some(metadata::parse_entry_points(text.as_deref()?, &dist.name, group)))
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        assert_eq!(normalize("Flask"), "flask");
        assert_eq!(
            normalize("opentelemetry_instrumentation__flask"),
            "opentelemetry-instrumentation-flask"
        );
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("PyMySQL"), "pymysql");
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn scans_dist_info_and_egg_info_first_one_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write(
            &a.path().join("Flask-3.1.2.dist-info/METADATA"),
            "Name: Flask\nVersion: 3.1.2\n",
        );
        write(
            &b.path().join("flask-2.0.0.dist-info/METADATA"),
            "Name: flask\nVersion: 2.0.0\n",
        );
        write(
            &b.path().join("mylib.egg-info/PKG-INFO"),
            "Metadata-Version: 2.1\nName: mylib\nVersion: 0.3.dev1\n",
        );
        write(
            &b.path().join("other-1.0-py3.11.egg-info/PKG-INFO"),
            "Name: other\nVersion: 1.0\n",
        );
        let env = Environment::scan(&[
            a.path().to_path_buf(),
            b.path().to_path_buf(),
            PathBuf::from("/nonexistent"),
        ]);
        assert_eq!(env.get("FLASK").unwrap().version, "3.1.2");
        assert_eq!(env.get("mylib").unwrap().version, "0.3.dev1");
        assert_eq!(env.get("other").unwrap().version, "1.0");
        assert_eq!(env.distributions().len(), 3);
    }

    #[cfg(unix)]
    #[test]
    fn linked_metadata_directories_count_only_when_the_target_is_a_directory() {
        let site = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let real = elsewhere.path().join("linked-1.0.dist-info");
        write(&real.join("METADATA"), "Name: linked\nVersion: 1.0\n");
        write(&elsewhere.path().join("plain-file"), "");
        std::os::unix::fs::symlink(&real, site.path().join("linked-1.0.dist-info")).unwrap();
        std::os::unix::fs::symlink(
            elsewhere.path().join("plain-file"),
            site.path().join("file-1.0.dist-info"),
        )
        .unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("gone"), site.path().join("broken-1.0.dist-info")).unwrap();
        write(
            &site.path().join("real-2.0.dist-info/METADATA"),
            "Name: real\nVersion: 2.0\n",
        );
        let env = Environment::scan(&[site.path()]);
        let names: Vec<&str> = env.distributions().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["linked", "real"]);
    }

    #[test]
    fn top_level_from_record_when_no_top_level_txt() {
        let d = tempfile::tempdir().unwrap();
        let meta = d.path().join("requests-2.32.5.dist-info");
        write(
            &meta.join("RECORD"),
            "requests/__init__.py,sha256=x,10\nrequests/api.py,,\nrequests-2.32.5.dist-info/METADATA,,\n\
             ../../../bin/tool,,\nsix.py,,\n_cffi.cpython-311-x86_64-linux-gnu.so,,\nrequests/__pycache__/api.cpython-311.pyc,,\n",
        );
        let env = Environment::scan(&[d.path()]);
        assert_eq!(
            env.get("requests").unwrap().top_level_modules(),
            vec!["requests", "six", "_cffi"]
        );
        write(&meta.join("top_level.txt"), "requests\n");
        assert_eq!(env.get("requests").unwrap().top_level_modules(), vec!["requests"]);
    }
}
