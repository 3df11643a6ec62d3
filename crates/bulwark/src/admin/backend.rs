//! What the administration commands need done, and the shapes of the answers. Two
//! implementations: [`Local`](super::local::Local) calls `Accounts` on the metadata
//! database, [`Remote`](super::remote::Remote) calls the management API. The field names
//! are the management API's (Quay's), so the remote answers deserialize into these types
//! and `--format json` prints the same shapes whichever backend answered.

use anyhow::Result;
use bulwark_meta::{RepoRole, TeamRole, Visibility};
use serde::{Deserialize, Serialize};

/// Times are milliseconds since the Unix epoch throughout.
#[derive(Debug, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub email: Option<String>,
    pub super_user: bool,
    pub enabled: bool,
    pub created: i64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Organization {
    pub name: String,
    /// The acting user's strongest team role there, if it is a member.
    #[serde(default)]
    pub role: Option<TeamRole>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Team {
    pub name: String,
    pub role: TeamRole,
    pub description: Option<String>,
    pub member_count: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    /// `user` or `robot`.
    pub kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Robot {
    /// `namespace+short`, the robot's username.
    pub name: String,
    pub description: Option<String>,
    pub created: i64,
}

/// A robot with its token, as created or regenerated (the only time the token is known).
#[derive(Debug, Serialize, Deserialize)]
pub struct RobotToken {
    #[serde(flatten)]
    pub robot: Robot,
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Repository {
    pub namespace: String,
    /// The name below the namespace.
    pub name: String,
    pub is_public: bool,
    pub created: i64,
}

#[derive(Debug, Serialize)]
pub struct Permission {
    /// A user, `namespace+robot` or a team.
    pub name: String,
    /// `user`, `robot` or `team`.
    pub kind: String,
    pub role: RepoRole,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AppToken {
    /// The token's public id.
    pub uuid: String,
    pub title: String,
    pub created: i64,
    pub last_accessed: Option<i64>,
    pub expiration: Option<i64>,
    pub revoked: Option<i64>,
}

/// An application token with its secret, as created (the only time the secret is known).
#[derive(Debug, Serialize, Deserialize)]
pub struct NewAppToken {
    #[serde(flatten)]
    pub token: AppToken,
    pub token_code: String,
}

/// A repository named `namespace/name` on the command line.
#[derive(Clone, Debug)]
pub struct RepoPath {
    pub namespace: String,
    /// The name below the namespace (may contain `/`).
    pub name: String,
}

impl RepoPath {
    pub fn parse(s: &str) -> Result<RepoPath, String> {
        match s.split_once('/') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Ok(RepoPath {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(format!(
                "expected NAMESPACE/REPOSITORY (library/{s} for a name without a namespace)"
            )),
        }
    }
}

impl std::fmt::Display for RepoPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Who a repository permission is for.
#[derive(Clone, Debug)]
pub enum Grantee {
    /// A user or a robot (`namespace+short`).
    User(String),
    Team(String),
}

/// The administration operations. Authorization is the backend's: locally the operator has
/// superuser rights, remotely the server decides for the caller.
pub trait Backend {
    /// The user the commands act as: the caller remotely, the local operator locally. It
    /// owns the organizations it creates and the application tokens of `token` commands.
    async fn acting_user(&self) -> Result<String>;

    async fn users(&self) -> Result<Vec<User>>;
    async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        password: &str,
        superuser: bool,
    ) -> Result<User>;
    async fn set_password(&self, name: &str, password: &str) -> Result<()>;
    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<User>;
    async fn delete_user(&self, name: &str) -> Result<()>;

    async fn organizations(&self) -> Result<Vec<Organization>>;
    /// Creates an organization owned by the acting user.
    async fn create_organization(&self, name: &str) -> Result<()>;
    async fn delete_organization(&self, name: &str) -> Result<()>;
    async fn teams(&self, org: &str) -> Result<Vec<Team>>;
    /// Creates a team or changes its role; says whether it was created.
    async fn set_team(&self, org: &str, team: &str, role: TeamRole) -> Result<(Team, bool)>;
    async fn delete_team(&self, org: &str, team: &str) -> Result<()>;
    async fn members(&self, org: &str, team: &str) -> Result<Vec<Member>>;
    async fn add_member(&self, org: &str, team: &str, member: &str) -> Result<()>;
    async fn remove_member(&self, org: &str, team: &str, member: &str) -> Result<()>;

    async fn robots(&self, namespace: &str) -> Result<Vec<Robot>>;
    async fn create_robot(&self, namespace: &str, short: &str) -> Result<RobotToken>;
    async fn regenerate_robot(&self, namespace: &str, short: &str) -> Result<RobotToken>;
    async fn delete_robot(&self, namespace: &str, short: &str) -> Result<()>;

    /// The namespace's repositories the acting user may pull.
    async fn repositories(&self, namespace: &str) -> Result<Vec<Repository>>;
    async fn create_repository(
        &self,
        repo: &RepoPath,
        visibility: Visibility,
    ) -> Result<Repository>;
    async fn delete_repository(&self, repo: &RepoPath) -> Result<()>;
    async fn set_visibility(&self, repo: &RepoPath, visibility: Visibility) -> Result<()>;
    async fn permissions(&self, repo: &RepoPath) -> Result<Vec<Permission>>;
    async fn grant(&self, repo: &RepoPath, grantee: &Grantee, role: RepoRole) -> Result<()>;
    async fn revoke(&self, repo: &RepoPath, grantee: &Grantee) -> Result<()>;

    /// `user`'s application tokens (remotely, only the caller's own).
    async fn app_tokens(&self, user: &str) -> Result<Vec<AppToken>>;
    /// `expiration`: milliseconds since the Unix epoch.
    async fn create_app_token(
        &self,
        user: &str,
        title: &str,
        expiration: Option<i64>,
    ) -> Result<NewAppToken>;
    async fn revoke_app_token(&self, user: &str, id: &str) -> Result<()>;
}
