//! W3C Baggage: `key=value;property,key2=value2`, values percent-encoded.
//!
//! Limits follow upstream Python's: a header over 8192 bytes is ignored, members beyond
//! 180 and members over 4096 bytes are dropped; an invalid member is skipped alone.

use crate::{percent_decode, percent_encode, MAX_HEADER_LEN};

pub const MAX_MEMBERS: usize = 180;
pub const MAX_MEMBER_LEN: usize = 4096;

/// One baggage entry; `properties` keeps the raw `;`-separated metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub properties: String,
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(is_token_char)
}

/// Characters a value may carry unencoded (baggage-octet).
fn is_value_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn parse_member(member: &str) -> Option<Entry> {
    if member.len() > MAX_MEMBER_LEN {
        return None;
    }
    let (pair, properties) = match member.split_once(';') {
        Some((pair, props)) => (pair, props.trim()),
        None => (member, ""),
    };
    let (key, value) = pair.split_once('=')?;
    let (key, value) = (key.trim_matches([' ', '\t']), value.trim_matches([' ', '\t']));
    if !valid_key(key) || !value.bytes().all(|b| is_value_char(b) || b == b'%') {
        return None;
    }
    Some(Entry {
        key: key.to_string(),
        value: percent_decode(value)?,
        properties: properties.to_string(),
    })
}

/// Parses the combined `baggage` values; later duplicates of a key win.
pub fn parse(values: &[String]) -> Vec<Entry> {
    let total: usize = values.iter().map(|v| v.len() + 1).sum();
    if total > MAX_HEADER_LEN {
        return Vec::new();
    }
    let mut entries: Vec<Entry> = Vec::new();
    for member in values.iter().flat_map(|v| v.split(',')) {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        if let Some(entry) = parse_member(member) {
            entries.retain(|e| e.key != entry.key);
            if entries.len() >= MAX_MEMBERS {
                break;
            }
            entries.push(entry);
        }
    }
    entries
}

/// The header value for `entries`, members that would break a limit left out.
pub fn format(entries: &[Entry]) -> String {
    let mut out = String::new();
    let mut count = 0;
    for entry in entries {
        if !valid_key(&entry.key) {
            continue;
        }
        let mut member = format!(
            "{}={}",
            entry.key,
            percent_encode(&entry.value, |b| is_value_char(b) && b != b'%')
        );
        if !entry.properties.is_empty() {
            member.push(';');
            member.push_str(&entry.properties);
        }
        let extra = member.len() + usize::from(!out.is_empty());
        if member.len() > MAX_MEMBER_LEN || out.len() + extra > MAX_HEADER_LEN || count >= MAX_MEMBERS {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&member);
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &str, v: &str, p: &str) -> Entry {
        Entry {
            key: k.into(),
            value: v.into(),
            properties: p.into(),
        }
    }

    fn p(s: &str) -> Vec<Entry> {
        parse(&[s.to_string()])
    }

    #[test]
    fn grammar_and_decoding() {
        assert_eq!(
            p("userId=alice, serverNode = DF%2028 ,isProduction=false;ttl=1;sensitive"),
            vec![
                entry("userId", "alice", ""),
                entry("serverNode", "DF 28", ""),
                entry("isProduction", "false", "ttl=1;sensitive")
            ]
        );
        assert_eq!(p("a=%E2%9C%93"), vec![entry("a", "✓", "")]);
        // invalid members are skipped, the rest kept
        assert_eq!(
            p("good=1,bad key=2,noeq,=x,v=\"q\",x=%zz,ok=2"),
            vec![entry("good", "1", ""), entry("ok", "2", "")]
        );
        assert_eq!(p("a=1,a=2"), vec![entry("a", "2", "")]);
        assert_eq!(p(""), vec![]);
    }

    #[test]
    fn limits() {
        let many: Vec<String> = (0..200).map(|i| format!("k{i}=v")).collect();
        assert_eq!(p(&many.join(",")).len(), MAX_MEMBERS);
        assert_eq!(p(&format!("big={}", "v".repeat(5000))), vec![]);
        assert_eq!(
            p(&format!("a=1,{}", "x".repeat(9000))),
            vec![],
            "an oversized header is ignored whole"
        );
    }

    #[test]
    fn round_trip_encodes_what_must_be() {
        let entries = vec![entry("k", "a b,c;d=\"e\"\\✓%", ""), entry("p", "1", "ttl=5")];
        let header = format(&entries);
        assert_eq!(header, "k=a%20b%2Cc%3Bd=%22e%22%5C%E2%9C%93%25,p=1;ttl=5");
        assert_eq!(parse(&[header]), entries);
    }
}
