//! Scopes: the Docker token protocol's `repository:name:actions` requests and the scopes an
//! API token is limited to.

/// One resource scope of the Docker token protocol, e.g. `repository:ns/app:pull,push` or
/// `registry:catalog:*`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scope {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// `pull`, `push`, `delete`, or `*` (everything the caller may do).
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses one scope string. Repository names may contain `:` only in a registry host
    /// prefix, which Bulwark never receives, so the name is what lies between the first
    /// and the last `:`.
    pub fn parse(s: &str) -> Result<Scope, crate::AuthError> {
        todo!("{s}")
    }
}

/// What an API token may be used for (Quay's OAuth scopes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiScope {
    /// `repo:read`: pull and view repositories.
    RepoRead,
    /// `repo:write`: push, tag, delete content.
    RepoWrite,
    /// `repo:admin`: repository settings and permissions.
    RepoAdmin,
    /// `repo:create`: create repositories.
    RepoCreate,
    /// `user:admin`: the user's own account, tokens and robots.
    UserAdmin,
    /// `org:admin`: administer organizations (teams, members, robots).
    OrgAdmin,
    /// `super:user`: superuser administration.
    SuperUser,
}

/// A set of API scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiScopes(pub std::collections::BTreeSet<ApiScope>);
