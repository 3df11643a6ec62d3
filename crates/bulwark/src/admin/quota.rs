//! `bulwark quota show|set|delete NAMESPACE`: a namespace's quota, its limits and usage,
//! over the same two backends as the other administration commands (locally the registry
//! as the operator, remotely the superuser routes of the management API).

use anyhow::{Result, bail};
use bulwark_registry::{QuotaLimitChange, QuotaLimitKind, QuotaView, kind_name};
use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::local::Local;
use super::remote::Remote;
use super::{Output, table};

#[derive(Subcommand)]
pub enum QuotaCommand {
    /// The namespace's quota, its limits and the bytes it holds.
    Show { namespace: String },
    /// Set the namespace's quota (created if it has none, with a reject limit at 100 %
    /// unless --reject says otherwise); --warn replaces the warning limits, --reject the
    /// reject limit.
    Set {
        namespace: String,
        /// Bytes, or with a unit: 500MB, 10GiB (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB).
        #[arg(long, value_parser = parse_size)]
        limit: u64,
        /// Percent of the limit at which a push emits a quota.warning event (repeatable).
        #[arg(long, value_name = "PERCENT")]
        warn: Vec<u8>,
        /// Percent of the limit past which pushes are refused.
        #[arg(long, value_name = "PERCENT")]
        reject: Option<u8>,
    },
    /// Remove the namespace's quota and its limits.
    Delete { namespace: String },
}

/// `10GiB`, `500MB`, `1048576`: a byte count, in decimal or binary units.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 10GiB or 500MB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// What the quota commands need of a backend.
pub trait Quotas {
    async fn quota(&self, namespace: &str) -> Result<Option<QuotaView>>;
    async fn create_quota(&self, namespace: &str, limit_bytes: u64) -> Result<QuotaView>;
    async fn set_quota_bytes(&self, namespace: &str, id: i64, limit_bytes: u64) -> Result<()>;
    async fn delete_quota(&self, namespace: &str, id: i64) -> Result<()>;
    async fn add_quota_limit(
        &self,
        namespace: &str,
        id: i64,
        kind: QuotaLimitKind,
        percent: u8,
    ) -> Result<()>;
    async fn set_quota_limit(
        &self,
        namespace: &str,
        id: i64,
        limit_id: i64,
        percent: u8,
    ) -> Result<()>;
    async fn delete_quota_limit(&self, namespace: &str, id: i64, limit_id: i64) -> Result<()>;
}

pub async fn quota(backend: &impl Quotas, command: QuotaCommand) -> Result<Output> {
    match command {
        QuotaCommand::Show { namespace } => match backend.quota(&namespace).await? {
            Some(q) => Output::new(describe(&namespace, &q), q),
            None => Output::new(format!("{namespace} has no quota"), json!(null)),
        },
        QuotaCommand::Set {
            namespace,
            limit,
            warn,
            reject,
        } => {
            let (quota, created) = match backend.quota(&namespace).await? {
                Some(q) => {
                    backend.set_quota_bytes(&namespace, q.id, limit).await?;
                    (q, false)
                }
                None => (backend.create_quota(&namespace, limit).await?, true),
            };
            let id = quota.id;
            let has = |kind: QuotaLimitKind| {
                let name = kind_name(kind);
                quota.limits.iter().filter(move |l| l.kind == name)
            };
            if !warn.is_empty() {
                for old in has(QuotaLimitKind::Warning).filter(|l| !warn.contains(&l.limit_percent))
                {
                    backend.delete_quota_limit(&namespace, id, old.id).await?;
                }
                for &percent in &warn {
                    if !has(QuotaLimitKind::Warning).any(|l| l.limit_percent == percent) {
                        backend
                            .add_quota_limit(&namespace, id, QuotaLimitKind::Warning, percent)
                            .await?;
                    }
                }
            }
            let reject = reject.or(created.then_some(100));
            if let Some(percent) = reject {
                match has(QuotaLimitKind::Reject).next() {
                    Some(old) if old.limit_percent == percent => {}
                    Some(old) => {
                        backend
                            .set_quota_limit(&namespace, id, old.id, percent)
                            .await?
                    }
                    None => {
                        backend
                            .add_quota_limit(&namespace, id, QuotaLimitKind::Reject, percent)
                            .await?
                    }
                }
            }
            let Some(quota) = backend.quota(&namespace).await? else {
                bail!("the quota of {namespace} was deleted meanwhile");
            };
            Output::new(describe(&namespace, &quota), quota)
        }
        QuotaCommand::Delete { namespace } => {
            let Some(quota) = backend.quota(&namespace).await? else {
                bail!("{namespace} has no quota");
            };
            backend.delete_quota(&namespace, quota.id).await?;
            Output::done(format!("deleted the quota of {namespace}"))
        }
    }
}

fn describe(namespace: &str, q: &QuotaView) -> String {
    let used = q.quota_report.quota_bytes;
    let percent = used as f64 * 100.0 / q.limit_bytes.max(1) as f64;
    let rows = q.limits.iter().map(|l| {
        vec![
            l.id.to_string(),
            l.kind.clone(),
            format!("{} %", l.limit_percent),
        ]
    });
    format!(
        "{namespace}: {used} of {} bytes used ({percent:.1} %)\n{}",
        q.limit_bytes,
        table(&["LIMIT", "TYPE", "AT"], rows)
    )
}

impl Quotas for Local {
    async fn quota(&self, namespace: &str) -> Result<Option<QuotaView>> {
        Ok(self.registry().await?.quota(namespace).await?)
    }

    async fn create_quota(&self, namespace: &str, limit_bytes: u64) -> Result<QuotaView> {
        self.namespace_account(namespace).await?;
        let (actor, origin) = self.actor();
        Ok(self
            .registry()
            .await?
            .create_quota(namespace, limit_bytes, actor, origin)
            .await?)
    }

    async fn set_quota_bytes(&self, namespace: &str, id: i64, limit_bytes: u64) -> Result<()> {
        let (actor, origin) = self.actor();
        self.registry()
            .await?
            .set_quota_bytes(namespace, id, limit_bytes, actor, origin)
            .await?;
        Ok(())
    }

    async fn delete_quota(&self, namespace: &str, id: i64) -> Result<()> {
        let (actor, origin) = self.actor();
        Ok(self
            .registry()
            .await?
            .delete_quota(namespace, id, actor, origin)
            .await?)
    }

    async fn add_quota_limit(
        &self,
        namespace: &str,
        id: i64,
        kind: QuotaLimitKind,
        percent: u8,
    ) -> Result<()> {
        let (actor, origin) = self.actor();
        self.registry()
            .await?
            .add_quota_limit(namespace, id, kind, percent, actor, origin)
            .await?;
        Ok(())
    }

    async fn set_quota_limit(
        &self,
        namespace: &str,
        id: i64,
        limit_id: i64,
        percent: u8,
    ) -> Result<()> {
        let (actor, origin) = self.actor();
        let change = QuotaLimitChange {
            kind: None,
            threshold_percent: Some(percent),
        };
        self.registry()
            .await?
            .update_quota_limit(namespace, id, limit_id, change, actor, origin)
            .await?;
        Ok(())
    }

    async fn delete_quota_limit(&self, namespace: &str, id: i64, limit_id: i64) -> Result<()> {
        let (actor, origin) = self.actor();
        Ok(self
            .registry()
            .await?
            .delete_quota_limit(namespace, id, limit_id, actor, origin)
            .await?)
    }
}

impl Quotas for Remote {
    async fn quota(&self, namespace: &str) -> Result<Option<QuotaView>> {
        let url = self.url(&["superuser", "organization", namespace, "quota"]);
        let quotas: Vec<QuotaView> = self.call(Method::GET, url, None).await?;
        Ok(quotas.into_iter().next())
    }

    /// The superuser's route for the kind of account the namespace is.
    async fn create_quota(&self, namespace: &str, limit_bytes: u64) -> Result<QuotaView> {
        let organization = self.url(&["organization", namespace]);
        let kind = match self.act(Method::GET, organization, None).await {
            Ok(()) => "organization",
            Err(_) => "users",
        };
        let url = self.url(&["superuser", kind, namespace, "quota"]);
        let body = json!({ "limit_bytes": limit_bytes });
        self.call(Method::POST, url, Some(body)).await
    }

    async fn set_quota_bytes(&self, namespace: &str, id: i64, limit_bytes: u64) -> Result<()> {
        let url = self.quota_url(namespace, id, &[]);
        let body = json!({ "limit_bytes": limit_bytes });
        self.act(Method::PUT, url, Some(body)).await
    }

    async fn delete_quota(&self, namespace: &str, id: i64) -> Result<()> {
        self.act(Method::DELETE, self.quota_url(namespace, id, &[]), None)
            .await
    }

    async fn add_quota_limit(
        &self,
        namespace: &str,
        id: i64,
        kind: QuotaLimitKind,
        percent: u8,
    ) -> Result<()> {
        let url = self.quota_url(namespace, id, &["limit"]);
        let body = json!({ "type": kind_name(kind), "threshold_percent": percent });
        self.act(Method::POST, url, Some(body)).await
    }

    async fn set_quota_limit(
        &self,
        namespace: &str,
        id: i64,
        limit_id: i64,
        percent: u8,
    ) -> Result<()> {
        let url = self.quota_url(namespace, id, &["limit", &limit_id.to_string()]);
        let body = json!({ "threshold_percent": percent });
        self.act(Method::PUT, url, Some(body)).await
    }

    async fn delete_quota_limit(&self, namespace: &str, id: i64, limit_id: i64) -> Result<()> {
        let url = self.quota_url(namespace, id, &["limit", &limit_id.to_string()]);
        self.act(Method::DELETE, url, None).await
    }
}

impl Local {
    /// The namespace must be an account (a user or an organization).
    async fn namespace_account(&self, namespace: &str) -> Result<()> {
        self.accounts().namespace(namespace).await?;
        Ok(())
    }
}

impl Remote {
    /// `…/organization/{namespace}/quota/{id}/rest…`: the routes that take any namespace.
    fn quota_url(&self, namespace: &str, id: i64, rest: &[&str]) -> reqwest::Url {
        let id = id.to_string();
        let mut segments = vec!["organization", namespace, "quota", &id];
        segments.extend(rest);
        self.url(&segments)
    }
}
