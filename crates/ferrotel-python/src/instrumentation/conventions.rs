//! The built-ins' semantic conventions for the path that records through another SDK's
//! provider (a vendor distro's, a user's own upstream set-up): span names, attributes and
//! metric attributes are decided here, exactly as on ferrotel's native path; the Python glue
//! (`ferrotel/instrumentation/_generic.py`) records them through the opentelemetry-api.

use std::sync::Mutex;
use std::time::Instant;

use ferrotel_sdk::span::StatusCode;
use ferrotel_sdk::sync::lock;
use ferrotel_sdk::value::Value;
use ferrotel_semconv as semconv;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::call_span::owned;
use super::headers::header_pairs;
use super::http_metrics::{ClientFacts, ServerFacts};
use super::incoming::Incoming;
use super::settings::settings;
use crate::boundary::exception::exception_type;
use crate::boundary::value::to_python;

pub(crate) fn dict<'py>(py: Python<'py>, attributes: &[(String, Value)]) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (k, v) in attributes {
        out.set_item(k, to_python(py, v)?)?;
    }
    Ok(out)
}

/// The captured headers' attributes; `headers` lists them only when some are asked for.
fn captured(
    direction: &str,
    names: &[String],
    headers: impl FnOnce() -> Vec<(String, String)>,
) -> Vec<(String, Value)> {
    if names.is_empty() {
        return Vec::new();
    }
    semconv::captured_headers(direction, &headers(), names, &settings().capture.sanitize_fields)
}

/// One request served, as the conventions see it.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct ServerConventions {
    method: String,
    facts: Mutex<ServerFacts>,
}

/// A served request's conventions, span name, attributes and request headers.
type ServerStart<'py> = (ServerConventions, String, Bound<'py, PyDict>, Vec<(String, String)>);

/// `(conventions, span name, attributes, request headers)` for a WSGI environ (`asgi`
/// false) or an ASGI `http` scope; the headers for the global propagator to extract from.
#[pyfunction]
pub(crate) fn server_conventions<'py>(
    py: Python<'py>,
    request: &Bound<'py, PyDict>,
    asgi: bool,
) -> PyResult<ServerStart<'py>> {
    let incoming = if asgi {
        Incoming::from_asgi_scope(request)?
    } else {
        Incoming::from_environ(request)
    };
    let settings = settings();
    let headers = incoming.headers.pairs();
    let mut attributes = owned(semconv::server_request_attributes(
        &incoming.facts(),
        settings.http_semconv,
    ));
    attributes.extend(captured("request", &settings.capture.server_request, || {
        headers.clone()
    }));
    let conventions = ServerConventions {
        method: incoming.method.clone(),
        facts: Mutex::new(ServerFacts {
            method: semconv::method(&incoming.method).0,
            scheme: incoming.scheme.clone(),
            protocol_version: incoming.protocol_version.clone(),
            status: None,
            route: None,
            error_type: None,
            request_body_size: incoming.content_length,
            response_body_size: None,
            started: Instant::now(),
        }),
    };
    let name = semconv::span_name(&incoming.method, None);
    Ok((conventions, name, dict(py, &attributes)?, headers))
}

#[pymethods]
impl ServerConventions {
    /// `(attributes, error)` for the response status (`"404 Not Found"` or `404`) and headers.
    #[pyo3(signature = (status, headers=None))]
    fn response<'py>(
        &self,
        py: Python<'py>,
        status: &Bound<'py, PyAny>,
        headers: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<(Bound<'py, PyDict>, bool)>> {
        let code = match status.extract::<u16>() {
            Ok(code) => Some(code),
            Err(_) => status.extract::<String>().ok().and_then(|s| semconv::status_code(&s)),
        };
        let Some(code) = code else { return Ok(None) };
        lock(&self.facts).status = Some(code);
        let (attrs, status) = semconv::server_response(code, settings().http_semconv);
        let mut attributes = owned(attrs);
        attributes.extend(captured("response", &settings().capture.server_response, || {
            header_pairs(headers)
        }));
        Ok(Some((dict(py, &attributes)?, status == StatusCode::Error)))
    }

    /// `(span name, attributes)` for the route template the framework matched.
    fn route<'py>(&self, py: Python<'py>, route: &str) -> PyResult<(String, Bound<'py, PyDict>)> {
        lock(&self.facts).route = Some(route.to_owned());
        Ok((
            semconv::span_name(&self.method, Some(route)),
            dict(py, &owned(semconv::route(route)))?,
        ))
    }

    /// The `error.type` of an exception the app did not handle (kept for the metrics).
    fn error_type(&self, exception: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        if !exception.is_instance_of::<PyException>() {
            return Ok(None);
        }
        let error_type = exception_type(exception)?;
        lock(&self.facts).error_type.get_or_insert(error_type.clone());
        Ok(Some(error_type))
    }

    fn duration_attributes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dict(py, &lock(&self.facts).duration_attributes())
    }

    fn active_attributes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dict(py, &lock(&self.facts).active_attributes())
    }

    /// Seconds since the request started.
    fn elapsed(&self) -> f64 {
        lock(&self.facts).started.elapsed().as_secs_f64()
    }
}

/// One outgoing request, as the conventions see it.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct ClientConventions {
    facts: Mutex<ClientFacts>,
}

/// `(conventions, span name, attributes)` for an outgoing request about to be sent with
/// `headers` (read for capture only).
#[pyfunction]
pub(crate) fn client_conventions<'py>(
    py: Python<'py>,
    method: &str,
    url: &str,
    headers: Option<&Bound<'py, PyAny>>,
) -> PyResult<(ClientConventions, String, Bound<'py, PyDict>)> {
    let settings = settings();
    let request = semconv::ClientRequest { method, url };
    let mut attributes = owned(semconv::client_request_attributes(&request, settings.http_semconv));
    attributes.extend(captured("request", &settings.capture.client_request, || {
        header_pairs(headers)
    }));
    let (_, host, port) = semconv::url_parts(url);
    let conventions = ClientConventions {
        facts: Mutex::new(ClientFacts {
            method: semconv::method(method).0,
            server_address: host.to_owned(),
            server_port: port,
            status: None,
            protocol_version: None,
            error_type: None,
            started: Instant::now(),
        }),
    };
    Ok((conventions, semconv::span_name(method, None), dict(py, &attributes)?))
}

#[pymethods]
impl ClientConventions {
    /// `(attributes, error)` for the response's status, headers and HTTP version (11 for 1.1).
    #[pyo3(signature = (status, headers=None, version=None))]
    fn response<'py>(
        &self,
        py: Python<'py>,
        status: u16,
        headers: Option<&Bound<'py, PyAny>>,
        version: Option<u8>,
    ) -> PyResult<(Bound<'py, PyDict>, bool)> {
        let protocol_version = {
            let mut facts = lock(&self.facts);
            facts.responded(status, version);
            facts.protocol_version.clone()
        };
        let (attrs, code) = semconv::client_response(status, settings().http_semconv);
        let mut attributes = owned(attrs);
        if let Some(protocol_version) = protocol_version {
            attributes.push(("network.protocol.version".to_owned(), Value::Str(protocol_version)));
        }
        attributes.extend(captured("response", &settings().capture.client_response, || {
            header_pairs(headers)
        }));
        Ok((dict(py, &attributes)?, code == StatusCode::Error))
    }

    /// The `error.type` of a failed request (kept for the metric).
    fn error_type(&self, exception: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        if !exception.is_instance_of::<PyException>() {
            return Ok(None);
        }
        let error_type = exception_type(exception)?;
        lock(&self.facts).error_type = Some(error_type.clone());
        Ok(Some(error_type))
    }

    fn duration_attributes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        dict(py, &lock(&self.facts).attributes())
    }

    fn elapsed(&self) -> f64 {
        lock(&self.facts).started.elapsed().as_secs_f64()
    }
}

/// `(span name, attributes)` of a database statement.
#[pyfunction]
pub(crate) fn db_conventions<'py>(
    py: Python<'py>,
    system: &str,
    namespace: &str,
    query: &str,
) -> PyResult<(String, Bound<'py, PyDict>)> {
    let (name, attributes) = semconv::db_call(system, namespace, query, settings().db_semconv);
    Ok((name, dict(py, &owned(attributes))?))
}
