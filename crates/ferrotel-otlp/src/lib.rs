//! OTLP export of traces, metrics and logs over gRPC or HTTP (protobuf or JSON), for a
//! pipeline's worker thread.
//!
//! It owns encoding, the transport (TLS, gzip or deflate, headers) and the spec's retry rules bounded
//! by the export timeout; an exporter's signal is part of its type, so a trace exporter
//! cannot be handed log records. What the user is told about failures is the pipeline's
//! business (one warning, then summaries); reasons given here never contain a header value.
//! It runs without the GIL and never touches Python.

mod grpc;
pub mod json;
pub mod proto;

use std::io::Write as _;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use ferrotel_config::{Compression, OtlpConfig, Protocol};
use ferrotel_sdk::log::LogData;
use ferrotel_sdk::metrics::MetricData;
use ferrotel_sdk::pipeline::{ExitControl, ExportResult, Exporter, Item};
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::EndedSpan;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At exit, an unreachable collector gets one more chance after this long, then the rest
/// of what is queued fails at once.
const LAST_CHANCE: Duration = Duration::from_millis(250);
/// Response bodies are only read for partial success; anything longer is not ours.
const MAX_RESPONSE: u64 = 64 * 1024;

/// What a successful export may report: `(rejected spans, message)`.
type PartialSuccess = Option<(u64, String)>;

/// The body as `compression` asks, and the name of its encoding (the same for HTTP's
/// `Content-Encoding` and gRPC's `grpc-encoding`): gzip, or deflate as the zlib format
/// (RFC 1950), which is what both HTTP's `deflate` and gRPC's mean, and what upstream's
/// exporters send (`zlib.compress`, grpc's Deflate).
fn compressed(compression: Compression, body: &[u8]) -> std::io::Result<(Vec<u8>, Option<&'static str>)> {
    let level = flate2::Compression::fast();
    Ok(match compression {
        Compression::None => (body.to_vec(), None),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
            encoder.write_all(body)?;
            (encoder.finish()?, Some("gzip"))
        }
        Compression::Deflate => {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), level);
            encoder.write_all(body)?;
            (encoder.finish()?, Some("deflate"))
        }
    })
}

/// Why an export did not succeed.
#[derive(Debug)]
enum Attempt {
    /// Worth retrying (connection errors, 429/502/503/504), with the server's requested delay.
    Retry(String, Option<Duration>),
    /// Nothing listens there (connection refused, no route, unknown host): retried while the
    /// process runs, given up at exit after one quick retry.
    Unreachable(String),
    /// Not worth retrying (other 4xx/5xx, bad configuration): the batch is dropped.
    Fatal(String),
}

enum Transport {
    Http(ureq::Agent),
    Grpc(Box<grpc::GrpcTransport>),
}

fn transport(config: &OtlpConfig) -> Result<Transport, String> {
    Ok(match config.protocol {
        Protocol::Grpc => Transport::Grpc(Box::new(grpc::GrpcTransport::new(config)?)),
        _ => Transport::Http(agent(config)?),
    })
}

/// The system's trusted roots (DER), or none if the store cannot be read.
pub(crate) fn system_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}

/// Builds the agent for `config`. Errors name the setting (never its secret value).
fn agent(config: &OtlpConfig) -> Result<ureq::Agent, String> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

    let read =
        |path: &str, what: &str| std::fs::read(path).map_err(|e| format!("cannot read the {what} file {path}: {e}"));
    let mut tls = TlsConfig::builder();
    if let Some(ca) = &config.certificate {
        let pem = read(ca, "certificate")?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!("no certificate found in {ca}"));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    } else {
        // The system's roots; ureq's bundled Mozilla roots when the store is empty.
        let system: Vec<Certificate<'static>> = system_roots()
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        if !system.is_empty() {
            tls = tls.root_certs(RootCerts::new_with_certs(&system));
        }
    }
    if let (Some(cert), Some(key)) = (&config.client_certificate, &config.client_key) {
        let chain_pem = read(cert, "client certificate")?;
        let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&chain_pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        let key = PrivateKey::from_pem(&read(key, "client key")?).map_err(|e| format!("client key: {e}"))?;
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .user_agent(concat!("ferrotel/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

/// A certificate or handshake rejection will not fix itself: it is not retried.
fn is_tls_failure(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => true,
        ureq::Error::Io(io) => io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()),
        _ => false,
    }
}

/// Whether an I/O error says nothing listens at the address.
pub(crate) fn is_unreachable_io(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable | NotFound
    )
}

fn is_unreachable(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => is_unreachable_io(io),
        ureq::Error::ConnectionFailed => true,
        _ => false,
    }
}

/// The signal an exporter carries: what it encodes, the service it calls, how the receiver
/// counts rejections.
pub trait Signal: Send + 'static {
    type Data: Item;
    const GRPC_PATH: &'static str;
    /// The partial-success count in an OTLP/JSON reply.
    const REJECTED_KEY: &'static str;
    fn encode(batch: &[Self::Data], resource: &Resource, json: bool) -> Vec<u8>;
}

pub struct Traces;
pub struct Logs;
pub struct Metrics;

impl Signal for Traces {
    type Data = EndedSpan;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const REJECTED_KEY: &'static str = "rejectedSpans";

    fn encode(batch: &[EndedSpan], resource: &Resource, json: bool) -> Vec<u8> {
        if json {
            json::encode_traces(batch, resource)
        } else {
            proto::encode_traces(batch, resource)
        }
    }
}

impl Signal for Logs {
    type Data = LogData;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const REJECTED_KEY: &'static str = "rejectedLogRecords";

    fn encode(batch: &[LogData], resource: &Resource, json: bool) -> Vec<u8> {
        if json {
            json::encode_logs(batch, resource)
        } else {
            proto::encode_logs(batch, resource)
        }
    }
}

impl Signal for Metrics {
    type Data = MetricData;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const REJECTED_KEY: &'static str = "rejectedDataPoints";

    fn encode(batch: &[MetricData], resource: &Resource, json: bool) -> Vec<u8> {
        if json {
            json::encode_metrics(batch, resource)
        } else {
            proto::encode_metrics(batch, resource)
        }
    }
}

/// Exports one signal to one OTLP endpoint.
pub struct OtlpExporter<S: Signal> {
    config: OtlpConfig,
    /// A configuration problem (unreadable certificate...) fails every export.
    transport: Result<Transport, String>,
    rng: u64,
    /// At exit the destination proved unreachable: what is left fails without trying.
    unreachable_at_exit: bool,
    signal: PhantomData<S>,
}

impl<S: Signal> OtlpExporter<S> {
    pub fn new(config: OtlpConfig) -> OtlpExporter<S> {
        OtlpExporter {
            transport: transport(&config),
            config,
            rng: ferrotel_sdk::ids::new_span_id(),
            unreachable_at_exit: false,
            signal: PhantomData,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    fn post(
        &self,
        agent: &ureq::Agent,
        body: &[u8],
        content_type: &str,
        encoding: Option<&str>,
        timeout: Duration,
    ) -> Result<Option<(u64, String)>, Attempt> {
        let mut request = agent
            .post(&self.config.endpoint)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", content_type);
        for (k, v) in &self.config.headers {
            request = request.header(k, v);
        }
        if let Some(encoding) = encoding {
            request = request.header("Content-Encoding", encoding);
        }
        let response = request.send(body).map_err(|e| {
            if is_tls_failure(&e) {
                Attempt::Fatal(e.to_string())
            } else if is_unreachable(&e) {
                Attempt::Unreachable(e.to_string())
            } else {
                Attempt::Retry(e.to_string(), None)
            }
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match status {
            200..=299 => {
                let mut body = response.into_body();
                let bytes = body.with_config().limit(MAX_RESPONSE).read_to_vec().unwrap_or_default();
                Ok(if self.config.protocol == Protocol::HttpJson {
                    json::partial_success(&bytes, S::REJECTED_KEY)
                } else {
                    proto::partial_success(&bytes)
                })
            }
            429 | 502 | 503 | 504 => Err(Attempt::Retry(format!("HTTP {status}"), retry_after)),
            _ => Err(Attempt::Fatal(format!("HTTP {status}"))),
        }
    }

    /// A delay in `[backoff/2, backoff)`, so many processes do not retry in step.
    fn jitter(&mut self, backoff: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = 0.5 + (self.rng % 1000) as f64 / 2000.0;
        backoff.mul_f64(fraction)
    }

    fn send(&mut self, body: &[u8], content_type: &str, exit: &ExitControl) -> Result<PartialSuccess, String> {
        if let Err(e) = &self.transport {
            return Err(e.clone());
        }
        if self.unreachable_at_exit {
            return Err(format!("{} is unreachable; not retried at exit", self.config.endpoint));
        }
        let (payload, encoding) = compressed(self.config.compression, body).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + self.config.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut last_chance_taken = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(format!(
                    "no success within the {:?} export timeout",
                    self.config.timeout
                ));
            }
            let attempt = match &mut self.transport {
                Ok(Transport::Http(agent)) => {
                    let agent = agent.clone();
                    self.post(&agent, &payload, content_type, encoding, remaining)
                }
                Ok(Transport::Grpc(grpc)) => {
                    grpc.attempt(S::GRPC_PATH, &payload, encoding, &self.config.headers, remaining)
                }
                Err(e) => Err(Attempt::Fatal(e.clone())),
            };
            let (reason, requested) = match attempt {
                Ok(partial) => return Ok(partial),
                Err(Attempt::Fatal(reason)) => return Err(reason),
                Err(Attempt::Unreachable(reason)) if exit.is_leaving() => {
                    if last_chance_taken {
                        self.unreachable_at_exit = true;
                        return Err(reason);
                    }
                    last_chance_taken = true;
                    (reason, Some(LAST_CHANCE))
                }
                Err(Attempt::Unreachable(reason)) => (reason, None),
                Err(Attempt::Retry(reason, requested)) => (reason, requested),
            };
            let delay = requested.unwrap_or_else(|| self.jitter(backoff));
            if Instant::now() + delay >= deadline {
                return Err(format!(
                    "{reason}; gave up within the {:?} export timeout",
                    self.config.timeout
                ));
            }
            exit.pause(delay);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sends one encoded request and says how it went.
    fn export_encoded(&mut self, body: Vec<u8>, content_type: &str, exit: &ExitControl) -> ExportResult {
        match self.send(&body, content_type, exit) {
            Ok(Some((rejected, message))) if rejected > 0 => ExportResult::Partial {
                rejected,
                reason: format!(
                    "the collector rejected {rejected} {}: {message}",
                    <S::Data as Item>::NOUN
                ),
            },
            Ok(_) => ExportResult::Success,
            Err(reason) => ExportResult::Failure(reason),
        }
    }

    fn content_type(&self) -> &'static str {
        match self.config.protocol {
            Protocol::HttpJson => "application/json",
            _ => "application/x-protobuf",
        }
    }
}

impl<S: Signal> Exporter<S::Data> for OtlpExporter<S> {
    fn export(&mut self, batch: &[S::Data], resource: &Resource, exit: &ExitControl) -> ExportResult {
        if batch.is_empty() {
            return ExportResult::Success;
        }
        let body = S::encode(batch, resource, self.config.protocol == Protocol::HttpJson);
        self.export_encoded(body, self.content_type(), exit)
    }

    fn destination(&self) -> String {
        self.config.endpoint.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn deflate_is_the_zlib_format_and_gzip_is_gzip() {
        let body = b"a request body, a request body, a request body".repeat(10);
        let (plain, none) = compressed(Compression::None, &body).unwrap();
        assert_eq!((plain.as_slice(), none), (body.as_slice(), None));

        let (deflated, encoding) = compressed(Compression::Deflate, &body).unwrap();
        assert_eq!(encoding, Some("deflate"));
        // RFC 1950: CMF 0x78 (deflate, 32K window), FCHECK making CMF*256+FLG divisible by 31.
        assert_eq!(deflated[0], 0x78);
        assert_eq!((u16::from(deflated[0]) << 8 | u16::from(deflated[1])) % 31, 0);
        let mut back = Vec::new();
        flate2::read::ZlibDecoder::new(deflated.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);

        let (gzipped, encoding) = compressed(Compression::Gzip, &body).unwrap();
        assert_eq!((encoding, &gzipped[..2]), (Some("gzip"), &[0x1f, 0x8b][..]));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
    }
}
