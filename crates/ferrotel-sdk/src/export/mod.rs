//! Exporters: where ended spans go.

pub mod console;
