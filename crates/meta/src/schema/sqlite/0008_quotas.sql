-- Namespace quotas: at most one per namespace (Quay's model), in bytes, with limits at a
-- percentage of it: `warning` limits emit an event when usage crosses them, the `reject`
-- limit (one at most) refuses pushes that would exceed it. Usage itself is not stored: it
-- is computed from the namespace's links and manifests when a quota exists.
CREATE TABLE namespace_quotas (
    id           INTEGER PRIMARY KEY,
    namespace    TEXT NOT NULL UNIQUE,
    limit_bytes  BIGINT NOT NULL CHECK (limit_bytes > 0),
    created_at   BIGINT NOT NULL
);

-- `crossed_at` (warning limits): when a push took usage to or past the threshold; cleared
-- when a later push finds usage below it again, so each crossing warns once.
CREATE TABLE quota_limits (
    id                 INTEGER PRIMARY KEY,
    quota_id           BIGINT NOT NULL REFERENCES namespace_quotas(id) ON DELETE CASCADE,
    kind               TEXT NOT NULL CHECK (kind IN ('warning', 'reject')),
    threshold_percent  BIGINT NOT NULL CHECK (threshold_percent BETWEEN 1 AND 100),
    crossed_at         BIGINT,
    UNIQUE (quota_id, kind, threshold_percent)
);
CREATE UNIQUE INDEX quota_limits_one_reject ON quota_limits(quota_id) WHERE kind = 'reject';
