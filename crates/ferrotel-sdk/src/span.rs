//! A recorded span, in the shape exporters read it.

use std::sync::{Arc, Mutex};

use ferrotel_config::SpanLimits;

use crate::sync::lock;
use crate::value::{Attributes, Value};

/// The API's `SpanKind` values, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 0,
    Server = 1,
    Client = 2,
    Producer = 3,
    Consumer = 4,
}

impl SpanKind {
    pub fn from_index(i: i64) -> SpanKind {
        match i {
            1 => SpanKind::Server,
            2 => SpanKind::Client,
            3 => SpanKind::Producer,
            4 => SpanKind::Consumer,
            _ => SpanKind::Internal,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SpanKind::Internal => "INTERNAL",
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        }
    }
}

/// The API's `StatusCode` values, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCode {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: StatusCode,
    /// Only kept for `Error`, as the spec says.
    pub description: String,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            code: StatusCode::Unset,
            description: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub time_ns: u64,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub trace_id: u128,
    pub span_id: u64,
    pub trace_flags: u8,
    pub trace_state: String,
    pub is_remote: bool,
    pub attributes: Attributes,
}

/// The instrumentation scope a tracer was obtained for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    pub name: String,
    pub version: Option<String>,
    pub schema_url: Option<String>,
    pub attributes: Attributes,
}

/// How many distinct scopes are kept for the life of the process.
pub const KEPT_SCOPES: usize = 1024;

static KEPT: Mutex<Vec<&'static Scope>> = Mutex::new(Vec::new());

/// The scope a span names. Scopes are few and live as long as their tracers, so the first
/// [`KEPT_SCOPES`] distinct ones are kept for the life of the process and named by a plain
/// reference; any beyond are counted references. A counted reference costs a locked
/// instruction per span on the application's thread and another on the export thread, on
/// a cache line the two threads keep taking from each other.
#[derive(Debug, Clone)]
pub enum ScopeRef {
    Kept(&'static Scope),
    Counted(Arc<Scope>),
}

impl ScopeRef {
    /// `scope`, as kept already or kept now while there is room.
    pub fn new(scope: Scope) -> ScopeRef {
        let mut kept = lock(&KEPT);
        if let Some(&known) = kept.iter().find(|&&known| *known == scope) {
            return ScopeRef::Kept(known);
        }
        if kept.len() >= KEPT_SCOPES {
            return ScopeRef::Counted(Arc::new(scope));
        }
        let known: &'static Scope = Box::leak(Box::new(scope));
        kept.push(known);
        ScopeRef::Kept(known)
    }

    /// Which scope object this is: exports group spans by it.
    pub fn as_ptr(&self) -> *const Scope {
        std::ptr::from_ref(&**self)
    }
}

impl std::ops::Deref for ScopeRef {
    type Target = Scope;

    fn deref(&self) -> &Scope {
        match self {
            ScopeRef::Kept(scope) => scope,
            ScopeRef::Counted(scope) => scope,
        }
    }
}

impl PartialEq for ScopeRef {
    fn eq(&self, other: &ScopeRef) -> bool {
        **self == **other
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanData {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub parent_is_remote: bool,
    pub trace_flags: u8,
    pub trace_state: String,
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub dropped_events: u32,
    pub links: Vec<Link>,
    pub dropped_links: u32,
    pub status: Status,
    pub scope: ScopeRef,
}

/// What a trace pipeline carries: an ended span, boxed so that handing it on (processors,
/// pipelines, the queue, a batch) moves a pointer rather than a few hundred bytes.
pub type EndedSpan = Box<SpanData>;

impl crate::pipeline::Item for EndedSpan {
    const SIGNAL: &'static str = "traces";
    const NOUN: &'static str = "span(s)";
}

impl SpanData {
    pub fn set_attribute(&mut self, key: String, value: Value, limits: &SpanLimits) {
        self.attributes
            .set(key, value, limits.attribute_count, limits.attribute_value_length);
    }

    pub fn add_event(&mut self, name: String, time_ns: u64, attributes: Vec<(String, Value)>, limits: &SpanLimits) {
        if self.events.len() >= limits.event_count {
            self.dropped_events = self.dropped_events.saturating_add(1);
            return;
        }
        let mut attrs = Attributes::with_capacity(attributes.len());
        for (k, v) in attributes {
            attrs.set(k, v, limits.event_attribute_count, limits.attribute_value_length);
        }
        self.events.push(Event {
            name,
            time_ns,
            attributes: attrs,
        });
    }

    pub fn add_link(&mut self, mut link: Link, limits: &SpanLimits) {
        if self.links.len() >= limits.link_count {
            self.dropped_links = self.dropped_links.saturating_add(1);
            return;
        }
        let given = std::mem::take(&mut link.attributes);
        link.attributes.dropped = given.dropped;
        for (k, v) in given.into_vec() {
            link.attributes
                .set(k, v, limits.link_attribute_count, limits.attribute_value_length);
        }
        self.links.push(link);
    }

    /// Applies the spec's rules: `Ok` is final; `Unset` never overrides; a description is
    /// kept only with `Error`.
    pub fn set_status(&mut self, code: StatusCode, description: Option<String>) {
        if self.status.code == StatusCode::Ok || code == StatusCode::Unset {
            return;
        }
        let description = if code == StatusCode::Error {
            description.unwrap_or_default()
        } else {
            String::new()
        };
        self.status = Status { code, description };
    }

    pub fn is_sampled(&self) -> bool {
        self.trace_flags & 1 == 1
    }

    /// A sampled root span with nothing recorded yet.
    #[cfg(test)]
    pub fn for_tests() -> SpanData {
        SpanData {
            trace_id: 1,
            span_id: 2,
            parent_span_id: None,
            parent_is_remote: false,
            trace_flags: 1,
            trace_state: String::new(),
            name: "s".into(),
            kind: SpanKind::Internal,
            start_ns: 0,
            end_ns: 0,
            attributes: Attributes::default(),
            events: vec![],
            dropped_events: 0,
            links: vec![],
            dropped_links: 0,
            status: Status::default(),
            scope: ScopeRef::Counted(Arc::new(Scope::default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_scopes_are_one_kept_object_and_scopes_beyond_the_cap_are_counted() {
        let named = |name: &str| Scope {
            name: name.into(),
            ..Scope::default()
        };
        let first = ScopeRef::new(named("kept"));
        assert!(matches!(first, ScopeRef::Kept(_)));
        assert_eq!(ScopeRef::new(named("kept")).as_ptr(), first.as_ptr());
        assert_ne!(ScopeRef::new(named("other")).as_ptr(), first.as_ptr());
        for i in 0..KEPT_SCOPES {
            ScopeRef::new(named(&format!("filler {i}")));
        }
        let late = ScopeRef::new(named("late"));
        assert!(matches!(late, ScopeRef::Counted(_)));
        assert_eq!(*late, named("late"));
        assert_ne!(ScopeRef::new(named("late")).as_ptr(), late.as_ptr());
        assert_eq!(ScopeRef::new(named("kept")).as_ptr(), first.as_ptr());
    }

    fn span() -> SpanData {
        SpanData::for_tests()
    }

    fn limits() -> SpanLimits {
        SpanLimits {
            attribute_count: 2,
            attribute_value_length: Some(3),
            event_count: 1,
            link_count: 1,
            event_attribute_count: 1,
            link_attribute_count: 1,
        }
    }

    #[test]
    fn status_rules() {
        let mut s = span();
        s.set_status(StatusCode::Ok, Some("ignored".into()));
        assert_eq!(
            s.status,
            Status {
                code: StatusCode::Ok,
                description: String::new()
            }
        );
        s.set_status(StatusCode::Error, Some("late".into()));
        assert_eq!(s.status.code, StatusCode::Ok, "OK is final");
        let mut s = span();
        s.set_status(StatusCode::Error, Some("boom".into()));
        s.set_status(StatusCode::Unset, None);
        assert_eq!(
            s.status,
            Status {
                code: StatusCode::Error,
                description: "boom".into()
            }
        );
    }

    #[test]
    fn events_and_links_respect_their_limits() {
        let mut s = span();
        let l = limits();
        s.add_event(
            "e1".into(),
            5,
            vec![("a".into(), Value::Str("abcdef".into())), ("b".into(), Value::Int(1))],
            &l,
        );
        s.add_event("e2".into(), 6, vec![], &l);
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.dropped_events, 1);
        assert_eq!(
            s.events[0].attributes.to_vec(),
            vec![("a".into(), Value::Str("abc".into()))]
        );
        assert_eq!(s.events[0].attributes.dropped, 1);
        let link = |id| Link {
            trace_id: id,
            span_id: 1,
            trace_flags: 1,
            trace_state: String::new(),
            is_remote: true,
            attributes: Attributes::new(
                vec![("x".into(), Value::Bool(true)), ("y".into(), Value::Bool(false))],
                0,
            ),
        };
        s.add_link(link(7), &l);
        s.add_link(link(8), &l);
        assert_eq!(s.links.len(), 1);
        assert_eq!(s.dropped_links, 1);
        assert_eq!(s.links[0].attributes.dropped, 1);
    }
}
