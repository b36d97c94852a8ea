//! `ferrotel view`: a local OTLP receiver for traces, metrics and logs (gRPC, and HTTP with
//! protobuf or JSON, optionally gzip) that keeps them in bounded in-memory stores, optionally
//! journaled to a SQLite file, and serves a web UI and a Jaeger-compatible query API.
//!
//! `server` binds the listeners and starts everything; `viewer` is the state they share;
//! `intake` decodes OTLP (`otlp_json` its JSON form); `auth` decides who gets in and `conn` closes idle connections; `query` answers the API and `ui` serves
//! the web UI's files; `store`, `logs` and `metrics` hold the data within the bounds `size` measures, `jaeger` shapes traces
//! for Jaeger clients, `journal` is the `--db` file.

mod auth;
mod conn;
mod intake;
mod jaeger;
mod journal;
mod logs;
mod metrics;
mod otlp_json;
mod query;
mod reply;
mod server;
mod size;
mod store;
mod ui;
mod viewer;

pub use server::{parse_byte_size, run, Options};
