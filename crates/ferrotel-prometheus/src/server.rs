//! The scrape endpoint: a small HTTP/1.1 server on its own thread that answers every `GET`
//! (any path, as upstream's `prometheus_client` server does) with what `gather` returns,
//! gzipped when the scraper accepts it. Each connection is served on a thread of its own, at
//! most [`MAX_CONNECTIONS`] at once, with read and write timeouts, and closed after one
//! answer: a scraper that stalls or a port scanner holds nothing for long, and a scrape never
//! waits behind another.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::text::CONTENT_TYPE;

/// Connections served at once; more are closed unanswered until one finishes.
pub const MAX_CONNECTIONS: usize = 8;
/// The most a request's head may take; Prometheus sends a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// What produces the exposition for a scrape.
pub type Gather = Arc<dyn Fn() -> String + Send + Sync>;

/// A running endpoint.
pub struct Endpoint {
    address: SocketAddr,
    listener_fd: RawFd,
    stop: Arc<AtomicBool>,
}

impl Endpoint {
    /// Listens on `host:port` (port 0: any free one) and serves scrapes on a new thread.
    pub fn start(host: &str, port: u16, gather: Gather) -> io::Result<Endpoint> {
        let listener = TcpListener::bind((host, port))?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let endpoint = Endpoint {
            address,
            listener_fd: listener.as_raw_fd(),
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name("ferrotel-prometheus".into())
            .spawn(move || accept(listener, gather, stop))?;
        Ok(endpoint)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops serving and frees the port: the accepting thread is woken by one last
    /// connection and exits.
    pub fn stop(&self) {
        if !self.stop.swap(true, Ordering::AcqRel) {
            let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        }
    }

    /// In a forked child: the serving thread stayed in the parent, which keeps serving; the
    /// child closes its copy of the listening socket, so the port is the parent's alone (and
    /// freed when the parent is done with it, however long the child lives).
    #[allow(unsafe_code)]
    pub fn release_after_fork(self) {
        // SAFETY: the descriptor is the listening socket this process inherited; the only
        // object owning it is the parent's serving thread's listener, which does not exist in
        // this process and so can never close it again, and nothing else here refers to it.
        unsafe {
            libc::close(self.listener_fd);
        }
        // Not stopped as a drop would: that would reach the parent's endpoint.
        std::mem::forget(self);
    }
}

/// An endpoint nobody holds any more stops serving and frees its port.
impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Signals are the app's: the serving threads (the connection threads inherit this mask)
/// block the asynchronous ones, so the kernel never hands a SIGTERM or SIGINT to a thread of
/// ours, where the interpreter's handler would only set a flag its main thread, asleep, does
/// not see until it wakes.
#[allow(unsafe_code)]
fn leave_signals_to_the_app() {
    // SAFETY: `set` is initialised by sigfillset before anything reads it, then changed with
    // valid signal numbers; pthread_sigmask only changes the calling thread's mask. The
    // signals a fault raises stay deliverable.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        for synchronous in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP] {
            libc::sigdelset(&mut set, synchronous);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn accept(listener: TcpListener, gather: Gather, stop: Arc<AtomicBool>) {
    leave_signals_to_the_app();
    let active = Arc::new(AtomicUsize::new(0));
    for connection in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let stream = match connection {
            Ok(stream) => stream,
            // Out of descriptors and the like: give the process a moment rather than spin.
            Err(_) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let (gather, done) = (gather.clone(), active.clone());
        let served = std::thread::Builder::new()
            .name("ferrotel-prometheus-scrape".into())
            .spawn(move || {
                let _ = serve(stream, &gather);
                done.fetch_sub(1, Ordering::AcqRel);
            });
        if served.is_err() {
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A request's method and whether the client takes gzip.
struct Request {
    method: String,
    gzip: bool,
}

fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n").or_else(|| find(&head, b"\n\n")) {
            head.truncate(end);
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse(head: &str) -> Option<Request> {
    let mut lines = head.lines();
    let mut request_line = lines.next()?.split_whitespace();
    let method = request_line.next()?.to_string();
    let _path = request_line.next()?;
    if !request_line.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let gzip = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("accept-encoding"))
        .any(|(_, value)| accepts_gzip(value));
    Some(Request { method, gzip })
}

/// Whether an `Accept-Encoding` value takes gzip (and not with `q=0`).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f64>().ok())
                .is_some_and(|q| q == 0.0)
        });
        name.eq_ignore_ascii_case("gzip") && !refused
    })
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    send_body: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if send_body {
        stream.write_all(body)?;
    }
    stream.flush()
}

fn gzipped(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

fn serve(mut stream: TcpStream, gather: &Gather) -> io::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let Some(head) = read_head(&mut stream)? else {
        return Ok(());
    };
    let Some(request) = parse(&head) else {
        return respond(&mut stream, "400 Bad Request", &[], b"", false);
    };
    let head_only = request.method == "HEAD";
    if request.method != "GET" && !head_only {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            &[("Allow", "GET, HEAD")],
            b"",
            false,
        );
    }
    let body = gather().into_bytes();
    if request.gzip {
        let body = gzipped(&body)?;
        let headers = [("Content-Type", CONTENT_TYPE), ("Content-Encoding", "gzip")];
        respond(&mut stream, "200 OK", &headers, &body, !head_only)
    } else {
        respond(
            &mut stream,
            "200 OK",
            &[("Content-Type", CONTENT_TYPE)],
            &body,
            !head_only,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn exchange(address: SocketAddr, request: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        reply
    }

    fn text(reply: &[u8]) -> String {
        String::from_utf8_lossy(reply).into_owned()
    }

    #[test]
    fn serves_every_get_and_refuses_the_rest() {
        let scrapes = Arc::new(AtomicUsize::new(0));
        let counted = scrapes.clone();
        let gather: Gather = Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            "up 1.0\n".to_string()
        });
        let endpoint = Endpoint::start("127.0.0.1", 0, gather).unwrap();
        let address = endpoint.address();

        let reply = text(&exchange(address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(reply.ends_with("\r\n\r\nup 1.0\n"), "{reply}");
        let reply = text(&exchange(address, "GET / HTTP/1.0\n\n"));
        assert!(reply.ends_with("up 1.0\n"), "any path, bare newlines too: {reply}");

        let reply = text(&exchange(address, "HEAD /metrics HTTP/1.1\r\n\r\n"));
        assert!(
            reply.contains("Content-Length: 7\r\n") && reply.ends_with("\r\n\r\n"),
            "{reply}"
        );
        let reply = text(&exchange(address, "POST /metrics HTTP/1.1\r\n\r\n"));
        assert!(
            reply.starts_with("HTTP/1.1 405 ") && reply.contains("Allow: GET, HEAD"),
            "{reply}"
        );
        let reply = text(&exchange(address, "nonsense\r\n\r\n"));
        assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
        assert_eq!(scrapes.load(Ordering::SeqCst), 3, "only GET and HEAD gather");

        let reply = exchange(
            address,
            "GET /metrics HTTP/1.1\r\nAccept-Encoding: deflate, gzip;q=0.5\r\n\r\n",
        );
        let split = find(&reply, b"\r\n\r\n").unwrap();
        assert!(text(&reply[..split]).contains("Content-Encoding: gzip"));
        let mut body = String::new();
        flate2::read::GzDecoder::new(&reply[split + 4..])
            .read_to_string(&mut body)
            .unwrap();
        assert_eq!(body, "up 1.0\n");
        let reply = text(&exchange(
            address,
            "GET / HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\n\r\n",
        ));
        assert!(
            !reply.contains("Content-Encoding") && reply.ends_with("up 1.0\n"),
            "{reply}"
        );

        endpoint.stop();
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            TcpListener::bind(address).is_ok(),
            "the port is free once the endpoint stopped"
        );
    }

    /// The signal mask (`SigBlk`, hex) of a thread of this process named `name` (as the
    /// kernel keeps it: the first 15 bytes).
    fn blocked_signals(name: &str) -> Option<u64> {
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
            if status.lines().any(|line| line == format!("Name:\t{name}")) {
                let mask = status.lines().find_map(|line| line.strip_prefix("SigBlk:\t"))?;
                return u64::from_str_radix(mask, 16).ok();
            }
        }
        None
    }

    #[test]
    fn the_serving_thread_leaves_signals_to_the_app() {
        let endpoint = Endpoint::start("127.0.0.1", 0, Arc::new(String::new)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let blocked = blocked_signals("ferrotel-promet").expect("the serving thread");
        let bit = |signal: i32| 1u64 << (signal - 1);
        assert_ne!(blocked & bit(libc::SIGTERM), 0);
        assert_ne!(blocked & bit(libc::SIGINT), 0);
        assert_eq!(blocked & bit(libc::SIGSEGV), 0, "faults stay deliverable");
        drop(endpoint);
    }

    #[test]
    fn oversized_or_silent_requests_get_nothing_and_hold_nothing() {
        let endpoint = Endpoint::start("127.0.0.1", 0, Arc::new(|| "x 1.0\n".into())).unwrap();
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD * 2));
        let mut stream = TcpStream::connect(endpoint.address()).unwrap();
        let _ = stream.write_all(huge.as_bytes());
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        assert!(reply.is_empty());
        // Idle connections up to the limit do not stop another scrape from being answered
        // once they are gone.
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS)
            .map(|_| TcpStream::connect(endpoint.address()).unwrap())
            .collect();
        drop(idle);
        std::thread::sleep(Duration::from_millis(100));
        let reply = text(&exchange(endpoint.address(), "GET / HTTP/1.1\r\n\r\n"));
        assert!(reply.ends_with("x 1.0\n"), "{reply}");
        assert!(accepts_gzip("br, GZIP"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip("gzip; q=0"));
    }
}
