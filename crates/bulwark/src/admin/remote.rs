//! The remote backend: the management API (`/api/v1/…`) of a running server, as the user
//! whose credentials are given. The server decides what the caller may do and answers
//! refusals as problem+json, whose `detail` becomes the error message.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bulwark_meta::{RepoRole, TeamRole, Visibility, VulnerabilityRecord};
use reqwest::{Method, Response, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::backend::{
    AppToken, Backend, Grantee, Member, NewAppToken, Organization, Permission, RepoPath,
    Repository, Robot, RobotToken, Team, User,
};
use crate::security::ImportSummary;

/// How the CLI logs in.
pub enum Login {
    Password {
        username: String,
        password: String,
    },
    /// An API token (`bwp_…`), sent as a bearer token.
    ApiToken(String),
}

pub struct Remote {
    http: reqwest::Client,
    server: Url,
    login: Login,
    /// The caller's username, asked when first needed: an API token may lack the scope
    /// (`user:admin`) to read it while having the one a command needs.
    me: OnceCell<String>,
}

#[derive(Deserialize)]
struct Me {
    username: String,
    organizations: Vec<Organization>,
}

impl Remote {
    pub fn new(server: Url, login: Login, insecure: bool) -> Result<Remote> {
        match server.scheme() {
            "https" => {}
            "http" if is_loopback(&server) => {}
            "http" => eprintln!(
                "warning: {server} is plain HTTP: the credentials and secrets cross the network \
                 unencrypted"
            ),
            _ => bail!("--server takes an http:// or https:// URL, not {server}"),
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("bulwark-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .tls_danger_accept_invalid_certs(insecure)
            .build()
            .context("building the HTTP client")?;
        Ok(Remote {
            http,
            server,
            login,
            me: OnceCell::new(),
        })
    }

    /// The caller's account, with its organizations.
    async fn account(&self) -> Result<Me> {
        self.call(Method::GET, self.url(&["user", ""]), None).await
    }

    async fn me(&self) -> Result<&str> {
        let me = self
            .me
            .get_or_try_init(|| async { self.account().await.map(|me| me.username) })
            .await?;
        Ok(me)
    }

    /// `/api/v1/` and `segments` below the server's URL, each percent-encoded (a `/` inside
    /// a repository name travels as `%2F`). An empty last segment makes a trailing slash.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.server.clone();
        url.path_segments_mut()
            .expect("http(s) URLs have a path (checked in `new`)")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        url
    }

    async fn send(&self, method: Method, url: Url, body: Option<Value>) -> Result<Response> {
        let what = format!("{method} {}", url.path());
        let mut request = self.http.request(method, url);
        request = match &self.login {
            Login::Password { username, password } => request.basic_auth(username, Some(password)),
            Login::ApiToken(token) => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.server))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // Errors are problem+json; anything else (a proxy's page) is shown by its status.
        let detail = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let hint = match status {
            StatusCode::UNAUTHORIZED => "; check the credentials",
            _ => "",
        };
        if detail.is_empty() {
            Err(anyhow!("the server answered {status} to {what}{hint}"))
        } else {
            Err(anyhow!("{detail} ({status} from {what}{hint})"))
        }
    }

    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Value>,
    ) -> Result<T> {
        let what = format!("{method} {}", url.path());
        let response = self.send(method, url, body).await?;
        response
            .json()
            .await
            .with_context(|| format!("unexpected answer to {what}"))
    }

    pub(super) async fn act(&self, method: Method, url: Url, body: Option<Value>) -> Result<()> {
        self.send(method, url, body).await.map(drop)
    }

    /// `POST /api/v1/superuser/vulndb`: OSV records (a JSON array of them) imported by the
    /// server; the import's summary.
    pub(crate) async fn import_vulndb(
        &self,
        records: &[VulnerabilityRecord],
    ) -> Result<ImportSummary> {
        let records = records
            .iter()
            .map(|r| serde_json::from_str(&r.record))
            .collect::<Result<Vec<Value>, _>>()
            .context("an OSV record read is not JSON")?;
        let url = self.url(&["superuser", "vulndb"]);
        self.call(Method::POST, url, Some(Value::Array(records)))
            .await
    }

    fn user_url(&self, name: &str) -> Url {
        self.url(&["superuser", "users", name])
    }

    fn team_url(&self, org: &str, team: &str) -> Url {
        self.url(&["organization", org, "team", team])
    }

    fn member_url(&self, org: &str, team: &str, member: &str) -> Url {
        self.url(&["organization", org, "team", team, "members", member])
    }

    /// The robots of the caller's own namespace live under `/user/robots`, those of an
    /// organization under `/organization/{org}/robots` (the API has no route for another
    /// user's robots). A caller that may not read its own name (an API token without
    /// `user:admin`) may not use the former either.
    async fn robot_url(&self, namespace: &str, rest: &[&str]) -> Url {
        let own = self.me().await.is_ok_and(|me| me == namespace);
        let mut segments = if own {
            vec!["user", "robots"]
        } else {
            vec!["organization", namespace, "robots"]
        };
        segments.extend(rest);
        self.url(&segments)
    }

    pub(super) fn repo_url(&self, repo: &RepoPath, rest: &[&str]) -> Url {
        let mut segments = vec!["repository", &repo.namespace, &repo.name];
        segments.extend(rest);
        self.url(&segments)
    }

    fn grantee_url(&self, repo: &RepoPath, grantee: &Grantee) -> Url {
        match grantee {
            Grantee::User(user) => self.repo_url(repo, &["permissions", "user", user]),
            Grantee::Team(team) => self.repo_url(repo, &["permissions", "team", team]),
        }
    }

    /// Application tokens are made and seen by their owner only.
    async fn own(&self, user: &str) -> Result<()> {
        let me = self.me().await?;
        if user != me {
            bail!(
                "application tokens belong to the user who makes them: log in as {user} \
                 (you are {me})"
            );
        }
        Ok(())
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[derive(Deserialize)]
struct Users {
    users: Vec<User>,
}

#[derive(Deserialize)]
struct Teams {
    teams: Vec<Team>,
}

#[derive(Deserialize)]
struct Members {
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct Robots {
    robots: Vec<Robot>,
}

#[derive(Deserialize)]
struct Repositories {
    repositories: Vec<Repository>,
}

#[derive(Deserialize)]
struct Permissions {
    permissions: std::collections::BTreeMap<String, PermissionView>,
}

#[derive(Deserialize)]
struct PermissionView {
    name: String,
    role: RepoRole,
    is_robot: Option<bool>,
}

#[derive(Deserialize)]
struct Tokens {
    tokens: Vec<AppToken>,
}

#[derive(Deserialize)]
struct OneToken {
    token: NewAppToken,
}

impl Backend for Remote {
    async fn acting_user(&self) -> Result<String> {
        Ok(self.me().await?.to_owned())
    }

    async fn users(&self) -> Result<Vec<User>> {
        let url = self.url(&["superuser", "users", ""]);
        let list: Users = self.call(Method::GET, url, None).await?;
        Ok(list.users)
    }

    async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        password: &str,
        superuser: bool,
    ) -> Result<User> {
        let url = self.url(&["superuser", "users", ""]);
        let body = json!({
            "username": name, "email": email, "password": password, "superuser": superuser,
        });
        self.call(Method::POST, url, Some(body)).await
    }

    async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let body = json!({ "password": password });
        self.act(Method::PUT, self.user_url(name), Some(body)).await
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<User> {
        let body = json!({ "enabled": enabled });
        self.call(Method::PUT, self.user_url(name), Some(body))
            .await
    }

    async fn delete_user(&self, name: &str) -> Result<()> {
        self.act(Method::DELETE, self.user_url(name), None).await
    }

    /// The organizations the caller belongs to: the API lists no others.
    async fn organizations(&self) -> Result<Vec<Organization>> {
        Ok(self.account().await?.organizations)
    }

    async fn create_organization(&self, name: &str) -> Result<()> {
        let url = self.url(&["organization", ""]);
        self.act(Method::POST, url, Some(json!({ "name": name })))
            .await
    }

    async fn delete_organization(&self, name: &str) -> Result<()> {
        let url = self.url(&["organization", name]);
        self.act(Method::DELETE, url, None).await
    }

    async fn teams(&self, org: &str) -> Result<Vec<Team>> {
        let url = self.url(&["organization", org, "teams"]);
        let list: Teams = self.call(Method::GET, url, None).await?;
        Ok(list.teams)
    }

    async fn set_team(&self, org: &str, team: &str, role: TeamRole) -> Result<(Team, bool)> {
        let url = self.team_url(org, team);
        let response = self
            .send(Method::PUT, url, Some(json!({ "role": role })))
            .await?;
        let created = response.status() == StatusCode::CREATED;
        let team = response
            .json()
            .await
            .context("unexpected answer to a team's creation")?;
        Ok((team, created))
    }

    async fn delete_team(&self, org: &str, team: &str) -> Result<()> {
        self.act(Method::DELETE, self.team_url(org, team), None)
            .await
    }

    async fn members(&self, org: &str, team: &str) -> Result<Vec<Member>> {
        let url = self.url(&["organization", org, "team", team, "members"]);
        let list: Members = self.call(Method::GET, url, None).await?;
        Ok(list.members)
    }

    async fn add_member(&self, org: &str, team: &str, member: &str) -> Result<()> {
        let url = self.member_url(org, team, member);
        self.act(Method::PUT, url, None).await
    }

    async fn remove_member(&self, org: &str, team: &str, member: &str) -> Result<()> {
        let url = self.member_url(org, team, member);
        self.act(Method::DELETE, url, None).await
    }

    async fn robots(&self, namespace: &str) -> Result<Vec<Robot>> {
        let url = self.robot_url(namespace, &[]).await;
        let list: Robots = self.call(Method::GET, url, None).await?;
        Ok(list.robots)
    }

    async fn create_robot(&self, namespace: &str, short: &str) -> Result<RobotToken> {
        let url = self.robot_url(namespace, &[short]).await;
        self.call(Method::PUT, url, None).await
    }

    async fn regenerate_robot(&self, namespace: &str, short: &str) -> Result<RobotToken> {
        let url = self.robot_url(namespace, &[short, "regenerate"]).await;
        self.call(Method::POST, url, None).await
    }

    async fn delete_robot(&self, namespace: &str, short: &str) -> Result<()> {
        let url = self.robot_url(namespace, &[short]).await;
        self.act(Method::DELETE, url, None).await
    }

    async fn repositories(&self, namespace: &str) -> Result<Vec<Repository>> {
        let mut url = self.url(&["repository"]);
        url.query_pairs_mut().append_pair("namespace", namespace);
        let list: Repositories = self.call(Method::GET, url, None).await?;
        Ok(list.repositories)
    }

    async fn create_repository(
        &self,
        repo: &RepoPath,
        visibility: Visibility,
    ) -> Result<Repository> {
        let url = self.url(&["repository"]);
        let body = json!({
            "namespace": repo.namespace, "repository": repo.name, "visibility": visibility,
        });
        self.call(Method::POST, url, Some(body)).await
    }

    async fn delete_repository(&self, repo: &RepoPath) -> Result<()> {
        self.act(Method::DELETE, self.repo_url(repo, &[]), None)
            .await
    }

    async fn set_visibility(&self, repo: &RepoPath, visibility: Visibility) -> Result<()> {
        let url = self.repo_url(repo, &["changevisibility"]);
        let body = json!({ "visibility": visibility });
        self.act(Method::POST, url, Some(body)).await
    }

    async fn permissions(&self, repo: &RepoPath) -> Result<Vec<Permission>> {
        let mut all = Vec::new();
        for kind in ["user", "team"] {
            let url = self.repo_url(repo, &["permissions", kind, ""]);
            let list: Permissions = self.call(Method::GET, url, None).await?;
            all.extend(list.permissions.into_values().map(|p| {
                Permission {
                    kind: match p.is_robot {
                        Some(true) => "robot",
                        Some(false) => "user",
                        None => "team",
                    }
                    .to_owned(),
                    name: p.name,
                    role: p.role,
                }
            }));
        }
        Ok(all)
    }

    async fn grant(&self, repo: &RepoPath, grantee: &Grantee, role: RepoRole) -> Result<()> {
        let url = self.grantee_url(repo, grantee);
        self.act(Method::PUT, url, Some(json!({ "role": role })))
            .await
    }

    async fn revoke(&self, repo: &RepoPath, grantee: &Grantee) -> Result<()> {
        let url = self.grantee_url(repo, grantee);
        self.act(Method::DELETE, url, None).await
    }

    async fn app_tokens(&self, user: &str) -> Result<Vec<AppToken>> {
        self.own(user).await?;
        let url = self.url(&["user", "apptoken"]);
        let list: Tokens = self.call(Method::GET, url, None).await?;
        Ok(list.tokens)
    }

    async fn create_app_token(
        &self,
        user: &str,
        title: &str,
        expiration: Option<i64>,
    ) -> Result<NewAppToken> {
        self.own(user).await?;
        let url = self.url(&["user", "apptoken"]);
        let body = json!({ "title": title, "expiration": expiration });
        let created: OneToken = self.call(Method::POST, url, Some(body)).await?;
        Ok(created.token)
    }

    async fn revoke_app_token(&self, user: &str, id: &str) -> Result<()> {
        self.own(user).await?;
        let url = self.url(&["user", "apptoken", id]);
        self.act(Method::DELETE, url, None).await
    }
}
