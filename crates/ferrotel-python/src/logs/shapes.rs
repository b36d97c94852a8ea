//! Log records as Python processors and exporters receive them: the upstream SDK's
//! `ReadableLogRecord` for exporters, `ReadWriteLogRecord` for processors' `on_emit`.

use ferrotel_sdk::log::LogData;
use ferrotel_sdk::resource::Resource;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::boundary::shapes::{self, attributes_dict};
use crate::boundary::value::to_python;
use crate::export::python::PythonShape;

pub(crate) fn fields<'py>(py: Python<'py>, record: &LogData) -> PyResult<Bound<'py, PyTuple>> {
    let body = match &record.body {
        Some(body) => to_python(py, body)?,
        None => py.None().into_bound(py),
    };
    let items: Vec<Bound<'py, PyAny>> = vec![
        record.time_ns.into_pyobject(py)?.into_any(),
        record.observed_ns.into_pyobject(py)?.into_any(),
        record.severity_number.into_pyobject(py)?.into_any(),
        record.severity_text.as_str().into_pyobject(py)?.into_any(),
        body,
        attributes_dict(py, &record.attributes)?.into_any(),
        record.attributes.dropped.into_pyobject(py)?.into_any(),
        record.trace_id.into_pyobject(py)?.into_any(),
        record.span_id.into_pyobject(py)?.into_any(),
        record.trace_flags.into_pyobject(py)?.into_any(),
        record.event_name.as_str().into_pyobject(py)?.into_any(),
    ];
    PyTuple::new(py, items)
}

impl PythonShape for LogData {
    fn resource<'py>(py: Python<'py>, resource: &Resource) -> PyResult<Bound<'py, PyAny>> {
        shapes::resource(py, resource)
    }

    fn batch<'py>(py: Python<'py>, batch: &[LogData], resource: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let module = shapes::module(py)?;
        let records = PyList::empty(py);
        for record in batch {
            let scope = shapes::scope(py, &record.scope)?;
            records.append(module.call_method1("readable_log_record", (fields(py, record)?, resource, scope))?)?;
        }
        Ok(records.into_any())
    }
}
