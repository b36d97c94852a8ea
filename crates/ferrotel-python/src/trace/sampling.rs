//! Who decides whether a span is recorded, and how ids are made: ferrotel's own samplers
//! and random (or AWS X-Ray) ids natively, or Python objects with the upstream SDK's
//! interfaces — named in the environment (`OTEL_TRACES_SAMPLER` and
//! `OTEL_PYTHON_ID_GENERATOR` entry points) or given to the provider. Only a provider with a
//! Python sampler or id generator calls into Python per span.

use std::sync::atomic::{AtomicBool, Ordering};

use ferrotel_config::{IdGenerator, LogLevel, Sampler};
use ferrotel_sdk::ids;
use ferrotel_sdk::sampler::{should_sample, Decision, Parent as SamplingParent};
use ferrotel_sdk::span::SpanKind;
use ferrotel_sdk::value::Value;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::context::{Parent, TraceState};
use crate::boundary::api;
use crate::boundary::plugins;
use crate::boundary::value::{self, to_python};
use crate::export::python::PythonObject;
use crate::runtime::diagnostics::emit;

/// Said once per process: a Python sampler or id generator that raised.
static WARNED: AtomicBool = AtomicBool::new(false);

fn failed(py: Python<'_>, what: &str, error: PyErr) {
    let level = if WARNED.swap(true, Ordering::Relaxed) {
        LogLevel::Debug
    } else {
        LogLevel::Warning
    };
    emit(
        py,
        level,
        &format!("{what} raised {error}; ferrotel's default is used for this span (further failures at debug level)"),
    );
}

pub(crate) enum Sampling {
    Native(Sampler),
    Python(PythonObject),
}

/// A sampler's verdict on one span.
pub(crate) struct Verdict {
    pub(crate) decision: Decision,
    /// Attributes the sampler adds to the span.
    pub(crate) attributes: Vec<(String, Value)>,
    /// A trace state the sampler chose instead of the parent's.
    pub(crate) trace_state: Option<TraceState>,
}

/// What a sampler sees of the span about to start.
pub(crate) struct Candidate<'a, 'py> {
    pub(crate) parent: Option<&'a Parent>,
    pub(crate) parent_context: Option<&'a Bound<'py, PyAny>>,
    pub(crate) trace_id: u128,
    pub(crate) name: &'a str,
    pub(crate) kind: SpanKind,
    pub(crate) attributes: &'a [(String, Value)],
}

impl Sampling {
    /// The sampler `OTEL_TRACES_SAMPLER` names: an entry point is loaded and made with
    /// `OTEL_TRACES_SAMPLER_ARG`, as upstream's configurator does; one that cannot be is
    /// replaced by the default (parent-based always-on), with one warning.
    pub(crate) fn from_config(py: Python<'_>, sampler: &Sampler) -> Sampling {
        let Sampler::EntryPoint { name, arg } = sampler else {
            return Sampling::Native(sampler.clone());
        };
        let made = plugins::load(py, "OTEL_TRACES_SAMPLER", "opentelemetry_traces_sampler", name).and_then(|factory| {
            factory
                .call1((arg.as_deref(),))
                .map_err(|error| {
                    emit(
                        py,
                        LogLevel::Warning,
                        &format!("OTEL_TRACES_SAMPLER={name}: making it raised {error}; the default is used"),
                    )
                })
                .ok()
        });
        match made {
            Some(sampler) => Sampling::Python(PythonObject::new(&sampler)),
            None => Sampling::Native(Sampler::ParentBasedAlwaysOn),
        }
    }

    pub(crate) fn decide(&self, py: Python<'_>, candidate: &Candidate<'_, '_>) -> Verdict {
        let native = |sampler: &Sampler| Verdict {
            decision: should_sample(
                sampler,
                candidate.parent.map(|p| SamplingParent {
                    sampled: p.ids.sampled(),
                    is_remote: p.is_remote,
                }),
                candidate.trace_id,
            ),
            attributes: Vec::new(),
            trace_state: None,
        };
        match self {
            Sampling::Native(sampler) => native(sampler),
            Sampling::Python(sampler) => match python_verdict(py, sampler, candidate) {
                Ok(verdict) => verdict,
                Err(error) => {
                    failed(py, &format!("sampler {}", sampler.name), error);
                    native(&Sampler::ParentBasedAlwaysOn)
                }
            },
        }
    }

    pub(crate) fn describe(&self, py: Python<'_>) -> String {
        match self {
            Sampling::Native(sampler) => ferrotel_sdk::sampler::describe(sampler),
            Sampling::Python(sampler) => sampler
                .object
                .bind(py)
                .call_method0("get_description")
                .and_then(|d| d.extract())
                .unwrap_or_else(|_| sampler.name.clone()),
        }
    }
}

/// `sampler.should_sample(parent_context, trace_id, name, kind, attributes)` read into a
/// verdict: its `decision` (DROP, RECORD_ONLY, RECORD_AND_SAMPLE), `attributes` and
/// `trace_state`.
fn python_verdict(py: Python<'_>, sampler: &PythonObject, candidate: &Candidate<'_, '_>) -> PyResult<Verdict> {
    let api = api::get(py)?;
    let attributes = PyDict::new(py);
    for (k, v) in candidate.attributes {
        attributes.set_item(k, to_python(py, v)?)?;
    }
    let kind = api.span_kind_type.bind(py).call1((candidate.kind as i64,))?;
    let context = candidate
        .parent_context
        .map_or_else(|| py.None().into_bound(py), Clone::clone);
    let result = sampler.object.bind(py).call_method1(
        "should_sample",
        (context, candidate.trace_id, candidate.name, kind, attributes),
    )?;
    let decision = result.getattr("decision")?;
    let decision = decision.getattr("value").unwrap_or(decision).extract::<i64>()?;
    let trace_state = result
        .getattr("trace_state")
        .ok()
        .filter(|s| !s.is_none())
        .map(|s| TraceState::Api(s.unbind()));
    Ok(Verdict {
        decision: match decision {
            0 => Decision::Drop,
            1 => Decision::RecordOnly,
            _ => Decision::RecordAndSample,
        },
        attributes: value::attributes(result.getattr("attributes").ok().as_ref()),
        trace_state,
    })
}

pub(crate) enum Ids {
    Random,
    XRay,
    Python(PythonObject),
}

impl Ids {
    /// The id generator `OTEL_PYTHON_ID_GENERATOR` names; an entry point that cannot be
    /// loaded leaves random ids, with one warning.
    pub(crate) fn from_config(py: Python<'_>, generator: &IdGenerator) -> Ids {
        match generator {
            IdGenerator::Random => Ids::Random,
            IdGenerator::XRay => Ids::XRay,
            IdGenerator::EntryPoint(name) => {
                match plugins::make(py, "OTEL_PYTHON_ID_GENERATOR", "opentelemetry_id_generator", name) {
                    Some(made) => Ids::Python(PythonObject::new(&made)),
                    None => Ids::Random,
                }
            }
        }
    }

    /// A Python generator's id; `None` (a random one is used) for a zero, out-of-range or
    /// failed one.
    fn python_id(py: Python<'_>, generator: &PythonObject, method: &str) -> Option<u128> {
        match generator
            .object
            .bind(py)
            .call_method0(method)
            .and_then(|id| id.extract::<u128>())
        {
            Ok(0) => None,
            Ok(id) => Some(id),
            Err(error) => {
                failed(py, &format!("id generator {}.{method}", generator.name), error);
                None
            }
        }
    }

    pub(crate) fn trace_id(&self, py: Python<'_>) -> u128 {
        match self {
            Ids::Random => ids::new_trace_id(),
            Ids::XRay => ids::new_xray_trace_id(),
            Ids::Python(generator) => {
                Self::python_id(py, generator, "generate_trace_id").unwrap_or_else(ids::new_trace_id)
            }
        }
    }

    pub(crate) fn span_id(&self, py: Python<'_>) -> u64 {
        match self {
            Ids::Random | Ids::XRay => ids::new_span_id(),
            Ids::Python(generator) => Self::python_id(py, generator, "generate_span_id")
                .and_then(|id| u64::try_from(id).ok())
                .unwrap_or_else(ids::new_span_id),
        }
    }
}
