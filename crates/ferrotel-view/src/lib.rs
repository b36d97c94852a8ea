//! `ferrotel view`: a local OTLP receiver for traces, metrics and logs (gRPC, and HTTP with
//! protobuf or JSON, optionally gzip or deflate) that keeps them in bounded in-memory stores, optionally
//! journaled to a SQLite file, and serves a web UI and a Jaeger-compatible query API.
//!
//! `server` binds the listeners and starts everything; `viewer` is the state they share;
//! `intake` decodes OTLP (`otlp_json` is its JSON form); `auth` decides who gets in and
//! `conn` closes idle connections; `query` answers the API, with `search` (trace search),
//! `summary` (a trace in one line), `red` (rate, errors, duration), `jaeger` (Jaeger's
//! shapes) and `params`, `timefmt` beneath it; `ui` serves the web UI's files. `store`,
//! `logs` and `metrics` hold the data within the bounds `size` measures, `archive` keeps the
//! traces Jaeger UI archives, `journal` is the `--db` file.

mod archive;
mod auth;
mod conn;
mod intake;
mod jaeger;
mod journal;
mod logs;
mod metrics;
mod otlp_json;
mod params;
mod query;
mod red;
mod reply;
mod search;
mod server;
mod size;
mod store;
mod summary;
mod timefmt;
mod ui;
mod viewer;

pub use server::{parse_byte_size, run, Options};
