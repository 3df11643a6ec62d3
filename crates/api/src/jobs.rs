//! `/api/v1/jobs`: the background job queue, read-only, for superusers (job errors may
//! name repositories and internals).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bulwark_auth::{Action, Resource};
use bulwark_meta::{Job, JobStatus};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{Caller, require};
use crate::management::extract::{Path, Query};
use crate::problem::Problem;

#[derive(Serialize)]
pub struct JobView {
    id: i64,
    kind: String,
    status: &'static str,
    attempts: u32,
    max_attempts: u32,
    run_after: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            id: j.id,
            kind: j.kind,
            status: j.status.as_str(),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_after: j.run_after,
            lease_owner: j.lease_owner,
            lease_until: j.lease_until,
            last_error: j.last_error,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    let status = q
        .status
        .map(|s| {
            JobStatus::parse(&s).ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("status must be queued, running, done or failed, not {s:?}"),
                )
            })
        })
        .transpose()?;
    let jobs = state
        .jobs
        .jobs(status, q.limit.unwrap_or(100).min(1000))
        .await?;
    let jobs: Vec<JobView> = jobs.into_iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({ "jobs": jobs })))
}

pub async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, Problem> {
    require(&state, &caller, Resource::Registry, Action::Superuser).await?;
    match state.jobs.job(id).await? {
        Some(job) => Ok(Json(job.into())),
        None => Err(Problem::new(StatusCode::NOT_FOUND, format!("no job {id}"))),
    }
}
