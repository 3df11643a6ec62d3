//! The filesystem blob store of the embedded default.
//!
//! Layout under the root:
//! - `blobs/<algorithm>/<first two hex>/<hex>`: committed blobs, immutable.
//! - `uploads/<id>`: bytes of uploads in progress.
//!
//! A blob appears by `rename` of a fully written and fsynced upload file, so a reader sees a
//! whole blob or none, whatever moment the process dies. The upload file is all the state an
//! upload has: the state handed to the registry is empty.

use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bulwark_oci::Digest;
use bytes::Bytes;
use futures::StreamExt;
use tokio::fs;

use crate::file_read::{BufferPool, stream_range};
use crate::{Appended, BlobStore, ByteStream, StorageError, UploadRead, valid_upload_id};

/// Read buffers kept between pulls (4 MiB at 128 KiB each); more are allocated when needed
/// and freed when done.
const POOLED_READ_BUFFERS: usize = 32;
/// Bytes of request chunks handed to one blocking write.
const WRITE_BATCH: usize = 1024 * 1024;
/// Writeback of an upload is started every this many bytes (`start_writeback`).
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;
const PAGE: u64 = 4096;

pub struct FsBlobStore {
    blobs: PathBuf,
    uploads: PathBuf,
    read_buffers: Arc<BufferPool>,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub async fn open(root: impl AsRef<Path>) -> Result<Self, StorageError> {
        let root = root.as_ref();
        let store = FsBlobStore {
            blobs: root.join("blobs"),
            uploads: root.join("uploads"),
            read_buffers: BufferPool::new(POOLED_READ_BUFFERS),
        };
        fs::create_dir_all(&store.blobs).await?;
        fs::create_dir_all(&store.uploads).await?;
        Ok(store)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.blobs
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf, StorageError> {
        Ok(self.uploads.join(valid_upload_id(id)?))
    }
}

fn not_found_as<T>(e: io::Error, err: StorageError) -> Result<T, StorageError> {
    if e.kind() == io::ErrorKind::NotFound {
        Err(err)
    } else {
        Err(StorageError::Io(e))
    }
}

/// Opens a file for reading; `missing` is the error when it does not exist.
async fn open_read(path: PathBuf, missing: StorageError) -> Result<std::fs::File, StorageError> {
    match blocking(move || Ok(std::fs::File::open(path))).await? {
        Ok(file) => Ok(file),
        Err(e) => not_found_as(e, missing),
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io(io::Error::other(e)))?
}

/// Opens an upload and takes its lock; `empty_ok` creates it if it was never written (an
/// upload's file appears with its first bytes). A write still running for an earlier
/// request on this upload (its client went away and its task was dropped) holds the lock
/// until it ends, so a retry never writes or commits beside it.
fn open_locked(path: &Path, empty_ok: bool) -> Result<std::fs::File, StorageError> {
    let opened = std::fs::OpenOptions::new()
        .write(true)
        .create(empty_ok)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) => return not_found_as(e, StorageError::UploadNotFound),
    };
    file.lock()?;
    Ok(file)
}

/// Opens an upload for writing at `offset`, dropping bytes past it.
fn open_at(path: &Path, offset: u64) -> Result<std::fs::File, StorageError> {
    let mut file = open_locked(path, offset == 0)?;
    let len = file.metadata()?.len();
    if len < offset {
        return Err(StorageError::UploadSizeMismatch {
            expected: offset,
            actual: len,
        });
    }
    if len > offset {
        file.set_len(offset)?;
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(file)
}

/// Writes request chunks to an upload on a blocking thread, a batch at a time, without
/// copying them: while one batch is written the next accumulates, so receiving and writing
/// overlap and at most two batches are held per upload. The upload is opened (`open_at`)
/// by the first batch's write, on the same blocking thread: one hand-off for a small body.
struct BatchWriter {
    /// The upload, until the first batch's write opens it at `position`.
    unopened: Option<PathBuf>,
    /// Where the next batch goes in the file.
    position: u64,
    /// How far writeback to disk was started (`start_writeback`).
    written_back: u64,
    in_flight: Option<tokio::task::JoinHandle<Result<std::fs::File, StorageError>>>,
    batch: Vec<Bytes>,
    batch_len: usize,
}

impl BatchWriter {
    /// A writer for the upload at `path` from `offset` on.
    fn new(path: PathBuf, offset: u64) -> Self {
        BatchWriter {
            unopened: Some(path),
            position: offset,
            written_back: offset,
            in_flight: None,
            batch: Vec::new(),
            batch_len: 0,
        }
    }

    async fn push(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.batch_len += chunk.len();
        self.batch.push(chunk);
        if self.batch_len >= WRITE_BATCH {
            self.send().await?;
        }
        Ok(())
    }

    /// Waits for the previous batch, then hands the current one to a blocking thread.
    async fn send(&mut self) -> Result<(), StorageError> {
        let file = match self.in_flight.take() {
            Some(write) => Some(write.await.map_err(io::Error::other)??),
            None => None,
        };
        let unopened = self.unopened.take().map(|path| (path, self.position));
        let batch = std::mem::take(&mut self.batch);
        self.position += self.batch_len as u64;
        self.batch_len = 0;
        let writeback = writeback_range(self.written_back, self.position);
        if let Some((start, len)) = writeback {
            self.written_back = start + len;
        }
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            let mut file = match (file, unopened) {
                (Some(file), _) => file,
                (None, Some((path, offset))) => open_at(&path, offset)?,
                (None, None) => unreachable!("the file is open or still to open"),
            };
            write_all_vectored(&mut file, &batch)?;
            if let Some((start, len)) = writeback {
                start_writeback(&file, start, len);
            }
            Ok(file)
        }));
        Ok(())
    }

    /// Waits for the write in flight; with `write_rest`, first hands over the last batch
    /// (and opens the upload if nothing did: an empty body still checks its offset).
    async fn finish(mut self, write_rest: bool) -> Result<(), StorageError> {
        if write_rest && (!self.batch.is_empty() || self.unopened.is_some()) {
            self.send().await?;
        }
        if let Some(write) = self.in_flight.take() {
            write.await.map_err(io::Error::other)??;
        }
        Ok(())
    }
}

/// The range (start, length) of an upload whose writeback to start once `position` bytes
/// are written and writeback was started up to `written_back`: whole pages a batch behind
/// the end (so that no write waits for a page under writeback), at least `WRITEBACK_STEP`
/// of them.
fn writeback_range(written_back: u64, position: u64) -> Option<(u64, u64)> {
    let settled = position.saturating_sub(WRITE_BATCH as u64) & !(PAGE - 1);
    (settled >= written_back + WRITEBACK_STEP).then(|| (written_back, settled - written_back))
}

/// Writes `chunks` in order with as few system calls as the kernel allows (`writev`, at
/// most `IOV_MAX` slices each): a request body arrives in pieces of 16–64 KiB, and one
/// `write` per piece cost a 256 MiB push some 8,000 system calls.
fn write_all_vectored(file: &mut std::fs::File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts writing `len` bytes of `file` from `start` to disk without waiting, as the
/// upload goes: the commit's `fdatasync` then finds little left to flush, instead of a
/// whole large blob (256 MiB took 0.13 s here, after the client had sent its last byte).
/// Only advice: what it cannot start, the commit's `fdatasync` writes.
fn start_writeback(file: &std::fs::File, start: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if let (Ok(start), Ok(len)) = (libc::off64_t::try_from(start), libc::off64_t::try_from(len)) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a descriptor we own; no memory is passed.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), start, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
}

/// Makes a rename or creation inside `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Moves the first `size` bytes of an upload to `target`, durably.
fn commit(upload: &Path, size: u64, target: &Path) -> Result<(), StorageError> {
    let file = open_locked(upload, size == 0)?;
    let actual = file.metadata()?.len();
    if actual < size {
        return Err(StorageError::UploadSizeMismatch {
            expected: size,
            actual,
        });
    }
    if target.exists() {
        std::fs::remove_file(upload)?;
        return Ok(());
    }
    if actual > size {
        file.set_len(size)?;
    }
    // Data and size must be durable before the rename names them; mtime need not be.
    file.sync_data()?;
    let dir = target.parent().expect("blob paths have a parent");
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        sync_dir(dir.parent().expect("fan-out dirs have a parent"))?;
    }
    std::fs::rename(upload, target)?;
    sync_dir(dir)?;
    Ok(())
}

/// Blobs under `root` (`<algorithm>/<xx>/<hex>`) last modified before `cutoff`; files whose
/// names are not digests (none are written there) are left out.
fn list_blobs(root: &Path, cutoff: SystemTime) -> Result<Vec<(Digest, u64)>, StorageError> {
    let mut found = Vec::new();
    for algorithm in std::fs::read_dir(root)? {
        let algorithm = algorithm?;
        let Some(alg) = algorithm.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        for fan_out in std::fs::read_dir(algorithm.path())? {
            for blob in std::fs::read_dir(fan_out?.path())? {
                let blob = blob?;
                let meta = blob.metadata()?;
                let digest = blob
                    .file_name()
                    .to_str()
                    .and_then(|hex| format!("{alg}:{hex}").parse::<Digest>().ok());
                if let Some(digest) = digest
                    && meta.modified()? < cutoff
                {
                    found.push((digest, meta.len()));
                }
            }
        }
    }
    Ok(found)
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        match fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, digest: &Digest, range: Range<u64>) -> Result<ByteStream, StorageError> {
        let file = open_read(self.blob_path(digest), StorageError::NotFound).await?;
        Ok(stream_range(file, range, Arc::clone(&self.read_buffers)))
    }

    async fn download_url(&self, _digest: &Digest) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StorageError> {
        match fs::remove_file(self.blob_path(digest)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn begin_upload(&self, id: &str) -> Result<Vec<u8>, StorageError> {
        // Nothing to create yet: the first write creates the file (`open_at`), so that a
        // session costs no file operation before its bytes arrive.
        self.upload_path(id)?;
        Ok(Vec::new())
    }

    async fn append_upload(
        &self,
        id: &str,
        _state: &[u8],
        offset: u64,
        mut data: ByteStream,
    ) -> Result<Appended, StorageError> {
        let mut writer = BatchWriter::new(self.upload_path(id)?, offset);
        let mut size = offset;
        let mut failure = None;
        while let Some(chunk) = data.next().await {
            let pushed = match chunk {
                Ok(chunk) => {
                    size += chunk.len() as u64;
                    writer.push(chunk).await
                }
                Err(e) => Err(e.into()),
            };
            if let Err(e) = pushed {
                failure = Some(e);
                break;
            }
        }
        // Always wait for the write in flight, so that no write outlives this call.
        let flushed = writer.finish(failure.is_none()).await;
        match failure {
            Some(e) => Err(e),
            None => {
                flushed?;
                Ok(Appended {
                    size,
                    state: Vec::new(),
                })
            }
        }
    }

    async fn release_upload_state(
        &self,
        _id: &str,
        _dropped: &[u8],
        _kept: &[u8],
    ) -> Result<(), StorageError> {
        Ok(())
    }

    async fn commit_upload(
        &self,
        id: &str,
        _state: &[u8],
        size: u64,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let upload = self.upload_path(id)?;
        let target = self.blob_path(digest);
        blocking(move || commit(&upload, size, &target)).await
    }

    async fn abort_upload(&self, id: &str, _state: Option<&[u8]>) -> Result<(), StorageError> {
        match fs::remove_file(self.upload_path(id)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn read_upload(
        &self,
        id: &str,
        state: &[u8],
        size: u64,
    ) -> Result<UploadRead, StorageError> {
        let path = self.upload_path(id)?;
        if size == 0 {
            // Maybe never written, so without a file: nothing to read either way.
            return Ok(UploadRead {
                stream: Box::pin(futures::stream::empty()),
                state: state.to_vec(),
            });
        }
        let file = open_read(path, StorageError::UploadNotFound).await?;
        Ok(UploadRead {
            stream: stream_range(file, 0..size, Arc::clone(&self.read_buffers)),
            state: state.to_vec(),
        })
    }

    async fn committed_blobs(&self, age: Duration) -> Result<Vec<(Digest, u64)>, StorageError> {
        let root = self.blobs.clone();
        blocking(move || list_blobs(&root, SystemTime::now() - age)).await
    }

    async fn idle_uploads(&self, age: Duration) -> Result<Vec<String>, StorageError> {
        let cutoff = SystemTime::now() - age;
        let mut idle = Vec::new();
        let mut dir = fs::read_dir(&self.uploads).await?;
        while let Some(entry) = dir.next_entry().await? {
            let modified = entry.metadata().await?.modified()?;
            if modified < cutoff
                && let Some(name) = entry.file_name().to_str()
            {
                idle.push(name.to_owned());
            }
        }
        Ok(idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of every size, more of them than one `writev` takes (`IOV_MAX` is 1,024),
    /// land in order.
    #[test]
    fn vectored_writes_keep_every_chunk_in_order() {
        let chunks: Vec<Bytes> = (0..3000u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; (i % 7) as usize + 1]))
            .chain([Bytes::from(vec![7u8; 300_000]), Bytes::new()])
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload");
        let mut file = std::fs::File::create(&path).unwrap();
        write_all_vectored(&mut file, &chunks).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), chunks.concat());
    }

    #[test]
    fn writeback_starts_on_whole_pages_a_batch_behind_in_steps() {
        const MIB: u64 = 1024 * 1024;
        // Less than a step behind the end: nothing yet.
        assert_eq!(writeback_range(0, 9 * MIB - 1), None);
        assert_eq!(writeback_range(0, 9 * MIB), Some((0, 8 * MIB)));
        // From where the last one stopped, to a page boundary a batch behind the end.
        assert_eq!(
            writeback_range(8 * MIB, 17 * MIB + 5000),
            Some((8 * MIB, 8 * MIB + 4096))
        );
        assert_eq!(writeback_range(8 * MIB, 12 * MIB), None);
    }
}
