//! The job queue in the metadata store: any node enqueues, any node claims. Claims are
//! leases renewed by heartbeats, so a job whose node dies is taken again by another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::batch::{
    Statement,
    Value::{Int, MaybeText, Text},
};
use crate::sql::{Dialect, SqlMetaStore};
use crate::{MetaError, now_millis};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Done,
            JobStatus::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    /// JSON, interpreted by the job's handler.
    pub payload: String,
    pub status: JobStatus,
    pub unique_key: Option<String>,
    /// Claims so far, the current one included.
    pub attempts: u32,
    pub max_attempts: u32,
    /// Not claimable before this time (ms since the epoch).
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: &'a str,
    /// Enqueueing a second job with the same key does nothing.
    pub unique_key: Option<&'a str>,
    pub run_after: i64,
    pub max_attempts: u32,
}

/// Held while a singleton task runs; dropping it releases the lock.
pub struct SingletonGuard {
    _held: Held,
}

enum Held {
    /// A session-level advisory lock; closing the connection releases it.
    Postgres {
        _session: sqlx::pool::PoolConnection<sqlx::Any>,
    },
    /// One process owns an SQLite store (the data-directory lock), so a local lock suffices.
    Local {
        _guard: tokio::sync::OwnedMutexGuard<()>,
    },
}

/// In-process singleton locks for the SQLite store, by name.
#[derive(Default)]
pub(crate) struct LocalLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Adds a job; `None` if its unique key was already taken.
    async fn enqueue(&self, job: NewJob<'_>) -> Result<Option<i64>, MetaError>;

    /// Leases the next due job to `owner` for `lease_ms`: a queued job whose time has come,
    /// or a running one whose lease ran out. Jobs whose lease ran out on their last attempt
    /// are not taken: the first claim that finds nothing due fails them for good.
    async fn claim(&self, owner: &str, lease_ms: i64) -> Result<Option<Job>, MetaError>;

    /// Extends `owner`'s lease; false if the job is no longer `owner`'s.
    async fn heartbeat(&self, id: i64, owner: &str, lease_ms: i64) -> Result<bool, MetaError>;

    async fn complete(&self, id: i64, owner: &str) -> Result<bool, MetaError>;

    /// Records a failed attempt: queued again at `retry_at` while attempts remain, else
    /// failed for good.
    async fn fail(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool, MetaError>;

    async fn job(&self, id: i64) -> Result<Option<Job>, MetaError>;

    /// The most recent jobs, optionally of one status.
    async fn jobs(&self, status: Option<JobStatus>, limit: u32) -> Result<Vec<Job>, MetaError>;

    /// Deletes finished (done or failed) jobs last updated before `before`.
    async fn prune_jobs(&self, before: i64) -> Result<u64, MetaError>;

    /// Takes the cluster-wide lock `name` if free.
    async fn try_singleton(&self, name: &str) -> Result<Option<SingletonGuard>, MetaError>;
}

fn job_from_row(row: &AnyRow) -> Result<Job, MetaError> {
    let status: String = row.try_get("status")?;
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| MetaError::Corrupt(format!("job status {status:?}")))?,
        unique_key: row.try_get("unique_key")?,
        attempts: row.try_get::<i64, _>("attempts")?.clamp(0, u32::MAX as i64) as u32,
        max_attempts: row
            .try_get::<i64, _>("max_attempts")?
            .clamp(0, u32::MAX as i64) as u32,
        run_after: row.try_get("run_after")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A lock key for PostgreSQL's advisory locks, stable across nodes and builds (FNV-1a).
fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// Inserts a queued job: `$1` kind, `$2` payload, `$3` unique key, `$4` attempts allowed,
/// `$5` when it may run, `$6` now. A job with the same key already there stays as it is.
macro_rules! insert_job {
    () => {
        "INSERT INTO jobs (kind, payload, status, unique_key, attempts, max_attempts, \
         run_after, created_at, updated_at) VALUES ($1, $2, 'queued', $3, 0, $4, $5, $6, $6) \
         ON CONFLICT DO NOTHING"
    };
}

/// `job` enqueued at `now`, as a statement of a batch.
pub(crate) fn enqueue_statement(job: &NewJob<'_>, now: i64) -> Statement {
    insert_job_statement(insert_job!(), job, now)
}

/// `sql` (`insert_job!()`, maybe with a `RETURNING` clause) with `job`'s values at `now`.
fn insert_job_statement(sql: &'static str, job: &NewJob<'_>, now: i64) -> Statement {
    Statement::new(
        sql,
        [
            Text(job.kind.to_owned()),
            Text(job.payload.to_owned()),
            MaybeText(job.unique_key.map(str::to_owned)),
            Int(i64::from(job.max_attempts.max(1))),
            Int(job.run_after),
            Int(now),
        ],
    )
}

#[async_trait::async_trait]
impl JobStore for SqlMetaStore {
    async fn enqueue(&self, job: NewJob<'_>) -> Result<Option<i64>, MetaError> {
        let row = insert_job_statement(concat!(insert_job!(), " RETURNING id"), &job, now_millis())
            .query()
            .fetch_optional(&self.write)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn claim(&self, owner: &str, lease_ms: i64) -> Result<Option<Job>, MetaError> {
        let now = now_millis();
        // A running job whose lease ran out is taken again while it has attempts left.
        // SKIP LOCKED lets concurrent claimers on PostgreSQL pass over each other's rows;
        // SQLite has one writer, so the statement alone is atomic.
        let sql = match self.dialect {
            Dialect::Postgres => {
                "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2, \
                 attempts = attempts + 1, updated_at = $3 \
                 WHERE id = (SELECT id FROM jobs \
                    WHERE (status = 'queued' AND run_after <= $3) \
                       OR (status = 'running' AND lease_until < $3 \
                           AND attempts < max_attempts) \
                    ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 RETURNING *"
            }
            Dialect::Sqlite => {
                "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2, \
                 attempts = attempts + 1, updated_at = $3 \
                 WHERE id = (SELECT id FROM jobs \
                    WHERE (status = 'queued' AND run_after <= $3) \
                       OR (status = 'running' AND lease_until < $3 \
                           AND attempts < max_attempts) \
                    ORDER BY run_after, id LIMIT 1) \
                 RETURNING *"
            }
        };
        let row = sqlx::query(sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .fetch_optional(&self.write)
            .await?;
        if row.is_none() {
            // Those out of attempts fail for good; only when the queue is idle, so that
            // a claim under load is one statement.
            sqlx::query(
                "UPDATE jobs SET status = 'failed', lease_owner = NULL, lease_until = NULL, \
                 last_error = 'lease expired on the last attempt (the node running it stopped)', \
                 updated_at = $1 \
                 WHERE status = 'running' AND lease_until < $1 AND attempts >= max_attempts",
            )
            .bind(now)
            .execute(&self.write)
            .await?;
        }
        row.as_ref().map(job_from_row).transpose()
    }

    async fn heartbeat(&self, id: i64, owner: &str, lease_ms: i64) -> Result<bool, MetaError> {
        let now = now_millis();
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $3, updated_at = $4 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(&self, id: i64, owner: &str) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'done', lease_owner = NULL, lease_until = NULL, \
             last_error = NULL, updated_at = $3 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(owner)
        .bind(now_millis())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn fail(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE jobs SET \
               status = CASE WHEN $4 >= 0 AND attempts < max_attempts \
                             THEN 'queued' ELSE 'failed' END, \
               run_after = CASE WHEN $4 >= 0 THEN $4 ELSE run_after END, \
               last_error = $3, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
             WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(owner)
        .bind(error)
        // -1 stands for "no retry": a typed value keeps both databases' planners happy.
        .bind(retry_at.unwrap_or(-1))
        .bind(now_millis())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn job(&self, id: i64) -> Result<Option<Job>, MetaError> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn jobs(&self, status: Option<JobStatus>, limit: u32) -> Result<Vec<Job>, MetaError> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE ($1 = '' OR status = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(status.map_or("", JobStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn prune_jobs(&self, before: i64) -> Result<u64, MetaError> {
        let done =
            sqlx::query("DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < $1")
                .bind(before)
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected())
    }

    async fn try_singleton(&self, name: &str) -> Result<Option<SingletonGuard>, MetaError> {
        match self.dialect {
            Dialect::Postgres => {
                let mut conn = self.write.acquire().await?;
                let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(lock_key(name))
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
                if !got {
                    return Ok(None);
                }
                // The lock belongs to this session: never hand the connection back locked.
                conn.close_on_drop();
                Ok(Some(SingletonGuard {
                    _held: Held::Postgres { _session: conn },
                }))
            }
            Dialect::Sqlite => {
                let lock = self
                    .local_locks
                    .0
                    .lock()
                    .expect("singleton map lock")
                    .entry(name.to_owned())
                    .or_default()
                    .clone();
                Ok(lock.try_lock_owned().ok().map(|g| SingletonGuard {
                    _held: Held::Local { _guard: g },
                }))
            }
        }
    }
}
