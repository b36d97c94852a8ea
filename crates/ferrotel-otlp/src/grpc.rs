//! OTLP/gRPC: unary `TraceService/Export` and `LogsService/Export` calls over HTTP/2 (h2), with TLS (rustls) when
//! the endpoint is `https`. The runtime is a current-thread tokio runtime owned by the
//! export thread; the connection is kept and re-made after any failure.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use ferrotel_config::OtlpConfig;

use crate::{proto, Attempt, PartialSuccess};

/// Replies are only read for partial success; anything longer is not ours.
const MAX_RESPONSE: usize = 64 * 1024;

pub(crate) struct GrpcTransport {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
}

/// Where and how to connect, and the live connection.
struct Channel {
    /// `host:port` to connect to.
    address: String,
    authority: String,
    scheme: &'static str,
    tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
    connection: Option<h2::client::SendRequest<Bytes>>,
}

fn tls_config(config: &OtlpConfig) -> Result<rustls::ClientConfig, String> {
    let read =
        |path: &str, what: &str| std::fs::read(path).map_err(|e| format!("cannot read the {what} file {path}: {e}"));
    let certs = |pem: &[u8]| -> Vec<rustls::pki_types::CertificateDer<'static>> {
        rustls_pemfile::certs(&mut &pem[..]).filter_map(Result::ok).collect()
    };
    let mut roots = rustls::RootCertStore::empty();
    match &config.certificate {
        Some(path) => {
            let found = certs(&read(path, "certificate")?);
            if found.is_empty() {
                return Err(format!("no certificate found in {path}"));
            }
            for cert in found {
                roots.add(cert).map_err(|e| format!("{path}: {e}"))?;
            }
        }
        None => {
            // The system's roots; the bundled Mozilla roots when the store is empty.
            let (added, _) = roots.add_parsable_certificates(crate::system_roots());
            if added == 0 {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut tls = match (&config.client_certificate, &config.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certs(&read(cert, "client certificate")?);
            let key = rustls_pemfile::private_key(&mut &read(key, "client key")?[..])
                .ok()
                .flatten()
                .ok_or_else(|| format!("no private key found in {key}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tls)
}

impl GrpcTransport {
    pub(crate) fn new(config: &OtlpConfig) -> Result<GrpcTransport, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| e.to_string())?;
        let (scheme, authority) = config.endpoint.split_once("://").ok_or("the endpoint has no scheme")?;
        let authority = authority.trim_end_matches('/').to_string();
        let secure = scheme == "https";
        let default_port = if secure { 443 } else { 80 };
        let (host, address) = match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() && !host.ends_with(']') || host.starts_with('[') => {
                (host.trim_matches(['[', ']']).to_string(), authority.clone())
            }
            _ => (
                authority.trim_matches(['[', ']']).to_string(),
                format!("{authority}:{default_port}"),
            ),
        };
        let tls = if secure {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(config)?));
            let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| format!("server name: {e}"))?;
            Some((connector, name))
        } else {
            None
        };
        let channel = Channel {
            address,
            authority,
            scheme: if secure { "https" } else { "http" },
            tls,
            connection: None,
        };
        Ok(GrpcTransport { runtime, channel })
    }

    /// One export attempt, bounded by `timeout`.
    pub(crate) fn attempt(
        &mut self,
        path: &str,
        message: &[u8],
        encoding: Option<&str>,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<PartialSuccess, Attempt> {
        let channel = &mut self.channel;
        self.runtime.block_on(async {
            match tokio::time::timeout(timeout, channel.call(path, message, encoding, headers, timeout)).await {
                Ok(result) => result,
                Err(_) => {
                    channel.connection = None;
                    Err(Attempt::Retry(format!("no answer within {timeout:?}"), None))
                }
            }
        })
    }
}

impl Channel {
    async fn connect(&mut self) -> Result<h2::client::SendRequest<Bytes>, Attempt> {
        if let Some(existing) = &self.connection {
            return Ok(existing.clone());
        }
        let retry = |e: String| Attempt::Retry(e, None);
        let tcp = tokio::net::TcpStream::connect(&self.address).await.map_err(|e| {
            let reason = format!("cannot connect to {}: {e}", self.address);
            if crate::is_unreachable_io(&e) {
                Attempt::Unreachable(reason)
            } else {
                Attempt::Retry(reason, None)
            }
        })?;
        let _ = tcp.set_nodelay(true);
        let sender = match &self.tls {
            Some((connector, name)) => {
                // A certificate or handshake rejection will not fix itself: it is not retried.
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| Attempt::Fatal(format!("TLS: {e}")))?;
                let (sender, connection) = h2::client::handshake(tls).await.map_err(classify)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                sender
            }
            None => {
                let (sender, connection) = h2::client::handshake(tcp).await.map_err(|e| retry(e.to_string()))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                sender
            }
        };
        self.connection = Some(sender.clone());
        Ok(sender)
    }

    async fn call(
        &mut self,
        path: &str,
        message: &[u8],
        encoding: Option<&str>,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<PartialSuccess, Attempt> {
        let sender = self.connect().await?;
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("{}://{}{path}", self.scheme, self.authority))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", format!("{}m", timeout.as_millis().max(1)))
            .header("user-agent", concat!("ferrotel/", env!("CARGO_PKG_VERSION")));
        if let Some(encoding) = encoding {
            request = request.header("grpc-encoding", encoding);
        }
        for (k, v) in headers {
            request = request.header(k.to_ascii_lowercase(), v);
        }
        let request = request
            .body(())
            .map_err(|e| Attempt::Fatal(format!("bad header: {e}")))?;
        let mut sender = sender.ready().await.map_err(|e| self.broken(e))?;
        let (response, mut stream) = sender.send_request(request, false).map_err(|e| self.broken(e))?;
        let mut frame = Vec::with_capacity(message.len() + 5);
        frame.push(u8::from(encoding.is_some()));
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(message);
        stream.send_data(Bytes::from(frame), true).map_err(|e| self.broken(e))?;
        let response = response.await.map_err(|e| self.broken(e))?;
        let (parts, mut body) = response.into_parts();
        if parts.status != http::StatusCode::OK {
            return Err(Attempt::Retry(
                format!("HTTP {} from a gRPC endpoint", parts.status.as_u16()),
                None,
            ));
        }
        let mut reply = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| self.broken(e))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if reply.len() + chunk.len() <= MAX_RESPONSE {
                reply.extend_from_slice(chunk.chunk());
            }
        }
        // A trailers-only reply carries grpc-status in the headers.
        let trailers = body.trailers().await.map_err(|e| self.broken(e))?.unwrap_or_default();
        let field = |name: &str| {
            trailers
                .get(name)
                .or_else(|| parts.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let code: u32 = field("grpc-status").and_then(|c| c.parse().ok()).unwrap_or(2);
        let message_text = field("grpc-message").unwrap_or_default();
        let retry_info = field("grpc-status-details-bin").and_then(|d| retry_delay(&d));
        match code {
            0 => Ok(reply.get(5..).and_then(proto::partial_success)),
            // Retryable per the OTLP spec; RESOURCE_EXHAUSTED only when the server says when.
            1 | 4 | 10 | 11 | 14 | 15 => Err(Attempt::Retry(format!("gRPC status {code} {message_text}"), retry_info)),
            8 if retry_info.is_some() => Err(Attempt::Retry(format!("gRPC status {code} {message_text}"), retry_info)),
            _ => Err(Attempt::Fatal(format!("gRPC status {code} {message_text}"))),
        }
    }

    /// A transport error: the connection is dropped and made again on the next attempt.
    fn broken(&mut self, error: h2::Error) -> Attempt {
        self.connection = None;
        classify(error)
    }
}

/// TLS rejections (with TLS 1.3 a refused client certificate arrives as an alert after the
/// handshake) will not fix themselves; other transport errors are retried.
fn classify(error: h2::Error) -> Attempt {
    let tls = error
        .get_io()
        .and_then(|io| io.get_ref())
        .is_some_and(|inner| inner.is::<rustls::Error>());
    if tls {
        Attempt::Fatal(format!("TLS: {error}"))
    } else {
        Attempt::Retry(error.to_string(), None)
    }
}

/// The delay in a `google.rpc.Status` whose details hold a `google.rpc.RetryInfo`
/// (base64 in the `grpc-status-details-bin` trailer).
fn retry_delay(details_b64: &str) -> Option<Duration> {
    let bytes = base64_decode(details_b64)?;
    // Status { details (3): Any { type_url (1), value (2): RetryInfo { retry_delay (1): Duration { seconds (1), nanos (2) } } } }
    let any = proto::field_bytes(&bytes, 3)?;
    let type_url = proto::field_bytes(any, 1)?;
    if !type_url.ends_with(b"google.rpc.RetryInfo") {
        return None;
    }
    let retry_info = proto::field_bytes(any, 2)?;
    let duration = proto::field_bytes(retry_info, 1)?;
    let seconds = proto::field_varint(duration, 1).unwrap_or(0);
    let nanos = proto::field_varint(duration, 2).unwrap_or(0);
    Some(Duration::from_secs(seconds.min(3600)) + Duration::from_nanos(nanos.min(999_999_999)))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_retry_info() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("!!"), None);
        // Status{details: Any{type_url: ".../google.rpc.RetryInfo", value: RetryInfo{retry_delay: {seconds: 2}}}}
        let type_url = b"type.googleapis.com/google.rpc.RetryInfo";
        let duration = [0x08, 0x02];
        let retry_info = [&[0x0a, duration.len() as u8][..], &duration].concat();
        let any = [
            &[0x0a, type_url.len() as u8][..],
            type_url,
            &[0x12, retry_info.len() as u8],
            &retry_info,
        ]
        .concat();
        let status = [&[0x1a, any.len() as u8][..], &any].concat();
        let encoded = {
            const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut s = String::new();
            for c in status.chunks(3) {
                let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
                for i in 0..=c.len() {
                    s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                }
            }
            s
        };
        assert_eq!(retry_delay(&encoded), Some(Duration::from_secs(2)));
        assert_eq!(retry_delay("AAAA"), None);
    }
}
