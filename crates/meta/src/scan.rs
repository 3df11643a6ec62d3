//! Vulnerability scanning's rows: the imported vulnerability records and their generation,
//! per-layer indexes, and per-manifest scan results. What the bytes and JSON texts mean is
//! the security layer's business; this module only keeps them, and counts generations.

use bulwark_oci::Digest;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::batch::{
    self, Statement,
    Value::{Int, Text},
};
use crate::jobs::{NewJob, enqueue_statement};
use crate::sql::{Dialect, SqlMetaStore, parse_digest};
use crate::{MetaError, now_millis};

/// One vulnerability record as imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VulnerabilityRecord {
    pub id: String,
    pub modified: Option<String>,
    /// The record's JSON text.
    pub record: String,
}

/// What an import changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VulnerabilityImport {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// The generation after the import: one more than before if anything changed.
    pub generation: i64,
}

/// Where a layer or a manifest stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStatus {
    Queued,
    Scanned,
    Failed,
    Unsupported,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Queued => "queued",
            ScanStatus::Scanned => "scanned",
            ScanStatus::Failed => "failed",
            ScanStatus::Unsupported => "unsupported",
        }
    }

    pub fn parse(s: &str) -> Option<ScanStatus> {
        [
            ScanStatus::Queued,
            ScanStatus::Scanned,
            ScanStatus::Failed,
            ScanStatus::Unsupported,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// A layer's index: `data` (in the scanner's `format`) when `status` is `Scanned`, else
/// the reason it could not be indexed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerIndexRow {
    pub digest: Digest,
    pub format: i64,
    pub status: ScanStatus,
    pub reason: Option<String>,
    pub data: Option<Vec<u8>>,
    pub created_at: i64,
}

/// The scan of one manifest digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestScan {
    pub digest: Digest,
    pub status: ScanStatus,
    pub reason: Option<String>,
    /// The image's layers, bottom first: what re-matching assembles the inventory from.
    pub layers: Vec<Digest>,
    /// The findings' JSON text (an array).
    pub findings: String,
    pub grade: Option<String>,
    pub next_drop_date: Option<String>,
    /// The vulnerability-data generation the findings were matched against.
    pub generation: i64,
    pub updated_at: i64,
}

impl ManifestScan {
    /// A scan that has not run yet.
    pub fn queued(digest: Digest) -> ManifestScan {
        ManifestScan {
            digest,
            status: ScanStatus::Queued,
            reason: None,
            layers: Vec::new(),
            findings: "[]".into(),
            grade: None,
            next_drop_date: None,
            generation: 0,
            updated_at: now_millis(),
        }
    }
}

/// A pull policy of a namespace (`repository` empty) or of one repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanPolicy {
    pub namespace: String,
    /// The repository's full name, or empty for the whole namespace.
    pub repository: String,
    /// Refuse grades worse than this one (`A`–`F`).
    pub max_grade: Option<String>,
    /// Refuse vulnerabilities of this severity or worse.
    pub block_severity: Option<String>,
    /// Vulnerability ids (or aliases) never refused.
    pub allowlist: Vec<String>,
    pub updated_at: i64,
}

#[async_trait::async_trait]
pub trait ScanStore: Send + Sync + 'static {
    /// Stores records new or changed since the last import (by their JSON text), in one
    /// transaction, and advances the generation if any was.
    async fn import_vulnerabilities(
        &self,
        records: &[VulnerabilityRecord],
    ) -> Result<VulnerabilityImport, MetaError>;

    async fn vulnerability_generation(&self) -> Result<i64, MetaError>;

    /// Records by id, strictly after `after`.
    async fn vulnerability_records(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VulnerabilityRecord>, MetaError>;

    async fn layer_index(&self, digest: &Digest) -> Result<Option<LayerIndexRow>, MetaError>;

    /// Stores a layer's index, replacing an older one.
    async fn put_layer_index(&self, row: &LayerIndexRow) -> Result<(), MetaError>;

    async fn manifest_scan(&self, digest: &Digest) -> Result<Option<ManifestScan>, MetaError>;

    /// Records a queued scan unless the manifest already has one, and enqueues `job` (which
    /// runs it), in one transaction. Returns whether the scan's row is new.
    async fn queue_manifest_scan(
        &self,
        digest: &Digest,
        job: NewJob<'_>,
    ) -> Result<bool, MetaError>;

    /// Stores a scan's result, replacing what was there.
    async fn put_manifest_scan(&self, scan: &ManifestScan) -> Result<(), MetaError>;

    /// Scanned manifests matched against a generation older than `generation`, by digest,
    /// strictly after `after`.
    async fn scans_to_rematch(
        &self,
        generation: i64,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ManifestScan>, MetaError>;

    /// The repositories holding a manifest, by name.
    async fn manifest_repositories(&self, digest: &Digest) -> Result<Vec<String>, MetaError>;

    /// Deletes the scans of manifests no repository holds and the indexes of layers no
    /// longer stored (garbage collection removed them); returns how many rows went.
    async fn prune_scans(&self) -> Result<u64, MetaError>;

    /// The policy of `namespace` (`repository` empty) or of one repository, as set.
    async fn scan_policy(
        &self,
        namespace: &str,
        repository: &str,
    ) -> Result<Option<ScanPolicy>, MetaError>;

    /// The policy that applies to `repository` of `namespace`: its own, else the
    /// namespace's.
    async fn effective_scan_policy(
        &self,
        namespace: &str,
        repository: &str,
    ) -> Result<Option<ScanPolicy>, MetaError>;

    /// Sets (creates or replaces) a policy.
    async fn set_scan_policy(&self, policy: &ScanPolicy) -> Result<(), MetaError>;

    /// Removes a policy; returns whether there was one.
    async fn delete_scan_policy(
        &self,
        namespace: &str,
        repository: &str,
    ) -> Result<bool, MetaError>;
}

const POLICY_COLUMNS: &str =
    "namespace, repository, max_grade, block_severity, allowlist, updated_at";

fn scan_policy(row: &AnyRow) -> Result<ScanPolicy, MetaError> {
    let allowlist: String = row.try_get(4)?;
    Ok(ScanPolicy {
        namespace: row.try_get(0)?,
        repository: row.try_get(1)?,
        max_grade: row.try_get(2)?,
        block_severity: row.try_get(3)?,
        allowlist: serde_json::from_str(&allowlist)
            .map_err(|e| MetaError::Corrupt(format!("policy allowlist: {e}")))?,
        updated_at: row.try_get(5)?,
    })
}

const SCAN_COLUMNS: &str =
    "digest, status, reason, layers, findings, grade, next_drop_date, generation, updated_at";

fn status(s: String) -> Result<ScanStatus, MetaError> {
    ScanStatus::parse(&s).ok_or_else(|| MetaError::Corrupt(format!("scan status {s:?}")))
}

fn manifest_scan(row: &AnyRow) -> Result<ManifestScan, MetaError> {
    let layers: String = row.try_get(3)?;
    let layers: Vec<String> = serde_json::from_str(&layers)
        .map_err(|e| MetaError::Corrupt(format!("scan layers: {e}")))?;
    Ok(ManifestScan {
        digest: parse_digest(&row.try_get::<String, _>(0)?)?,
        status: status(row.try_get(1)?)?,
        reason: row.try_get(2)?,
        layers: layers
            .iter()
            .map(|d| parse_digest(d))
            .collect::<Result<_, _>>()?,
        findings: row.try_get(4)?,
        grade: row.try_get(5)?,
        next_drop_date: row.try_get(6)?,
        generation: row.try_get(7)?,
        updated_at: row.try_get(8)?,
    })
}

#[async_trait::async_trait]
impl ScanStore for SqlMetaStore {
    async fn import_vulnerabilities(
        &self,
        records: &[VulnerabilityRecord],
    ) -> Result<VulnerabilityImport, MetaError> {
        let mut tx = self.begin_write().await?;
        // Locks the generation row until commit (PostgreSQL), so imports on several nodes
        // take turns; SQLite's BEGIN IMMEDIATE already holds the write lock.
        let row =
            sqlx::query("UPDATE vulnerability_data SET id = id WHERE id = 1 RETURNING generation")
                .fetch_one(&mut *tx)
                .await?;
        let mut outcome = VulnerabilityImport {
            generation: row.try_get(0)?,
            ..VulnerabilityImport::default()
        };
        let now = now_millis();
        for r in records {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT record FROM vulnerabilities WHERE id = $1")
                    .bind(&r.id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match stored {
                Some(text) if text == r.record => {
                    outcome.unchanged += 1;
                    continue;
                }
                Some(_) => outcome.updated += 1,
                None => outcome.added += 1,
            }
            sqlx::query(
                "INSERT INTO vulnerabilities (id, modified, record, imported_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET \
                 modified = excluded.modified, record = excluded.record, \
                 imported_at = excluded.imported_at",
            )
            .bind(&r.id)
            .bind(&r.modified)
            .bind(&r.record)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        if outcome.added + outcome.updated > 0 {
            outcome.generation += 1;
            sqlx::query(
                "UPDATE vulnerability_data SET generation = $1, updated_at = $2 WHERE id = 1",
            )
            .bind(outcome.generation)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn vulnerability_generation(&self) -> Result<i64, MetaError> {
        Ok(
            sqlx::query_scalar("SELECT generation FROM vulnerability_data WHERE id = 1")
                .fetch_one(&self.read)
                .await?,
        )
    }

    async fn vulnerability_records(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VulnerabilityRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT id, modified, record FROM vulnerabilities \
             WHERE $1 IS NULL OR id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(VulnerabilityRecord {
                    id: row.try_get(0)?,
                    modified: row.try_get(1)?,
                    record: row.try_get(2)?,
                })
            })
            .collect()
    }

    async fn layer_index(&self, digest: &Digest) -> Result<Option<LayerIndexRow>, MetaError> {
        let row = sqlx::query(
            "SELECT format, status, reason, data, created_at FROM layer_indexes \
             WHERE digest = $1",
        )
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(LayerIndexRow {
                digest: digest.clone(),
                format: row.try_get(0)?,
                status: status(row.try_get(1)?)?,
                reason: row.try_get(2)?,
                data: row.try_get(3)?,
                created_at: row.try_get(4)?,
            })
        })
        .transpose()
    }

    async fn put_layer_index(&self, row: &LayerIndexRow) -> Result<(), MetaError> {
        sqlx::query(
            "INSERT INTO layer_indexes (digest, format, status, reason, data, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (digest) DO UPDATE SET \
             format = excluded.format, status = excluded.status, reason = excluded.reason, \
             data = excluded.data, created_at = excluded.created_at",
        )
        .bind(row.digest.to_string())
        .bind(row.format)
        .bind(row.status.as_str())
        .bind(&row.reason)
        .bind(&row.data)
        .bind(row.created_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn manifest_scan(&self, digest: &Digest) -> Result<Option<ManifestScan>, MetaError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCAN_COLUMNS} FROM manifest_scans WHERE digest = $1"
        )))
        .bind(digest.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(manifest_scan).transpose()
    }

    async fn queue_manifest_scan(
        &self,
        digest: &Digest,
        job: NewJob<'_>,
    ) -> Result<bool, MetaError> {
        let queued = ManifestScan::queued(digest.clone());
        let statements = vec![
            enqueue_statement(&job, queued.updated_at),
            // The only statement with a row: one if the scan's row is new.
            Statement::new(
                format!(
                    "INSERT INTO manifest_scans ({SCAN_COLUMNS}) \
                     VALUES ($1, $2, NULL, '[]', $3, NULL, NULL, 0, $4) \
                     ON CONFLICT (digest) DO NOTHING RETURNING 1"
                ),
                [
                    Text(digest.to_string()),
                    Text(queued.status.as_str().to_owned()),
                    Text(queued.findings),
                    Int(queued.updated_at),
                ],
            ),
        ];
        let rows = match self.dialect {
            Dialect::Sqlite => batch::sqlite_transaction(&self.write, statements).await?,
            Dialect::Postgres => {
                let mut tx = self.begin_write().await?;
                let rows = batch::run_each(&mut tx, &statements).await?;
                tx.commit().await?;
                rows
            }
        };
        Ok(!rows.is_empty())
    }

    async fn put_manifest_scan(&self, scan: &ManifestScan) -> Result<(), MetaError> {
        let layers: Vec<String> = scan.layers.iter().map(ToString::to_string).collect();
        let layers = serde_json::to_string(&layers).expect("strings serialize");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO manifest_scans ({SCAN_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (digest) DO UPDATE SET \
             status = excluded.status, reason = excluded.reason, layers = excluded.layers, \
             findings = excluded.findings, grade = excluded.grade, \
             next_drop_date = excluded.next_drop_date, generation = excluded.generation, \
             updated_at = excluded.updated_at"
        )))
        .bind(scan.digest.to_string())
        .bind(scan.status.as_str())
        .bind(&scan.reason)
        .bind(layers)
        .bind(&scan.findings)
        .bind(&scan.grade)
        .bind(&scan.next_drop_date)
        .bind(scan.generation)
        .bind(scan.updated_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn scans_to_rematch(
        &self,
        generation: i64,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<ManifestScan>, MetaError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SCAN_COLUMNS} FROM manifest_scans \
             WHERE status = 'scanned' AND generation < $1 AND ($2 IS NULL OR digest > $2) \
             ORDER BY digest LIMIT $3"
        )))
        .bind(generation)
        .bind(after.map(ToString::to_string))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(manifest_scan).collect()
    }

    async fn manifest_repositories(&self, digest: &Digest) -> Result<Vec<String>, MetaError> {
        Ok(sqlx::query_scalar(
            "SELECT r.name FROM manifests m JOIN repositories r ON r.id = m.repository_id \
             WHERE m.digest = $1 ORDER BY r.name",
        )
        .bind(digest.to_string())
        .fetch_all(&self.read)
        .await?)
    }

    async fn scan_policy(
        &self,
        namespace: &str,
        repository: &str,
    ) -> Result<Option<ScanPolicy>, MetaError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POLICY_COLUMNS} FROM scan_policies WHERE namespace = $1 AND repository = $2"
        )))
        .bind(namespace)
        .bind(repository)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(scan_policy).transpose()
    }

    async fn effective_scan_policy(
        &self,
        namespace: &str,
        repository: &str,
    ) -> Result<Option<ScanPolicy>, MetaError> {
        // The repository's own sorts first ('' is the smallest name).
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POLICY_COLUMNS} FROM scan_policies \
             WHERE namespace = $1 AND (repository = $2 OR repository = '') \
             ORDER BY repository DESC LIMIT 1"
        )))
        .bind(namespace)
        .bind(repository)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(scan_policy).transpose()
    }

    async fn set_scan_policy(&self, policy: &ScanPolicy) -> Result<(), MetaError> {
        let allowlist = serde_json::to_string(&policy.allowlist).expect("strings serialize");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO scan_policies ({POLICY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (namespace, repository) DO UPDATE SET \
             max_grade = excluded.max_grade, block_severity = excluded.block_severity, \
             allowlist = excluded.allowlist, updated_at = excluded.updated_at"
        )))
        .bind(&policy.namespace)
        .bind(&policy.repository)
        .bind(&policy.max_grade)
        .bind(&policy.block_severity)
        .bind(allowlist)
        .bind(policy.updated_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn delete_scan_policy(
        &self,
        namespace: &str,
        repository: &str,
    ) -> Result<bool, MetaError> {
        let deleted =
            sqlx::query("DELETE FROM scan_policies WHERE namespace = $1 AND repository = $2")
                .bind(namespace)
                .bind(repository)
                .execute(&self.write)
                .await?
                .rows_affected();
        Ok(deleted > 0)
    }

    async fn prune_scans(&self) -> Result<u64, MetaError> {
        let mut tx = self.begin_write().await?;
        let scans = sqlx::query(
            "DELETE FROM manifest_scans WHERE NOT EXISTS \
             (SELECT 1 FROM manifests m WHERE m.digest = manifest_scans.digest)",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let layers = sqlx::query(
            "DELETE FROM layer_indexes WHERE NOT EXISTS \
             (SELECT 1 FROM blobs b WHERE b.digest = layer_indexes.digest)",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(scans + layers)
    }
}
