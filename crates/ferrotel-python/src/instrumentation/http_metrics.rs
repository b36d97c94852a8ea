//! The attributes the stable HTTP metrics are recorded with (`http.server.request.duration`,
//! `http.server.active_requests`, `http.server.request.body.size`,
//! `http.server.response.body.size`, `http.client.request.duration`), kept apart from the span
//! so unsampled requests count too; with `OTEL_SEMCONV_STABILITY_OPT_IN=http/dup`, the old
//! conventions' durations beside them (`http.server.duration`, `http.client.duration`, in
//! milliseconds, with the old attribute names), as upstream's instrumentations record them.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use ferrotel_sdk::metrics::{Instrument, MeasuredIn, Number, PreparedAttributes};
use ferrotel_sdk::value::Value;
use pyo3::prelude::*;

use crate::metrics::instruments::{Histogram, UpDownCounter};

/// What a served request's metrics are attributed by.
pub(crate) struct ServerFacts {
    pub(crate) method: Cow<'static, str>,
    pub(crate) scheme: String,
    pub(crate) protocol_version: String,
    pub(crate) status: Option<u16>,
    pub(crate) route: Option<String>,
    pub(crate) error_type: Option<String>,
    /// `Content-Length` of the request and of the response, when they declare one.
    pub(crate) request_body_size: Option<i64>,
    pub(crate) response_body_size: Option<i64>,
    pub(crate) started: Instant,
}

impl ServerFacts {
    pub(crate) fn active_attributes(&self) -> Vec<(String, Value)> {
        vec![
            ("http.request.method".into(), Value::Str(self.method.to_string())),
            ("url.scheme".into(), Value::Str(self.scheme.clone())),
        ]
    }

    pub(crate) fn duration_attributes(&self) -> Vec<(String, Value)> {
        let mut attributes = self.active_attributes();
        if !self.protocol_version.is_empty() {
            attributes.push((
                "network.protocol.version".into(),
                Value::Str(self.protocol_version.clone()),
            ));
        }
        if let Some(status) = self.status {
            attributes.push(("http.response.status_code".into(), Value::Int(status.into())));
        }
        if let Some(route) = &self.route {
            attributes.push(("http.route".into(), Value::Str(route.clone())));
        }
        // A server error without an exception is typed by its status code, as the
        // conventions say.
        let error_type = self
            .error_type
            .clone()
            .or_else(|| self.status.filter(|s| *s >= 500).map(|s| s.to_string()));
        if let Some(error_type) = error_type {
            attributes.push(("error.type".into(), Value::Str(error_type)));
        }
        attributes
    }

    /// [`Self::duration_attributes`] put in order, from this thread's recent sets when a
    /// request with the same facts ended lately: a server sees the same few (method, route,
    /// status) again and again, and building, ordering and keying the set cost more than
    /// finding it (about 1.5k instructions a request).
    pub(crate) fn prepared_duration_attributes(&self) -> Rc<PreparedAttributes> {
        RECENT_DURATION_SETS.with_borrow_mut(|recent| recent.get_or_make(self))
    }
}

/// The facts a duration set is made of, kept to recognise them.
struct DurationFacts {
    method: Cow<'static, str>,
    scheme: String,
    protocol_version: String,
    status: Option<u16>,
    route: Option<String>,
    error_type: Option<String>,
}

impl DurationFacts {
    fn of(facts: &ServerFacts) -> DurationFacts {
        DurationFacts {
            method: facts.method.clone(),
            scheme: facts.scheme.clone(),
            protocol_version: facts.protocol_version.clone(),
            status: facts.status,
            route: facts.route.clone(),
            error_type: facts.error_type.clone(),
        }
    }

    /// Whether `facts` make the same set; the facts that differ most often come first.
    fn describe(&self, facts: &ServerFacts) -> bool {
        self.status == facts.status
            && self.route == facts.route
            && self.method == facts.method
            && self.error_type == facts.error_type
            && self.scheme == facts.scheme
            && self.protocol_version == facts.protocol_version
    }
}

/// How many duration sets a thread keeps: enough for a service's hot routes and statuses,
/// few enough that a miss (a scan of them all) stays cheap.
const RECENT_SETS: usize = 32;

#[derive(Default)]
struct RecentDurationSets {
    sets: Vec<(DurationFacts, Rc<PreparedAttributes>)>,
    /// Once full, the oldest set is replaced, in turn.
    next_replaced: usize,
}

impl RecentDurationSets {
    fn get_or_make(&mut self, facts: &ServerFacts) -> Rc<PreparedAttributes> {
        if let Some((_, set)) = self.sets.iter().find(|(seen, _)| seen.describe(facts)) {
            return set.clone();
        }
        let set = Rc::new(PreparedAttributes::new(facts.duration_attributes()));
        let entry = (DurationFacts::of(facts), set.clone());
        if self.sets.len() < RECENT_SETS {
            self.sets.push(entry);
        } else {
            self.sets[self.next_replaced] = entry;
            self.next_replaced = (self.next_replaced + 1) % RECENT_SETS;
        }
        set
    }
}

thread_local! {
    static RECENT_DURATION_SETS: RefCell<RecentDurationSets> = RefCell::default();
}

/// What an outgoing request's duration is attributed by.
pub(crate) struct ClientFacts {
    pub(crate) method: Cow<'static, str>,
    pub(crate) server_address: String,
    pub(crate) server_port: Option<u16>,
    pub(crate) status: Option<u16>,
    pub(crate) protocol_version: Option<String>,
    pub(crate) error_type: Option<String>,
    pub(crate) started: Instant,
}

impl ClientFacts {
    /// The response's status and HTTP version, as Python's clients give it (10, 11, 20):
    /// `1.0`, `1.1`, `2`, as upstream's instrumentations write them.
    pub(crate) fn responded(&mut self, status: u16, version: Option<u8>) {
        self.status = Some(status);
        self.protocol_version = version.map(|v| match v % 10 {
            0 if v / 10 >= 2 => (v / 10).to_string(),
            minor => format!("{}.{minor}", v / 10),
        });
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Value)> {
        let mut attributes = vec![("http.request.method".into(), Value::Str(self.method.to_string()))];
        if !self.server_address.is_empty() {
            attributes.push(("server.address".into(), Value::Str(self.server_address.clone())));
        }
        if let Some(port) = self.server_port {
            attributes.push(("server.port".into(), Value::Int(port.into())));
        }
        if let Some(status) = self.status {
            attributes.push(("http.response.status_code".into(), Value::Int(status.into())));
        }
        if let Some(version) = &self.protocol_version {
            attributes.push(("network.protocol.version".into(), Value::Str(version.clone())));
        }
        // For a client every 4xx and 5xx is an error, typed by its status.
        let error_type = self
            .error_type
            .clone()
            .or_else(|| self.status.filter(|s| *s >= 400).map(|s| s.to_string()));
        if let Some(error_type) = error_type {
            attributes.push(("error.type".into(), Value::Str(error_type)));
        }
        attributes
    }
}

/// The old server duration's attributes (and `http.status_code` once known).
const OLD_SERVER_DURATION_KEYS: &[&str] = &[
    "http.method",
    "http.host",
    "http.scheme",
    "http.flavor",
    "http.server_name",
    "net.host.name",
    "net.host.port",
];

/// What the old conventions add to `http.server.active_requests` (one counter for both).
const OLD_SERVER_ACTIVE_KEYS: &[&str] = &[
    "http.method",
    "http.host",
    "http.scheme",
    "http.flavor",
    "http.server_name",
];

/// What the response adds to an old duration's attributes.
#[derive(Default)]
pub(crate) struct OldResponse<'a> {
    pub(crate) status: Option<u16>,
    pub(crate) flavor: Option<&'a str>,
    pub(crate) route: Option<&'a str>,
}

/// The old conventions' duration of one request, when `/dup` asks for it.
pub(crate) struct OldDuration {
    histogram: Arc<Instrument>,
    /// The old attributes known when the request starts.
    request: Vec<(String, Value)>,
}

impl OldDuration {
    /// A served request's: `request` holds the old names the server's facts give.
    pub(crate) fn server(histogram: Arc<Instrument>, request: &[(String, Value)]) -> OldDuration {
        OldDuration {
            histogram,
            request: request
                .iter()
                .filter(|(k, _)| OLD_SERVER_DURATION_KEYS.contains(&k.as_str()))
                .cloned()
                .collect(),
        }
    }

    /// An outgoing request's, to `url`: method, scheme, host (as `http.host` and
    /// `net.peer.name`) and the port when the URL names one.
    pub(crate) fn client(histogram: Arc<Instrument>, method: &str, url: &str) -> OldDuration {
        let (scheme, host, _) = ferrotel_semconv::url_parts(url);
        let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = authority.split(['/', '?', '#']).next().unwrap_or("");
        let explicit_port = ferrotel_semconv::host_and_port(authority).1;
        let mut request = vec![(
            "http.method".to_string(),
            Value::Str(ferrotel_semconv::method(method).0.into()),
        )];
        if !scheme.is_empty() {
            request.push(("http.scheme".into(), Value::Str(scheme.into())));
        }
        if !host.is_empty() {
            request.push(("http.host".into(), Value::Str(host.into())));
            request.push(("net.peer.name".into(), Value::Str(host.into())));
        }
        if let Some(port) = explicit_port {
            request.push(("net.peer.port".into(), Value::Int(port.into())));
        }
        OldDuration { histogram, request }
    }

    /// The old names `http.server.active_requests` carries besides the stable ones.
    pub(crate) fn active_attributes(&self) -> impl Iterator<Item = (String, Value)> + '_ {
        self.request
            .iter()
            .filter(|(k, _)| OLD_SERVER_ACTIVE_KEYS.contains(&k.as_str()))
            .cloned()
    }

    /// Records the duration in whole milliseconds (rounded half to even, as Python's
    /// `round`), with the response's status, for a client its HTTP version, for a server
    /// the route matched (as `http.target`, where upstream's Flask instrumentation puts it).
    pub(crate) fn record(&self, seconds: f64, response: OldResponse<'_>, now_ns: u64, span: Option<MeasuredIn>) {
        let OldResponse { status, flavor, route } = response;
        let mut attributes = self.request.clone();
        if let Some(flavor) = flavor.filter(|f| !f.is_empty()) {
            attributes.push(("http.flavor".into(), Value::Str(flavor.into())));
        }
        if let Some(route) = route {
            attributes.push(("http.target".into(), Value::Str(route.into())));
        }
        if let Some(status) = status {
            attributes.push(("http.status_code".into(), Value::Int(status.into())));
        }
        let millis = (seconds * 1000.0).round_ties_even().max(0.0) as i64;
        self.histogram.record_in(Number::Int(millis), attributes, now_ns, span);
    }
}

/// ferrotel's own histogram behind a Python instrument object, if it is one (another SDK's
/// meters record nothing here).
pub(crate) fn histogram(instrument: Option<&Bound<'_, PyAny>>) -> Option<Arc<Instrument>> {
    instrument?.cast::<Histogram>().ok()?.get().instrument.clone()
}

/// ferrotel's own up-down counter behind a Python instrument object, if it is one.
pub(crate) fn up_down_counter(instrument: Option<&Bound<'_, PyAny>>) -> Option<Arc<Instrument>> {
    instrument?.cast::<UpDownCounter>().ok()?.get().instrument.clone()
}

#[cfg(test)]
mod tests {
    use ferrotel_config::ExemplarFilter;
    use ferrotel_sdk::metrics::{Aggregation, Data, Descriptor, InstrumentKind, Temporality};
    use ferrotel_sdk::span::Scope;

    use super::*;

    fn histogram() -> Arc<Instrument> {
        let descriptor = Descriptor {
            name: "http.client.duration".into(),
            description: String::new(),
            unit: "ms".into(),
            kind: InstrumentKind::Histogram,
            scope: Arc::new(Scope::default()),
            advisory: None,
        };
        Arc::new(Instrument::new(
            descriptor,
            ExemplarFilter::AlwaysOff,
            vec![(0, Aggregation::Default)],
        ))
    }

    #[test]
    fn old_client_durations_are_whole_milliseconds_with_the_old_names() {
        let instrument = histogram();
        let old = OldDuration::client(instrument.clone(), "GET", "https://shop.example/cart?x=1");
        let response = |status| OldResponse {
            status: Some(status),
            flavor: Some("1.1"),
            route: None,
        };
        // 2.5 ms rounds to 2, as Python's round does; 3.5 to 4.
        old.record(0.0025, response(200), 1, None);
        old.record(0.0035, response(200), 2, None);
        let [metric] = &instrument.collect(0, Temporality::Cumulative, 3)[..] else {
            panic!()
        };
        let Data::Histogram { points, .. } = &metric.data else {
            panic!()
        };
        assert_eq!((points[0].count, points[0].sum), (2, 6.0));
        let keys: Vec<&str> = points[0].attributes.iter().map(|(k, _)| k.as_str()).collect();
        // No `net.peer.port`: the URL names none (upstream's default port is not reported).
        assert_eq!(
            keys,
            [
                "http.flavor",
                "http.host",
                "http.method",
                "http.scheme",
                "http.status_code",
                "net.peer.name"
            ]
        );
        assert_eq!(points[0].attributes.get("http.method"), Some(&Value::Str("GET".into())));
    }

    fn facts(status: u16, route: &str) -> ServerFacts {
        ServerFacts {
            method: Cow::Borrowed("GET"),
            scheme: "http".into(),
            protocol_version: "1.1".into(),
            status: Some(status),
            route: Some(route.into()),
            error_type: None,
            request_body_size: None,
            response_body_size: None,
            started: Instant::now(),
        }
    }

    #[test]
    fn a_recent_duration_set_is_reused_only_for_the_same_facts() {
        let fresh = |f: &ServerFacts| format!("{:?}", PreparedAttributes::new(f.duration_attributes()));
        let first = facts(200, "/users/{id}").prepared_duration_attributes();
        assert!(Rc::ptr_eq(
            &first,
            &facts(200, "/users/{id}").prepared_duration_attributes()
        ));
        let mut variants = vec![facts(404, "/users/{id}"), facts(200, "/orders/{id}")];
        variants.push(ServerFacts {
            method: Cow::Borrowed("POST"),
            ..facts(200, "/users/{id}")
        });
        variants.push(ServerFacts {
            scheme: "https".into(),
            ..facts(200, "/users/{id}")
        });
        variants.push(ServerFacts {
            protocol_version: "2".into(),
            ..facts(200, "/users/{id}")
        });
        variants.push(ServerFacts {
            error_type: Some("TimeoutError".into()),
            ..facts(200, "/users/{id}")
        });
        variants.push(ServerFacts {
            route: None,
            ..facts(200, "/users/{id}")
        });
        for variant in &variants {
            let set = variant.prepared_duration_attributes();
            assert!(!Rc::ptr_eq(&first, &set));
            assert_eq!(format!("{set:?}"), fresh(variant));
        }
        // Past the thread's capacity the oldest sets make way, and every answer stays right.
        for i in 0..(2 * RECENT_SETS as u16) {
            let f = facts(200 + i, "/many");
            assert_eq!(format!("{:?}", f.prepared_duration_attributes()), fresh(&f));
        }
        let again = facts(200, "/users/{id}");
        assert_eq!(format!("{:?}", again.prepared_duration_attributes()), fresh(&again));
    }
}
