//! Organizations, their teams and team members (`/api/v1/organization/…`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_auth::{Action, Resource};
use bulwark_meta::{Account, AccountKind, Team, TeamRole};
use serde::{Deserialize, Serialize};

use super::extract::{Json, Path};
use super::require_self;
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

#[derive(Serialize)]
struct OrgView {
    name: String,
    email: Option<String>,
    enabled: bool,
    /// Milliseconds since the Unix epoch.
    created: i64,
}

impl From<Account> for OrgView {
    fn from(a: Account) -> Self {
        OrgView {
            name: a.name,
            email: a.email,
            enabled: a.enabled,
            created: a.created_at,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct TeamView {
    name: String,
    role: TeamRole,
    description: Option<String>,
    member_count: usize,
}

fn team_view(team: Team, member_count: usize) -> TeamView {
    TeamView {
        name: team.name,
        role: team.role,
        description: team.description,
        member_count,
    }
}

#[derive(Serialize)]
struct MemberView {
    name: String,
    kind: &'static str,
    is_robot: bool,
}

impl From<Account> for MemberView {
    fn from(a: Account) -> Self {
        MemberView {
            is_robot: a.kind == AccountKind::Robot,
            kind: a.kind.as_str(),
            name: a.name,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct NewOrg {
    name: String,
    email: Option<String>,
}

/// `POST /api/v1/organization/`: any user may create an organization, which it then owns;
/// that is an act of its own account.
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewOrg>,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    let org = state
        .accounts
        .create_organization(
            &caller.identity,
            &caller.client,
            &body.name,
            body.email.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(OrgView::from(org))).into_response())
}

/// Teams with their member counts, by name.
async fn team_views(state: &AppState, org: &str) -> Result<Vec<TeamView>, Problem> {
    Ok(state
        .accounts
        .teams_with_members(org)
        .await?
        .into_iter()
        .map(|(team, members)| team_view(team, members.len()))
        .collect())
}

#[derive(Serialize)]
struct OrgDetail {
    #[serde(flatten)]
    org: OrgView,
    /// Quay's shape: teams by name.
    teams: BTreeMap<String, TeamView>,
    ordered_teams: Vec<String>,
    /// Usage against the quota, for organizations with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_report: Option<bulwark_registry::QuotaReport>,
}

/// `GET /api/v1/organization/{org}`: for members of the organization.
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    let account = state.accounts.organization(&org).await?;
    let teams = team_views(&state, &org).await?;
    Ok(axum::Json(OrgDetail {
        org: account.into(),
        ordered_teams: teams.iter().map(|t| t.name.clone()).collect(),
        teams: teams.into_iter().map(|t| (t.name.clone(), t)).collect(),
        quota_report: state.registry.quota_report(&org).await?,
    })
    .into_response())
}

/// `DELETE /api/v1/organization/{org}`: with its teams, robots and repositories.
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    state
        .accounts
        .delete_organization(&caller.identity, &caller.client, &org)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct TeamList {
    teams: Vec<TeamView>,
}

/// `GET /api/v1/organization/{org}/teams`.
pub(crate) async fn teams(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    let teams = team_views(&state, &org).await?;
    Ok(axum::Json(TeamList { teams }).into_response())
}

#[derive(Deserialize)]
pub(crate) struct TeamBody {
    role: TeamRole,
    description: Option<String>,
}

/// `PUT /api/v1/organization/{org}/team/{team}`: creates the team (201) or changes its
/// role (200).
pub(crate) async fn set_team(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
    Json(body): Json<TeamBody>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    let (team, created) = state
        .accounts
        .set_team(
            &caller.identity,
            &caller.client,
            &org,
            &team,
            body.role,
            body.description.as_deref(),
        )
        .await?;
    let members = if created {
        0
    } else {
        state.accounts.team_members(&org, &team.name).await?.1.len()
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(team_view(team, members))).into_response())
}

/// `DELETE /api/v1/organization/{org}/team/{team}`.
pub(crate) async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    state
        .accounts
        .delete_team(&caller.identity, &caller.client, &org, &team)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct Members {
    name: String,
    role: TeamRole,
    members: Vec<MemberView>,
}

/// `GET /api/v1/organization/{org}/team/{team}/members`.
pub(crate) async fn members(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team)): Path<(String, String)>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::View).await?;
    let (team, members) = state.accounts.team_members(&org, &team).await?;
    Ok(axum::Json(Members {
        name: team.name,
        role: team.role,
        members: members.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

/// `PUT /api/v1/organization/{org}/team/{team}/members/{member}`: a user, or a robot of
/// the organization (idempotent).
pub(crate) async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team, member)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    let account = state
        .accounts
        .add_team_member(&caller.identity, &caller.client, &org, &team, &member)
        .await?;
    Ok(axum::Json(MemberView::from(account)).into_response())
}

/// `DELETE /api/v1/organization/{org}/team/{team}/members/{member}`.
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, team, member)): Path<(String, String, String)>,
) -> Result<StatusCode, Problem> {
    require(&state, &caller, Resource::Namespace(&org), Action::Admin).await?;
    state
        .accounts
        .remove_team_member(&caller.identity, &caller.client, &org, &team, &member)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
