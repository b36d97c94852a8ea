//! `Propagator`: `OTEL_PROPAGATORS` formats behind the API's `TextMapPropagator` interface.
//!
//! Parsing and formatting are `ferrotel-propagation`'s; this layer adapts the API's carrier
//! and getter/setter (with a fast path for plain dicts and the default getter/setter), and
//! builds contexts from the API's own types. A getter or setter that raises is treated as
//! an absent header: propagation never raises into the application.

use ferrotel_config::{Config, Propagator as Configured};
use ferrotel_propagation::{Carrier, Composite, Format, RemoteContext};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PySet, PyString};

use crate::boundary::api;
use crate::boundary::plugins;
use crate::trace::context::{add_baggage, baggage_in, SpanIds};
use crate::trace::current::parent_in;
use crate::trace::span::Span;

struct PyCarrier<'a, 'py> {
    carrier: &'a Bound<'py, PyAny>,
    /// `None`: the API's default getter/setter on a dict, done directly.
    accessor: Option<&'a Bound<'py, PyAny>>,
}

fn strings(value: &Bound<'_, PyAny>) -> Vec<String> {
    if value.is_none() {
        return Vec::new();
    }
    if let Ok(s) = value.cast::<PyString>() {
        return s.to_str().map(|s| vec![s.to_string()]).unwrap_or_default();
    }
    match value.try_iter() {
        Ok(items) => items.flatten().filter_map(|i| i.extract::<String>().ok()).collect(),
        Err(_) => value.extract::<String>().map(|s| vec![s]).unwrap_or_default(),
    }
}

impl Carrier for PyCarrier<'_, '_> {
    fn get(&self, key: &str) -> Vec<String> {
        let found = match (self.accessor, self.carrier.cast::<PyDict>()) {
            (None, Ok(dict)) => dict.get_item(key).ok().flatten(),
            (Some(getter), _) => getter.call_method1("get", (self.carrier, key)).ok(),
            (None, Err(_)) => None,
        };
        found.map(|v| strings(&v)).unwrap_or_default()
    }

    fn keys(&self) -> Vec<String> {
        let keys = match (self.accessor, self.carrier.cast::<PyDict>()) {
            (None, Ok(dict)) => Ok(dict.keys().into_any()),
            (Some(getter), _) => getter.call_method1("keys", (self.carrier,)),
            (None, Err(_)) => return Vec::new(),
        };
        keys.map(|k| strings(&k)).unwrap_or_default()
    }

    fn set(&mut self, key: &str, value: String) {
        let _ = match (self.accessor, self.carrier.cast::<PyDict>()) {
            (None, Ok(dict)) => dict.set_item(key, value),
            (Some(setter), _) => setter.call_method1("set", (self.carrier, key, value)).map(drop),
            (None, Err(_)) => Ok(()),
        };
    }
}

/// The getter/setter to call, or `None` for the dict fast path.
fn accessor<'a, 'py>(
    given: Option<&'a Bound<'py, PyAny>>,
    default: &Py<PyAny>,
    carrier: &Bound<'py, PyAny>,
) -> Option<&'a Bound<'py, PyAny>> {
    let fast_path = |g: &Bound<'py, PyAny>| g.is_none() || (g.is(default) && carrier.cast::<PyDict>().is_ok());
    given.filter(|g| !fast_path(g))
}

/// The native formats `OTEL_PROPAGATORS` names (default `tracecontext,baggage`); names of
/// entry points are the Python side's to load.
pub(crate) fn configured_formats(config: &Config) -> Vec<Format> {
    config.propagators.iter().filter_map(native_format).collect()
}

/// The format ferrotel implements for a configured propagator name, if it does.
fn native_format(configured: &Configured) -> Option<Format> {
    match configured {
        Configured::TraceContext => Some(Format::TraceContext),
        Configured::Baggage => Some(Format::Baggage),
        Configured::B3 => Some(Format::B3Single),
        Configured::B3Multi => Some(Format::B3Multi),
        Configured::Jaeger => Some(Format::Jaeger),
        Configured::XRay => Some(Format::XRay),
        Configured::EntryPoint(_) => None,
    }
}

/// Whether `OTEL_PROPAGATORS` names propagators that only Python provides, which the
/// built-in instrumentations then reach through the API's global propagator.
pub(crate) fn has_python_propagators(config: &Config) -> bool {
    config.propagators.iter().any(|p| native_format(p).is_none())
}

/// The propagators `OTEL_PROPAGATORS` names, in order: runs of formats ferrotel implements
/// as one native propagator each, any other name as the `opentelemetry_propagator` entry
/// point of that name (loaded and made; one warning for a name nothing provides). The
/// Python side composes them.
#[pyfunction]
pub(crate) fn configured_propagators(py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
    let config = Config::from_env().config;
    let mut made: Vec<Py<PyAny>> = Vec::new();
    let mut run: Vec<Format> = Vec::new();
    let flush = |run: &mut Vec<Format>, made: &mut Vec<Py<PyAny>>| -> PyResult<()> {
        if !run.is_empty() {
            let native = Propagator {
                composite: Composite::new(std::mem::take(run)),
            };
            made.push(Py::new(py, native)?.into_any());
        }
        Ok(())
    };
    for configured in &config.propagators {
        if let Some(format) = native_format(configured) {
            run.push(format);
            continue;
        }
        flush(&mut run, &mut made)?;
        let Configured::EntryPoint(name) = configured else {
            continue;
        };
        if let Some(loaded) = plugins::make(py, "OTEL_PROPAGATORS", "opentelemetry_propagator", name) {
            made.push(loaded.unbind());
        }
    }
    flush(&mut run, &mut made)?;
    Ok(made)
}

/// A propagator for a list of formats (`tracecontext`, `baggage`, `b3`, `b3multi`, `jaeger`,
/// `xray`).
/// Registered with the API as a `TextMapPropagator`.
#[pyclass(frozen, subclass, module = "ferrotel._native")]
pub(crate) struct Propagator {
    composite: Composite,
}

/// The span context `context` carries, as a propagator writes it out.
fn remote_context(py: Python<'_>, context: &Bound<'_, PyAny>) -> PyResult<Option<RemoteContext>> {
    let Some(parent) = parent_in(py, Some(context))? else {
        return Ok(None);
    };
    if parent.ids.trace_id == 0 || parent.ids.span_id == 0 {
        return Ok(None);
    }
    Ok(Some(RemoteContext {
        trace_id: parent.ids.trace_id,
        span_id: parent.ids.span_id,
        trace_flags: parent.ids.flags,
        trace_state: parent.trace_state.map(|s| s.members(py)).unwrap_or_default(),
    }))
}

#[pymethods]
impl Propagator {
    #[new]
    fn new(formats: Vec<String>) -> PyResult<Self> {
        let formats = formats
            .iter()
            .map(|name| {
                Format::from_name(name).ok_or_else(|| PyValueError::new_err(format!("unknown propagator {name:?}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Propagator {
            composite: Composite::new(formats),
        })
    }

    /// Reads the carrier into a copy of `context` (the root context when not given), as
    /// the API defines: a remote span context becomes the current span, baggage is added.
    #[pyo3(signature = (carrier, context=None, getter=None))]
    fn extract<'py>(
        &self,
        py: Python<'py>,
        carrier: &Bound<'py, PyAny>,
        context: Option<&Bound<'py, PyAny>>,
        getter: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let api = api::get(py)?;
        let base = match context.filter(|c| !c.is_none()) {
            Some(c) => c.clone(),
            None => api.context_type.bind(py).call0()?,
        };
        let source = PyCarrier {
            carrier,
            accessor: accessor(getter, &api.default_getter, carrier),
        };
        let found = self.composite.extract(&source);
        if found.context.is_none() && found.baggage.is_none() {
            return Ok(base);
        }
        let result = api.context_type.bind(py).call0()?;
        let dict = result.cast::<PyDict>()?;
        if let Ok(base) = base.cast::<PyDict>() {
            dict.update(base.as_mapping())?;
        }
        if let Some(ctx) = found.context {
            // A ferrotel span stands for the remote parent; the API's SpanContext and
            // TraceState for it are made only if someone asks.
            let ids = SpanIds {
                trace_id: ctx.trace_id,
                span_id: ctx.span_id,
                flags: ctx.trace_flags,
            };
            dict.set_item(api.span_key.bind(py), Py::new(py, Span::remote(ids, ctx.trace_state))?)?;
        }
        if let Some(entries) = found.baggage {
            add_baggage(py, api, dict, entries)?;
        }
        Ok(result)
    }

    /// Writes the span context and baggage of `context` (the current one when not given).
    #[pyo3(signature = (carrier, context=None, setter=None))]
    fn inject(
        &self,
        py: Python<'_>,
        carrier: &Bound<'_, PyAny>,
        context: Option<&Bound<'_, PyAny>>,
        setter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let api = api::get(py)?;
        let context = match context.filter(|c| !c.is_none()) {
            Some(c) => c.clone(),
            None => api.current_context(py)?,
        };
        let remote = remote_context(py, &context)?;
        let bag = baggage_in(py, api, &context)?;
        let mut target = PyCarrier {
            carrier,
            accessor: accessor(setter, &api.default_setter, carrier),
        };
        self.composite.inject(remote.as_ref(), &bag, &mut target);
        Ok(())
    }

    #[getter]
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PySet>> {
        PySet::new(py, self.composite.fields())
    }
}
