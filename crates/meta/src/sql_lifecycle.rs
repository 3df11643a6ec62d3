//! `LifecycleStore` over SQL, and the locks that let garbage collection run beside pushes.
//!
//! Two kinds of PostgreSQL transaction-scoped advisory locks (SQLite needs none: its
//! writers take turns on one connection):
//! - a repository lock, shared by every transaction that changes the repository's tags,
//!   manifests or links and exclusive for its collection, so that collection sees a
//!   repository no push is half-way through;
//! - a blob lock, taken by whatever creates a link to a blob or announces an intent to
//!   commit its bytes, and by collection when it marks the blob for deletion; after taking
//!   it each statement sees what the other committed (READ COMMITTED reads a fresh snapshot
//!   per statement), so a blob is never marked while a link or intent is being made.

use std::collections::HashSet;

use bulwark_oci::Digest;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::{
    Dialect, IN_LIST_CHUNK, Tx, move_tag, parse_digest, placeholders, repository_id,
    size as stored_size,
};
use crate::{
    ExpiredTag, GraphManifest, HistoryQuery, ImmutabilityRule, Keep, LifecycleStore, MetaError,
    NewManifest, RepositoryCollected, RepositoryCutoffs, RetentionPolicy, SqlMetaStore, TagOptions,
    TagRecord, UnreachableFn, now_millis,
};

/// Lock classes (the first key of PostgreSQL's two-key advisory locks, a key space apart
/// from the one-key locks of migrations and singletons).
const REPOSITORY_CLASS: i32 = 0x6c63_0001;
const BLOB_CLASS: i32 = 0x6c63_0002;

pub(crate) enum Lock<'a> {
    RepositoryShared(i64),
    RepositoryExclusive(i64),
    Blob(&'a Digest),
}

/// Takes `lock` until the transaction ends. Keys are 32-bit: a collision only makes two
/// unrelated transactions wait for each other.
pub(crate) async fn lock(tx: &mut Tx, dialect: Dialect, lock: Lock<'_>) -> Result<(), MetaError> {
    if dialect == Dialect::Sqlite {
        return Ok(());
    }
    let (sql, class, key) = match lock {
        Lock::RepositoryShared(id) => (
            "SELECT pg_advisory_xact_lock_shared($1, $2)",
            REPOSITORY_CLASS,
            id as i32,
        ),
        Lock::RepositoryExclusive(id) => (
            "SELECT pg_advisory_xact_lock($1, $2)",
            REPOSITORY_CLASS,
            id as i32,
        ),
        Lock::Blob(digest) => (
            "SELECT pg_advisory_xact_lock($1, $2)",
            BLOB_CLASS,
            digest_key(digest),
        ),
    };
    sqlx::query(sql)
        .bind(class)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The first 32 bits of the digest's hash value: already uniformly spread.
fn digest_key(digest: &Digest) -> i32 {
    let s = digest.to_string();
    let hex = s.split_once(':').map_or(s.as_str(), |(_, h)| h);
    hex.get(..8)
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0) as i32
}

/// When a tag row stopped pointing at its manifest as of `$2`: its end, or its expiry once
/// past.
const EFFECTIVE_END: &str =
    "COALESCE(t.end_at, CASE WHEN t.expires_at <= $2 THEN t.expires_at END)";

fn tag_from_row(row: &AnyRow) -> Result<TagRecord, MetaError> {
    Ok(TagRecord {
        name: row.try_get("name")?,
        manifest_digest: parse_digest(&row.try_get::<String, _>("manifest_digest")?)?,
        start_at: row.try_get("start_at")?,
        end_at: row.try_get("effective_end")?,
        expires_at: row.try_get("expires_at")?,
        immutable: row.try_get::<i64, _>("immutable")? != 0,
    })
}

fn rule_from_row(row: &AnyRow) -> Result<ImmutabilityRule, MetaError> {
    Ok(ImmutabilityRule {
        id: row.try_get("id")?,
        namespace: row.try_get("namespace")?,
        repository: row.try_get("repository")?,
        pattern: row.try_get("pattern")?,
        allow_expiry: row.try_get::<i64, _>("allow_expiry")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

fn policy_from_row(row: &AnyRow) -> Result<RetentionPolicy, MetaError> {
    let keep_count: Option<i64> = row.try_get("keep_count")?;
    let keep_secs: Option<i64> = row.try_get("keep_secs")?;
    Ok(RetentionPolicy {
        id: row.try_get("id")?,
        namespace: row.try_get("namespace")?,
        repository: row.try_get("repository")?,
        pattern: row.try_get("pattern")?,
        keep_count: keep_count.map(|n| n.clamp(0, i64::from(u32::MAX)) as u32),
        keep_secs: keep_secs.map(|n| n.max(0) as u64),
        created_at: row.try_get("created_at")?,
    })
}

impl SqlMetaStore {
    /// Opens a write transaction on an existing repository, holding its shared lock.
    async fn repository_tx(&self, repository: &str) -> Result<Option<(Tx, i64)>, MetaError> {
        let mut tx = self.begin_write().await?;
        let Some(repo) = repository_id(&mut *tx, repository).await? else {
            return Ok(None);
        };
        lock(&mut tx, self.dialect, Lock::RepositoryShared(repo)).await?;
        Ok(Some((tx, repo)))
    }

    /// The live, unexpired row of a tag: its id and whether it is immutable.
    async fn live_tag(
        tx: &mut Tx,
        repo: i64,
        tag: &str,
        now: i64,
    ) -> Result<Option<(i64, bool)>, MetaError> {
        let row = sqlx::query(
            "SELECT id, immutable FROM tags WHERE repository_id = $1 AND name = $2 \
             AND end_at IS NULL AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(repo)
        .bind(tag)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? != 0)))
            .transpose()
    }

    /// Deletes the manifests `ids` of repository `repo` with what they reference.
    async fn delete_manifests(tx: &mut Tx, ids: &[i64]) -> Result<(), MetaError> {
        for chunk in ids.chunks(500) {
            // Ids come from the database as integers: nothing to inject.
            let list = chunk
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            for table in [
                "manifest_blobs WHERE manifest_id",
                "manifest_children WHERE manifest_id",
                "manifests WHERE id",
            ] {
                let sql = format!("DELETE FROM {table} IN ({list})");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    async fn manifest_graph(tx: &mut Tx, repo: i64) -> Result<Vec<GraphManifest>, MetaError> {
        let tagged: std::collections::HashSet<String> =
            sqlx::query("SELECT DISTINCT manifest_digest FROM tags WHERE repository_id = $1")
                .bind(repo)
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
        let mut children: std::collections::HashMap<i64, Vec<String>> = Default::default();
        for row in sqlx::query(
            "SELECT c.manifest_id, c.child_digest FROM manifest_children c \
             JOIN manifests m ON m.id = c.manifest_id WHERE m.repository_id = $1",
        )
        .bind(repo)
        .fetch_all(&mut **tx)
        .await?
        {
            children
                .entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
        sqlx::query(
            "SELECT id, digest, created_at, subject_digest FROM manifests WHERE repository_id = $1",
        )
        .bind(repo)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| {
            let id: i64 = row.try_get(0)?;
            let digest: String = row.try_get(1)?;
            Ok(GraphManifest {
                id,
                tagged: tagged.contains(&digest),
                digest,
                created_at: row.try_get(2)?,
                subject: row.try_get(3)?,
                children: children.remove(&id).unwrap_or_default(),
            })
        })
        .collect()
    }
}

#[async_trait::async_trait]
impl LifecycleStore for SqlMetaStore {
    async fn put_manifest_with(
        &self,
        manifest: NewManifest<'_>,
        tag: TagOptions,
    ) -> Result<(), MetaError> {
        self.store_manifest(manifest, tag).await
    }

    async fn tag_history(
        &self,
        repository: &str,
        q: &HistoryQuery<'_>,
    ) -> Result<Option<Vec<TagRecord>>, MetaError> {
        let Some(repo) = repository_id(&self.read, repository).await? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT t.name, t.manifest_digest, t.start_at, {EFFECTIVE_END} AS effective_end, \
             t.expires_at, t.immutable FROM tags t WHERE t.repository_id = $1 \
             AND ($3 IS NULL OR t.name = $3) \
             AND ($4 = 0 OR {EFFECTIVE_END} IS NULL) \
             AND ($5 IS NULL OR (t.start_at <= $5 \
                  AND (COALESCE(t.end_at, t.expires_at) IS NULL \
                       OR COALESCE(t.end_at, t.expires_at) > $5))) \
             AND ($6 IS NULL OR {EFFECTIVE_END} IS NULL OR {EFFECTIVE_END} >= $6) \
             ORDER BY t.start_at DESC, t.id DESC LIMIT $7 OFFSET $8"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(repo)
            .bind(now_millis())
            .bind(q.tag)
            .bind(i64::from(q.only_active))
            .bind(q.at)
            .bind(q.ended_since)
            .bind(i64::from(q.limit))
            .bind(i64::from(q.offset))
            .fetch_all(&self.read)
            .await?;
        Ok(Some(
            rows.iter().map(tag_from_row).collect::<Result<_, _>>()?,
        ))
    }

    async fn restore_tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &Digest,
        ended_since: i64,
        options: TagOptions,
    ) -> Result<bool, MetaError> {
        let Some((mut tx, repo)) = self.repository_tx(repository).await? else {
            return Ok(false);
        };
        let digest = digest.to_string();
        let in_window = sqlx::query(
            "SELECT 1 FROM tags WHERE repository_id = $1 AND name = $2 AND manifest_digest = $3 \
             AND (COALESCE(end_at, expires_at) IS NULL OR COALESCE(end_at, expires_at) >= $4) \
             LIMIT 1",
        )
        .bind(repo)
        .bind(tag)
        .bind(&digest)
        .bind(ended_since)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        let stored =
            sqlx::query("SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2")
                .bind(repo)
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if !(in_window && stored) {
            return Ok(false);
        }
        move_tag(&mut tx, repo, tag, &digest, now_millis(), options).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_tag_expiry(
        &self,
        repository: &str,
        tag: &str,
        expires_at: Option<i64>,
        immutable_may_expire: bool,
    ) -> Result<bool, MetaError> {
        let Some((mut tx, repo)) = self.repository_tx(repository).await? else {
            return Ok(false);
        };
        let Some((id, immutable)) = Self::live_tag(&mut tx, repo, tag, now_millis()).await? else {
            return Ok(false);
        };
        if immutable && expires_at.is_some() && !immutable_may_expire {
            return Err(MetaError::ImmutableTag(tag.to_owned()));
        }
        sqlx::query("UPDATE tags SET expires_at = $2 WHERE id = $1")
            .bind(id)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_tag_immutable(
        &self,
        repository: &str,
        tag: &str,
        immutable: bool,
    ) -> Result<bool, MetaError> {
        let Some((mut tx, repo)) = self.repository_tx(repository).await? else {
            return Ok(false);
        };
        let Some((id, _)) = Self::live_tag(&mut tx, repo, tag, now_millis()).await? else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE tags SET immutable = $2, \
             expires_at = CASE WHEN $2 = 1 THEN NULL ELSE expires_at END WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(immutable))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn purge_tag(&self, repository: &str, tag: &str) -> Result<u64, MetaError> {
        let Some((mut tx, repo)) = self.repository_tx(repository).await? else {
            return Ok(0);
        };
        if let Some((_, true)) = Self::live_tag(&mut tx, repo, tag, now_millis()).await? {
            return Err(MetaError::ImmutableTag(tag.to_owned()));
        }
        let done = sqlx::query("DELETE FROM tags WHERE repository_id = $1 AND name = $2")
            .bind(repo)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn expire_tags(&self, now: i64, limit: u32) -> Result<Vec<ExpiredTag>, MetaError> {
        let due = sqlx::query(
            "SELECT t.id, t.repository_id, r.name, t.name, t.manifest_digest, t.expires_at \
             FROM tags t JOIN repositories r ON r.id = t.repository_id \
             WHERE t.end_at IS NULL AND t.expires_at <= $1 \
             ORDER BY t.expires_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        let mut expired = Vec::with_capacity(due.len());
        for row in due {
            let mut tx = self.begin_write().await?;
            lock(
                &mut tx,
                self.dialect,
                Lock::RepositoryShared(row.try_get(1)?),
            )
            .await?;
            let done = sqlx::query(
                "UPDATE tags SET end_at = expires_at \
                 WHERE id = $1 AND end_at IS NULL AND expires_at <= $2",
            )
            .bind(row.try_get::<i64, _>(0)?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            if done.rows_affected() == 1 {
                expired.push(ExpiredTag {
                    repository: row.try_get(2)?,
                    tag: row.try_get(3)?,
                    manifest_digest: parse_digest(&row.try_get::<String, _>(4)?)?,
                    expired_at: row.try_get(5)?,
                });
            }
        }
        Ok(expired)
    }

    async fn time_machine_window(&self, namespace: &str) -> Result<Option<u64>, MetaError> {
        let row =
            sqlx::query("SELECT time_machine_secs FROM namespace_lifecycle WHERE namespace = $1")
                .bind(namespace)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|r| r.try_get(0).map(stored_size)).transpose()?)
    }

    async fn set_time_machine_window(&self, namespace: &str, secs: u64) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO namespace_lifecycle (namespace, time_machine_secs) VALUES ($1, $2) \
             ON CONFLICT (namespace) DO UPDATE SET time_machine_secs = excluded.time_machine_secs",
        )
        .bind(namespace)
        .bind(secs.min(i64::MAX as u64) as i64)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn immutability_rules(
        &self,
        namespace: &str,
        repository: Option<&str>,
    ) -> Result<Vec<ImmutabilityRule>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM immutability_rules WHERE namespace = $1 \
             AND ($2 IS NULL OR repository IS NULL OR repository = $2) ORDER BY id",
        )
        .bind(namespace)
        .bind(repository)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn add_immutability_rule(
        &self,
        namespace: &str,
        repository: Option<&str>,
        pattern: &str,
        allow_expiry: bool,
    ) -> Result<ImmutabilityRule, MetaError> {
        let row = sqlx::query(
            "INSERT INTO immutability_rules (namespace, repository, pattern, created_at, \
             allow_expiry) VALUES ($1, $2, $3, $4, $5) RETURNING *",
        )
        .bind(namespace)
        .bind(repository)
        .bind(pattern)
        .bind(now_millis())
        .bind(i64::from(allow_expiry))
        .fetch_one(&self.write)
        .await?;
        rule_from_row(&row)
    }

    async fn delete_immutability_rule(&self, namespace: &str, id: i64) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM immutability_rules WHERE namespace = $1 AND id = $2")
            .bind(namespace)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn retention_policies(
        &self,
        namespace: Option<&str>,
        repository: Option<&str>,
    ) -> Result<Vec<RetentionPolicy>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM retention_policies WHERE ($1 IS NULL OR namespace = $1) \
             AND ($2 IS NULL OR repository IS NULL OR repository = $2) ORDER BY id",
        )
        .bind(namespace)
        .bind(repository)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn add_retention_policy(
        &self,
        namespace: &str,
        repository: Option<&str>,
        pattern: &str,
        keep: Keep,
    ) -> Result<RetentionPolicy, MetaError> {
        let row = sqlx::query(
            "INSERT INTO retention_policies \
             (namespace, repository, pattern, keep_count, keep_secs, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(namespace)
        .bind(repository)
        .bind(pattern)
        .bind(keep.count.map(i64::from))
        .bind(keep.secs.map(|s| s.min(i64::MAX as u64) as i64))
        .bind(now_millis())
        .fetch_one(&self.write)
        .await?;
        policy_from_row(&row)
    }

    async fn delete_retention_policy(&self, namespace: &str, id: i64) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM retention_policies WHERE namespace = $1 AND id = $2")
            .bind(namespace)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn prune_tag(
        &self,
        repository: &str,
        tag: &str,
        started_at: i64,
    ) -> Result<bool, MetaError> {
        let Some((mut tx, repo)) = self.repository_tx(repository).await? else {
            return Ok(false);
        };
        let done = sqlx::query(
            "UPDATE tags SET end_at = $4 WHERE repository_id = $1 AND name = $2 \
             AND start_at = $3 AND end_at IS NULL AND immutable = 0 \
             AND (expires_at IS NULL OR expires_at > $4)",
        )
        .bind(repo)
        .bind(tag)
        .bind(started_at)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn touch_repository_blob(
        &self,
        repository: &str,
        digest: &Digest,
        refresh_before: i64,
    ) -> Result<Option<u64>, MetaError> {
        let digest = digest.to_string();
        let Some(row) = sqlx::query(
            "SELECT b.size, rb.touched_at, rb.repository_id FROM repository_blobs rb \
             JOIN repositories r ON r.id = rb.repository_id \
             JOIN blobs b ON b.digest = rb.digest \
             WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repository)
        .bind(&digest)
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let size = stored_size(row.try_get(0)?);
        if row.try_get::<i64, _>(1)? >= refresh_before {
            return Ok(Some(size));
        }
        // Collection deletes a link only if it is still untouched when it does; if it did
        // first, nothing is updated and the client must upload the blob again.
        let touched = sqlx::query(
            "UPDATE repository_blobs SET touched_at = $3 WHERE repository_id = $1 AND digest = $2",
        )
        .bind(row.try_get::<i64, _>(2)?)
        .bind(&digest)
        .bind(now_millis())
        .execute(&self.write)
        .await?;
        Ok((touched.rows_affected() == 1).then_some(size))
    }

    async fn announce_blob(&self, id: &str, digest: &Digest) -> Result<bool, MetaError> {
        // The intent goes in only while collection is not deleting the blob's bytes; the
        // check and the insert are one statement.
        let announce = sqlx::query(concat!(
            "INSERT INTO blob_intents (id, digest, created_at) SELECT $1, $2, $3 \
             WHERE NOT EXISTS (",
            blob_being_collected!("$2"),
            ") ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, \
             created_at = excluded.created_at"
        ))
        .bind(id)
        .bind(digest.to_string())
        .bind(now_millis());
        let done = match self.dialect {
            // One writer connection: no statement of collection's runs in between, and a
            // lone statement needs no transaction (one round trip to the database).
            Dialect::Sqlite => announce.execute(&self.write).await?,
            // Nodes take the blob's lock, as collection does when it marks blobs.
            Dialect::Postgres => {
                let mut tx = self.begin_write().await?;
                lock(&mut tx, self.dialect, Lock::Blob(digest)).await?;
                let done = announce.execute(&mut *tx).await?;
                tx.commit().await?;
                done
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn purge_intents(&self, before: i64) -> Result<u64, MetaError> {
        let done = sqlx::query("DELETE FROM blob_intents WHERE created_at < $1")
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    async fn all_repositories(&self) -> Result<Vec<String>, MetaError> {
        let rows = sqlx::query("SELECT name FROM repositories ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn collect_repository(
        &self,
        repository: &str,
        cutoffs: RepositoryCutoffs,
        unreachable: UnreachableFn<'_>,
    ) -> Result<RepositoryCollected, MetaError> {
        let mut tx = self.begin_write().await?;
        let Some(repo) = repository_id(&mut *tx, repository).await? else {
            return Ok(RepositoryCollected::default());
        };
        lock(&mut tx, self.dialect, Lock::RepositoryExclusive(repo)).await?;
        let history_rows = sqlx::query(
            "DELETE FROM tags WHERE repository_id = $1 AND COALESCE(end_at, expires_at) < $2",
        )
        .bind(repo)
        .bind(cutoffs.history_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let graph = Self::manifest_graph(&mut tx, repo).await?;
        let ids = unreachable(&graph);
        Self::delete_manifests(&mut tx, &ids).await?;
        let chosen: HashSet<i64> = ids.into_iter().collect();
        let manifests = graph
            .iter()
            .filter(|m| chosen.contains(&m.id))
            .map(|m| parse_digest(&m.digest))
            .collect::<Result<_, _>>()?;
        let links = sqlx::query(
            "DELETE FROM repository_blobs WHERE repository_id = $1 AND touched_at < $2 \
             AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb \
                 JOIN manifests m ON m.id = mb.manifest_id \
                 WHERE m.repository_id = $1 AND mb.digest = repository_blobs.digest)",
        )
        .bind(repo)
        .bind(cutoffs.grace_before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(RepositoryCollected {
            history_rows,
            manifests,
            links,
        })
    }

    async fn unreferenced_blobs(
        &self,
        created_before: i64,
        limit: u32,
    ) -> Result<Vec<Digest>, MetaError> {
        let rows = sqlx::query(
            "SELECT digest FROM blobs b WHERE b.deleting_at IS NOT NULL \
             OR (b.created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest) \
                 AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.digest = b.digest)) \
             LIMIT $2",
        )
        .bind(created_before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| parse_digest(&r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn mark_blobs_deleting(
        &self,
        digests: &[Digest],
        intents_since: i64,
    ) -> Result<Vec<Digest>, MetaError> {
        let mut sorted: Vec<&Digest> = digests.iter().collect();
        // One order for every batch, so that two collections never wait on each other.
        sorted.sort();
        sorted.dedup();
        let mut marked = Vec::new();
        let mut tx = self.begin_write().await?;
        for chunk in sorted.chunks(IN_LIST_CHUNK) {
            for digest in chunk {
                lock(&mut tx, self.dialect, Lock::Blob(digest)).await?;
            }
            let sql = format!(
                "UPDATE blobs SET deleting_at = COALESCE(deleting_at, $1) \
                 WHERE digest IN ({}) AND (deleting_at IS NOT NULL OR ( \
                 NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = blobs.digest) \
                 AND NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.digest = blobs.digest) \
                 AND NOT EXISTS (SELECT 1 FROM blob_intents i \
                     WHERE i.digest = blobs.digest AND i.created_at >= $2))) \
                 RETURNING digest",
                placeholders(3, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now_millis())
                .bind(intents_since);
            for digest in chunk {
                query = query.bind(digest.to_string());
            }
            for row in query.fetch_all(&mut *tx).await? {
                marked.push(parse_digest(&row.try_get::<String, _>(0)?)?);
            }
        }
        tx.commit().await?;
        Ok(marked)
    }

    async fn stored_blobs(&self, digests: &[Digest]) -> Result<HashSet<Digest>, MetaError> {
        let mut stored = HashSet::new();
        for chunk in digests.chunks(IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT digest FROM blobs WHERE digest IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for digest in chunk {
                query = query.bind(digest.to_string());
            }
            for row in query.fetch_all(&self.read).await? {
                stored.insert(parse_digest(&row.try_get::<String, _>(0)?)?);
            }
        }
        Ok(stored)
    }

    async fn claim_orphan_blob(
        &self,
        digest: &Digest,
        size: u64,
        intents_since: i64,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin_write().await?;
        lock(&mut tx, self.dialect, Lock::Blob(digest)).await?;
        let done = sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, deleting_at) SELECT $1, $2, $3, $3 \
             WHERE NOT EXISTS (SELECT 1 FROM blob_intents i \
                 WHERE i.digest = $1 AND i.created_at >= $4) \
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(digest.to_string())
        .bind(size.min(i64::MAX as u64) as i64)
        .bind(now_millis())
        .bind(intents_since)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn forget_blobs(&self, digests: &[Digest]) -> Result<Vec<u64>, MetaError> {
        let mut sorted: Vec<&Digest> = digests.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut sizes = Vec::new();
        let mut tx = self.begin_write().await?;
        for chunk in sorted.chunks(IN_LIST_CHUNK) {
            for digest in chunk {
                lock(&mut tx, self.dialect, Lock::Blob(digest)).await?;
            }
            let sql = format!(
                "DELETE FROM blobs WHERE digest IN ({}) AND deleting_at IS NOT NULL \
                 RETURNING size",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for digest in chunk {
                query = query.bind(digest.to_string());
            }
            for row in query.fetch_all(&mut *tx).await? {
                sizes.push(stored_size(row.try_get(0)?));
            }
        }
        tx.commit().await?;
        Ok(sizes)
    }
}
