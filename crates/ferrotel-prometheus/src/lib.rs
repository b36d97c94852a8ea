//! Prometheus exposition of ferrotel's metrics: the text format of one collection
//! ([`text::render`]), named and labelled exactly as upstream's
//! `opentelemetry-exporter-prometheus` names and labels the same metrics, and the endpoint
//! scrapers read it from ([`server::Endpoint`]).
//!
//! Pure Rust: what a collection is and when it happens is the embedder's (the Python
//! extension collects on each scrape, running observable callbacks when it can).

pub mod names;
pub mod server;
pub mod text;
pub mod values;

pub use server::{Endpoint, Gather};
pub use text::{render, CONTENT_TYPE};
