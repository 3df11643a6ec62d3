//! Accounts, organizations, teams, repository grants, credentials and signing keys: the
//! facts the authorization decision (in `bulwark-auth`) is made from. This module stores
//! them; it decides nothing.
//!
//! Users, organizations and robots are all *accounts* (one id space, one unique name):
//! users and organizations are namespaces; a robot is named `namespace+name` (a `+` cannot
//! appear in a namespace name, so robot names never collide with namespaces).

use crate::MetaError;

/// What kind of account a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    User,
    Organization,
    Robot,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "user",
            AccountKind::Organization => "organization",
            AccountKind::Robot => "robot",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub kind: AccountKind,
    /// Robots: the namespace account that owns them.
    pub owner_id: Option<i64>,
    pub email: Option<String>,
    pub superuser: bool,
    pub enabled: bool,
    pub description: Option<String>,
    pub created_at: i64,
}

/// A user's stored password (an Argon2id PHC string) and the credential generation that
/// refresh tokens issued on it are bound to (bumped on every password change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordRecord {
    pub account: Account,
    pub password_hash: Option<String>,
    pub credential_generation: i64,
}

/// A robot's token, stored hashed. `generation` changes whenever the token is regenerated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RobotRecord {
    pub account: Account,
    pub token_hash: Vec<u8>,
    pub generation: i64,
}

/// Team roles within an organization, weakest first (`Ord` follows strength).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TeamRole {
    Member,
    Creator,
    Admin,
}

/// Permissions on a repository, weakest first (`Ord` follows strength).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RepoRole {
    Read,
    Write,
    Admin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Public,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    pub id: i64,
    pub organization_id: i64,
    pub name: String,
    pub role: TeamRole,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryInfo {
    pub id: i64,
    pub name: String,
    pub visibility: Visibility,
    pub created_at: i64,
}

/// Who a repository grant is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grantee {
    /// A user or robot account.
    Account(i64),
    Team(i64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Name of the account (`user`, `ns+robot`) or team.
    pub grantee_name: String,
    pub grantee: Grantee,
    /// For accounts: user or robot.
    pub grantee_kind: Option<AccountKind>,
    pub role: RepoRole,
}

/// Everything the authorization decision needs to know about one account and one
/// repository, read in one consistent query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryAccessFacts {
    /// The repository, if it exists.
    pub repository: Option<RepositoryInfo>,
    /// The namespace account (first path segment of the repository name), if it exists.
    pub namespace: Option<Account>,
    /// Strongest grant on the repository to the account itself or to a team it belongs to.
    pub grant: Option<RepoRole>,
    /// Strongest role of the account's teams in the namespace, if it is an organization.
    pub team_role: Option<TeamRole>,
}

/// An application token or an API token, as stored (the secret only as its hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The public part of the token string, used to find the row.
    pub id: String,
    pub account_id: i64,
    pub name: String,
    pub secret_hash: Vec<u8>,
    /// API tokens: space-separated scopes. Application tokens: empty.
    pub scopes: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Used as a password by registry clients (Quay's "encrypted password").
    App,
    /// Bearer tokens for the management API, limited to scopes.
    Api,
}

/// A key that signs registry tokens. Retired keys still verify until they are deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: String,
    /// PKCS#8 DER of the private key.
    pub private_der: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// A new account. Names are validated by the caller (the `auth` layer).
#[derive(Clone, Debug)]
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub kind: AccountKind,
    pub owner_id: Option<i64>,
    pub email: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub token_hash: Option<&'a [u8]>,
    pub superuser: bool,
    pub description: Option<&'a str>,
}

/// Storage of identities and access grants. Every method is one transaction.
///
/// Errors: creating something whose name exists returns `MetaError::Conflict`; changing
/// something that does not exist returns `Ok(false)` / `Ok(None)` where the signature allows,
/// `MetaError::NotFound` otherwise.
#[async_trait::async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    // --- accounts -------------------------------------------------------------------------
    /// Creates an account (user, organization or robot). Conflict if the name is taken.
    async fn create_account(&self, account: NewAccount<'_>) -> Result<Account, MetaError>;
    async fn account(&self, name: &str) -> Result<Option<Account>, MetaError>;
    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, MetaError>;
    /// Accounts of one kind in name order (robots: those owned by `owner_id` when given).
    async fn accounts(
        &self,
        kind: AccountKind,
        owner_id: Option<i64>,
    ) -> Result<Vec<Account>, MetaError>;
    /// Deletes an account and everything it owns: its robots, teams, memberships, grants,
    /// tokens; for namespaces also their repositories' metadata. Returns whether it existed.
    async fn delete_account(&self, id: i64) -> Result<bool, MetaError>;
    async fn set_superuser(&self, id: i64, superuser: bool) -> Result<bool, MetaError>;
    async fn set_enabled(&self, id: i64, enabled: bool) -> Result<bool, MetaError>;
    /// Whether any superuser exists (first-start bootstrap).
    async fn any_superuser(&self) -> Result<bool, MetaError>;

    // --- credentials ----------------------------------------------------------------------
    async fn password_record(&self, user_name: &str) -> Result<Option<PasswordRecord>, MetaError>;
    /// Replaces a user's password hash and bumps its credential generation.
    async fn set_password(&self, id: i64, password_hash: &str) -> Result<bool, MetaError>;
    async fn robot_record(&self, robot_name: &str) -> Result<Option<RobotRecord>, MetaError>;
    /// Replaces a robot's token hash and bumps its generation.
    async fn set_robot_token(&self, id: i64, token_hash: &[u8]) -> Result<bool, MetaError>;

    async fn create_token(&self, kind: TokenKind, token: &TokenRecord) -> Result<(), MetaError>;
    async fn token(&self, kind: TokenKind, id: &str) -> Result<Option<TokenRecord>, MetaError>;
    /// A user's tokens of one kind, newest first.
    async fn tokens(&self, kind: TokenKind, account_id: i64)
    -> Result<Vec<TokenRecord>, MetaError>;
    /// Marks a token revoked (it stays listed). Returns whether it was live.
    async fn revoke_token(&self, kind: TokenKind, id: &str, at: i64) -> Result<bool, MetaError>;
    async fn touch_token(&self, kind: TokenKind, id: &str, at: i64) -> Result<(), MetaError>;

    // --- organizations and teams ----------------------------------------------------------
    async fn create_team(
        &self,
        organization_id: i64,
        name: &str,
        role: TeamRole,
        description: Option<&str>,
    ) -> Result<Team, MetaError>;
    async fn team(&self, organization_id: i64, name: &str) -> Result<Option<Team>, MetaError>;
    async fn teams(&self, organization_id: i64) -> Result<Vec<Team>, MetaError>;
    async fn set_team_role(&self, team_id: i64, role: TeamRole) -> Result<bool, MetaError>;
    async fn delete_team(&self, team_id: i64) -> Result<bool, MetaError>;
    /// Adds a user or robot to a team (idempotent: false if already a member).
    async fn add_team_member(&self, team_id: i64, account_id: i64) -> Result<bool, MetaError>;
    async fn remove_team_member(&self, team_id: i64, account_id: i64) -> Result<bool, MetaError>;
    async fn team_members(&self, team_id: i64) -> Result<Vec<Account>, MetaError>;
    /// Organizations `account_id` belongs to through a team, with its strongest role in each.
    async fn memberships(&self, account_id: i64) -> Result<Vec<(Account, TeamRole)>, MetaError>;

    // --- repositories and grants ----------------------------------------------------------
    /// Creates a repository row (no content). Conflict if it exists.
    async fn create_repository(
        &self,
        name: &str,
        visibility: Visibility,
    ) -> Result<RepositoryInfo, MetaError>;
    async fn repository_info(&self, name: &str) -> Result<Option<RepositoryInfo>, MetaError>;
    /// Repositories whose name starts with `namespace/`, in name order.
    async fn namespace_repositories(
        &self,
        namespace: &str,
    ) -> Result<Vec<RepositoryInfo>, MetaError>;
    async fn set_visibility(&self, name: &str, visibility: Visibility) -> Result<bool, MetaError>;
    /// Deletes a repository's metadata (manifests, tags, blob links, grants). Blob bytes are
    /// left for garbage collection. Returns whether it existed.
    async fn delete_repository(&self, name: &str) -> Result<bool, MetaError>;
    /// Sets (insert or replace) the grant of `grantee` on a repository.
    async fn set_grant(
        &self,
        repository_id: i64,
        grantee: &Grantee,
        role: RepoRole,
    ) -> Result<(), MetaError>;
    async fn remove_grant(&self, repository_id: i64, grantee: &Grantee) -> Result<bool, MetaError>;
    async fn grants(&self, repository_id: i64) -> Result<Vec<Grant>, MetaError>;

    /// The facts for deciding what `account_id` (None: anonymous) may do on `repository`,
    /// whose namespace is `namespace`. One round trip on the hot path of basic-auth pulls.
    async fn access_facts(
        &self,
        account_id: Option<i64>,
        namespace: &str,
        repository: &str,
    ) -> Result<RepositoryAccessFacts, MetaError>;

    /// Repository names after `last` (lexical order), up to `limit`, that `account_id` may
    /// pull: public ones (when `include_public`), those in namespaces it owns or administers
    /// as a team admin, and those granted to it or its teams. `superuser` sees all.
    async fn visible_repositories(
        &self,
        account_id: Option<i64>,
        superuser: bool,
        include_public: bool,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, MetaError>;

    // --- signing keys ---------------------------------------------------------------------
    /// All signing keys, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, MetaError>;
    /// Adds a key unless one with the same kid exists (several nodes may start at once).
    async fn add_signing_key(&self, key: &SigningKey) -> Result<(), MetaError>;
    async fn retire_signing_key(&self, kid: &str, at: i64) -> Result<bool, MetaError>;
    async fn delete_signing_key(&self, kid: &str) -> Result<bool, MetaError>;
}
