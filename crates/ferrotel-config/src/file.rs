//! The declarative configuration file (`OTEL_CONFIG_FILE`): the OpenTelemetry configuration
//! schema (`file_format` 1.x) in YAML, read into the same [`Config`] the environment gives,
//! so nothing downstream knows where its settings came from.
//!
//! When the file is set every other SDK variable is ignored (the `OTEL_PYTHON_*` settings of
//! the loader and the instrumentations still apply), except through `${...}` in the file.
//! The file is validated whole before anything is used: a file that is not valid gives no
//! partial configuration but one [`FileError`] naming the file, the line and the key, and
//! the SDK stays off. Parts of the schema ferrotel does not implement are errors that say
//! so, never silently dropped.

mod build;
mod node;
mod subst;
mod yaml;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::parse::{Config, Parsed, Warning};

/// The schema versions this reader understands: major 1, any minor (newer minors only add
/// keys, which are reported as unknown).
pub const FILE_FORMAT_MAJOR: &str = "1";

/// Why a configuration file was not used.
#[derive(Debug, Clone, PartialEq)]
pub struct FileError {
    pub file: String,
    /// 1-based; `None` when the file could not be read at all.
    pub line: Option<usize>,
    /// The key path (`tracer_provider.processors[0].batch.schedule_delay`); empty for the
    /// document itself.
    pub key: String,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// A metric view from `meter_provider.views`.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub selector: ViewSelector,
    pub stream: ViewStream,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewSelector {
    pub instrument_name: Option<String>,
    pub instrument_type: Option<InstrumentType>,
    pub unit: Option<String>,
    pub meter_name: Option<String>,
    pub meter_version: Option<String>,
    pub meter_schema_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrumentType {
    Counter,
    Gauge,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewStream {
    pub name: Option<String>,
    pub description: Option<String>,
    pub aggregation: Option<Aggregation>,
    pub aggregation_cardinality_limit: Option<usize>,
    /// Attribute keys kept (`None`: all) and dropped.
    pub attribute_keys_included: Option<Vec<String>>,
    pub attribute_keys_excluded: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Aggregation {
    Default,
    Drop,
    Sum,
    LastValue,
    ExplicitBucketHistogram {
        /// `None`: the SDK's default boundaries.
        boundaries: Option<Vec<f64>>,
        record_min_max: bool,
    },
    Base2ExponentialBucketHistogram {
        max_scale: i32,
        max_size: usize,
        record_min_max: bool,
    },
}

/// A configuration file read and validated: the configuration, and what it asked for that
/// is read but not applied (each a warning).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Reads and validates `path`, substituting `${...}` through `lookup`. The loader and
/// instrumentation settings (`config.python`) are read from `lookup` as variables.
pub fn load(path: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, FileError> {
    let error = |line, key: String, message: String| FileError {
        file: path.to_string(),
        line,
        key,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(None, String::new(), format!("cannot be read: {e}")))?;
    load_text(path, &text, lookup)
}

/// [`load`] on text already read (`path` names it in errors).
pub fn load_text(path: &str, text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, FileError> {
    let document = yaml::parse(text, lookup).map_err(|e| FileError {
        file: path.to_string(),
        line: Some(e.line),
        key: String::new(),
        message: e.message,
    })?;
    build::config(&document, lookup).map_err(|p| FileError {
        file: path.to_string(),
        line: Some(p.line),
        key: p.key,
        message: p.message,
    })
}

/// What [`Config::from_lookup`] returns when `OTEL_CONFIG_FILE` names `path`: the file's
/// configuration, or, when it is not valid, the SDK off and one warning saying why.
pub(crate) fn parsed(path: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Parsed {
    const VAR: &str = "OTEL_CONFIG_FILE";
    match load(path, lookup) {
        Ok(loaded) => Parsed {
            config: loaded.config,
            warnings: loaded
                .warnings
                .into_iter()
                .map(|problem| Warning {
                    var: VAR,
                    value: None,
                    problem,
                    used: "the rest of the file".to_string(),
                })
                .collect(),
        },
        Err(error) => {
            let mut config = build::defaults(lookup);
            config.sdk_disabled = true;
            Parsed {
                config,
                warnings: vec![Warning {
                    var: VAR,
                    value: None,
                    problem: format!("is not valid: {error}"),
                    used: "no telemetry (the SDK stays off until the file is fixed)".to_string(),
                }],
            }
        }
    }
}
