//! W3C Trace Context `tracestate`, as the current W3C text has it: up to 32 `key=value`
//! members, mutation moves a member to the front. Keys start with a lower-case letter or a
//! digit and hold up to 256 of `a-z 0-9 _ - * / @` (`@` anywhere, any number of times);
//! values are up to 256 printable ASCII characters but `,` and `=`, not ending in a space.
//! A key sent twice is the sender's business: both members are kept, in order.

pub const MAX_MEMBERS: usize = 32;
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// `key = ( lcalpha / DIGIT ) 0*255( keychar )`.
pub fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_KEY_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|&b| is_key_char(b))
}

/// Printable ASCII except `,` and `=`, at most 256 characters, not ending in a space
/// (leading spaces belong to the value).
pub fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_VALUE_LEN
        && bytes
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && bytes[bytes.len() - 1] != b' '
}

/// Parses the combined `tracestate` values. Any invalid member or more than 32 members
/// make the whole header invalid (`None`), as the spec requires; empty members and the
/// spaces and tabs around members are allowed. Work stops at the 33rd member, so a huge
/// header costs no more than its first members.
pub fn parse(values: &[String]) -> Option<Vec<(String, String)>> {
    let mut members: Vec<(String, String)> = Vec::new();
    for member in values.iter().flat_map(|v| v.split(',')) {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        if members.len() == MAX_MEMBERS {
            return None;
        }
        let (key, value) = member.split_once('=')?;
        if !valid_key(key) || !valid_value(value) {
            return None;
        }
        members.push((key.to_string(), value.to_string()));
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
        // `@` is a key character like any other, but not the first.
        assert_eq!(
            p("foo@=1,foo@@bar=2,foo@bar@baz=3"),
            pairs(&[("foo@", "1"), ("foo@@bar", "2"), ("foo@bar@baz", "3")])
        );
        assert_eq!(p("a*b/c_d-e=val ue"), pairs(&[("a*b/c_d-e", "val ue")]));
        assert_eq!(p("a= leading"), pairs(&[("a", " leading")]));
        assert_eq!(p(""), pairs(&[]));
        for bad in [
            "A=1",
            "a=",
            "=1",
            "a",
            "a=1=2",
            "@b=1",
            "t@Vendor=1",
            "a=\u{7f}",
            "a=é",
            "a b=1",
            "foo.bar=1",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        assert_eq!(p("1a=1"), pairs(&[("1a", "1")]));
        // Trailing whitespace belongs to the list separator, not the value.
        assert_eq!(p("a=b "), pairs(&[("a", "b")]));
        assert!(!valid_value("b ") && valid_value("b c"));
        for key in [
            "a".repeat(256),
            format!("{}@{}", "t".repeat(242), "v"),
            format!("t@{}", "v".repeat(15)),
        ] {
            assert!(p(&format!("{key}=1")).is_some(), "{key}");
        }
        assert_eq!(p(&format!("{}=1", "a".repeat(257))), None);
        assert!(p(&format!("k={}", "v".repeat(256))).is_some());
        assert_eq!(p(&format!("k={}", "v".repeat(257))), None);
    }

    #[test]
    fn duplicated_keys_are_kept_as_sent() {
        assert_eq!(p("foo=1,foo=1"), pairs(&[("foo", "1"), ("foo", "1")]));
        assert_eq!(parse(&["a=1".into(), "a=2".into()]), pairs(&[("a", "1"), ("a", "2")]));
    }

    #[test]
    fn member_limits_and_multiple_headers() {
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(p(&members.join(",")).unwrap().len(), 32);
        let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(p(&too_many.join(",")), None);
        assert_eq!(parse(&["a=1".into(), "b=2".into()]), pairs(&[("a", "1"), ("b", "2")]));
        assert_eq!(p(&"a=1,".repeat(5000)), None, "parsing stops at the 33rd member");
        // 32 members of the largest size are valid: far beyond 512 characters.
        let big: Vec<String> = (0..32).map(|i| format!("{i:0>256}={}", "v".repeat(256))).collect();
        assert_eq!(p(&big.join(",")).unwrap().len(), 32);
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
