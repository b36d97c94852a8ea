//! Context propagation formats, exactly per their specifications, on untrusted input.
//!
//! Every parser takes header values as received and returns `None` (or skips the bad part,
//! where the format says so) for anything invalid: it never panics, and input size is
//! bounded before any allocation grows with it. Formatting produces canonical values.
//! Carriers are abstracted by [`Carrier`], so HTTP libraries and the Python API share one
//! implementation.

pub mod b3;
pub mod baggage;
pub mod jaeger;
pub mod traceparent;
pub mod tracestate;
pub mod xray;

mod composite;
pub use composite::{Composite, Extracted, Format};

/// A propagated span context: what crosses process boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteContext {
    pub trace_id: u128,
    pub span_id: u64,
    pub trace_flags: u8,
    /// Canonical `tracestate` members, in order.
    pub trace_state: Vec<(String, String)>,
}

impl RemoteContext {
    pub fn is_sampled(&self) -> bool {
        self.trace_flags & 1 == 1
    }
}

/// Read and write access to a message's headers. Keys passed are lower-case (X-Ray's is
/// written as upstream writes it, `X-Amzn-Trace-Id`, and looked up that way first); getters
/// are expected to match case-insensitively where the carrier is an HTTP header map.
pub trait Carrier {
    /// Every value of `key` (a header may repeat).
    fn get(&self, key: &str) -> Vec<String>;
    /// Every key present, for formats with prefixed keys (Jaeger's `uberctx-`).
    fn keys(&self) -> Vec<String>;
    fn set(&mut self, key: &str, value: String);
}

/// The longest header value any parser looks at; anything longer is ignored as hostile.
pub const MAX_HEADER_LEN: usize = 8192;

/// Parses exactly `len` lower-case hex digits.
pub(crate) fn hex_lower(s: &str, len: usize) -> Option<u128> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
}

/// Parses 1..=`max` hex digits of either case (B3 and Jaeger are lenient about case and,
/// for Jaeger, length).
pub(crate) fn hex_any(s: &str, max: usize) -> Option<u128> {
    (!s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
}

/// Percent-decodes; `None` on a malformed escape or non-UTF-8 result.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes every byte outside `keep`.
pub(crate) fn percent_encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Carrier;

    /// A table row: input, and the `(trace_id, span_id, flags)` it must parse to.
    pub(crate) type Case = (&'static str, Option<(u128, u64, u8)>);

    /// A header map with case-insensitive lookup, as HTTP carriers behave.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct Headers(pub Vec<(String, String)>);

    impl Headers {
        pub(crate) fn of(pairs: &[(&str, &str)]) -> Headers {
            Headers(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        }
    }

    impl Carrier for Headers {
        fn get(&self, key: &str) -> Vec<String> {
            self.0
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
                .collect()
        }
        fn keys(&self) -> Vec<String> {
            self.0.iter().map(|(k, _)| k.clone()).collect()
        }
        fn set(&mut self, key: &str, value: String) {
            self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
            self.0.push((key.to_string(), value));
        }
    }
}
