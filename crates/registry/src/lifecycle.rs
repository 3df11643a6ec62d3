//! Tag lifecycle: the Time Machine (history, restore, the repository at a point in time,
//! a window per namespace), expiry (set through the API or by a label or annotation at
//! push, ended by a job), and immutability (per tag, or by namespace and repository rules
//! applied at push). Every change emits an event.

use std::time::Duration;

use bulwark_events::{Actor, Event, Origin};
use bulwark_meta::{HistoryQuery, ImmutabilityRule, TagOptions, TagRecord, now_millis};
use bulwark_oci::{Digest, ParsedManifest, RepoName, Tag, namespace_of};
use regex::Regex;

use crate::{Registry, RegistryError};

/// Label or annotation keys that set a tag's expiry at push (`<N>[smhdw]` after the push).
pub const EXPIRES_AFTER_KEYS: [&str; 2] = ["quay.expires-after", "bulwark.expires-after"];

/// Configuration images' media types whose labels are read at push.
const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A configuration blob larger than this is not read for labels.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// How the tag lifecycle and garbage collection behave; each has a configuration key.
#[derive(Clone, Debug)]
pub struct LifecycleSettings {
    /// The Time Machine windows a namespace may choose from.
    pub time_machine_options: Vec<Duration>,
    /// The window of namespaces that chose none.
    pub time_machine_default: Duration,
    /// How long an untagged manifest or an unreferenced link stays after its last push:
    /// a client may be about to reference it.
    pub gc_grace: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        LifecycleSettings {
            time_machine_options: [0, DAY, 7 * DAY, 14 * DAY, 28 * DAY]
                .map(Duration::from_secs)
                .to_vec(),
            time_machine_default: Duration::from_secs(14 * DAY),
            gc_grace: Duration::from_secs(3600),
        }
    }
}

/// `<N><unit>` with unit `s`, `m`, `h`, `d` or `w` (Quay's `expires-after` format).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 24 * 3600,
        'w' => 7 * 24 * 3600,
        _ => return None,
    };
    n.checked_mul(secs).map(Duration::from_secs)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One page of a tag history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    pub tags: Vec<TagRecord>,
    pub has_more: bool,
}

/// What a history listing asks for (see `HistoryQuery`; the window is the registry's).
#[derive(Clone, Copy, Debug, Default)]
pub struct HistoryRequest<'a> {
    pub tag: Option<&'a Tag>,
    pub only_active: bool,
    pub at: Option<i64>,
    /// 1-based.
    pub page: u32,
    pub limit: u32,
}

impl Registry {
    fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    /// The namespace's Time Machine window.
    pub async fn time_machine_window(&self, namespace: &str) -> Result<Duration, RegistryError> {
        Ok(self
            .meta
            .time_machine_window(namespace)
            .await?
            .map_or(self.lifecycle.time_machine_default, Duration::from_secs))
    }

    /// The namespace's window with the options it may choose from, as the management API
    /// and the CLI show it.
    pub async fn window_view(&self, namespace: &str) -> Result<WindowView, RegistryError> {
        Ok(WindowView {
            tag_expiration_s: self.time_machine_window(namespace).await?.as_secs(),
            tag_expiration_options: self
                .lifecycle
                .time_machine_options
                .iter()
                .map(Duration::as_secs)
                .collect(),
        })
    }

    /// Sets the namespace's window to one of the allowed options.
    pub async fn set_time_machine_window(
        &self,
        namespace: &str,
        window: Duration,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        if !self.lifecycle.time_machine_options.contains(&window) {
            return Err(RegistryError::WindowNotAllowed {
                secs: window.as_secs(),
                allowed: self
                    .lifecycle
                    .time_machine_options
                    .iter()
                    .map(Duration::as_secs)
                    .collect(),
            });
        }
        self.meta
            .set_time_machine_window(namespace, window.as_secs())
            .await?;
        self.emit(
            Event::new("namespace.time_machine", actor, origin)
                .namespace(namespace)
                .details(serde_json::json!({ "seconds": window.as_secs() })),
        );
        Ok(())
    }

    /// When the window of `repo`'s namespace began, as of now.
    async fn window_start(&self, repo: &RepoName) -> Result<i64, RegistryError> {
        let window = self
            .time_machine_window(namespace_of(repo.as_str()))
            .await?;
        Ok(now_millis().saturating_sub(millis(window)))
    }

    /// Tag rows within the window, newest first.
    pub async fn tag_history(
        &self,
        repo: &RepoName,
        request: HistoryRequest<'_>,
    ) -> Result<HistoryPage, RegistryError> {
        let limit = self.page_limit(Some(request.limit.max(1)));
        let query = HistoryQuery {
            tag: request.tag.map(Tag::as_str),
            only_active: request.only_active,
            at: request.at,
            ended_since: Some(self.window_start(repo).await?),
            offset: request.page.saturating_sub(1).saturating_mul(limit),
            limit: limit + 1,
        };
        let mut tags = self
            .meta
            .tag_history(repo.as_str(), &query)
            .await?
            .ok_or(RegistryError::NameUnknown)?;
        let has_more = tags.len() > limit as usize;
        tags.truncate(limit as usize);
        Ok(HistoryPage { tags, has_more })
    }

    /// Points `tag` again at a manifest it pointed at within the window.
    pub async fn restore_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        let options = TagOptions {
            immutable: self.rules_for(repo, tag).await?.immutable,
            expires_at: None,
        };
        let since = self.window_start(repo).await?;
        if !self
            .meta
            .restore_tag(repo.as_str(), tag.as_str(), digest, since, options)
            .await?
        {
            return Err(RegistryError::NotInHistory {
                tag: tag.to_string(),
                digest: digest.clone(),
            });
        }
        self.emit(
            Event::new("tag.restore", actor, origin)
                .repository(repo.as_str())
                .target(tag.as_str())
                .details(serde_json::json!({ "manifest_digest": digest.to_string() })),
        );
        Ok(())
    }

    /// Sets (or clears) when a live tag expires; an immutable tag takes an expiry only
    /// where its rules allow it.
    pub async fn set_tag_expiry(
        &self,
        repo: &RepoName,
        tag: &Tag,
        expires_at: Option<i64>,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        let may_expire = self.rules_for(repo, tag).await?.may_expire;
        if !self
            .meta
            .set_tag_expiry(repo.as_str(), tag.as_str(), expires_at, may_expire)
            .await?
        {
            return Err(self.missing(repo, RegistryError::ManifestUnknown).await?);
        }
        self.emit(
            Event::new("tag.expiration", actor, origin)
                .repository(repo.as_str())
                .target(tag.as_str())
                .details(serde_json::json!({ "expires_at": expires_at })),
        );
        Ok(())
    }

    pub async fn set_tag_immutable(
        &self,
        repo: &RepoName,
        tag: &Tag,
        immutable: bool,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        if !self
            .meta
            .set_tag_immutable(repo.as_str(), tag.as_str(), immutable)
            .await?
        {
            return Err(self.missing(repo, RegistryError::ManifestUnknown).await?);
        }
        self.emit(
            Event::new("tag.immutability", actor, origin)
                .repository(repo.as_str())
                .target(tag.as_str())
                .details(serde_json::json!({ "immutable": immutable })),
        );
        Ok(())
    }

    /// Deletes a tag and its whole history, skipping the window.
    pub async fn purge_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        let rows = self.meta.purge_tag(repo.as_str(), tag.as_str()).await?;
        if rows == 0 {
            return Err(self.missing(repo, RegistryError::ManifestUnknown).await?);
        }
        self.emit(
            Event::new("tag.purge", actor, origin)
                .repository(repo.as_str())
                .target(tag.as_str())
                .details(serde_json::json!({ "history_rows": rows })),
        );
        Ok(())
    }

    /// Ends the tags whose expiry has come (the expiry job). Returns how many.
    pub async fn expire_tags(&self) -> Result<usize, RegistryError> {
        let mut total = 0;
        loop {
            let expired = self.meta.expire_tags(now_millis(), 1000).await?;
            for t in &expired {
                self.emit(
                    Event::new("tag.expire", Actor::system(), Origin::default())
                        .repository(&t.repository)
                        .target(t.tag.as_str())
                        .details(serde_json::json!({
                            "manifest_digest": t.manifest_digest.to_string(),
                            "expired_at": t.expired_at,
                        })),
                );
            }
            total += expired.len();
            if expired.len() < 1000 {
                return Ok(total);
            }
        }
    }

    /// The namespace's rules, or with `repository` those that apply to it.
    pub async fn immutability_rules(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
    ) -> Result<Vec<ImmutabilityRule>, RegistryError> {
        Ok(self
            .meta
            .immutability_rules(namespace, repository.map(RepoName::as_str))
            .await?)
    }

    pub async fn add_immutability_rule(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
        pattern: &str,
        allow_expiry: bool,
        actor: Actor,
        origin: Origin,
    ) -> Result<ImmutabilityRule, RegistryError> {
        if let Some(repo) = repository
            && namespace_of(repo.as_str()) != namespace
        {
            return Err(RegistryError::InvalidRule(format!(
                "repository {repo} is not in namespace {namespace}"
            )));
        }
        full_match(pattern)?;
        let rule = self
            .meta
            .add_immutability_rule(
                namespace,
                repository.map(RepoName::as_str),
                pattern,
                allow_expiry,
            )
            .await?;
        self.emit(
            Event::new("immutability_rule.create", actor, origin)
                .namespace(namespace)
                .target(rule.id.to_string())
                .details(serde_json::json!({
                    "repository": rule.repository,
                    "pattern": rule.pattern,
                    "allow_expiry": rule.allow_expiry,
                })),
        );
        Ok(rule)
    }

    /// Deletes a rule of `namespace`; through a repository, only that repository's own
    /// (its namespace's rules are the namespace admins').
    pub async fn delete_immutability_rule(
        &self,
        namespace: &str,
        repository: Option<&RepoName>,
        id: i64,
        actor: Actor,
        origin: Origin,
    ) -> Result<(), RegistryError> {
        if let Some(repo) = repository {
            let own = self
                .meta
                .immutability_rules(namespace, Some(repo.as_str()))
                .await?
                .iter()
                .any(|r| r.id == id && r.repository.as_deref() == Some(repo.as_str()));
            if !own {
                return Err(RegistryError::RuleUnknown(id));
            }
        }
        if !self.meta.delete_immutability_rule(namespace, id).await? {
            return Err(RegistryError::RuleUnknown(id));
        }
        self.emit(
            Event::new("immutability_rule.delete", actor, origin)
                .namespace(namespace)
                .target(id.to_string()),
        );
        Ok(())
    }

    /// What the immutability rules of `repo` say about `tag`: immutable when any rule
    /// matches; may still expire only when some rule matches and every matching rule
    /// allows it (a tag made immutable by hand never may).
    async fn rules_for(&self, repo: &RepoName, tag: &Tag) -> Result<RuleOutcome, RegistryError> {
        let rules = self
            .meta
            .immutability_rules(namespace_of(repo.as_str()), Some(repo.as_str()))
            .await?;
        let mut outcome = RuleOutcome {
            immutable: false,
            may_expire: true,
        };
        for rule in rules {
            match full_match(&rule.pattern) {
                Ok(re) if re.is_match(tag.as_str()) => {
                    outcome.immutable = true;
                    outcome.may_expire &= rule.allow_expiry;
                }
                Ok(_) => {}
                // Patterns are checked when added; a bad one stored anyway matches nothing.
                Err(e) => tracing::warn!(rule = rule.id, error = %e, "unusable immutability rule"),
            }
        }
        outcome.may_expire &= outcome.immutable;
        Ok(outcome)
    }

    /// What a push by tag sets on the tag: immutability by rule, and an expiry from the
    /// manifest's annotations or its image configuration's labels.
    pub(crate) async fn push_tag_options(
        &self,
        repo: &RepoName,
        tag: &Tag,
        parsed: &ParsedManifest,
    ) -> Result<TagOptions, RegistryError> {
        let rules = self.rules_for(repo, tag).await?;
        let mut after = parsed.annotations.as_ref().and_then(expires_after);
        if after.is_none()
            && let Some(config) = &parsed.config
            && CONFIG_TYPES.contains(&config.media_type.as_str())
            && config.size <= MAX_CONFIG_BYTES
        {
            after = self
                .config_labels(repo, &config.digest)
                .await?
                .as_ref()
                .and_then(expires_after);
        }
        Ok(TagOptions {
            immutable: rules.immutable,
            expires_at: after
                .filter(|_| !rules.immutable || rules.may_expire)
                .map(|d| now_millis().saturating_add(millis(d))),
        })
    }

    /// The `config.Labels` of an image configuration visible in `repo`, if it has any.
    async fn config_labels(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, RegistryError> {
        let Some(size) = self.meta.repository_blob(repo.as_str(), digest).await? else {
            // The push fails on the missing reference anyway.
            return Ok(None);
        };
        let mut stream = self.blobs.read(digest, 0..size).await?;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            bytes.extend_from_slice(&chunk.map_err(bulwark_storage::StorageError::Io)?);
        }
        #[derive(serde::Deserialize)]
        struct Image {
            config: Option<Config>,
        }
        #[derive(serde::Deserialize)]
        struct Config {
            #[serde(rename = "Labels")]
            labels: Option<std::collections::BTreeMap<String, String>>,
        }
        Ok(serde_json::from_slice::<Image>(&bytes)
            .ok()
            .and_then(|i| i.config)
            .and_then(|c| c.labels))
    }
}

/// The first well-formed `expires-after` value among `labels`.
fn expires_after(labels: &std::collections::BTreeMap<String, String>) -> Option<Duration> {
    EXPIRES_AFTER_KEYS
        .iter()
        .filter_map(|k| labels.get(*k))
        .find_map(|v| parse_duration(v))
}

/// `pattern` as a regular expression matching whole tag names.
pub(crate) fn full_match(pattern: &str) -> Result<Regex, RegistryError> {
    if pattern.is_empty() || pattern.len() > 256 {
        return Err(RegistryError::InvalidRule(
            "a tag pattern has 1 to 256 characters".into(),
        ));
    }
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| RegistryError::InvalidRule(format!("tag pattern {pattern:?}: {e}")))
}

/// A namespace's Time Machine window and the windows it may choose from, in seconds
/// (Quay's `tag_expiration_s` and `TAG_EXPIRATION_OPTIONS`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WindowView {
    pub tag_expiration_s: u64,
    pub tag_expiration_options: Vec<u64>,
}

/// An immutability rule as the management API shows it, read back by the CLI.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleView {
    pub id: i64,
    pub namespace: String,
    /// The full repository name; absent for a rule over the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub tag_pattern: String,
    pub allow_expiry: bool,
    /// Milliseconds since the Unix epoch.
    pub created: i64,
}

impl From<ImmutabilityRule> for RuleView {
    fn from(r: ImmutabilityRule) -> Self {
        RuleView {
            id: r.id,
            namespace: r.namespace,
            repository: r.repository,
            tag_pattern: r.pattern,
            allow_expiry: r.allow_expiry,
            created: r.created_at,
        }
    }
}

/// What the immutability rules matching a tag decide.
struct RuleOutcome {
    immutable: bool,
    may_expire: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * 86400)));
        assert_eq!(parse_duration("36h"), Some(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        for bad in ["", "w", "2", "2y", "-1d", "1.5h", "99999999999999999999w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn expiry_keys_in_order() {
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("bulwark.expires-after".to_owned(), "1h".to_owned());
        assert_eq!(expires_after(&labels), Some(Duration::from_secs(3600)));
        labels.insert("quay.expires-after".to_owned(), "2d".to_owned());
        assert_eq!(expires_after(&labels), Some(Duration::from_secs(2 * 86400)));
        labels.insert("quay.expires-after".to_owned(), "soon".to_owned());
        assert_eq!(expires_after(&labels), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn patterns_match_whole_names() {
        let re = full_match("v[0-9]+").unwrap();
        assert!(re.is_match("v12"));
        assert!(!re.is_match("v12-rc"));
        assert!(!re.is_match("xv1"));
        assert!(full_match("release|stable").unwrap().is_match("stable"));
        assert!(full_match("(").is_err());
        assert!(full_match("").is_err());
    }
}
