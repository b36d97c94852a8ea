//! OTLP/gRPC intake for every signal, with our own codec: OTLP wants a malformed message
//! answered with INVALID_ARGUMENT, where tonic's generated servers answer INTERNAL.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::Status;

use super::Signal;
use crate::conn::WatchedListener;
use crate::viewer::Viewer;

struct OtlpCodec<S>(PhantomData<S>);

impl<S: Signal> Codec for OtlpCodec<S> {
    type Encode = S::Reply;
    type Decode = S;
    type Encoder = OtlpCodec<S::Reply>;
    type Decoder = OtlpCodec<S>;

    fn encoder(&mut self) -> Self::Encoder {
        OtlpCodec(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpCodec(PhantomData)
    }
}

impl<M: prost::Message + Send + 'static> Encoder for OtlpCodec<M> {
    type Item = M;
    type Error = Status;

    fn encode(&mut self, reply: M, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        reply
            .encode(buf)
            .map_err(|e| Status::internal(format!("cannot encode the reply: {e}")))
    }
}

impl<S: Signal> Decoder for OtlpCodec<S> {
    type Item = S;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<S>, Status> {
        S::decode(buf)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed OTLP {} request: {e}", S::NAME)))
    }
}

/// Serves the three collector services on `listener` until the runtime stops.
pub(crate) async fn serve(listener: TcpListener, viewer: Arc<Viewer>, idle: Duration) -> Result<(), String> {
    // Batches are tens of kilobytes: without no-delay and larger windows than HTTP/2's 64 KiB,
    // Nagle and flow control cost a round trip or two per export.
    let incoming = WatchedListener::new(listener, idle, true).map_err(|e| e.to_string())?;
    tonic::transport::Server::builder()
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        // Pings keep a quiet but live client's connection moving; a peer that stopped
        // answering them is gone, and its connection is closed.
        .http2_keepalive_interval(Some(idle / 2))
        .http2_keepalive_timeout(Some(idle / 2))
        .add_service(Intake::<ExportTraceServiceRequest>::new(viewer.clone()))
        .add_service(Intake::<ExportMetricsServiceRequest>::new(viewer.clone()))
        .add_service(Intake::<ExportLogsServiceRequest>::new(viewer))
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| e.to_string())
}

/// The `Export` method of one signal's collector service.
struct Intake<S> {
    viewer: Arc<Viewer>,
    signal: PhantomData<fn() -> S>,
}

impl<S> Intake<S> {
    fn new(viewer: Arc<Viewer>) -> Self {
        Intake {
            viewer,
            signal: PhantomData,
        }
    }
}

impl<S> Clone for Intake<S> {
    fn clone(&self) -> Self {
        Intake::new(self.viewer.clone())
    }
}

impl<S: Signal> NamedService for Intake<S> {
    const NAME: &'static str = S::GRPC_SERVICE;
}

struct Export<S>(Intake<S>);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S: Signal> UnaryService<S> for Export<S> {
    type Response = S::Reply;
    type Future = BoxFuture<Result<tonic::Response<S::Reply>, Status>>;

    fn call(&mut self, request: tonic::Request<S>) -> Self::Future {
        let viewer = self.0.viewer.clone();
        Box::pin(async move {
            match viewer.accept(request.into_inner()).await {
                Ok(reply) => Ok(tonic::Response::new(reply)),
                Err(message) => Err(Status::unavailable(message)),
            }
        })
    }
}

impl<S: Signal, B> tower_service::Service<http::Request<B>> for Intake<S>
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let intake = self.clone();
        Box::pin(async move {
            if !request.uri().path().ends_with("/Export") {
                return Ok(Status::unimplemented("the collector services have only Export").into_http());
            }
            // Before the body is read: a client without the token costs no decoding.
            let authorization = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if !intake.viewer.access.authorized(authorization) {
                return Ok(Status::unauthenticated("missing or wrong bearer token").into_http());
            }
            let limit = intake.viewer.max_body_bytes;
            let mut grpc = Grpc::new(OtlpCodec::<S>(PhantomData))
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Deflate)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            Ok(grpc.unary(Export(intake), request).await)
        })
    }
}
