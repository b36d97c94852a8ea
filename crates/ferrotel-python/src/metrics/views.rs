//! Views and aggregations given from Python, read into [`ferrotel_sdk::metrics::view`]'s:
//! upstream SDK's `View` and `*Aggregation` objects and ferrotel's own equivalents
//! (`ferrotel.metrics.View`, ...) alike, both keeping their settings in the same attributes
//! (`_instrument_name`, `_boundaries`, `_max_scale`...). Classes are recognised by name, so
//! the upstream SDK is never imported.

use ferrotel_sdk::metrics::{Aggregation, Boundary, InstrumentKind, View};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::observation::number;

fn class_name(object: &Bound<'_, PyAny>) -> String {
    object.get_type().name().map(|n| n.to_string()).unwrap_or_default()
}

/// An optional attribute, `None` when absent or `None`.
fn attribute<'py>(object: &Bound<'py, PyAny>, name: &str) -> Option<Bound<'py, PyAny>> {
    object.getattr(name).ok().filter(|value| !value.is_none())
}

fn text(object: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<String>> {
    attribute(object, name).map(|value| value.extract()).transpose()
}

/// An aggregation object (upstream's or ferrotel's) as the aggregation it stands for.
pub(crate) fn aggregation_from(object: &Bound<'_, PyAny>) -> PyResult<Aggregation> {
    let name = class_name(object);
    Ok(match name.trim_start_matches('_') {
        "DefaultAggregation" => Aggregation::Default,
        "DropAggregation" => Aggregation::Drop,
        "SumAggregation" => Aggregation::Sum,
        "LastValueAggregation" => Aggregation::LastValue,
        "ExplicitBucketHistogramAggregation" => Aggregation::ExplicitBucketHistogram {
            boundaries: attribute(object, "_boundaries").map(|b| boundaries(&b)).transpose()?,
        },
        "ExponentialBucketHistogramAggregation" => {
            let max_size: i64 = attribute(object, "_max_size").map_or(Ok(160), |v| v.extract())?;
            let max_scale: i64 = attribute(object, "_max_scale").map_or(Ok(20), |v| v.extract())?;
            if !(2..=16384).contains(&max_size) {
                return Err(PyValueError::new_err(format!(
                    "ExponentialBucketHistogramAggregation(max_size={max_size}): between 2 and 16384"
                )));
            }
            Aggregation::Base2ExponentialHistogram {
                max_size: max_size as u32,
                max_scale: max_scale.clamp(-10, 20) as i8,
            }
        }
        _ => {
            return Err(PyTypeError::new_err(format!(
                "{name} is not an aggregation ferrotel knows (Default, Drop, Sum, LastValue, \
                 ExplicitBucketHistogram, ExponentialBucketHistogram)"
            )))
        }
    })
}

/// Explicit bucket boundaries, each remembered as written (`1` or `1.0`).
fn boundaries(given: &Bound<'_, PyAny>) -> PyResult<Vec<Boundary>> {
    given
        .try_iter()?
        .map(|item| {
            let item = item?;
            let value =
                number(&item).ok_or_else(|| PyTypeError::new_err(format!("bucket boundary {item} is not a number")))?;
            Ok(Boundary {
                value: value.as_f64(),
                integral: matches!(value, ferrotel_sdk::metrics::Number::Int(_)),
            })
        })
        .collect()
}

/// The instrument kinds an instrument class stands for: the API's, the SDK's (`_Counter`) and
/// ferrotel's classes by name, their abstract bases for all they cover.
fn kinds_of(class: &Bound<'_, PyAny>) -> Vec<InstrumentKind> {
    use InstrumentKind::*;
    let name: String = class.getattr("__name__").and_then(|n| n.extract()).unwrap_or_default();
    match name.trim_start_matches('_') {
        "Counter" => vec![Counter],
        "UpDownCounter" => vec![UpDownCounter],
        "Histogram" => vec![Histogram],
        "Gauge" => vec![Gauge],
        "ObservableCounter" => vec![ObservableCounter],
        "ObservableUpDownCounter" => vec![ObservableUpDownCounter],
        "ObservableGauge" => vec![ObservableGauge],
        "Synchronous" => vec![Counter, UpDownCounter, Histogram, Gauge],
        "Asynchronous" | "ObservableInstrument" => vec![ObservableCounter, ObservableUpDownCounter, ObservableGauge],
        "Instrument" => vec![
            Counter,
            UpDownCounter,
            Histogram,
            Gauge,
            ObservableCounter,
            ObservableUpDownCounter,
            ObservableGauge,
        ],
        _ => Vec::new(),
    }
}

/// One view object as a view.
pub(crate) fn view_from(object: &Bound<'_, PyAny>) -> PyResult<View> {
    if !object.hasattr("_instrument_name")? || !object.hasattr("_aggregation")? {
        return Err(PyTypeError::new_err(format!(
            "{} is not a View (upstream's opentelemetry.sdk.metrics.view.View or ferrotel.metrics.View)",
            class_name(object)
        )));
    }
    let attribute_keys = attribute(object, "_attribute_keys")
        .map(|keys| keys.try_iter()?.map(|key| key?.extract::<String>()).collect())
        .transpose()?;
    let view = View {
        instrument_name: text(object, "_instrument_name")?,
        instrument_kinds: attribute(object, "_instrument_type").map(|class| kinds_of(&class)),
        instrument_unit: text(object, "_instrument_unit")?,
        meter_name: text(object, "_meter_name")?,
        meter_version: text(object, "_meter_version")?,
        meter_schema_url: text(object, "_meter_schema_url")?,
        name: text(object, "_name")?,
        description: text(object, "_description")?,
        attribute_keys,
        aggregation: attribute(object, "_aggregation").map_or(Ok(Aggregation::Default), |a| aggregation_from(&a))?,
    };
    view.validate()
        .map_err(|error| PyValueError::new_err(error.to_string()))?;
    Ok(view)
}

/// `MeterProvider(views=...)`: every view, or the error of the first that is not one.
pub(crate) fn views_from(views: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<View>> {
    let Some(views) = views.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    views.try_iter()?.map(|view| view_from(&view?)).collect()
}
