//! Namespace quotas (Quay's model): one quota per namespace in bytes, with `Warning` limits
//! (an event when a push takes usage to the threshold, once per crossing) and at most one
//! `Reject` limit (a push that would take usage past it is refused, and so is starting an
//! upload once usage is there). Usage is what the metadata store counts for the namespace:
//! each digest linked into or stored as a manifest in one of its repositories, once however
//! many hold it — so it drops when tags are deleted and garbage collection removes the
//! manifests and links, and a refused push's layers count until collection takes them.
//! Nothing is computed for namespaces without a quota.

use bulwark_events::{Actor, Event, Origin};
use bulwark_meta::{
    MetaError, NamespaceQuota, QuotaLimit, QuotaLimitChange, QuotaLimitKind, now_millis,
};
use bulwark_oci::{Digest, RepoName, namespace_of};
use serde::{Deserialize, Serialize};

use crate::{Registry, RegistryError};

/// Usage against the configured quota (Quay's `quota_report`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaReport {
    /// Bytes the namespace holds.
    pub quota_bytes: u64,
    /// The quota's size in bytes.
    pub configured_quota: u64,
}

/// A limit as the management API shows it (Quay's shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitView {
    pub id: i64,
    /// `Warning` or `Reject`.
    #[serde(rename = "type")]
    pub kind: String,
    pub limit_percent: u8,
}

impl From<&QuotaLimit> for LimitView {
    fn from(l: &QuotaLimit) -> Self {
        LimitView {
            id: l.id,
            kind: kind_name(l.kind).to_owned(),
            limit_percent: l.threshold_percent,
        }
    }
}

/// A quota as the management API shows it (Quay's shape, with its usage), read back by the
/// CLI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaView {
    pub id: i64,
    pub limit_bytes: u64,
    pub limits: Vec<LimitView>,
    pub quota_report: QuotaReport,
}

/// Quay's spelling of a limit kind.
pub fn kind_name(kind: QuotaLimitKind) -> &'static str {
    match kind {
        QuotaLimitKind::Warning => "Warning",
        QuotaLimitKind::Reject => "Reject",
    }
}

/// A limit kind as Quay's clients send it (`Warning`, `Reject`, any case).
pub fn parse_kind(s: &str) -> Result<QuotaLimitKind, RegistryError> {
    match s.to_ascii_lowercase().as_str() {
        "warning" => Ok(QuotaLimitKind::Warning),
        "reject" => Ok(QuotaLimitKind::Reject),
        _ => Err(RegistryError::InvalidQuota(format!(
            "limit type {s:?} is neither Warning nor Reject"
        ))),
    }
}

fn check_bytes(limit_bytes: u64) -> Result<(), RegistryError> {
    if limit_bytes == 0 || limit_bytes > i64::MAX as u64 {
        return Err(RegistryError::InvalidQuota(format!(
            "limit_bytes must be between 1 and {}",
            i64::MAX
        )));
    }
    Ok(())
}

fn check_percent(percent: u8) -> Result<(), RegistryError> {
    if !(1..=100).contains(&percent) {
        return Err(RegistryError::InvalidQuota(
            "threshold_percent must be between 1 and 100".into(),
        ));
    }
    Ok(())
}

fn conflict(e: MetaError) -> RegistryError {
    match e {
        MetaError::Conflict(what) => RegistryError::InvalidQuota(format!("{what} already exists")),
        e => e.into(),
    }
}

/// The bytes past which pushes are refused, if the quota has a reject limit.
fn reject_bytes(quota: &NamespaceQuota) -> Option<u64> {
    quota
        .limits
        .iter()
        .find(|l| l.kind == QuotaLimitKind::Reject)
        .map(|l| l.threshold_bytes(quota.limit_bytes))
}

/// A manifest push a quota admitted: what the namespace holds with it.
pub(crate) struct Admitted {
    quota: NamespaceQuota,
    usage: u64,
}

impl Registry {
    async fn view(&self, quota: NamespaceQuota) -> Result<QuotaView, RegistryError> {
        let usage = self.meta.namespace_usage(&quota.namespace).await?;
        Ok(QuotaView {
            id: quota.id,
            limit_bytes: quota.limit_bytes,
            limits: quota.limits.iter().map(LimitView::from).collect(),
            quota_report: QuotaReport {
                quota_bytes: usage,
                configured_quota: quota.limit_bytes,
            },
        })
    }

    /// The namespace's quota `id`, with its usage: `QuotaUnknown` unless it is the
    /// namespace's.
    pub async fn quota_with_id(
        &self,
        namespace: &str,
        id: i64,
    ) -> Result<QuotaView, RegistryError> {
        match self.meta.namespace_quota(namespace).await? {
            Some(q) if q.id == id => self.view(q).await,
            _ => Err(RegistryError::QuotaUnknown(id)),
        }
    }

    /// The namespace's quota with its usage, if it has one (Quay lists zero or one).
    pub async fn quota(&self, namespace: &str) -> Result<Option<QuotaView>, RegistryError> {
        match self.meta.namespace_quota(namespace).await? {
            Some(q) => Ok(Some(self.view(q).await?)),
            None => Ok(None),
        }
    }

    /// Usage against the quota, for namespaces with one.
    pub async fn quota_report(
        &self,
        namespace: &str,
    ) -> Result<Option<QuotaReport>, RegistryError> {
        Ok(self.quota(namespace).await?.map(|q| q.quota_report))
    }

    pub async fn create_quota(
        &self,
        namespace: &str,
        limit_bytes: u64,
        actor: Actor,
        origin: Origin,
    ) -> Result<QuotaView, RegistryError> {
        check_bytes(limit_bytes)?;
        let quota = self
            .meta
            .create_quota(namespace, limit_bytes)
            .await
            .map_err(conflict)?;
        self.events.emit(
            Event::new("quota.create", actor, origin)
                .namespace(namespace)
                .target(quota.id.to_string())
                .details(serde_json::json!({ "limit_bytes": limit_bytes })),
        );
        self.view(quota).await
    }

    pub async fn set_quota_bytes(
        &self,
        namespace: &str,
        id: i64,
        limit_bytes: u64,
        actor: Actor,
        origin: Origin,
    ) -> Result<QuotaView, RegistryError> {
        check_bytes(limit_bytes)?;
        if !self
            .meta
            .set_quota_bytes(namespace, id, limit_bytes)
            .await?
        {
            return Err(RegistryError::QuotaUnknown(id));
        }
        self.events.emit(
            Event::new("quota.update", actor, origin)
                .namespace(namespace)
                .target(id.to_string())
                .details(serde_json::json!({ "limit_bytes": limit_bytes })),
        );
        self.quota_with_id(namespace, id).await
    }

    pub async fn delete_quota(
        &self,
        namespace: &str,
        id: i64,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        if !self.meta.delete_quota(namespace, id).await? {
            return Err(RegistryError::QuotaUnknown(id));
        }
        self.events.emit(
            Event::new("quota.delete", actor, origin)
                .namespace(namespace)
                .target(id.to_string()),
        );
        Ok(())
    }

    /// The limit `limit_id` of the namespace's quota `quota_id`.
    pub async fn quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        limit_id: i64,
    ) -> Result<LimitView, RegistryError> {
        self.quota_with_id(namespace, quota_id)
            .await?
            .limits
            .into_iter()
            .find(|l| l.id == limit_id)
            .ok_or(RegistryError::QuotaLimitUnknown(limit_id))
    }

    pub async fn add_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        kind: QuotaLimitKind,
        threshold_percent: u8,
        actor: Actor,
        origin: Origin,
    ) -> Result<LimitView, RegistryError> {
        check_percent(threshold_percent)?;
        let limit = self
            .meta
            .add_quota_limit(namespace, quota_id, kind, threshold_percent)
            .await
            .map_err(conflict)?
            .ok_or(RegistryError::QuotaUnknown(quota_id))?;
        self.events.emit(
            Event::new("quota_limit.create", actor, origin)
                .namespace(namespace)
                .target(limit.id.to_string())
                .details(serde_json::json!({
                    "quota_id": quota_id,
                    "type": kind_name(kind),
                    "threshold_percent": threshold_percent,
                })),
        );
        Ok(LimitView::from(&limit))
    }

    pub async fn update_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        limit_id: i64,
        change: QuotaLimitChange,
        actor: Actor,
        origin: Origin,
    ) -> Result<QuotaView, RegistryError> {
        if let Some(percent) = change.threshold_percent {
            check_percent(percent)?;
        }
        self.quota_with_id(namespace, quota_id).await?;
        if !self
            .meta
            .update_quota_limit(namespace, quota_id, limit_id, change)
            .await
            .map_err(conflict)?
        {
            return Err(RegistryError::QuotaLimitUnknown(limit_id));
        }
        self.events.emit(
            Event::new("quota_limit.update", actor, origin)
                .namespace(namespace)
                .target(limit_id.to_string())
                .details(serde_json::json!({
                    "quota_id": quota_id,
                    "type": change.kind.map(kind_name),
                    "threshold_percent": change.threshold_percent,
                })),
        );
        self.quota_with_id(namespace, quota_id).await
    }

    pub async fn delete_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        limit_id: i64,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        self.quota_with_id(namespace, quota_id).await?;
        if !self
            .meta
            .delete_quota_limit(namespace, quota_id, limit_id)
            .await?
        {
            return Err(RegistryError::QuotaLimitUnknown(limit_id));
        }
        self.events.emit(
            Event::new("quota_limit.delete", actor, origin)
                .namespace(namespace)
                .target(limit_id.to_string())
                .details(serde_json::json!({ "quota_id": quota_id })),
        );
        Ok(())
    }

    /// Refuses to start adding content to `repo` while its namespace is at or past its
    /// reject limit — unless the content is `digest` and the namespace holds it already (a
    /// mount or monolithic push of a layer another of its repositories has adds nothing).
    pub(crate) async fn refuse_when_full(
        &self,
        repo: &RepoName,
        digest: Option<&Digest>,
    ) -> Result<(), RegistryError> {
        let namespace = namespace_of(repo.as_str());
        let Some(quota) = self.meta.namespace_quota(namespace).await? else {
            return Ok(());
        };
        let Some(limit) = reject_bytes(&quota) else {
            return Ok(());
        };
        let usage = self.meta.namespace_usage(namespace).await?;
        if usage < limit {
            return Ok(());
        }
        if let Some(digest) = digest
            && self.meta.namespace_holds(namespace, digest).await?
        {
            return Ok(());
        }
        Err(self.refuse(repo, "blob upload", usage, limit))
    }

    /// Checks a manifest push of `size` bytes under `digest` against the namespace's reject
    /// limit. The layers it references are linked already, so usage counts them; the
    /// manifest adds its own bytes unless the namespace holds it. A push adding nothing (a
    /// tag moved to a manifest the namespace has) passes even over the limit.
    pub(crate) async fn admit_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: usize,
    ) -> Result<Option<Admitted>, RegistryError> {
        let namespace = namespace_of(repo.as_str());
        let Some(quota) = self.meta.namespace_quota(namespace).await? else {
            return Ok(None);
        };
        let added = if self.meta.namespace_holds(namespace, digest).await? {
            0
        } else {
            size as u64
        };
        let usage = self.meta.namespace_usage(namespace).await? + added;
        if let Some(limit) = reject_bytes(&quota)
            && added > 0
            && usage > limit
        {
            return Err(self.refuse(repo, &digest.to_string(), usage, limit));
        }
        Ok(Some(Admitted { quota, usage }))
    }

    /// After an admitted push: a `quota.warning` for each warning limit the push took usage
    /// to, once per crossing; limits usage is below again are re-armed.
    pub(crate) async fn warn_after_push(
        &self,
        repo: &RepoName,
        admitted: Admitted,
    ) -> Result<(), RegistryError> {
        let Admitted { quota, usage } = admitted;
        for limit in quota
            .limits
            .iter()
            .filter(|l| l.kind == QuotaLimitKind::Warning)
        {
            let threshold = limit.threshold_bytes(quota.limit_bytes);
            let crossed = usage >= threshold;
            if crossed == limit.crossed_at.is_some() {
                continue;
            }
            let changed = self
                .meta
                .set_quota_limit_crossed(limit.id, crossed, now_millis())
                .await?;
            if changed && crossed {
                self.events.emit(
                    Event::new("quota.warning", Actor::system(), Origin::default())
                        .repository(repo.as_str())
                        .target(limit.id.to_string())
                        .details(serde_json::json!({
                            "usage_bytes": usage,
                            "limit_bytes": quota.limit_bytes,
                            "threshold_percent": limit.threshold_percent,
                            "threshold_bytes": threshold,
                        })),
                );
            }
        }
        Ok(())
    }

    /// The refusal of a push to `repo` (`what`: a manifest digest or a blob upload), with
    /// its event — the system's: this layer does not know the pusher (the API records a
    /// refused manifest push as `push.failure` with its caller).
    fn refuse(&self, repo: &RepoName, what: &str, usage: u64, limit: u64) -> RegistryError {
        let namespace = namespace_of(repo.as_str()).to_owned();
        self.events.emit(
            Event::new("quota.reject", Actor::system(), Origin::default())
                .repository(repo.as_str())
                .target(what)
                .details(serde_json::json!({ "usage_bytes": usage, "reject_bytes": limit })),
        );
        RegistryError::QuotaExceeded {
            namespace,
            usage,
            limit,
        }
    }
}
