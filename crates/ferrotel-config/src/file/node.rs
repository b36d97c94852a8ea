//! Typed reading of the node tree: each read knows its key path, so every problem names the
//! line and the key it is about.

use super::yaml::{Node, Scalar, Value};

/// A problem at a place in the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) line: usize,
    pub(crate) key: String,
    pub(crate) message: String,
}

pub(crate) type Read<T> = Result<T, Problem>;

/// A node and the key path that leads to it (`tracer_provider.processors[0].batch`).
#[derive(Clone)]
pub(crate) struct At<'n> {
    pub(crate) node: &'n Node,
    pub(crate) path: String,
    /// Where the key naming this node is (a block mapping's own line is its first key's).
    pub(crate) line: usize,
}

/// Keys the schema defines that ferrotel does not implement: named as such, not as typos.
const NOT_SUPPORTED: &[&str] = &[
    "tracer_configurator/development",
    "meter_configurator/development",
    "logger_configurator/development",
    "otlp_file/development",
    "max_request_size",
    "max_response_size",
    "producers",
    "cardinality_limits",
    "composite/development",
    "jaeger_remote/development",
    "probability/development",
    "always_record",
    "event_to_span_event_bridge/development",
    "scope_info_enabled",
    "target_info_enabled/development",
    "resource_constant_labels",
    "translation_strategy",
    "max_export_batch_size/development",
];

impl<'n> At<'n> {
    pub(crate) fn root(node: &'n Node) -> At<'n> {
        At {
            node,
            path: String::new(),
            line: node.line,
        }
    }

    pub(crate) fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            line: self.line,
            key: self.path.clone(),
            message: message.into(),
        }
    }

    fn child(&self, key: &str, line: usize, node: &'n Node) -> At<'n> {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        At { node, path, line }
    }

    fn found(&self) -> String {
        match &self.node.value {
            Value::Map(_) => "a mapping".to_string(),
            Value::Seq(_) => "a list".to_string(),
            Value::Scalar(s) => s.describe(),
        }
    }

    fn scalar(&self) -> Option<&'n Scalar> {
        match &self.node.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self.node.value, Value::Scalar(Scalar::Null))
    }

    /// A mapping whose keys must be among `known`; `null` reads as an empty mapping when
    /// `nullable` (the schema's `["object", "null"]`).
    pub(crate) fn mapping(&self, known: &[&str], nullable: bool) -> Read<Fields<'n>> {
        let entries: &'n [(String, usize, Node)] = match &self.node.value {
            Value::Map(entries) => entries,
            Value::Scalar(Scalar::Null) if nullable => &[],
            _ => return Err(self.problem(format!("expected a mapping, found {}", self.found()))),
        };
        for (key, line, _) in entries {
            if known.contains(&key.as_str()) {
                continue;
            }
            let message = if NOT_SUPPORTED.contains(&key.as_str()) {
                "not supported by ferrotel".to_string()
            } else {
                format!("unknown key (expected one of: {})", known.join(", "))
            };
            return Err(self.child(key, *line, self.node).problem(message));
        }
        Ok(Fields {
            at: self.clone(),
            entries,
        })
    }

    /// A mapping of exactly one key, the name of a component (`batch:`, `otlp_http:`...).
    pub(crate) fn one_of(&self, what: &str, known: &[&str]) -> Read<(&'n str, At<'n>)> {
        let entries = match &self.node.value {
            Value::Map(entries) => entries,
            _ => return Err(self.problem(format!("expected a mapping naming one {what}, found {}", self.found()))),
        };
        match entries.as_slice() {
            [(name, line, node)] => {
                let at = self.child(name, *line, node);
                if NOT_SUPPORTED.contains(&name.as_str()) {
                    return Err(at.problem(format!("{what} `{name}` is not supported by ferrotel")));
                }
                Ok((name.as_str(), at))
            }
            _ => Err(self.problem(format!(
                "expected exactly one {what} ({}), found {}",
                known.join(", "),
                entries.len()
            ))),
        }
    }

    /// A list with at least one item.
    pub(crate) fn list(&self) -> Read<Vec<At<'n>>> {
        match &self.node.value {
            Value::Seq(items) if items.is_empty() => {
                Err(self.problem("expected at least one item, found an empty list"))
            }
            Value::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, node)| At {
                    node,
                    path: format!("{}[{i}]", self.path),
                    line: node.line,
                })
                .collect()),
            _ => Err(self.problem(format!("expected a list, found {}", self.found()))),
        }
    }

    pub(crate) fn string(&self) -> Read<String> {
        match self.scalar() {
            Some(Scalar::Str(s)) => Ok(s.clone()),
            _ => Err(self.problem(format!("expected a string, found {}", self.found()))),
        }
    }

    pub(crate) fn bool(&self) -> Read<bool> {
        match self.scalar() {
            Some(Scalar::Bool(b)) => Ok(*b),
            _ => Err(self.problem(format!("expected true or false, found {}", self.found()))),
        }
    }

    pub(crate) fn int(&self) -> Read<i64> {
        match self.scalar() {
            Some(Scalar::Int(i)) => Ok(*i),
            _ => Err(self.problem(format!("expected an integer, found {}", self.found()))),
        }
    }

    pub(crate) fn number(&self) -> Read<f64> {
        match self.scalar() {
            Some(Scalar::Int(i)) => Ok(*i as f64),
            Some(Scalar::Float(f)) => Ok(*f),
            _ => Err(self.problem(format!("expected a number, found {}", self.found()))),
        }
    }

    /// An integer of at least `min`.
    pub(crate) fn count(&self, min: i64) -> Read<usize> {
        let i = self.int()?;
        if i < min {
            return Err(self.problem(format!("must be at least {min}, found {i}")));
        }
        usize::try_from(i).map_err(|_| self.problem(format!("{i} is too large")))
    }

    /// One of `options`, as a string.
    pub(crate) fn choice(&self, options: &[&'static str]) -> Read<&'static str> {
        let s = self.string()?;
        options
            .iter()
            .find(|o| **o == s)
            .copied()
            .ok_or_else(|| self.problem(format!("{s:?} is not one of: {}", options.join(", "))))
    }

    pub(crate) fn scalar_value(&self) -> Option<&'n Scalar> {
        self.scalar()
    }
}

/// The keys of a mapping, read one by one.
pub(crate) struct Fields<'n> {
    at: At<'n>,
    entries: &'n [(String, usize, Node)],
}

impl<'n> Fields<'n> {
    /// The value of `key`, `None` when absent or null (the schema's "if omitted or null").
    pub(crate) fn get(&self, key: &str) -> Option<At<'n>> {
        self.get_even_null(key).filter(|at| !at.is_null())
    }

    /// The value of `key` when present, null included (`console:` names a component).
    pub(crate) fn get_even_null(&self, key: &str) -> Option<At<'n>> {
        self.entries
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(k, line, node)| self.at.child(k, *line, node))
    }

    pub(crate) fn require(&self, key: &str) -> Read<At<'n>> {
        self.get(key)
            .ok_or_else(|| self.at.problem(format!("missing required key `{key}`")))
    }
}
