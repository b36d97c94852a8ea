//! The YAML document as a tree of nodes that remember their line, with `${...}` substituted
//! in every scalar value (never in keys) before the scalar's type is resolved by the YAML 1.2
//! core schema: the data model's order, which lets `${PORT}` be an integer while a quoted
//! `"${PORT}"` stays a string, and keeps an environment value from ever becoming structure.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};

use super::subst::substitute;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    /// How the value is named in an error ("the string \"x\"").
    pub(crate) fn describe(&self) -> String {
        match self {
            Scalar::Null => "null".to_string(),
            Scalar::Bool(b) => format!("the boolean {b}"),
            Scalar::Int(i) => format!("the integer {i}"),
            Scalar::Float(f) => format!("the number {f:?}"),
            Scalar::Str(s) => format!("the string {s:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Keys in document order, each with the line it is on.
    Map(Vec<(String, usize, Node)>),
    Seq(Vec<Node>),
    Scalar(Scalar),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// 1-based.
    pub(crate) line: usize,
    pub(crate) value: Value,
}

/// A problem with the document itself: its line and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Parses `text` (one document; an empty file is an empty mapping), substituting through
/// `lookup`.
pub(crate) fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Node, SyntaxError> {
    let mut builder = Builder {
        lookup,
        anchors: HashMap::new(),
        stack: Vec::new(),
        root: None,
        documents: 0,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            line: e.marker().line(),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        builder.event(event, span.start.line())?;
    }
    Ok(builder.root.unwrap_or(Node {
        line: 1,
        value: Value::Map(Vec::new()),
    }))
}

enum Open {
    Map {
        line: usize,
        anchor: usize,
        entries: Vec<(String, usize, Node)>,
        /// The key read, waiting for its value.
        key: Option<(String, usize)>,
    },
    Seq {
        line: usize,
        anchor: usize,
        items: Vec<Node>,
    },
}

struct Builder<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    anchors: HashMap<usize, Node>,
    stack: Vec<Open>,
    root: Option<Node>,
    documents: usize,
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, line: usize) -> Result<(), SyntaxError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxError {
                        line,
                        message: "a second YAML document; the configuration is one document".to_string(),
                    });
                }
            }
            Event::MappingStart(anchor, _) => self.stack.push(Open::Map {
                line,
                anchor,
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceStart(anchor, _) => self.stack.push(Open::Seq {
                line,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingEnd => {
                if let Some(Open::Map {
                    line, anchor, entries, ..
                }) = self.stack.pop()
                {
                    self.complete(
                        Node {
                            line,
                            value: Value::Map(entries),
                        },
                        anchor,
                    )?;
                }
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq { line, anchor, items }) = self.stack.pop() {
                    self.complete(
                        Node {
                            line,
                            value: Value::Seq(items),
                        },
                        anchor,
                    )?;
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                // A mapping key is taken as written: keys are not substituted.
                if let Some(Open::Map {
                    key: key @ None,
                    entries,
                    ..
                }) = self.stack.last_mut()
                {
                    if entries.iter().any(|(k, _, _)| *k == text) {
                        return Err(SyntaxError {
                            line,
                            message: format!("duplicate key `{text}`"),
                        });
                    }
                    *key = Some((text.into_owned(), line));
                    return Ok(());
                }
                let substituted = substitute(&text, self.lookup).map_err(|reference| SyntaxError {
                    line,
                    message: format!(
                        "invalid substitution {reference}: expected ${{NAME}}, ${{env:NAME}} or ${{NAME:-default}}"
                    ),
                })?;
                let forced_string = style != ScalarStyle::Plain || tag.as_deref().is_some_and(is_str_tag);
                let scalar = if forced_string {
                    Scalar::Str(substituted)
                } else {
                    resolve(&substituted)
                };
                self.complete(
                    Node {
                        line,
                        value: Value::Scalar(scalar),
                    },
                    anchor,
                )?;
            }
            Event::Alias(anchor) => {
                let node = self.anchors.get(&anchor).cloned().ok_or_else(|| SyntaxError {
                    line,
                    message: "an alias to an unknown anchor".to_string(),
                })?;
                self.complete(node, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// Places a finished node in its parent (or as the document).
    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq { items, .. }) => items.push(node),
            Some(Open::Map { key, entries, .. }) => match key.take() {
                Some((name, line)) => entries.push((name, line, node)),
                None => {
                    return Err(SyntaxError {
                        line: node.line,
                        message: "a mapping key must be a plain string".to_string(),
                    })
                }
            },
        }
        Ok(())
    }
}

fn is_str_tag(tag: &Tag) -> bool {
    (tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:") && tag.suffix == "str"
}

/// A plain scalar's type by the YAML 1.2 core schema.
fn resolve(text: &str) -> Scalar {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        _ => {}
    }
    if let Some(int) = resolve_int(text) {
        return Scalar::Int(int);
    }
    if is_core_float(text) {
        if let Ok(f) = text.parse::<f64>() {
            return Scalar::Float(f);
        }
    }
    Scalar::Str(text.to_string())
}

fn resolve_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16)
            .ok()
            .filter(|_| !hex.starts_with(['+', '-']));
    }
    if let Some(octal) = text.strip_prefix("0o") {
        return i64::from_str_radix(octal, 8)
            .ok()
            .filter(|_| !octal.starts_with(['+', '-']));
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match fraction {
        Some(f) => digits(whole) && digits(f) && (!whole.is_empty() || !f.is_empty()),
        None => !whole.is_empty() && digits(whole),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::{parse, resolve, Node, Scalar, Value};

    fn env(name: &str) -> Option<String> {
        let value = match name {
            "STRING_VALUE" => "value",
            "BOOL_VALUE" => "true",
            "INT_VALUE" => "1",
            "FLOAT_VALUE" => "1.1",
            "HEX_VALUE" => "0xdeadbeef",
            "INVALID_MAP_VALUE" => "value\nkey:value",
            _ => return None,
        };
        Some(value.to_string())
    }

    fn value_of(yaml: &str) -> Scalar {
        let node = parse(yaml, &env).unwrap();
        let Value::Map(entries) = node.value else {
            panic!("not a map")
        };
        match &entries[0].2.value {
            Value::Scalar(s) => s.clone(),
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn types_are_resolved_after_substitution() {
        let cases = [
            ("key: ${STRING_VALUE}", Scalar::Str("value".into())),
            ("key: ${BOOL_VALUE}", Scalar::Bool(true)),
            ("key: ${INT_VALUE}", Scalar::Int(1)),
            ("key: ${FLOAT_VALUE}", Scalar::Float(1.1)),
            ("key: ${HEX_VALUE}", Scalar::Int(3_735_928_559)),
            ("key: \"${BOOL_VALUE}\"", Scalar::Str("true".into())),
            ("key: '${INT_VALUE}'", Scalar::Str("1".into())),
            ("key: \"${HEX_VALUE}\"", Scalar::Str("0xdeadbeef".into())),
            ("key: !!str ${INT_VALUE}", Scalar::Str("1".into())),
            ("key: ${INVALID_MAP_VALUE}", Scalar::Str("value\nkey:value".into())),
            (
                "key: foo ${STRING_VALUE} ${FLOAT_VALUE}",
                Scalar::Str("foo value 1.1".into()),
            ),
            ("key: ${UNDEFINED_KEY}", Scalar::Null),
            ("key: ${UNDEFINED_KEY:-fallback}", Scalar::Str("fallback".into())),
            ("key: $${STRING_VALUE}", Scalar::Str("${STRING_VALUE}".into())),
        ];
        for (yaml, expected) in cases {
            assert_eq!(value_of(yaml), expected, "{yaml}");
        }
    }

    #[test]
    fn keys_are_not_substituted() {
        let node = parse("${STRING_VALUE}: value", &env).unwrap();
        let Value::Map(entries) = node.value else { panic!() };
        assert_eq!(entries[0].0, "${STRING_VALUE}");
    }

    #[test]
    fn lines_are_kept() {
        let node = parse("a:\n  b:\n    - 1\n    - x: 2\n", &env).unwrap();
        let Value::Map(top) = node.value else { panic!() };
        assert_eq!(top[0].1, 1);
        let Value::Map(b) = &top[0].2.value else { panic!() };
        assert_eq!(b[0].1, 2);
        let Value::Seq(items) = &b[0].2.value else { panic!() };
        assert_eq!(
            items[0],
            Node {
                line: 3,
                value: Value::Scalar(Scalar::Int(1))
            }
        );
        assert_eq!(items[1].line, 4);
    }

    #[test]
    fn document_errors() {
        let err = |yaml: &str| parse(yaml, &env).unwrap_err();
        assert_eq!(err("a: 1\na: 2\n").message, "duplicate key `a`");
        assert_eq!(err("a: 1\na: 2\n").line, 2);
        assert_eq!(
            err("a: ${NAME:?missing}\n").message,
            "invalid substitution ${NAME:?missing}: expected ${NAME}, ${env:NAME} or ${NAME:-default}"
        );
        assert_eq!(err("a: [1, 2\nb: 3\n").line, 2);
        assert_eq!(err("a: 1\n---\nb: 2\n").line, 2);
    }

    #[test]
    fn core_schema_scalars() {
        for (text, expected) in [
            ("", Scalar::Null),
            ("~", Scalar::Null),
            ("NULL", Scalar::Null),
            ("False", Scalar::Bool(false)),
            ("yes", Scalar::Str("yes".into())),
            ("-12", Scalar::Int(-12)),
            ("0o17", Scalar::Int(15)),
            ("1e3", Scalar::Float(1000.0)),
            (".5", Scalar::Float(0.5)),
            ("1.", Scalar::Float(1.0)),
            ("1.2.3", Scalar::Str("1.2.3".into())),
            ("0x", Scalar::Str("0x".into())),
            ("1_000", Scalar::Str("1_000".into())),
        ] {
            assert_eq!(resolve(text), expected, "{text}");
        }
    }
}
