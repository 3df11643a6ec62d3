//! Idle timeouts: the request body's, and the timer the server's connections use too.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use tokio::time::{Instant, Sleep};

/// Tells when something has waited `timeout` since a moment the caller moves as progress
/// is made. Progress costs no timer work: the one timer is armed at the first wait and,
/// when it fires, moved on to the current deadline unless that has passed.
pub struct IdleTimer {
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl IdleTimer {
    pub fn new(timeout: Duration) -> Self {
        IdleTimer {
            timeout,
            timer: None,
        }
    }

    /// Whether `timeout` has passed since `since`; if not, `cx` is woken when it may have.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>, since: Instant) -> bool {
        let deadline = since + self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        while timer.as_mut().poll(cx).is_ready() {
            if timer.deadline() >= deadline {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
        false
    }
}

/// A request body that fails once it has sent nothing for the timeout, as if the client
/// had gone. Data arriving only moves a timestamp, so a body that keeps data coming costs
/// no timer work per frame.
pub(crate) struct IdleTimeout {
    body: Body,
    last_data: Instant,
    timer: IdleTimer,
}

impl IdleTimeout {
    /// `body` with the timeout, or as it is when it has nothing to wait for.
    pub(crate) fn wrap(body: Body, timeout: Duration) -> Body {
        if body.is_end_stream() {
            return body;
        }
        Body::new(IdleTimeout {
            body,
            last_data: Instant::now(),
            timer: IdleTimer::new(timeout),
        })
    }
}

impl HttpBody for IdleTimeout {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.last_data = Instant::now();
            return Poll::Ready(frame);
        }
        if this.timer.poll_elapsed(cx, this.last_data) {
            return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body sent nothing within the body idle timeout",
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::BodyExt;

    /// A body that sends a piece every `gap`.
    fn trickle(pieces: usize, gap: Duration) -> Body {
        let stream = futures::stream::iter(0..pieces).then(move |i| async move {
            tokio::time::sleep(gap).await;
            Ok::<_, std::io::Error>(Bytes::from(vec![i as u8; 4]))
        });
        Body::from_stream(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_sending_is_read_whole() {
        // Five seconds in all, never more than one second silent.
        let body = IdleTimeout::wrap(
            trickle(5, Duration::from_millis(999)),
            Duration::from_secs(1),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_silent_past_the_timeout_fails() {
        let started = Instant::now();
        let body = IdleTimeout::wrap(trickle(3, Duration::from_secs(2)), Duration::from_secs(1));
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("sent nothing"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_counts_from_the_last_data() {
        // The first piece at 0.9 s, the second 1.1 s later: silent longer than the timeout
        // only after the first piece.
        let body = Body::from_stream(futures::stream::iter([900u64, 1100]).then(|ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(b"data"))
        }));
        let mut body = IdleTimeout::wrap(body, Duration::from_secs(1));
        let started = Instant::now();
        assert!(body.frame().await.unwrap().is_ok());
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("sent nothing"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_millis(1900));
    }
}
