//! Blob uploads (monolithic, POST+PUT, chunked), mounts, and blob reads and deletes.
//!
//! Every byte is hashed once, as it streams to storage; the hash state and the blob store's
//! own state of the upload (for S3: the multipart upload and its parts) are saved with the
//! session after each chunk in one compare-and-set, so any node can take the next one (the
//! last chunk, sent with the closing `PUT`, only if the upload then fails to complete). A
//! blob becomes visible only after its digest matched, its bytes were committed, and the
//! metadata named it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::ops::Range;

use bulwark_meta::{UploadSession, now_millis};
use bulwark_oci::{Algorithm, Digest, DigestHasher, RepoName};
use bulwark_storage::{Appended, StorageError};
use futures::StreamExt;
use tokio::sync::{Mutex, MutexGuard};

use crate::body::{Metered, into_tally};
use crate::{ByteStream, ReadCheck, Registry, RegistryError};

/// How long an upload waits for collection to finish deleting the bytes it is about to
/// commit (each deletion is a few storage calls; a crashed collection resumes on its next
/// run, and meanwhile the push is refused with a retryable error).
const ANNOUNCE_ATTEMPTS: u32 = 100;
const ANNOUNCE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Where an upload stands: its id and how many bytes it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    pub id: String,
    pub size: u64,
}

pub enum MountOutcome {
    Mounted,
    /// The blob was not visible to the caller anywhere: a normal upload starts instead.
    Upload(UploadState),
}

/// How a blob download is answered.
pub enum BlobRead {
    /// The blob's bytes, or part of them.
    Bytes {
        size: u64,
        /// The byte range served, if the request asked for one.
        range: Option<Range<u64>>,
        stream: ByteStream,
    },
    /// The client fetches the blob from this URL instead (a presigned object-store URL,
    /// which honours the same `Range` header).
    Redirect(String),
}

/// A `Range: bytes=…` request, resolved against the blob's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last`, inclusive.
    Closed(u64, u64),
    /// `first-`.
    From(u64),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    fn resolve(self, size: u64) -> Option<Range<u64>> {
        let r = match self {
            ByteRange::Closed(a, b) if a <= b => a..(b.saturating_add(1)).min(size),
            ByteRange::Closed(..) => return None,
            ByteRange::From(a) => a..size,
            ByteRange::Suffix(n) => size.saturating_sub(n)..size,
        };
        (r.start < r.end).then_some(r)
    }
}

/// Serializes the requests of one upload session in this process: a chunk truncates the
/// upload to its recorded size before writing, which must not race another chunk.
pub(crate) struct UploadLocks(Vec<Mutex<()>>);

impl Default for UploadLocks {
    fn default() -> Self {
        UploadLocks((0..256).map(|_| Mutex::new(())).collect())
    }
}

impl UploadLocks {
    async fn lock(&self, id: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        self.0[(h.finish() % self.0.len() as u64) as usize]
            .lock()
            .await
    }
}

/// Chunks arrive in order: one that names its start must begin where the upload ends.
fn check_offset(session: &UploadSession, start: Option<u64>) -> Result<(), RegistryError> {
    match start {
        Some(start) if start != session.size => Err(RegistryError::ChunkOutOfOrder {
            start,
            size: session.size,
        }),
        _ => Ok(()),
    }
}

/// The hash state saved with a session.
fn saved_hasher(session: &UploadSession) -> Result<DigestHasher, RegistryError> {
    DigestHasher::restore(&session.hash_state)
        .map_err(|e| RegistryError::Meta(bulwark_meta::MetaError::Corrupt(e.to_string())))
}

impl Registry {
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadState, RegistryError> {
        self.refuse_when_full(repo, None).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let storage_state = self.blobs.begin_upload(&id).await?;
        let now = now_millis();
        self.meta
            .create_upload(&UploadSession {
                id: id.clone(),
                repository: repo.to_string(),
                size: 0,
                hash_state: DigestHasher::new(Algorithm::Sha256).save(),
                storage_state,
                created_at: now,
                updated_at: now,
            })
            .await?;
        Ok(UploadState { id, size: 0 })
    }

    async fn session(&self, repo: &RepoName, id: &str) -> Result<UploadSession, RegistryError> {
        match self.meta.upload(id).await? {
            // An upload is reachable only through the repository it was started in.
            Some(s) if s.repository == repo.as_str() => Ok(s),
            _ => Err(RegistryError::UploadUnknown),
        }
    }

    pub async fn upload_status(
        &self,
        repo: &RepoName,
        id: &str,
    ) -> Result<UploadState, RegistryError> {
        let s = self.session(repo, id).await?;
        Ok(UploadState {
            id: s.id,
            size: s.size,
        })
    }

    /// Appends a chunk. `start`, from `Content-Range`, must equal the bytes held so far;
    /// `declared_len`, from `Content-Length` or `Content-Range`, must match what arrives.
    pub async fn append_chunk(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadState, RegistryError> {
        let _guard = self.upload_locks.lock(id).await;
        let session = self.session(repo, id).await?;
        check_offset(&session, start)?;
        let appended = self.append_locked(&session, declared_len, body).await?;
        Ok(UploadState {
            id: session.id,
            size: appended.size,
        })
    }

    /// Streams `body` onto the upload and records the new size, hash state and storage
    /// state, then lets the store drop what the recorded state no longer names.
    async fn append_locked(
        &self,
        session: &UploadSession,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<Appended, RegistryError> {
        let (appended, hasher) = self
            .stream_to_upload(
                &session.id,
                &session.storage_state,
                session.size,
                saved_hasher(session)?,
                declared_len,
                body,
            )
            .await?;
        self.record_append(session, &appended, &hasher.save())
            .await?;
        Ok(appended)
    }

    /// Records in `session` what an append to it left: `appended`, and the hash state
    /// after it. Lost to another request (which took a chunk for this session meanwhile),
    /// the append's own storage state is released and the chunk refused.
    async fn record_append(
        &self,
        session: &UploadSession,
        appended: &Appended,
        hash_state: &[u8],
    ) -> Result<(), RegistryError> {
        if appended.size == session.size {
            return Ok(());
        }
        let recorded = self
            .meta
            .advance_upload(
                &session.id,
                session.size,
                appended.size,
                hash_state,
                &appended.state,
            )
            .await?;
        // (On a database error the update may or may not have happened: both states stay.)
        let (dropped, kept) = if recorded {
            (&session.storage_state, &appended.state)
        } else {
            (&appended.state, &session.storage_state)
        };
        if let Err(e) = self
            .blobs
            .release_upload_state(&session.id, dropped, kept)
            .await
        {
            // Only temporary objects stay behind; commit and abort remove them all.
            tracing::warn!(upload = %session.id, error = %e, "releasing upload state failed");
        }
        if !recorded {
            return Err(RegistryError::ChunkOutOfOrder {
                start: session.size,
                size: appended.size,
            });
        }
        Ok(())
    }

    /// Writes `body` to upload `id` (in `state`) at `offset` through `hasher`, enforcing the
    /// blob size limit and the declared length. Returns the upload's new size and state, and
    /// the hasher.
    async fn stream_to_upload(
        &self,
        id: &str,
        state: &[u8],
        offset: u64,
        hasher: DigestHasher,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<(Appended, DigestHasher), RegistryError> {
        let limit = self.limits.max_blob_bytes.saturating_sub(offset);
        let (stream, tally) = Metered::wrap(body, hasher, limit, declared_len);
        let written = self.blobs.append_upload(id, state, offset, stream).await;
        let mut tally = into_tally(tally);
        if tally.over_limit {
            return Err(RegistryError::BlobTooLarge {
                limit: self.limits.max_blob_bytes,
            });
        }
        if let (true, Some(declared)) = (tally.wrong_length, declared_len) {
            return Err(RegistryError::LengthMismatch {
                declared,
                received: tally.bytes,
            });
        }
        if let Some(e) = tally.body_failure(declared_len) {
            return Err(e);
        }
        match written {
            Ok(appended) => Ok((appended, tally.hasher)),
            // The store's own ceiling (S3: parts per upload) is a blob size limit too.
            Err(StorageError::UploadTooLarge { parts, part_size }) => {
                Err(RegistryError::BlobTooLarge {
                    limit: parts as u64 * part_size as u64,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Completes an upload with an optional last chunk (starting at `start`, from its
    /// `Content-Range`, if given), if the content matches `digest`. The last chunk is not
    /// recorded in the session when the upload completes (the session goes): only if the
    /// completion fails, so that the session still names every byte stored.
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        start: Option<u64>,
        last_chunk: Option<(ByteStream, Option<u64>)>,
    ) -> Result<(), RegistryError> {
        let _guard = self.upload_locks.lock(id).await;
        let session = self.session(repo, id).await?;
        check_offset(&session, start)?;
        let (appended, hasher) = match last_chunk {
            Some((body, declared_len)) => {
                self.stream_to_upload(
                    &session.id,
                    &session.storage_state,
                    session.size,
                    saved_hasher(&session)?,
                    declared_len,
                    body,
                )
                .await?
            }
            None => (
                Appended {
                    size: session.size,
                    state: session.storage_state.clone(),
                },
                saved_hasher(&session)?,
            ),
        };
        let hash_state = hasher.save();
        let (actual, state) = if hasher.algorithm() == digest.algorithm() {
            (hasher.finish(), appended.state.clone())
        } else {
            self.rehash_upload(id, &appended.state, appended.size, digest.algorithm())
                .await?
        };
        if actual != *digest {
            self.discard_upload(id, Some(&state)).await?;
            return Err(RegistryError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let completed = self
            .commit_and_link(id, repo, &state, appended.size, digest)
            .await;
        if completed.is_err()
            && let Err(e) = self.record_append(&session, &appended, &hash_state).await
        {
            tracing::warn!(upload = %id, error = %e, "recording the last chunk failed");
        }
        completed
    }

    /// Commits upload `id` (in `state`, `size` bytes) under `digest` and makes the blob
    /// visible in `repo`; the upload's intent and session go.
    async fn commit_and_link(
        &self,
        id: &str,
        repo: &RepoName,
        state: &[u8],
        size: u64,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        self.announce(id, digest).await?;
        self.blobs.commit_upload(id, state, size, digest).await?;
        self.meta
            .complete_upload(id, repo.as_str(), digest, size)
            .await?;
        Ok(())
    }

    /// Hashes a stored upload again with another algorithm: only for a final digest whose
    /// algorithm differs from the session's (sha512 announced at the end of a chunked upload).
    /// Returns the digest and the upload's storage state after the read.
    async fn rehash_upload(
        &self,
        id: &str,
        state: &[u8],
        size: u64,
        algorithm: Algorithm,
    ) -> Result<(Digest, Vec<u8>), RegistryError> {
        let mut hasher = DigestHasher::new(algorithm);
        let mut read = self.blobs.read_upload(id, state, size).await?;
        while let Some(chunk) = read.stream.next().await {
            hasher.update(&chunk.map_err(StorageError::Io)?);
        }
        Ok((hasher.finish(), read.state))
    }

    async fn discard_upload(&self, id: &str, state: Option<&[u8]>) -> Result<(), RegistryError> {
        self.blobs.abort_upload(id, state).await?;
        self.meta.delete_upload(id).await?;
        Ok(())
    }

    pub async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<(), RegistryError> {
        let _guard = self.upload_locks.lock(id).await;
        let session = self.session(repo, id).await?;
        self.discard_upload(id, Some(&session.storage_state)).await
    }

    /// A monolithic upload (`POST ?digest=` with the body): no session is recorded, since it
    /// completes within the request; a crash leaves only temporary bytes the purge removes
    /// (and, on S3, parts of a multipart upload, which a bucket lifecycle rule expires).
    pub async fn put_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<(), RegistryError> {
        self.refuse_when_full(repo, Some(digest)).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut state = self.blobs.begin_upload(&id).await?;
        let result = self
            .put_blob_as(&id, &mut state, repo, digest, declared_len, body)
            .await;
        if result.is_err() {
            self.discard_upload(&id, Some(&state)).await?;
        }
        result
    }

    /// `put_blob` on upload `id`, whose storage state `state` follows.
    async fn put_blob_as(
        &self,
        id: &str,
        state: &mut Vec<u8>,
        repo: &RepoName,
        digest: &Digest,
        declared_len: Option<u64>,
        body: ByteStream,
    ) -> Result<(), RegistryError> {
        // The body is hashed even when the blob is already stored: visibility in this
        // repository is earned by proving possession of the content.
        let (appended, hasher) = self
            .stream_to_upload(
                id,
                state,
                0,
                DigestHasher::new(digest.algorithm()),
                declared_len,
                body,
            )
            .await?;
        *state = appended.state;
        let actual = hasher.finish();
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        // No session to remove: this links the blob and drops the intent.
        self.commit_and_link(id, repo, state, appended.size, digest)
            .await
    }

    /// Cross-repository mount: links `digest` into `repo` from `from` (or, without `from`,
    /// from any repository holding it) if the caller may read that source; otherwise starts
    /// a normal upload.
    pub async fn mount(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
        can_read: ReadCheck<'_>,
    ) -> Result<MountOutcome, RegistryError> {
        if self
            .meta
            .repository_blob(repo.as_str(), digest)
            .await?
            .is_some()
        {
            return Ok(MountOutcome::Mounted);
        }
        self.refuse_when_full(repo, Some(digest)).await?;
        let sources: Vec<String> = match from {
            Some(from) => vec![from.to_string()],
            None => self.meta.repositories_with_blob(digest, 100).await?,
        };
        for source in sources {
            let Ok(source) = self.repo_name(&source) else {
                continue;
            };
            if !can_read(source.clone()).await {
                continue;
            }
            if let Some(size) = self.meta.repository_blob(source.as_str(), digest).await? {
                match self.meta.link_blob(repo.as_str(), digest, size).await {
                    Ok(()) => return Ok(MountOutcome::Mounted),
                    // Its bytes are being collected: the client uploads it again.
                    Err(bulwark_meta::MetaError::BlobDeleting(_)) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(MountOutcome::Upload(self.start_upload(repo).await?))
    }

    /// Size of a blob visible in `repo`, for a client checking whether to upload it (a
    /// `HEAD`): a yes keeps the blob from collection for at least half the grace period,
    /// in which the client can push the manifest that references it.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64, RegistryError> {
        let half_grace = i64::try_from(self.lifecycle.gc_grace.as_millis() / 2).unwrap_or(i64::MAX);
        self.meta
            .touch_repository_blob(
                repo.as_str(),
                digest,
                now_millis().saturating_sub(half_grace),
            )
            .await?
            .ok_or(RegistryError::BlobUnknown)
    }

    /// Announces that upload `id` commits bytes under `digest`, waiting while collection
    /// deletes that blob's bytes (a few storage calls).
    async fn announce(&self, id: &str, digest: &Digest) -> Result<(), RegistryError> {
        for _ in 0..ANNOUNCE_ATTEMPTS {
            if self.meta.announce_blob(id, digest).await? {
                return Ok(());
            }
            tokio::time::sleep(ANNOUNCE_PAUSE).await;
        }
        Err(RegistryError::Busy)
    }

    pub async fn read_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobRead, RegistryError> {
        let size = self
            .meta
            .repository_blob(repo.as_str(), digest)
            .await?
            .ok_or(RegistryError::BlobUnknown)?;
        if let Some(url) = self.blobs.download_url(digest).await? {
            return Ok(BlobRead::Redirect(url));
        }
        let served = match range {
            Some(r) => Some(
                r.resolve(size)
                    .ok_or(RegistryError::RangeNotSatisfiable { size })?,
            ),
            None => None,
        };
        let stream = match self
            .blobs
            .read(digest, served.clone().unwrap_or(0..size))
            .await
        {
            Ok(s) => s,
            Err(StorageError::NotFound) => {
                tracing::error!(%digest, "metadata names a blob whose bytes are missing");
                return Err(RegistryError::BlobUnknown);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(BlobRead::Bytes {
            size,
            range: served,
            stream,
        })
    }

    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<(), RegistryError> {
        if self.meta.unlink_blob(repo.as_str(), digest).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown)
        }
    }

    /// Removes uploads idle for longer than the configured time: sessions and their bytes,
    /// and bytes a crash left without a session. Returns how many were removed.
    pub async fn purge_stale_uploads(&self) -> Result<usize, RegistryError> {
        let ttl = self.limits.upload_ttl;
        let before = now_millis() - ttl.as_millis() as i64;
        let mut purged = 0;
        for id in self.meta.stale_uploads(before, 1000).await? {
            let _guard = self.upload_locks.lock(&id).await;
            // Read under the lock: the session may have completed meanwhile.
            if let Some(session) = self.meta.upload(&id).await? {
                self.discard_upload(&id, Some(&session.storage_state))
                    .await?;
                purged += 1;
            }
        }
        for id in self.blobs.idle_uploads(ttl).await? {
            if self.meta.upload(&id).await?.is_none() {
                let _guard = self.upload_locks.lock(&id).await;
                self.blobs.abort_upload(&id, None).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}
