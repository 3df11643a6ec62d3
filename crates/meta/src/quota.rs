//! What namespace quotas need from the metadata store: the quota and its limits, and the
//! namespace's usage. The rules (what a push may add, when a warning is due) live in the
//! registry layer.

use bulwark_oci::Digest;

use crate::MetaError;

/// What a quota limit does when usage reaches its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaLimitKind {
    /// An event when usage crosses the threshold.
    Warning,
    /// Pushes that would take usage past the threshold are refused.
    Reject,
}

impl QuotaLimitKind {
    pub fn spelling(self) -> &'static str {
        match self {
            QuotaLimitKind::Warning => "warning",
            QuotaLimitKind::Reject => "reject",
        }
    }

    pub fn parse(s: &str) -> Result<Self, MetaError> {
        match s {
            "warning" => Ok(QuotaLimitKind::Warning),
            "reject" => Ok(QuotaLimitKind::Reject),
            other => Err(MetaError::Corrupt(format!("quota limit kind {other:?}"))),
        }
    }
}

/// A threshold of a quota, in percent of its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaLimit {
    pub id: i64,
    pub kind: QuotaLimitKind,
    pub threshold_percent: u8,
    /// Warning limits: when a push took usage to the threshold, until usage falls below it.
    pub crossed_at: Option<i64>,
}

impl QuotaLimit {
    /// The threshold in bytes of a quota of `limit_bytes`.
    pub fn threshold_bytes(&self, limit_bytes: u64) -> u64 {
        (u128::from(limit_bytes) * u128::from(self.threshold_percent) / 100) as u64
    }
}

/// A namespace's quota with its limits (ordered by id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceQuota {
    pub id: i64,
    pub namespace: String,
    pub limit_bytes: u64,
    pub limits: Vec<QuotaLimit>,
    pub created_at: i64,
}

/// Changes to a limit; `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default)]
pub struct QuotaLimitChange {
    pub kind: Option<QuotaLimitKind>,
    pub threshold_percent: Option<u8>,
}

#[async_trait::async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// The namespace's quota, if it has one.
    async fn namespace_quota(&self, namespace: &str) -> Result<Option<NamespaceQuota>, MetaError>;

    /// A quota for `namespace` (`MetaError::Conflict` if it has one).
    async fn create_quota(
        &self,
        namespace: &str,
        limit_bytes: u64,
    ) -> Result<NamespaceQuota, MetaError>;

    /// Returns false if the namespace has no quota `id`.
    async fn set_quota_bytes(
        &self,
        namespace: &str,
        id: i64,
        limit_bytes: u64,
    ) -> Result<bool, MetaError>;

    /// Deletes the quota and its limits. Returns false if the namespace has no quota `id`.
    async fn delete_quota(&self, namespace: &str, id: i64) -> Result<bool, MetaError>;

    /// A limit on quota `quota_id` of `namespace`; `None` if there is no such quota,
    /// `MetaError::Conflict` for a second reject limit or a duplicate.
    async fn add_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        kind: QuotaLimitKind,
        threshold_percent: u8,
    ) -> Result<Option<QuotaLimit>, MetaError>;

    /// Changes a limit (and re-arms its warning). Returns false if there is no such limit
    /// of that quota of that namespace; `MetaError::Conflict` as for `add_quota_limit`.
    async fn update_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        limit_id: i64,
        change: QuotaLimitChange,
    ) -> Result<bool, MetaError>;

    /// Returns false if there is no such limit of that quota of that namespace.
    async fn delete_quota_limit(
        &self,
        namespace: &str,
        quota_id: i64,
        limit_id: i64,
    ) -> Result<bool, MetaError>;

    /// Records that usage reached a warning limit (`crossed`) or is below it again.
    /// Returns whether that changed: of concurrent pushes crossing a threshold, one sees
    /// true.
    async fn set_quota_limit_crossed(
        &self,
        limit_id: i64,
        crossed: bool,
        now: i64,
    ) -> Result<bool, MetaError>;

    /// Bytes held by the namespace's repositories: each distinct digest linked into one of
    /// them (layers, configs) or stored as a manifest in one counted once.
    async fn namespace_usage(&self, namespace: &str) -> Result<u64, MetaError>;

    /// Whether a repository of the namespace links `digest` or stores it as a manifest
    /// (so that it adds nothing to the usage).
    async fn namespace_holds(&self, namespace: &str, digest: &Digest) -> Result<bool, MetaError>;
}
