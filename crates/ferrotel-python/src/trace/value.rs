//! Python attribute values to [`Value`], converted once at the boundary.

use ferrotel_sdk::value::Value;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Converts one attribute value; `None` for anything OpenTelemetry cannot carry (None,
/// mixed or nested sequences, other objects), which the caller drops.
pub fn to_value(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if let Ok(s) = obj.cast::<PyString>() {
        return s.to_str().ok().map(|s| Value::Str(s.to_string()));
    }
    // bool before int: bool is an int subclass.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Some(Value::Bool(b.is_true()));
    }
    if obj.cast::<PyInt>().is_ok() {
        return obj.extract::<i64>().ok().map(Value::Int);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Some(Value::Double(f.value()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return std::str::from_utf8(b.as_bytes())
            .ok()
            .map(|s| Value::Str(s.to_string()));
    }
    if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        return sequence(obj);
    }
    None
}

fn sequence(obj: &Bound<'_, PyAny>) -> Option<Value> {
    let items: Vec<Value> = obj
        .try_iter()
        .ok()?
        .map(|item| item.ok().and_then(|i| to_value(&i)))
        .collect::<Option<_>>()?;
    let first = match items.first() {
        None => return Some(Value::StrArray(Vec::new())),
        Some(v) => std::mem::discriminant(v),
    };
    if items.iter().any(|v| std::mem::discriminant(v) != first) {
        return None;
    }
    Some(match items[0] {
        Value::Str(_) => Value::StrArray(
            items
                .into_iter()
                .filter_map(|v| if let Value::Str(s) = v { Some(s) } else { None })
                .collect(),
        ),
        Value::Bool(_) => Value::BoolArray(
            items
                .into_iter()
                .filter_map(|v| if let Value::Bool(b) = v { Some(b) } else { None })
                .collect(),
        ),
        Value::Int(_) => Value::IntArray(
            items
                .into_iter()
                .filter_map(|v| if let Value::Int(i) = v { Some(i) } else { None })
                .collect(),
        ),
        Value::Double(_) => Value::DoubleArray(
            items
                .into_iter()
                .filter_map(|v| if let Value::Double(d) = v { Some(d) } else { None })
                .collect(),
        ),
        _ => return None, // nested arrays
    })
}

/// Converts a mapping of attributes; invalid entries are skipped.
pub fn attributes(obj: Option<&Bound<'_, PyAny>>) -> Vec<(String, Value)> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(dict) = obj.cast::<PyDict>() {
        out.reserve(dict.len());
        for (k, v) in dict.iter() {
            let key = k
                .cast::<PyString>()
                .ok()
                .and_then(|k| k.to_str().ok().map(str::to_string));
            if let (Some(key), Some(value)) = (key, to_value(&v)) {
                out.push((key, value));
            }
        }
    } else if let Ok(items) = obj.call_method0("items") {
        for pair in items.try_iter().into_iter().flatten().flatten() {
            if let Ok((k, v)) = pair.extract::<(String, Bound<'_, PyAny>)>() {
                if let Some(value) = to_value(&v) {
                    out.push((k, value));
                }
            }
        }
    }
    out
}

/// Back to Python, for `InMemorySpanExporter` and debugging.
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Str(s) => s.into_pyobject(py)?.into_any(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Double(d) => d.into_pyobject(py)?.into_any(),
        Value::StrArray(v) => PyTuple::new(py, v)?.into_any(),
        Value::BoolArray(v) => PyTuple::new(py, v)?.into_any(),
        Value::IntArray(v) => PyTuple::new(py, v)?.into_any(),
        Value::DoubleArray(v) => PyTuple::new(py, v)?.into_any(),
    })
}
