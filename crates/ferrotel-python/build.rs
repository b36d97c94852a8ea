//! pyo3's configuration flags (`Py_3_14`, ...) for this crate's own code, which reads some of
//! CPython's structures directly where the layout allows it.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
