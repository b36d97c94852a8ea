//! The attributes the stable HTTP metrics are recorded with (`http.server.request.duration`,
//! `http.server.active_requests`, `http.server.request.body.size`,
//! `http.server.response.body.size`, `http.client.request.duration`), kept apart from the span
//! so unsampled requests count too.

use std::sync::Arc;
use std::time::Instant;

use ferrotel_sdk::metrics::Instrument;
use ferrotel_sdk::value::Value;
use pyo3::prelude::*;

use crate::metrics::instruments::{Histogram, UpDownCounter};

/// What a served request's metrics are attributed by.
pub(crate) struct ServerFacts {
    pub(crate) method: &'static str,
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
            ("http.request.method".into(), Value::Str(self.method.into())),
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
}

/// What an outgoing request's duration is attributed by.
pub(crate) struct ClientFacts {
    pub(crate) method: &'static str,
    pub(crate) server_address: String,
    pub(crate) server_port: Option<u16>,
    pub(crate) status: Option<u16>,
    pub(crate) protocol_version: Option<String>,
    pub(crate) error_type: Option<String>,
    pub(crate) started: Instant,
}

impl ClientFacts {
    /// The response's status and HTTP version, as Python's clients give it (10, 11, 20).
    pub(crate) fn responded(&mut self, status: u16, version: Option<u8>) {
        self.status = Some(status);
        self.protocol_version = version.map(|v| match v % 10 {
            0 => (v / 10).to_string(),
            minor => format!("{}.{minor}", v / 10),
        });
    }

    pub(crate) fn attributes(&self) -> Vec<(String, Value)> {
        let mut attributes = vec![("http.request.method".into(), Value::Str(self.method.into()))];
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

/// ferrotel's own histogram behind a Python instrument object, if it is one (another SDK's
/// meters record nothing here).
pub(crate) fn histogram(instrument: Option<&Bound<'_, PyAny>>) -> Option<Arc<Instrument>> {
    instrument?.cast::<Histogram>().ok()?.get().instrument.clone()
}

/// ferrotel's own up-down counter behind a Python instrument object, if it is one.
pub(crate) fn up_down_counter(instrument: Option<&Bound<'_, PyAny>>) -> Option<Arc<Instrument>> {
    instrument?.cast::<UpDownCounter>().ok()?.get().instrument.clone()
}
