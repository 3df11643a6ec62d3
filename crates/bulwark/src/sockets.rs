//! Options set on every accepted connection, and the deadline for its first bytes.

use std::future::{Future, Ready};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

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

/// Closes a connection that has not sent its first [`PROTOCOL_SNIFF_BYTES`] bytes within
/// `timeout` of being accepted (after the inner acceptor's TLS handshake, which has its own
/// timeout). hyper's header timeout covers an HTTP/1 head and the wait for the next one, but
/// only once hyper knows the protocol: until then it reads without a timer, and a client
/// that sends nothing, or part of a preface, would hold its connection for ever.
#[derive(Clone, Debug)]
pub struct FirstBytesDeadline<A> {
    inner: A,
    timeout: Duration,
}

impl<A> FirstBytesDeadline<A> {
    pub fn new(inner: A, timeout: Duration) -> Self {
        FirstBytesDeadline { inner, timeout }
    }
}

impl<A, S> Accept<TcpStream, S> for FirstBytesDeadline<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
{
    type Stream = Deadlined<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = self.inner.accept(stream, service);
        let timeout = self.timeout;
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let deadline = Some(Box::pin(tokio::time::sleep(timeout)));
            Ok((
                Deadlined {
                    inner: stream,
                    deadline,
                    received: 0,
                },
                service,
            ))
        })
    }
}

/// A connection under [`FirstBytesDeadline`]: reads fail with `TimedOut` once the deadline
/// passes before the first bytes arrived; afterwards it is the inner stream unchanged.
pub struct Deadlined<S> {
    inner: S,
    /// Until the first bytes arrived.
    deadline: Option<Pin<Box<Sleep>>>,
    received: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadlined<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Some(deadline) = &mut this.deadline {
            match read {
                Poll::Ready(Ok(())) => {
                    this.received += buf.filled().len() - before;
                    if this.received >= PROTOCOL_SNIFF_BYTES {
                        this.deadline = None;
                    }
                }
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the head timeout",
                    )));
                }
                _ => {}
            }
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlined<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection accepted through [`FirstBytesDeadline`] and its client side.
    async fn deadlined(timeout: Duration) -> (Deadlined<TcpStream>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, client) = tokio::join!(listener.accept(), client);
        let (accepted, _) = accepted.unwrap();
        let acceptor = FirstBytesDeadline::new(TunedSockets, timeout);
        let (stream, ()) = acceptor.accept(accepted, ()).await.unwrap();
        (stream, client.unwrap())
    }

    #[tokio::test]
    async fn a_connection_silent_or_short_of_a_preface_times_out() {
        for sent in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
            let (mut server, mut client) = deadlined(Duration::from_millis(200)).await;
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
    async fn the_deadline_lifts_once_the_protocol_can_be_told() {
        let (mut server, mut client) = deadlined(Duration::from_millis(200)).await;
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
