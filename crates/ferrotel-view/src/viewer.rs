//! The state every listener shares: the three in-memory stores, the optional `--db` journal
//! and the access rules, and the one path by which a decoded request is kept.

use std::sync::{Arc, Mutex, MutexGuard};

use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::archive::Archive;
use crate::auth::Access;
use crate::intake::Signal;
use crate::journal::{Journal, Kind};
use crate::logs::LogStore;
use crate::metrics::MetricStore;
use crate::store::{Store, StoredSpan, TraceId};

pub(crate) struct Viewer {
    store: Mutex<Store>,
    archive: Mutex<Archive>,
    logs: Mutex<LogStore>,
    metrics: Mutex<MetricStore>,
    journal: Option<Journal>,
    pub(crate) max_body_bytes: usize,
    pub(crate) access: Access,
}

impl Viewer {
    pub(crate) fn new(
        store: Store,
        archive: Archive,
        logs: LogStore,
        metrics: MetricStore,
        journal: Option<Journal>,
        max_body_bytes: usize,
        access: Access,
    ) -> Self {
        Viewer {
            store: Mutex::new(store),
            archive: Mutex::new(archive),
            logs: Mutex::new(logs),
            metrics: Mutex::new(metrics),
            journal,
            max_body_bytes,
            access,
        }
    }

    /// Keeps a request: first in the `--db` file when there is one (an error there means the
    /// client should retry, and memory is left unchanged), then in memory.
    pub(crate) async fn accept<S: Signal>(&self, request: S) -> Result<S::Reply, String> {
        if let Some(journal) = &self.journal {
            journal
                .append(S::KIND, request.items(), request.encode_to_vec())
                .await?;
        }
        Ok(request.ingest(self))
    }

    /// Loads what a `--db` file held at start; returns the requests it could not read.
    pub(crate) fn restore(&self, batches: Vec<(Kind, Vec<u8>)>) -> usize {
        let mut unreadable = 0;
        for (kind, body) in batches {
            let loaded = match kind {
                Kind::Traces => ExportTraceServiceRequest::decode(body.as_slice()).map(|r| {
                    self.ingest_traces(r);
                }),
                Kind::Metrics => ExportMetricsServiceRequest::decode(body.as_slice()).map(|r| {
                    self.ingest_metrics(r);
                }),
                Kind::Logs => ExportLogsServiceRequest::decode(body.as_slice()).map(|r| {
                    self.ingest_logs(r);
                }),
            };
            unreadable += usize::from(loaded.is_err());
        }
        unreadable
    }

    /// Stores a request's spans; the reply reports any that were refused, per OTLP partial success.
    pub(crate) fn ingest_traces(&self, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse {
        let rejected = {
            let mut store = self.store();
            let before = store.rejected_spans;
            store.insert(request.resource_spans);
            store.rejected_spans - before
        };
        let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: "spans need a 16-byte trace id and 8-byte span ids".to_owned(),
        });
        ExportTraceServiceResponse { partial_success }
    }

    pub(crate) fn ingest_logs(&self, request: ExportLogsServiceRequest) -> ExportLogsServiceResponse {
        self.logs().insert(request.resource_logs);
        ExportLogsServiceResponse::default()
    }

    pub(crate) fn ingest_metrics(&self, request: ExportMetricsServiceRequest) -> ExportMetricsServiceResponse {
        self.metrics().insert(request.resource_metrics);
        ExportMetricsServiceResponse::default()
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        // A handler that panicked mid-insert leaves whole spans behind; the data stays readable.
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn archive(&self) -> MutexGuard<'_, Archive> {
        self.archive.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A trace's spans from the store, or from the archive once the store let it go.
    pub(crate) fn trace(&self, id: &TraceId) -> Option<Vec<Arc<StoredSpan>>> {
        if let Some(spans) = self.store().trace(id) {
            return Some(spans.to_vec());
        }
        self.archive().trace(id).map(<[_]>::to_vec)
    }

    pub(crate) fn logs(&self) -> MutexGuard<'_, LogStore> {
        self.logs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn metrics(&self) -> MutexGuard<'_, MetricStore> {
        self.metrics.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
