//! The S3 blob store (AWS or any S3-compatible service such as Garage), through
//! `object_store`.
//!
//! Keys, under an optional prefix:
//! - `blobs/<algorithm>/<hex>`: committed blobs, immutable.
//! - `uploads/<id>/data`: the multipart upload of an upload in progress, invisible until
//!   completed at commit.
//! - `uploads/<id>/tail-<uuid>`: the bytes after the last part.
//!
//! Chunks come in any size, but every part of a multipart upload but the last must hold at
//! least 5 MiB. An append therefore puts the upload's tail in front of its bytes, sends each
//! part as it fills, and writes what is left as a new tail object. The state — multipart id,
//! parts with their ETags, tail — goes back to the registry, which records it with the hash
//! state. A tail object is never overwritten (each append writes a new one), so the tail a
//! recorded state names holds exactly the bytes that were hashed; the one it replaces goes
//! once the registry recorded the new state (`release_upload_state`).
//!
//! Commit: a multipart upload is bound to its key when it is created, and a chunked upload's
//! digest is known only at its end, so it cannot be completed straight into its
//! content-addressed key. Commit sends the tail as the last part, completes the upload into
//! `uploads/<id>/data`, then copies that server-side to `blobs/…` (a copy appears whole or
//! not at all) and removes the temporary objects. The digest was verified from the hash
//! state before commit is called, and S3 checks every part's ETag at completion, so the
//! blob holds exactly the recorded parts, whose bytes were the ones hashed.

mod state;

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use bulwark_oci::Digest;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{
    Certificate, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
};

use self::state::{Part, Temp, UploadState};
use crate::{Appended, BlobStore, ByteStream, StorageError, UploadRead, valid_upload_id};

/// Smallest part S3 accepts (but for the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Part size by default: the memory an upload request holds at most (one part gathers
/// while nothing else is buffered). 10,000 parts of 8 MiB make 78 GiB, above the default
/// blob size limit.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Most parts one multipart upload may have.
const MAX_PARTS: usize = 10_000;
/// Largest object one server-side copy creates on AWS S3; bigger blobs are copied part by
/// part through this node.
const SINGLE_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;
/// Longest wait for the next bytes of a response. Deliberately no limit on a whole request:
/// a large blob streams to a slow client for as long as it takes.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The object a multipart upload completes into.
const DATA: &str = "data";

#[derive(Clone)]
pub struct S3Options {
    /// `http(s)://host:port` of an S3-compatible service; empty for AWS's own endpoint.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Static credentials; empty to use the environment's (instance metadata, …).
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `endpoint/bucket/key` requests. Without it, an `endpoint` must name the bucket's
    /// own host (`https://bucket.s3.example`).
    pub path_style: bool,
    /// Keys live under this prefix (several registries or tests may share a bucket).
    pub prefix: String,
    /// Bytes per multipart part, at least `MIN_PART_SIZE`.
    pub part_size: usize,
    /// When set, blob downloads redirect to presigned URLs valid this long.
    pub presign_ttl: Option<Duration>,
    /// Extra trust anchors (PEM) for an HTTPS endpoint.
    pub ca_bundle: Option<PathBuf>,
    /// Blobs larger than this are copied into place part by part instead of by one
    /// server-side copy.
    pub max_copy_bytes: u64,
}

/// Everything but the secret key, which must not reach a log.
impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("path_style", &self.path_style)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .field("presign_ttl", &self.presign_ttl)
            .field("ca_bundle", &self.ca_bundle)
            .field("max_copy_bytes", &self.max_copy_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            path_style: false,
            prefix: String::new(),
            part_size: DEFAULT_PART_SIZE,
            presign_ttl: None,
            ca_bundle: None,
            max_copy_bytes: SINGLE_COPY_LIMIT,
        }
    }
}

pub struct S3BlobStore {
    s3: AmazonS3,
    /// Empty, or ending in `/`.
    prefix: String,
    part_size: usize,
    presign_ttl: Option<Duration>,
    max_copy_bytes: u64,
}

impl S3BlobStore {
    /// Builds the client; nothing is sent until the first request.
    pub fn new(o: &S3Options) -> Result<Self, StorageError> {
        if o.bucket.is_empty() {
            return Err(StorageError::Config("the S3 bucket is not set".into()));
        }
        if o.part_size < MIN_PART_SIZE {
            return Err(StorageError::Config(format!(
                "S3 part size {} is below the minimum of {MIN_PART_SIZE} bytes",
                o.part_size
            )));
        }
        let plain_http = o.endpoint.starts_with("http://");
        let mut client = ClientOptions::new()
            .with_allow_http(plain_http)
            .with_timeout_disabled()
            .with_read_timeout(READ_TIMEOUT);
        // The bundle (configured, or AWS_CA_BUNDLE as AWS tools read it) adds trust anchors
        // for an HTTPS endpoint. Over plain HTTP no certificate is checked, so it is
        // deliberately not even read: a bundle meant for other endpoints (these machines
        // set AWS_CA_BUNDLE) never stops a plain-HTTP store.
        if let (Some(path), false) = (&o.ca_bundle, plain_http) {
            let pem = std::fs::read(path).map_err(|e| {
                StorageError::Config(format!("reading CA bundle {}: {e}", path.display()))
            })?;
            for cert in Certificate::from_pem_bundle(&pem)? {
                client = client.with_root_certificate(cert);
            }
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&o.bucket)
            .with_region(&o.region)
            .with_virtual_hosted_style_request(!o.path_style)
            .with_client_options(client);
        if !o.endpoint.is_empty() {
            builder = builder.with_endpoint(&o.endpoint);
        }
        if !o.access_key_id.is_empty() {
            builder = builder
                .with_access_key_id(&o.access_key_id)
                .with_secret_access_key(&o.secret_access_key);
        }
        let prefix = o.prefix.trim_matches('/');
        Ok(S3BlobStore {
            s3: builder.build()?,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            part_size: o.part_size,
            presign_ttl: o.presign_ttl,
            max_copy_bytes: o.max_copy_bytes,
        })
    }

    fn blob_path(&self, digest: &Digest) -> Path {
        Path::from(format!(
            "{}blobs/{}/{}",
            self.prefix,
            digest.algorithm().as_str(),
            digest.hex()
        ))
    }

    fn uploads_root(&self) -> Path {
        Path::from(format!("{}uploads", self.prefix))
    }

    fn upload_dir(&self, id: &str) -> Result<Path, StorageError> {
        Ok(self.uploads_root().join(valid_upload_id(id)?))
    }

    fn upload_object(&self, id: &str, name: &str) -> Result<Path, StorageError> {
        Ok(self.upload_dir(id)?.join(name))
    }

    /// Sends the next part, creating the multipart upload first if there is none yet.
    async fn put_part(
        &self,
        id: &str,
        st: &mut UploadState,
        payload: PutPayload,
    ) -> Result<(), StorageError> {
        if st.parts.len() >= MAX_PARTS {
            return Err(StorageError::UploadTooLarge {
                parts: MAX_PARTS,
                part_size: self.part_size,
            });
        }
        let path = self.upload_object(id, DATA)?;
        let multipart = match &st.multipart {
            Some(m) => m.clone(),
            None => {
                let m = self.s3.create_multipart(&path).await?;
                st.multipart = Some(m.clone());
                m
            }
        };
        let size = payload.content_length() as u64;
        let part = self
            .s3
            .put_part(&path, &multipart, st.parts.len(), payload)
            .await?;
        st.parts.push(Part {
            etag: part.content_id,
            size,
        });
        Ok(())
    }

    /// Streams `data` onto the upload described by `st` (whose tail goes in front).
    async fn append_to(
        &self,
        id: &str,
        st: &mut UploadState,
        data: &mut ByteStream,
    ) -> Result<(), StorageError> {
        let mut buf = PartBuffer::default();
        let mut tail_loaded = false;
        while let Some(chunk) = data.next().await {
            let chunk = chunk?;
            if chunk.is_empty() {
                continue;
            }
            if !tail_loaded {
                if let Some(tail) = &st.tail {
                    self.load_tail(id, tail, &mut buf).await?;
                }
                tail_loaded = true;
            }
            buf.push(chunk);
            while buf.len >= self.part_size {
                let part = buf.take(self.part_size);
                self.put_part(id, st, part).await?;
            }
        }
        if !tail_loaded {
            // No bytes arrived: the upload stays exactly as recorded.
            return Ok(());
        }
        st.tail = None;
        if buf.len > 0 {
            let name = format!("tail-{}", uuid::Uuid::new_v4().simple());
            let size = buf.len as u64;
            self.s3
                .put(&self.upload_object(id, &name)?, buf.take(buf.len))
                .await?;
            st.tail = Some(Temp { name, size });
        }
        Ok(())
    }

    async fn load_tail(
        &self,
        id: &str,
        tail: &Temp,
        buf: &mut PartBuffer,
    ) -> Result<(), StorageError> {
        let before = buf.len;
        let mut stream = self
            .s3
            .get(&self.upload_object(id, &tail.name)?)
            .await?
            .into_stream();
        while let Some(bytes) = stream.next().await {
            buf.push(bytes?);
        }
        let read = (buf.len - before) as u64;
        if read != tail.size {
            return Err(StorageError::CorruptState(format!(
                "tail {} holds {read} bytes, the state says {}",
                tail.name, tail.size
            )));
        }
        Ok(())
    }

    /// Gathers the upload into one object (completing the multipart upload with the tail
    /// as its last part); returns the state that names it. An empty upload has no object.
    async fn seal(&self, id: &str, mut st: UploadState) -> Result<UploadState, StorageError> {
        if st.sealed.is_some() {
            return Ok(st);
        }
        let Some(multipart) = st.multipart.clone() else {
            st.sealed = st.tail.take();
            return Ok(st);
        };
        let data = self.upload_object(id, DATA)?;
        let sealed = UploadState {
            sealed: Some(Temp {
                name: DATA.into(),
                size: st.size(),
            }),
            ..UploadState::default()
        };
        // A commit that died after completing the multipart upload left the whole upload
        // in `data` (only a completion of this recorded state can have put it there with
        // this size): its retry carries on from there.
        match self.s3.head(&data).await {
            Ok(meta) if meta.size == st.size() => return Ok(sealed),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(tail) = st.tail.take() {
            let mut buf = PartBuffer::default();
            self.load_tail(id, &tail, &mut buf).await?;
            self.put_part(id, &mut st, buf.take(buf.len)).await?;
        }
        let parts = st
            .parts
            .iter()
            .map(|p| object_store::multipart::PartId {
                content_id: p.etag.clone(),
            })
            .collect();
        self.s3.complete_multipart(&data, &multipart, parts).await?;
        Ok(sealed)
    }

    /// Copies a sealed upload to its blob key.
    async fn copy_into_place(&self, from: &Path, to: &Path, size: u64) -> Result<(), StorageError> {
        if size <= self.max_copy_bytes {
            return Ok(self.s3.copy(from, to).await?);
        }
        let multipart = self.s3.create_multipart(to).await?;
        let copied = async {
            let mut parts = Vec::new();
            let mut start = 0;
            while start < size {
                let end = (start + self.part_size as u64).min(size);
                let bytes = self.s3.get_range(from, start..end).await?;
                parts.push(
                    self.s3
                        .put_part(to, &multipart, parts.len(), bytes.into())
                        .await?,
                );
                start = end;
            }
            self.s3.complete_multipart(to, &multipart, parts).await
        }
        .await;
        if copied.is_err() {
            self.abort_multipart(to, &multipart).await;
        }
        copied?;
        Ok(())
    }

    /// Aborts a multipart upload; a failure only leaves parts a bucket lifecycle rule expires.
    async fn abort_multipart(&self, path: &Path, multipart: &str) {
        match self.s3.abort_multipart(path, &multipart.to_owned()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(%path, error = %e, "aborting a multipart upload failed"),
        }
    }

    /// Deletes every object under `uploads/<id>/`.
    async fn remove_upload_objects(&self, id: &str) -> Result<(), StorageError> {
        let listed = self
            .s3
            .list(Some(&self.upload_dir(id)?))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = self.s3.delete_stream(listed);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Bytes gathered for the next part, kept in the chunks they arrived in (no copy).
#[derive(Default)]
struct PartBuffer {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl PartBuffer {
    fn push(&mut self, bytes: Bytes) {
        self.len += bytes.len();
        self.chunks.push_back(bytes);
    }

    /// The first `n` bytes (at most `len`), splitting a chunk if needed.
    fn take(&mut self, n: usize) -> PutPayload {
        let mut out = Vec::new();
        let mut need = n;
        while need > 0 {
            let front = self.chunks.front_mut().expect("take at most len bytes");
            if front.len() <= need {
                need -= front.len();
                out.extend(self.chunks.pop_front());
            } else {
                out.push(front.split_to(need));
                need = 0;
            }
        }
        self.len -= n;
        out.into_iter().collect()
    }
}

fn not_found_as(e: object_store::Error, err: StorageError) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => err,
        e => e.into(),
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        match self.s3.head(&self.blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, digest: &Digest, range: Range<u64>) -> Result<ByteStream, StorageError> {
        if range.is_empty() {
            // S3 has no empty range: answer from the blob's existence alone.
            return match self.stat(digest).await? {
                Some(_) => Ok(Box::pin(futures::stream::empty())),
                None => Err(StorageError::NotFound),
            };
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let got = self
            .s3
            .get_opts(&self.blob_path(digest), options)
            .await
            .map_err(|e| not_found_as(e, StorageError::NotFound))?;
        Ok(Box::pin(got.into_stream().map_err(io::Error::from)))
    }

    async fn download_url(&self, digest: &Digest) -> Result<Option<String>, StorageError> {
        let Some(ttl) = self.presign_ttl else {
            return Ok(None);
        };
        let url = self
            .s3
            .signed_url(Method::GET, &self.blob_path(digest), ttl)
            .await?;
        Ok(Some(url.to_string()))
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StorageError> {
        match self.s3.delete(&self.blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn begin_upload(&self, id: &str) -> Result<Vec<u8>, StorageError> {
        valid_upload_id(id)?;
        // Nothing to create yet: the multipart upload starts when its first part is full.
        Ok(UploadState::default().encode())
    }

    async fn append_upload(
        &self,
        id: &str,
        state: &[u8],
        offset: u64,
        mut data: ByteStream,
    ) -> Result<Appended, StorageError> {
        let mut st = UploadState::decode(state)?;
        if st.sealed.is_some() {
            return Err(StorageError::CorruptState(
                "an assembled upload cannot grow".into(),
            ));
        }
        if st.size() != offset {
            return Err(StorageError::UploadSizeMismatch {
                expected: offset,
                actual: st.size(),
            });
        }
        let had_multipart = st.multipart.is_some();
        if let Err(e) = self.append_to(id, &mut st, &mut data).await {
            // A multipart upload this call created is named by no recorded state. Parts
            // sent to a recorded one are left: completion takes only the recorded parts.
            if let (false, Some(multipart)) = (had_multipart, &st.multipart) {
                self.abort_multipart(&self.upload_object(id, DATA)?, multipart)
                    .await;
            }
            return Err(e);
        }
        Ok(Appended {
            size: st.size(),
            state: st.encode(),
        })
    }

    async fn release_upload_state(
        &self,
        id: &str,
        dropped: &[u8],
        kept: &[u8],
    ) -> Result<(), StorageError> {
        let (dropped, kept) = (UploadState::decode(dropped)?, UploadState::decode(kept)?);
        if let Some(tail) = &dropped.tail
            && kept.tail.as_ref() != Some(tail)
        {
            match self.s3.delete(&self.upload_object(id, &tail.name)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(multipart) = &dropped.multipart
            && kept.multipart.as_ref() != Some(multipart)
        {
            self.abort_multipart(&self.upload_object(id, DATA)?, multipart)
                .await;
        }
        Ok(())
    }

    async fn commit_upload(
        &self,
        id: &str,
        state: &[u8],
        size: u64,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let st = UploadState::decode(state)?;
        if st.size() != size {
            return Err(StorageError::UploadSizeMismatch {
                expected: size,
                actual: st.size(),
            });
        }
        let target = self.blob_path(digest);
        if self.stat(digest).await? != Some(size) {
            match self.seal(id, st).await?.sealed {
                Some(data) => {
                    let from = self.upload_object(id, &data.name)?;
                    self.copy_into_place(&from, &target, data.size).await?;
                }
                None => {
                    self.s3.put(&target, PutPayload::new()).await?;
                }
            }
        } else if let Some(multipart) = &st.multipart {
            self.abort_multipart(&self.upload_object(id, DATA)?, multipart)
                .await;
        }
        self.remove_upload_objects(id).await
    }

    async fn abort_upload(&self, id: &str, state: Option<&[u8]>) -> Result<(), StorageError> {
        if let Some(state) = state {
            let st = UploadState::decode(state)?;
            if let (Some(multipart), None) = (&st.multipart, &st.sealed) {
                self.abort_multipart(&self.upload_object(id, DATA)?, multipart)
                    .await;
            }
        }
        self.remove_upload_objects(id).await
    }

    async fn read_upload(
        &self,
        id: &str,
        state: &[u8],
        size: u64,
    ) -> Result<UploadRead, StorageError> {
        let st = self.seal(id, UploadState::decode(state)?).await?;
        let stream: ByteStream = match &st.sealed {
            Some(data) if size > 0 => {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(0..size.min(data.size))),
                    ..GetOptions::default()
                };
                let got = self
                    .s3
                    .get_opts(&self.upload_object(id, &data.name)?, options)
                    .await
                    .map_err(|e| not_found_as(e, StorageError::UploadNotFound))?;
                Box::pin(got.into_stream().map_err(io::Error::from))
            }
            _ => Box::pin(futures::stream::empty()),
        };
        Ok(UploadRead {
            stream,
            state: st.encode(),
        })
    }

    async fn committed_blobs(&self, age: Duration) -> Result<Vec<(Digest, u64)>, StorageError> {
        let cutoff = cutoff_millis(age);
        let root = Path::from(format!("{}blobs", self.prefix));
        let mut found = Vec::new();
        let mut listed = self.s3.list(Some(&root));
        while let Some(meta) = listed.next().await {
            let meta = meta?;
            let mut parts = meta.location.prefix_match(&root).into_iter().flatten();
            let digest = match (parts.next(), parts.next(), parts.next()) {
                (Some(alg), Some(hex), None) => format!("{}:{}", alg.as_ref(), hex.as_ref())
                    .parse::<Digest>()
                    .ok(),
                _ => None,
            };
            if let Some(digest) = digest
                && meta.last_modified.timestamp_millis() < cutoff
            {
                found.push((digest, meta.size));
            }
        }
        Ok(found)
    }

    async fn idle_uploads(&self, age: Duration) -> Result<Vec<String>, StorageError> {
        let cutoff = cutoff_millis(age);
        let root = self.uploads_root();
        let mut idle = BTreeSet::new();
        let mut listed = self.s3.list(Some(&root));
        while let Some(meta) = listed.next().await {
            let meta = meta?;
            if meta.last_modified.timestamp_millis() < cutoff
                && let Some(id) = meta.location.prefix_match(&root).and_then(|mut p| p.next())
            {
                idle.insert(id.as_ref().to_owned());
            }
        }
        Ok(idle.into_iter().collect())
    }
}

/// `age` ago, in milliseconds since the Unix epoch.
fn cutoff_millis(age: Duration) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.saturating_sub(age).as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(endpoint: &str, ca_bundle: &str) -> S3Options {
        S3Options {
            endpoint: endpoint.into(),
            bucket: "b".into(),
            ca_bundle: Some(ca_bundle.into()),
            ..S3Options::default()
        }
    }

    #[test]
    fn a_ca_bundle_is_read_for_https_only() {
        let missing = "/nonexistent/ca.pem";
        assert!(S3BlobStore::new(&options("http://127.0.0.1:1", missing)).is_ok());
        assert!(matches!(
            S3BlobStore::new(&options("https://s3.example", missing)),
            Err(StorageError::Config(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("empty.pem");
        std::fs::write(&not_pem, "").unwrap();
        assert!(
            S3BlobStore::new(&options("https://s3.example", not_pem.to_str().unwrap())).is_ok()
        );
    }

    #[test]
    fn options_are_checked() {
        let small = S3Options {
            bucket: "b".into(),
            part_size: MIN_PART_SIZE - 1,
            ..S3Options::default()
        };
        assert!(matches!(
            S3BlobStore::new(&small),
            Err(StorageError::Config(_))
        ));
        assert!(matches!(
            S3BlobStore::new(&S3Options::default()),
            Err(StorageError::Config(_))
        ));
    }

    #[test]
    fn part_buffer_splits_without_losing_bytes() {
        let mut buf = PartBuffer::default();
        buf.push(Bytes::from_static(b"abc"));
        buf.push(Bytes::from_static(b"defgh"));
        let first: Vec<u8> = buf.take(4).iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(first, b"abcd");
        assert_eq!(buf.len, 4);
        let rest: Vec<u8> = buf.take(4).iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(rest, b"efgh");
        assert_eq!(buf.len, 0);
    }
}
