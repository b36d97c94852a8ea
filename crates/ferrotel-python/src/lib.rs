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

/// mimalloc's `arena_reserve` option (its position in mimalloc's option enum, which
/// libmimalloc-sys does not name); the value is in KiB.
const MI_OPTION_ARENA_RESERVE: libmimalloc_sys::mi_option_t = 23;
const ARENA_RESERVE_KIB: std::ffi::c_long = 128 * 1024;

/// Reserves mimalloc's first arena at 128 MiB instead of 1 GiB: when its pages were still
/// transparent huge pages, the larger arena left two 2 MiB pages resident instead of one
/// (+7.0 -> +5.3 MiB RSS for `python -c pass`); now it is address space only. Later arenas
/// grow as mimalloc sees fit. A `MIMALLOC_ARENA_RESERVE` the user set wins. Runs before the
/// extension's first allocation that needs an arena.
#[allow(unsafe_code)]
fn reserve_a_smaller_first_arena() {
    if std::env::var_os("MIMALLOC_ARENA_RESERVE").is_some() {
        return;
    }
    // SAFETY: mi_option_set only stores the value in mimalloc's option table; any option
    // and value are accepted.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_RESERVE, ARENA_RESERVE_KIB) };
}

/// A class `ferrotel._native` makes when first asked for, by its Python name.
pub(crate) type LazyClass = (
    &'static str,
    for<'py> fn(Python<'py>) -> Bound<'py, pyo3::types::PyType>,
);

/// `(name, maker)` for a `#[pyclass]`, for a module's `CLASSES`.
#[macro_export]
macro_rules! lazy_class {
    ($class:ty) => {
        (<$class as pyo3::PyClass>::NAME, |py| py.get_type::<$class>())
    };
}

const OWN_CLASSES: &[LazyClass] = &[lazy_class!(propagation::Propagator)];

/// The module's classes, made on first access (PEP 562's module `__getattr__`) rather than
/// at import: a type object costs ~16k instructions to make, and a process that never
/// traces, meters or instruments needs none of them. Each is kept on the module once made.
#[pyfunction]
#[pyo3(pass_module)]
fn __getattr__<'py>(module: &Bound<'py, PyModule>, name: &str) -> PyResult<Bound<'py, pyo3::types::PyType>> {
    let maker = [
        OWN_CLASSES,
        trace::CLASSES,
        logs::CLASSES,
        metrics::CLASSES,
        instrumentation::CLASSES,
    ]
    .into_iter()
    .flatten()
    .find_map(|(class, maker)| (*class == name).then_some(maker))
    .ok_or_else(|| {
        pyo3::exceptions::PyAttributeError::new_err(format!("module 'ferrotel._native' has no attribute '{name}'"))
    })?;
    let class = maker(module.py());
    module.setattr(name, &class)?;
    Ok(class)
}

// The GIL is what keeps the span path's shared state exclusive (boundary/gil_cell.rs) and
// what several borrowed reads of Python objects rely on: a free-threaded CPython turns it
// back on when it imports this module (pyo3 declares modules free-threading safe unless
// told otherwise).
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    reserve_a_smaller_first_arena();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    runtime::register(m)?;
    boundary::register(m)?;
    trace::register(m)?;
    m.add_function(wrap_pyfunction!(__getattr__, m)?)?;
    m.add_function(wrap_pyfunction!(propagation::configured_propagators, m)?)?;
    instrumentation::register(m)?;
    Ok(())
}
