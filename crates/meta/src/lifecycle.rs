//! What the tag lifecycle and garbage collection need from the metadata store: tag history
//! (the Time Machine), expiry and immutability, per-namespace settings, and the steps of
//! an online collection. The rules (what is reachable, which windows apply) live in the
//! registry layer; here each step is one transaction.

use std::collections::HashSet;

use bulwark_oci::Digest;

use crate::{MetaError, NewManifest};

/// One assignment of a tag to a manifest: the live one, or one in the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagRecord {
    pub name: String,
    pub manifest_digest: Digest,
    pub start_at: i64,
    /// When the tag stopped pointing there (moved, deleted, or expired — an expiry in the
    /// past counts as an end even before the expiry job recorded it); `None` while live.
    pub end_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub immutable: bool,
}

/// Which tag rows a history listing returns, newest first.
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryQuery<'a> {
    /// Only the rows of this tag.
    pub tag: Option<&'a str>,
    /// Only live rows.
    pub only_active: bool,
    /// Only rows live at this time (milliseconds): the repository as it was then.
    pub at: Option<i64>,
    /// Only rows live now or that ended at or after this time (the Time Machine window).
    pub ended_since: Option<i64>,
    pub offset: u32,
    pub limit: u32,
}

/// What a tag move sets on the tag's new live row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagOptions {
    /// The tag becomes immutable (an immutability rule matched).
    pub immutable: bool,
    /// The tag expires then (from a label or annotation). The registry sets it on an
    /// immutable tag only where the rule allows expiry; a tag immutable already keeps its
    /// own expiry unless a rule applies now.
    pub expires_at: Option<i64>,
}

/// A tag ended by the expiry job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredTag {
    pub repository: String,
    pub tag: String,
    pub manifest_digest: Digest,
    pub expired_at: i64,
}

/// Tags matching `pattern` (a regular expression over the whole tag name) are made
/// immutable on push, in `repository` or, without one, in every repository of `namespace`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImmutabilityRule {
    pub id: i64,
    pub namespace: String,
    pub repository: Option<String>,
    pub pattern: String,
    /// The tags it makes immutable may still expire.
    pub allow_expiry: bool,
    pub created_at: i64,
}

/// Among the live tags matching `pattern` in `repository` (or each repository of
/// `namespace`), keep the `keep_count` most recently pushed and those pushed within
/// `keep_secs`; the others are pruned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub id: i64,
    pub namespace: String,
    pub repository: Option<String>,
    pub pattern: String,
    pub keep_count: Option<u32>,
    pub keep_secs: Option<u64>,
    pub created_at: i64,
}

/// What a new retention policy keeps; at least one of the two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    pub count: Option<u32>,
    pub secs: Option<u64>,
}

/// A manifest as garbage collection sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphManifest {
    pub id: i64,
    pub digest: String,
    pub created_at: i64,
    pub subject: Option<String>,
    /// Digests of the manifests it lists (an index).
    pub children: Vec<String>,
    /// A live tag or a tag row still in the Time Machine window points at it.
    pub tagged: bool,
}

/// Times that bound one repository's collection (milliseconds).
#[derive(Clone, Copy, Debug)]
pub struct RepositoryCutoffs {
    /// Tag rows that ended before this leave the history.
    pub history_before: i64,
    /// Manifests created and links touched before this may go; later ones are in the grace
    /// period (a push may be about to reference them).
    pub grace_before: i64,
}

/// What one repository's collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositoryCollected {
    pub history_rows: u64,
    pub manifests: Vec<Digest>,
    pub links: u64,
}

/// Chooses, from a repository's manifests, the ids of those to delete.
pub type UnreachableFn<'a> = &'a (dyn Fn(&[GraphManifest]) -> Vec<i64> + Send + Sync);

#[async_trait::async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    /// `MetaStore::put_manifest` with what the tag move sets; refuses to move an immutable
    /// tag (`MetaError::ImmutableTag`).
    async fn put_manifest_with(
        &self,
        manifest: NewManifest<'_>,
        tag: TagOptions,
    ) -> Result<(), MetaError>;

    /// Tag rows of a repository, newest first; `None` if the repository does not exist.
    async fn tag_history(
        &self,
        repository: &str,
        query: &HistoryQuery<'_>,
    ) -> Result<Option<Vec<TagRecord>>, MetaError>;

    /// Points `tag` at `digest` again if one of the tag's rows pointed there and is live or
    /// ended at or after `ended_since`, and the manifest is still stored. Returns false if
    /// not.
    async fn restore_tag(
        &self,
        repository: &str,
        tag: &str,
        digest: &Digest,
        ended_since: i64,
        options: TagOptions,
    ) -> Result<bool, MetaError>;

    /// Sets or clears a live tag's expiry; an immutable tag takes one only when
    /// `immutable_may_expire` (a rule allows it). Returns false if the tag is not live.
    async fn set_tag_expiry(
        &self,
        repository: &str,
        tag: &str,
        expires_at: Option<i64>,
        immutable_may_expire: bool,
    ) -> Result<bool, MetaError>;

    /// Marks a live tag immutable (clearing any expiry) or mutable. Returns false if the tag
    /// is not live.
    async fn set_tag_immutable(
        &self,
        repository: &str,
        tag: &str,
        immutable: bool,
    ) -> Result<bool, MetaError>;

    /// Deletes every row of a tag, the live one and its history: nothing is left to restore.
    /// Returns how many rows went.
    async fn purge_tag(&self, repository: &str, tag: &str) -> Result<u64, MetaError>;

    /// Ends up to `limit` live tags whose expiry is at or before `now` (immutable ones have
    /// an expiry only where a rule allowed it).
    async fn expire_tags(&self, now: i64, limit: u32) -> Result<Vec<ExpiredTag>, MetaError>;

    /// The namespace's Time Machine window in seconds, if set.
    async fn time_machine_window(&self, namespace: &str) -> Result<Option<u64>, MetaError>;

    async fn set_time_machine_window(&self, namespace: &str, secs: u64) -> Result<(), MetaError>;

    /// The rules of `namespace`; with `repository`, only those that apply to it.
    async fn immutability_rules(
        &self,
        namespace: &str,
        repository: Option<&str>,
    ) -> Result<Vec<ImmutabilityRule>, MetaError>;

    async fn add_immutability_rule(
        &self,
        namespace: &str,
        repository: Option<&str>,
        pattern: &str,
        allow_expiry: bool,
    ) -> Result<ImmutabilityRule, MetaError>;

    /// Returns whether the rule existed in `namespace`.
    async fn delete_immutability_rule(&self, namespace: &str, id: i64) -> Result<bool, MetaError>;

    /// The retention policies of `namespace` (with `repository`, those that apply to it),
    /// or of every namespace without one.
    async fn retention_policies(
        &self,
        namespace: Option<&str>,
        repository: Option<&str>,
    ) -> Result<Vec<RetentionPolicy>, MetaError>;

    async fn add_retention_policy(
        &self,
        namespace: &str,
        repository: Option<&str>,
        pattern: &str,
        keep: Keep,
    ) -> Result<RetentionPolicy, MetaError>;

    /// Returns whether the policy existed in `namespace`.
    async fn delete_retention_policy(&self, namespace: &str, id: i64) -> Result<bool, MetaError>;

    /// Ends the live row of `tag` that started at `started_at`, if it is still live,
    /// unexpired and mutable: a tag moved or made immutable since a retention run listed it
    /// stays. Returns whether it ended.
    async fn prune_tag(
        &self,
        repository: &str,
        tag: &str,
        started_at: i64,
    ) -> Result<bool, MetaError>;

    /// Size of `digest` if visible in `repository`, for a client about to rely on it (a
    /// `HEAD`): a link last touched before `refresh_before` is touched now, restarting its
    /// grace period, or reported absent if collection removed it meanwhile.
    async fn touch_repository_blob(
        &self,
        repository: &str,
        digest: &Digest,
        refresh_before: i64,
    ) -> Result<Option<u64>, MetaError>;

    /// Announces that upload `id` is about to commit bytes under `digest`, so collection
    /// leaves them alone until the blob is linked (which removes the intent). Returns false,
    /// announcing nothing, while collection is deleting that blob's bytes.
    async fn announce_blob(&self, id: &str, digest: &Digest) -> Result<bool, MetaError>;

    /// Intents older than `before` belong to uploads that died; removes them.
    async fn purge_intents(&self, before: i64) -> Result<u64, MetaError>;

    /// All repository names.
    async fn all_repositories(&self) -> Result<Vec<String>, MetaError>;

    /// Collects one repository in one transaction that no push to it runs beside: drops
    /// tag history before `cutoffs.history_before`, deletes the manifests `unreachable`
    /// picks from the rest, then the links no remaining manifest references that were
    /// last touched before `cutoffs.grace_before`.
    async fn collect_repository(
        &self,
        repository: &str,
        cutoffs: RepositoryCutoffs,
        unreachable: UnreachableFn<'_>,
    ) -> Result<RepositoryCollected, MetaError>;

    /// Blobs no repository links and no manifest references, created before
    /// `created_before`, and blobs whose deletion started: candidates for collection.
    async fn unreferenced_blobs(
        &self,
        created_before: i64,
        limit: u32,
    ) -> Result<Vec<Digest>, MetaError>;

    /// Marks as being deleted those of `digests` that are still unreferenced and that no
    /// intent newer than `intents_since` names (or that are marked already), in one
    /// transaction. Returns the marked ones: from then on no link to them can be made and
    /// their bytes may go.
    async fn mark_blobs_deleting(
        &self,
        digests: &[Digest],
        intents_since: i64,
    ) -> Result<Vec<Digest>, MetaError>;

    /// Those of `digests` that have a blob row.
    async fn stored_blobs(&self, digests: &[Digest]) -> Result<HashSet<Digest>, MetaError>;

    /// For bytes in storage that no blob row names (a crash between commit and link):
    /// records them as being deleted unless an intent newer than `intents_since` names them
    /// or a row appeared. Returns whether they may go.
    async fn claim_orphan_blob(
        &self,
        digest: &Digest,
        size: u64,
        intents_since: i64,
    ) -> Result<bool, MetaError>;

    /// Removes the rows of the blobs of `digests` marked as being deleted, once their bytes
    /// are gone, in one transaction. Returns the sizes of the rows removed.
    async fn forget_blobs(&self, digests: &[Digest]) -> Result<Vec<u64>, MetaError>;
}
