//! The authorization decision as a pure function of stored facts.
//!
//! Rules, in order:
//! - A superuser may do everything.
//! - Repositories in a disabled namespace are closed to everyone else.
//! - Anonymous callers may only pull existing public repositories, and only when the
//!   deployment allows anonymous access.
//! - A user owns its own namespace (the user account of the same name): everything there.
//!   Robots never own anything; only their grants and team roles count.
//! - In an organization, a team role `admin` gives everything in the organization,
//!   `creator` gives creating repositories (and seeing the organization), `member` gives
//!   seeing it.
//! - Repository grants: `read` → pull; `write` → pull, push, delete; `admin` → also admin.
//! - Public repositories may be pulled by every authenticated caller.
//! - Pushing to a repository that does not exist yet is allowed to whoever may create
//!   repositories in its namespace (a namespace that exists, except for superusers); so is
//!   pulling it, which push clients do to check for existing blobs.
//! - An API token never exceeds its scopes ([`ApiScopes::permits`]).
//!
//! Disabled callers are refused when they authenticate, which reads their account each time
//! (registry bearer tokens stay valid until their short expiry).

use bulwark_meta::{AccountKind, RepoRole, RepositoryAccessFacts, TeamRole};

use crate::scope::ApiScopes;
use crate::{Credential, Identity, Principal};

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

pub use bulwark_oci::namespace_of;

/// Whether `identity` may perform `action` on a repository described by `facts`.
pub fn decide_repository(
    identity: &Identity,
    facts: &RepositoryAccessFacts,
    action: Action,
    policy: Policy,
) -> bool {
    if !matches!(
        action,
        Action::Pull | Action::Push | Action::Delete | Action::Admin
    ) {
        return false;
    }
    let allowed = identity.is_superuser() || {
        let namespace_open = facts.namespace.as_ref().is_none_or(|ns| ns.enabled);
        namespace_open && repository_roles_allow(identity, facts, action, policy)
    };
    allowed
        && token_scopes(identity).is_none_or(|scopes| {
            // `permits` looks at the kind of resource only, not at its name.
            scopes.permits(Resource::Repository(""), action)
                // Pushing to a missing repository creates it.
                && (facts.repository.is_some()
                    || action != Action::Push
                    || scopes.permits(Resource::Namespace(""), Action::CreateRepository))
        })
}

fn repository_roles_allow(
    identity: &Identity,
    facts: &RepositoryAccessFacts,
    action: Action,
    policy: Policy,
) -> bool {
    let public = facts
        .repository
        .as_ref()
        .is_some_and(|r| r.visibility == bulwark_meta::Visibility::Public);
    if matches!(identity.principal, Principal::Anonymous) {
        return action == Action::Pull && public && policy.anonymous_access;
    }
    if administers_namespace(identity, facts) {
        return true;
    }
    let granted = match facts.grant {
        Some(RepoRole::Admin) => true,
        Some(RepoRole::Write) => action != Action::Admin,
        Some(RepoRole::Read) => action == Action::Pull,
        None => false,
    };
    granted
        || (action == Action::Pull && public)
        || (facts.repository.is_none()
            && matches!(action, Action::Push | Action::Pull)
            && may_create_in_namespace(identity, facts))
}

/// Whether `identity` may perform `action` on the namespace described by `facts` (its
/// `repository` is ignored).
/// Anonymous callers see no namespace, whatever the policy.
pub fn decide_namespace(
    identity: &Identity,
    facts: &RepositoryAccessFacts,
    action: Action,
) -> bool {
    if !matches!(
        action,
        Action::Admin | Action::CreateRepository | Action::View
    ) {
        return false;
    }
    let allowed = identity.is_superuser() || namespace_roles_allow(identity, facts, action);
    allowed
        && token_scopes(identity)
            .is_none_or(|scopes| scopes.permits(Resource::Namespace(""), action))
}

fn namespace_roles_allow(
    identity: &Identity,
    facts: &RepositoryAccessFacts,
    action: Action,
) -> bool {
    match action {
        Action::Admin => administers_namespace(identity, facts),
        Action::CreateRepository => may_create_in_namespace(identity, facts),
        Action::View => {
            administers_namespace(identity, facts)
                || (organization(facts).is_some()
                    && facts.team_role.is_some()
                    && authenticated(identity))
        }
        _ => false,
    }
}

fn authenticated(identity: &Identity) -> bool {
    !matches!(identity.principal, Principal::Anonymous)
}

/// The namespace, if it is an enabled organization.
fn organization(facts: &RepositoryAccessFacts) -> Option<&bulwark_meta::Account> {
    facts
        .namespace
        .as_ref()
        .filter(|ns| ns.enabled && ns.kind == AccountKind::Organization)
}

/// Owner of the namespace (a user in its own namespace) or admin of the organization.
fn administers_namespace(identity: &Identity, facts: &RepositoryAccessFacts) -> bool {
    let Some(ns) = facts.namespace.as_ref().filter(|ns| ns.enabled) else {
        return false;
    };
    match (&identity.principal, ns.kind) {
        (Principal::User { id, .. }, AccountKind::User) => *id == ns.id,
        (Principal::User { .. } | Principal::Robot { .. }, AccountKind::Organization) => {
            facts.team_role == Some(TeamRole::Admin)
        }
        _ => false,
    }
}

fn may_create_in_namespace(identity: &Identity, facts: &RepositoryAccessFacts) -> bool {
    administers_namespace(identity, facts)
        || (organization(facts).is_some()
            && authenticated(identity)
            && facts.team_role >= Some(TeamRole::Creator))
}

fn token_scopes(identity: &Identity) -> Option<&ApiScopes> {
    match &identity.credential {
        Credential::ApiToken { scopes, .. } => Some(scopes),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use bulwark_meta::{Account, RepositoryInfo, Visibility};

    use super::*;
    use crate::scope::ApiScope;

    const ALL: [Action; 8] = [
        Action::Pull,
        Action::Push,
        Action::Delete,
        Action::Admin,
        Action::CreateRepository,
        Action::View,
        Action::Manage,
        Action::Superuser,
    ];
    const ALICE: i64 = 1;
    const BOB: i64 = 2;
    const ROOT: i64 = 3;
    const ACME: i64 = 20;
    const ROBOT: i64 = 30;

    fn account(id: i64, name: &str, kind: AccountKind, enabled: bool) -> Account {
        Account {
            id,
            name: name.into(),
            kind,
            owner_id: None,
            email: None,
            superuser: false,
            enabled,
            description: None,
            created_at: 0,
        }
    }

    fn user(id: i64, name: &str, superuser: bool) -> Identity {
        Identity {
            principal: Principal::User {
                id,
                name: name.into(),
                superuser,
            },
            credential: Credential::Password,
        }
    }

    fn robot(id: i64, owner_id: i64, name: &str) -> Identity {
        Identity {
            principal: Principal::Robot {
                id,
                name: name.into(),
                owner_id,
            },
            credential: Credential::RobotToken,
        }
    }

    fn with_scopes(identity: Identity, scopes: &[ApiScope]) -> Identity {
        Identity {
            credential: Credential::ApiToken {
                id: "tokenid".into(),
                scopes: ApiScopes(scopes.iter().copied().collect()),
            },
            ..identity
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Ns {
        Missing,
        Alice,
        Acme,
        AcmeDisabled,
        AliceDisabled,
    }

    fn facts(
        ns: Ns,
        repo: Option<Visibility>,
        grant: Option<RepoRole>,
        team_role: Option<TeamRole>,
    ) -> RepositoryAccessFacts {
        let (namespace, ns_name) = match ns {
            Ns::Missing => (None, "ghost"),
            Ns::Alice => (
                Some(account(ALICE, "alice", AccountKind::User, true)),
                "alice",
            ),
            Ns::AliceDisabled => (
                Some(account(ALICE, "alice", AccountKind::User, false)),
                "alice",
            ),
            Ns::Acme => (
                Some(account(ACME, "acme", AccountKind::Organization, true)),
                "acme",
            ),
            Ns::AcmeDisabled => (
                Some(account(ACME, "acme", AccountKind::Organization, false)),
                "acme",
            ),
        };
        RepositoryAccessFacts {
            repository: repo.map(|visibility| RepositoryInfo {
                id: 7,
                name: format!("{ns_name}/app"),
                visibility,
                created_at: 0,
            }),
            namespace,
            grant,
            team_role,
        }
    }

    fn allowed_repository(
        identity: &Identity,
        facts: &RepositoryAccessFacts,
        anonymous: bool,
    ) -> Vec<Action> {
        let policy = Policy {
            anonymous_access: anonymous,
        };
        ALL.into_iter()
            .filter(|&a| decide_repository(identity, facts, a, policy))
            .collect()
    }

    fn allowed_namespace(identity: &Identity, facts: &RepositoryAccessFacts) -> Vec<Action> {
        ALL.into_iter()
            .filter(|&a| decide_namespace(identity, facts, a))
            .collect()
    }

    #[test]
    fn namespace_of_a_repository() {
        assert_eq!(namespace_of("alice/app"), "alice");
        assert_eq!(namespace_of("alice/a/b"), "alice");
        assert_eq!(namespace_of("busybox"), "library");
        assert_eq!(namespace_of("library/busybox"), "library");
    }

    #[test]
    fn repository_table() {
        use Action::{Admin, Delete, Pull, Push};
        use RepoRole as G;
        use TeamRole as T;
        use Visibility::{Private, Public};
        let anon = Identity::anonymous();
        let alice = user(ALICE, "alice", false);
        let bob = user(BOB, "bob", false);
        let root = user(ROOT, "root", true);
        let bot = robot(ROBOT, ACME, "acme+bot");
        let alice_bot = robot(ROBOT, ALICE, "alice+bot");
        let everything = &[Pull, Push, Delete, Admin][..];
        let write = &[Pull, Push, Delete][..];
        let pull = &[Pull][..];
        let none = &[][..];
        #[rustfmt::skip]
        let table: Vec<(&str, &Identity, RepositoryAccessFacts, bool, &[Action])> = vec![
            // superuser: everything, anywhere, even where nothing exists yet
            ("root private", &root, facts(Ns::Alice, Some(Private), None, None), false, everything),
            ("root missing ns", &root, facts(Ns::Missing, None, None, None), false, everything),
            ("root disabled ns", &root, facts(Ns::AcmeDisabled, Some(Private), None, None), false, everything),
            // anonymous
            ("anon public, allowed", &anon, facts(Ns::Alice, Some(Public), None, None), true, pull),
            ("anon public, not allowed", &anon, facts(Ns::Alice, Some(Public), None, None), false, none),
            ("anon private", &anon, facts(Ns::Alice, Some(Private), None, None), true, none),
            ("anon missing", &anon, facts(Ns::Alice, None, None, None), true, none),
            ("anon public disabled ns", &anon, facts(Ns::AliceDisabled, Some(Public), None, None), true, none),
            // a user's own namespace
            ("owner private", &alice, facts(Ns::Alice, Some(Private), None, None), false, everything),
            ("owner creates", &alice, facts(Ns::Alice, None, None, None), false, everything),
            ("owner disabled", &alice, facts(Ns::AliceDisabled, Some(Private), None, None), false, none),
            // someone else's namespace
            ("other private", &bob, facts(Ns::Alice, Some(Private), None, None), false, none),
            ("other public", &bob, facts(Ns::Alice, Some(Public), None, None), false, pull),
            ("other public, anonymous off", &bob, facts(Ns::Alice, Some(Public), None, None), false, pull),
            ("other cannot create", &bob, facts(Ns::Alice, None, None, None), false, none),
            ("nobody creates in a missing ns", &alice, facts(Ns::Missing, None, None, None), false, none),
            // grants
            ("grant read", &bob, facts(Ns::Alice, Some(Private), Some(G::Read), None), false, pull),
            ("grant write", &bob, facts(Ns::Alice, Some(Private), Some(G::Write), None), false, write),
            ("grant admin", &bob, facts(Ns::Alice, Some(Private), Some(G::Admin), None), false, everything),
            ("grant write public", &bob, facts(Ns::Alice, Some(Public), Some(G::Write), None), false, write),
            ("grant admin disabled ns", &bob, facts(Ns::AliceDisabled, Some(Private), Some(G::Admin), None), false, none),
            // organization teams
            ("team admin", &bob, facts(Ns::Acme, Some(Private), None, Some(T::Admin)), false, everything),
            ("team admin creates", &bob, facts(Ns::Acme, None, None, Some(T::Admin)), false, everything),
            ("team creator, existing", &bob, facts(Ns::Acme, Some(Private), None, Some(T::Creator)), false, none),
            ("team creator creates", &bob, facts(Ns::Acme, None, None, Some(T::Creator)), false, &[Pull, Push]),
            ("team creator + read", &bob, facts(Ns::Acme, Some(Private), Some(G::Read), Some(T::Creator)), false, pull),
            ("team member", &bob, facts(Ns::Acme, Some(Private), None, Some(T::Member)), false, none),
            ("team member public", &bob, facts(Ns::Acme, Some(Public), None, Some(T::Member)), false, pull),
            ("team member cannot create", &bob, facts(Ns::Acme, None, None, Some(T::Member)), false, none),
            ("team admin disabled org", &bob, facts(Ns::AcmeDisabled, Some(Private), None, Some(T::Admin)), false, none),
            // robots: grants and teams only
            ("robot grant write", &bot, facts(Ns::Acme, Some(Private), Some(G::Write), None), false, write),
            ("robot team admin", &bot, facts(Ns::Acme, Some(Private), None, Some(T::Admin)), false, everything),
            ("robot team creator creates", &bot, facts(Ns::Acme, None, None, Some(T::Creator)), false, &[Pull, Push]),
            ("robot nothing", &bot, facts(Ns::Acme, Some(Private), None, None), false, none),
            ("robot public", &bot, facts(Ns::Acme, Some(Public), None, None), false, pull),
            ("robot in owner's user ns", &alice_bot, facts(Ns::Alice, Some(Private), None, None), false, none),
            ("robot cannot create in owner's ns", &alice_bot, facts(Ns::Alice, None, None, None), false, none),
            ("robot grant in owner's ns", &alice_bot, facts(Ns::Alice, Some(Private), Some(G::Read), None), false, pull),
        ];
        for (what, identity, facts, anonymous, expected) in table {
            assert_eq!(
                allowed_repository(identity, &facts, anonymous),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn api_tokens_never_exceed_their_scopes() {
        use Action::{Admin, Delete, Pull, Push};
        use ApiScope::*;
        use Visibility::Private;
        let alice = user(ALICE, "alice", false);
        let root = user(ROOT, "root", true);
        let own = facts(Ns::Alice, Some(Private), None, None);
        let missing = facts(Ns::Alice, None, None, None);
        let grant_read = facts(Ns::Acme, Some(Private), Some(RepoRole::Read), None);
        #[rustfmt::skip]
        let table: Vec<(&Identity, &[ApiScope], &RepositoryAccessFacts, &[Action])> = vec![
            (&alice, &[], &own, &[]),
            (&alice, &[RepoRead], &own, &[Pull]),
            (&alice, &[RepoWrite], &own, &[Pull, Push, Delete]),
            (&alice, &[RepoAdmin], &own, &[Pull, Push, Delete, Admin]),
            (&alice, &[RepoCreate, UserAdmin, OrgAdmin, SuperUser], &own, &[]),
            // pushing to a missing repository creates it: repo:create too
            (&alice, &[RepoWrite], &missing, &[Pull, Delete]),
            (&alice, &[RepoWrite, RepoCreate], &missing, &[Pull, Push, Delete]),
            (&alice, &[RepoCreate], &missing, &[]),
            // scopes never add what the account lacks
            (&alice, &[RepoAdmin], &grant_read, &[Pull]),
            // superusers' tokens are limited too
            (&root, &[RepoRead], &own, &[Pull]),
            (&root, &[SuperUser], &own, &[]),
        ];
        for (identity, scopes, facts, expected) in table {
            let identity = with_scopes(identity.clone(), scopes);
            assert_eq!(
                allowed_repository(&identity, facts, false),
                expected,
                "{scopes:?} {facts:?}"
            );
        }
    }

    #[test]
    fn namespace_table() {
        use Action::{Admin, CreateRepository, View};
        use TeamRole as T;
        let anon = Identity::anonymous();
        let alice = user(ALICE, "alice", false);
        let bob = user(BOB, "bob", false);
        let root = user(ROOT, "root", true);
        let bot = robot(ROBOT, ACME, "acme+bot");
        let alice_bot = robot(ROBOT, ALICE, "alice+bot");
        let everything = &[Admin, CreateRepository, View][..];
        let none = &[][..];
        #[rustfmt::skip]
        let table: Vec<(&str, &Identity, RepositoryAccessFacts, &[Action])> = vec![
            ("root", &root, facts(Ns::Acme, None, None, None), everything),
            ("root creates the namespace", &root, facts(Ns::Missing, None, None, None), everything),
            ("root disabled", &root, facts(Ns::AcmeDisabled, None, None, None), everything),
            ("anon", &anon, facts(Ns::Acme, None, None, None), none),
            ("anon own", &anon, facts(Ns::Alice, None, None, None), none),
            ("owner", &alice, facts(Ns::Alice, None, None, None), everything),
            ("owner disabled", &alice, facts(Ns::AliceDisabled, None, None, None), none),
            ("other user", &bob, facts(Ns::Alice, None, None, None), none),
            ("missing", &alice, facts(Ns::Missing, None, None, None), none),
            ("org admin", &bob, facts(Ns::Acme, None, None, Some(T::Admin)), everything),
            ("org creator", &bob, facts(Ns::Acme, None, None, Some(T::Creator)), &[CreateRepository, View]),
            ("org member", &bob, facts(Ns::Acme, None, None, Some(T::Member)), &[View]),
            ("org outsider", &bob, facts(Ns::Acme, None, None, None), none),
            ("org disabled", &bob, facts(Ns::AcmeDisabled, None, None, Some(T::Admin)), none),
            ("robot org admin", &bot, facts(Ns::Acme, None, None, Some(T::Admin)), everything),
            ("robot org creator", &bot, facts(Ns::Acme, None, None, Some(T::Creator)), &[CreateRepository, View]),
            ("robot org member", &bot, facts(Ns::Acme, None, None, Some(T::Member)), &[View]),
            ("robot outsider", &bot, facts(Ns::Acme, None, None, None), none),
            ("robot in owner's user ns", &alice_bot, facts(Ns::Alice, None, None, None), none),
        ];
        for (what, identity, facts, expected) in table {
            assert_eq!(allowed_namespace(identity, &facts), expected, "{what}");
        }
        let alice_read = with_scopes(alice.clone(), &[ApiScope::RepoRead]);
        let own = facts(Ns::Alice, None, None, None);
        assert_eq!(allowed_namespace(&alice_read, &own), &[View]);
        let alice_create = with_scopes(alice.clone(), &[ApiScope::RepoCreate]);
        assert_eq!(allowed_namespace(&alice_create, &own), &[CreateRepository]);
        let alice_org = with_scopes(alice, &[ApiScope::OrgAdmin]);
        assert_eq!(allowed_namespace(&alice_org, &own), &[Admin, View]);
    }

    /// Every combination of facts: invariants that must hold whatever the table says.
    #[test]
    fn invariants_over_all_combinations() {
        let identities = [
            Identity::anonymous(),
            user(ALICE, "alice", false),
            user(BOB, "bob", false),
            user(ROOT, "root", true),
            robot(ROBOT, ACME, "acme+bot"),
            robot(ROBOT, ALICE, "alice+bot"),
        ];
        let namespaces = [
            Ns::Missing,
            Ns::Alice,
            Ns::AliceDisabled,
            Ns::Acme,
            Ns::AcmeDisabled,
        ];
        let repos = [None, Some(Visibility::Private), Some(Visibility::Public)];
        let grants = [
            None,
            Some(RepoRole::Read),
            Some(RepoRole::Write),
            Some(RepoRole::Admin),
        ];
        let teams = [
            None,
            Some(TeamRole::Member),
            Some(TeamRole::Creator),
            Some(TeamRole::Admin),
        ];
        for identity in &identities {
            for ns in namespaces {
                for repo in repos {
                    for (gi, grant) in grants.iter().enumerate() {
                        for (ti, team) in teams.iter().enumerate() {
                            for anonymous in [false, true] {
                                let f = facts(ns, repo, *grant, *team);
                                let got = allowed_repository(identity, &f, anonymous);
                                let what = format!("{identity:?} {f:?} {anonymous}");
                                // Only repository actions are ever allowed on a repository.
                                assert!(
                                    got.iter().all(|a| matches!(
                                        a,
                                        Action::Pull
                                            | Action::Push
                                            | Action::Delete
                                            | Action::Admin
                                    )),
                                    "{what}"
                                );
                                if identity.is_superuser() {
                                    assert_eq!(got.len(), 4, "{what}");
                                    continue;
                                }
                                if matches!(ns, Ns::AliceDisabled | Ns::AcmeDisabled) {
                                    assert!(got.is_empty(), "{what}");
                                }
                                if matches!(identity.principal, Principal::Anonymous) {
                                    assert!(got.iter().all(|&a| a == Action::Pull), "{what}");
                                    assert!(anonymous || got.is_empty(), "{what}");
                                }
                                if matches!(identity.principal, Principal::Robot { .. })
                                    && grant.is_none()
                                    && team.is_none()
                                {
                                    assert!(
                                        got.is_empty()
                                            || got == [Action::Pull]
                                                && repo == Some(Visibility::Public),
                                        "{what}"
                                    );
                                }
                                // Anything allowed with a weaker grant or team role stays allowed
                                // with a stronger one.
                                for stronger in &grants[gi..] {
                                    let more = allowed_repository(
                                        identity,
                                        &facts(ns, repo, *stronger, *team),
                                        anonymous,
                                    );
                                    assert!(
                                        got.iter().all(|a| more.contains(a)),
                                        "{what} vs {stronger:?}"
                                    );
                                }
                                for stronger in &teams[ti..] {
                                    let more = allowed_repository(
                                        identity,
                                        &facts(ns, repo, *grant, *stronger),
                                        anonymous,
                                    );
                                    assert!(
                                        got.iter().all(|a| more.contains(a)),
                                        "{what} vs {stronger:?}"
                                    );
                                }
                                // A token's scopes only ever remove.
                                for scope in ApiScope::ALL {
                                    let limited = with_scopes(identity.clone(), &[scope]);
                                    let less = allowed_repository(&limited, &f, anonymous);
                                    assert!(less.iter().all(|a| got.contains(a)), "{what} {scope}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
