-- Background jobs: a queue that any node takes work from. A job is leased to one node at a
-- time; a lease that runs out without a heartbeat (the node died) makes it claimable again.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    -- queued | running | done | failed
    status       TEXT NOT NULL,
    -- A job's identity where it must run once, e.g. "purge_uploads@<time slot>": a second
    -- enqueue with the same key is a no-op for as long as the row is kept.
    unique_key   TEXT UNIQUE,
    attempts     BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    run_after    BIGINT NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX jobs_claimable ON jobs(status, run_after);
