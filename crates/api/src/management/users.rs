//! The caller's own account (`/api/v1/user/`) and superuser administration of users
//! (`/api/v1/superuser/users/`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_auth::{Action, Resource};
use bulwark_meta::{Account, TeamRole};
use serde::{Deserialize, Serialize};

use super::extract::{Json, Path};
use super::require_self;
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

/// A user as listed (Quay's user view, without avatars and billing).
#[derive(Serialize)]
pub(crate) struct UserView {
    username: String,
    kind: &'static str,
    email: Option<String>,
    super_user: bool,
    enabled: bool,
    /// Milliseconds since the Unix epoch.
    created: i64,
}

impl From<Account> for UserView {
    fn from(a: Account) -> Self {
        UserView {
            username: a.name,
            kind: a.kind.as_str(),
            email: a.email,
            super_user: a.superuser,
            enabled: a.enabled,
            created: a.created_at,
        }
    }
}

#[derive(Serialize)]
struct Membership {
    name: String,
    role: TeamRole,
    is_org_admin: bool,
    can_create_repo: bool,
}

/// The caller, with the organizations it belongs to.
#[derive(Serialize)]
struct Me {
    anonymous: bool,
    #[serde(flatten)]
    user: UserView,
    organizations: Vec<Membership>,
    /// Usage against the quota of the user's namespace, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_report: Option<bulwark_registry::QuotaReport>,
}

/// `GET /api/v1/user/`.
pub(crate) async fn me(State(state): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    let id = require_self(&state, &caller).await?;
    me_response(&state, id).await
}

async fn me_response(state: &AppState, id: i64) -> Result<Response, Problem> {
    let account = state.accounts.account(id).await?;
    let organizations = state
        .accounts
        .memberships(id)
        .await?
        .into_iter()
        .map(|(org, role)| Membership {
            name: org.name,
            role,
            is_org_admin: role == TeamRole::Admin,
            can_create_repo: role >= TeamRole::Creator,
        })
        .collect();
    let quota_report = state.registry.quota_report(&account.name).await?;
    Ok(axum::Json(Me {
        anonymous: false,
        user: account.into(),
        organizations,
        quota_report,
    })
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct NewUser {
    username: String,
    email: Option<String>,
    password: String,
}

/// `POST /api/v1/user/`: self-registration, open only when the deployment allows it
/// (`[auth] user_creation`); that setting is the check, so no `require` here.
pub(crate) async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewUser>,
) -> Result<Response, Problem> {
    let user = state
        .accounts
        .register_user(
            &caller.client,
            &body.username,
            body.email.as_deref(),
            &body.password,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(UserView::from(user))).into_response())
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    /// The new password.
    password: String,
    current_password: String,
}

/// `PUT /api/v1/user/`: changes the caller's password, given the current one.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PasswordChange>,
) -> Result<Response, Problem> {
    let id = require_self(&state, &caller).await?;
    state
        .accounts
        .change_own_password(
            &caller.identity,
            &caller.client,
            &body.current_password,
            &body.password,
        )
        .await?;
    me_response(&state, id).await
}

#[derive(Serialize)]
struct UserList {
    users: Vec<UserView>,
}

/// `GET /api/v1/superuser/users/`.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    let users = state
        .accounts
        .users()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(UserList { users }).into_response())
}

#[derive(Deserialize)]
pub(crate) struct CreatedUser {
    username: String,
    email: Option<String>,
    password: String,
    #[serde(default)]
    superuser: bool,
}

/// `POST /api/v1/superuser/users/`.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreatedUser>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    let user = state
        .accounts
        .create_user(
            &caller.identity,
            &caller.client,
            &body.username,
            body.email.as_deref(),
            &body.password,
            body.superuser,
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(UserView::from(user))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserUpdate {
    enabled: Option<bool>,
    superuser: Option<bool>,
    password: Option<String>,
}

/// `PUT /api/v1/superuser/users/{username}`: any of `enabled`, `superuser`, `password`.
/// Unknown fields are refused rather than ignored (Quay's `email` cannot be changed here).
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
    Json(body): Json<UserUpdate>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    let user = state
        .accounts
        .update_user(
            &caller.identity,
            &caller.client,
            &username,
            body.enabled,
            body.superuser,
            body.password.as_deref(),
        )
        .await?;
    Ok(axum::Json(UserView::from(user)).into_response())
}

/// `DELETE /api/v1/superuser/users/{username}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(username): Path<String>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    state
        .accounts
        .delete_user(&caller.identity, &caller.client, &username)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
