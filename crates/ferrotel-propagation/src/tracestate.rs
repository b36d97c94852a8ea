//! W3C Trace Context `tracestate`: up to 32 `key=value` members, vendor keys first-in-wins
//! ordering, mutation moves a member to the front.

use crate::MAX_HEADER_LEN;

pub const MAX_MEMBERS: usize = 32;

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `tenant@system` per the spec's grammar.
pub fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match key.split_once('@') {
        None => {
            !bytes.is_empty()
                && bytes.len() <= 256
                && bytes[0].is_ascii_lowercase()
                && bytes.iter().all(|&b| is_key_char(b))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&b| is_key_char(b))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&b| is_key_char(b))
        }
    }
}

/// Printable ASCII except `,` and `=`, at most 256 characters, not ending in a space.
pub fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 256
        && bytes
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && bytes[bytes.len() - 1] != b' '
}

/// Parses the combined `tracestate` values. Any invalid member, a duplicate key or more
/// than 32 members make the whole header invalid (`None`), as the spec requires; empty
/// members and surrounding whitespace are allowed.
pub fn parse(values: &[String]) -> Option<Vec<(String, String)>> {
    let total: usize = values.iter().map(|v| v.len() + 1).sum();
    if total > MAX_HEADER_LEN {
        return None;
    }
    let mut members: Vec<(String, String)> = Vec::new();
    for member in values.iter().flat_map(|v| v.split(',')) {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        if !valid_key(key) || !valid_value(value) || members.iter().any(|(k, _)| k == key) {
            return None;
        }
        members.push((key.to_string(), value.to_string()));
        if members.len() > MAX_MEMBERS {
            return None;
        }
    }
    Some(members)
}

pub fn format(members: &[(String, String)]) -> String {
    members
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Adds or updates `key` at the front (the spec's mutation rule); drops the rightmost
/// member if that would exceed 32. Invalid keys or values are refused.
pub fn upsert(members: &mut Vec<(String, String)>, key: &str, value: &str) -> bool {
    if !valid_key(key) || !valid_value(value) {
        return false;
    }
    members.retain(|(k, _)| k != key);
    members.insert(0, (key.to_string(), value.to_string()));
    members.truncate(MAX_MEMBERS);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<Vec<(String, String)>> {
        parse(&[s.to_string()])
    }

    fn pairs(items: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn grammar() {
        assert_eq!(
            p("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            pairs(&[("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")])
        );
        assert_eq!(p(" a=1 ,\t, b=2 "), pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(
            p("tenant@vendor=x,1tenant@v=y"),
            pairs(&[("tenant@vendor", "x"), ("1tenant@v", "y")])
        );
        assert_eq!(p("a*b/c_d-e=val ue"), pairs(&[("a*b/c_d-e", "val ue")]));
        assert_eq!(p(""), pairs(&[]));
        for bad in [
            "A=1",
            "1a=1",
            "a=",
            "=1",
            "a",
            "a=1=2",
            "a=1,a=2",
            "a@=1",
            "@b=1",
            "t@Vendor=1",
            "t@vendorvendorvendor=1",
            "a=\u{7f}",
            "a=é",
            "a b=1",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        // Trailing whitespace belongs to the list separator, not the value.
        assert_eq!(p("a=b "), pairs(&[("a", "b")]));
        assert!(!valid_value("b ") && valid_value("b c"));
        let key_256 = "a".repeat(256);
        assert!(p(&format!("{key_256}=1")).is_some());
        assert_eq!(p(&format!("a{key_256}=1")), None);
        assert_eq!(p(&format!("k={}", "v".repeat(257))), None);
    }

    #[test]
    fn member_limits_and_multiple_headers() {
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(p(&members.join(",")).unwrap().len(), 32);
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(p(&too_many.join(",")), None);
        assert_eq!(parse(&["a=1".into(), "b=2".into()]), pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(parse(&["a=1".into(), "a=2".into()]), None);
        assert_eq!(
            p(&"a=1,".repeat(5000)),
            None,
            "oversized input is refused before parsing"
        );
    }

    #[test]
    fn mutation_moves_to_front_and_keeps_32() {
        let mut members = p("a=1,b=2,c=3").unwrap();
        assert!(upsert(&mut members, "c", "9"));
        assert_eq!(format(&members), "c=9,a=1,b=2");
        assert!(!upsert(&mut members, "Bad", "x"));
        let mut full: Vec<(String, String)> = (0..32).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert!(upsert(&mut full, "new", "v"));
        assert_eq!(full.len(), 32);
        assert_eq!(full[0].0, "new");
        assert_eq!(full[31].0, "k30");
    }
}
