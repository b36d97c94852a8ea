//! HTTP headers as the instrumentations meet them: a request's headers as a carrier for
//! extraction (a WSGI environ looked up by name, or an ASGI list), a client's outgoing
//! headers as a carrier for injection, any header list or map as `(name, value)` pairs, and
//! the captured ones as span attributes.

use ferrotel_propagation::Carrier;
use ferrotel_semconv as semconv;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::settings::settings;
use crate::trace::span::Span;

/// `(lower-case name, value)` pairs from a header list (`[(name, value)]`) or map (`.items()`).
pub(crate) fn header_pairs(headers: Option<&Bound<'_, PyAny>>) -> Vec<(String, String)> {
    let Some(headers) = headers.filter(|h| !h.is_none()) else {
        return Vec::new();
    };
    let items = if headers.cast::<PyList>().is_ok() || headers.cast::<PyTuple>().is_ok() {
        Ok(headers.clone())
    } else {
        headers.call_method0("items")
    };
    let Ok(items) = items.and_then(|i| i.try_iter()) else {
        return Vec::new();
    };
    items
        .flatten()
        .filter_map(|pair| {
            // ASGI's byte pairs first: a failed `(str, str)` extraction builds an exception.
            if let Some(pair) = byte_pair(&pair) {
                return Some(pair);
            }
            pair.extract::<(String, String)>().ok().or_else(|| {
                // ASGI sends headers as byte pairs; HTTP header bytes are Latin-1.
                let (k, v) = pair.extract::<(Vec<u8>, Vec<u8>)>().ok()?;
                let latin1 = |b: Vec<u8>| b.into_iter().map(char::from).collect::<String>();
                Some((latin1(k), latin1(v)))
            })
        })
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// `Content-Length` from an ASGI list of byte pairs without making text of every header
/// (a response start's, once per request); `None` for any other shape.
fn byte_pairs_content_length(headers: &Bound<'_, PyAny>) -> Option<Option<i64>> {
    let list = headers.cast::<PyList>().ok()?;
    for pair in list.iter() {
        let pair = pair.cast_into::<PyTuple>().ok().filter(|p| p.len() == 2)?;
        let name = pair.get_item(0).ok()?;
        let name = name.cast::<PyBytes>().ok()?;
        if name.as_bytes().eq_ignore_ascii_case(b"content-length") {
            let value = pair.get_item(1).ok()?;
            let value: String = value
                .cast::<PyBytes>()
                .ok()?
                .as_bytes()
                .iter()
                .copied()
                .map(char::from)
                .collect();
            return Some(value.trim().parse().ok());
        }
    }
    Some(None)
}

/// A `(bytes, bytes)` header pair as text (HTTP header bytes are Latin-1).
fn byte_pair(pair: &Bound<'_, PyAny>) -> Option<(String, String)> {
    let pair = pair.cast::<PyTuple>().ok().filter(|p| p.len() == 2)?;
    let text = |index: usize| -> Option<String> {
        let item = pair.get_item(index).ok()?;
        let bytes = item.cast::<PyBytes>().ok()?;
        Some(bytes.as_bytes().iter().copied().map(char::from).collect())
    };
    Some((text(0)?, text(1)?))
}

/// `Content-Length` from any header list or map `header_pairs` reads.
pub(crate) fn content_length(headers: Option<&Bound<'_, PyAny>>) -> Option<i64> {
    if let Some(found) = headers.and_then(byte_pairs_content_length) {
        return found;
    }
    // A WSGI list of text pairs is searched in place, converting no other header.
    if let Some(list) = headers.and_then(|h| h.cast::<PyList>().ok()) {
        let mut all_text = true;
        for pair in list.iter() {
            let Some((name, value)) = pair
                .cast::<PyTuple>()
                .ok()
                .filter(|pair| pair.len() == 2)
                .and_then(|pair| Some((pair.get_item(0).ok()?, pair.get_item(1).ok()?)))
            else {
                all_text = false;
                break;
            };
            let Ok(name) = name.cast::<PyString>() else {
                all_text = false;
                break;
            };
            if name
                .to_str()
                .is_ok_and(|name| name.eq_ignore_ascii_case("content-length"))
            {
                return value
                    .extract::<String>()
                    .ok()
                    .and_then(|value| value.trim().parse().ok());
            }
        }
        if all_text {
            return None;
        }
    }
    header_pairs(headers)
        .into_iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// Adds the headers `names` asks to capture to the span (nothing to do when none are).
pub(crate) fn capture(span: &Span, direction: &str, names: &[String], headers: impl FnOnce() -> Vec<(String, String)>) {
    // Listing the headers is most of the cost (an httpx response's are decoded one by one):
    // only when some are asked for.
    if names.is_empty() {
        return;
    }
    let headers = headers();
    if headers.is_empty() {
        return;
    }
    let attrs = semconv::captured_headers(direction, &headers, names, &settings().capture.sanitize_fields);
    span.with_record(|data, limits| {
        for (k, v) in attrs {
            data.set_attribute(k, v, limits);
        }
    });
}

/// A request's headers: looked up in the environ as the propagators ask (listing them all
/// costs a WSGI request more than it reads), or the ASGI scope's list.
pub(crate) enum RequestHeaders<'a, 'py> {
    Environ(&'a Bound<'py, PyDict>),
    /// Lower-case names, as sent.
    List(Vec<(String, String)>),
}

impl RequestHeaders<'_, '_> {
    /// Every header as `(lower-case name, value)`, for capture.
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        match self {
            RequestHeaders::List(pairs) => pairs.clone(),
            RequestHeaders::Environ(environ) => environ
                .iter()
                .filter_map(|(k, v)| {
                    let key: String = k.extract().ok()?;
                    let name = match key.as_str() {
                        "CONTENT_TYPE" | "CONTENT_LENGTH" => key.clone(),
                        _ => key.strip_prefix("HTTP_")?.to_string(),
                    };
                    Some((name.to_ascii_lowercase().replace('_', "-"), v.str().ok()?.to_string()))
                })
                .collect(),
        }
    }
}

impl Carrier for RequestHeaders<'_, '_> {
    fn get(&self, key: &str) -> Vec<String> {
        match self {
            RequestHeaders::Environ(environ) => {
                // The names every request is asked for are interned: no string made per lookup.
                let py = environ.py();
                let found = match key {
                    "traceparent" => environ.get_item(pyo3::intern!(py, "HTTP_TRACEPARENT")),
                    "tracestate" => environ.get_item(pyo3::intern!(py, "HTTP_TRACESTATE")),
                    "baggage" => environ.get_item(pyo3::intern!(py, "HTTP_BAGGAGE")),
                    _ => {
                        let mut name = String::with_capacity(5 + key.len());
                        name.push_str("HTTP_");
                        name.extend(key.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }));
                        environ.get_item(name)
                    }
                };
                found
                    .ok()
                    .flatten()
                    .and_then(|v| v.extract::<String>().ok())
                    .into_iter()
                    .collect()
            }
            RequestHeaders::List(pairs) => {
                let key = key.to_ascii_lowercase();
                pairs
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| v.clone())
                    .collect()
            }
        }
    }

    fn keys(&self) -> Vec<String> {
        match self {
            RequestHeaders::Environ(environ) => environ
                .keys()
                .iter()
                .filter_map(|k| k.extract::<String>().ok())
                .filter_map(|k| {
                    k.strip_prefix("HTTP_")
                        .map(|h| h.to_ascii_lowercase().replace('_', "-"))
                })
                .collect(),
            RequestHeaders::List(pairs) => pairs.iter().map(|(k, _)| k.clone()).collect(),
        }
    }

    fn set(&mut self, _key: &str, _value: String) {}
}

/// Request headers a client is about to send, written through `__setitem__` (dicts,
/// requests' and urllib3's header maps).
pub(crate) struct OutgoingHeaders<'a, 'py>(pub(crate) &'a Bound<'py, PyAny>);

impl Carrier for OutgoingHeaders<'_, '_> {
    fn get(&self, _key: &str) -> Vec<String> {
        Vec::new()
    }

    fn keys(&self) -> Vec<String> {
        Vec::new()
    }

    fn set(&mut self, key: &str, value: String) {
        let _ = self.0.set_item(key, value);
    }
}
