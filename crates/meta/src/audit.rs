//! The action log's rows: entries chained by hash, the chain head, signed checkpoints. What
//! an entry's hash covers is the audit layer's rule (passed in as a function); this module
//! only keeps the chain's order safe: every append locks the head row, so appenders on
//! several nodes extend the chain one after another.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::MetaError;
use crate::sql::{SqlMetaStore, placeholders};

/// The content of an entry, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// Milliseconds since the epoch.
    pub time: i64,
    pub kind: String,
    pub actor_kind: String,
    pub actor_name: String,
    pub actor_credential: String,
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub namespace: Option<String>,
    pub repository: Option<String>,
    pub target: Option<String>,
    /// JSON text, hashed as stored.
    pub details: String,
}

/// An entry in its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
    /// Hex SHA-256 of the entry before (all zeros before the first).
    pub prev_hash: String,
    pub hash: String,
}

/// Which entries a search returns; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub namespace: Option<String>,
    pub repository: Option<String>,
    /// The actor's name.
    pub actor: Option<String>,
    /// Entries whose actor or namespace is this account (a user's own log).
    pub involving: Option<String>,
    /// Any of these kinds (all kinds when empty).
    pub kinds: Vec<String>,
    /// Time range, milliseconds, `since` inclusive and `until` exclusive.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// Which page of a search: entries strictly past `after` (in the walking direction).
#[derive(Clone, Copy, Debug)]
pub struct AuditPage {
    pub after: Option<i64>,
    pub limit: u32,
    /// Newest first (searches) or oldest first (exports, verification).
    pub newest_first: bool,
}

/// Entries of one kind on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditCount {
    /// Days since the epoch (UTC).
    pub day: i64,
    pub kind: String,
    pub count: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointKind {
    /// The entry at `seq` had hash `hash`.
    Head,
    /// Every entry up to `seq` was deleted by retention; the last had hash `hash`.
    Cut,
}

impl CheckpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Head => "head",
            CheckpointKind::Cut => "cut",
        }
    }

    pub fn parse(s: &str) -> Option<CheckpointKind> {
        [CheckpointKind::Head, CheckpointKind::Cut]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A signed statement about the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditCheckpoint {
    pub kind: CheckpointKind,
    pub seq: i64,
    pub hash: String,
    pub time: i64,
    /// A compact JWS over the checkpoint's claims.
    pub signature: String,
}

/// Computes an entry's hash from the hash before it.
pub type ChainHash<'a> = &'a (dyn Fn(&str, &AuditEntry) -> String + Send + Sync);

#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends `entries` after the chain head in one transaction, hashing each with `chain`;
    /// returns the seq of the last one.
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        chain: ChainHash<'_>,
    ) -> Result<i64, MetaError>;

    /// The chain head: the last entry's seq and hash (0 and zeros for an empty chain).
    async fn audit_head(&self) -> Result<(i64, String), MetaError>;

    async fn search_audit(
        &self,
        filter: &AuditFilter,
        page: AuditPage,
    ) -> Result<Vec<AuditRecord>, MetaError>;

    /// Entries per day and kind, oldest day first.
    async fn count_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditCount>, MetaError>;

    /// Where retention would cut to drop entries older than `before` (ms): the entry just
    /// before the first one at or after `before` (entries keep their place even when their
    /// times interleave across nodes), as (seq, hash); `None` if nothing would go.
    async fn audit_cut_point(&self, before: i64) -> Result<Option<(i64, String)>, MetaError>;

    /// Deletes every entry up to `cut.seq` and records `cut`, in one transaction; refused
    /// (`Conflict`) if the entry at `cut.seq` no longer has `cut.hash`.
    async fn cut_audit(&self, cut: &AuditCheckpoint) -> Result<u64, MetaError>;

    async fn add_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<(), MetaError>;

    /// Every checkpoint, by seq.
    async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>, MetaError>;
}

const COLUMNS: &str = "seq, time, kind, actor_kind, actor_name, actor_credential, address, \
                       user_agent, namespace, repository, target, details, prev_hash, hash";

/// Rows per INSERT statement: 14 parameters each stays far below either dialect's limit.
const ROWS_PER_INSERT: usize = 64;

fn record(row: &AnyRow) -> Result<AuditRecord, MetaError> {
    Ok(AuditRecord {
        seq: row.try_get(0)?,
        entry: AuditEntry {
            time: row.try_get(1)?,
            kind: row.try_get(2)?,
            actor_kind: row.try_get(3)?,
            actor_name: row.try_get(4)?,
            actor_credential: row.try_get(5)?,
            address: row.try_get(6)?,
            user_agent: row.try_get(7)?,
            namespace: row.try_get(8)?,
            repository: row.try_get(9)?,
            target: row.try_get(10)?,
            details: row.try_get(11)?,
        },
        prev_hash: row.try_get(12)?,
        hash: row.try_get(13)?,
    })
}

fn checkpoint(row: &AnyRow) -> Result<AuditCheckpoint, MetaError> {
    let kind: String = row.try_get(0)?;
    Ok(AuditCheckpoint {
        kind: CheckpointKind::parse(&kind)
            .ok_or_else(|| MetaError::Corrupt(format!("checkpoint kind {kind:?}")))?,
        seq: row.try_get(1)?,
        hash: row.try_get(2)?,
        time: row.try_get(3)?,
        signature: row.try_get(4)?,
    })
}

/// A WHERE clause over `filter`, its parameters numbered from `$1`.
struct Where {
    sql: String,
    args: Vec<Arg>,
}

enum Arg {
    Text(String),
    Int(i64),
}

impl Where {
    fn new(filter: &AuditFilter) -> Where {
        let mut w = Where {
            sql: String::from(" WHERE 1 = 1"),
            args: Vec::new(),
        };
        let text = |w: &mut Where, column: &str, value: &Option<String>| {
            if let Some(v) = value {
                w.args.push(Arg::Text(v.clone()));
                w.sql
                    .push_str(&format!(" AND {column} = ${}", w.args.len()));
            }
        };
        text(&mut w, "namespace", &filter.namespace);
        text(&mut w, "repository", &filter.repository);
        text(&mut w, "actor_name", &filter.actor);
        if let Some(account) = &filter.involving {
            w.args.push(Arg::Text(account.clone()));
            let n = w.args.len();
            w.sql
                .push_str(&format!(" AND (actor_name = ${n} OR namespace = ${n})"));
        }
        if !filter.kinds.is_empty() {
            let mut list = Vec::new();
            for kind in &filter.kinds {
                w.args.push(Arg::Text(kind.clone()));
                list.push(format!("${}", w.args.len()));
            }
            w.sql
                .push_str(&format!(" AND kind IN ({})", list.join(", ")));
        }
        if let Some(since) = filter.since {
            w.args.push(Arg::Int(since));
            w.sql.push_str(&format!(" AND time >= ${}", w.args.len()));
        }
        if let Some(until) = filter.until {
            w.args.push(Arg::Int(until));
            w.sql.push_str(&format!(" AND time < ${}", w.args.len()));
        }
        w
    }

    fn bind<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        for arg in &self.args {
            query = match arg {
                Arg::Text(s) => query.bind(s.as_str()),
                Arg::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

#[async_trait::async_trait]
impl AuditStore for SqlMetaStore {
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        chain: ChainHash<'_>,
    ) -> Result<i64, MetaError> {
        let mut tx = self.begin_write().await?;
        // A no-op update that locks the head row until commit (PostgreSQL); SQLite's
        // BEGIN IMMEDIATE already holds the database's write lock.
        let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *tx)
            .await?;
        let mut seq: i64 = head.try_get(0)?;
        let mut hash: String = head.try_get(1)?;
        for chunk in entries.chunks(ROWS_PER_INSERT) {
            let mut sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES ");
            for i in 0..chunk.len() {
                let b = i * 14;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                sql.push_str(&placeholders(b + 1, 14));
                sql.push(')');
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for entry in chunk {
                let next = chain(&hash, entry);
                seq += 1;
                query = query
                    .bind(seq)
                    .bind(entry.time)
                    .bind(entry.kind.clone())
                    .bind(entry.actor_kind.clone())
                    .bind(entry.actor_name.clone())
                    .bind(entry.actor_credential.clone())
                    .bind(entry.address.clone())
                    .bind(entry.user_agent.clone())
                    .bind(entry.namespace.clone())
                    .bind(entry.repository.clone())
                    .bind(entry.target.clone())
                    .bind(entry.details.clone())
                    .bind(std::mem::replace(&mut hash, next.clone()))
                    .bind(next);
            }
            query.execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(seq)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn audit_head(&self) -> Result<(i64, String), MetaError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    async fn search_audit(
        &self,
        filter: &AuditFilter,
        page: AuditPage,
    ) -> Result<Vec<AuditRecord>, MetaError> {
        let mut w = Where::new(filter);
        let (cmp, order) = if page.newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        if let Some(after) = page.after {
            w.args.push(Arg::Int(after));
            w.sql.push_str(&format!(" AND seq {cmp} ${}", w.args.len()));
        }
        w.args.push(Arg::Int(i64::from(page.limit)));
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log{} ORDER BY seq {order} LIMIT ${}",
            w.sql,
            w.args.len()
        );
        let rows = w
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(record).collect()
    }

    async fn count_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditCount>, MetaError> {
        let w = Where::new(filter);
        // Integer division on both dialects; times are never negative.
        let sql = format!(
            "SELECT time / 86400000 AS day, kind, COUNT(*) FROM audit_log{} \
             GROUP BY day, kind ORDER BY day, kind",
            w.sql
        );
        let rows = w
            .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditCount {
                    day: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    count: row.try_get(2)?,
                })
            })
            .collect()
    }

    async fn audit_cut_point(&self, before: i64) -> Result<Option<(i64, String)>, MetaError> {
        let first_kept = sqlx::query("SELECT MIN(seq) FROM audit_log WHERE time >= $1")
            .bind(before)
            .fetch_one(&self.read)
            .await?
            .try_get::<Option<i64>, _>(0)?;
        let row = match first_kept {
            Some(seq) => {
                sqlx::query(
                    "SELECT seq, hash FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT 1",
                )
                .bind(seq)
                .fetch_optional(&self.read)
                .await?
            }
            None => {
                sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&self.read)
                    .await?
            }
        };
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    async fn cut_audit(&self, cut: &AuditCheckpoint) -> Result<u64, MetaError> {
        let mut tx = self.begin_write().await?;
        let at = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
            .bind(cut.seq)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?;
        if at.as_deref() != Some(cut.hash.as_str()) {
            return Err(MetaError::Conflict(format!(
                "action log cut at entry {} (the entry changed or is gone)",
                cut.seq
            )));
        }
        let deleted = sqlx::query("DELETE FROM audit_log WHERE seq <= $1")
            .bind(cut.seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        insert_checkpoint(&mut tx, cut).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn add_audit_checkpoint(&self, checkpoint: &AuditCheckpoint) -> Result<(), MetaError> {
        let mut tx = self.begin_write().await?;
        insert_checkpoint(&mut tx, checkpoint).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>, MetaError> {
        let rows = sqlx::query(
            "SELECT kind, seq, hash, time, signature FROM audit_checkpoints ORDER BY seq, id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(checkpoint).collect()
    }
}

async fn insert_checkpoint(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    checkpoint: &AuditCheckpoint,
) -> Result<(), MetaError> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (kind, seq, hash, time, signature) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(checkpoint.kind.as_str())
    .bind(checkpoint.seq)
    .bind(&checkpoint.hash)
    .bind(checkpoint.time)
    .bind(&checkpoint.signature)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
