//! Repositories and their permissions (`/api/v1/repository…`). A repository's name below
//! its namespace may contain `/`: clients send it percent-encoded (`%2F`) in the `{repo}`
//! segment, which the path extractor decodes.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_auth::access::namespace_of;
use bulwark_auth::{Action, Resource};
use bulwark_meta::{AccountKind, Grant, RepoRole, RepositoryInfo, Visibility};
use serde::{Deserialize, Serialize};

use super::extract::{Json, Path, Query};
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

/// Quay's repository view (images only: `kind` is always `image`).
#[derive(Serialize)]
struct RepoView {
    namespace: String,
    /// The name below the namespace.
    name: String,
    kind: &'static str,
    is_public: bool,
    /// Milliseconds since the Unix epoch.
    created: i64,
}

impl From<RepositoryInfo> for RepoView {
    fn from(r: RepositoryInfo) -> Self {
        let namespace = namespace_of(&r.name).to_owned();
        let name = r
            .name
            .strip_prefix(&format!("{namespace}/"))
            .unwrap_or(&r.name)
            .to_owned();
        RepoView {
            namespace,
            name,
            kind: "image",
            is_public: r.visibility == Visibility::Public,
            created: r.created_at,
        }
    }
}

/// Quay's clients also send `description` and `repo_kind`: unknown fields are ignored
/// (repository descriptions are not stored).
#[derive(Deserialize)]
pub(crate) struct NewRepo {
    namespace: String,
    repository: String,
    visibility: Visibility,
}

/// `POST /api/v1/repository`.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewRepo>,
) -> Result<Response, Problem> {
    require(
        &state,
        &caller,
        Resource::Namespace(&body.namespace),
        Action::CreateRepository,
    )
    .await?;
    let repo = state
        .accounts
        .create_repository(
            &caller.identity,
            &caller.client,
            &body.namespace,
            &body.repository,
            body.visibility,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(RepoView::from(repo))).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    namespace: String,
}

#[derive(Serialize)]
struct RepoList {
    repositories: Vec<RepoView>,
}

/// `GET /api/v1/repository?namespace=…`: the namespace's repositories the caller may pull.
/// The decision is asked for each repository instead of once for the route: what is
/// listed is exactly what the caller could pull (public ones too), and a namespace the
/// caller sees nothing of looks the same whether it exists or not.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let repos = state
        .accounts
        .visible_repositories(&caller.identity, &query.namespace)
        .await?;
    Ok(axum::Json(RepoList {
        repositories: repos.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

fn full_name(ns: &str, repo: &str) -> String {
    format!("{ns}/{repo}")
}

/// `GET /api/v1/repository/{ns}/{repo}`: for whoever may pull it.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let name = full_name(&ns, &repo);
    require(&state, &caller, Resource::Repository(&name), Action::Pull).await?;
    let repo = state.accounts.repository(&name).await?;
    Ok(axum::Json(RepoView::from(repo)).into_response())
}

/// `DELETE /api/v1/repository/{ns}/{repo}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let name = full_name(&ns, &repo);
    require(&state, &caller, Resource::Repository(&name), Action::Admin).await?;
    state
        .accounts
        .delete_repository(&caller.identity, &caller.client, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct VisibilityBody {
    visibility: Visibility,
}

#[derive(Serialize)]
struct Success {
    success: bool,
}

/// `POST /api/v1/repository/{ns}/{repo}/changevisibility`.
pub(crate) async fn change_visibility(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
    Json(body): Json<VisibilityBody>,
) -> Result<Response, Problem> {
    let name = full_name(&ns, &repo);
    require(&state, &caller, Resource::Repository(&name), Action::Admin).await?;
    state
        .accounts
        .set_visibility(&caller.identity, &caller.client, &name, body.visibility)
        .await?;
    Ok(axum::Json(Success { success: true }).into_response())
}

/// Quay's permission view; `is_robot` only for users and robots.
#[derive(Serialize)]
struct PermissionView {
    role: RepoRole,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    is_robot: Option<bool>,
}

impl From<Grant> for PermissionView {
    fn from(g: Grant) -> Self {
        PermissionView {
            role: g.role,
            is_robot: g.grantee_kind.map(|k| k == AccountKind::Robot),
            name: g.grantee_name,
        }
    }
}

#[derive(Serialize)]
struct Permissions {
    /// By grantee name.
    permissions: BTreeMap<String, PermissionView>,
}

async fn permissions(
    state: &AppState,
    caller: &Caller,
    name: &str,
    teams: bool,
) -> Result<Response, Problem> {
    require(state, caller, Resource::Repository(name), Action::Admin).await?;
    let permissions = state
        .accounts
        .grants(name)
        .await?
        .into_iter()
        .filter(|g| g.grantee_kind.is_none() == teams)
        .map(|g| (g.grantee_name.clone(), g.into()))
        .collect();
    Ok(axum::Json(Permissions { permissions }).into_response())
}

/// `GET /api/v1/repository/{ns}/{repo}/permissions/user/`: users and robots.
pub(crate) async fn user_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
) -> Result<Response, Problem> {
    permissions(&state, &caller, &full_name(&ns, &repo), false).await
}

/// `GET /api/v1/repository/{ns}/{repo}/permissions/team/`.
pub(crate) async fn team_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo)): Path<(String, String)>,
) -> Result<Response, Problem> {
    permissions(&state, &caller, &full_name(&ns, &repo), true).await
}

#[derive(Deserialize)]
pub(crate) struct RoleBody {
    role: RepoRole,
}

/// `PUT /api/v1/repository/{ns}/{repo}/permissions/user/{name}`: a user, or a robot of the
/// repository's namespace.
pub(crate) async fn set_user_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, grantee)): Path<(String, String, String)>,
    Json(body): Json<RoleBody>,
) -> Result<Response, Problem> {
    let name = full_name(&ns, &repo);
    require(&state, &caller, Resource::Repository(&name), Action::Admin).await?;
    let grant = state
        .accounts
        .set_user_grant(&caller.identity, &caller.client, &name, &grantee, body.role)
        .await?;
    Ok(axum::Json(PermissionView::from(grant)).into_response())
}

/// `DELETE /api/v1/repository/{ns}/{repo}/permissions/user/{name}`.
pub(crate) async fn remove_user_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, grantee)): Path<(String, String, String)>,
) -> Result<StatusCode, Problem> {
    let name = full_name(&ns, &repo);
    require(&state, &caller, Resource::Repository(&name), Action::Admin).await?;
    state
        .accounts
        .remove_user_grant(&caller.identity, &caller.client, &name, &grantee)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/repository/{ns}/{repo}/permissions/team/{team}`: a team of the
/// repository's organization.
pub(crate) async fn set_team_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, team)): Path<(String, String, String)>,
    Json(body): Json<RoleBody>,
) -> Result<Response, Problem> {
    let name = full_name(&ns, &repo);
    require(&state, &caller, Resource::Repository(&name), Action::Admin).await?;
    let grant = state
        .accounts
        .set_team_grant(&caller.identity, &caller.client, &name, &team, body.role)
        .await?;
    Ok(axum::Json(PermissionView::from(grant)).into_response())
}

/// `DELETE /api/v1/repository/{ns}/{repo}/permissions/team/{team}`.
pub(crate) async fn remove_team_permission(
    State(state): State<AppState>,
    caller: Caller,
    Path((ns, repo, team)): Path<(String, String, String)>,
) -> Result<StatusCode, Problem> {
    let name = full_name(&ns, &repo);
    require(&state, &caller, Resource::Repository(&name), Action::Admin).await?;
    state
        .accounts
        .remove_team_grant(&caller.identity, &caller.client, &name, &team)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
