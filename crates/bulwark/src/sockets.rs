//! Options set on every accepted connection, and the timeouts hyper does not keep.

use std::future::{Future, Ready};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use bulwark_api::IdleTimer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Unsent bytes a connection may queue in the kernel before a write waits.
///
/// Without a limit, a server faster than its client fills the send queue (up to the whole
/// send buffer) while the client's receive window is closed. Each window update the client
/// sends then makes the kernel transmit that queued data inside the client's own `recv`
/// when both ends share a host (loopback, sidecars, CI runners), so a client already
/// short of CPU also pays for the server's sending: pulls by a single-threaded client were
/// 20–40 % slower. With a small limit the server transmits from its own writes, just ahead
/// of the window, and a connection's kernel memory stays small. 16 KiB is the value
/// commonly used for HTTP servers; measured here, 4–32 KiB all did as well.
const NOTSENT_LOWAT: libc::c_int = 16 * 1024;

/// Sets `TCP_NODELAY` (responses are written whole; nothing gains from Nagle's delay) and
/// `TCP_NOTSENT_LOWAT` on each connection, then hands it to the inner acceptor (plain or
/// TLS).
#[derive(Clone, Copy, Debug, Default)]
pub struct TunedSockets;

impl<S> Accept<TcpStream, S> for TunedSockets {
    type Stream = TcpStream;
    type Service = S;
    type Future = Ready<io::Result<(TcpStream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(tune(&stream).map(|()| (stream, service)))
    }
}

fn tune(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let lowat = NOTSENT_LOWAT;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live c_int; the
        // descriptor belongs to `stream`.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&raw const lowat).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// How many bytes hyper reads to tell HTTP/1 from HTTP/2 at most: the length of HTTP/2's
/// connection preface. Every HTTP/1.1 request head is longer (it must carry `Host`).
const PROTOCOL_SNIFF_BYTES: usize = 24;

/// The timeouts of a connection that hyper's own do not cover, put on every connection the
/// inner acceptor (plain or TLS, whose handshake has its own timeout) hands over:
/// - `head`: the connection must send its first [`PROTOCOL_SNIFF_BYTES`] bytes within it.
///   hyper's header timeout covers an HTTP/1 head and the wait for the next one, but only
///   once hyper knows the protocol: until then it reads without a timer, and a client that
///   sends nothing, or part of a preface, would hold its connection for ever.
/// - `send`: a write may wait at most this long for the client to take data. A client
///   that stops reading a response (a slow-read attack, or a peer gone without a word)
///   would otherwise hold the connection, and the response's buffers, for ever.
#[derive(Clone, Debug)]
pub struct ConnectionTimeouts<A> {
    inner: A,
    head: Duration,
    send: Duration,
}

impl<A> ConnectionTimeouts<A> {
    pub fn new(inner: A, head: Duration, send: Duration) -> Self {
        ConnectionTimeouts { inner, head, send }
    }
}

impl<A, S> Accept<TcpStream, S> for ConnectionTimeouts<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
{
    type Stream = TimedConnection<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let (head, send) = (self.head, self.send);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            Ok((TimedConnection::new(stream, head, send), service))
        })
    }
}

/// A connection under [`ConnectionTimeouts`]: its reads fail with `TimedOut` if the first
/// bytes do not come in time, its writes if one waits longer than the send timeout.
pub struct TimedConnection<S> {
    inner: S,
    /// Until the first bytes arrived.
    head_deadline: Option<Pin<Box<Sleep>>>,
    received: usize,
    /// When the write now waiting first found the client's window closed.
    write_waiting_since: Option<Instant>,
    /// Writes wait briefly and often (any large response): this costs no timer work per
    /// wait.
    send_timer: IdleTimer,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl<S> TimedConnection<S> {
    fn new(inner: S, head: Duration, send: Duration) -> Self {
        TimedConnection {
            inner,
            head_deadline: Some(Box::pin(tokio::time::sleep(head))),
            received: 0,
            write_waiting_since: None,
            send_timer: IdleTimer::new(send),
        }
    }

    /// Passes on what a write-side call returned, failing it once it has waited for the
    /// client longer than the send timeout.
    fn guard_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.write_waiting_since = None;
            return polled;
        }
        let since = *self.write_waiting_since.get_or_insert_with(Instant::now);
        if self.send_timer.poll_elapsed(cx, since) {
            return Poll::Ready(Err(timed_out(
                "the client took no data within the send timeout",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedConnection<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(deadline) = &mut this.head_deadline {
            match read {
                Poll::Ready(Ok(())) => {
                    this.received += buf.filled().len() - before;
                    if this.received >= PROTOCOL_SNIFF_BYTES {
                        this.head_deadline = None;
                    }
                }
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(timed_out("no request within the head timeout")));
                }
                _ => {}
            }
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedConnection<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard_write(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection accepted through [`ConnectionTimeouts`] and its client side.
    async fn timed(head: Duration, send: Duration) -> (TimedConnection<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let (accepted, _) = accepted.unwrap();
        let acceptor = ConnectionTimeouts::new(TunedSockets, head, send);
        let (stream, ()) = acceptor.accept(accepted, ()).await.unwrap();
        (stream, client.unwrap())
    }

    #[tokio::test]
    async fn a_connection_silent_or_short_of_a_preface_times_out() {
        for sent in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
            let (mut server, mut client) =
                timed(Duration::from_millis(200), Duration::from_secs(60)).await;
            client.write_all(sent).await.unwrap();
            let started = std::time::Instant::now();
            let mut buf = [0; 64];
            let mut got = 0;
            let err = loop {
                match server.read(&mut buf).await {
                    Ok(n) => got += n,
                    Err(e) => break e,
                }
            };
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            assert_eq!(got, sent.len());
            assert!(started.elapsed() >= Duration::from_millis(150));
        }
    }

    #[tokio::test]
    async fn a_write_the_client_does_not_take_fails_after_the_send_timeout() {
        let (mut server, _client) =
            timed(Duration::from_secs(60), Duration::from_millis(200)).await;
        let chunk = vec![0; 64 * 1024];
        let mut blocked_at = None;
        let err = loop {
            let started = Instant::now();
            if let Err(e) = server.write_all(&chunk).await {
                break e;
            }
            blocked_at.get_or_insert(started);
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(blocked_at.is_some_and(|t| t.elapsed() >= Duration::from_millis(200)));
    }

    /// A client that takes one byte each `gap`: writes to it wait that long in between.
    struct SlowClient {
        gap: Duration,
        next: Pin<Box<Sleep>>,
    }

    impl SlowClient {
        fn new(gap: Duration) -> Self {
            SlowClient {
                gap,
                next: Box::pin(tokio::time::sleep(gap)),
            }
        }
    }

    impl AsyncWrite for SlowClient {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            std::task::ready!(self.next.as_mut().poll(cx));
            let next = Instant::now() + self.gap;
            self.next.as_mut().reset(next);
            Poll::Ready(Ok(1))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_send_timeout_counts_each_wait_not_the_whole_response() {
        let started = Instant::now();
        // Five waits of 0.9 s, 4.5 s in all: never a second without progress.
        let head = Duration::from_secs(60);
        let send = Duration::from_secs(1);
        let mut slow =
            TimedConnection::new(SlowClient::new(Duration::from_millis(900)), head, send);
        slow.write_all(b"12345").await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(4500));
        // A wait of 2 s fails after one.
        let started = Instant::now();
        let mut stalled = TimedConnection::new(SlowClient::new(Duration::from_secs(2)), head, send);
        let err = stalled.write_all(b"1").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), send);
    }

    #[tokio::test]
    async fn the_deadline_lifts_once_the_protocol_can_be_told() {
        let (mut server, mut client) =
            timed(Duration::from_millis(200), Duration::from_secs(60)).await;
        let head = b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n";
        client.write_all(head).await.unwrap();
        let mut buf = vec![0; head.len()];
        server.read_exact(&mut buf).await.unwrap();
        // Past the deadline, a read waits for data instead of failing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let waiting = tokio::time::timeout(Duration::from_millis(100), server.read(&mut buf)).await;
        assert!(waiting.is_err(), "the read returned {waiting:?}");
        client.write_all(b"\r\n").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn accepted_connections_get_the_options() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, _client) = tokio::join!(listener.accept(), client);
        let (accepted, _) = accepted.unwrap();
        let (stream, ()) = TunedSockets.accept(accepted, ()).await.unwrap();
        assert!(stream.nodelay().unwrap());
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into `value`.
            let rc = unsafe {
                libc::getsockopt(
                    stream.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_NOTSENT_LOWAT,
                    (&raw mut value).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            assert_eq!(value, NOTSENT_LOWAT);
        }
    }
}
