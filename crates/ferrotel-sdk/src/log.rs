//! What a log record is once emitted: the OpenTelemetry log data model, filled from a Python
//! `logging` record or from the Logs API.

use crate::span::ScopeRef;
use crate::value::{Attributes, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct LogData {
    /// When the event happened; 0 when the source did not say.
    pub time_ns: u64,
    pub observed_ns: u64,
    /// 1–24 as the data model numbers them (9 = INFO, 13 = WARN...); 0 unspecified.
    pub severity_number: u8,
    pub severity_text: String,
    pub body: Option<Value>,
    pub attributes: Attributes,
    /// The span current when the record was made; zeros when there was none.
    pub trace_id: u128,
    pub span_id: u64,
    pub trace_flags: u8,
    pub event_name: String,
    pub scope: ScopeRef,
}

impl crate::pipeline::Item for LogData {
    const SIGNAL: &'static str = "logs";
    const NOUN: &'static str = "log record(s)";
}

/// The data model's severity for a Python `logging` level: the standard levels land on
/// TRACE..FATAL, and levels between them on the nearest step above their lower neighbour.
pub fn severity_of_python_level(level: i64) -> u8 {
    // (python level, severity number) at each standard level; NOTSET (0) counts as TRACE.
    const STEPS: [(i64, u8); 6] = [(0, 1), (10, 5), (20, 9), (30, 13), (40, 17), (50, 21)];
    if level >= 50 {
        // Above CRITICAL: FATAL..FATAL4.
        return (21 + ((level - 50) / 10).min(3)) as u8;
    }
    let (base_level, base) = STEPS.iter().rev().find(|(l, _)| level >= *l).copied().unwrap_or((0, 1));
    // Ten Python levels span four severity steps.
    base + (((level - base_level).max(0) * 4) / 10).min(3) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_levels_map_onto_the_data_model() {
        let cases = [
            (0, 1),
            (5, 3),
            (10, 5),
            (15, 7),
            (20, 9),
            (25, 11),
            (30, 13),
            (40, 17),
            (45, 19),
            (50, 21),
            (60, 22),
            (99, 24),
            (-3, 1),
        ];
        for (level, severity) in cases {
            assert_eq!(severity_of_python_level(level), severity, "level {level}");
        }
    }
}
