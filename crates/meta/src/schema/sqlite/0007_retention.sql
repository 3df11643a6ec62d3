-- Retention policies: among the live tags matching `pattern` (a regular expression over
-- the whole tag name) in `repository` or, without one, in each repository of `namespace`,
-- keep the `keep_count` most recently pushed and those pushed within `keep_secs`; the
-- retention job deletes the others into the Time Machine history. At least one of the two
-- is set.
CREATE TABLE retention_policies (
    id          INTEGER PRIMARY KEY,
    namespace   TEXT NOT NULL,
    repository  TEXT,
    pattern     TEXT NOT NULL,
    keep_count  BIGINT,
    keep_secs   BIGINT,
    created_at  BIGINT NOT NULL,
    CHECK (keep_count IS NOT NULL OR keep_secs IS NOT NULL)
);
CREATE INDEX retention_policies_by_namespace ON retention_policies(namespace, repository);
