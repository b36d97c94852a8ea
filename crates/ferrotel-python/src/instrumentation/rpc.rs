//! gRPC's conventions for the calls [`super::operation`] traces: the span's name and
//! attributes from the full method (`/package.Service/Method`) and the channel's target or
//! the caller's peer address, and which status codes make a span an error.

use ferrotel_sdk::value::Value;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// A full method as gRPC hands it over: text, or bytes on grpc.aio's client side.
pub(crate) fn full_method_text(method: &Bound<'_, PyAny>) -> String {
    if let Ok(text) = method.cast::<PyString>() {
        return text.to_string_lossy().into_owned();
    }
    if let Ok(bytes) = method.cast::<PyBytes>() {
        return String::from_utf8_lossy(bytes.as_bytes()).into_owned();
    }
    String::new()
}

/// `(service, method)` of `/package.Service/Method`; the method is empty when the name has no `/`.
fn split_full_method(full_method: &str) -> (&str, &str) {
    let trimmed = full_method.trim_start_matches('/');
    trimmed.split_once('/').unwrap_or((trimmed, ""))
}

/// Host and port of a channel target (`host:port`, `dns:///host:port`, `ipv4:1.2.3.4:port`,
/// `[::1]:port`) or a server-side peer (`ipv6:%5B::1%5D:port`); `None` for Unix sockets and
/// what is not an address.
fn host_and_port(address: &str) -> Option<(String, Option<i64>)> {
    let mut rest = address;
    if let Some((scheme, after)) = address.split_once(':') {
        match scheme {
            "unix" | "unix-abstract" | "vsock" => return None,
            "dns" | "ipv4" | "ipv6" => {
                // `dns://authority/host:port` or `dns:host:port`; a list of addresses: the first.
                rest = after
                    .strip_prefix("//")
                    .map_or(after, |a| a.split_once('/').map_or(a, |(_, h)| h));
                rest = rest.split(',').next().unwrap_or(rest);
            }
            _ => {}
        }
    }
    let rest = rest
        .replace("%5B", "[")
        .replace("%5D", "]")
        .replace("%5b", "[")
        .replace("%5d", "]");
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host.to_string(), after.strip_prefix(':'))
    } else if rest.matches(':').count() > 1 {
        (rest.clone(), None) // a bare IPv6 address
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (rest.clone(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port.and_then(|p| p.parse().ok())))
}

/// The span name and attributes of a call to `full_method`: on the client, `address` is
/// the channel's target (`server.*`); on the server, the caller's peer (`network.peer.*`).
pub(crate) fn call_conventions(
    full_method: &str,
    server: bool,
    address: Option<&str>,
) -> (String, Vec<(String, Value)>) {
    let (service, method) = split_full_method(full_method);
    let mut attributes = vec![
        ("rpc.system".to_string(), Value::Str("grpc".into())),
        ("rpc.service".to_string(), Value::Str(service.into())),
        ("rpc.method".to_string(), Value::Str(method.into())),
    ];
    if let Some((host, port)) = address.and_then(host_and_port) {
        let (address_key, port_key) = if server {
            ("network.peer.address", "network.peer.port")
        } else {
            ("server.address", "server.port")
        };
        attributes.push((address_key.to_string(), Value::Str(host)));
        if let Some(port) = port {
            attributes.push((port_key.to_string(), Value::Int(port)));
        }
    }
    (full_method.trim_start_matches('/').to_string(), attributes)
}

/// Whether status `code` makes the call's span an error: every code but OK for the client;
/// for the server only those that say the server failed (the others are the caller's
/// mistake or an expected answer).
pub(crate) fn is_error(server: bool, code: i64) -> bool {
    const SERVER_ERRORS: [i64; 6] = [
        2,  // UNKNOWN
        4,  // DEADLINE_EXCEEDED
        12, // UNIMPLEMENTED
        13, // INTERNAL
        14, // UNAVAILABLE
        15, // DATA_LOSS
    ];
    if server {
        SERVER_ERRORS.contains(&code)
    } else {
        code != 0
    }
}

/// A status code as the glue has it: a number, or a `grpc.StatusCode` (its value is
/// `(number, name)`); `None` for anything else.
pub(crate) fn status_number(code: &Bound<'_, PyAny>) -> Option<i64> {
    if let Ok(number) = code.extract::<i64>() {
        return Some(number);
    }
    code.getattr("value").ok()?.get_item(0).ok()?.extract().ok()
}

/// For the path that records through another SDK's provider: the span name and attributes
/// of a call, as [`call_conventions`].
#[pyfunction]
#[pyo3(signature = (full_method, server, address=None))]
pub(crate) fn rpc_conventions<'py>(
    py: Python<'py>,
    full_method: &Bound<'py, PyAny>,
    server: bool,
    address: Option<&str>,
) -> PyResult<(String, Bound<'py, PyDict>)> {
    let (name, attributes) = call_conventions(&full_method_text(full_method), server, address);
    let dict = PyDict::new(py);
    for (key, value) in attributes {
        match value {
            Value::Int(n) => dict.set_item(key, n)?,
            Value::Str(s) => dict.set_item(key, s)?,
            _ => {}
        }
    }
    Ok((name, dict))
}

/// For the path that records through another SDK's provider: the status code's number and
/// whether it makes the span an error, as [`is_error`].
#[pyfunction]
pub(crate) fn rpc_status(server: bool, code: &Bound<'_, PyAny>) -> (i64, bool) {
    let number = status_number(code).unwrap_or(2);
    (number, is_error(server, number))
}

#[cfg(test)]
mod tests {
    use super::*;

    type HostPort = Option<(&'static str, Option<i64>)>;

    #[test]
    fn targets_and_peers() {
        let cases: &[(&str, HostPort)] = &[
            ("localhost:50051", Some(("localhost", Some(50051)))),
            ("dns:///example.com:443", Some(("example.com", Some(443)))),
            ("dns://8.8.8.8/example.com:443", Some(("example.com", Some(443)))),
            ("dns:example.com", Some(("example.com", None))),
            ("ipv4:127.0.0.1:5000", Some(("127.0.0.1", Some(5000)))),
            ("ipv4:10.0.0.1:1,10.0.0.2:2", Some(("10.0.0.1", Some(1)))),
            ("ipv6:%5B::1%5D:5000", Some(("::1", Some(5000)))),
            ("ipv6:[::1]:5000", Some(("::1", Some(5000)))),
            ("[::1]:5000", Some(("::1", Some(5000)))),
            ("::1", Some(("::1", None))),
            ("example.com", Some(("example.com", None))),
            ("unix:/tmp/socket", None),
            ("unix-abstract:name", None),
            ("", None),
        ];
        for (address, expected) in cases {
            let found = host_and_port(address);
            let expected = expected.map(|(h, p)| (h.to_string(), p));
            assert_eq!(found, expected, "{address}");
        }
    }

    #[test]
    fn names_and_attributes() {
        let (name, attrs) = call_conventions("/shop.v1.Cart/Add", false, Some("localhost:7000"));
        assert_eq!(name, "shop.v1.Cart/Add");
        let keys: Vec<&str> = attrs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "rpc.system",
                "rpc.service",
                "rpc.method",
                "server.address",
                "server.port"
            ]
        );
        assert_eq!(attrs[1].1, Value::Str("shop.v1.Cart".into()));
        assert_eq!(attrs[2].1, Value::Str("Add".into()));
        let (_, attrs) = call_conventions("/shop.v1.Cart/Add", true, Some("ipv4:127.0.0.1:5123"));
        assert_eq!(
            attrs[3],
            ("network.peer.address".into(), Value::Str("127.0.0.1".into()))
        );
        assert_eq!(attrs[4], ("network.peer.port".into(), Value::Int(5123)));
    }

    #[test]
    fn error_codes() {
        assert!(!is_error(false, 0) && is_error(false, 5) && is_error(false, 2));
        let server_errors: Vec<i64> = (0..17).filter(|c| is_error(true, *c)).collect();
        assert_eq!(server_errors, [2, 4, 12, 13, 14, 15]);
    }
}
