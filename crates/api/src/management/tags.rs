//! The tag lifecycle (`/api/v1/repository/{ns}/{repo}/tag…`, Time Machine windows,
//! immutability rules, garbage collection) over the registry's lifecycle calls. Shapes are
//! Quay's: the tag routes' times (`start_ts`, `end_ts`, `expiration`, `at`) are seconds
//! since the Unix epoch, as in Quay.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_auth::{Action, Resource};
use bulwark_events::{Event, Origin};
use bulwark_oci::{Digest, Reference, RepoName, Tag};
use bulwark_registry::{GcReport, HistoryRequest, ImmutabilityRule, RuleView, TagRecord};
use serde::{Deserialize, Deserializer, Serialize};

use super::extract::{Json, Path, Query};
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

fn secs(millis: i64) -> i64 {
    millis.div_euclid(1000)
}

pub(super) fn origin(caller: &Caller) -> Origin {
    Origin {
        address: caller.client.address,
        user_agent: caller.client.user_agent.clone(),
    }
}

fn repo_name(state: &AppState, ns: &str, repo: &str) -> Result<RepoName, Problem> {
    Ok(state
        .registry
        .repo_name(&format!("{ns}/{repo}"))
        .map_err(bulwark_registry::RegistryError::from)?)
}

/// The repository `ns/repo`, once the caller may do `action` on it.
pub(super) async fn authorized_repo(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    repo: &str,
    action: Action,
) -> Result<RepoName, Problem> {
    let name = repo_name(state, ns, repo)?;
    require(state, caller, Resource::Repository(name.as_str()), action).await?;
    Ok(name)
}

fn tag_name(tag: &str) -> Result<Tag, Problem> {
    Ok(Tag::parse(tag).map_err(bulwark_registry::RegistryError::from)?)
}

/// One row of a tag's history (Quay's tag view).
#[derive(Serialize)]
struct TagView {
    name: String,
    manifest_digest: String,
    start_ts: i64,
    /// When the tag stopped pointing there; absent while it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    end_ts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_ts: Option<i64>,
    immutable: bool,
}

impl From<TagRecord> for TagView {
    fn from(t: TagRecord) -> Self {
        TagView {
            name: t.name,
            manifest_digest: t.manifest_digest.to_string(),
            start_ts: secs(t.start_at),
            end_ts: t.end_at.map(secs),
            expiration_ts: t.expires_at.map(secs),
            immutable: t.immutable,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryQuery {
    #[serde(default)]
    only_active_tags: bool,
    specific_tag: Option<String>,
    /// The repository as it was at this time (seconds).
    at: Option<i64>,
    page: Option<u32>,
    limit: Option<u32>,
}

#[derive(Serialize)]
struct HistoryView {
    tags: Vec<TagView>,
    page: u32,
    has_additional: bool,
}

/// `GET /api/v1/repository/{ns}/{repo}/tag/`: history within the namespace's window,
/// newest first; `at` lists the tags live at that time.
pub(crate) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Pull).await?;
    let tag = q.specific_tag.as_deref().map(tag_name).transpose()?;
    let page = q.page.unwrap_or(1).max(1);
    let found = state
        .registry
        .tag_history(
            &name,
            HistoryRequest {
                tag: tag.as_ref(),
                only_active: q.only_active_tags,
                at: q.at.map(|s| s.saturating_mul(1000)),
                page,
                limit: q.limit.unwrap_or(50),
            },
        )
        .await?;
    Ok(axum::Json(HistoryView {
        tags: found.tags.into_iter().map(Into::into).collect(),
        page,
        has_additional: found.has_more,
    })
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct Restore {
    manifest_digest: Digest,
}

/// `POST /api/v1/repository/{ns}/{repo}/tag/{tag}/restore`.
pub(crate) async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, tag)): Path<(String, String, String)>,
    Json(body): Json<Restore>,
) -> Result<StatusCode, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Push).await?;
    state
        .registry
        .restore_tag(
            &name,
            &tag_name(&tag)?,
            &body.manifest_digest,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A present field, even `null`, is `Some`: `"expiration": null` clears the expiry, an
/// absent one leaves it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
pub(crate) struct TagUpdate {
    /// Seconds since the Unix epoch, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    expiration: Option<Option<i64>>,
    immutable: Option<bool>,
}

/// `PUT /api/v1/repository/{ns}/{repo}/tag/{tag}`: expiry and immutability. Changing
/// immutability takes the repository's admin (a pusher could otherwise lift the
/// protection and overwrite); an expiry, push.
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, tag)): Path<(String, String, String)>,
    Json(body): Json<TagUpdate>,
) -> Result<StatusCode, Problem> {
    let action = match body.immutable {
        Some(_) => Action::Admin,
        None => Action::Push,
    };
    let name = authorized_repo(&state, &caller, &ns, &repo, action).await?;
    let tag = tag_name(&tag)?;
    let registry = &state.registry;
    let set_immutable = |immutable| {
        registry.set_tag_immutable(
            &name,
            &tag,
            immutable,
            caller.identity.actor(),
            origin(&caller),
        )
    };
    // An immutable tag refuses an expiry: lift immutability before setting one, impose it
    // after.
    if body.immutable == Some(false) {
        set_immutable(false).await?;
    }
    if let Some(expiration) = body.expiration {
        registry
            .set_tag_expiry(
                &name,
                &tag,
                expiration.map(|s| s.saturating_mul(1000)),
                caller.identity.actor(),
                origin(&caller),
            )
            .await?;
    }
    if body.immutable == Some(true) {
        set_immutable(true).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct DeleteQuery {
    #[serde(default)]
    permanent: bool,
}

/// `DELETE /api/v1/repository/{ns}/{repo}/tag/{tag}`: the tag ends and stays restorable
/// within the window; `?permanent=true` (repository admins) removes its history too.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, tag)): Path<(String, String, String)>,
    Query(q): Query<DeleteQuery>,
) -> Result<StatusCode, Problem> {
    let action = if q.permanent {
        Action::Admin
    } else {
        Action::Delete
    };
    let name = authorized_repo(&state, &caller, &ns, &repo, action).await?;
    let tag = tag_name(&tag)?;
    if q.permanent {
        state
            .registry
            .purge_tag(&name, &tag, caller.identity.actor(), origin(&caller))
            .await?;
    } else {
        state
            .registry
            .delete_manifest(&name, &Reference::Tag(tag.clone()))
            .await?;
        // The registry reports lifecycle changes; a plain delete is reported by its caller,
        // like `/v2` does.
        state.auth.events().emit(
            Event::new("tag.delete", caller.identity.actor(), origin(&caller))
                .repository(name.as_str())
                .target(tag.as_str()),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn window_view(state: &AppState, namespace: &str) -> Result<Response, Problem> {
    Ok(axum::Json(state.registry.window_view(namespace).await?).into_response())
}

/// `GET /api/v1/organization/{org}/timemachine`: for members of the namespace.
pub(crate) async fn window(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    window_view(&state, &org).await
}

#[derive(Deserialize)]
pub(crate) struct WindowUpdate {
    tag_expiration_s: u64,
}

/// `PUT /api/v1/organization/{org}/timemachine`: one of the allowed options.
pub(crate) async fn set_window(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<WindowUpdate>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    state
        .registry
        .set_time_machine_window(
            &org,
            Duration::from_secs(body.tag_expiration_s),
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    window_view(&state, &org).await
}

#[derive(Serialize)]
struct RuleList {
    rules: Vec<RuleView>,
}

fn rule_list(rules: Vec<ImmutabilityRule>) -> Response {
    axum::Json(RuleList {
        rules: rules.into_iter().map(Into::into).collect(),
    })
    .into_response()
}

/// A regular expression over whole tag names; with `allow_expiry`, the tags it makes
/// immutable may still expire (from a label, an annotation or the API).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRule {
    tag_pattern: String,
    #[serde(default)]
    allow_expiry: bool,
}

/// `GET /api/v1/organization/{org}/immutabilityrules`: the namespace's rules.
pub(crate) async fn org_rules(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    Ok(rule_list(
        state.registry.immutability_rules(&org, None).await?,
    ))
}

/// `POST /api/v1/organization/{org}/immutabilityrules`: a rule for every repository of the
/// namespace.
pub(crate) async fn org_add_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(body): Json<NewRule>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    let rule = state
        .registry
        .add_immutability_rule(
            &org,
            None,
            &body.tag_pattern,
            body.allow_expiry,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(RuleView::from(rule))).into_response())
}

/// `DELETE /api/v1/organization/{org}/immutabilityrules/{id}`: any rule of the namespace.
pub(crate) async fn org_delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, id)): Path<(String, i64)>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    state
        .registry
        .delete_immutability_rule(&org, None, id, caller.identity.actor(), origin(&caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/repository/{ns}/{repo}/immutabilityrules`: the rules that apply to the
/// repository (its own and its namespace's).
pub(crate) async fn repo_rules(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Pull).await?;
    Ok(rule_list(
        state
            .registry
            .immutability_rules(name.namespace(), Some(&name))
            .await?,
    ))
}

/// `POST /api/v1/repository/{ns}/{repo}/immutabilityrules`.
pub(crate) async fn repo_add_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
    Json(body): Json<NewRule>,
) -> Result<Response, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Admin).await?;
    let rule = state
        .registry
        .add_immutability_rule(
            name.namespace(),
            Some(&name),
            &body.tag_pattern,
            body.allow_expiry,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(RuleView::from(rule))).into_response())
}

/// `DELETE /api/v1/repository/{ns}/{repo}/immutabilityrules/{id}`: only the repository's
/// own rules; its namespace's are the namespace admins' (a 404 here, as for any other id).
pub(crate) async fn repo_delete_rule(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, id)): Path<(String, String, i64)>,
) -> Result<StatusCode, Problem> {
    let name = authorized_repo(&state, &caller, &ns, &repo, Action::Admin).await?;
    state
        .registry
        .delete_immutability_rule(
            name.namespace(),
            Some(&name),
            id,
            caller.identity.actor(),
            origin(&caller),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/superuser/gc`: one collection now (the job runs them periodically); the
/// answer says what it reclaimed.
pub(crate) async fn gc(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<GcReport>, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    Ok(axum::Json(state.registry.collect_garbage().await?))
}
