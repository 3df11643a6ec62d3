//! Robot accounts of an organization (`/api/v1/organization/{org}/robots…`, for its
//! administrators) and of the caller's own namespace (`/api/v1/user/robots…`). A robot's
//! token appears only in the answers that create or regenerate it: only its hash is kept.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bulwark_auth::{Action, Resource};
use bulwark_meta::Account;
use serde::{Deserialize, Serialize};

use super::extract::{OptionalJson, Path};
use super::{no_store, require_self};
use crate::AppState;
use crate::auth::{Caller, require};
use crate::problem::Problem;

#[derive(Serialize)]
struct RobotView {
    /// `namespace+short`, the robot's username.
    name: String,
    description: Option<String>,
    /// Milliseconds since the Unix epoch.
    created: i64,
}

impl From<Account> for RobotView {
    fn from(a: Account) -> Self {
        RobotView {
            name: a.name,
            description: a.description,
            created: a.created_at,
        }
    }
}

#[derive(Serialize)]
struct RobotList {
    robots: Vec<RobotView>,
}

#[derive(Deserialize, Default)]
pub(crate) struct RobotBody {
    description: Option<String>,
}

/// A robot with its new token (Quay's `token` field).
#[derive(Serialize)]
struct RobotWithToken {
    #[serde(flatten)]
    robot: RobotView,
    token: String,
}

fn with_token(status: StatusCode, robot: Account, token: String) -> Response {
    let robot = robot.into();
    no_store(status, RobotWithToken { robot, token })
}

// The operations, whichever namespace the path names; each route checks first.

async fn list(state: &AppState, ns: &str) -> Result<Response, Problem> {
    let robots = state.accounts.robots(ns).await?;
    Ok(axum::Json(RobotList {
        robots: robots.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

async fn create(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    short: &str,
    body: RobotBody,
) -> Result<Response, Problem> {
    let description = body.description;
    let (robot, token) = state
        .accounts
        .create_robot(
            &caller.identity,
            &caller.client,
            ns,
            short,
            description.as_deref(),
        )
        .await?;
    Ok(with_token(StatusCode::CREATED, robot, token))
}

async fn get_one(state: &AppState, ns: &str, short: &str) -> Result<Response, Problem> {
    let robot = state.accounts.robot(ns, short).await?;
    Ok(axum::Json(RobotView::from(robot)).into_response())
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    short: &str,
) -> Result<StatusCode, Problem> {
    state
        .accounts
        .delete_robot(&caller.identity, &caller.client, ns, short)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn regenerate(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    short: &str,
) -> Result<Response, Problem> {
    let (robot, token) = state
        .accounts
        .regenerate_robot_token(&caller.identity, &caller.client, ns, short)
        .await?;
    Ok(with_token(StatusCode::OK, robot, token))
}

async fn require_org_admin(state: &AppState, caller: &Caller, org: &str) -> Result<(), Problem> {
    require(state, caller, Resource::Namespace(org), Action::Admin).await
}

/// `GET /api/v1/organization/{org}/robots`.
pub(crate) async fn org_list(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Response, Problem> {
    require_org_admin(&state, &caller, &org).await?;
    list(&state, &org).await
}

/// `PUT /api/v1/organization/{org}/robots/{short}` (the body is optional).
pub(crate) async fn org_create(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, short)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<RobotBody>,
) -> Result<Response, Problem> {
    require_org_admin(&state, &caller, &org).await?;
    create(&state, &caller, &org, &short, body).await
}

/// `GET /api/v1/organization/{org}/robots/{short}`.
pub(crate) async fn org_get(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, short)): Path<(String, String)>,
) -> Result<Response, Problem> {
    require_org_admin(&state, &caller, &org).await?;
    get_one(&state, &org, &short).await
}

/// `DELETE /api/v1/organization/{org}/robots/{short}`.
pub(crate) async fn org_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, short)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    require_org_admin(&state, &caller, &org).await?;
    delete(&state, &caller, &org, &short).await
}

/// `POST /api/v1/organization/{org}/robots/{short}/regenerate`.
pub(crate) async fn org_regenerate(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, short)): Path<(String, String)>,
) -> Result<Response, Problem> {
    require_org_admin(&state, &caller, &org).await?;
    regenerate(&state, &caller, &org, &short).await
}

/// `GET /api/v1/user/robots`.
pub(crate) async fn user_list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    list(&state, caller.identity.name()).await
}

/// `PUT /api/v1/user/robots/{short}` (the body is optional).
pub(crate) async fn user_create(
    State(state): State<AppState>,
    caller: Caller,
    Path(short): Path<String>,
    OptionalJson(body): OptionalJson<RobotBody>,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    create(&state, &caller, caller.identity.name(), &short, body).await
}

/// `GET /api/v1/user/robots/{short}`.
pub(crate) async fn user_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(short): Path<String>,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    get_one(&state, caller.identity.name(), &short).await
}

/// `DELETE /api/v1/user/robots/{short}`.
pub(crate) async fn user_delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(short): Path<String>,
) -> Result<StatusCode, Problem> {
    require_self(&state, &caller).await?;
    delete(&state, &caller, caller.identity.name(), &short).await
}

/// `POST /api/v1/user/robots/{short}/regenerate`.
pub(crate) async fn user_regenerate(
    State(state): State<AppState>,
    caller: Caller,
    Path(short): Path<String>,
) -> Result<Response, Problem> {
    require_self(&state, &caller).await?;
    regenerate(&state, &caller, caller.identity.name(), &short).await
}
