//! `bulwark tag history|restore|expire|immutable`, `bulwark retention list|add|delete|run`
//! and `bulwark gc`: the tag lifecycle from the command line, over the same two backends as the other administration commands
//! (locally the registry on the configured storage as the operator, remotely the
//! management API as the caller).

use std::time::Duration;

use anyhow::Result;
use bulwark_meta::now_millis;
use bulwark_oci::{Digest, RepoName, Tag};
use bulwark_registry::{
    GcReport, HistoryRequest, Keep, PolicyView, Pruned, Registry, RegistryError, RuleView,
    TagRecord, WindowView,
};
use clap::Subcommand;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::backend::RepoPath;
use super::local::Local;
use super::remote::Remote;
use super::{Output, parse_duration, table, utc, yes_no};

#[derive(Subcommand)]
pub enum TagCommand {
    /// A repository's tags and their history within the Time Machine window, newest first.
    History {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        /// Only this tag's rows.
        #[arg(long)]
        tag: Option<String>,
        /// Only the tags live now.
        #[arg(long)]
        active: bool,
        /// The repository as it was then (seconds since the Unix epoch).
        #[arg(long, value_name = "SECONDS")]
        at: Option<i64>,
        #[arg(long, default_value_t = 1)]
        page: u32,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Point a tag again at a manifest it pointed at within the Time Machine window (a
    /// deleted, moved or expired tag).
    Restore {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        tag: String,
        digest: Digest,
    },
    /// Make a tag expire after a while (`--after 2w`), or never (`--never`).
    Expire {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        tag: String,
        #[arg(long, value_parser = parse_duration, required_unless_present = "never")]
        after: Option<Duration>,
        #[arg(long, conflicts_with = "after")]
        never: bool,
    },
    /// Make a tag immutable (it can no longer be moved, deleted or expire), or mutable
    /// again with --off.
    Immutable {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        tag: String,
        #[arg(long)]
        off: bool,
    },
}

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// The policies of a namespace, or those that apply to a repository.
    List {
        #[arg(value_parser = Scope::parse, value_name = "NAMESPACE[/REPOSITORY]")]
        scope: Scope,
    },
    /// Add a policy: among the live tags matching --pattern, keep the --keep most recently
    /// pushed, or those pushed within --keep-for; the others are pruned into the history.
    Add {
        #[arg(value_parser = Scope::parse, value_name = "NAMESPACE[/REPOSITORY]")]
        scope: Scope,
        #[arg(
            long,
            required_unless_present = "keep_for",
            conflicts_with = "keep_for"
        )]
        keep: Option<u32>,
        #[arg(long, value_parser = parse_duration)]
        keep_for: Option<Duration>,
        /// A regular expression over whole tag names (default: every tag).
        #[arg(long)]
        pattern: Option<String>,
    },
    /// Remove a policy (a repository's own, or any of a namespace's).
    Delete {
        #[arg(value_parser = Scope::parse, value_name = "NAMESPACE[/REPOSITORY]")]
        scope: Scope,
        id: i64,
    },
    /// Apply a namespace's policies now; --dry-run lists what would be pruned.
    Run {
        namespace: String,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum TimeMachineCommand {
    /// A namespace's Time Machine window and the windows it may choose from.
    Show { namespace: String },
    /// Keep a namespace's tag history this long (one of the allowed options, e.g. `2w`).
    Set {
        namespace: String,
        #[arg(value_parser = parse_duration)]
        window: Duration,
    },
}

#[derive(Subcommand)]
pub enum ImmutabilityCommand {
    /// The rules of a namespace, or those that apply to a repository.
    List {
        #[arg(value_parser = Scope::parse, value_name = "NAMESPACE[/REPOSITORY]")]
        scope: Scope,
    },
    /// Add a rule: tags whose whole name matches PATTERN become immutable when pushed.
    Add {
        #[arg(value_parser = Scope::parse, value_name = "NAMESPACE[/REPOSITORY]")]
        scope: Scope,
        /// A regular expression over whole tag names.
        pattern: String,
        /// The tags it makes immutable may still expire (from a label or `tag expire`).
        #[arg(long)]
        allow_expiry: bool,
    },
    /// Remove a rule (a repository's own, or any of a namespace's).
    Delete {
        #[arg(value_parser = Scope::parse, value_name = "NAMESPACE[/REPOSITORY]")]
        scope: Scope,
        id: i64,
    },
}

/// A namespace, or a repository in one.
#[derive(Clone, Debug)]
pub enum Scope {
    Namespace(String),
    Repository(RepoPath),
}

impl Scope {
    fn parse(s: &str) -> Result<Scope, String> {
        if s.contains('/') {
            RepoPath::parse(s).map(Scope::Repository)
        } else if s.is_empty() {
            Err("expected NAMESPACE or NAMESPACE/REPOSITORY".into())
        } else {
            Ok(Scope::Namespace(s.to_owned()))
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Namespace(ns) => f.write_str(ns),
            Scope::Repository(repo) => repo.fmt(f),
        }
    }
}

#[derive(Serialize)]
struct RetentionRun {
    dry_run: bool,
    pruned: Vec<Pruned>,
}

/// One row of a tag's history, in the management API's shape (seconds since the epoch).
#[derive(Debug, Serialize, Deserialize)]
pub struct TagRow {
    pub name: String,
    pub manifest_digest: String,
    pub start_ts: i64,
    pub end_ts: Option<i64>,
    pub expiration_ts: Option<i64>,
    pub immutable: bool,
}

impl From<TagRecord> for TagRow {
    fn from(t: TagRecord) -> Self {
        TagRow {
            name: t.name,
            manifest_digest: t.manifest_digest.to_string(),
            start_ts: t.start_at.div_euclid(1000),
            end_ts: t.end_at.map(|ms| ms.div_euclid(1000)),
            expiration_ts: t.expires_at.map(|ms| ms.div_euclid(1000)),
            immutable: t.immutable,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TagHistory {
    pub tags: Vec<TagRow>,
    pub has_additional: bool,
}

/// What a history listing asks for.
pub struct HistoryArgs<'a> {
    tag: Option<&'a str>,
    active: bool,
    /// Seconds.
    at: Option<i64>,
    page: u32,
    limit: u32,
}

/// The lifecycle operations; authorization as for [`Backend`](super::backend::Backend).
pub trait Lifecycle {
    async fn tag_history(&self, repo: &RepoPath, args: &HistoryArgs<'_>) -> Result<TagHistory>;
    async fn restore_tag(&self, repo: &RepoPath, tag: &str, digest: &Digest) -> Result<()>;
    /// `expires_at`: seconds since the Unix epoch; `None` for never.
    async fn set_tag_expiry(
        &self,
        repo: &RepoPath,
        tag: &str,
        expires_at: Option<i64>,
    ) -> Result<()>;
    async fn set_tag_immutable(&self, repo: &RepoPath, tag: &str, immutable: bool) -> Result<()>;
    async fn collect_garbage(&self) -> Result<GcReport>;

    async fn retention_policies(&self, scope: &Scope) -> Result<Vec<PolicyView>>;
    async fn add_retention_policy(
        &self,
        scope: &Scope,
        pattern: &str,
        keep: Keep,
    ) -> Result<PolicyView>;
    async fn delete_retention_policy(&self, scope: &Scope, id: i64) -> Result<()>;
    async fn apply_retention(&self, namespace: &str, dry_run: bool) -> Result<Vec<Pruned>>;

    async fn time_machine_window(&self, namespace: &str) -> Result<WindowView>;
    async fn set_time_machine_window(
        &self,
        namespace: &str,
        window: Duration,
    ) -> Result<WindowView>;

    async fn immutability_rules(&self, scope: &Scope) -> Result<Vec<RuleView>>;
    async fn add_immutability_rule(
        &self,
        scope: &Scope,
        pattern: &str,
        allow_expiry: bool,
    ) -> Result<RuleView>;
    async fn delete_immutability_rule(&self, scope: &Scope, id: i64) -> Result<()>;
}

pub async fn tag(backend: &impl Lifecycle, command: TagCommand) -> Result<Output> {
    match command {
        TagCommand::History {
            repository,
            tag,
            active,
            at,
            page,
            limit,
        } => {
            let args = HistoryArgs {
                tag: tag.as_deref(),
                active,
                at,
                page,
                limit,
            };
            let history = backend.tag_history(&repository, &args).await?;
            let secs = |s: i64| utc(s.saturating_mul(1000));
            let rows = history.tags.iter().map(|t| {
                vec![
                    t.name.clone(),
                    t.manifest_digest.clone(),
                    secs(t.start_ts),
                    t.end_ts.map_or("-".into(), secs),
                    t.expiration_ts.map_or("-".into(), secs),
                    yes_no(t.immutable),
                ]
            });
            let mut text = table(
                &["TAG", "DIGEST", "FROM", "UNTIL", "EXPIRES", "IMMUTABLE"],
                rows,
            );
            if history.has_additional {
                text.push_str(&format!("(more: --page {})\n", page + 1));
            }
            Output::new(text, history)
        }
        TagCommand::Restore {
            repository,
            tag,
            digest,
        } => {
            backend.restore_tag(&repository, &tag, &digest).await?;
            Output::done(format!("{repository}:{tag} points at {digest} again"))
        }
        TagCommand::Expire {
            repository,
            tag,
            after,
            ..
        } => {
            let at = after.map(|d| {
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                now_millis().div_euclid(1000).saturating_add(secs)
            });
            backend.set_tag_expiry(&repository, &tag, at).await?;
            Output::done(match at {
                Some(at) => format!(
                    "{repository}:{tag} expires at {}",
                    utc(at.saturating_mul(1000))
                ),
                None => format!("{repository}:{tag} never expires"),
            })
        }
        TagCommand::Immutable {
            repository,
            tag,
            off,
        } => {
            backend.set_tag_immutable(&repository, &tag, !off).await?;
            let state = if off { "mutable" } else { "immutable" };
            Output::done(format!("{repository}:{tag} is {state}"))
        }
    }
}

pub async fn retention(backend: &impl Lifecycle, command: RetentionCommand) -> Result<Output> {
    match command {
        RetentionCommand::List { scope } => {
            let policies = backend.retention_policies(&scope).await?;
            let rows = policies.iter().map(|p| {
                vec![
                    p.id.to_string(),
                    p.repository
                        .clone()
                        .unwrap_or_else(|| format!("{}/*", p.namespace)),
                    p.tag_pattern.clone(),
                    p.method.clone(),
                    p.value.to_string().trim_matches('"').to_owned(),
                ]
            });
            let text = table(&["ID", "SCOPE", "PATTERN", "METHOD", "VALUE"], rows);
            Output::new(text, policies)
        }
        RetentionCommand::Add {
            scope,
            keep,
            keep_for,
            pattern,
        } => {
            let keep = Keep {
                count: keep,
                secs: keep_for.map(|d| d.as_secs()),
            };
            let pattern = pattern.unwrap_or_else(|| ".*".into());
            let policy = backend.add_retention_policy(&scope, &pattern, keep).await?;
            let text = format!("added retention policy {} to {scope}", policy.id);
            Output::new(text, policy)
        }
        RetentionCommand::Delete { scope, id } => {
            backend.delete_retention_policy(&scope, id).await?;
            Output::done(format!("deleted retention policy {id} of {scope}"))
        }
        RetentionCommand::Run { namespace, dry_run } => {
            let pruned = backend.apply_retention(&namespace, dry_run).await?;
            let rows = pruned.iter().map(|p| {
                vec![
                    format!("{}:{}", p.repository, p.tag),
                    p.manifest_digest.to_string(),
                ]
            });
            let verb = if dry_run { "would prune" } else { "pruned" };
            let text = format!(
                "{verb} {} tags\n{}",
                pruned.len(),
                table(&["TAG", "DIGEST"], rows)
            );
            Output::new(text, RetentionRun { dry_run, pruned })
        }
    }
}

pub async fn time_machine(backend: &impl Lifecycle, command: TimeMachineCommand) -> Result<Output> {
    let (namespace, view) = match command {
        TimeMachineCommand::Show { namespace } => {
            let view = backend.time_machine_window(&namespace).await?;
            (namespace, view)
        }
        TimeMachineCommand::Set { namespace, window } => {
            let view = backend.set_time_machine_window(&namespace, window).await?;
            (namespace, view)
        }
    };
    let options: Vec<String> = view
        .tag_expiration_options
        .iter()
        .map(|s| format!("{s}s"))
        .collect();
    let text = format!(
        "{namespace}: tag history kept {}s (options: {})",
        view.tag_expiration_s,
        options.join(", ")
    );
    Output::new(text, view)
}

pub async fn immutability(
    backend: &impl Lifecycle,
    command: ImmutabilityCommand,
) -> Result<Output> {
    match command {
        ImmutabilityCommand::List { scope } => {
            let rules = backend.immutability_rules(&scope).await?;
            let rows = rules.iter().map(|r| {
                vec![
                    r.id.to_string(),
                    r.repository
                        .clone()
                        .unwrap_or_else(|| format!("{}/*", r.namespace)),
                    r.tag_pattern.clone(),
                    yes_no(r.allow_expiry),
                ]
            });
            let text = table(&["ID", "SCOPE", "PATTERN", "MAY EXPIRE"], rows);
            Output::new(text, rules)
        }
        ImmutabilityCommand::Add {
            scope,
            pattern,
            allow_expiry,
        } => {
            let rule = backend
                .add_immutability_rule(&scope, &pattern, allow_expiry)
                .await?;
            let text = format!("added immutability rule {} to {scope}", rule.id);
            Output::new(text, rule)
        }
        ImmutabilityCommand::Delete { scope, id } => {
            backend.delete_immutability_rule(&scope, id).await?;
            Output::done(format!("deleted immutability rule {id} of {scope}"))
        }
    }
}

pub async fn gc(backend: &impl Lifecycle) -> Result<Output> {
    let r = backend.collect_garbage().await?;
    let text = format!(
        "reclaimed {} bytes in {} ms: {} manifests, {} blobs and {} unnamed files deleted, \
         {} links and {} history rows removed over {} repositories",
        r.bytes_reclaimed,
        r.millis,
        r.manifests,
        r.blobs,
        r.orphans,
        r.links,
        r.history_rows,
        r.repositories
    );
    Output::new(text, r)
}

fn tag_name(tag: &str) -> Result<Tag> {
    Ok(Tag::parse(tag).map_err(RegistryError::from)?)
}

impl Local {
    /// The registry with `repo`'s name as it checks names.
    async fn at(&self, repo: &RepoPath) -> Result<(&Registry, RepoName)> {
        let registry = self.registry().await?;
        let name = registry
            .repo_name(&repo.to_string())
            .map_err(RegistryError::from)?;
        Ok((registry, name))
    }
}

impl Lifecycle for Local {
    async fn tag_history(&self, repo: &RepoPath, args: &HistoryArgs<'_>) -> Result<TagHistory> {
        let (registry, name) = self.at(repo).await?;
        let tag = args.tag.map(tag_name).transpose()?;
        let page = registry
            .tag_history(
                &name,
                HistoryRequest {
                    tag: tag.as_ref(),
                    only_active: args.active,
                    at: args.at.map(|s| s.saturating_mul(1000)),
                    page: args.page.max(1),
                    limit: args.limit,
                },
            )
            .await?;
        Ok(TagHistory {
            tags: page.tags.into_iter().map(Into::into).collect(),
            has_additional: page.has_more,
        })
    }

    async fn restore_tag(&self, repo: &RepoPath, tag: &str, digest: &Digest) -> Result<()> {
        let (registry, name) = self.at(repo).await?;
        let tag = tag_name(tag)?;
        let (actor, origin) = self.actor();
        Ok(registry
            .restore_tag(&name, &tag, digest, actor, origin)
            .await?)
    }

    async fn set_tag_expiry(
        &self,
        repo: &RepoPath,
        tag: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let (registry, name) = self.at(repo).await?;
        let tag = tag_name(tag)?;
        let (actor, origin) = self.actor();
        let at = expires_at.map(|s| s.saturating_mul(1000));
        Ok(registry
            .set_tag_expiry(&name, &tag, at, actor, origin)
            .await?)
    }

    async fn set_tag_immutable(&self, repo: &RepoPath, tag: &str, immutable: bool) -> Result<()> {
        let (registry, name) = self.at(repo).await?;
        let tag = tag_name(tag)?;
        let (actor, origin) = self.actor();
        Ok(registry
            .set_tag_immutable(&name, &tag, immutable, actor, origin)
            .await?)
    }

    async fn collect_garbage(&self) -> Result<GcReport> {
        Ok(self.registry().await?.collect_garbage().await?)
    }

    async fn retention_policies(&self, scope: &Scope) -> Result<Vec<PolicyView>> {
        let (registry, namespace, repo) = self.scope(scope).await?;
        let policies = registry
            .retention_policies(&namespace, repo.as_ref())
            .await?;
        Ok(policies.into_iter().map(Into::into).collect())
    }

    async fn add_retention_policy(
        &self,
        scope: &Scope,
        pattern: &str,
        keep: Keep,
    ) -> Result<PolicyView> {
        let (registry, namespace, repo) = self.scope(scope).await?;
        let (actor, origin) = self.actor();
        let policy = registry
            .add_retention_policy(&namespace, repo.as_ref(), pattern, keep, actor, origin)
            .await?;
        Ok(policy.into())
    }

    async fn delete_retention_policy(&self, scope: &Scope, id: i64) -> Result<()> {
        let (registry, namespace, repo) = self.scope(scope).await?;
        let (actor, origin) = self.actor();
        Ok(registry
            .delete_retention_policy(&namespace, repo.as_ref(), id, actor, origin)
            .await?)
    }

    async fn apply_retention(&self, namespace: &str, dry_run: bool) -> Result<Vec<Pruned>> {
        let (actor, origin) = self.actor();
        Ok(self
            .registry()
            .await?
            .apply_retention(Some(namespace), dry_run, actor, origin)
            .await?)
    }

    async fn time_machine_window(&self, namespace: &str) -> Result<WindowView> {
        Ok(self.registry().await?.window_view(namespace).await?)
    }

    async fn set_time_machine_window(
        &self,
        namespace: &str,
        window: Duration,
    ) -> Result<WindowView> {
        let registry = self.registry().await?;
        let (actor, origin) = self.actor();
        registry
            .set_time_machine_window(namespace, window, actor, origin)
            .await?;
        Ok(registry.window_view(namespace).await?)
    }

    async fn immutability_rules(&self, scope: &Scope) -> Result<Vec<RuleView>> {
        let (registry, namespace, repo) = self.scope(scope).await?;
        let rules = registry
            .immutability_rules(&namespace, repo.as_ref())
            .await?;
        Ok(rules.into_iter().map(Into::into).collect())
    }

    async fn add_immutability_rule(
        &self,
        scope: &Scope,
        pattern: &str,
        allow_expiry: bool,
    ) -> Result<RuleView> {
        let (registry, namespace, repo) = self.scope(scope).await?;
        let (actor, origin) = self.actor();
        let rule = registry
            .add_immutability_rule(
                &namespace,
                repo.as_ref(),
                pattern,
                allow_expiry,
                actor,
                origin,
            )
            .await?;
        Ok(rule.into())
    }

    async fn delete_immutability_rule(&self, scope: &Scope, id: i64) -> Result<()> {
        let (registry, namespace, repo) = self.scope(scope).await?;
        let (actor, origin) = self.actor();
        Ok(registry
            .delete_immutability_rule(&namespace, repo.as_ref(), id, actor, origin)
            .await?)
    }
}

impl Local {
    /// The registry, the scope's namespace and its repository's name if it names one.
    async fn scope(&self, scope: &Scope) -> Result<(&Registry, String, Option<RepoName>)> {
        match scope {
            Scope::Namespace(ns) => Ok((self.registry().await?, ns.clone(), None)),
            Scope::Repository(repo) => {
                let (registry, name) = self.at(repo).await?;
                Ok((registry, repo.namespace.clone(), Some(name)))
            }
        }
    }
}

impl Lifecycle for Remote {
    async fn tag_history(&self, repo: &RepoPath, args: &HistoryArgs<'_>) -> Result<TagHistory> {
        let mut url = self.repo_url(repo, &["tag", ""]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("onlyActiveTags", &args.active.to_string())
                .append_pair("page", &args.page.to_string())
                .append_pair("limit", &args.limit.to_string());
            if let Some(tag) = args.tag {
                query.append_pair("specificTag", tag);
            }
            if let Some(at) = args.at {
                query.append_pair("at", &at.to_string());
            }
        }
        self.call(Method::GET, url, None).await
    }

    async fn restore_tag(&self, repo: &RepoPath, tag: &str, digest: &Digest) -> Result<()> {
        let url = self.repo_url(repo, &["tag", tag, "restore"]);
        let body = json!({ "manifest_digest": digest.to_string() });
        self.act(Method::POST, url, Some(body)).await
    }

    async fn set_tag_expiry(
        &self,
        repo: &RepoPath,
        tag: &str,
        expires_at: Option<i64>,
    ) -> Result<()> {
        let url = self.repo_url(repo, &["tag", tag]);
        let body = json!({ "expiration": expires_at });
        self.act(Method::PUT, url, Some(body)).await
    }

    async fn set_tag_immutable(&self, repo: &RepoPath, tag: &str, immutable: bool) -> Result<()> {
        let url = self.repo_url(repo, &["tag", tag]);
        let body = json!({ "immutable": immutable });
        self.act(Method::PUT, url, Some(body)).await
    }

    async fn collect_garbage(&self) -> Result<GcReport> {
        let url = self.url(&["superuser", "gc"]);
        self.call(Method::POST, url, None).await
    }

    async fn retention_policies(&self, scope: &Scope) -> Result<Vec<PolicyView>> {
        #[derive(Deserialize)]
        struct Policies {
            policies: Vec<PolicyView>,
        }
        let list: Policies = self
            .call(Method::GET, self.policies_url(scope, ""), None)
            .await?;
        Ok(list.policies)
    }

    async fn add_retention_policy(
        &self,
        scope: &Scope,
        pattern: &str,
        keep: Keep,
    ) -> Result<PolicyView> {
        // Quay's shape: one method per policy.
        let mut body = match (keep.count, keep.secs) {
            (Some(n), _) => json!({ "method": "number_of_tags", "value": n }),
            (None, secs) => json!({
                "method": "creation_date",
                "value": format!("{}s", secs.unwrap_or(0)),
            }),
        };
        body["tagPattern"] = pattern.into();
        self.call(Method::POST, self.policies_url(scope, ""), Some(body))
            .await
    }

    async fn delete_retention_policy(&self, scope: &Scope, id: i64) -> Result<()> {
        let url = self.policies_url(scope, &id.to_string());
        self.act(Method::DELETE, url, None).await
    }

    async fn apply_retention(&self, namespace: &str, dry_run: bool) -> Result<Vec<Pruned>> {
        #[derive(Deserialize)]
        struct Run {
            pruned: Vec<Pruned>,
        }
        let mut url = self.url(&["organization", namespace, "autoprunepolicy", "run"]);
        url.query_pairs_mut()
            .append_pair("dry_run", &dry_run.to_string());
        let run: Run = self.call(Method::POST, url, None).await?;
        Ok(run.pruned)
    }

    async fn time_machine_window(&self, namespace: &str) -> Result<WindowView> {
        let url = self.url(&["organization", namespace, "timemachine"]);
        self.call(Method::GET, url, None).await
    }

    async fn set_time_machine_window(
        &self,
        namespace: &str,
        window: Duration,
    ) -> Result<WindowView> {
        let url = self.url(&["organization", namespace, "timemachine"]);
        let body = json!({ "tag_expiration_s": window.as_secs() });
        self.call(Method::PUT, url, Some(body)).await
    }

    async fn immutability_rules(&self, scope: &Scope) -> Result<Vec<RuleView>> {
        #[derive(Deserialize)]
        struct Rules {
            rules: Vec<RuleView>,
        }
        let list: Rules = self
            .call(Method::GET, self.rules_url(scope, None), None)
            .await?;
        Ok(list.rules)
    }

    async fn add_immutability_rule(
        &self,
        scope: &Scope,
        pattern: &str,
        allow_expiry: bool,
    ) -> Result<RuleView> {
        let body = json!({ "tag_pattern": pattern, "allow_expiry": allow_expiry });
        self.call(Method::POST, self.rules_url(scope, None), Some(body))
            .await
    }

    async fn delete_immutability_rule(&self, scope: &Scope, id: i64) -> Result<()> {
        let url = self.rules_url(scope, Some(id));
        self.act(Method::DELETE, url, None).await
    }
}

impl Remote {
    /// `…/autoprunepolicy/` of the scope, then `last` (empty: the trailing slash).
    fn policies_url(&self, scope: &Scope, last: &str) -> reqwest::Url {
        match scope {
            Scope::Namespace(ns) => self.url(&["organization", ns, "autoprunepolicy", last]),
            Scope::Repository(repo) => self.repo_url(repo, &["autoprunepolicy", last]),
        }
    }

    /// `…/immutabilityrules` of the scope, or one rule of it.
    fn rules_url(&self, scope: &Scope, id: Option<i64>) -> reqwest::Url {
        let mut url = match scope {
            Scope::Namespace(ns) => self.url(&["organization", ns, "immutabilityrules"]),
            Scope::Repository(repo) => self.repo_url(repo, &["immutabilityrules"]),
        };
        if let Some(id) = id {
            url.path_segments_mut()
                .expect("management URLs have a path")
                .push(&id.to_string());
        }
        url
    }
}
