//! AWS X-Ray: `X-Amzn-Trace-Id: Root=1-{8 hex: epoch seconds}-{24 hex};Parent={16 hex};Sampled={0|1}`.
//!
//! Read as upstream's `opentelemetry-propagator-aws-xray` reads it: `;`-separated
//! `key=value` pairs in any order, each key and value trimmed, keys case-sensitive, other
//! keys (`Self`, `Lineage`, ...) ignored, a later pair overriding an earlier one; a pair that
//! is not exactly one `key=value`, a malformed `Root` or `Parent`, or a `Sampled` other than
//! `0`/`1` makes the whole header invalid; no `Sampled` reads as not sampled; a missing
//! `Parent` leaves no usable context. The ids are hex digits only (upstream's Python `int()`
//! also takes signs, underscores and `0x` inside them; nothing writes those).

use crate::{Carrier, RemoteContext, MAX_HEADER_LEN};

/// The header as X-Ray and upstream write it. HTTP carriers match it case-insensitively; a
/// plain dict is looked up with this spelling first, then lower-case.
pub const HEADER: &str = "X-Amzn-Trace-Id";

/// Whitespace as Python's `str.strip()` sees it (which also counts the ASCII separators
/// 0x1c-0x1f).
fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn hex(s: &str) -> Option<u128> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u128::from_str_radix(s, 16).ok())
        .flatten()
}

/// `1-{8 hex}-{24 hex}`: the version, the epoch seconds and the random part, which together
/// are the 128-bit trace id.
fn root(value: &str) -> Option<u128> {
    let bytes = value.as_bytes();
    if bytes.len() != 35 || !value.is_ascii() || bytes[0] != b'1' || bytes[1] != b'-' || bytes[10] != b'-' {
        return None;
    }
    let time = hex(&value[2..10])?;
    let random = hex(&value[11..])?;
    Some(time << 96 | random)
}

pub fn parse(value: &str) -> Option<RemoteContext> {
    if value.is_empty() || value.len() > MAX_HEADER_LEN {
        return None;
    }
    let (mut trace_id, mut span_id, mut sampled) = (0u128, 0u64, false);
    for pair in value.split(';') {
        let mut pieces = pair.split('=');
        let (Some(key), Some(value), None) = (pieces.next(), pieces.next(), pieces.next()) else {
            return None;
        };
        let value = trim(value);
        match trim(key) {
            "Root" => trace_id = root(value)?,
            "Parent" if value.len() == 16 => span_id = hex(value)? as u64,
            "Parent" => return None,
            "Sampled" => {
                sampled = match value {
                    "1" => true,
                    "0" => false,
                    _ => return None,
                }
            }
            _ => {}
        }
    }
    (trace_id != 0 && span_id != 0).then(|| RemoteContext {
        trace_id,
        span_id,
        trace_flags: u8::from(sampled),
        trace_state: Vec::new(),
    })
}

pub fn extract(carrier: &dyn Carrier) -> Option<RemoteContext> {
    let mut values = carrier.get(HEADER);
    if values.is_empty() {
        values = carrier.get(&HEADER.to_ascii_lowercase());
    }
    // Several headers are ambiguous: ignored, as upstream does.
    match values.as_slice() {
        [value] => parse(value),
        _ => None,
    }
}

pub fn format(ctx: &RemoteContext) -> String {
    let trace = format!("{:032x}", ctx.trace_id);
    format!(
        "Root=1-{}-{};Parent={:016x};Sampled={}",
        &trace[..8],
        &trace[8..],
        ctx.span_id,
        u8::from(ctx.is_sampled())
    )
}

pub fn inject(ctx: &RemoteContext, carrier: &mut dyn Carrier) {
    carrier.set(HEADER, format(ctx));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Case, Headers};

    const TRACE: u128 = 0x5759e988_bd862e3fe1be46a994272793;
    const SPAN: u64 = 0x53995c3f42cd8ad8;

    #[test]
    fn header_table() {
        let cases: &[Case] = &[
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                Some((TRACE, SPAN, 1)),
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
                Some((TRACE, SPAN, 0)),
            ),
            // Any order, spaces around pairs, other keys, no sampling decision.
            (
                " Parent = 53995c3f42cd8ad8 ; Self=1-abc ;Root=1-5759e988-bd862e3fe1be46a994272793 ;Lineage=a:1|b:2",
                Some((TRACE, SPAN, 0)),
            ),
            (
                "Root=1-5759E988-BD862E3FE1BE46A994272793;Parent=53995C3F42CD8AD8;Sampled=1",
                Some((TRACE, SPAN, 1)),
            ),
            // A later pair overrides an earlier one.
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000001;Parent=53995c3f42cd8ad8",
                Some((TRACE, SPAN, 0)),
            ),
            ("Root=1-5759e988-bd862e3fe1be46a994272793", None),
            ("Parent=53995c3f42cd8ad8;Sampled=1", None),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;",
                None,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
                None,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1=1",
                None,
            ),
            ("Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", None),
            ("Root=1-5759e988-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8", None),
            ("Root=1_5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", None),
            ("Root=1-5759e98g-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", None),
            ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad", None),
            ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=+3995c3f42cd8ad8", None),
            ("Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8", None),
            ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000", None),
            ("root=1-5759e988-bd862e3fe1be46a994272793;parent=53995c3f42cd8ad8", None),
            ("Root=1-5759e988-bd862e3fe1be46a99427279é;Parent=53995c3f42cd8ad8", None),
            ("", None),
            (";", None),
            ("garbage", None),
        ];
        for (input, expected) in cases {
            let got = parse(input).map(|c| (c.trace_id, c.span_id, c.trace_flags));
            assert_eq!(got, *expected, "{input:?}");
        }
    }

    #[test]
    fn inject_writes_the_canonical_header_and_extract_reads_it_back() {
        let ctx = RemoteContext {
            trace_id: TRACE,
            span_id: SPAN,
            trace_flags: 1,
            trace_state: Vec::new(),
        };
        let mut headers = Headers::default();
        inject(&ctx, &mut headers);
        assert_eq!(
            headers.0,
            vec![(
                "X-Amzn-Trace-Id".to_string(),
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_string()
            )]
        );
        assert_eq!(extract(&headers), Some(ctx));
        let twice = Headers::of(&[
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            ),
            (
                "X-Amzn-Trace-Id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            ),
        ]);
        assert_eq!(extract(&twice), None, "two headers are ambiguous");
    }
}
