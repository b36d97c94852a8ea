//! Attribute values and the limits applied to them.

use std::sync::Arc;

/// Every value type OpenTelemetry attributes take. The typed arrays are the common case; a
/// list mixing types or holding empty members (`None` in Python) is an [`Value::Array`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Bytes that are not UTF-8 text.
    Bytes(Vec<u8>),
    StrArray(Vec<String>),
    BoolArray(Vec<bool>),
    IntArray(Vec<i64>),
    DoubleArray(Vec<f64>),
    Array(Vec<Value>),
    /// Key/value pairs in order: a log record's `extra=` dict, as upstream sends it (a
    /// `kvlistValue`).
    Map(Vec<(String, Value)>),
    /// An empty member of an array.
    Empty,
}

/// Cuts `s` to at most `limit` characters (not bytes, so UTF-8 stays valid).
fn truncate(s: &mut String, limit: usize) {
    if let Some((byte, _)) = s.char_indices().nth(limit) {
        s.truncate(byte);
    }
}

impl Value {
    /// Applies the value-length limit: strings, and each string of an array, are cut.
    pub fn limit_length(&mut self, limit: Option<usize>) {
        let Some(limit) = limit else { return };
        match self {
            Value::Str(s) => truncate(s, limit),
            Value::StrArray(items) => items.iter_mut().for_each(|s| truncate(s, limit)),
            Value::Array(items) => items.iter_mut().for_each(|v| v.limit_length(Some(limit))),
            Value::Map(pairs) => pairs.iter_mut().for_each(|(_, v)| v.limit_length(Some(limit))),
            _ => {}
        }
    }
}

/// Key/value pairs in insertion order, with a count limit; setting an existing key replaces
/// it in place. Drops beyond the limit are counted.
///
/// A set many records carry alike (a database statement's, made once per statement text)
/// can be shared instead of copied into each ([`Attributes::shared`]): it is read first, and
/// copied into the record's own pairs only when one of its keys is set again.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    shared: Option<Arc<[(String, Value)]>>,
    items: Vec<(String, Value)>,
    pub dropped: u32,
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        self.dropped == other.dropped && self.iter().eq(other.iter())
    }
}

impl Attributes {
    pub fn new(items: Vec<(String, Value)>, dropped: u32) -> Self {
        Attributes {
            shared: None,
            items,
            dropped,
        }
    }

    pub fn with_capacity(n: usize) -> Self {
        Attributes::new(Vec::with_capacity(n), 0)
    }

    /// A set held by reference: `pairs` must repeat no key and already fit the limits.
    pub fn shared(pairs: Arc<[(String, Value)]>) -> Self {
        Attributes {
            shared: Some(pairs),
            items: Vec::new(),
            dropped: 0,
        }
    }

    fn shared_pairs(&self) -> &[(String, Value)] {
        self.shared.as_deref().unwrap_or_default()
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = &(String, Value)> {
        self.shared_pairs().iter().chain(&self.items)
    }

    pub fn len(&self) -> usize {
        self.shared_pairs().len() + self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn to_vec(&self) -> Vec<(String, Value)> {
        self.iter().cloned().collect()
    }

    /// The pairs, owned.
    pub fn into_vec(mut self) -> Vec<(String, Value)> {
        self.own_shared();
        self.items
    }

    /// Copies the shared pairs into this record's own, before one of them changes.
    fn own_shared(&mut self) {
        if let Some(shared) = self.shared.take() {
            let own = std::mem::take(&mut self.items);
            self.items = shared.to_vec();
            self.items.extend(own);
        }
    }

    pub fn set(&mut self, key: String, mut value: Value, count_limit: usize, length_limit: Option<usize>) {
        value.limit_length(length_limit);
        if self.shared_pairs().iter().any(|(k, _)| *k == key) {
            self.own_shared();
        }
        if let Some(slot) = self.items.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else if self.len() < count_limit {
            self.items.push((key, value));
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Sets every pair of `items`. A first set that fits the count limit and repeats no key
    /// (a mapping's entries, the common case) is taken as it is, without a second vector.
    pub fn extend(&mut self, mut items: Vec<(String, Value)>, count_limit: usize, length_limit: Option<usize>) {
        if items.is_empty() {
            return;
        }
        if self.is_empty() && items.len() <= count_limit.min(16) && keys_distinct(&items) {
            if length_limit.is_some() {
                items.iter_mut().for_each(|(_, value)| value.limit_length(length_limit));
            }
            self.items = items;
            return;
        }
        for (key, value) in items {
            self.set(key, value, count_limit, length_limit);
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

fn keys_distinct(items: &[(String, Value)]) -> bool {
    items
        .iter()
        .enumerate()
        .all(|(i, (key, _))| items[..i].iter().all(|(earlier, _)| earlier != key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_limit_drops_new_keys_but_replaces_existing_ones() {
        let mut attrs = Attributes::default();
        attrs.set("a".into(), Value::Int(1), 2, None);
        attrs.set("b".into(), Value::Int(2), 2, None);
        attrs.set("c".into(), Value::Int(3), 2, None);
        attrs.set("a".into(), Value::Int(9), 2, None);
        assert_eq!(
            attrs.items,
            vec![("a".into(), Value::Int(9)), ("b".into(), Value::Int(2))]
        );
        assert_eq!(attrs.dropped, 1);
    }

    #[test]
    fn extend_keeps_the_last_of_repeated_keys_and_applies_both_limits() {
        let mut fresh = Attributes::default();
        fresh.extend(
            vec![("a".into(), Value::Str("long".into())), ("b".into(), Value::Int(2))],
            8,
            Some(2),
        );
        assert_eq!(
            fresh.items,
            vec![("a".into(), Value::Str("lo".into())), ("b".into(), Value::Int(2))]
        );
        let mut repeated = Attributes::default();
        repeated.extend(vec![("a".into(), Value::Int(1)), ("a".into(), Value::Int(3))], 8, None);
        assert_eq!(repeated.items, vec![("a".into(), Value::Int(3))]);
        let mut over = Attributes::default();
        over.extend((0..3).map(|i| (i.to_string(), Value::Int(i))).collect(), 2, None);
        assert_eq!((over.items.len(), over.dropped), (2, 1));
    }

    #[test]
    fn a_shared_set_is_read_in_place_and_copied_when_one_of_its_keys_changes() {
        let pairs: Arc<[(String, Value)]> = Arc::from(vec![("a".into(), Value::Int(1)), ("b".into(), Value::Int(2))]);
        let mut attrs = Attributes::shared(pairs.clone());
        attrs.set("c".into(), Value::Int(3), 3, None);
        attrs.set("d".into(), Value::Int(4), 3, None);
        assert_eq!((attrs.len(), attrs.dropped), (3, 1));
        assert!(attrs.shared.is_some(), "a new key leaves the shared set shared");
        assert_eq!(attrs.get("a"), Some(&Value::Int(1)));
        attrs.set("a".into(), Value::Int(9), 3, None);
        assert!(attrs.shared.is_none());
        let expected = vec![
            ("a".into(), Value::Int(9)),
            ("b".into(), Value::Int(2)),
            ("c".into(), Value::Int(3)),
        ];
        assert_eq!(attrs.iter().cloned().collect::<Vec<_>>(), expected);
        assert_eq!(attrs, Attributes::new(expected, 1));
        assert_eq!(
            pairs[0],
            ("a".into(), Value::Int(1)),
            "the shared set itself is unchanged"
        );
        let mut extended = Attributes::shared(pairs);
        extended.extend(vec![("b".into(), Value::Int(7))], 8, None);
        assert_eq!(
            extended.into_vec(),
            vec![("a".into(), Value::Int(1)), ("b".into(), Value::Int(7))]
        );
    }

    #[test]
    fn length_limit_counts_characters() {
        let mut attrs = Attributes::default();
        attrs.set("s".into(), Value::Str("héllo wörld".into()), 10, Some(4));
        attrs.set(
            "a".into(),
            Value::StrArray(vec!["abcdef".into(), "xy".into()]),
            10,
            Some(3),
        );
        attrs.set("n".into(), Value::Int(123456), 10, Some(3));
        assert_eq!(attrs.get("s"), Some(&Value::Str("héll".into())));
        assert_eq!(attrs.get("a"), Some(&Value::StrArray(vec!["abc".into(), "xy".into()])));
        assert_eq!(attrs.get("n"), Some(&Value::Int(123456)));
    }
}
