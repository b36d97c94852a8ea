//! The span context as ferrotel passes it around: ids, trace state, a parent, an API span
//! context read into fields, and the baggage a `Context` carries beside it.

use ferrotel_sdk::metrics::MeasuredIn;
use ferrotel_sdk::span::Link;
use ferrotel_sdk::value::{Attributes, Value};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::boundary::api::Api;

/// A span's identity as propagated: trace id, span id and trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SpanIds {
    pub(crate) trace_id: u128,
    pub(crate) span_id: u64,
    pub(crate) flags: u8,
}

impl SpanIds {
    pub(crate) fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// This span as the one a measurement was made in (for exemplars).
    pub(crate) fn measured_in(&self) -> MeasuredIn {
        MeasuredIn {
            trace_id: self.trace_id,
            span_id: self.span_id,
            sampled: self.sampled(),
        }
    }
}

/// A trace state in whichever form it arrived: the API's object (from an API span context)
/// or parsed members (from ferrotel's propagators). The other form is made only if asked.
pub(crate) enum TraceState {
    Api(Py<PyAny>),
    Members(Vec<(String, String)>),
}

impl TraceState {
    pub(crate) fn clone_ref(&self, py: Python<'_>) -> TraceState {
        match self {
            TraceState::Api(state) => TraceState::Api(state.clone_ref(py)),
            TraceState::Members(members) => TraceState::Members(members.clone()),
        }
    }

    pub(crate) fn members(&self, py: Python<'_>) -> Vec<(String, String)> {
        match self {
            TraceState::Members(members) => members.clone(),
            TraceState::Api(state) => state
                .bind(py)
                .call_method0("items")
                .and_then(|items| Ok(items.try_iter()?.flatten().filter_map(|p| p.extract().ok()).collect()))
                .unwrap_or_default(),
        }
    }

    /// The `tracestate` header value.
    pub(crate) fn header(&self, py: Python<'_>) -> String {
        match self {
            TraceState::Members(members) => members
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            TraceState::Api(state) => state
                .bind(py)
                .call_method0("to_header")
                .and_then(|h| h.extract())
                .unwrap_or_default(),
        }
    }

    pub(crate) fn to_api<'py>(&self, py: Python<'py>, api: &Api) -> PyResult<Bound<'py, PyAny>> {
        match self {
            TraceState::Api(state) => Ok(state.bind(py).clone()),
            TraceState::Members(members) => {
                let pairs = PyList::new(py, members.iter().map(|(k, v)| PyTuple::new(py, [k, v]).ok()))?;
                api.trace_state_type.bind(py).call1((pairs,))
            }
        }
    }
}

/// The `tracestate` header of an optional trace state (`""` without one).
pub(crate) fn trace_state_header(py: Python<'_>, state: Option<&TraceState>) -> String {
    state.map(|s| s.header(py)).unwrap_or_default()
}

/// The span a new span starts under, or that a propagator writes out.
pub(crate) struct Parent {
    pub(crate) ids: SpanIds,
    pub(crate) trace_state: Option<TraceState>,
    pub(crate) is_remote: bool,
}

/// The fields of any span context object (the API's `SpanContext`, or one like it).
pub(crate) struct ApiSpanContext {
    pub(crate) ids: SpanIds,
    /// The API `TraceState` object, if any.
    pub(crate) trace_state: Option<Py<PyAny>>,
    pub(crate) is_remote: bool,
    pub(crate) is_valid: bool,
}

pub(crate) fn read_span_context(ctx: &Bound<'_, PyAny>) -> PyResult<ApiSpanContext> {
    Ok(ApiSpanContext {
        ids: SpanIds {
            trace_id: ctx.getattr("trace_id")?.extract()?,
            span_id: ctx.getattr("span_id")?.extract()?,
            flags: ctx.getattr("trace_flags")?.extract::<i64>().map(|f| f as u8)?,
        },
        trace_state: ctx
            .getattr("trace_state")
            .ok()
            .filter(|s| !s.is_none())
            .map(Bound::unbind),
        is_remote: ctx.getattr("is_remote")?.extract()?,
        is_valid: ctx.getattr("is_valid")?.extract()?,
    })
}

impl ApiSpanContext {
    /// A link to this context with `attributes`, or `None` when there is nothing to link
    /// (an invalid context without attributes).
    pub(crate) fn link(&self, py: Python<'_>, attributes: Vec<(String, Value)>) -> Option<Link> {
        if !self.is_valid && attributes.is_empty() {
            return None;
        }
        let trace_state = self.trace_state.as_ref().map(|s| TraceState::Api(s.clone_ref(py)));
        Some(Link {
            trace_id: self.ids.trace_id,
            span_id: self.ids.span_id,
            trace_flags: self.ids.flags,
            trace_state: trace_state_header(py, trace_state.as_ref()),
            is_remote: self.is_remote,
            attributes: Attributes::new(attributes, 0),
        })
    }
}

/// The baggage entries of `context`, as text.
pub(crate) fn baggage_in(py: Python<'_>, api: &Api, context: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut entries = Vec::new();
    if let Ok(dict) = context.cast::<PyDict>() {
        if let Some(bag) = dict.get_item(api.baggage_key.bind(py))? {
            if let Ok(bag) = bag.cast::<PyDict>() {
                for (k, v) in bag.iter() {
                    if let (Ok(k), Ok(v)) = (k.extract::<String>(), v.str()) {
                        entries.push((k, v.to_string()));
                    }
                }
            }
        }
    }
    Ok(entries)
}

/// Adds `entries` to the baggage `context` (a fresh `Context` being built) already carries,
/// as the API's baggage functions would.
pub(crate) fn add_baggage(
    py: Python<'_>,
    api: &Api,
    context: &Bound<'_, PyDict>,
    entries: Vec<(String, String)>,
) -> PyResult<()> {
    let bag = PyDict::new(py);
    if let Some(existing) = context.get_item(api.baggage_key.bind(py))? {
        if let Ok(existing) = existing.cast::<PyDict>() {
            bag.update(existing.as_mapping())?;
        }
    }
    for (k, v) in entries {
        bag.set_item(k, v)?;
    }
    context.set_item(api.baggage_key.bind(py), bag)
}
