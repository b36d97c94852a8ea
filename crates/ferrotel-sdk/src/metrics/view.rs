//! Views: which instruments a view selects (name with `*` and `?` wildcards, kind, unit,
//! meter name, version and schema URL) and what stream it makes of each (name, description,
//! attribute keys kept, aggregation). Instrument names compare case-insensitively, as
//! instruments are identified.

use super::{Boundary, Descriptor, InstrumentKind};

/// How a stream aggregates its measurements.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Aggregation {
    /// What the instrument kind calls for (or what the reader prefers for it).
    #[default]
    Default,
    /// Nothing recorded, nothing exported.
    Drop,
    Sum,
    LastValue,
    /// Explicit buckets: these boundaries, or else the instrument's advisory ones, or else the
    /// spec's defaults.
    ExplicitBucketHistogram {
        boundaries: Option<Vec<Boundary>>,
    },
    Base2ExponentialHistogram {
        max_size: u32,
        max_scale: i8,
    },
}

impl Aggregation {
    /// The base-2 exponential histogram with the spec's defaults (160 buckets, scale 20).
    pub fn base2_exponential() -> Aggregation {
        Aggregation::Base2ExponentialHistogram {
            max_size: super::exponential::DEFAULT_MAX_SIZE,
            max_scale: super::exponential::MAX_SCALE,
        }
    }
}

/// A view: selection criteria (each `None` selects any) and the stream it configures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// A name pattern: `*` matches any run of characters, `?` any one.
    pub instrument_name: Option<String>,
    /// The kinds selected; any of them matches.
    pub instrument_kinds: Option<Vec<InstrumentKind>>,
    /// A unit pattern, with the same wildcards, compared as written.
    pub instrument_unit: Option<String>,
    pub meter_name: Option<String>,
    pub meter_version: Option<String>,
    pub meter_schema_url: Option<String>,
    /// The stream's name, in place of the instrument's.
    pub name: Option<String>,
    pub description: Option<String>,
    /// Only these attribute keys are kept; `None` keeps every one.
    pub attribute_keys: Option<Vec<String>>,
    pub aggregation: Aggregation,
}

impl View {
    /// A view of a configuration file's `meter_provider.views` (what ferrotel's views cannot
    /// do, the file's reader has warned about).
    pub fn from_file(given: &ferrotel_config::file::View) -> View {
        use ferrotel_config::file::{Aggregation as Given, InstrumentType};
        let (selector, stream) = (&given.selector, &given.stream);
        let kind = selector.instrument_type.map(|kind| match kind {
            InstrumentType::Counter => InstrumentKind::Counter,
            InstrumentType::Gauge => InstrumentKind::Gauge,
            InstrumentType::Histogram => InstrumentKind::Histogram,
            InstrumentType::ObservableCounter => InstrumentKind::ObservableCounter,
            InstrumentType::ObservableGauge => InstrumentKind::ObservableGauge,
            InstrumentType::ObservableUpDownCounter => InstrumentKind::ObservableUpDownCounter,
            InstrumentType::UpDownCounter => InstrumentKind::UpDownCounter,
        });
        let aggregation = match &stream.aggregation {
            None | Some(Given::Default) => Aggregation::Default,
            Some(Given::Drop) => Aggregation::Drop,
            Some(Given::Sum) => Aggregation::Sum,
            Some(Given::LastValue) => Aggregation::LastValue,
            Some(Given::ExplicitBucketHistogram { boundaries, .. }) => {
                let boundary = |value: &f64| Boundary {
                    value: *value,
                    integral: value.fract() == 0.0,
                };
                Aggregation::ExplicitBucketHistogram {
                    boundaries: boundaries.as_ref().map(|b| b.iter().map(boundary).collect()),
                }
            }
            Some(Given::Base2ExponentialBucketHistogram {
                max_scale, max_size, ..
            }) => Aggregation::Base2ExponentialHistogram {
                max_size: u32::try_from(*max_size).unwrap_or(u32::MAX),
                max_scale: (*max_scale).clamp(-10, 20) as i8,
            },
        };
        View {
            instrument_name: selector.instrument_name.clone(),
            instrument_kinds: kind.map(|k| vec![k]),
            instrument_unit: selector.unit.clone(),
            meter_name: selector.meter_name.clone(),
            meter_version: selector.meter_version.clone(),
            meter_schema_url: selector.meter_schema_url.clone(),
            name: stream.name.clone(),
            description: stream.description.clone(),
            attribute_keys: stream.attribute_keys_included.clone(),
            aggregation,
        }
    }
}

/// Why a view cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("a view must select instruments by at least one of name, type, unit or meter")]
    NoCriteria,
    #[error("the view names its stream {0:?}, but its instrument name has wildcards: a renamed stream must come from one instrument")]
    RenamedWildcard(String),
}

impl View {
    /// Refuses what the spec forbids: no criteria, or a rename of possibly many instruments.
    pub fn validate(&self) -> Result<(), ViewError> {
        if self.instrument_name.is_none()
            && self.instrument_kinds.is_none()
            && self.instrument_unit.is_none()
            && self.meter_name.is_none()
            && self.meter_version.is_none()
            && self.meter_schema_url.is_none()
        {
            return Err(ViewError::NoCriteria);
        }
        if let (Some(name), Some(pattern)) = (&self.name, &self.instrument_name) {
            if pattern.contains(['*', '?']) {
                return Err(ViewError::RenamedWildcard(name.clone()));
            }
        }
        Ok(())
    }

    /// Whether the view selects the instrument `descriptor` describes.
    pub fn selects(&self, descriptor: &Descriptor) -> bool {
        let scope = &descriptor.scope;
        self.instrument_kinds
            .as_ref()
            .is_none_or(|kinds| kinds.contains(&descriptor.kind))
            && self.instrument_name.as_ref().is_none_or(|pattern| {
                wildcard_match(&pattern.to_ascii_lowercase(), &descriptor.name.to_ascii_lowercase())
            })
            && self
                .instrument_unit
                .as_ref()
                .is_none_or(|pattern| wildcard_match(pattern, &descriptor.unit))
            && self.meter_name.as_ref().is_none_or(|name| *name == scope.name)
            && self
                .meter_version
                .as_ref()
                .is_none_or(|version| Some(version) == scope.version.as_ref())
            && self
                .meter_schema_url
                .as_ref()
                .is_none_or(|url| Some(url) == scope.schema_url.as_ref())
    }
}

/// `pattern` against the whole of `text`: `*` any run of characters, `?` any one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    // The classic two-pointer match, backtracking to the last `*` on a mismatch.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::span::Scope;

    fn descriptor(name: &str, kind: InstrumentKind, unit: &str, meter: &str) -> Descriptor {
        Descriptor {
            name: name.into(),
            description: String::new(),
            unit: unit.into(),
            kind,
            scope: Arc::new(Scope {
                name: meter.into(),
                version: Some("1.0".into()),
                ..Scope::default()
            }),
            advisory: None,
        }
    }

    #[test]
    fn wildcards() {
        for (pattern, text, expected) in [
            ("*", "anything", true),
            ("*", "", true),
            ("http.*", "http.server.duration", true),
            ("http.*", "db.client", false),
            ("*.duration", "http.server.duration", true),
            ("h?tp.*", "http.x", true),
            ("h?tp", "htp", false),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "a-b-b-d", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(wildcard_match(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn every_criterion_must_hold() {
        let histogram = descriptor("Request.Duration", InstrumentKind::Histogram, "ms", "shop");
        let view = |view: View| view.selects(&histogram);
        assert!(view(View {
            instrument_name: Some("request.*".into()),
            ..View::default()
        }));
        assert!(view(View {
            instrument_name: Some("REQUEST.DURATION".into()),
            instrument_kinds: Some(vec![InstrumentKind::Histogram]),
            instrument_unit: Some("m?".into()),
            meter_name: Some("shop".into()),
            meter_version: Some("1.0".into()),
            ..View::default()
        }));
        assert!(!view(View {
            instrument_kinds: Some(vec![InstrumentKind::Counter]),
            ..View::default()
        }));
        assert!(!view(View {
            instrument_unit: Some("MS".into()),
            ..View::default()
        }));
        assert!(!view(View {
            meter_name: Some("other".into()),
            ..View::default()
        }));
        assert!(!view(View {
            meter_schema_url: Some("https://x".into()),
            ..View::default()
        }));
    }

    #[test]
    fn validation() {
        assert_eq!(View::default().validate(), Err(ViewError::NoCriteria));
        let renamed_many = View {
            instrument_name: Some("http.*".into()),
            name: Some("one".into()),
            ..View::default()
        };
        assert!(matches!(renamed_many.validate(), Err(ViewError::RenamedWildcard(_))));
        let renamed_one = View {
            instrument_name: Some("http.duration".into()),
            name: Some("one".into()),
            ..View::default()
        };
        assert_eq!(renamed_one.validate(), Ok(()));
    }
}
