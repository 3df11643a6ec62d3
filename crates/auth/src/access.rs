//! The authorization decision as a pure function of stored facts.

use bulwark_meta::RepositoryAccessFacts;

use crate::Identity;

/// What an action is performed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A repository by full name (`namespace/rest`).
    Repository(&'a str),
    /// A namespace (user or organization) by name.
    Namespace(&'a str),
    /// An account's own settings (its app tokens, API tokens, password), by account id.
    Account(i64),
    /// The registry as a whole (user administration, jobs, superuser views).
    Registry,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Repository: read manifests and blobs.
    Pull,
    /// Repository: upload blobs, put manifests, move tags.
    Push,
    /// Repository: delete manifests, tags and blobs.
    Delete,
    /// Repository: change visibility, permissions, delete the repository.
    /// Namespace: administer the organization (teams, members, robots, settings).
    Admin,
    /// Namespace: create repositories in it.
    CreateRepository,
    /// Namespace: see it, its teams and members (any member of the organization).
    View,
    /// Account: manage its own tokens and password.
    Manage,
    /// Registry: superuser administration.
    Superuser,
}

/// What the deployment allows regardless of grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Anonymous callers may pull public repositories.
    pub anonymous_access: bool,
}

/// Whether `identity` may perform `action` on a repository described by `facts`.
pub fn decide_repository(
    identity: &Identity,
    facts: &RepositoryAccessFacts,
    action: Action,
    policy: Policy,
) -> bool {
    todo!("{identity:?} {facts:?} {action:?} {policy:?}")
}
