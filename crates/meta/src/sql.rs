//! `MetaStore` over sqlx's `Any` driver. Statements use `$N` parameters and SQL that both
//! SQLite and PostgreSQL accept; schema differences live in per-dialect migrations.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use bulwark_oci::{Digest, Reference};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::batch::{
    self, Statement,
    Value::{Int, Text},
};
use crate::sql_lifecycle::{Lock, lock};
use crate::sql_manifest;
use crate::{
    LifecycleStore, MetaError, MetaStore, NewManifest, Page, Referrer, StoredManifest, TagOptions,
    UploadSession, now_millis,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// Versioned migrations, applied in order at start; a version is never edited once released.
/// Each dialect has the same versions with the same meaning.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("schema/sqlite/0001_registry.sql")),
    (
        2,
        include_str!("schema/sqlite/0002_upload_storage_state.sql"),
    ),
    (3, include_str!("schema/sqlite/0003_jobs.sql")),
    (4, include_str!("schema/sqlite/0004_identity.sql")),
    (5, include_str!("schema/sqlite/0005_lifecycle.sql")),
    (6, include_str!("schema/sqlite/0006_audit.sql")),
    (7, include_str!("schema/sqlite/0007_retention.sql")),
    (8, include_str!("schema/sqlite/0008_quotas.sql")),
    (9, include_str!("schema/sqlite/0009_security.sql")),
    (10, include_str!("schema/sqlite/0010_immutable_expiry.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("schema/postgres/0001_registry.sql")),
    (
        2,
        include_str!("schema/postgres/0002_upload_storage_state.sql"),
    ),
    (3, include_str!("schema/postgres/0003_jobs.sql")),
    (4, include_str!("schema/postgres/0004_identity.sql")),
    (5, include_str!("schema/postgres/0005_lifecycle.sql")),
    (6, include_str!("schema/postgres/0006_audit.sql")),
    (7, include_str!("schema/postgres/0007_retention.sql")),
    (8, include_str!("schema/postgres/0008_quotas.sql")),
    (9, include_str!("schema/postgres/0009_security.sql")),
    (
        10,
        include_str!("schema/postgres/0010_immutable_expiry.sql"),
    ),
];

/// Serializes migrations across nodes starting at once (a PostgreSQL advisory lock key).
const MIGRATION_LOCK: i64 = 0x6275_6c77_6172_6b01;

pub struct SqlMetaStore {
    /// Queries that only read.
    pub(crate) read: AnyPool,
    /// Writes. For SQLite a single connection, so that writers queue in-process rather than
    /// contend on the database lock; for PostgreSQL the same pool as reads.
    pub(crate) write: AnyPool,
    pub(crate) dialect: Dialect,
    pub(crate) local_locks: crate::jobs::LocalLocks,
}

/// How the metadata database is opened.
#[derive(Clone, Debug)]
pub struct SqlOptions {
    /// Connections for reads (for PostgreSQL, the whole pool).
    pub readers: u32,
    /// PostgreSQL only: longest a statement may run, in milliseconds.
    pub statement_timeout_ms: u64,
    /// SQLite only: fsync the write-ahead log at every commit. Without it (SQLite's
    /// recommended `synchronous=NORMAL` for WAL) a process crash still loses nothing and the
    /// database stays consistent, but a power loss may roll back the last commits.
    pub sqlite_sync_every_commit: bool,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            readers: 8,
            statement_timeout_ms: 30_000,
            sqlite_sync_every_commit: false,
        }
    }
}

impl SqlMetaStore {
    /// Opens (creating if needed) the embedded SQLite database at `path`.
    pub async fn open_sqlite(path: &Path, options: &SqlOptions) -> Result<Self, MetaError> {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::open(&url, options).await
    }

    /// Opens the database at `url` (`sqlite:…` or `postgres://…`) and applies pending
    /// migrations.
    pub async fn open(url: &str, options: &SqlOptions) -> Result<Self, MetaError> {
        sqlx::any::install_default_drivers();
        let store = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, options).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url, options).await?
        } else {
            return Err(MetaError::UnsupportedUrl(url.to_owned()));
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn connect_sqlite(url: &str, options: &SqlOptions) -> Result<Self, MetaError> {
        // The writer checkpoints the write-ahead log once it holds 10,000 pages (about
        // 40 MiB) rather than SQLite's 1,000: a checkpoint `fsync`s the log and the database
        // on the single writer's thread, and every write waits meanwhile. Checkpoints
        // a tenth as often, each copying the same few megabytes of distinct pages, took
        // small pushes from about 195 to 220 images/s. A log that grew past 64 MiB (a long
        // read holding a snapshot) is truncated back to that once it restarts.
        macro_rules! pragmas {
            ($synchronous:literal) => {
                concat!(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = ",
                    $synchronous,
                    "; PRAGMA wal_autocheckpoint = 10000; PRAGMA journal_size_limit = 67108864; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;"
                )
            };
        }
        let pragmas: &'static str = if options.sqlite_sync_every_commit {
            pragmas!("FULL")
        } else {
            pragmas!("NORMAL")
        };
        let pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(1)
                // An in-process database has no link to lose: a ping before each use would
                // only add a round trip to the connection's thread to every statement.
                .test_before_acquire(false)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        sqlx::raw_sql(pragmas).execute(conn).await?;
                        Ok(())
                    })
                })
        };
        Ok(SqlMetaStore {
            write: pool(1).connect(url).await?,
            read: pool(options.readers.max(1)).connect(url).await?,
            dialect: Dialect::Sqlite,
            local_locks: Default::default(),
        })
    }

    async fn connect_postgres(url: &str, options: &SqlOptions) -> Result<Self, MetaError> {
        let timeout = options.statement_timeout_ms;
        let pool = AnyPoolOptions::new()
            .max_connections(options.readers.max(2))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    let set = format!("SET statement_timeout = {timeout}");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(set))
                        .execute(conn)
                        .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        Ok(SqlMetaStore {
            read: pool.clone(),
            write: pool,
            dialect: Dialect::Postgres,
            local_locks: Default::default(),
        })
    }

    async fn migrate(&self) -> Result<(), MetaError> {
        let migrations = match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Postgres => POSTGRES_MIGRATIONS,
        };
        for &(version, sql) in migrations {
            let mut tx = self.begin_write().await?;
            if self.dialect == Dialect::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations \
                 (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *tx)
            .await?;
            let applied = sqlx::query("SELECT 1 FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if applied {
                continue;
            }
            tracing::info!(version, "applying metadata migration");
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, MetaError> {
        Ok(match self.dialect {
            // Take the write lock up front: a deferred transaction that later upgrades can
            // fail with SQLITE_BUSY instead of waiting when another process writes.
            Dialect::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.write.begin().await?,
        })
    }
}

pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn ensure_repository(tx: &mut Tx, name: &str) -> Result<i64, MetaError> {
    if let Some(id) = repository_id(&mut **tx, name).await? {
        return Ok(id);
    }
    sqlx::query(
        "INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
        .bind(name)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get(0)?)
}

pub(crate) async fn repository_id(
    conn: impl sqlx::Executor<'_, Database = sqlx::Any>,
    name: &str,
) -> Result<Option<i64>, MetaError> {
    let row = sqlx::query("SELECT id FROM repositories WHERE name = $1")
        .bind(name)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Points `tag` at `digest`: ends the live row, if it points elsewhere, and starts a new one
/// with `options`. An immutable live tag is not moved; an expired one ends at its expiry.
/// Concurrent moves of one tag (several nodes) resolve to the last writer: a row ended or
/// inserted by another transaction meanwhile sends this one round again.
pub(crate) async fn move_tag(
    tx: &mut Tx,
    repo: i64,
    tag: &str,
    digest: &str,
    now: i64,
    options: TagOptions,
) -> Result<(), MetaError> {
    for _ in 0..16 {
        let live = sqlx::query(
            "SELECT id, manifest_digest, immutable, expires_at FROM tags \
             WHERE repository_id = $1 AND name = $2 AND end_at IS NULL",
        )
        .bind(repo)
        .bind(tag)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = live {
            let id: i64 = row.try_get(0)?;
            let immutable = row.try_get::<i64, _>(2)? != 0;
            let expiry: Option<i64> = row.try_get(3)?;
            let expired = expiry.is_some_and(|e| e <= now);
            if !expired && row.try_get::<String, _>(1)? == digest {
                // Pushed again: what this push says about the tag applies. A rule making it
                // immutable now sets the expiry the rule allows; a tag immutable already
                // keeps its own.
                sqlx::query(
                    "UPDATE tags SET immutable = $2, \
                     expires_at = CASE WHEN $4 = 1 THEN $3 WHEN immutable = 1 THEN expires_at \
                     ELSE COALESCE($3, expires_at) END \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(i64::from(immutable || options.immutable))
                .bind(options.expires_at)
                .bind(i64::from(options.immutable))
                .execute(&mut **tx)
                .await?;
                return Ok(());
            }
            if immutable && !expired {
                return Err(MetaError::ImmutableTag(tag.to_owned()));
            }
            let ended = sqlx::query("UPDATE tags SET end_at = $2 WHERE id = $1 AND end_at IS NULL")
                .bind(id)
                .bind(if expired { expiry.unwrap_or(now) } else { now })
                .execute(&mut **tx)
                .await?;
            if ended.rows_affected() == 0 {
                continue;
            }
        }
        let started = sqlx::query(
            "INSERT INTO tags (repository_id, name, manifest_digest, start_at, expires_at, \
             immutable) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (repository_id, name) WHERE end_at IS NULL DO NOTHING",
        )
        .bind(repo)
        .bind(tag)
        .bind(digest)
        .bind(now)
        .bind(options.expires_at)
        .bind(i64::from(options.immutable))
        .execute(&mut **tx)
        .await?;
        if started.rows_affected() == 1 {
            return Ok(());
        }
    }
    Err(MetaError::Contention("tag"))
}

impl SqlMetaStore {
    /// Records a committed blob and makes it visible in `repository` (or touches the link
    /// if it was already); with `upload`, drops that upload's intent and session. Refused,
    /// changing nothing, while the blob's bytes are being collected.
    async fn link(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        upload: Option<&str>,
    ) -> Result<(), MetaError> {
        let now = now_millis();
        let stored = digest.to_string();
        // Each write happens only while the blob is not being collected (`$1` its digest).
        let mut statements = vec![
            Statement::new(
                concat!(
                    "INSERT INTO repositories (name, created_at) SELECT $2, $3 WHERE NOT EXISTS (",
                    blob_being_collected!("$1"),
                    ") ON CONFLICT (name) DO NOTHING"
                ),
                [Text(stored.clone()), Text(repository.into()), Int(now)],
            ),
            // A blob being collected has its row: this inserts nothing then.
            Statement::new(
                "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (digest) DO NOTHING",
                [Text(stored.clone()), Int(size as i64), Int(now)],
            ),
            Statement::new(
                concat!(
                    "INSERT INTO repository_blobs (repository_id, digest, created_at, touched_at) \
                     SELECT r.id, $1, $3, $3 FROM repositories r WHERE r.name = $2 \
                     AND NOT EXISTS (",
                    blob_being_collected!("$1"),
                    ") ON CONFLICT (repository_id, digest) \
                     DO UPDATE SET touched_at = excluded.touched_at"
                ),
                [Text(stored.clone()), Text(repository.into()), Int(now)],
            ),
        ];
        if let Some(id) = upload {
            for sql in [
                concat!(
                    "DELETE FROM blob_intents WHERE id = $2 AND NOT EXISTS (",
                    blob_being_collected!("$1"),
                    ")"
                ),
                concat!(
                    "DELETE FROM uploads WHERE id = $2 AND NOT EXISTS (",
                    blob_being_collected!("$1"),
                    ")"
                ),
            ] {
                statements.push(Statement::new(sql, [Text(stored.clone()), Text(id.into())]));
            }
        }
        // The only query with rows: a row says the link was refused.
        statements.push(Statement::new(blob_being_collected!("$1"), [Text(stored)]));
        let refused = match self.dialect {
            Dialect::Sqlite => !batch::sqlite_transaction(&self.write, statements)
                .await?
                .is_empty(),
            Dialect::Postgres => {
                let mut tx = self.begin_write().await?;
                // Collection takes the same locks when it marks blobs.
                let repo = ensure_repository(&mut tx, repository).await?;
                lock(&mut tx, self.dialect, Lock::RepositoryShared(repo)).await?;
                lock(&mut tx, self.dialect, Lock::Blob(digest)).await?;
                let refused = !batch::run_each(&mut tx, &statements).await?.is_empty();
                // Refused, the transaction is dropped: with it the repository made above.
                if !refused {
                    tx.commit().await?;
                }
                refused
            }
        };
        if refused {
            return Err(MetaError::BlobDeleting(digest.clone()));
        }
        Ok(())
    }
}

/// Ends a manifest's live tags (`$1` repository, `$2` digest) now (`$3`), or at their expiry
/// if that came first.
const END_LIVE_TAGS_AT_NOW_OR_EXPIRY: &str = "UPDATE tags \
     SET end_at = CASE WHEN expires_at IS NOT NULL AND expires_at < $3 THEN expires_at ELSE $3 END \
     WHERE repository_id = $1 AND manifest_digest = $2 AND end_at IS NULL";

/// Bound values per `IN (…)` list: far below every backend's parameter limit.
pub(crate) const IN_LIST_CHUNK: usize = 500;

/// `$first, $first+1, …` for `count` bound values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sizes of those of `digests` that repository `repo` holds, a query per chunk.
async fn held_blob_sizes(
    tx: &mut Tx,
    repo: i64,
    digests: &[&Digest],
) -> Result<HashMap<Digest, u64>, MetaError> {
    let mut held = HashMap::new();
    for chunk in digests.chunks(IN_LIST_CHUNK) {
        let sql = format!(
            "SELECT b.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
             WHERE rb.repository_id = $1 AND rb.digest IN ({})",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(repo);
        for digest in chunk {
            query = query.bind(digest.to_string());
        }
        for row in query.fetch_all(&mut **tx).await? {
            held.insert(
                parse_digest(&row.try_get::<String, _>(0)?)?,
                size(row.try_get(1)?),
            );
        }
    }
    Ok(held)
}

/// Those of `digests` stored as manifests of repository `repo`, a query per chunk.
async fn present_manifests(
    tx: &mut Tx,
    repo: i64,
    digests: &[&Digest],
) -> Result<HashSet<Digest>, MetaError> {
    let mut present = HashSet::new();
    for chunk in digests.chunks(IN_LIST_CHUNK) {
        let sql = format!(
            "SELECT digest FROM manifests WHERE repository_id = $1 AND digest IN ({})",
            placeholders(2, chunk.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(repo);
        for digest in chunk {
            query = query.bind(digest.to_string());
        }
        for row in query.fetch_all(&mut **tx).await? {
            present.insert(parse_digest(&row.try_get::<String, _>(0)?)?);
        }
    }
    Ok(present)
}

/// Records that manifest `id` references each of `digests` in `table` (`manifest_id`,
/// `column`), a multi-row insert per chunk; references already recorded stay.
async fn insert_references(
    tx: &mut Tx,
    table: &'static str,
    column: &'static str,
    id: i64,
    digests: &[&Digest],
) -> Result<(), MetaError> {
    let mut distinct: Vec<&Digest> = digests.to_vec();
    distinct.sort();
    distinct.dedup();
    for chunk in distinct.chunks(IN_LIST_CHUNK) {
        let rows = (0..chunk.len())
            .map(|i| format!("($1, ${})", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO {table} (manifest_id, {column}) VALUES {rows} ON CONFLICT DO NOTHING"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
        for digest in chunk {
            query = query.bind(digest.to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest, MetaError> {
    s.parse()
        .map_err(|_| MetaError::Corrupt(format!("stored digest {s:?} does not parse")))
}

pub(crate) fn size(v: i64) -> u64 {
    // Sizes are written from u64 values that fit i64 (the store refuses larger blobs).
    v.max(0) as u64
}

fn upload_from_row(row: &AnyRow) -> Result<UploadSession, MetaError> {
    Ok(UploadSession {
        id: row.try_get("id")?,
        repository: row.try_get("repository")?,
        size: size(row.try_get("size")?),
        hash_state: row.try_get("hash_state")?,
        storage_state: row.try_get("storage_state")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Listings come back as one aggregated string rather than a row per name: the SQLite
/// driver hands each row across threads, which dominated the cost of long tag lists. Tag
/// and repository names never contain a newline (their grammars forbid it).
pub(crate) const NAME_SEPARATOR: &str = "\n";

pub(crate) fn split_names(joined: Option<String>) -> Vec<String> {
    joined
        .map(|j| j.split(NAME_SEPARATOR).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn page_args(page: Page<'_>) -> (String, i64) {
    (page.last.unwrap_or("").to_owned(), i64::from(page.limit))
}

impl SqlMetaStore {
    /// Stores a manifest and moves its tag with `options` (see `MetaStore::put_manifest`).
    pub(crate) async fn store_manifest(
        &self,
        m: NewManifest<'_>,
        options: TagOptions,
    ) -> Result<(), MetaError> {
        if self.dialect == Dialect::Sqlite
            && let Some(statements) = sql_manifest::statements(&m, options, now_millis())
            && !batch::sqlite_transaction(&self.write, statements)
                .await?
                .is_empty()
        {
            return Ok(());
        }
        self.store_manifest_in_transaction(m, options).await
    }

    /// `store_manifest` reading what the push depends on before it writes: PostgreSQL's
    /// way (under the repository's lock), and SQLite's when the batch did not apply.
    pub(crate) async fn store_manifest_in_transaction(
        &self,
        m: NewManifest<'_>,
        options: TagOptions,
    ) -> Result<(), MetaError> {
        let now = now_millis();
        let digest = m.digest.to_string();
        let mut tx = self.begin_write().await?;
        let repo = ensure_repository(&mut tx, m.repository).await?;
        // Shared: pushes run side by side; collection of the repository waits for them.
        lock(&mut tx, self.dialect, Lock::RepositoryShared(repo)).await?;

        let blob_digests: Vec<&Digest> = m.blobs.iter().map(|&(blob, _)| blob).collect();
        let held = held_blob_sizes(&mut tx, repo, &blob_digests).await?;
        let present = present_manifests(&mut tx, repo, &m.children).await?;
        let mut missing = Vec::new();
        for &(blob, declared) in &m.blobs {
            match held.get(blob) {
                None => missing.push(blob.clone()),
                Some(&actual) if actual != declared => {
                    return Err(MetaError::SizeMismatch {
                        digest: blob.clone(),
                        declared,
                        actual,
                    });
                }
                Some(_) => {}
            }
        }
        missing.extend(
            m.children
                .iter()
                .filter(|child| !present.contains(**child))
                .map(|&child| child.clone()),
        );
        if !missing.is_empty() {
            return Err(MetaError::MissingReferences(missing));
        }

        // RETURNING gives the id of a manifest inserted now, nothing if it was stored before.
        let inserted = sqlx::query(
            "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, \
             subject_digest, annotations, size, content, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (repository_id, digest) DO NOTHING RETURNING id",
        )
        .bind(repo)
        .bind(&digest)
        .bind(m.media_type)
        .bind(m.artifact_type)
        .bind(m.subject.map(ToString::to_string))
        .bind(m.annotations_json.as_deref())
        .bind(m.content.len() as i64)
        .bind(m.content)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = inserted {
            let id: i64 = row.try_get(0)?;
            insert_references(&mut tx, "manifest_blobs", "digest", id, &blob_digests).await?;
            insert_references(
                &mut tx,
                "manifest_children",
                "child_digest",
                id,
                &m.children,
            )
            .await?;
        }

        if let Some(tag) = m.tag {
            move_tag(&mut tx, repo, tag, &digest, now, options).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl MetaStore for SqlMetaStore {
    async fn repository_exists(&self, repository: &str) -> Result<bool, MetaError> {
        Ok(repository_id(&self.read, repository).await?.is_some())
    }

    async fn repository_blob(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, MetaError> {
        let row = sqlx::query(
            "SELECT b.size FROM repository_blobs rb \
             JOIN repositories r ON r.id = rb.repository_id \
             JOIN blobs b ON b.digest = rb.digest \
             WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repository)
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.try_get(0).map(size)).transpose()?)
    }

    async fn repositories_with_blob(
        &self,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<String>, MetaError> {
        let rows = sqlx::query(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id \
             WHERE rb.digest = $1 ORDER BY r.name LIMIT $2",
        )
        .bind(digest.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, MetaError> {
        let row = sqlx::query("SELECT size FROM blobs WHERE digest = $1")
            .bind(digest.to_string())
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.try_get(0).map(size)).transpose()?)
    }

    async fn link_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), MetaError> {
        self.link(repository, digest, size, None).await
    }

    async fn complete_upload(
        &self,
        id: &str,
        repository: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<(), MetaError> {
        self.link(repository, digest, size, Some(id)).await
    }

    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool, MetaError> {
        let mut tx = self.begin_write().await?;
        let Some(repo) = repository_id(&mut *tx, repository).await? else {
            return Ok(false);
        };
        // Exclusive: a manifest push that found the link must commit its reference first,
        // or collection could take the blob between the two.
        lock(&mut tx, self.dialect, Lock::RepositoryExclusive(repo)).await?;
        let done =
            sqlx::query("DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2")
                .bind(repo)
                .bind(digest.to_string())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_upload(&self, s: &UploadSession) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO uploads \
             (id, repository, size, hash_state, storage_state, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id)
        .bind(&s.repository)
        .bind(s.size as i64)
        .bind(s.hash_state.clone())
        .bind(s.storage_state.clone())
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>, MetaError> {
        let row = sqlx::query("SELECT * FROM uploads WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    async fn advance_upload(
        &self,
        id: &str,
        from_size: u64,
        to_size: u64,
        hash_state: &[u8],
        storage_state: &[u8],
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE uploads SET size = $3, hash_state = $4, storage_state = $5, updated_at = $6 \
             WHERE id = $1 AND size = $2",
        )
        .bind(id)
        .bind(from_size as i64)
        .bind(to_size as i64)
        .bind(hash_state.to_vec())
        .bind(storage_state.to_vec())
        .bind(now_millis())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_upload(&self, id: &str) -> Result<bool, MetaError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM blob_intents WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn stale_uploads(&self, before: i64, limit: u32) -> Result<Vec<String>, MetaError> {
        let rows = sqlx::query(
            "SELECT id FROM uploads WHERE updated_at < $1 ORDER BY updated_at LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn put_manifest(&self, m: NewManifest<'_>) -> Result<(), MetaError> {
        self.put_manifest_with(m, TagOptions::default()).await
    }

    async fn manifest(
        &self,
        repository: &str,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>, MetaError> {
        let query = match reference {
            Reference::Digest(d) => sqlx::query(
                "SELECT m.digest, m.media_type, m.subject_digest, m.content FROM manifests m \
                 JOIN repositories r ON r.id = m.repository_id \
                 WHERE r.name = $1 AND m.digest = $2",
            )
            .bind(repository)
            .bind(d.to_string()),
            Reference::Tag(t) => sqlx::query(
                "SELECT m.digest, m.media_type, m.subject_digest, m.content FROM tags t \
                 JOIN repositories r ON r.id = t.repository_id \
                 JOIN manifests m ON m.repository_id = t.repository_id \
                    AND m.digest = t.manifest_digest \
                 WHERE r.name = $1 AND t.name = $2 AND t.end_at IS NULL \
                   AND (t.expires_at IS NULL OR t.expires_at > $3)",
            )
            .bind(repository)
            .bind(t.as_str())
            .bind(now_millis()),
        };
        let Some(row) = query.fetch_optional(&self.read).await? else {
            return Ok(None);
        };
        Ok(Some(StoredManifest {
            digest: parse_digest(&row.try_get::<String, _>(0)?)?,
            media_type: row.try_get(1)?,
            subject: row
                .try_get::<Option<String>, _>(2)?
                .as_deref()
                .map(parse_digest)
                .transpose()?,
            content: row.try_get(3)?,
        }))
    }

    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool, MetaError> {
        let digest = digest.to_string();
        let mut tx = self.begin_write().await?;
        let Some(repo) = repository_id(&mut *tx, repository).await? else {
            return Ok(false);
        };
        let Some(row) =
            sqlx::query("SELECT id FROM manifests WHERE repository_id = $1 AND digest = $2")
                .bind(repo)
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(false);
        };
        let id: i64 = row.try_get(0)?;
        lock(&mut tx, self.dialect, Lock::RepositoryShared(repo)).await?;
        let now = now_millis();
        let immutable = sqlx::query(
            "SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2 \
             AND end_at IS NULL AND immutable = 1 LIMIT 1",
        )
        .bind(repo)
        .bind(&digest)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = immutable {
            return Err(MetaError::ImmutableTag(row.try_get(0)?));
        }
        sqlx::query(END_LIVE_TAGS_AT_NOW_OR_EXPIRY)
            .bind(repo)
            .bind(&digest)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for stmt in [
            "DELETE FROM manifest_blobs WHERE manifest_id = $1",
            "DELETE FROM manifest_children WHERE manifest_id = $1",
            "DELETE FROM manifests WHERE id = $1",
        ] {
            sqlx::query(stmt).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool, MetaError> {
        let mut tx = self.begin_write().await?;
        let Some(repo) = repository_id(&mut *tx, repository).await? else {
            return Ok(false);
        };
        lock(&mut tx, self.dialect, Lock::RepositoryShared(repo)).await?;
        let now = now_millis();
        let Some(live) = sqlx::query(
            "SELECT id, immutable FROM tags WHERE repository_id = $1 AND name = $2 \
             AND end_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(repo)
        .bind(tag)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        if live.try_get::<i64, _>(1)? != 0 {
            return Err(MetaError::ImmutableTag(tag.to_owned()));
        }
        let done = sqlx::query("UPDATE tags SET end_at = $2 WHERE id = $1 AND end_at IS NULL")
            .bind(live.try_get::<i64, _>(0)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn tags(
        &self,
        repository: &str,
        page: Page<'_>,
    ) -> Result<Option<Vec<String>>, MetaError> {
        let (last, limit) = page_args(page);
        let row = sqlx::query(
            "SELECT string_agg(name, $4 ORDER BY name) FROM ( \
                SELECT t.name AS name FROM tags t JOIN repositories r ON r.id = t.repository_id \
                WHERE r.name = $1 AND t.end_at IS NULL AND t.name > $2 \
                  AND (t.expires_at IS NULL OR t.expires_at > $5) \
                ORDER BY t.name LIMIT $3) page",
        )
        .bind(repository)
        .bind(last)
        .bind(limit)
        .bind(NAME_SEPARATOR)
        .bind(now_millis())
        .fetch_one(&self.read)
        .await?;
        let names = split_names(row.try_get(0)?);
        // An empty page may mean no such repository; only then is it worth asking.
        if names.is_empty() && !self.repository_exists(repository).await? {
            return Ok(None);
        }
        Ok(Some(names))
    }

    async fn repositories(&self, page: Page<'_>) -> Result<Vec<String>, MetaError> {
        let (last, limit) = page_args(page);
        let row = sqlx::query(
            "SELECT string_agg(name, $3 ORDER BY name) FROM ( \
                SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2) page",
        )
        .bind(last)
        .bind(limit)
        .bind(NAME_SEPARATOR)
        .fetch_one(&self.read)
        .await?;
        Ok(split_names(row.try_get(0)?))
    }

    async fn referrers(
        &self,
        repository: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, MetaError> {
        let rows = sqlx::query(
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations \
             FROM manifests m JOIN repositories r ON r.id = m.repository_id \
             WHERE r.name = $1 AND m.subject_digest = $2 \
               AND ($3 IS NULL OR m.artifact_type = $3) \
             ORDER BY m.id",
        )
        .bind(repository)
        .bind(subject.to_string())
        .bind(artifact_type)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Referrer {
                    digest: parse_digest(&r.try_get::<String, _>(0)?)?,
                    media_type: r.try_get(1)?,
                    size: size(r.try_get(2)?),
                    artifact_type: r.try_get(3)?,
                    annotations_json: r.try_get(4)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SQLite connection, the writer's and the readers', runs with the settings.
    #[tokio::test]
    async fn sqlite_connections_have_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        for (every_commit, synchronous) in [(false, 1), (true, 2)] {
            let options = SqlOptions {
                sqlite_sync_every_commit: every_commit,
                ..SqlOptions::default()
            };
            let path = dir.path().join(format!("meta-{every_commit}.db"));
            let store = SqlMetaStore::open_sqlite(&path, &options).await.unwrap();
            for pool in [&store.write, &store.read] {
                let setting = |pragma: &'static str| async move {
                    sqlx::query_scalar::<_, i64>(pragma)
                        .fetch_one(pool)
                        .await
                        .unwrap()
                };
                assert_eq!(setting("PRAGMA synchronous").await, synchronous);
                assert_eq!(setting("PRAGMA wal_autocheckpoint").await, 10_000);
                assert_eq!(setting("PRAGMA journal_size_limit").await, 64 << 20);
                assert_eq!(setting("PRAGMA foreign_keys").await, 1);
            }
        }
    }
}
