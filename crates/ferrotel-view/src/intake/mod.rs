//! OTLP intake: one `Signal` trait for traces, metrics and logs, so HTTP (`http`) and gRPC
//! (`grpc`) decode, check and keep every signal the same way.

pub(crate) mod grpc;
pub(crate) mod http;

use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use serde::Serialize;

use crate::journal::Kind;
use crate::metrics;
use crate::otlp_json;
use crate::viewer::Viewer;

/// One OTLP signal's export request, as HTTP and gRPC intake handle it.
pub(crate) trait Signal: Message + Default + Send + 'static {
    const NAME: &'static str;
    const KIND: Kind;
    /// The collector service's full gRPC name.
    const GRPC_SERVICE: &'static str;
    type Reply: Message + Serialize + Send + 'static;
    /// Decodes an OTLP/JSON body.
    fn from_json(body: &[u8]) -> Result<Self, otlp_json::Error>;
    fn ingest(self, viewer: &Viewer) -> Self::Reply;
    /// Spans, data points or log records carried, what the `--db` cap counts.
    fn items(&self) -> u64;
}

impl Signal for ExportTraceServiceRequest {
    const NAME: &'static str = "trace";
    const KIND: Kind = Kind::Traces;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    type Reply = ExportTraceServiceResponse;
    fn from_json(body: &[u8]) -> Result<Self, otlp_json::Error> {
        otlp_json::traces(body)
    }
    fn ingest(self, viewer: &Viewer) -> Self::Reply {
        viewer.ingest_traces(self)
    }
    fn items(&self) -> u64 {
        let scopes = self.resource_spans.iter().flat_map(|r| &r.scope_spans);
        scopes.map(|s| s.spans.len() as u64).sum()
    }
}

impl Signal for ExportLogsServiceRequest {
    const NAME: &'static str = "logs";
    const KIND: Kind = Kind::Logs;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    type Reply = ExportLogsServiceResponse;
    fn from_json(body: &[u8]) -> Result<Self, otlp_json::Error> {
        otlp_json::logs(body)
    }
    fn ingest(self, viewer: &Viewer) -> Self::Reply {
        viewer.ingest_logs(self)
    }
    fn items(&self) -> u64 {
        let scopes = self.resource_logs.iter().flat_map(|r| &r.scope_logs);
        scopes.map(|s| s.log_records.len() as u64).sum()
    }
}

impl Signal for ExportMetricsServiceRequest {
    const NAME: &'static str = "metrics";
    const KIND: Kind = Kind::Metrics;
    const GRPC_SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    type Reply = ExportMetricsServiceResponse;
    fn from_json(body: &[u8]) -> Result<Self, otlp_json::Error> {
        otlp_json::metrics(body)
    }
    fn ingest(self, viewer: &Viewer) -> Self::Reply {
        viewer.ingest_metrics(self)
    }
    fn items(&self) -> u64 {
        let metrics = self
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics);
        metrics.map(metrics::point_count).sum()
    }
}
