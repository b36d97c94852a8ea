//! Accepted connections, watched: one on which nothing moves in either direction for
//! `--idle-timeout` while the server waits on it (a client gone without closing, a half-open
//! TCP connection, a request that never finishes arriving) is closed, so such connections
//! cannot pile up and hold file descriptors and memory for ever.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

pub(crate) struct Watched<S> {
    inner: S,
    idle: Duration,
    last_activity: Instant,
    /// Fires at or after `last_activity + idle`; moved on lazily, so traffic costs no timer work.
    deadline: Pin<Box<Sleep>>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, idle: Duration) -> Self {
        let now = Instant::now();
        Watched {
            inner,
            idle,
            last_activity: now,
            deadline: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// For an operation that cannot progress: an error once the connection has been idle too long.
    fn idle_check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_activity + self.idle;
            if due <= Instant::now() {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle beyond --idle-timeout",
                ));
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                self.touch();
                Poll::Ready(result)
            }
            Poll::Pending => self.idle_check(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                self.touch();
                Poll::Ready(result)
            }
            Poll::Pending => self.idle_check(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                self.touch();
                Poll::Ready(result)
            }
            Poll::Pending => self.idle_check(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => self.idle_check(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Watched<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A listener whose connections are `Watched`.
pub(crate) struct WatchedListener {
    listener: TcpListener,
    idle: Duration,
    nodelay: bool,
    /// After an accept error such as running out of file descriptors: wait, don't spin.
    backoff: Option<Pin<Box<Sleep>>>,
}

impl WatchedListener {
    pub(crate) fn new(listener: std::net::TcpListener, idle: Duration, nodelay: bool) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(WatchedListener {
            listener: TcpListener::from_std(listener)?,
            idle,
            nodelay,
            backoff: None,
        })
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<(Watched<TcpStream>, SocketAddr)> {
        loop {
            if let Some(backoff) = &mut self.backoff {
                if backoff.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.backoff = None;
            }
            match self.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok((stream, address))) => {
                    if self.nodelay {
                        // Best effort: a socket that refuses it still works, only with Nagle.
                        let _ = stream.set_nodelay(true);
                    }
                    return Poll::Ready((Watched::new(stream, self.idle), address));
                }
                // The peer gave up before we accepted: nothing to serve, take the next.
                Poll::Ready(Err(e)) if is_connection_error(&e) => {}
                Poll::Ready(Err(_)) => {
                    self.backoff = Some(Box::pin(tokio::time::sleep(Duration::from_millis(100))));
                }
            }
        }
    }
}

/// For tonic: the accepted connections as a stream that never ends.
impl tokio_stream::Stream for WatchedListener {
    type Item = io::Result<Watched<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_accept(cx).map(|(stream, _)| Some(Ok(stream)))
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

impl axum::serve::Listener for WatchedListener {
    type Io = Watched<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}
