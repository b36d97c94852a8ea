//! Metrics as Python exporters receive them: one upstream SDK `MetricsData` per
//! collection, metrics grouped by instrumentation scope.

use std::sync::Arc;

use ferrotel_sdk::metrics::{Data, Exemplar, HistogramPoint, MetricData, Number, NumberPoint};
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::{Scope, ScopeRef};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::boundary::shapes::{self, attributes_dict};
use crate::export::python::{result_is_success, PythonShape};

fn number<'py>(py: Python<'py>, value: Number) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Number::Int(i) => i.into_pyobject(py)?.into_any(),
        Number::Double(d) => d.into_pyobject(py)?.into_any(),
    })
}

fn exemplars<'py>(py: Python<'py>, exemplars: &[Exemplar]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for e in exemplars {
        list.append((e.time_ns, number(py, e.value)?, e.trace_id, e.span_id))?;
    }
    Ok(list)
}

/// Points of sums and gauges; a gauge's have no start time, as upstream's have none.
fn number_points<'py>(py: Python<'py>, points: &[NumberPoint], gauge: bool) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for p in points {
        let attributes = attributes_dict(py, &p.attributes)?;
        list.append((
            attributes,
            (!gauge).then_some(p.start_ns),
            p.time_ns,
            number(py, p.value)?,
            exemplars(py, &p.exemplars)?,
        ))?;
    }
    Ok(list)
}

/// A histogram point's bounds as given: `1` where an integer was, as upstream keeps them.
fn bounds<'py>(py: Python<'py>, point: &HistogramPoint) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    let integral = point.integral_bounds.iter().chain(std::iter::repeat(&false));
    for (bound, integral) in point.bounds.iter().zip(integral) {
        if *integral {
            list.append(*bound as i64)?;
        } else {
            list.append(*bound)?;
        }
    }
    Ok(list)
}

/// `(name, description, unit, kind, temporality, monotonic, points)`.
fn fields<'py>(py: Python<'py>, metric: &MetricData) -> PyResult<Bound<'py, PyAny>> {
    let (kind, temporality, monotonic, points) = match &metric.data {
        Data::Gauge(points) => ("gauge", 0, false, number_points(py, points, true)?),
        Data::Sum {
            points,
            temporality,
            monotonic,
        } => (
            "sum",
            *temporality as i64,
            *monotonic,
            number_points(py, points, false)?,
        ),
        Data::Histogram { points, temporality } => {
            let list = PyList::empty(py);
            for p in points {
                list.append((
                    attributes_dict(py, &p.attributes)?,
                    p.start_ns,
                    p.time_ns,
                    p.count,
                    p.sum,
                    p.bucket_counts.clone(),
                    bounds(py, p)?,
                    p.min,
                    p.max,
                    exemplars(py, &p.exemplars)?,
                ))?;
            }
            ("histogram", *temporality as i64, false, list)
        }
        Data::ExponentialHistogram { points, temporality } => {
            let list = PyList::empty(py);
            for p in points {
                list.append((
                    attributes_dict(py, &p.attributes)?,
                    p.start_ns,
                    p.time_ns,
                    p.count,
                    p.sum,
                    p.scale,
                    p.zero_count,
                    (p.positive.offset, p.positive.bucket_counts.clone()),
                    (p.negative.offset, p.negative.bucket_counts.clone()),
                    p.min,
                    p.max,
                    exemplars(py, &p.exemplars)?,
                ))?;
            }
            ("exponential_histogram", *temporality as i64, false, list)
        }
    };
    Ok((
        metric.name.as_str(),
        metric.description.as_str(),
        metric.unit.as_str(),
        kind,
        temporality,
        monotonic,
        points,
    )
        .into_pyobject(py)?
        .into_any())
}

impl PythonShape for MetricData {
    fn resource<'py>(py: Python<'py>, resource: &Resource) -> PyResult<Bound<'py, PyAny>> {
        shapes::resource(py, resource)
    }

    fn batch<'py>(py: Python<'py>, batch: &[MetricData], resource: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        // Metrics of one scope go together, in the order their scopes first appear.
        let mut scopes: Vec<(&Arc<Scope>, Bound<'py, PyList>)> = Vec::new();
        for metric in batch {
            let list = match scopes
                .iter()
                .position(|(s, _)| Arc::ptr_eq(s, &metric.scope) || **s == metric.scope)
            {
                Some(i) => scopes[i].1.clone(),
                None => {
                    let list = PyList::empty(py);
                    scopes.push((&metric.scope, list.clone()));
                    list
                }
            };
            list.append(fields(py, metric)?)?;
        }
        let grouped = PyList::empty(py);
        for (scope, metrics) in scopes {
            let schema_url = scope.schema_url.clone().unwrap_or_default();
            grouped.append((
                shapes::scope(py, &ScopeRef::Counted(scope.clone()))?,
                schema_url,
                metrics,
            ))?;
        }
        shapes::module(py)?.call_method1("metrics_data", (resource, grouped))
    }

    fn call_export(exporter: &Bound<'_, PyAny>, batch: &Bound<'_, PyAny>) -> PyResult<bool> {
        let kwargs = PyDict::new(exporter.py());
        kwargs.set_item("timeout_millis", 10_000.0)?;
        let result = exporter.call_method("export", (batch,), Some(&kwargs))?;
        result_is_success(&result)
    }
}
