-- The action log: one row per event, chained by hash in `seq` order. `seq` is the position
-- in the chain, assigned by the writer holding the head row; `prev_hash` is the hash of the
-- entry before (so a verifier can tell an edit from a deletion, an insertion or a move) and
-- `hash` = SHA-256(prev_hash ‖ the entry's canonical content), hex.
CREATE TABLE audit_log (
    seq              INTEGER PRIMARY KEY,
    time             BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    actor_kind       TEXT NOT NULL,
    actor_name       TEXT NOT NULL,
    actor_credential TEXT NOT NULL,
    address          TEXT,
    user_agent       TEXT,
    namespace        TEXT,
    repository       TEXT,
    target           TEXT,
    details          TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
);
-- Searches walk one scope newest first by seq.
CREATE INDEX audit_log_by_namespace ON audit_log(namespace, seq);
CREATE INDEX audit_log_by_repository ON audit_log(repository, seq);
CREATE INDEX audit_log_by_actor ON audit_log(actor_name, seq);
CREATE INDEX audit_log_by_time ON audit_log(time);

-- The chain head: one row, locked by every append so that appenders (several nodes on
-- PostgreSQL) extend the chain one after another.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES
    (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed statements about the chain: `head` (the entry at `seq` had hash `hash`) and `cut`
-- (retention deleted every entry up to `seq`, the last of which had hash `hash`).
-- `signature` is a compact JWS by the registry's signing key over those claims.
CREATE TABLE audit_checkpoints (
    id        INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('head', 'cut')),
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    time      BIGINT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX audit_checkpoints_by_seq ON audit_checkpoints(kind, seq);
