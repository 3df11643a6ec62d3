//! Options set on every accepted connection.

use std::future::Ready;
use std::io;

use axum_server::accept::Accept;
use tokio::net::TcpStream;

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

#[cfg(test)]
mod tests {
    use super::*;

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
