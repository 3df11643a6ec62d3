-- What the blob store keeps about an upload in progress (opaque to the database; empty for
-- the filesystem store, the multipart upload and its parts for S3), recorded together with
-- the size and hash state so that any node can take the next chunk.
ALTER TABLE uploads ADD COLUMN storage_state BYTEA NOT NULL DEFAULT ''::bytea;
