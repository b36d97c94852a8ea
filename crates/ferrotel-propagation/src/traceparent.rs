//! W3C Trace Context `traceparent`: `version-traceid-parentid-flags`.

use crate::hex_lower;

/// `(trace_id, parent_id, flags)` from a `traceparent` value, or `None` if invalid.
///
/// Version `00` must be exactly 55 characters. A higher version is parsed as `00` from its
/// first 55 characters, which must be followed by nothing or by `-` (the spec's forward
/// compatibility rule); version `ff` is invalid. Hex must be lower-case; all-zero ids are
/// invalid.
pub fn parse(value: &str) -> Option<(u128, u64, u8)> {
    let value = value.trim_matches([' ', '\t']);
    if value.len() < 55 || !value.is_ascii() {
        return None;
    }
    let version = hex_lower(&value[0..2], 2)?;
    if version == 0xff {
        return None;
    }
    if version == 0 && value.len() != 55 {
        return None;
    }
    if value.len() > 55 && value.as_bytes()[55] != b'-' {
        return None;
    }
    let bytes = value.as_bytes();
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = hex_lower(&value[3..35], 32)?;
    let span_id = hex_lower(&value[36..52], 16)? as u64;
    let flags = hex_lower(&value[53..55], 2)? as u8;
    (trace_id != 0 && span_id != 0).then_some((trace_id, span_id, flags))
}

/// The `sampled` trace flag.
pub const SAMPLED: u8 = 0x01;
/// Trace Context Level 2's `random-trace-id` flag: the trace id's right 7 bytes are random.
/// A property of the trace, so a span inherits it from its parent.
pub const RANDOM_TRACE_ID: u8 = 0x02;

/// The version-00 header for a context; the flags this version defines are propagated as
/// set (sampled, random-trace-id), the others as unset.
pub fn format(trace_id: u128, span_id: u64, flags: u8) -> String {
    format!(
        "00-{trace_id:032x}-{span_id:016x}-{:02x}",
        flags & (SAMPLED | RANDOM_TRACE_ID)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: u128 = 0x0af7651916cd43dd8448eb211c80319c;
    const SPAN: u64 = 0xb7ad6b7169203331;

    #[test]
    fn table() {
        let ok = Some((TRACE, SPAN, 1));
        let cases: &[crate::testing::Case] = &[
            ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ok),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
                Some((TRACE, SPAN, 0)),
            ),
            (
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-09",
                Some((TRACE, SPAN, 9)),
            ),
            (" 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\t", ok),
            // future versions: extra fields after a dash are allowed and ignored
            (
                "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds",
                ok,
            ),
            ("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ok),
            ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x", None),
            // version 00 must not carry extra fields
            ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", None),
            ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
            ("0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
            ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
            ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
            ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", None),
            ("00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01", None),
            ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01", None),
            ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1", None),
            ("00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01", None),
            ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g", None),
            ("00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
            ("", None),
            ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01é", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input), *expected, "{input:?}");
        }
    }

    #[test]
    fn round_trip() {
        let header = format(TRACE, SPAN, 0x81);
        assert_eq!(header, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        assert_eq!(parse(&header), Some((TRACE, SPAN, 1)));
        let header = format(TRACE, SPAN, 0xf2);
        assert_eq!(header, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02");
    }
}
