//! Zipkin B3: the single `b3` header and the `x-b3-*` multi-header form.
//!
//! Both extractors accept either form, single first, as upstream's do. A missing sampling
//! decision reads as not sampled (upstream's behaviour); `d` (debug) reads as sampled.

use crate::{hex_any, Carrier, RemoteContext, MAX_HEADER_LEN};

pub const SINGLE: &str = "b3";
pub const TRACE_ID: &str = "x-b3-traceid";
pub const SPAN_ID: &str = "x-b3-spanid";
pub const SAMPLED: &str = "x-b3-sampled";
pub const FLAGS: &str = "x-b3-flags";
pub const PARENT_SPAN_ID: &str = "x-b3-parentspanid";

fn ids(trace: &str, span: &str) -> Option<(u128, u64)> {
    if trace.len() != 16 && trace.len() != 32 {
        return None;
    }
    let trace_id = hex_any(trace, 32)?;
    let span_id = if span.len() == 16 {
        hex_any(span, 16)? as u64
    } else {
        return None;
    };
    (trace_id != 0 && span_id != 0).then_some((trace_id, span_id))
}

fn context(trace_id: u128, span_id: u64, sampled: bool) -> RemoteContext {
    RemoteContext {
        trace_id,
        span_id,
        trace_flags: u8::from(sampled),
        trace_state: Vec::new(),
    }
}

/// `{trace}-{span}[-{sampled}[-{parent}]]`; a lone sampling flag carries no context.
pub fn parse_single(value: &str) -> Option<RemoteContext> {
    let value = value.trim();
    if value.len() > 128 {
        return None;
    }
    let parts: Vec<&str> = value.split('-').collect();
    if parts.len() < 2 || parts.len() > 4 {
        return None;
    }
    let (trace_id, span_id) = ids(parts[0], parts[1])?;
    let sampled = match parts.get(2) {
        None => false,
        Some(&"1") | Some(&"d") => true,
        Some(&"0") => false,
        Some(_) => return None,
    };
    if let Some(parent) = parts.get(3) {
        hex_any(parent, 16).filter(|_| parent.len() == 16)?;
    }
    Some(context(trace_id, span_id, sampled))
}

fn first(carrier: &dyn Carrier, key: &str) -> Option<String> {
    carrier
        .get(key)
        .into_iter()
        .next()
        .filter(|v| v.len() <= MAX_HEADER_LEN)
        .map(|v| v.trim().to_string())
}

pub fn extract(carrier: &dyn Carrier) -> Option<RemoteContext> {
    if let Some(single) = first(carrier, SINGLE) {
        return parse_single(&single);
    }
    let (trace_id, span_id) = ids(&first(carrier, TRACE_ID)?, &first(carrier, SPAN_ID)?)?;
    let debug = first(carrier, FLAGS).as_deref() == Some("1");
    let sampled = debug
        || matches!(
            first(carrier, SAMPLED)
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("1" | "true" | "d")
        );
    Some(context(trace_id, span_id, sampled))
}

pub fn inject_single(ctx: &RemoteContext, carrier: &mut dyn Carrier) {
    carrier.set(
        SINGLE,
        format!(
            "{:032x}-{:016x}-{}",
            ctx.trace_id,
            ctx.span_id,
            u8::from(ctx.is_sampled())
        ),
    );
}

pub fn inject_multi(ctx: &RemoteContext, carrier: &mut dyn Carrier) {
    carrier.set(TRACE_ID, format!("{:032x}", ctx.trace_id));
    carrier.set(SPAN_ID, format!("{:016x}", ctx.span_id));
    carrier.set(SAMPLED, u8::from(ctx.is_sampled()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Headers;

    #[test]
    fn single_header_table() {
        let t = 0x80f198ee56343ba864fe8b2a57d3eff7u128;
        let s = 0xe457b5a2e4d86bd1u64;
        let cases: &[crate::testing::Case] = &[
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
                Some((t, s, 1)),
            ),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0", Some((t, s, 0))),
            ("80F198EE56343BA864FE8B2A57D3EFF7-E457B5A2E4D86BD1-d", Some((t, s, 1))),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", Some((t, s, 0))),
            ("64fe8b2a57d3eff7-e457b5a2e4d86bd1-1", Some((0x64fe8b2a57d3eff7, s, 1))),
            ("0", None),
            ("1", None),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x", None),
            ("80f198ee56343ba864fe8b2a57d3eff-e457b5a2e4d86bd1-1", None),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd-1", None),
            ("00000000000000000000000000000000-e457b5a2e4d86bd1-1", None),
            ("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3", None),
            (
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90-x",
                None,
            ),
        ];
        for (input, expected) in cases {
            let got = parse_single(input).map(|c| (c.trace_id, c.span_id, c.trace_flags));
            assert_eq!(got, *expected, "{input:?}");
        }
    }

    #[test]
    fn multi_headers_and_precedence() {
        let multi = Headers::of(&[
            ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
            ("X-B3-SpanId", "a2fb4a1d1a96d312"),
            ("X-B3-Sampled", "1"),
        ]);
        let ctx = extract(&multi).unwrap();
        assert_eq!(
            (ctx.trace_id, ctx.span_id, ctx.trace_flags),
            (0x463ac35c9f6413ad48485a3953bb6124, 0xa2fb4a1d1a96d312, 1)
        );
        let debug = Headers::of(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-flags", "1"),
        ]);
        assert!(extract(&debug).unwrap().is_sampled());
        let unsampled = Headers::of(&[
            ("x-b3-traceid", "463ac35c9f6413ad"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ]);
        assert!(!extract(&unsampled).unwrap().is_sampled());
        let mut both = multi.clone();
        both.0.push((
            "b3".into(),
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0".into(),
        ));
        assert_eq!(extract(&both).unwrap().span_id, 0xe457b5a2e4d86bd1, "single wins");
        assert_eq!(
            extract(&Headers::of(&[
                ("x-b3-traceid", "nothex"),
                ("x-b3-spanid", "a2fb4a1d1a96d312")
            ])),
            None
        );
    }

    #[test]
    fn inject_round_trips() {
        let ctx = context(0x463ac35c9f6413ad48485a3953bb6124, 0xa2fb4a1d1a96d312, true);
        let mut single = Headers::default();
        inject_single(&ctx, &mut single);
        assert_eq!(
            single.get("b3"),
            vec!["463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1"]
        );
        assert_eq!(extract(&single), Some(ctx.clone()));
        let mut multi = Headers::default();
        inject_multi(&ctx, &mut multi);
        assert_eq!(extract(&multi), Some(ctx));
    }
}
