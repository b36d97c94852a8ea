//! Parsers for the metadata files inside a distribution's metadata directory.

/// One entry point: `name = module:attr [extras]` under `[group]` in `entry_points.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    pub group: String,
    pub name: String,
    /// The importable module, e.g. `opentelemetry.instrumentation.flask`.
    pub module: String,
    /// The dotted attribute path inside the module, if any, e.g. `FlaskInstrumentor`.
    pub attr: Option<String>,
    /// The distribution that declares it.
    pub distribution: String,
}

/// Parses the `wanted` group of an `entry_points.txt` (INI): `[group]` sections of
/// `name = module[:attr] [extras]`. Comments, blank lines and malformed lines are skipped.
/// Other groups are skipped without allocating: start-up reads every installed distribution's
/// file, and most of their lines are console scripts.
pub(crate) fn parse_entry_points(text: &str, distribution: &str, wanted: &str) -> Vec<EntryPoint> {
    let mut in_wanted = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_wanted = name.trim() == wanted;
            continue;
        }
        let (true, Some((name, value))) = (in_wanted, line.split_once('=')) else {
            continue;
        };
        // Extras (`[a,b]`) only matter to installers.
        let value = value.split('[').next().unwrap_or("").trim();
        let (module, attr) = match value.split_once(':') {
            Some((m, a)) => (m.trim(), Some(a.trim().to_string()).filter(|a| !a.is_empty())),
            None => (value, None),
        };
        let name = name.trim();
        if name.is_empty() || module.is_empty() {
            continue;
        }
        out.push(EntryPoint {
            group: wanted.to_string(),
            name: name.to_string(),
            module: module.to_string(),
            attr,
            distribution: distribution.to_string(),
        });
    }
    out
}

/// Every value of header `key` in an RFC 822-style metadata file (headers end at the first
/// blank line; the body is the description).
pub(crate) fn headers(text: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case(key) {
                out.push(v.trim().to_string());
            }
        }
    }
    out
}

pub(crate) fn header(text: &str, key: &str) -> Option<String> {
    headers(text, key).into_iter().next()
}

/// Converts setuptools' `requires.txt` (`[extra:marker]` sections) to PEP 508 lines.
pub(crate) fn egg_requires(text: &str) -> Vec<String> {
    let mut section_marker: Option<String> = None;
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (extra, marker) = section.split_once(':').unwrap_or((section, ""));
            let mut parts = Vec::new();
            if !extra.is_empty() {
                parts.push(format!("extra == \"{extra}\""));
            }
            if !marker.is_empty() {
                parts.push(format!("({marker})"));
            }
            section_marker = (!parts.is_empty()).then(|| parts.join(" and "));
            continue;
        }
        out.push(match &section_marker {
            Some(m) => format!("{line}; {m}"),
            None => line.to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_points_file() {
        let text = "[opentelemetry_instrumentor]\nflask = opentelemetry.instrumentation.flask:FlaskInstrumentor\n\
                    # comment\n\n[console_scripts]\ntool=pkg.cli:main [cli]\nbare = pkg.mod\nbroken\n";
        let eps = parse_entry_points(text, "demo", "opentelemetry_instrumentor");
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].group, "opentelemetry_instrumentor");
        assert_eq!(eps[0].module, "opentelemetry.instrumentation.flask");
        assert_eq!(eps[0].attr.as_deref(), Some("FlaskInstrumentor"));
        let scripts = parse_entry_points(text, "demo", "console_scripts");
        assert_eq!(scripts.len(), 2);
        assert_eq!(scripts[0].attr.as_deref(), Some("main"));
        assert_eq!(scripts[1].attr, None);
    }

    #[test]
    fn metadata_headers_stop_at_the_body() {
        let text =
            "Name: x\nRequires-Dist: a>=1\nRequires-Dist: b; extra == \"instruments\"\n\nRequires-Dist: not-a-header\n";
        assert_eq!(
            headers(text, "requires-dist"),
            vec!["a>=1", "b; extra == \"instruments\""]
        );
    }

    #[test]
    fn egg_requires_sections_become_markers() {
        let text = "core>=1\n\n[instruments]\nflask>=1.0\n\n[:python_version < \"3.12\"]\nbackport\n";
        assert_eq!(
            egg_requires(text),
            vec![
                "core>=1",
                "flask>=1.0; extra == \"instruments\"",
                "backport; (python_version < \"3.12\")"
            ]
        );
    }
}
