//! Metric and label names as the OpenTelemetry/Prometheus compatibility rules make them, the
//! way upstream's `opentelemetry-exporter-prometheus` applies them: invalid characters become
//! one `_` per run, a leading digit becomes `_`, and UCUM units become name suffixes
//! (`s` -> `seconds`, `By` -> `bytes`, `m/s` -> `meters_per_second`, annotations in braces
//! dropped).

/// Replaces every run of characters `keep` rejects with one `_` (an `_` is itself
/// replaced, so runs of underscores collapse too).
fn collapse(text: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if keep(c) {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// A leading digit is not allowed: it becomes `_`, then the rest is collapsed as usual.
/// (Digits outside ASCII are not kept by `collapse` anyway, so checking ASCII is enough.)
fn without_leading_digit(text: &str) -> String {
    match text.chars().next() {
        Some(c) if c.is_ascii_digit() => format!("_{}", &text[1..]),
        _ => text.to_string(),
    }
}

/// A metric name: letters, digits and `:`.
pub fn metric_name(name: &str) -> String {
    collapse(&without_leading_digit(name), name_char)
}

/// A label name: letters and digits.
pub fn label_name(key: &str) -> String {
    collapse(&without_leading_digit(key), |c| c.is_ascii_alphanumeric())
}

/// UCUM units and their Prometheus words.
const UNITS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    // A dimensionless ratio adds no suffix.
    ("1", ""),
    ("%", "percent"),
];

/// The denominators of `x/y` units, in the singular (`m/s` -> `meters_per_second`).
const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Drops `{...}` annotations: on each line, from the first `{` to the last `}` after it.
fn without_annotations(unit: &str) -> String {
    unit.split('\n')
        .map(|line| match line.find('{') {
            Some(open) => match line.rfind('}') {
                Some(close) if close > open => format!("{}{}", &line[..open], &line[close + 1..]),
                _ => line.to_string(),
            },
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The suffix a unit adds to a metric name; empty for none.
pub fn unit_suffix(unit: &str) -> String {
    let unit = without_annotations(unit);
    if let Some(word) = lookup(UNITS, &unit) {
        return word.to_string();
    }
    if let Some((top, bottom)) = unit.split_once('/') {
        let bottom = collapse(bottom, name_char);
        if !bottom.is_empty() {
            let top = collapse(top, name_char);
            let top = lookup(UNITS, &top).map_or(top, str::to_string);
            let bottom = lookup(PER_UNITS, &bottom).map_or(bottom, str::to_string);
            return if top.is_empty() {
                format!("per_{bottom}")
            } else {
                format!("{top}_per_{bottom}")
            };
        }
    }
    // The unit ends the name: no surrounding `_` to double up.
    collapse(&unit, name_char).trim_matches('_').to_string()
}

/// The family name Prometheus sees for a metric of `kind` named `name` (already sanitised)
/// with unit suffix `unit`: a counter loses a `_total` it already has (its samples get one),
/// then the unit is appended unless the name already ends with it.
pub fn family_name(name: &str, unit: &str, counter: bool) -> String {
    let name = match name.strip_suffix("_total") {
        Some(stem) if counter => stem,
        _ => name,
    };
    if unit.is_empty() || name.ends_with(&format!("_{unit}")) {
        name.to_string()
    } else {
        format!("{name}_{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_sanitised_as_upstream_does() {
        // (input, metric name, label name), as upstream's exporter produces them.
        let cases = [
            (
                "http.server.request.duration",
                "http_server_request_duration",
                "http_server_request_duration",
            ),
            ("a__b", "a_b", "a_b"),
            ("1abc", "_abc", "_abc"),
            ("12", "_2", "_2"),
            ("a-b/c", "a_b_c", "a_b_c"),
            ("a:b", "a:b", "a_b"),
            ("_x", "_x", "_x"),
            ("x__", "x_", "x_"),
            ("ü.x", "_x", "_x"),
            ("a..b..", "a_b_", "a_b_"),
            ("٣abc", "_abc", "_abc"),
            ("__a", "_a", "_a"),
        ];
        for (input, metric, label) in cases {
            assert_eq!(metric_name(input), metric, "{input:?}");
            assert_eq!(label_name(input), label, "{input:?}");
        }
    }

    #[test]
    fn units_become_suffixes_as_upstream_maps_them() {
        let cases = [
            ("s", "seconds"),
            ("ms", "milliseconds"),
            ("By", "bytes"),
            ("{request}", ""),
            ("By{x}", "bytes"),
            ("{a}x{b}", ""),
            ("1", ""),
            ("%", "percent"),
            ("m/s", "meters_per_second"),
            ("1/s", "per_second"),
            ("{req}/s", "per_second"),
            ("s/", "s"),
            ("By/", "By"),
            ("km/h", "km_per_hour"),
            ("foo", "foo"),
            ("a b", "a_b"),
            ("_x_", "x"),
            ("KiBy", "kibibytes"),
            ("mo", "mo"),
            ("/s", "per_second"),
            ("{a}/{b}", ""),
            ("x/y/z", "x_per_y_z"),
            ("Cel", "celsius"),
            ("Hz", "hertz"),
            ("a.b", "a_b"),
            ("", ""),
        ];
        for (unit, suffix) in cases {
            assert_eq!(unit_suffix(unit), suffix, "{unit:?}");
        }
    }

    #[test]
    fn family_names_take_the_unit_once_and_counters_their_total_once() {
        assert_eq!(family_name("shop_orders", "", true), "shop_orders");
        assert_eq!(family_name("requests_total", "", true), "requests");
        assert_eq!(family_name("requests_total", "seconds", true), "requests_seconds");
        assert_eq!(
            family_name("requests_total", "seconds", false),
            "requests_total_seconds"
        );
        assert_eq!(family_name("duration_seconds", "seconds", false), "duration_seconds");
        assert_eq!(family_name("bytes", "bytes", true), "bytes_bytes");
    }
}
