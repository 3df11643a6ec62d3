//! Hashes and counts request bytes as they stream to storage, one pass over the data, and
//! fails the stream on a rule it breaks, so that storage records nothing of such a body.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bulwark_oci::DigestHasher;
use bytes::Bytes;
use futures::Stream;

use crate::{ByteStream, RegistryError};

/// What the stream saw, read back once storage has consumed it.
pub(crate) struct Tally {
    pub hasher: DigestHasher,
    pub bytes: u64,
    pub over_limit: bool,
    /// The body did not hold the length its request declared.
    pub wrong_length: bool,
    pub body_error: Option<io::Error>,
}

pub(crate) struct Metered {
    inner: ByteStream,
    tally: Arc<Mutex<Tally>>,
    limit: u64,
    declared: Option<u64>,
}

impl Metered {
    /// Wraps `inner`; the stream fails once more than `limit` bytes went through, or when
    /// the body turns out longer or shorter than `declared`.
    pub fn wrap(
        inner: ByteStream,
        hasher: DigestHasher,
        limit: u64,
        declared: Option<u64>,
    ) -> (ByteStream, Arc<Mutex<Tally>>) {
        let tally = Arc::new(Mutex::new(Tally {
            hasher,
            bytes: 0,
            over_limit: false,
            wrong_length: false,
            body_error: None,
        }));
        let stream = Metered {
            inner,
            tally: tally.clone(),
            limit,
            declared,
        };
        (Box::pin(stream), tally)
    }
}

fn wrong_length() -> io::Error {
    io::Error::other("request body length differs from the declared length")
}

impl Stream for Metered {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (limit, declared) = (self.limit, self.declared);
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let mut t = self.tally.lock().expect("tally lock");
                t.bytes += chunk.len() as u64;
                if t.bytes > limit {
                    t.over_limit = true;
                    return Poll::Ready(Some(Err(io::Error::other("blob size limit exceeded"))));
                }
                if declared.is_some_and(|d| t.bytes > d) {
                    t.wrong_length = true;
                    return Poll::Ready(Some(Err(wrong_length())));
                }
                t.hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                let mut t = self.tally.lock().expect("tally lock");
                if declared.is_some_and(|d| t.bytes != d) && !t.wrong_length {
                    t.wrong_length = true;
                    return Poll::Ready(Some(Err(wrong_length())));
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let kind = e.kind();
                self.tally.lock().expect("tally lock").body_error = Some(e);
                Poll::Ready(Some(Err(io::Error::new(kind, "request body failed"))))
            }
            other => other,
        }
    }
}

impl Tally {
    /// The error for a body that failed, if it did: one that ended before the length its
    /// request declared is a length mismatch rather than a broken upload.
    pub fn body_failure(&mut self, declared_len: Option<u64>) -> Option<RegistryError> {
        let e = self.body_error.take()?;
        Some(match declared_len {
            Some(declared) if self.bytes < declared => RegistryError::LengthMismatch {
                declared,
                received: self.bytes,
            },
            _ => RegistryError::Body(e),
        })
    }
}

/// Takes the tally back from a consumed stream.
pub(crate) fn into_tally(tally: Arc<Mutex<Tally>>) -> Tally {
    match Arc::try_unwrap(tally) {
        Ok(m) => m.into_inner().expect("tally lock"),
        Err(shared) => {
            // Storage dropped the stream late; copy out what it saw.
            let mut t = shared.lock().expect("tally lock");
            Tally {
                hasher: t.hasher.clone(),
                bytes: t.bytes,
                over_limit: t.over_limit,
                wrong_length: t.wrong_length,
                body_error: t.body_error.take(),
            }
        }
    }
}
