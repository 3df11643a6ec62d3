-- Tag lifecycle and garbage collection: expiring and immutable tags, per-namespace Time
-- Machine windows, immutability rules, and what lets GC run beside pushes (link touch
-- times, blob deletion marks, intents announced before a blob's bytes are committed).

-- A live tag with `expires_at` in the past is already gone for pulls and listings; the
-- expiry job then ends its row at `expires_at`. An immutable tag never has an expiry.
ALTER TABLE tags ADD COLUMN expires_at BIGINT;
ALTER TABLE tags ADD COLUMN immutable BIGINT NOT NULL DEFAULT 0 CHECK (immutable IN (0, 1));
CREATE INDEX tags_expiring ON tags(expires_at) WHERE end_at IS NULL AND expires_at IS NOT NULL;

-- Namespaces without a row use the configured default window.
CREATE TABLE namespace_lifecycle (
    namespace          TEXT PRIMARY KEY,
    time_machine_secs  BIGINT NOT NULL
);

-- Tags whose name fully matches `pattern` (a regular expression) become immutable when
-- pushed, in every repository of the namespace or in one.
CREATE TABLE immutability_rules (
    id          INTEGER PRIMARY KEY,
    namespace   TEXT NOT NULL,
    repository  TEXT,
    pattern     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX immutability_rules_by_namespace ON immutability_rules(namespace, repository);

-- When a link was last pushed, mounted or confirmed to a client (HEAD): an unreferenced
-- link is collected only once this is older than the grace period.
ALTER TABLE repository_blobs ADD COLUMN touched_at BIGINT NOT NULL DEFAULT 0;
UPDATE repository_blobs SET touched_at = created_at;

-- Set while GC deletes the bytes; no link may be created to a blob marked so.
ALTER TABLE blobs ADD COLUMN deleting_at BIGINT;
CREATE INDEX blobs_deleting ON blobs(deleting_at) WHERE deleting_at IS NOT NULL;

-- Announced by an upload (by its id) before it commits bytes under `digest`, removed when
-- the blob is linked: GC deletes no bytes an intent names.
CREATE TABLE blob_intents (
    id          TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX blob_intents_by_digest ON blob_intents(digest);
