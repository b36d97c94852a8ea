//! Python values to [`Value`] and text, converted once at the boundary. What cannot be
//! carried is dropped and counted ([`super::misuse`]), never raised.

use std::borrow::Cow;

use ferrotel_sdk::value::Value;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMapping, PySequence, PyString, PyTuple};

use super::misuse::{note, Misuse};

/// A Python string as UTF-8; each lone surrogate (which UTF-8 cannot hold) becomes one
/// U+FFFD.
pub(crate) fn string_of<'a>(s: &'a Bound<'_, PyString>) -> Cow<'a, str> {
    match s.to_str() {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => {
            let units: Option<Vec<u16>> = s
                .call_method1("encode", ("utf-16-le", "surrogatepass"))
                .ok()
                .and_then(|b| b.extract::<Vec<u8>>().ok())
                .map(|b| b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect());
            Cow::Owned(units.map_or_else(|| s.to_string_lossy().into_owned(), |u| String::from_utf16_lossy(&u)))
        }
    }
}

/// A name given by application code (span, event): text as it is, `None` as empty, anything
/// else as its `str()` (counted as a misuse).
pub(crate) fn name_of(obj: &Bound<'_, PyAny>) -> String {
    if obj.is_instance_of::<PyString>() {
        // SAFETY: a live `str` object, with the GIL held.
        #[allow(unsafe_code)]
        if let Some(text) = unsafe { utf8_of(obj.as_ptr()) } {
            return text.to_owned();
        }
    }
    let py = obj.py();
    note(py, Misuse::Name, || {
        format!(
            "a name that is not valid text ({}) was given; its text is used",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        )
    });
    if obj.is_none() {
        return String::new();
    }
    match obj.cast::<PyString>() {
        Ok(s) => string_of(s).into_owned(),
        Err(_) => obj.str().map(|s| string_of(&s).into_owned()).unwrap_or_default(),
    }
}

/// A timestamp given by application code, in nanoseconds since the epoch: `None` (use now)
/// when absent, and, counted, when it is not a non-negative integer that fits 64 bits (a
/// float is truncated).
pub(crate) fn timestamp_of(obj: Option<&Bound<'_, PyAny>>) -> Option<u64> {
    let obj = obj.filter(|t| !t.is_none())?;
    if obj.cast::<PyBool>().is_err() {
        if let Ok(ns) = obj.extract::<u64>() {
            return Some(ns);
        }
    }
    let truncated = obj
        .cast::<PyFloat>()
        .ok()
        .map(|f| f.value())
        .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
        .map(|f| f as u64);
    note(obj.py(), Misuse::Timestamp, || match truncated {
        Some(_) => "a float timestamp was truncated to integer nanoseconds".to_string(),
        None => format!(
            "timestamp {} is not a time in nanoseconds; now is used",
            obj.repr().map(|r| r.to_string()).unwrap_or_default()
        ),
    });
    truncated
}

/// A scalar attribute value, or `None` when OpenTelemetry cannot carry it.
fn scalar(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if let Ok(s) = obj.cast::<PyString>() {
        return Some(Value::Str(string_of(s).into_owned()));
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
        // Text in bytes becomes text, as upstream decodes it; other bytes stay bytes.
        let bytes = b.as_bytes();
        return Some(match std::str::from_utf8(bytes) {
            Ok(text) => Value::Str(text.to_owned()),
            Err(_) => Value::Bytes(bytes.to_vec()),
        });
    }
    None
}

/// Converts one attribute value; `None` for what OpenTelemetry cannot carry (the caller
/// drops and counts it).
pub(crate) fn to_value(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        return sequence(obj);
    }
    scalar(obj)
}

/// A list or tuple: a typed array when its members share one type, else a mixed array
/// (`None` members kept as empty values, as upstream keeps them). Nested lists and objects
/// make the whole value invalid.
fn sequence(obj: &Bound<'_, PyAny>) -> Option<Value> {
    let items: Vec<Value> = obj
        .try_iter()
        .ok()?
        .map(|item| {
            let item = item.ok()?;
            if item.is_none() {
                Some(Value::Empty)
            } else {
                scalar(&item)
            }
        })
        .collect::<Option<_>>()?;
    let Some(first) = items.first().map(std::mem::discriminant) else {
        return Some(Value::StrArray(Vec::new()));
    };
    if items.iter().any(|v| std::mem::discriminant(v) != first) || matches!(items[0], Value::Empty | Value::Bytes(_)) {
        return Some(Value::Array(items));
    }
    macro_rules! typed {
        ($variant:ident, $array:ident) => {
            Value::$array(
                items
                    .into_iter()
                    .filter_map(|v| if let Value::$variant(x) = v { Some(x) } else { None })
                    .collect(),
            )
        };
    }
    Some(match items[0] {
        Value::Str(_) => typed!(Str, StrArray),
        Value::Bool(_) => typed!(Bool, BoolArray),
        Value::Int(_) => typed!(Int, IntArray),
        _ => typed!(Double, DoubleArray),
    })
}

/// What attribute values may be. Spans, their events and links, and tracer scopes carry
/// structured values too (empty, maps, nested and mixed arrays), as upstream's SDK does;
/// metric attributes, which identify a series, and resources only scalars and flat arrays.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Values {
    Any,
    Flat,
}

/// One key/value pair of an attributes mapping, or `None` (counted) when it cannot be kept.
fn pair(key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>, values: Values) -> Option<(String, Value)> {
    let py = key.py();
    let Ok(key) = key.cast::<PyString>() else {
        note(py, Misuse::AttributeKey, || {
            format!("an attribute key of type {} was dropped", type_name(key))
        });
        return None;
    };
    if let Some(converted) = to_value(value) {
        return Some((string_of(key).into_owned(), converted));
    }
    let structured = value.is_none() || value.cast::<PyMapping>().is_ok() || value.cast::<PySequence>().is_ok();
    if values == Values::Any && structured {
        return Some((string_of(key).into_owned(), to_any_value(value)));
    }
    note(py, Misuse::AttributeValue, || {
        format!(
            "attribute {:?} was dropped: a {} value cannot be carried",
            string_of(key),
            type_name(value)
        )
    });
    None
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
}

/// One attribute given as key and value (`set_attribute`), of any value.
pub(crate) fn attribute(key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> Option<(String, Value)> {
    pair(key, value, Values::Any)
}

/// Converts a mapping of attributes of any value; entries that cannot be kept are dropped
/// and counted.
pub(crate) fn attributes(obj: Option<&Bound<'_, PyAny>>) -> Vec<(String, Value)> {
    attributes_of(obj, Values::Any)
}

/// Converts a mapping of metric attributes; entries that cannot be kept are dropped and
/// counted.
pub(crate) fn flat_attributes(obj: Option<&Bound<'_, PyAny>>) -> Vec<(String, Value)> {
    attributes_of(obj, Values::Flat)
}

fn attributes_of(obj: Option<&Bound<'_, PyAny>>, values: Values) -> Vec<(String, Value)> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Vec::new();
    };
    if let Ok(dict) = obj.cast::<PyDict>() {
        return plain_dict(dict).unwrap_or_else(|| dict.iter().filter_map(|(k, v)| pair(&k, &v, values)).collect());
    }
    let Ok(items) = obj.call_method0("items").and_then(|items| items.try_iter()) else {
        note(obj.py(), Misuse::AttributeValue, || {
            format!("attributes given as a {} (not a mapping) were dropped", type_name(obj))
        });
        return Vec::new();
    };
    items
        .flatten()
        .filter_map(|item| {
            let (k, v) = item.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>().ok()?;
            pair(&k, &v, values)
        })
        .collect()
}

/// The common case read at the least cost: an exact `dict` of exact `str` keys and exact
/// `str`, `bool`, `int` (fitting 64 bits) or `float` values, walked with borrowed references.
/// `None` as soon as anything else appears: the general path then converts (or drops and
/// counts) the whole mapping.
#[allow(unsafe_code)]
fn plain_dict(dict: &Bound<'_, PyDict>) -> Option<Vec<(String, Value)>> {
    use pyo3::ffi;
    if !dict.is_exact_instance_of::<PyDict>() {
        return None;
    }
    let mut pairs = Vec::with_capacity(dict.len());
    let (mut position, mut key, mut value) = (0, std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the GIL is held and nothing below runs Python code (exact built-in types only),
    // so the dict cannot change while it is walked and its borrowed keys and values stay alive.
    unsafe {
        while ffi::PyDict_Next(dict.as_ptr(), &mut position, &mut key, &mut value) != 0 {
            pairs.push((plain_text(key)?, plain_scalar(value)?));
        }
    }
    Some(pairs)
}

/// An exact `str` as UTF-8 (`None` for anything else, or text UTF-8 cannot hold).
#[allow(unsafe_code)]
#[inline(always)] // once per key and text value of every span's attributes
unsafe fn plain_text(obj: *mut pyo3::ffi::PyObject) -> Option<String> {
    if pyo3::ffi::PyUnicode_CheckExact(obj) == 0 {
        return None;
    }
    utf8_of(obj).map(str::to_owned)
}

/// The UTF-8 of `str` object `obj` (`None`, with no exception left set, for text UTF-8
/// cannot hold: lone surrogates). Borrowed: it lives as long as the object.
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn utf8_of<'a>(obj: *mut pyo3::ffi::PyObject) -> Option<&'a str> {
    use pyo3::ffi;
    // Compact ASCII text (attribute keys and most values, span names) is its own UTF-8,
    // stored right after the object's header: read in place, without the call.
    #[cfg(not(any(Py_3_14, Py_LIMITED_API, PyPy, GraalPy)))]
    if ffi::PyUnicode_IS_COMPACT_ASCII(obj) != 0 {
        let data = obj.cast::<ffi::PyASCIIObject>().add(1).cast::<u8>();
        let bytes = std::slice::from_raw_parts(data, usize::try_from(ffi::PyUnicode_GET_LENGTH(obj)).ok()?);
        return Some(std::str::from_utf8_unchecked(bytes));
    }
    let mut size = 0;
    let data = ffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
    if data.is_null() {
        ffi::PyErr_Clear(); // lone surrogates: the general path replaces them
        return None;
    }
    let bytes = std::slice::from_raw_parts(data.cast::<u8>(), usize::try_from(size).ok()?);
    // CPython hands out valid UTF-8 only.
    Some(std::str::from_utf8_unchecked(bytes))
}

#[allow(unsafe_code)]
unsafe fn plain_scalar(obj: *mut pyo3::ffi::PyObject) -> Option<Value> {
    use pyo3::ffi;
    let kind = ffi::Py_TYPE(obj);
    if kind == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
        plain_text(obj).map(Value::Str)
    } else if kind == std::ptr::addr_of_mut!(ffi::PyLong_Type) {
        let mut overflow = 0;
        let n = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
        (overflow == 0).then_some(Value::Int(n))
    } else if kind == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
        Some(Value::Double(ffi::PyFloat_AS_DOUBLE(obj)))
    } else if kind == std::ptr::addr_of_mut!(ffi::PyBool_Type) {
        Some(Value::Bool(obj == ffi::Py_True()))
    } else {
        None
    }
}

/// `str(obj)` when its type gives it a text of its own (a `__str__` or `__repr__` other than
/// `object`'s, whose `<Foo object at 0x...>` says nothing); `None` otherwise or if it raises.
pub(crate) fn own_text(obj: &Bound<'_, PyAny>) -> Option<String> {
    let py = obj.py();
    let object = py.get_type::<pyo3::types::PyAny>();
    let kind = obj.get_type();
    let own = |name: &str| -> PyResult<bool> { Ok(!kind.getattr(name)?.is(&object.getattr(name)?)) };
    if own("__str__").ok()? || own("__repr__").ok()? {
        obj.str().ok().map(|s| string_of(&s).into_owned())
    } else {
        None
    }
}

/// Any value, converted as upstream's SDK cleans attribute values: scalars and flat arrays as
/// [`to_value`]; a mapping as a key/value list and any other sequence as an array, nested to
/// any depth; anything else as its own text, else empty.
pub(crate) fn to_any_value(obj: &Bound<'_, PyAny>) -> Value {
    if let Some(value) = to_value(obj) {
        return value;
    }
    if obj.is_none() {
        return Value::Empty;
    }
    if let Ok(mapping) = obj.cast::<PyMapping>() {
        if let Ok(items) = mapping.items() {
            let pairs = items
                .iter()
                .filter_map(|pair| {
                    let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract().ok()?;
                    // Empty keys are dropped; other keys as their own text, as upstream's.
                    let key = match key.cast::<PyString>() {
                        Ok(text) => string_of(text).into_owned(),
                        Err(_) => own_text(&key)?,
                    };
                    (!key.is_empty()).then(|| (key, to_any_value(&value)))
                })
                .collect();
            return Value::Map(pairs);
        }
    }
    if obj.cast::<PySequence>().is_ok() {
        if let Ok(items) = obj.try_iter() {
            return Value::Array(items.flatten().map(|item| to_any_value(&item)).collect());
        }
    }
    own_text(obj).map_or(Value::Empty, Value::Str)
}

/// Back to Python, for in-memory exporters and inspection.
pub(crate) fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Str(s) => s.into_pyobject(py)?.into_any(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Double(d) => d.into_pyobject(py)?.into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::StrArray(v) => PyTuple::new(py, v)?.into_any(),
        Value::BoolArray(v) => PyTuple::new(py, v)?.into_any(),
        Value::IntArray(v) => PyTuple::new(py, v)?.into_any(),
        Value::DoubleArray(v) => PyTuple::new(py, v)?.into_any(),
        Value::Array(items) => PyTuple::new(
            py,
            items.iter().map(|v| to_python(py, v)).collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        Value::Map(pairs) => {
            let dict = PyDict::new(py);
            for (key, value) in pairs {
                dict.set_item(key, to_python(py, value)?)?;
            }
            dict.into_any()
        }
        Value::Empty => py.None().into_bound(py),
    })
}
