//! Installed Python distributions, read straight from `*.dist-info` / `*.egg-info` metadata.
//!
//! The loader uses this at interpreter start-up to find entry points and check
//! instrumentation requirements without importing `importlib.metadata`, `packaging` or any
//! package; `ferrotel bootstrap` uses it to inventory a target environment. It reads files
//! only, never runs Python, and never fails on a malformed distribution (it is skipped).

mod metadata;
pub mod requirement;
mod scan;

pub use metadata::EntryPoint;
pub use requirement::{MarkerEnv, Requirement, RequirementError};
pub use scan::{normalize, Distribution, Environment};
