//! The native side of ferrotel's built-in instrumentations: the Python glue patches a
//! library and calls in once per request or statement; everything per call happens here.
//!
//! - [`server`]: an HTTP request being served (WSGI environ or ASGI scope, read by
//!   [`incoming`]): its SERVER span, current until the response ends, and the server metrics.
//! - [`fastapi`]: FastAPI's own operation spans, made natively under the server span.
//! - [`body`]: a WSGI response body handed back as the app made it, the span's end on it.
//! - [`client`]: an outgoing HTTP request: its CLIENT span, propagation headers injected.
//! - [`db`]: a database driver's statements: each one's CLIENT span and duration.
//! - [`operation`]: a messaging or RPC operation: its span under the context a message or
//!   request carries, and that context written into outgoing messages.
//! - [`rpc`]: gRPC's names, attributes and error codes for the calls `operation` traces.
//! - [`headers`]: header lists and maps as carriers and as captured attributes.
//! - [`http_metrics`]: the attributes the stable HTTP metrics are recorded with.
//! - [`conventions`]: the same names and attributes for the path that records through
//!   another SDK's provider.
//! - [`call_span`]: what the three kinds of call do alike with their span.
//! - [`settings`]: what the instrumentations read from the environment, once.

pub(crate) mod body;
pub(crate) mod call_span;
pub(crate) mod client;
pub(crate) mod conventions;
pub(crate) mod db;
pub(crate) mod fastapi;
pub(crate) mod headers;
pub(crate) mod http_metrics;
pub(crate) mod incoming;
pub(crate) mod operation;
pub(crate) mod rpc;
pub(crate) mod server;
pub(crate) mod settings;
pub(crate) mod wsgi;

use pyo3::prelude::*;

/// The classes `ferrotel._native` hands out on first access (see `lazy_class!`).
pub(crate) const CLASSES: &[crate::LazyClass] = &[
    crate::lazy_class!(server::ServerRequest),
    crate::lazy_class!(server::TracedSend),
    crate::lazy_class!(wsgi::WsgiStartResponse),
    crate::lazy_class!(fastapi::FastapiOperations),
    crate::lazy_class!(fastapi::FastapiOperation),
    crate::lazy_class!(body::BodyCloser),
    crate::lazy_class!(body::TracedBody),
    crate::lazy_class!(client::ClientRequest),
    crate::lazy_class!(db::DbStatements),
    crate::lazy_class!(db::DbOperation),
    crate::lazy_class!(conventions::ServerConventions),
    crate::lazy_class!(conventions::ClientConventions),
    crate::lazy_class!(operation::Operation),
];

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(wsgi::serve_wsgi, m)?)?;
    m.add_function(wrap_pyfunction!(server::start_asgi_request, m)?)?;
    m.add_function(wrap_pyfunction!(body::hand_back_body, m)?)?;
    body::take_part_in_exit_and_fork();
    m.add_function(wrap_pyfunction!(client::start_client_request, m)?)?;
    m.add_function(wrap_pyfunction!(conventions::server_conventions, m)?)?;
    m.add_function(wrap_pyfunction!(conventions::client_conventions, m)?)?;
    m.add_function(wrap_pyfunction!(conventions::db_conventions, m)?)?;
    m.add_function(wrap_pyfunction!(operation::start_operation, m)?)?;
    m.add_function(wrap_pyfunction!(operation::start_rpc, m)?)?;
    m.add_function(wrap_pyfunction!(rpc::rpc_conventions, m)?)?;
    m.add_function(wrap_pyfunction!(rpc::rpc_status, m)?)?;
    Ok(())
}
