-- Vulnerability scanning. Records are OSV JSON as imported, by id; `generation` counts the
-- imports that changed something, so every node sees when to reload and what to re-match.
CREATE TABLE vulnerabilities (
    id          TEXT PRIMARY KEY,
    modified    TEXT,
    record      TEXT NOT NULL,
    imported_at BIGINT NOT NULL
);
CREATE TABLE vulnerability_data (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
INSERT INTO vulnerability_data (id, generation, updated_at) VALUES (1, 0, 0);
-- What indexing found in one layer (the scanner's serialized index, in `format`), or why
-- it could not: read once, reused by every image sharing the layer.
CREATE TABLE layer_indexes (
    digest      TEXT PRIMARY KEY,
    format      BIGINT NOT NULL,
    status      TEXT NOT NULL,
    reason      TEXT,
    data        BLOB,
    created_at  BIGINT NOT NULL
);
-- One scan per manifest digest (the same bytes in any repository): its status, the layers
-- its inventory is assembled from (re-matching reads their indexes, never the layers),
-- the findings and grade as of `generation`.
CREATE TABLE manifest_scans (
    digest          TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    reason          TEXT,
    layers          TEXT NOT NULL,
    findings        TEXT NOT NULL,
    grade           TEXT,
    next_drop_date  TEXT,
    generation      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX manifest_scans_to_rematch ON manifest_scans(status, generation);
-- Scans name the repositories holding a manifest (events), and rows of manifests no
-- repository holds any more are pruned: both look manifests up by digest alone.
CREATE INDEX manifests_by_digest ON manifests(digest);
-- Pull policies: refuse pulls of images graded worse than `max_grade` or carrying a
-- vulnerability at or above `block_severity`, but for the ids in `allowlist` (a JSON
-- array). Per repository, or (`repository` = '') for every repository of the namespace.
CREATE TABLE scan_policies (
    namespace       TEXT NOT NULL,
    repository      TEXT NOT NULL,
    max_grade       TEXT,
    block_severity  TEXT,
    allowlist       TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (namespace, repository)
);
