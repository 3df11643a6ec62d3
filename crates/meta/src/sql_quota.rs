//! `QuotaStore` over SQL, on the tables of migration 0008. Usage is computed, never stored:
//! it follows links and manifests as pushes, deletes and garbage collection change them.

use bulwark_oci::Digest;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::quota::{NamespaceQuota, QuotaLimit, QuotaLimitChange, QuotaLimitKind, QuotaStore};
use crate::sql::size as stored_size;
use crate::sql_identity::namespace_bounds;
use crate::{MetaError, SqlMetaStore, now_millis};

/// Byte counts fit a BIGINT column.
fn bytes_column(bytes: u64) -> i64 {
    bytes.min(i64::MAX as u64) as i64
}

fn limit_from_row(row: &AnyRow) -> Result<QuotaLimit, MetaError> {
    let percent: i64 = row.try_get("threshold_percent")?;
    Ok(QuotaLimit {
        id: row.try_get("id")?,
        kind: QuotaLimitKind::parse(&row.try_get::<String, _>("kind")?)?,
        threshold_percent: u8::try_from(percent)
            .map_err(|_| MetaError::Corrupt(format!("quota threshold {percent}")))?,
        crossed_at: row.try_get("crossed_at")?,
    })
}

/// The digests held by the repositories named in [`namespace_bounds`] `$1`..`$2`, with
/// their sizes: linked blobs (layers, configs, and whatever else was pushed as a blob) and
/// stored manifests, one row per digest however many repositories hold it. The links are
/// reduced to distinct digests before the blob rows are read (a semi-join): a namespace
/// links a layer once per repository.
const HELD: &str = "SELECT b.digest, b.size FROM blobs b WHERE b.digest IN \
     (SELECT rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id \
      WHERE r.name >= $1 AND r.name < $2) \
     UNION SELECT m.digest, m.size FROM manifests m \
     JOIN repositories r ON r.id = m.repository_id WHERE r.name >= $1 AND r.name < $2";

impl SqlMetaStore {
    /// Whether `namespace` has the quota `quota_id`.
    async fn quota_exists(
        &self,
        conn: impl sqlx::Executor<'_, Database = sqlx::Any>,
        namespace: &str,
        quota_id: i64,
    ) -> Result<bool, MetaError> {
        Ok(
            sqlx::query("SELECT 1 FROM namespace_quotas WHERE namespace = $1 AND id = $2")
                .bind(namespace)
                .bind(quota_id)
                .fetch_optional(conn)
                .await?
                .is_some(),
        )
    }
}

#[async_trait::async_trait]
impl QuotaStore for SqlMetaStore {
    async fn namespace_quota(&self, namespace: &str) -> Result<Option<NamespaceQuota>, MetaError> {
        let Some(row) = sqlx::query(
            "SELECT id, namespace, limit_bytes, created_at FROM namespace_quotas \
             WHERE namespace = $1",
        )
        .bind(namespace)
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        let limits = sqlx::query(
            "SELECT id, kind, threshold_percent, crossed_at FROM quota_limits \
             WHERE quota_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(NamespaceQuota {
            id,
            namespace: row.try_get("namespace")?,
            limit_bytes: stored_size(row.try_get("limit_bytes")?),
            limits: limits
                .iter()
                .map(limit_from_row)
                .collect::<Result<_, _>>()?,
            created_at: row.try_get("created_at")?,
        }))
    }

    async fn create_quota(
        &self,
        namespace: &str,
        limit_bytes: u64,
    ) -> Result<NamespaceQuota, MetaError> {
        let now = now_millis();
        let inserted = sqlx::query(
            "INSERT INTO namespace_quotas (namespace, limit_bytes, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(namespace)
        .bind(bytes_column(limit_bytes))
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        let Some(row) = inserted else {
            return Err(MetaError::Conflict(format!("quota of {namespace}")));
        };
        Ok(NamespaceQuota {
            id: row.try_get(0)?,
            namespace: namespace.to_owned(),
            limit_bytes,
            limits: Vec::new(),
            created_at: now,
        })
    }

    async fn set_quota_bytes(
        &self,
        namespace: &str,
        id: i64,
        limit_bytes: u64,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE namespace_quotas SET limit_bytes = $3 WHERE namespace = $1 AND id = $2",
        )
        .bind(namespace)
        .bind(id)
        .bind(bytes_column(limit_bytes))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_quota(&self, namespace: &str, id: i64) -> Result<bool, MetaError> {
        // Its limits follow by ON DELETE CASCADE.
        let done = sqlx::query("DELETE FROM namespace_quotas WHERE namespace = $1 AND id = $2")
            .bind(namespace)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn add_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        kind: QuotaLimitKind,
        threshold_percent: u8,
    ) -> Result<Option<QuotaLimit>, MetaError> {
        let mut tx = self.begin_write().await?;
        if !self.quota_exists(&mut *tx, namespace, quota_id).await? {
            return Ok(None);
        }
        let inserted = sqlx::query(
            "INSERT INTO quota_limits (quota_id, kind, threshold_percent) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(quota_id)
        .bind(kind.spelling())
        .bind(i64::from(threshold_percent))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            return Err(MetaError::Conflict(match kind {
                QuotaLimitKind::Reject => "a reject limit of this quota".to_owned(),
                QuotaLimitKind::Warning => format!("a warning limit at {threshold_percent} %"),
            }));
        };
        let limit = QuotaLimit {
            id: row.try_get(0)?,
            kind,
            threshold_percent,
            crossed_at: None,
        };
        tx.commit().await?;
        Ok(Some(limit))
    }

    async fn update_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        limit_id: i64,
        change: QuotaLimitChange,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin_write().await?;
        if !self.quota_exists(&mut *tx, namespace, quota_id).await? {
            return Ok(false);
        }
        let Some(row) = sqlx::query(
            "SELECT id, kind, threshold_percent, crossed_at FROM quota_limits \
             WHERE quota_id = $1 AND id = $2",
        )
        .bind(quota_id)
        .bind(limit_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let current = limit_from_row(&row)?;
        let kind = change.kind.unwrap_or(current.kind);
        let percent = change
            .threshold_percent
            .unwrap_or(current.threshold_percent);
        let clash = sqlx::query(
            "SELECT 1 FROM quota_limits WHERE quota_id = $1 AND id <> $2 AND kind = $3 \
             AND (kind = 'reject' OR threshold_percent = $4)",
        )
        .bind(quota_id)
        .bind(limit_id)
        .bind(kind.spelling())
        .bind(i64::from(percent))
        .fetch_optional(&mut *tx)
        .await?;
        if clash.is_some() {
            return Err(MetaError::Conflict(match kind {
                QuotaLimitKind::Reject => "a reject limit of this quota".to_owned(),
                QuotaLimitKind::Warning => format!("a warning limit at {percent} %"),
            }));
        }
        sqlx::query(
            "UPDATE quota_limits SET kind = $2, threshold_percent = $3, crossed_at = NULL \
             WHERE id = $1",
        )
        .bind(limit_id)
        .bind(kind.spelling())
        .bind(i64::from(percent))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        limit_id: i64,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "DELETE FROM quota_limits WHERE id = $3 AND quota_id = $2 AND quota_id IN \
             (SELECT id FROM namespace_quotas WHERE namespace = $1)",
        )
        .bind(namespace)
        .bind(quota_id)
        .bind(limit_id)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_quota_limit_crossed(
        &self,
        limit_id: i64,
        crossed: bool,
        now: i64,
    ) -> Result<bool, MetaError> {
        let query = if crossed {
            sqlx::query(
                "UPDATE quota_limits SET crossed_at = $2 WHERE id = $1 AND crossed_at IS NULL",
            )
            .bind(limit_id)
            .bind(now)
        } else {
            sqlx::query(
                "UPDATE quota_limits SET crossed_at = NULL WHERE id = $1 AND crossed_at IS NOT NULL",
            )
            .bind(limit_id)
        };
        Ok(query.execute(&self.write).await?.rows_affected() > 0)
    }

    async fn namespace_usage(&self, namespace: &str) -> Result<u64, MetaError> {
        let (first, end) = namespace_bounds(namespace);
        // SUM of BIGINT is NUMERIC on PostgreSQL: cast back for the Any driver.
        let sql = format!("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM ({HELD}) held");
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(first)
            .bind(end)
            .fetch_one(&self.read)
            .await?;
        Ok(stored_size(total))
    }

    async fn namespace_holds(&self, namespace: &str, digest: &Digest) -> Result<bool, MetaError> {
        let (first, end) = namespace_bounds(namespace);
        Ok(sqlx::query(
            "SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id \
             WHERE rb.digest = $3 AND r.name >= $1 AND r.name < $2 \
             UNION ALL SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repository_id \
             WHERE m.digest = $3 AND r.name >= $1 AND r.name < $2 LIMIT 1",
        )
        .bind(first)
        .bind(end)
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?
        .is_some())
    }
}
