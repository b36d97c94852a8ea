//! Semantic conventions: which attributes an HTTP server or client span and a database
//! span carry, their names and status, from the facts of one request or statement (with
//! SQL summaries and literal stripping).
//!
//! Stable names (`http.request.method`, `url.path`, ...) are always emitted; with
//! `OTEL_SEMCONV_STABILITY_OPT_IN=http/dup` the old names (`http.method`, `http.target`,
//! ...) are added for dashboards built on upstream's defaults. Pure data in, data out: the
//! Python layer gathers the facts, this crate decides what they become.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrotel_config::SemconvMode;
use ferrotel_sdk::span::StatusCode;
use ferrotel_sdk::value::Value;

/// The methods the conventions know; anything else is reported as `_OTHER`.
const KNOWN_METHODS: &[&str] = &[
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

pub type Attributes = Vec<(&'static str, Value)>;

/// What a server knows of a request when it arrives.
#[derive(Debug, Default, Clone)]
pub struct ServerRequest<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    /// Host as the client addressed it (`Host` header), without the port.
    pub server_address: &'a str,
    pub server_port: Option<u16>,
    pub client_address: &'a str,
    pub client_port: Option<u16>,
    pub user_agent: &'a str,
    /// `1.1`, `2`, ... from `HTTP/1.1`.
    pub protocol_version: &'a str,
}

/// `OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS`, set once by the process's
/// instrumentation settings: every method is then reported as sent (upper-cased), none as
/// `_OTHER`. A process-wide switch because every HTTP span and metric of the process obeys it.
static CAPTURE_ALL_METHODS: AtomicBool = AtomicBool::new(false);

/// Turns `OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS` on or off for the process.
pub fn set_capture_all_methods(on: bool) {
    CAPTURE_ALL_METHODS.store(on, Ordering::Relaxed);
}

/// The method as the conventions want it, and the original when it differs: a method the
/// conventions do not know is `_OTHER`, unless every method is to be captured, then it is
/// kept, upper-cased as upstream's instrumentations do.
pub fn method(raw: &str) -> (Cow<'static, str>, Option<&str>) {
    method_in(raw, CAPTURE_ALL_METHODS.load(Ordering::Relaxed))
}

fn method_in(raw: &str, capture_all: bool) -> (Cow<'static, str>, Option<&str>) {
    if let Some(known) = KNOWN_METHODS.iter().find(|m| **m == raw) {
        return (Cow::Borrowed(known), None);
    }
    if !capture_all {
        return (Cow::Borrowed("_OTHER"), Some(raw));
    }
    let upper = raw.to_ascii_uppercase();
    let original = (upper != raw).then_some(raw);
    match KNOWN_METHODS.iter().find(|m| **m == upper) {
        Some(known) => (Cow::Borrowed(known), original),
        None => (Cow::Owned(upper), original),
    }
}

/// `{METHOD} {route}`, or the method alone without a route (`HTTP` for a method reported
/// as `_OTHER`).
pub fn span_name(raw_method: &str, route: Option<&str>) -> String {
    let (m, _) = method(raw_method);
    let m = if m == "_OTHER" { "HTTP" } else { &m };
    match route.filter(|r| !r.is_empty()) {
        // Joined by hand: `format!` costs ~500 instructions more, once per request.
        Some(route) => [m, route].join(" "),
        None => m.to_string(),
    }
}

fn push_str(out: &mut Attributes, key: &'static str, value: &str) {
    if !value.is_empty() {
        out.push((key, Value::Str(value.to_string())));
    }
}

/// Attributes a server span starts with.
pub fn server_request_attributes(r: &ServerRequest<'_>, mode: SemconvMode) -> Attributes {
    let mut out = Attributes::with_capacity(12);
    let (m, original) = method(r.method);
    out.push(("http.request.method", Value::Str(m.to_string())));
    if let Some(original) = original {
        push_str(&mut out, "http.request.method_original", original);
    }
    push_str(&mut out, "url.scheme", r.scheme);
    push_str(&mut out, "url.path", r.path);
    push_str(&mut out, "url.query", r.query);
    push_str(&mut out, "server.address", r.server_address);
    if let Some(port) = r.server_port {
        out.push(("server.port", Value::Int(port as i64)));
    }
    push_str(&mut out, "client.address", r.client_address);
    if let Some(port) = r.client_port {
        out.push(("client.port", Value::Int(port as i64)));
    }
    push_str(&mut out, "user_agent.original", r.user_agent);
    push_str(&mut out, "network.protocol.version", r.protocol_version);
    if mode == SemconvMode::Duplicate {
        push_str(&mut out, "http.method", r.method);
        push_str(&mut out, "http.scheme", r.scheme);
        let target = if r.query.is_empty() {
            r.path.to_string()
        } else {
            format!("{}?{}", r.path, r.query)
        };
        push_str(&mut out, "http.target", &target);
        push_str(&mut out, "http.host", r.server_address);
        push_str(&mut out, "net.host.name", r.server_address);
        if let Some(port) = r.server_port {
            out.push(("net.host.port", Value::Int(port as i64)));
        }
        push_str(&mut out, "net.peer.ip", r.client_address);
        push_str(&mut out, "http.user_agent", r.user_agent);
        push_str(&mut out, "http.flavor", r.protocol_version);
    }
    out
}

/// Attributes and status once the response status is known. Servers mark only 5xx as
/// errors (a 4xx is the client's); `error.type` carries the status code then.
pub fn server_response(status: u16, mode: SemconvMode) -> (Attributes, StatusCode) {
    let mut out = vec![("http.response.status_code", Value::Int(status as i64))];
    if mode == SemconvMode::Duplicate {
        out.push(("http.status_code", Value::Int(status as i64)));
    }
    if status >= 500 {
        out.push(("error.type", Value::Str(status.to_string())));
        (out, StatusCode::Error)
    } else {
        (out, StatusCode::Unset)
    }
}

/// The route attribute (`http.route`, the template the framework matched).
pub fn route(route: &str) -> Attributes {
    vec![("http.route", Value::Str(route.to_string()))]
}

/// What a client knows of a request it sends.
#[derive(Debug, Default, Clone)]
pub struct ClientRequest<'a> {
    pub method: &'a str,
    /// The full URL, as given.
    pub url: &'a str,
}

/// `(scheme, host, port)` of an absolute URL, the port defaulted from the scheme.
pub fn url_parts(url: &str) -> (&str, &str, Option<u16>) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = host_and_port(authority);
    let port = port.or(match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    });
    (scheme, host, port)
}

/// The URL without credentials (`user:password@` becomes `REDACTED:REDACTED@`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://REDACTED:REDACTED@{host}{}", &rest[end..]),
        None => url.to_string(),
    }
}

/// Attributes a client span starts with.
pub fn client_request_attributes(r: &ClientRequest<'_>, mode: SemconvMode) -> Attributes {
    let mut out = Attributes::with_capacity(6);
    let (m, original) = method(r.method);
    out.push(("http.request.method", Value::Str(m.to_string())));
    if let Some(original) = original {
        push_str(&mut out, "http.request.method_original", original);
    }
    let url = redact_url(r.url);
    let (_, host, port) = url_parts(r.url);
    push_str(&mut out, "url.full", &url);
    push_str(&mut out, "server.address", host);
    if let Some(port) = port {
        out.push(("server.port", Value::Int(port as i64)));
    }
    if mode == SemconvMode::Duplicate {
        push_str(&mut out, "http.method", r.method);
        push_str(&mut out, "http.url", &url);
        push_str(&mut out, "net.peer.name", host);
        if let Some(port) = port {
            out.push(("net.peer.port", Value::Int(port as i64)));
        }
    }
    out
}

/// Attributes and status once a client has its response: for a client every 4xx and 5xx
/// is an error.
pub fn client_response(status: u16, mode: SemconvMode) -> (Attributes, StatusCode) {
    let mut out = vec![("http.response.status_code", Value::Int(status as i64))];
    if mode == SemconvMode::Duplicate {
        out.push(("http.status_code", Value::Int(status as i64)));
    }
    if status >= 400 {
        out.push(("error.type", Value::Str(status.to_string())));
        (out, StatusCode::Error)
    } else {
        (out, StatusCode::Unset)
    }
}

/// Skips leading whitespace and SQL comments.
fn skip_blank(mut q: &str) -> &str {
    loop {
        q = q.trim_start();
        if let Some(rest) = q.strip_prefix("--") {
            q = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = q.strip_prefix("/*") {
            q = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return q;
        }
    }
}

fn words(q: &str) -> impl Iterator<Item = &str> {
    q.split(|c: char| c.is_whitespace() || c == '(' || c == ';' || c == ',')
        .filter(|w| !w.is_empty())
}

/// The operation (first keyword, upper-cased) and the table it is about, when a simple
/// reading of the statement finds them.
pub fn sql_summary(query: &str) -> (Option<String>, Option<String>) {
    let q = skip_blank(query);
    let mut it = words(q);
    let Some(first) = it.next() else { return (None, None) };
    if !first.chars().all(|c| c.is_ascii_alphabetic()) {
        return (None, None);
    }
    let operation = first.to_ascii_uppercase();
    let rest: Vec<&str> = it.collect();
    let after = |keyword: &str| -> Option<String> {
        let i = rest.iter().position(|w| w.eq_ignore_ascii_case(keyword))?;
        let mut names = rest[i + 1..]
            .iter()
            .skip_while(|w| ["IF", "NOT", "EXISTS"].iter().any(|k| w.eq_ignore_ascii_case(k)));
        names.next().map(|n| n.trim_matches(['"', '`', '[', ']']).to_string())
    };
    let collection = match operation.as_str() {
        "SELECT" | "DELETE" => after("FROM"),
        "INSERT" | "REPLACE" => after("INTO"),
        "UPDATE" => rest.first().map(|n| n.trim_matches(['"', '`', '[', ']']).to_string()),
        "CREATE" | "DROP" | "ALTER" => after("TABLE"),
        _ => None,
    };
    (
        Some(operation),
        collection.filter(|c| c.chars().all(|ch| ch.is_alphanumeric() || "_.$".contains(ch))),
    )
}

/// The statement with literal values (strings, numbers, hex blobs) replaced by `?`, so no
/// data leaves the process in `db.query.text`. Numbered placeholders (`$1`, `?1`, `:1`) are
/// not literals and stay as written.
pub fn sanitize_sql(query: &str) -> String {
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut prev_word = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' {
            // A quoted string, '' being an escaped quote.
            i += 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            if out.ends_with(['x', 'X']) && !prev_word {
                out.pop();
            }
            out.push('?');
            prev_word = false;
        } else if c.is_ascii_digit() && !prev_word {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            out.push('?');
        } else {
            let ch = query[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            // Digits after a word character or a placeholder sign are part of that token.
            prev_word = ch.is_alphanumeric() || matches!(ch, '_' | '$' | '?' | ':');
            i += ch.len_utf8();
            if ch.eq_ignore_ascii_case(&'x') && bytes.get(i) == Some(&b'\'') {
                prev_word = false;
            }
        }
    }
    out
}

/// Name and attributes of a database call span (`database/dup` adds the old names).
pub fn db_call(system: &str, namespace: &str, query: &str, mode: SemconvMode) -> (String, Attributes) {
    let (operation, collection) = sql_summary(query);
    let name = match (&operation, &collection) {
        (Some(op), Some(table)) => format!("{op} {table}"),
        (Some(op), None) => op.clone(),
        _ => system.to_string(),
    };
    let text = sanitize_sql(query);
    let mut out = Attributes::with_capacity(8);
    push_str(&mut out, "db.system.name", system);
    push_str(&mut out, "db.namespace", namespace);
    push_str(&mut out, "db.query.text", &text);
    if let Some(op) = &operation {
        push_str(&mut out, "db.operation.name", op);
    }
    if let Some(table) = &collection {
        push_str(&mut out, "db.collection.name", table);
    }
    if mode == SemconvMode::Duplicate {
        push_str(&mut out, "db.system", system);
        push_str(&mut out, "db.name", namespace);
        push_str(&mut out, "db.statement", &text);
    }
    (name, out)
}

/// Whether header `name` (lower-case) matches a configured pattern: a header name, where
/// `.*` stands for any run of characters, compared without regard to case.
pub fn header_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let parts: Vec<&str> = pattern.split(".*").collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == name;
    }
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// `http.{request|response}.header.<name>` attributes for the headers `capture` names, the
/// values of those `sanitize` names replaced by `[REDACTED]`. Header names are lower-case.
pub fn captured_headers(
    direction: &str,
    headers: &[(String, String)],
    capture: &[String],
    sanitize: &[String],
) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for (name, value) in headers {
        if !capture.iter().any(|p| header_matches(p, name)) {
            continue;
        }
        let value = if sanitize.iter().any(|p| header_matches(p, name)) {
            "[REDACTED]"
        } else {
            value.as_str()
        };
        let key = format!("http.{direction}.header.{name}");
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, Value::StrArray(values))) => values.push(value.to_string()),
            _ => out.push((key, Value::StrArray(vec![value.to_string()]))),
        }
    }
    out
}

/// `host[:port]` split; IPv6 brackets are taken off the host.
pub fn host_and_port(value: &str) -> (&str, Option<u16>) {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || value.starts_with('[') => match port.parse() {
            Ok(port) if !host.starts_with('[') || host.ends_with(']') => (host.trim_matches(['[', ']']), Some(port)),
            _ => (value.trim_matches(['[', ']']), None),
        },
        _ => (value.trim_matches(['[', ']']), None),
    }
}

/// Parses the status code off a WSGI status line (`"404 Not Found"`).
pub fn status_code(status_line: &str) -> Option<u16> {
    status_line
        .split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|c| (100..=599).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(attrs: &Attributes) -> Vec<&'static str> {
        attrs.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn methods_and_names() {
        assert_eq!(method("GET"), ("GET".into(), None));
        assert_eq!(method("get"), ("_OTHER".into(), Some("get")));
        assert_eq!(method("PURGE"), ("_OTHER".into(), Some("PURGE")));
        assert_eq!(span_name("GET", Some("/users/<id>")), "GET /users/<id>");
        assert_eq!(span_name("POST", None), "POST");
        assert_eq!(span_name("PURGE", Some("/x")), "HTTP /x");
    }

    #[test]
    fn capturing_all_methods_keeps_them_upper_cased() {
        assert_eq!(method_in("PURGE", true), ("PURGE".into(), None));
        assert_eq!(method_in("purge", true), ("PURGE".into(), Some("purge")));
        assert_eq!(method_in("get", true), ("GET".into(), Some("get")));
        assert_eq!(method_in("GET", true), ("GET".into(), None));
    }

    #[test]
    fn stable_and_duplicate_server_attributes() {
        let r = ServerRequest {
            method: "GET",
            scheme: "http",
            path: "/a",
            query: "x=1",
            server_address: "example.com",
            server_port: Some(8080),
            client_address: "10.0.0.1",
            client_port: Some(5555),
            user_agent: "curl",
            protocol_version: "1.1",
        };
        let stable = server_request_attributes(&r, SemconvMode::Stable);
        assert_eq!(
            keys(&stable),
            vec![
                "http.request.method",
                "url.scheme",
                "url.path",
                "url.query",
                "server.address",
                "server.port",
                "client.address",
                "client.port",
                "user_agent.original",
                "network.protocol.version"
            ]
        );
        let dup = server_request_attributes(&r, SemconvMode::Duplicate);
        assert!(dup.contains(&("http.target", Value::Str("/a?x=1".into()))));
        assert!(dup.contains(&("http.method", Value::Str("GET".into()))));
        assert!(dup.contains(&("net.host.port", Value::Int(8080))));
    }

    #[test]
    fn client_side() {
        assert_eq!(
            url_parts("https://api.example.com/v1?x"),
            ("https", "api.example.com", Some(443))
        );
        assert_eq!(url_parts("http://u:p@h:8080/"), ("http", "h", Some(8080)));
        assert_eq!(
            redact_url("http://u:p@h:8080/a?b"),
            "http://REDACTED:REDACTED@h:8080/a?b"
        );
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        let attrs = client_request_attributes(
            &ClientRequest {
                method: "GET",
                url: "http://u:p@h:81/x",
            },
            SemconvMode::Stable,
        );
        assert_eq!(
            keys(&attrs),
            vec!["http.request.method", "url.full", "server.address", "server.port"]
        );
        assert_eq!(attrs[1].1, Value::Str("http://REDACTED:REDACTED@h:81/x".into()));
        let (attrs, status) = client_response(404, SemconvMode::Stable);
        assert_eq!(status, StatusCode::Error);
        assert_eq!(keys(&attrs), vec!["http.response.status_code", "error.type"]);
        assert_eq!(client_response(204, SemconvMode::Stable).1, StatusCode::Unset);
    }

    #[test]
    fn sql() {
        assert_eq!(
            sql_summary("select * from visits where x = 1"),
            (Some("SELECT".into()), Some("visits".into()))
        );
        assert_eq!(
            sql_summary("  -- hi\n INSERT INTO \"t\" VALUES (?)"),
            (Some("INSERT".into()), Some("t".into()))
        );
        assert_eq!(
            sql_summary("UPDATE t SET a = 1"),
            (Some("UPDATE".into()), Some("t".into()))
        );
        assert_eq!(
            sql_summary("CREATE TABLE IF NOT EXISTS visits (p TEXT)"),
            (Some("CREATE".into()), Some("visits".into()))
        );
        assert_eq!(sql_summary("/* c */ PRAGMA x"), (Some("PRAGMA".into()), None));
        assert_eq!(sql_summary(""), (None, None));
        assert_eq!(
            sanitize_sql("SELECT * FROM t WHERE a = 'it''s' AND b = 42 AND c = 1.5e3"),
            "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?"
        );
        assert_eq!(
            sanitize_sql("INSERT INTO t2 VALUES (x'0A', ?, 'é')"),
            "INSERT INTO t2 VALUES (?, ?, ?)"
        );
        assert_eq!(sanitize_sql("SELECT col1 FROM tab2"), "SELECT col1 FROM tab2");
        assert_eq!(
            sanitize_sql("SELECT * FROM t WHERE a = $1 AND b = ?2 AND c = :3 AND d = 4"),
            "SELECT * FROM t WHERE a = $1 AND b = ?2 AND c = :3 AND d = ?"
        );
        let (name, attrs) = db_call(
            "sqlite",
            "app.db",
            "SELECT count(*) FROM visits WHERE p = 'x'",
            SemconvMode::Stable,
        );
        assert_eq!(name, "SELECT visits");
        assert_eq!(
            keys(&attrs),
            vec![
                "db.system.name",
                "db.namespace",
                "db.query.text",
                "db.operation.name",
                "db.collection.name"
            ]
        );
        assert_eq!(attrs[2].1, Value::Str("SELECT count(*) FROM visits WHERE p = ?".into()));
        let (_, dup) = db_call("sqlite", ":memory:", "DELETE FROM t", SemconvMode::Duplicate);
        assert!(dup.contains(&("db.statement", Value::Str("DELETE FROM t".into()))));
    }

    #[test]
    fn headers() {
        assert!(header_matches("X-Request-ID", "x-request-id"));
        assert!(header_matches("content-.*", "content-type"));
        assert!(header_matches(".*-id", "x-request-id"));
        assert!(header_matches("x-.*-id", "x-request-id"));
        assert!(!header_matches("x-.*-id", "x-id"));
        assert!(!header_matches("content-type", "content-length"));
        let headers = vec![
            ("x-request-id".to_string(), "abc".to_string()),
            ("authorization".to_string(), "Bearer s3cret".to_string()),
            ("accept".to_string(), "a".to_string()),
            ("accept".to_string(), "b".to_string()),
        ];
        let capture = vec![
            "x-request-id".to_string(),
            "Authorization".to_string(),
            "accept".to_string(),
        ];
        let got = captured_headers("request", &headers, &capture, &["authorization".to_string()]);
        assert_eq!(
            got,
            vec![
                (
                    "http.request.header.x-request-id".to_string(),
                    Value::StrArray(vec!["abc".into()])
                ),
                (
                    "http.request.header.authorization".to_string(),
                    Value::StrArray(vec!["[REDACTED]".into()])
                ),
                (
                    "http.request.header.accept".to_string(),
                    Value::StrArray(vec!["a".into(), "b".into()])
                ),
            ]
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(host_and_port("example.com:8080"), ("example.com", Some(8080)));
        assert_eq!(host_and_port("example.com"), ("example.com", None));
        assert_eq!(host_and_port("[::1]:80"), ("::1", Some(80)));
        assert_eq!(host_and_port("[::1]"), ("::1", None));
        assert_eq!(host_and_port("host:notaport"), ("host:notaport", None));
    }

    #[test]
    fn status_rules() {
        let (attrs, status) = server_response(404, SemconvMode::Stable);
        assert_eq!(status, StatusCode::Unset);
        assert_eq!(attrs, vec![("http.response.status_code", Value::Int(404))]);
        let (attrs, status) = server_response(503, SemconvMode::Duplicate);
        assert_eq!(status, StatusCode::Error);
        assert_eq!(
            keys(&attrs),
            vec!["http.response.status_code", "http.status_code", "error.type"]
        );
        assert_eq!(status_code("404 NOT FOUND"), Some(404));
        assert_eq!(status_code("abc"), None);
        assert_eq!(status_code("99 x"), None);
    }
}
