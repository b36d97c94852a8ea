//! Jaeger: `uber-trace-id: {trace}:{span}:{parent}:{flags}` and `uberctx-{key}` baggage.
//! Values may arrive URL-encoded (`%3A` for `:`).

use crate::{hex_any, percent_decode, percent_encode, Carrier, RemoteContext, MAX_HEADER_LEN};

pub const HEADER: &str = "uber-trace-id";
pub const BAGGAGE_PREFIX: &str = "uberctx-";

pub fn parse(value: &str) -> Option<RemoteContext> {
    if value.len() > 256 {
        return None;
    }
    let decoded = percent_decode(value.trim())?;
    let parts: Vec<&str> = decoded.split(':').collect();
    let [trace, span, parent, flags] = parts.as_slice() else {
        return None;
    };
    let trace_id = hex_any(trace, 32)?;
    let span_id = hex_any(span, 16)? as u64;
    hex_any(parent, 16)?;
    let flags = hex_any(flags, 2)? as u8;
    (trace_id != 0 && span_id != 0).then(|| RemoteContext {
        trace_id,
        span_id,
        // bit 1 is sampled, bit 2 debug (which implies sampled)
        trace_flags: u8::from(flags & 0x03 != 0),
        trace_state: Vec::new(),
    })
}

pub fn extract(carrier: &dyn Carrier) -> Option<RemoteContext> {
    parse(&carrier.get(HEADER).into_iter().next()?)
}

/// `uberctx-*` entries, URL-decoded; malformed ones are skipped.
pub fn extract_baggage(carrier: &dyn Carrier) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in carrier.keys() {
        let lower = key.to_ascii_lowercase();
        let Some(name) = lower.strip_prefix(BAGGAGE_PREFIX) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if let Some(value) = carrier
            .get(&key)
            .into_iter()
            .next()
            .filter(|v| v.len() <= MAX_HEADER_LEN)
        {
            if let Some(decoded) = percent_decode(value.trim()) {
                out.push((name.to_string(), decoded));
            }
        }
    }
    out
}

pub fn inject(ctx: &RemoteContext, baggage: &[(String, String)], carrier: &mut dyn Carrier) {
    carrier.set(
        HEADER,
        format!(
            "{:032x}:{:016x}:0:{:02x}",
            ctx.trace_id,
            ctx.span_id,
            u8::from(ctx.is_sampled())
        ),
    );
    for (k, v) in baggage {
        let key = format!("{BAGGAGE_PREFIX}{k}");
        carrier.set(
            &key,
            percent_encode(v, |b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Headers;

    #[test]
    fn table() {
        let cases: &[crate::testing::Case] = &[
            (
                "000000000000000000000000deadbeef:00000000deadbeef:0:01",
                Some((0xdeadbeef, 0xdeadbeef, 1)),
            ),
            ("deadbeef:deadbeef:0:1", Some((0xdeadbeef, 0xdeadbeef, 1))),
            ("DEADBEEF:BEEF:0:3", Some((0xdeadbeef, 0xbeef, 1))),
            ("deadbeef:beef:0:0", Some((0xdeadbeef, 0xbeef, 0))),
            ("deadbeef%3Abeef%3A0%3A1", Some((0xdeadbeef, 0xbeef, 1))),
            ("0:beef:0:1", None),
            ("deadbeef:0:0:1", None),
            ("deadbeef:beef:0", None),
            ("deadbeef:beef:0:1:extra", None),
            ("deadbeef:beef:x:1", None),
            ("deadbeef:beef:0:100", None),
            ("123456789012345678901234567890123:beef:0:1", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse(input).map(|c| (c.trace_id, c.span_id, c.trace_flags)),
                *expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn baggage_and_round_trip() {
        let ctx = RemoteContext {
            trace_id: 0xabc,
            span_id: 0xdef,
            trace_flags: 1,
            trace_state: vec![],
        };
        let mut headers = Headers::default();
        inject(&ctx, &[("user".into(), "a b:c".into())], &mut headers);
        assert_eq!(
            headers.get("uber-trace-id"),
            vec!["00000000000000000000000000000abc:0000000000000def:0:01"]
        );
        assert_eq!(extract(&headers), Some(ctx));
        assert_eq!(
            extract_baggage(&headers),
            vec![("user".to_string(), "a b:c".to_string())]
        );
        let received = Headers::of(&[("Uberctx-Tenant", "acme"), ("uberctx-", "x"), ("uberctx-bad", "%zz")]);
        assert_eq!(
            extract_baggage(&received),
            vec![("tenant".to_string(), "acme".to_string())]
        );
    }
}
