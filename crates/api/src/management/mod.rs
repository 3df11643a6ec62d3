//! The management API under `/api/v1/`: users, organizations, teams, robots, repositories,
//! permissions, application and API tokens, jobs, the tag lifecycle. Paths and JSON follow
//! Quay's API where Quay has the route. Every handler parses, asks
//! [`require`](crate::auth::require) once for the resource its path names, calls
//! [`Accounts`](bulwark_auth::Accounts) (or the registry, for the tag lifecycle) and maps
//! the result; errors are `application/problem+json`.
//!
//! Existence is not revealed to callers without rights: the decision is asked before
//! anything is looked up, so a private repository, an organization or a team that the
//! caller may not see answers 403 (401 when anonymous) whether it exists or not; 404 comes
//! only to callers who would have the right on it.
//!
//! Every route is listed once in [`table`], which both builds the router and is checked
//! against the OpenAPI document (`crates/api/openapi.json`, served at
//! `/api/v1/openapi.json`), so no route goes undocumented.

pub(crate) mod extract;
mod logs;
mod orgs;
mod quota;
mod repos;
mod retention;
mod robots;
mod security;
mod tags;
mod tokens;
mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use bulwark_auth::{Action, Resource};

use crate::AppState;
use crate::auth::{Caller, require};
use crate::jobs;
use crate::metrics::named;
use crate::problem::Problem;

/// The OpenAPI 3.1 document of these routes.
const OPENAPI: &str = include_str!("../../openapi.json");

/// Request bodies of these routes are small JSON objects.
const BODY_LIMIT: usize = 64 * 1024;

/// One route: method, path (axum's syntax, which is also OpenAPI's) and handler.
struct Route {
    /// Kept for the check against the OpenAPI document; the handler holds it otherwise.
    #[cfg(test)]
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    let handler = named(on(filter, handler), path);
    Route {
        #[cfg(test)]
        method,
        path,
        handler,
    }
}

impl Route {
    /// A body limit of its own, for a route taking more than [`BODY_LIMIT`].
    fn body_limit(mut self, bytes: u64) -> Route {
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        self.handler = self.handler.layer(DefaultBodyLimit::max(bytes));
        self
    }
}

/// Every management route.
fn table() -> Vec<Route> {
    use Method as M;
    vec![
        route(M::GET, "/api/v1/openapi.json", openapi),
        // The caller's own account.
        route(M::GET, "/api/v1/user/", users::me),
        route(M::POST, "/api/v1/user/", users::register),
        route(M::PUT, "/api/v1/user/", users::change_password),
        // Superuser administration.
        route(M::GET, "/api/v1/superuser/users/", users::list),
        route(M::POST, "/api/v1/superuser/users/", users::create),
        route(M::PUT, "/api/v1/superuser/users/{username}", users::update),
        route(
            M::DELETE,
            "/api/v1/superuser/users/{username}",
            users::delete,
        ),
        route(M::GET, "/api/v1/jobs", jobs::list),
        route(M::GET, "/api/v1/jobs/{id}", jobs::one),
        // Organizations and teams.
        route(M::POST, "/api/v1/organization/", orgs::create),
        route(M::GET, "/api/v1/organization/{org}", orgs::get),
        route(M::DELETE, "/api/v1/organization/{org}", orgs::delete),
        route(M::GET, "/api/v1/organization/{org}/teams", orgs::teams),
        route(
            M::PUT,
            "/api/v1/organization/{org}/team/{team}",
            orgs::set_team,
        ),
        route(
            M::DELETE,
            "/api/v1/organization/{org}/team/{team}",
            orgs::delete_team,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/team/{team}/members",
            orgs::members,
        ),
        route(
            M::PUT,
            "/api/v1/organization/{org}/team/{team}/members/{member}",
            orgs::add_member,
        ),
        route(
            M::DELETE,
            "/api/v1/organization/{org}/team/{team}/members/{member}",
            orgs::remove_member,
        ),
        // Robots of an organization, and of the caller's own namespace.
        route(
            M::GET,
            "/api/v1/organization/{org}/robots",
            robots::org_list,
        ),
        route(
            M::PUT,
            "/api/v1/organization/{org}/robots/{short}",
            robots::org_create,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/robots/{short}",
            robots::org_get,
        ),
        route(
            M::DELETE,
            "/api/v1/organization/{org}/robots/{short}",
            robots::org_delete,
        ),
        route(
            M::POST,
            "/api/v1/organization/{org}/robots/{short}/regenerate",
            robots::org_regenerate,
        ),
        route(M::GET, "/api/v1/user/robots", robots::user_list),
        route(M::PUT, "/api/v1/user/robots/{short}", robots::user_create),
        route(M::GET, "/api/v1/user/robots/{short}", robots::user_get),
        route(
            M::DELETE,
            "/api/v1/user/robots/{short}",
            robots::user_delete,
        ),
        route(
            M::POST,
            "/api/v1/user/robots/{short}/regenerate",
            robots::user_regenerate,
        ),
        // Repositories and their permissions.
        route(M::POST, "/api/v1/repository", repos::create),
        route(M::GET, "/api/v1/repository", repos::list),
        route(M::GET, "/api/v1/repository/{ns}/{repo}", repos::get),
        route(M::DELETE, "/api/v1/repository/{ns}/{repo}", repos::delete),
        route(
            M::POST,
            "/api/v1/repository/{ns}/{repo}/changevisibility",
            repos::change_visibility,
        ),
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/permissions/user/",
            repos::user_permissions,
        ),
        route(
            M::PUT,
            "/api/v1/repository/{ns}/{repo}/permissions/user/{name}",
            repos::set_user_permission,
        ),
        route(
            M::DELETE,
            "/api/v1/repository/{ns}/{repo}/permissions/user/{name}",
            repos::remove_user_permission,
        ),
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/permissions/team/",
            repos::team_permissions,
        ),
        route(
            M::PUT,
            "/api/v1/repository/{ns}/{repo}/permissions/team/{team}",
            repos::set_team_permission,
        ),
        route(
            M::DELETE,
            "/api/v1/repository/{ns}/{repo}/permissions/team/{team}",
            repos::remove_team_permission,
        ),
        // The tag lifecycle: Time Machine, expiry, immutability, garbage collection.
        route(M::GET, "/api/v1/repository/{ns}/{repo}/tag/", tags::history),
        route(
            M::PUT,
            "/api/v1/repository/{ns}/{repo}/tag/{tag}",
            tags::update,
        ),
        route(
            M::DELETE,
            "/api/v1/repository/{ns}/{repo}/tag/{tag}",
            tags::delete,
        ),
        route(
            M::POST,
            "/api/v1/repository/{ns}/{repo}/tag/{tag}/restore",
            tags::restore,
        ),
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/immutabilityrules",
            tags::repo_rules,
        ),
        route(
            M::POST,
            "/api/v1/repository/{ns}/{repo}/immutabilityrules",
            tags::repo_add_rule,
        ),
        route(
            M::DELETE,
            "/api/v1/repository/{ns}/{repo}/immutabilityrules/{id}",
            tags::repo_delete_rule,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/timemachine",
            tags::window,
        ),
        route(
            M::PUT,
            "/api/v1/organization/{org}/timemachine",
            tags::set_window,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/immutabilityrules",
            tags::org_rules,
        ),
        route(
            M::POST,
            "/api/v1/organization/{org}/immutabilityrules",
            tags::org_add_rule,
        ),
        route(
            M::DELETE,
            "/api/v1/organization/{org}/immutabilityrules/{id}",
            tags::org_delete_rule,
        ),
        route(M::POST, "/api/v1/superuser/gc", tags::gc),
        route(M::POST, "/api/v1/superuser/vulndb", security::import_vulndb)
            .body_limit(bulwark_security::vulndb::MAX_DOCUMENT_BYTES),
        // Vulnerability scans of a manifest.
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/manifest/{digest}/security",
            security::quay,
        ),
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/manifest/{digest}/report",
            security::report,
        ),
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/manifest/{digest}/sbom",
            security::sbom,
        ),
        // Pull policies on vulnerabilities.
        route(
            M::GET,
            "/api/v1/organization/{org}/scanpolicy",
            security::org_policy,
        ),
        route(
            M::PUT,
            "/api/v1/organization/{org}/scanpolicy",
            security::set_org_policy,
        ),
        route(
            M::DELETE,
            "/api/v1/organization/{org}/scanpolicy",
            security::delete_org_policy,
        ),
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/scanpolicy",
            security::repo_policy,
        ),
        route(
            M::PUT,
            "/api/v1/repository/{ns}/{repo}/scanpolicy",
            security::set_repo_policy,
        ),
        route(
            M::DELETE,
            "/api/v1/repository/{ns}/{repo}/scanpolicy",
            security::delete_repo_policy,
        ),
        // Retention (auto-prune) policies.
        route(
            M::GET,
            "/api/v1/organization/{org}/autoprunepolicy/",
            retention::org_list,
        ),
        route(
            M::POST,
            "/api/v1/organization/{org}/autoprunepolicy/",
            retention::org_create,
        ),
        route(
            M::DELETE,
            "/api/v1/organization/{org}/autoprunepolicy/{id}",
            retention::org_delete,
        ),
        route(
            M::POST,
            "/api/v1/organization/{org}/autoprunepolicy/run",
            retention::org_run,
        ),
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/autoprunepolicy/",
            retention::repo_list,
        ),
        route(
            M::POST,
            "/api/v1/repository/{ns}/{repo}/autoprunepolicy/",
            retention::repo_create,
        ),
        route(
            M::DELETE,
            "/api/v1/repository/{ns}/{repo}/autoprunepolicy/{id}",
            retention::repo_delete,
        ),
        // Namespace quotas.
        route(M::GET, "/api/v1/organization/{org}/quota", quota::org_list),
        route(
            M::POST,
            "/api/v1/organization/{org}/quota",
            quota::org_create,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/quota/{quota_id}",
            quota::org_get,
        ),
        route(
            M::PUT,
            "/api/v1/organization/{org}/quota/{quota_id}",
            quota::super_update,
        ),
        route(
            M::DELETE,
            "/api/v1/organization/{org}/quota/{quota_id}",
            quota::super_delete,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/quota/{quota_id}/limit",
            quota::org_limits,
        ),
        route(
            M::POST,
            "/api/v1/organization/{org}/quota/{quota_id}/limit",
            quota::org_add_limit,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/quota/{quota_id}/limit/{limit_id}",
            quota::org_limit,
        ),
        route(
            M::PUT,
            "/api/v1/organization/{org}/quota/{quota_id}/limit/{limit_id}",
            quota::org_update_limit,
        ),
        route(
            M::DELETE,
            "/api/v1/organization/{org}/quota/{quota_id}/limit/{limit_id}",
            quota::org_delete_limit,
        ),
        route(M::GET, "/api/v1/user/quota", quota::user_list),
        route(M::GET, "/api/v1/user/quota/{quota_id}", quota::user_get),
        route(
            M::GET,
            "/api/v1/superuser/organization/{namespace}/quota",
            quota::super_list,
        ),
        route(
            M::POST,
            "/api/v1/superuser/organization/{namespace}/quota",
            quota::org_create,
        ),
        route(
            M::PUT,
            "/api/v1/superuser/organization/{namespace}/quota/{quota_id}",
            quota::super_update,
        ),
        route(
            M::DELETE,
            "/api/v1/superuser/organization/{namespace}/quota/{quota_id}",
            quota::super_delete,
        ),
        route(
            M::GET,
            "/api/v1/superuser/users/{username}/quota",
            quota::super_list,
        ),
        route(
            M::POST,
            "/api/v1/superuser/users/{username}/quota",
            quota::super_user_create,
        ),
        route(
            M::PUT,
            "/api/v1/superuser/users/{username}/quota/{quota_id}",
            quota::super_update,
        ),
        route(
            M::DELETE,
            "/api/v1/superuser/users/{username}/quota/{quota_id}",
            quota::super_delete,
        ),
        // The caller's application and API tokens.
        route(M::GET, "/api/v1/user/apptoken", tokens::app_list),
        route(M::POST, "/api/v1/user/apptoken", tokens::app_create),
        route(M::GET, "/api/v1/user/apptoken/{id}", tokens::app_get),
        route(M::DELETE, "/api/v1/user/apptoken/{id}", tokens::app_revoke),
        route(M::GET, "/api/v1/user/apitoken", tokens::api_list),
        route(M::POST, "/api/v1/user/apitoken", tokens::api_create),
        route(M::DELETE, "/api/v1/user/apitoken/{id}", tokens::api_revoke),
        // The action log.
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/logs",
            logs::repository,
        ),
        route(
            M::GET,
            "/api/v1/repository/{ns}/{repo}/aggregatelogs",
            logs::repository_aggregate,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/logs",
            logs::organization,
        ),
        route(
            M::GET,
            "/api/v1/organization/{org}/aggregatelogs",
            logs::organization_aggregate,
        ),
        route(M::GET, "/api/v1/user/logs", logs::user),
        route(M::GET, "/api/v1/user/aggregatelogs", logs::user_aggregate),
        route(M::GET, "/api/v1/superuser/logs", logs::superuser),
        route(
            M::GET,
            "/api/v1/superuser/aggregatelogs",
            logs::superuser_aggregate,
        ),
    ]
}

/// The management API's routes, to merge into the application router.
pub(crate) fn routes() -> Router<AppState> {
    table()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// `GET /api/v1/openapi.json`: public, like the API's shape is.
async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

/// The check of routes about the caller's own account (`Resource::Account` + `Manage`);
/// returns the caller's account id. Anonymous callers have no account: 401, as from
/// `require`.
pub(crate) async fn require_self(state: &AppState, caller: &Caller) -> Result<i64, Problem> {
    let Some(id) = caller.identity.account_id() else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "authentication required",
        ));
    };
    require(state, caller, Resource::Account(id), Action::Manage).await?;
    Ok(id)
}

/// A response carrying a secret shown once: never stored by caches.
fn no_store(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// `(METHOD, path)` of every operation in the OpenAPI document.
    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, _) in item.as_object().expect("path item") {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    ops.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let routed: BTreeSet<_> = table()
            .into_iter()
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        let documented = documented();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let missing: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(missing.is_empty(), "documented but not routed: {missing:?}");
    }

    #[test]
    fn every_operation_is_complete_and_every_reference_resolves() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert!(schemes.contains_key("basic") && schemes.contains_key("bearer"));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(
                    op.get("operationId").is_some(),
                    "{method} {path}: operationId"
                );
                // Public routes say so with an empty list; wherever credentials are taken,
                // bad ones answer 401.
                let public = op.get("security") == Some(&serde_json::json!([]));
                if !public {
                    assert!(
                        op["responses"].get("401").is_some(),
                        "{method} {path}: 401 documented"
                    );
                }
            }
        }
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "unresolved {r}");
        }
    }

    fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_router_builds() {
        // Overlapping routes or bad path syntax panic here rather than at startup.
        let _ = routes();
    }
}
