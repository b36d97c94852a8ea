//! A WSGI request served in one native call: the server span (server.rs) around the app,
//! a native `start_response`, and the body handed back with the span's end on its close
//! (body.rs).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::body::hand_back_body;
use super::incoming::Incoming;
use super::server::{response_propagator, start, ServerRequest};

/// Serves one WSGI request in a single native call: the server span started and made
/// current, the request (`environ["ferrotel.request"]`) noted, `request_hook(span, environ)`,
/// `app(environ, start_response)` with a native `start_response` in front of the server's,
/// and the app's body handed back with the span's end riding on its close (or the span
/// ended with the app's exception, which goes on). `tracer` must be ferrotel's.
/// `werkzeug_route`: the app is a werkzeug one (Flask) whose matched rule names the span;
/// read when the response starts (or the app fails), with no hook inside the framework.
#[pyfunction]
#[pyo3(signature = (tracer, instruments, environ, start_response, app, request_hook=None, response_hook=None, werkzeug_route=false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn serve_wsgi<'py>(
    py: Python<'py>,
    tracer: &Bound<'py, PyAny>,
    instruments: &Bound<'py, PyTuple>,
    environ: &Bound<'py, PyDict>,
    start_response: &Bound<'py, PyAny>,
    app: &Bound<'py, PyAny>,
    request_hook: Option<&Bound<'py, PyAny>>,
    response_hook: Option<&Bound<'py, PyAny>>,
    werkzeug_route: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(request) = start(py, tracer, Incoming::from_environ(environ), Some(instruments))? else {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "serve_wsgi needs ferrotel's tracer",
        ));
    };
    let request = Bound::new(py, request)?;
    environ.set_item(pyo3::intern!(py, "ferrotel.request"), &request)?;
    let served = (|| {
        if let Some(hook) = request_hook {
            hook.call1((request.get().span.bind(py), environ))?;
        }
        let traced = WsgiStartResponse {
            request: request.clone().unbind(),
            start_response: start_response.clone().unbind(),
            environ: environ.clone().unbind(),
            response_hook: response_hook.map(|hook| hook.clone().unbind()),
            werkzeug_route,
        };
        app.call1((environ, traced))
    })();
    match served {
        Ok(body) => hand_back_body(request.as_any(), body),
        Err(error) => {
            if werkzeug_route {
                note_werkzeug_route(request.get(), environ);
            }
            request.get().record_error(py, error.value(py).as_any())?;
            request.get().end_request(py, true)?;
            Err(error)
        }
    }
}

/// The `start_response` a WSGI app is handed: notes the status and headers on the request,
/// writes the response propagator's header (when one is set), calls the response hook (when
/// given), then the server's own `start_response`, whose result it returns.
#[pyclass(frozen, module = "ferrotel._native")]
pub(crate) struct WsgiStartResponse {
    request: Py<ServerRequest>,
    start_response: Py<PyAny>,
    environ: Py<PyDict>,
    /// `hook(span, environ, status, headers)`.
    response_hook: Option<Py<PyAny>>,
    werkzeug_route: bool,
}

#[pymethods]
impl WsgiStartResponse {
    #[pyo3(signature = (status, headers, *rest))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        rest: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = self.request.get();
        if self.werkzeug_route {
            note_werkzeug_route(request, self.environ.bind(py));
        }
        request.responded(status, Some(headers));
        if let Some(propagator) = response_propagator(py) {
            py.import(pyo3::intern!(py, "ferrotel.instrumentation.wsgi"))?
                .getattr(pyo3::intern!(py, "_inject_response"))?
                .call1((propagator, request.span.bind(py), headers))?;
        }
        if let Some(hook) = &self.response_hook {
            hook.bind(py)
                .call1((request.span.bind(py), self.environ.bind(py), status, headers))?;
        }
        let start_response = self.start_response.bind(py);
        if rest.is_empty() {
            start_response.call1((status, headers))
        } else {
            let mut all = Vec::with_capacity(rest.len() + 2);
            all.extend([status.clone(), headers.clone()]);
            all.extend(rest.iter());
            start_response.call1(PyTuple::new(py, all)?)
        }
    }
}

/// The rule template werkzeug matched (`environ["werkzeug.request"].url_rule.rule`, where
/// Flask's request leaves it), as the request's route; nothing when no rule matched.
fn note_werkzeug_route(request: &ServerRequest, environ: &Bound<'_, PyDict>) {
    let py = environ.py();
    let rule = environ
        .get_item(pyo3::intern!(py, "werkzeug.request"))
        .ok()
        .flatten()
        .and_then(|werkzeug| werkzeug.getattr_opt(pyo3::intern!(py, "url_rule")).ok().flatten())
        .filter(|rule| !rule.is_none())
        .and_then(|rule| rule.getattr_opt(pyo3::intern!(py, "rule")).ok().flatten());
    if let Some(template) = rule.as_ref().and_then(|rule| rule.cast::<PyString>().ok()) {
        if let Ok(template) = template.to_str() {
            request.set_route(template);
        }
    }
}
