-- Core registry: repositories, content-addressed blobs and who may see them, manifests
-- stored byte-for-byte, tags with lifespans, and upload sessions with their hash state.
CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE blobs (
    digest      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- A repository sees a blob only through a row here (pushed or mounted into it).
CREATE TABLE repository_blobs (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES blobs(digest),
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);

CREATE TABLE manifests (
    id             INTEGER PRIMARY KEY,
    repository_id  BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest         TEXT NOT NULL,
    media_type     TEXT NOT NULL,
    artifact_type  TEXT,
    subject_digest TEXT,
    annotations    TEXT,
    size           BIGINT NOT NULL,
    content        BLOB NOT NULL,
    created_at     BIGINT NOT NULL,
    UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repository_id, subject_digest)
    WHERE subject_digest IS NOT NULL;

-- What each manifest references: blobs (config, layers) and child manifests (indexes).
CREATE TABLE manifest_blobs (
    manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    digest      TEXT NOT NULL,
    PRIMARY KEY (manifest_id, digest)
);
CREATE INDEX manifest_blobs_by_digest ON manifest_blobs(digest);

CREATE TABLE manifest_children (
    manifest_id  BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    child_digest TEXT NOT NULL,
    PRIMARY KEY (manifest_id, child_digest)
);

-- Every tag assignment is a row; the live one has no end. History survives for the
-- Time Machine.
CREATE TABLE tags (
    id              INTEGER PRIMARY KEY,
    repository_id   BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    start_at        BIGINT NOT NULL,
    end_at          BIGINT
);
CREATE UNIQUE INDEX tags_live ON tags(repository_id, name) WHERE end_at IS NULL;
CREATE INDEX tags_by_manifest ON tags(repository_id, manifest_digest);

CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    size        BIGINT NOT NULL,
    hash_state  BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX uploads_by_age ON uploads(updated_at);
