//! `ferrotel._native`: the one Python extension module.
//!
//! Its files depend one way (the test `tests/test_layout.py` checks it):
//!
//! ```text
//! instrumentation     the native side of the built-in instrumentations
//!   -> signals        trace, logs, metrics, propagation
//!     -> export       processor and exporter recipes, pipelines, their rebuild after fork
//!     -> boundary     the Python<->Rust boundary: the API's objects, values, exceptions
//!       -> runtime    start-up, diagnostics, settings, lifecycle (exit and fork)
//! ```
//!
//! Policy lives in the pure-Rust crates; this crate is a thin boundary that never panics
//! into the interpreter and never raises into application code for bad arguments.

mod allocator;
mod boundary;
mod export;
mod instrumentation;
mod logs;
mod metrics;
mod propagation;
mod runtime;
mod trace;

use pyo3::prelude::*;

/// Span data is allocated on application threads and freed on the export thread; glibc's
/// malloc makes those cross-thread frees contend with the app (measured: 3.7 -> 1.8 µs per
/// span while the console exporter runs).
#[global_allocator]
static ALLOCATOR: allocator::Mimalloc = allocator::Mimalloc;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    runtime::register(m)?;
    boundary::register(m)?;
    trace::register(m)?;
    logs::register(m)?;
    metrics::register(m)?;
    m.add_class::<propagation::Propagator>()?;
    m.add_function(wrap_pyfunction!(propagation::configured_propagators, m)?)?;
    instrumentation::register(m)?;
    Ok(())
}
