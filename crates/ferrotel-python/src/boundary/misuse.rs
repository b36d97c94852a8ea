//! Bad arguments from application code. The API never raises into the app for them: each
//! is coerced or dropped as the upstream SDK and the spec have it, counted, and the first of
//! each kind is reported at debug level (`OTEL_LOG_LEVEL=debug`).

use std::sync::atomic::{AtomicU64, Ordering};

use ferrotel_config::LogLevel;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::runtime::diagnostics::emit;

/// What was wrong, and what was done instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Misuse {
    /// A span or event name that is not text: its `str()` is used (`None`: empty).
    Name,
    /// A timestamp that is not a non-negative integer of nanoseconds that fits 64 bits:
    /// a float is truncated, anything else is replaced by now.
    Timestamp,
    /// `set_status` with something that is not a `Status` or `StatusCode`: names
    /// (`"ERROR"`) are understood, anything else ignored.
    Status,
    /// A status description that is not text: dropped.
    StatusDescription,
    /// An attribute key that is not text: the attribute is dropped.
    AttributeKey,
    /// An attribute value OpenTelemetry cannot carry (`None`, an object, an integer beyond
    /// 64 bits, a nested list): the attribute is dropped.
    AttributeValue,
    /// A link or parent context that cannot be read: ignored.
    Context,
}

const KINDS: [Misuse; 7] = [
    Misuse::Name,
    Misuse::Timestamp,
    Misuse::Status,
    Misuse::StatusDescription,
    Misuse::AttributeKey,
    Misuse::AttributeValue,
    Misuse::Context,
];

static COUNTS: [AtomicU64; KINDS.len()] = [const { AtomicU64::new(0) }; KINDS.len()];

impl Misuse {
    fn index(self) -> usize {
        KINDS.iter().position(|k| *k == self).unwrap_or(0)
    }

    fn name(self) -> &'static str {
        match self {
            Misuse::Name => "name",
            Misuse::Timestamp => "timestamp",
            Misuse::Status => "status",
            Misuse::StatusDescription => "status_description",
            Misuse::AttributeKey => "attribute_key",
            Misuse::AttributeValue => "attribute_value",
            Misuse::Context => "context",
        }
    }
}

/// Counts one misuse; the first of its kind is described (by `detail`) at debug level.
pub(crate) fn note(py: Python<'_>, kind: Misuse, detail: impl FnOnce() -> String) {
    if COUNTS[kind.index()].fetch_add(1, Ordering::Relaxed) == 0 {
        emit(
            py,
            LogLevel::Debug,
            &format!(
                "{} (further {} problems are counted, not reported)",
                detail(),
                kind.name()
            ),
        );
    }
}

/// `{kind: count}` of every misuse seen so far in this process.
#[pyfunction]
pub(crate) fn api_misuse_counts(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let counts = PyDict::new(py);
    for kind in KINDS {
        counts.set_item(kind.name(), COUNTS[kind.index()].load(Ordering::Relaxed))?;
    }
    Ok(counts)
}
