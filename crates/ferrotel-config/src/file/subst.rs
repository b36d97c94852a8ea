//! `${NAME}`, `${env:NAME}` and `${NAME:-default}` in scalar values, with `$$` standing for
//! one `$`, as the configuration data model defines them.
//!
//! The input is cut at every `$$` first (left to right), and each piece between escapes is
//! substituted on its own, so a `$` an escape produced never starts a reference. Values
//! from the environment are inserted as they are: never substituted again, never parsed as
//! YAML.

/// Substitutes the references in `text`; `Err` carries the first invalid reference (the text
/// between `${` and `}` that is not a variable name with an optional `:-` default).
pub(crate) fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    for (i, piece) in text.split("$$").enumerate() {
        if i > 0 {
            out.push('$');
        }
        substitute_piece(piece, lookup, &mut out)?;
    }
    Ok(out)
}

fn substitute_piece(piece: &str, lookup: &dyn Fn(&str) -> Option<String>, out: &mut String) -> Result<(), String> {
    let mut rest = piece;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // `${` with no `}` after it, or `${}`, is no reference at all: kept as written.
        let Some(end) = after.find('}').filter(|&end| end > 0) else {
            out.push_str(&rest[start..start + 2]);
            rest = after;
            continue;
        };
        let reference = &after[..end];
        let (name, default) = match reference.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        let name = name.strip_prefix("env:").unwrap_or(name);
        if !is_variable_name(name) {
            return Err(format!("${{{reference}}}"));
        }
        let value = lookup(name).filter(|v| !v.is_empty());
        match (value, default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {}
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(())
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::substitute;

    fn env(name: &str) -> Option<String> {
        let value = match name {
            "NAME" => "checkout",
            "FLAG" => "true",
            "EMPTY" => "",
            "NESTED" => "${NAME}",
            "DOLLARS" => "a$$b",
            "MULTILINE" => "one\nkey: two",
            _ => return None,
        };
        Some(value.to_string())
    }

    #[test]
    fn references_escapes_and_defaults() {
        let cases = [
            ("plain text", "plain text"),
            ("${NAME}", "checkout"),
            ("${env:NAME}", "checkout"),
            ("svc-${NAME}-${FLAG}", "svc-checkout-true"),
            ("${UNSET}", ""),
            ("${UNSET:-fallback value}", "fallback value"),
            ("${EMPTY:-used when empty}", "used when empty"),
            ("${NAME:-unused}", "checkout"),
            ("${UNSET:-}", ""),
            // Values are inserted verbatim: not substituted again, escapes not undone.
            ("${NESTED}", "${NAME}"),
            ("${DOLLARS}", "a$$b"),
            ("${MULTILINE}", "one\nkey: two"),
            ("${UNSET:-${NAME}}", "${NAME}"),
            // `$$` is one `$`, and the `$` it makes starts nothing.
            ("$${NAME}", "${NAME}"),
            ("$$${NAME}", "$checkout"),
            ("$$$${NAME}", "$${NAME}"),
            ("$${NAME:-x}", "${NAME:-x}"),
            ("$${UNSET:-${NAME}}", "${UNSET:-checkout}"),
            ("${UNSET:-$${UNSET}}", "${UNSET:-${UNSET}}"),
            ("cost: 5 $$", "cost: 5 $"),
            ("a $ b", "a $ b"),
            ("${", "${"),
            ("${}", "${}"),
            ("x ${ y", "x ${ y"),
        ];
        for (input, expected) in cases {
            assert_eq!(substitute(input, &env).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn invalid_references_are_errors() {
        for (input, reference) in [
            ("${NAME:?error}", "${NAME:?error}"),
            ("${1NAME}", "${1NAME}"),
            ("${API_$KEY}", "${API_$KEY}"),
            ("ok ${NAME} then ${has space}", "${has space}"),
            ("${env:}", "${env:}"),
        ] {
            assert_eq!(substitute(input, &env), Err(reference.to_string()), "{input}");
        }
    }
}
