//! Scopes: the Docker token protocol's `repository:name:actions` requests and the scopes an
//! API token is limited to.

use std::collections::BTreeSet;
use std::fmt;

use crate::AuthError;
use crate::access::{Action, Resource};

/// Longest scope string accepted (a repository name is at most a few hundred bytes).
const MAX_SCOPE_LEN: usize = 1024;

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
    ///
    /// Grammar (Docker token scope documentation): `type[(class)]:name:action[,action…]`;
    /// types and actions are lowercase alphanumerics (an action may be `*`). A resource class
    /// stays part of the type, so `repository(plugin)` is a type of its own (granted
    /// nothing). Names of `repository` scopes must be valid repository names.
    pub fn parse(s: &str) -> Result<Scope, AuthError> {
        let invalid = |why: &str| {
            let shown: String = s.chars().take(100).collect();
            AuthError::Invalid(format!("invalid scope {shown:?}: {why}"))
        };
        if s.len() > MAX_SCOPE_LEN {
            return Err(invalid("too long"));
        }
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected type:name:actions"))?;
        let (name, actions) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected type:name:actions"))?;
        if !valid_type(kind) {
            return Err(invalid("bad resource type"));
        }
        if name.is_empty() {
            return Err(invalid("empty resource name"));
        }
        if kind == "repository" {
            bulwark_oci::RepoName::parse(name, MAX_SCOPE_LEN)
                .map_err(|e| invalid(&e.to_string()))?;
        } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("bad resource name"));
        }
        let actions = actions
            .split(',')
            .map(|a| {
                let ok = a == "*"
                    || (!a.is_empty()
                        && a.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
                ok.then(|| a.to_owned())
                    .ok_or_else(|| invalid("bad action"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Scope {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions,
        })
    }

    /// Parses the `scope` parameters of a token request: each may hold several scopes
    /// separated by spaces, and the parameter may repeat. Scopes on the same resource are
    /// merged (their actions united, in first-seen order), so each resource appears once.
    pub fn parse_list<S: AsRef<str>>(params: &[S]) -> Result<Vec<Scope>, AuthError> {
        let mut scopes: Vec<Scope> = Vec::new();
        for one in params
            .iter()
            .flat_map(|p| p.as_ref().split_ascii_whitespace())
        {
            let scope = Scope::parse(one)?;
            match scopes
                .iter_mut()
                .find(|s| s.kind == scope.kind && s.name == scope.name)
            {
                Some(existing) => {
                    for action in scope.actions {
                        if !existing.actions.contains(&action) {
                            existing.actions.push(action);
                        }
                    }
                }
                None => scopes.push(scope),
            }
        }
        Ok(scopes)
    }
}

fn valid_type(kind: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match kind.split_once('(') {
        None => word(kind),
        Some((base, class)) => word(base) && class.strip_suffix(')').is_some_and(word),
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.name, self.actions.join(","))
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

impl ApiScope {
    pub const ALL: [ApiScope; 7] = [
        ApiScope::RepoRead,
        ApiScope::RepoWrite,
        ApiScope::RepoAdmin,
        ApiScope::RepoCreate,
        ApiScope::UserAdmin,
        ApiScope::OrgAdmin,
        ApiScope::SuperUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::RepoRead => "repo:read",
            ApiScope::RepoWrite => "repo:write",
            ApiScope::RepoAdmin => "repo:admin",
            ApiScope::RepoCreate => "repo:create",
            ApiScope::UserAdmin => "user:admin",
            ApiScope::OrgAdmin => "org:admin",
            ApiScope::SuperUser => "super:user",
        }
    }
}

impl std::str::FromStr for ApiScope {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<ApiScope, AuthError> {
        ApiScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let shown: String = s.chars().take(50).collect();
                AuthError::Invalid(format!("unknown API token scope {shown:?}"))
            })
    }
}

impl fmt::Display for ApiScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of API scopes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiScopes(pub BTreeSet<ApiScope>);

impl ApiScopes {
    /// Parses a space-separated list (as stored, and as requested when creating a token).
    /// Unknown scopes are an error; duplicates are merged.
    pub fn parse(s: &str) -> Result<ApiScopes, AuthError> {
        s.split_ascii_whitespace()
            .map(str::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(ApiScopes)
    }

    pub fn contains(&self, scope: ApiScope) -> bool {
        self.0.contains(&scope)
    }

    /// `repo:read` or a stronger repository scope: the token may read repositories.
    pub fn reads_repositories(&self) -> bool {
        [ApiScope::RepoRead, ApiScope::RepoWrite, ApiScope::RepoAdmin]
            .into_iter()
            .any(|s| self.contains(s))
    }

    /// Whether these scopes let a token perform `action` on `resource` (what the account
    /// itself may do is decided separately; a token never exceeds its account).
    pub fn permits(&self, resource: Resource<'_>, action: Action) -> bool {
        let writes = || self.contains(ApiScope::RepoWrite) || self.contains(ApiScope::RepoAdmin);
        match (resource, action) {
            (Resource::Repository(_), Action::Pull) => self.reads_repositories(),
            (Resource::Repository(_), Action::Push | Action::Delete) => writes(),
            (Resource::Repository(_), Action::Admin) => self.contains(ApiScope::RepoAdmin),
            (Resource::Namespace(_), Action::CreateRepository) => {
                self.contains(ApiScope::RepoCreate)
            }
            (Resource::Namespace(_), Action::Admin) => self.contains(ApiScope::OrgAdmin),
            (Resource::Namespace(_), Action::View) => {
                self.contains(ApiScope::OrgAdmin) || self.reads_repositories()
            }
            (Resource::Account(_), Action::Manage) => self.contains(ApiScope::UserAdmin),
            (Resource::Registry, Action::Superuser) => self.contains(ApiScope::SuperUser),
            _ => false,
        }
    }
}

impl fmt::Display for ApiScopes {
    /// Space-separated, in a stable order: the stored form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(kind: &str, name: &str, actions: &[&str]) -> Scope {
        Scope {
            kind: kind.into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn parses_valid_scopes() {
        let cases = [
            (
                "repository:ns/app:pull",
                scope("repository", "ns/app", &["pull"]),
            ),
            (
                "repository:ns/app:pull,push",
                scope("repository", "ns/app", &["pull", "push"]),
            ),
            ("repository:app:*", scope("repository", "app", &["*"])),
            (
                "repository:a/b/c:delete",
                scope("repository", "a/b/c", &["delete"]),
            ),
            ("registry:catalog:*", scope("registry", "catalog", &["*"])),
            (
                "repository(plugin):ns/app:pull",
                scope("repository(plugin)", "ns/app", &["pull"]),
            ),
            ("unknown:thing:read", scope("unknown", "thing", &["read"])),
            // A registry host with a port: the name lies between the first and the last `:`.
            (
                "other:host:5000/app:pull",
                scope("other", "host:5000/app", &["pull"]),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Scope::parse(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn refuses_malformed_scopes() {
        let long = format!("repository:{}:pull", "a".repeat(1100));
        let cases = [
            "",
            "repository",
            "repository:ns/app",
            ":ns/app:pull",
            "repository::pull",
            "repository:ns/app:",
            "repository:ns/app:pull,",
            "repository:ns/app:,pull",
            "repository:ns/app:Pull",
            "repository:NS/app:pull",
            "repository:ns//app:pull",
            "repository:ns/app/:pull",
            "repository:host:5000/app:pull",
            "Repository:ns/app:pull",
            "repository(:ns/app:pull",
            "repository():ns/app:pull",
            "repo sitory:ns/app:pull",
            long.as_str(),
        ];
        for text in cases {
            assert!(
                matches!(Scope::parse(text), Err(AuthError::Invalid(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "repository:ns/app:pull,push",
            "registry:catalog:*",
            "repository:app:delete",
        ] {
            assert_eq!(Scope::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(scope("repository", "a", &[]).to_string(), "repository:a:");
    }

    #[test]
    fn parses_lists_and_merges_resources() {
        let params = [
            "repository:ns/a:pull repository:ns/b:push",
            "repository:ns/a:push,pull",
            "",
            "  registry:catalog:*  ",
        ];
        assert_eq!(
            Scope::parse_list(&params).unwrap(),
            vec![
                scope("repository", "ns/a", &["pull", "push"]),
                scope("repository", "ns/b", &["push"]),
                scope("registry", "catalog", &["*"]),
            ]
        );
        assert!(Scope::parse_list::<&str>(&[]).unwrap().is_empty());
        assert!(Scope::parse_list(&["repository:ns/a:pull bad"]).is_err());
    }

    #[test]
    fn scope_json_uses_the_token_spec_field_names() {
        let json = serde_json::to_value(scope("repository", "ns/a", &["pull"])).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "repository", "name": "ns/a", "actions": ["pull"]})
        );
    }

    #[test]
    fn api_scopes_parse_and_display() {
        for scope in ApiScope::ALL {
            assert_eq!(scope.as_str().parse::<ApiScope>().unwrap(), scope);
        }
        let all = ApiScopes::parse("super:user repo:read  org:admin repo:read").unwrap();
        assert_eq!(all.0.len(), 3);
        assert_eq!(all.to_string(), "repo:read org:admin super:user");
        assert_eq!(ApiScopes::parse(&all.to_string()).unwrap(), all);
        assert_eq!(ApiScopes::parse("").unwrap(), ApiScopes::default());
        assert!(ApiScopes::parse("repo:read repo:everything").is_err());
        assert!(ApiScopes::parse("REPO:READ").is_err());
    }

    #[test]
    fn permits_table() {
        use Action::*;
        use ApiScope::*;
        let repo = Resource::Repository("ns/app");
        let ns = Resource::Namespace("ns");
        let account = Resource::Account(1);
        let registry = Resource::Registry;
        // (resource, action, scopes that permit it); every other scope must not.
        let table: &[(Resource, Action, &[ApiScope])] = &[
            (repo, Pull, &[RepoRead, RepoWrite, RepoAdmin]),
            (repo, Push, &[RepoWrite, RepoAdmin]),
            (repo, Delete, &[RepoWrite, RepoAdmin]),
            (repo, Admin, &[RepoAdmin]),
            (repo, CreateRepository, &[]),
            (repo, View, &[]),
            (repo, Manage, &[]),
            (repo, Superuser, &[]),
            (ns, Pull, &[]),
            (ns, Push, &[]),
            (ns, Delete, &[]),
            (ns, Admin, &[OrgAdmin]),
            (ns, CreateRepository, &[RepoCreate]),
            (ns, View, &[OrgAdmin, RepoRead, RepoWrite, RepoAdmin]),
            (ns, Manage, &[]),
            (ns, Superuser, &[]),
            (account, Manage, &[UserAdmin]),
            (account, Admin, &[]),
            (account, Pull, &[]),
            (account, Superuser, &[]),
            (registry, Superuser, &[SuperUser]),
            (registry, Admin, &[]),
            (registry, Manage, &[]),
            (registry, Pull, &[]),
        ];
        for &(resource, action, permitting) in table {
            for scope in ApiScope::ALL {
                let one = ApiScopes([scope].into());
                assert_eq!(
                    one.permits(resource, action),
                    permitting.contains(&scope),
                    "{scope} {resource:?} {action:?}"
                );
            }
            assert!(!ApiScopes::default().permits(resource, action));
            let all = ApiScopes(ApiScope::ALL.into());
            assert_eq!(all.permits(resource, action), !permitting.is_empty());
        }
    }
}
