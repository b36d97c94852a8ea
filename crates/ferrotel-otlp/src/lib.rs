//! OTLP export over gRPC or HTTP (protobuf or JSON), for the pipeline's worker thread.
//!
//! It owns encoding, the transport (TLS, gzip, headers), the spec's retry rules bounded by
//! the export timeout, and what the user is told when a collector misbehaves: one warning
//! at the first failure, then at most one summary a minute; never a line per attempt and
//! never a header value. It runs without the GIL and never touches Python.

mod grpc;
pub mod json;
pub mod proto;

use std::io::Write as _;
use std::time::{Duration, Instant};

use ferrotel_config::{Compression, OtlpConfig, Protocol};
use ferrotel_sdk::log::LogData;
use ferrotel_sdk::metrics::{Data, MetricData};
use ferrotel_sdk::pipeline::{ExportResult, Exporter};
use ferrotel_sdk::resource::Resource;
use ferrotel_sdk::span::SpanData;

const SUMMARY_EVERY: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Response bodies are only read for partial success; anything longer is not ours.
const MAX_RESPONSE: u64 = 64 * 1024;

/// What a successful export may report: `(rejected spans, message)`.
type PartialSuccess = Option<(u64, String)>;

/// Why an export did not succeed.
#[derive(Debug)]
enum Attempt {
    /// Worth retrying (connection errors, 429/502/503/504), with the server's requested delay.
    Retry(String, Option<Duration>),
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

/// The signal an exporter carries: the service it calls and what its messages say.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    fn items(self) -> &'static str {
        match self {
            Signal::Traces => "span(s)",
            Signal::Logs => "log record(s)",
            Signal::Metrics => "data point(s)",
        }
    }

    fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }

    /// The partial-success count in an OTLP/JSON reply.
    fn rejected_key(self) -> &'static str {
        match self {
            Signal::Traces => "rejectedSpans",
            Signal::Logs => "rejectedLogRecords",
            Signal::Metrics => "rejectedDataPoints",
        }
    }
}

/// Exports one signal (spans or log records) to one OTLP endpoint.
pub struct OtlpExporter {
    signal: Signal,
    config: OtlpConfig,
    /// A configuration problem (unreadable certificate...) fails every export, said once.
    transport: Result<Transport, String>,
    /// Whether the user has been told about the current trouble.
    warned: bool,
    undelivered_since_summary: u64,
    last_summary: Instant,
    rng: u64,
}

impl OtlpExporter {
    /// A span exporter.
    pub fn new(config: OtlpConfig) -> OtlpExporter {
        OtlpExporter::for_signal(Signal::Traces, config)
    }

    /// A log record exporter.
    pub fn for_logs(config: OtlpConfig) -> OtlpExporter {
        OtlpExporter::for_signal(Signal::Logs, config)
    }

    /// A metric exporter.
    pub fn for_metrics(config: OtlpConfig) -> OtlpExporter {
        OtlpExporter::for_signal(Signal::Metrics, config)
    }

    fn for_signal(signal: Signal, config: OtlpConfig) -> OtlpExporter {
        OtlpExporter {
            signal,
            transport: transport(&config),
            config,
            warned: false,
            undelivered_since_summary: 0,
            last_summary: Instant::now(),
            rng: ferrotel_sdk::ids::new_span_id(),
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
        gzip: bool,
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
        if gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        let response = request.send(body).map_err(|e| {
            if is_tls_failure(&e) {
                Attempt::Fatal(e.to_string())
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
                    json::partial_success(&bytes, self.signal.rejected_key())
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

    fn send(&mut self, body: &[u8], content_type: &str) -> Result<PartialSuccess, String> {
        if let Err(e) = &self.transport {
            return Err(e.clone());
        }
        let gzip = self.config.compression == Compression::Gzip;
        let payload = if gzip {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder
                .write_all(body)
                .and_then(|_| encoder.finish())
                .map_err(|e| e.to_string())?
        } else {
            body.to_vec()
        };
        let deadline = Instant::now() + self.config.timeout;
        let mut backoff = FIRST_BACKOFF;
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
                    self.post(&agent, &payload, content_type, gzip, remaining)
                }
                Ok(Transport::Grpc(grpc)) => {
                    grpc.attempt(self.signal.grpc_path(), &payload, gzip, &self.config.headers, remaining)
                }
                Err(e) => Err(Attempt::Fatal(e.clone())),
            };
            match attempt {
                Ok(partial) => return Ok(partial),
                Err(Attempt::Fatal(reason)) => return Err(reason),
                Err(Attempt::Retry(reason, requested)) => {
                    let delay = requested.unwrap_or_else(|| self.jitter(backoff));
                    if Instant::now() + delay >= deadline {
                        return Err(format!(
                            "{reason}; gave up within the {:?} export timeout",
                            self.config.timeout
                        ));
                    }
                    std::thread::sleep(delay);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn report_failure(&mut self, items: u64, reason: &str) {
        self.undelivered_since_summary += items;
        let (signal, noun) = (self.signal.name(), self.signal.items());
        if !self.warned {
            self.warned = true;
            self.last_summary = Instant::now();
            eprintln!(
                "ferrotel: warning: cannot export {signal} to {}: {reason}; exports are retried with backoff, \
                 and what cannot be delivered is counted (one summary a minute while this lasts)",
                self.config.endpoint
            );
        } else if self.last_summary.elapsed() >= SUMMARY_EVERY {
            eprintln!(
                "ferrotel: warning: {} {noun} not delivered to {} in the last minute ({reason})",
                self.undelivered_since_summary, self.config.endpoint
            );
            self.undelivered_since_summary = 0;
            self.last_summary = Instant::now();
        }
    }

    /// Sends one encoded request of `count` items and accounts for the outcome.
    fn export_encoded(&mut self, count: usize, body: Vec<u8>, content_type: &str) -> ExportResult {
        match self.send(&body, content_type) {
            Ok(partial) => {
                if self.warned {
                    eprintln!(
                        "ferrotel: info: {} export to {} works again",
                        self.signal.name(),
                        self.config.endpoint
                    );
                    self.warned = false;
                    self.undelivered_since_summary = 0;
                }
                match partial {
                    Some((rejected, message)) if rejected > 0 => {
                        let noun = self.signal.items();
                        self.report_failure(
                            rejected,
                            &format!("the collector rejected {rejected} {noun}: {message}"),
                        );
                        ExportResult::Failure(format!("{rejected} rejected"))
                    }
                    _ => ExportResult::Success,
                }
            }
            Err(reason) => {
                self.report_failure(count as u64, &reason);
                ExportResult::Failure(reason)
            }
        }
    }

    fn content_type(&self) -> &'static str {
        match self.config.protocol {
            Protocol::HttpJson => "application/json",
            _ => "application/x-protobuf",
        }
    }
}

impl Exporter<SpanData> for OtlpExporter {
    fn export(&mut self, batch: &[SpanData], resource: &Resource) -> ExportResult {
        if batch.is_empty() {
            return ExportResult::Success;
        }
        let body = match self.config.protocol {
            Protocol::HttpJson => json::encode_traces(batch, resource),
            _ => proto::encode_traces(batch, resource),
        };
        self.export_encoded(batch.len(), body, self.content_type())
    }

    fn destination(&self) -> String {
        self.config.endpoint.clone()
    }
}

impl Exporter<LogData> for OtlpExporter {
    fn export(&mut self, batch: &[LogData], resource: &Resource) -> ExportResult {
        if batch.is_empty() {
            return ExportResult::Success;
        }
        let body = match self.config.protocol {
            Protocol::HttpJson => json::encode_logs(batch, resource),
            _ => proto::encode_logs(batch, resource),
        };
        self.export_encoded(batch.len(), body, self.content_type())
    }

    fn destination(&self) -> String {
        self.config.endpoint.clone()
    }
}

impl Exporter<MetricData> for OtlpExporter {
    fn export(&mut self, batch: &[MetricData], resource: &Resource) -> ExportResult {
        if batch.is_empty() {
            return ExportResult::Success;
        }
        let body = match self.config.protocol {
            Protocol::HttpJson => json::encode_metrics(batch, resource),
            _ => proto::encode_metrics(batch, resource),
        };
        let points = batch
            .iter()
            .map(|m| match &m.data {
                Data::Gauge(points) | Data::Sum { points, .. } => points.len(),
                Data::Histogram { points, .. } => points.len(),
            })
            .sum();
        self.export_encoded(points, body, self.content_type())
    }

    fn destination(&self) -> String {
        self.config.endpoint.clone()
    }
}
