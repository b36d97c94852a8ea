//! Numbers and label values written exactly as upstream's exporter writes them (it runs on
//! Python's `prometheus_client`): sample values in Go's float style, bucket bounds as Python
//! prints floats, and attribute values that are not strings as JSON (`true`, `[1, 2]`).

use ferrotel_sdk::value::Value;

/// The shortest digits that read back as `v`, and the power of ten of the first one:
/// `v = 0.d1d2... * 10^(exponent + 1)`. `v` is finite and non-zero.
fn shortest(v: f64) -> (String, i32) {
    // Rust's `{:e}` writes the shortest round-trip digits, as Python's repr picks them.
    let formatted = format!("{:e}", v.abs());
    let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    (mantissa.replace('.', ""), exponent.parse().unwrap_or(0))
}

/// Python's `repr(float)`: positional between 1e-4 and 1e16, else scientific with a signed
/// exponent of at least two digits (`1e+16`, `1.5e-07`); always a `.0` when integral.
pub fn python_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0.0");
    }
    let (digits, exponent) = shortest(v);
    if (-4..16).contains(&exponent) {
        let body = if exponent >= 0 {
            let point = exponent as usize + 1;
            if digits.len() > point {
                format!("{}.{}", &digits[..point], &digits[point..])
            } else {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{fraction}e{exponent_sign}{:02}", exponent.abs())
    }
}

/// A sample value as `prometheus_client` writes it: `+Inf`, `-Inf`, `NaN`, Python's repr,
/// except positive values of a million or more, which switch to an exponent as Go does
/// (`1.234567e+06`).
pub fn sample_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let repr = python_float(v);
    match repr.find('.') {
        Some(dot) if v > 0.0 && dot > 6 => {
            let mantissa = format!("{}.{}{}", &repr[..1], &repr[1..dot], &repr[dot + 1..]);
            let mantissa = mantissa.trim_end_matches(['0', '.']);
            format!("{mantissa}e+{:02}", dot - 1)
        }
        _ => repr,
    }
}

/// A JSON string as Python's `json.dumps` writes it: everything outside printable ASCII
/// escaped, as `\uXXXX` (surrogate pairs beyond the basic plane).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

fn json_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        python_float(v)
    }
}

fn json_list<T>(items: &[T], out: &mut String, mut write: impl FnMut(&T, &mut String)) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write(item, out);
    }
    out.push(']');
}

fn json(value: &Value, out: &mut String) {
    match value {
        Value::Str(s) => json_string(s, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Double(d) => out.push_str(&json_float(*d)),
        Value::Bytes(bytes) => json_string(&String::from_utf8_lossy(bytes), out),
        Value::StrArray(items) => json_list(items, out, |s, out| json_string(s, out)),
        Value::BoolArray(items) => json_list(items, out, |b, out| out.push_str(if *b { "true" } else { "false" })),
        Value::IntArray(items) => json_list(items, out, |i, out| out.push_str(&i.to_string())),
        Value::DoubleArray(items) => json_list(items, out, |d, out| out.push_str(&json_float(*d))),
        Value::Array(items) => json_list(items, out, json),
        Value::Map(pairs) => {
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(key, out);
                out.push(':');
                json(value, out);
            }
            out.push('}');
        }
        Value::Empty => out.push_str("null"),
    }
}

/// An attribute value as a label value: strings as they are, anything else as JSON.
pub fn label_value(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        other => {
            let mut out = String::new();
            json(other, &mut out);
            out
        }
    }
}

/// Escapes a label value inside its quotes: backslash, newline and double quote.
pub fn escape_label_value(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            _ => out.push(c),
        }
    }
}

/// Escapes a `# HELP` text: backslash and newline.
pub fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (value, Python's repr, prometheus_client's floatToGoString), taken from CPython 3.11
    /// and prometheus_client 0.26.
    const FLOATS: &[(f64, &str, &str)] = &[
        (0.0, "0.0", "0.0"),
        (-0.0, "-0.0", "-0.0"),
        (1.0, "1.0", "1.0"),
        (5.0, "5.0", "5.0"),
        (0.1, "0.1", "0.1"),
        (0.005, "0.005", "0.005"),
        (2.5, "2.5", "2.5"),
        (1e16, "1e+16", "1e+16"),
        (1.5e16, "1.5e+16", "1.5e+16"),
        (1e15, "1000000000000000.0", "1e+15"),
        (123456789012345.67, "123456789012345.67", "1.2345678901234567e+14"),
        (1e-4, "0.0001", "0.0001"),
        (1e-5, "1e-05", "1e-05"),
        (1.5e-7, "1.5e-07", "1.5e-07"),
        (1234567.0, "1234567.0", "1.234567e+06"),
        (10000000.0, "10000000.0", "1e+07"),
        (1000000.5, "1000000.5", "1.0000005e+06"),
        (999999.0, "999999.0", "999999.0"),
        (1e22, "1e+22", "1e+22"),
        (
            1.7976931348623157e308,
            "1.7976931348623157e+308",
            "1.7976931348623157e+308",
        ),
        (5e-324, "5e-324", "5e-324"),
        (
            2.2250738585072014e-308,
            "2.2250738585072014e-308",
            "2.2250738585072014e-308",
        ),
        (0.30000000000000004, "0.30000000000000004", "0.30000000000000004"),
        (100.0, "100.0", "100.0"),
        (472.5, "472.5", "472.5"),
        (-1234567.0, "-1234567.0", "-1234567.0"),
        (1e100, "1e+100", "1e+100"),
        (123456.789, "123456.789", "123456.789"),
        (0.000123, "0.000123", "0.000123"),
    ];

    #[test]
    fn floats_print_as_python_and_prometheus_client_print_them() {
        for (value, repr, go) in FLOATS {
            assert_eq!(python_float(*value), *repr, "{value:?}");
            assert_eq!(sample_value(*value), *go, "{value:?}");
        }
        assert_eq!(sample_value(f64::NAN), "NaN");
        assert_eq!(sample_value(f64::INFINITY), "+Inf");
        assert_eq!(sample_value(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn non_string_attribute_values_are_json_as_python_dumps_them() {
        let cases = [
            (Value::Bool(true), "true"),
            (Value::Int(-2), "-2"),
            (Value::Double(1.5), "1.5"),
            (Value::Double(1e16), "1e+16"),
            (Value::Double(f64::NAN), "NaN"),
            (Value::Double(f64::NEG_INFINITY), "-Infinity"),
            (Value::StrArray(vec!["a".into(), "b".into()]), "[\"a\", \"b\"]"),
            (Value::IntArray(vec![1, 2]), "[1, 2]"),
            (Value::DoubleArray(vec![1.0, 2.5]), "[1.0, 2.5]"),
            (Value::BoolArray(vec![true, false]), "[true, false]"),
            (
                Value::StrArray(vec!["é\"\\\n\u{7f}\u{1}😀".into()]),
                "[\"\\u00e9\\\"\\\\\\n\\u007f\\u0001\\ud83d\\ude00\"]",
            ),
            (
                Value::Array(vec![Value::Empty, Value::Str("x".into())]),
                "[null, \"x\"]",
            ),
            (Value::Str("as is \"x\"".into()), "as is \"x\""),
        ];
        for (value, expected) in cases {
            assert_eq!(label_value(&value), expected, "{value:?}");
        }
    }

    #[test]
    fn escapes() {
        let mut out = String::new();
        escape_label_value("a\\b\n\"c\"", &mut out);
        assert_eq!(out, "a\\\\b\\n\\\"c\\\"");
        assert_eq!(escape_help("line\\one\nline two \"q\""), "line\\\\one\\nline two \"q\"");
    }
}
