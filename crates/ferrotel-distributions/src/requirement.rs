//! PEP 508 dependency specifiers: `name[extras] (specifiers) ; marker`.
//!
//! Versions and specifiers are PEP 440 (via `pep440_rs`); the marker language is evaluated
//! here. Only what metadata uses is accepted; anything else is a [`RequirementError`], which
//! callers treat as "skip this line", never as a crash.

use std::fmt;
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequirementError(pub String);

impl fmt::Display for RequirementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RequirementError {}

/// The values markers are evaluated against. Unset values make comparisons false.
#[derive(Debug, Clone, Default)]
pub struct MarkerEnv {
    pub python_version: String,
    pub python_full_version: String,
    pub implementation_name: String,
    pub implementation_version: String,
    pub platform_python_implementation: String,
    pub sys_platform: String,
    pub platform_system: String,
    pub platform_machine: String,
    pub platform_release: String,
    pub os_name: String,
    /// The extra being evaluated, if any (`extra == "instruments"`).
    pub extra: Option<String>,
}

impl MarkerEnv {
    fn get(&self, var: &str) -> Option<&str> {
        let value = match var {
            "python_version" => &self.python_version,
            "python_full_version" => &self.python_full_version,
            "implementation_name" => &self.implementation_name,
            "implementation_version" => &self.implementation_version,
            "platform_python_implementation" => &self.platform_python_implementation,
            "sys_platform" => &self.sys_platform,
            "platform_system" => &self.platform_system,
            "platform_machine" => &self.platform_machine,
            "platform_release" => &self.platform_release,
            "os_name" => &self.os_name,
            "extra" => return self.extra.as_deref(),
            _ => return None,
        };
        (!value.is_empty()).then_some(value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Var(String),
    Literal(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    Compare(Value, String, Value),
    And(Box<Marker>, Box<Marker>),
    Or(Box<Marker>, Box<Marker>),
}

/// One parsed requirement line.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub name: String,
    pub extras: Vec<String>,
    specifiers: Option<VersionSpecifiers>,
    marker: Option<Marker>,
    /// The line as written, for messages.
    source: String,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Requirement {
    pub fn parse(line: &str) -> Result<Requirement, RequirementError> {
        let source = line.trim().to_string();
        let (spec, marker) = match source.split_once(';') {
            Some((s, m)) => (s.trim(), Some(parse_marker(m.trim())?)),
            None => (source.as_str(), None),
        };
        let name_end = spec
            .find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
            .unwrap_or(spec.len());
        let name = &spec[..name_end];
        if name.is_empty() {
            return Err(RequirementError(format!("no project name in {source:?}")));
        }
        let mut rest = spec[name_end..].trim_start();
        let mut extras = Vec::new();
        if let Some(after) = rest.strip_prefix('[') {
            let (inside, tail) = after
                .split_once(']')
                .ok_or_else(|| RequirementError(format!("unclosed extras in {source:?}")))?;
            extras = inside
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect();
            rest = tail.trim_start();
        }
        let specifiers = if rest.starts_with('@') || rest.is_empty() {
            None // a direct URL reference constrains no version
        } else {
            let inner = rest
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or(rest)
                .trim();
            Some(VersionSpecifiers::from_str(inner).map_err(|e| RequirementError(format!("{source:?}: {e}")))?)
        };
        Ok(Requirement {
            name: name.to_string(),
            extras,
            specifiers,
            marker,
            source,
        })
    }

    /// Whether the marker holds in `env` (no marker always holds).
    pub fn applies(&self, env: &MarkerEnv) -> bool {
        self.marker.as_ref().is_none_or(|m| eval(m, env))
    }

    /// Whether this line exists because of `extra`: it holds with that extra and not without.
    pub fn is_for_extra(&self, extra: &str, env: &MarkerEnv) -> bool {
        let with = MarkerEnv {
            extra: Some(extra.to_string()),
            ..env.clone()
        };
        let without = MarkerEnv {
            extra: None,
            ..env.clone()
        };
        self.applies(&with) && !self.applies(&without)
    }

    /// Whether an installed `version` satisfies the specifiers. An unparseable version
    /// satisfies only a requirement without specifiers.
    pub fn is_satisfied_by(&self, version: &str) -> bool {
        match &self.specifiers {
            None => true,
            Some(specs) => Version::from_str(version).is_ok_and(|v| specs.contains(&v)),
        }
    }
}

fn eval(marker: &Marker, env: &MarkerEnv) -> bool {
    match marker {
        Marker::And(a, b) => eval(a, env) && eval(b, env),
        Marker::Or(a, b) => eval(a, env) || eval(b, env),
        Marker::Compare(lhs, op, rhs) => {
            let resolve = |v: &Value| -> Option<(String, bool)> {
                match v {
                    Value::Literal(s) => Some((s.clone(), false)),
                    Value::Var(name) => {
                        let value = env.get(name)?;
                        // PEP 685: extras compare normalised.
                        let value = if name == "extra" {
                            crate::normalize(value)
                        } else {
                            value.to_string()
                        };
                        Some((value, name.contains("version")))
                    }
                }
            };
            let (Some((mut l, lv)), Some((mut r, rv))) = (resolve(lhs), resolve(rhs)) else {
                return false;
            };
            if matches!(lhs, Value::Var(n) if n == "extra") {
                r = crate::normalize(&r);
            }
            if matches!(rhs, Value::Var(n) if n == "extra") {
                l = crate::normalize(&l);
            }
            compare(&l, op, &r, lv || rv)
        }
    }
}

fn compare(l: &str, op: &str, r: &str, versions: bool) -> bool {
    match op {
        "in" => r.contains(l),
        "not in" => !r.contains(l),
        _ if versions => match (Version::from_str(l), VersionSpecifiers::from_str(&format!("{op}{r}"))) {
            (Ok(v), Ok(spec)) => spec.contains(&v),
            _ => string_compare(l, op, r),
        },
        _ => string_compare(l, op, r),
    }
}

fn string_compare(l: &str, op: &str, r: &str) -> bool {
    match op {
        "==" | "===" => l == r,
        "!=" => l != r,
        "<" => l < r,
        "<=" => l <= r,
        ">" => l > r,
        ">=" => l >= r,
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Op(String),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Token>, RequirementError> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            tokens.push(if c == '(' { Token::Open } else { Token::Close });
            i += 1;
        } else if c == '"' || c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or_else(|| RequirementError(format!("unclosed string in marker {s:?}")))?;
            tokens.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if "=!<>~".contains(c) {
            let mut j = i;
            while j < chars.len() && "=!<>~".contains(chars[j]) {
                j += 1;
            }
            tokens.push(Token::Op(chars[i..j].iter().collect()));
            i = j;
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_' || chars[j] == '.') {
                j += 1;
            }
            tokens.push(Token::Ident(chars[i..j].iter().collect()));
            i = j;
        } else {
            return Err(RequirementError(format!("unexpected {c:?} in marker {s:?}")));
        }
    }
    Ok(tokens)
}

fn parse_marker(s: &str) -> Result<Marker, RequirementError> {
    let tokens = tokenize(s)?;
    let mut pos = 0;
    let marker = parse_or(&tokens, &mut pos, s)?;
    if pos != tokens.len() {
        return Err(RequirementError(format!("trailing input in marker {s:?}")));
    }
    Ok(marker)
}

fn parse_or(t: &[Token], pos: &mut usize, s: &str) -> Result<Marker, RequirementError> {
    let mut left = parse_and(t, pos, s)?;
    while t.get(*pos) == Some(&Token::Ident("or".into())) {
        *pos += 1;
        left = Marker::Or(Box::new(left), Box::new(parse_and(t, pos, s)?));
    }
    Ok(left)
}

fn parse_and(t: &[Token], pos: &mut usize, s: &str) -> Result<Marker, RequirementError> {
    let mut left = parse_atom(t, pos, s)?;
    while t.get(*pos) == Some(&Token::Ident("and".into())) {
        *pos += 1;
        left = Marker::And(Box::new(left), Box::new(parse_atom(t, pos, s)?));
    }
    Ok(left)
}

fn parse_atom(t: &[Token], pos: &mut usize, s: &str) -> Result<Marker, RequirementError> {
    let bad = || RequirementError(format!("malformed marker {s:?}"));
    if t.get(*pos) == Some(&Token::Open) {
        *pos += 1;
        let inner = parse_or(t, pos, s)?;
        if t.get(*pos) != Some(&Token::Close) {
            return Err(bad());
        }
        *pos += 1;
        return Ok(inner);
    }
    let value = |tok: Option<&Token>| match tok {
        Some(Token::Ident(name)) => Some(Value::Var(name.clone())),
        Some(Token::Str(lit)) => Some(Value::Literal(lit.clone())),
        _ => None,
    };
    let lhs = value(t.get(*pos)).ok_or_else(bad)?;
    *pos += 1;
    let op = match (t.get(*pos), t.get(*pos + 1)) {
        (Some(Token::Op(op)), _) => {
            *pos += 1;
            op.clone()
        }
        (Some(Token::Ident(w)), _) if w == "in" => {
            *pos += 1;
            "in".to_string()
        }
        (Some(Token::Ident(w)), Some(Token::Ident(w2))) if w == "not" && w2 == "in" => {
            *pos += 2;
            "not in".to_string()
        }
        _ => return Err(bad()),
    };
    let rhs = value(t.get(*pos)).ok_or_else(bad)?;
    *pos += 1;
    Ok(Marker::Compare(lhs, op, rhs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> MarkerEnv {
        MarkerEnv {
            python_version: "3.11".into(),
            python_full_version: "3.11.7".into(),
            implementation_name: "cpython".into(),
            sys_platform: "linux".into(),
            platform_system: "Linux".into(),
            os_name: "posix".into(),
            ..MarkerEnv::default()
        }
    }

    #[test]
    fn parses_names_extras_specifiers() {
        let r = Requirement::parse("flask >= 1.0, < 4").unwrap();
        assert_eq!(r.name, "flask");
        assert!(r.is_satisfied_by("3.1.2"));
        assert!(!r.is_satisfied_by("0.12"));
        assert!(!r.is_satisfied_by("4.0"));
        let r = Requirement::parse("requests[socks] (~=2.0)").unwrap();
        assert_eq!(r.extras, vec!["socks"]);
        assert!(r.is_satisfied_by("2.32.5") && !r.is_satisfied_by("3.0"));
        let r = Requirement::parse("pkg @ https://example.com/pkg.whl").unwrap();
        assert!(r.is_satisfied_by("whatever"));
        assert!(Requirement::parse("psycopg2-binary>=2.7.3.1")
            .unwrap()
            .is_satisfied_by("2.9.10"));
        assert!(Requirement::parse("opentelemetry-api~=1.12")
            .unwrap()
            .is_satisfied_by("1.45.1"));
        assert!(Requirement::parse("x>=1.0").unwrap().is_satisfied_by("1.1rc1"));
    }

    #[test]
    fn rejects_malformed_lines() {
        for line in [
            "",
            ">=1.0",
            "flask >= ",
            "flask[x",
            "flask; extra ==",
            "flask; (extra == 'a'",
            "flask; extra $ 'a'",
        ] {
            assert!(Requirement::parse(line).is_err(), "{line:?} should be rejected");
        }
    }

    #[test]
    fn markers_evaluate() {
        let holds = |line: &str| Requirement::parse(line).unwrap().applies(&env());
        assert!(holds("a; python_version >= '3.10'"));
        assert!(!holds("a; python_version < '3.10'"));
        assert!(holds("a; python_full_version == '3.11.7' and sys_platform == 'linux'"));
        assert!(holds(
            "a; sys_platform == 'win32' or (os_name == 'posix' and platform_system != 'Darwin')"
        ));
        assert!(holds("a; 'linux' in sys_platform"));
        assert!(holds("a; platform_system not in 'Windows Darwin'"));
        assert!(!holds("a; extra == 'instruments'"));
        assert!(!holds("a; unknown_var == 'x'"));
        // Versions compare as versions, not strings.
        assert!(holds("a; python_version > '3.9'"));
    }

    #[test]
    fn extra_membership_is_normalised() {
        let r = Requirement::parse("flask>=1.0; extra == \"instruments\"").unwrap();
        assert!(r.is_for_extra("instruments", &env()));
        assert!(!r.is_for_extra("instruments-any", &env()));
        let r = Requirement::parse("kafka; extra == 'Instruments_Any' and python_version >= '3.8'").unwrap();
        assert!(r.is_for_extra("instruments-any", &env()));
        let base = Requirement::parse("wrapt>=1.0").unwrap();
        assert!(!base.is_for_extra("instruments", &env()));
    }
}
