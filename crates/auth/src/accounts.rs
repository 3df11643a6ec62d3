//! Administration of accounts, organizations, teams, robots, tokens, repositories and
//! grants: the operations behind the management API and the `bulwark` CLI. Callers check
//! authorization first (`Authenticator::authorize`); these operations validate input, store,
//! and emit events. Every rule about what may be stored lives here, so the API and the CLI
//! cannot disagree.
//!
//! Secrets (robot tokens, application and API tokens, generated passwords) are returned once,
//! by the operation that creates them; only their hashes are stored.

use std::sync::Arc;

use bulwark_events::{Actor, Event, Origin};
use bulwark_meta::{
    Account, AccountKind, Grant, Grantee, IdentityStore, MetaError, NewAccount, RepoRole,
    RepositoryInfo, Team, TeamRole, TokenKind, TokenRecord, Visibility, now_millis,
};
use bulwark_oci::RepoName;

use crate::access::{self, namespace_of};
use crate::scope::{ApiScope, ApiScopes};
use crate::{
    Action, AuthError, Authenticator, Channel, ClientInfo, Credential, Identity, Principal,
    Resource, password, secret,
};

/// The superuser created at first start.
pub const ADMIN_USER: &str = "admin";
/// The team every organization is created with, holding its creator; it keeps the `admin`
/// role and cannot be deleted, so an organization always has a way to be administered.
pub const OWNERS_TEAM: &str = "owners";
/// Repositories without a `/` belong to this namespace (see [`access::namespace_of`]); its
/// owner would administer all of them, so only a superuser may create it.
pub const LIBRARY_NAMESPACE: &str = "library";

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Argon2 hashes any length; the limit bounds the work a request can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_NAME_LEN: usize = 255;
const MAX_EMAIL_LEN: usize = 254;
const MAX_DESCRIPTION_CHARS: usize = 1024;
/// The longest repository name accepted (namespace included).
const MAX_REPOSITORY_LEN: usize = 255;

/// Validates a namespace name (a user or an organization). A namespace is the first path
/// component of repository names, so it follows the distribution spec's grammar for one;
/// dots are refused because Docker clients read a dotted first component as a registry
/// host, and `+` (which the grammar refuses too) is what sets robot names apart.
pub fn validate_namespace(name: &str) -> Result<(), AuthError> {
    let valid = (1..=MAX_NAME_LEN).contains(&name.len())
        && !name.contains(['/', '.'])
        && RepoName::parse(name, MAX_NAME_LEN).is_ok();
    if valid {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "invalid name {:?}: 1 to {MAX_NAME_LEN} characters, lowercase letters and digits \
             separated by single `_`, `__` or runs of `-`",
            shown(name)
        )))
    }
}

/// Validates the short name of a robot (`namespace+short`) or the name of a team:
/// `[a-z][a-z0-9_]{1,254}`.
pub fn validate_short_name(what: &str, name: &str) -> Result<(), AuthError> {
    let b = name.as_bytes();
    let valid = (2..=MAX_NAME_LEN).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if valid {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "invalid {what} name {:?}: 2 to {MAX_NAME_LEN} characters, a lowercase letter \
             then lowercase letters, digits or `_`",
            shown(name)
        )))
    }
}

/// The password policy: at least 8 characters, at most 1024 bytes.
pub fn validate_password(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Err(AuthError::Invalid(format!(
            "passwords have at least {MIN_PASSWORD_CHARS} characters"
        )))
    } else if password.len() > MAX_PASSWORD_BYTES {
        Err(AuthError::Invalid(format!(
            "passwords have at most {MAX_PASSWORD_BYTES} bytes"
        )))
    } else {
        Ok(())
    }
}

fn validate_email(email: &str) -> Result<(), AuthError> {
    let valid = email.len() <= MAX_EMAIL_LEN
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "invalid email address {:?}",
            shown(email)
        )))
    }
}

/// Descriptions and token names are free text shown in listings: bounded, no control
/// characters (they end up in logs and terminals).
fn validate_text(
    what: &str,
    text: &str,
    max_chars: usize,
    allow_empty: bool,
) -> Result<(), AuthError> {
    if (!allow_empty && text.trim().is_empty())
        || text.chars().count() > max_chars
        || text.chars().any(char::is_control)
    {
        Err(AuthError::Invalid(format!(
            "{what}: {} to {max_chars} characters, no control characters",
            usize::from(!allow_empty)
        )))
    } else {
        Ok(())
    }
}

fn validate_expiry(expires_at: Option<i64>) -> Result<(), AuthError> {
    match expires_at {
        Some(at) if at <= now_millis() => Err(AuthError::Invalid(
            "the expiration must lie in the future (milliseconds since the Unix epoch)".into(),
        )),
        _ => Ok(()),
    }
}

/// Input echoed in an error, cut short.
fn shown(s: &str) -> String {
    s.chars().take(64).collect()
}

fn origin(client: &ClientInfo) -> Origin {
    Origin {
        address: client.address,
        user_agent: client.user_agent.clone(),
    }
}

/// Store errors that are the caller's doing (a name taken, a row gone meanwhile) become
/// answers; the rest are server faults.
fn stored(e: MetaError) -> AuthError {
    match e {
        MetaError::Conflict(what) => AuthError::Conflict(what),
        MetaError::NotFound(what) => AuthError::NotFound(what),
        e => AuthError::Meta(e),
    }
}

/// The user acting, for operations on one's own account.
fn acting_user(identity: &Identity) -> Result<i64, AuthError> {
    match identity.principal {
        Principal::User { id, .. } => Ok(id),
        _ => Err(AuthError::Invalid(
            "only users have passwords, tokens and organizations of their own".into(),
        )),
    }
}

/// Hashes in a blocking thread, in one of the process's Argon2 slots.
async fn hash_password(password: &str) -> Result<String, AuthError> {
    let password = password.to_owned();
    password::slot()
        .await
        .run(move || password::hash_password(&password))
        .await?
}

pub struct Accounts {
    auth: Arc<Authenticator>,
}

impl Accounts {
    pub fn new(auth: Arc<Authenticator>) -> Accounts {
        Accounts { auth }
    }

    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    fn store(&self) -> &dyn IdentityStore {
        self.auth.store().as_ref()
    }

    fn emit(&self, event: Event) {
        self.auth.events().emit(event);
    }

    fn event(kind: &str, by: &Identity, client: &ClientInfo) -> Event {
        Event::new(kind, by.actor(), origin(client))
    }

    // --- lookups --------------------------------------------------------------------------

    async fn account_of_kind(
        &self,
        name: &str,
        kinds: &[AccountKind],
        what: &str,
    ) -> Result<Account, AuthError> {
        match self.store().account(name).await? {
            Some(account) if kinds.contains(&account.kind) => Ok(account),
            _ => Err(AuthError::NotFound(format!("{what} {}", shown(name)))),
        }
    }

    /// Any account by id (the caller's own, for instance).
    pub async fn account(&self, id: i64) -> Result<Account, AuthError> {
        self.store()
            .account_by_id(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("account {id}")))
    }

    /// A user account by name.
    pub async fn user(&self, name: &str) -> Result<Account, AuthError> {
        self.account_of_kind(name, &[AccountKind::User], "user")
            .await
    }

    /// All users, in name order.
    pub async fn users(&self) -> Result<Vec<Account>, AuthError> {
        Ok(self.store().accounts(AccountKind::User, None).await?)
    }

    /// An organization by name.
    pub async fn organization(&self, name: &str) -> Result<Account, AuthError> {
        self.account_of_kind(name, &[AccountKind::Organization], "organization")
            .await
    }

    /// A namespace (user or organization) by name.
    pub async fn namespace(&self, name: &str) -> Result<Account, AuthError> {
        self.account_of_kind(
            name,
            &[AccountKind::User, AccountKind::Organization],
            "namespace",
        )
        .await
    }

    /// Organizations the account belongs to through a team, with its strongest role there.
    pub async fn memberships(
        &self,
        account_id: i64,
    ) -> Result<Vec<(Account, TeamRole)>, AuthError> {
        Ok(self.store().memberships(account_id).await?)
    }

    async fn team_in(&self, org: &Account, team: &str) -> Result<Team, AuthError> {
        self.store()
            .team(org.id, team)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("team {}", shown(team))))
    }

    /// An organization's teams, in name order, each with its members. Teams are read once
    /// and their members by id, so a team deleted meanwhile shows with none rather than
    /// failing the whole listing.
    pub async fn teams_with_members(
        &self,
        organization: &str,
    ) -> Result<Vec<(Team, Vec<Account>)>, AuthError> {
        let org = self.organization(organization).await?;
        let mut teams = Vec::new();
        for team in self.store().teams(org.id).await? {
            let members = self.store().team_members(team.id).await?;
            teams.push((team, members));
        }
        Ok(teams)
    }

    /// A team and its members (users and robots).
    pub async fn team_members(
        &self,
        organization: &str,
        team: &str,
    ) -> Result<(Team, Vec<Account>), AuthError> {
        let org = self.organization(organization).await?;
        let team = self.team_in(&org, team).await?;
        let members = self.store().team_members(team.id).await?;
        Ok((team, members))
    }

    /// The robots of a namespace, in name order.
    pub async fn robots(&self, namespace: &str) -> Result<Vec<Account>, AuthError> {
        let ns = self.namespace(namespace).await?;
        Ok(self
            .store()
            .accounts(AccountKind::Robot, Some(ns.id))
            .await?)
    }

    /// The robot `namespace+short`.
    pub async fn robot(&self, namespace: &str, short: &str) -> Result<Account, AuthError> {
        let ns = self.namespace(namespace).await?;
        self.robot_in(&ns, short).await
    }

    async fn robot_in(&self, ns: &Account, short: &str) -> Result<Account, AuthError> {
        let name = format!("{}+{short}", ns.name);
        match self.store().account(&name).await? {
            Some(robot) if robot.kind == AccountKind::Robot && robot.owner_id == Some(ns.id) => {
                Ok(robot)
            }
            _ => Err(AuthError::NotFound(format!("robot {}", shown(&name)))),
        }
    }

    pub async fn repository(&self, name: &str) -> Result<RepositoryInfo, AuthError> {
        self.store()
            .repository_info(name)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("repository {}", shown(name))))
    }

    /// The repositories of `namespace` that `identity` may pull, in name order. A namespace
    /// that does not exist has none (the answer says nothing about existence).
    pub async fn visible_repositories(
        &self,
        identity: &Identity,
        namespace: &str,
    ) -> Result<Vec<RepositoryInfo>, AuthError> {
        let mut visible = Vec::new();
        for repo in self.store().namespace_repositories(namespace).await? {
            if self
                .auth
                .authorize(identity, Resource::Repository(&repo.name), Action::Pull)
                .await?
            {
                visible.push(repo);
            }
        }
        Ok(visible)
    }

    /// The grants on a repository (to users, robots and teams).
    pub async fn grants(&self, repository: &str) -> Result<Vec<Grant>, AuthError> {
        let repo = self.repository(repository).await?;
        Ok(self.store().grants(repo.id).await?)
    }

    /// The caller's application tokens (revoked ones included), newest first.
    pub async fn app_tokens(&self, by: &Identity) -> Result<Vec<TokenRecord>, AuthError> {
        Ok(self
            .store()
            .tokens(TokenKind::App, acting_user(by)?)
            .await?)
    }

    /// One of the caller's application tokens.
    pub async fn app_token(&self, by: &Identity, id: &str) -> Result<TokenRecord, AuthError> {
        self.own_token(TokenKind::App, by, id).await
    }

    /// The caller's API tokens (revoked ones included), newest first.
    pub async fn api_tokens(&self, by: &Identity) -> Result<Vec<TokenRecord>, AuthError> {
        Ok(self
            .store()
            .tokens(TokenKind::Api, acting_user(by)?)
            .await?)
    }

    /// A token of the caller's; another account's token is "not found", like a missing one.
    async fn own_token(
        &self,
        kind: TokenKind,
        by: &Identity,
        id: &str,
    ) -> Result<TokenRecord, AuthError> {
        let owner = acting_user(by)?;
        match self.store().token(kind, id).await? {
            Some(token) if token.account_id == owner => Ok(token),
            _ => Err(AuthError::NotFound(format!("token {}", shown(id)))),
        }
    }

    // --- users ----------------------------------------------------------------------------

    /// Creates a user (a superuser's or the CLI's operation).
    pub async fn create_user(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        email: Option<&str>,
        password: &str,
        superuser: bool,
    ) -> Result<Account, AuthError> {
        validate_namespace(name)?;
        if name == LIBRARY_NAMESPACE {
            return Err(AuthError::Invalid(format!(
                "{LIBRARY_NAMESPACE:?} is reserved for repositories without a namespace"
            )));
        }
        if let Some(email) = email {
            validate_email(email)?;
        }
        validate_password(password)?;
        let hash = hash_password(password).await?;
        let account = self
            .store()
            .create_account(NewAccount {
                name,
                kind: AccountKind::User,
                owner_id: None,
                email,
                password_hash: Some(&hash),
                token_hash: None,
                superuser,
                description: None,
            })
            .await
            .map_err(stored)?;
        self.emit(
            Self::event("user.create", by, client)
                .namespace(name)
                .target(name)
                .details(serde_json::json!({ "superuser": superuser })),
        );
        Ok(account)
    }

    /// Self-registration of an ordinary user, when the deployment allows it.
    pub async fn register_user(
        &self,
        client: &ClientInfo,
        name: &str,
        email: Option<&str>,
        password: &str,
    ) -> Result<Account, AuthError> {
        if !self.auth.settings().user_creation {
            return Err(AuthError::Denied);
        }
        self.create_user(&Identity::anonymous(), client, name, email, password, false)
            .await
    }

    /// Changes the caller's own password, which it must present: a stolen token or session
    /// alone cannot take the account over. The check goes through the authenticator, so
    /// failures count against its login rate limits.
    pub async fn change_own_password(
        &self,
        by: &Identity,
        client: &ClientInfo,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let id = acting_user(by)?;
        validate_password(new)?;
        let proven = match self
            .auth
            .authenticate_basic(by.name(), current, Channel::Management, client)
            .await
        {
            Ok(identity) => identity,
            Err(AuthError::InvalidCredentials) => {
                return Err(AuthError::Invalid(
                    "the current password is incorrect".into(),
                ));
            }
            Err(e) => return Err(e),
        };
        // The authenticator also accepts application tokens as passwords; only the real
        // password proves the right to change it.
        if proven.account_id() != Some(id) || proven.credential != Credential::Password {
            return Err(AuthError::Invalid(
                "the current password is incorrect".into(),
            ));
        }
        self.store_password(by, client, id, by.name(), new).await
    }

    /// Sets a user's password (a superuser's or the CLI's operation).
    pub async fn set_password(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        validate_password(password)?;
        let user = self.user(name).await?;
        self.store_password(by, client, user.id, &user.name, password)
            .await
    }

    async fn store_password(
        &self,
        by: &Identity,
        client: &ClientInfo,
        id: i64,
        name: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        let hash = hash_password(password).await?;
        if !self.store().set_password(id, &hash).await? {
            return Err(AuthError::NotFound(format!("user {name}")));
        }
        self.emit(
            Self::event("password.change", by, client)
                .namespace(name)
                .target(name),
        );
        Ok(())
    }

    /// Enables or disables a user: a disabled user cannot authenticate and its namespace is
    /// closed. The last enabled superuser cannot be disabled.
    pub async fn set_enabled(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        enabled: bool,
    ) -> Result<Account, AuthError> {
        let mut user = self.user(name).await?;
        if !enabled {
            self.keep_a_superuser(&user).await?;
        }
        if !self.store().set_enabled(user.id, enabled).await? {
            return Err(AuthError::NotFound(format!("user {name}")));
        }
        user.enabled = enabled;
        let kind = if enabled {
            "user.enable"
        } else {
            "user.disable"
        };
        self.emit(Self::event(kind, by, client).namespace(name).target(name));
        Ok(user)
    }

    /// Grants or removes superuser rights. The last enabled superuser keeps them.
    pub async fn set_superuser(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        superuser: bool,
    ) -> Result<Account, AuthError> {
        let mut user = self.user(name).await?;
        if !superuser {
            self.keep_a_superuser(&user).await?;
        }
        if !self.store().set_superuser(user.id, superuser).await? {
            return Err(AuthError::NotFound(format!("user {name}")));
        }
        user.superuser = superuser;
        self.emit(
            Self::event("user.superuser", by, client)
                .namespace(name)
                .target(name)
                .details(serde_json::json!({ "superuser": superuser })),
        );
        Ok(user)
    }

    /// A superuser's change of a user: any of enabled, superuser, password. Everything is
    /// checked before anything changes, so a refused request changes nothing.
    pub async fn update_user(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        enabled: Option<bool>,
        superuser: Option<bool>,
        password: Option<&str>,
    ) -> Result<Account, AuthError> {
        if let Some(password) = password {
            validate_password(password)?;
        }
        let user = self.user(name).await?;
        if enabled == Some(false) || superuser == Some(false) {
            self.keep_a_superuser(&user).await?;
        }
        if let Some(password) = password {
            self.store_password(by, client, user.id, &user.name, password)
                .await?;
        }
        if let Some(enabled) = enabled.filter(|e| *e != user.enabled) {
            self.set_enabled(by, client, name, enabled).await?;
        }
        if let Some(superuser) = superuser.filter(|s| *s != user.superuser) {
            self.set_superuser(by, client, name, superuser).await?;
        }
        self.user(name).await
    }

    /// Deletes a user with everything it owns (its repositories, robots, tokens, grants and
    /// team memberships). The last enabled superuser cannot be deleted.
    pub async fn delete_user(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
    ) -> Result<(), AuthError> {
        let user = self.user(name).await?;
        self.keep_a_superuser(&user).await?;
        if !self.store().delete_account(user.id).await? {
            return Err(AuthError::NotFound(format!("user {name}")));
        }
        self.emit(
            Self::event("user.delete", by, client)
                .namespace(name)
                .target(name),
        );
        Ok(())
    }

    /// Refuses a change that would leave no enabled superuser (nobody could administer the
    /// registry through the API any more).
    async fn keep_a_superuser(&self, losing: &Account) -> Result<(), AuthError> {
        if !(losing.superuser && losing.enabled) {
            return Ok(());
        }
        let others = self
            .users()
            .await?
            .into_iter()
            .any(|u| u.superuser && u.enabled && u.id != losing.id);
        if others {
            Ok(())
        } else {
            Err(AuthError::Invalid(format!(
                "{} is the last enabled superuser; make another user superuser first",
                losing.name
            )))
        }
    }

    /// Creates the superuser `admin` when no superuser exists (first start), with
    /// `password` or a generated one, which is returned so it can be shown once. A user
    /// named `admin` left without superusers around is made superuser with that password.
    pub async fn ensure_admin(&self, password: Option<&str>) -> Result<Option<String>, AuthError> {
        let store = self.store();
        if store.any_superuser().await? {
            return Ok(None);
        }
        let (password, generated) = match password {
            Some(p) => (p.to_owned(), false),
            None => (secret::random_string::<18>()?, true),
        };
        validate_password(&password)?;
        let hash = hash_password(&password).await?;
        let system = |kind: &str| {
            Event::new(kind, Actor::system(), Origin::default())
                .namespace(ADMIN_USER)
                .target(ADMIN_USER)
        };
        match store.account(ADMIN_USER).await? {
            None => {
                let created = store
                    .create_account(NewAccount {
                        name: ADMIN_USER,
                        kind: AccountKind::User,
                        owner_id: None,
                        email: None,
                        password_hash: Some(&hash),
                        token_hash: None,
                        superuser: true,
                        description: None,
                    })
                    .await;
                match created {
                    Ok(_) => {}
                    // Another node starting at the same moment created it.
                    Err(MetaError::Conflict(_)) if store.any_superuser().await? => return Ok(None),
                    Err(e) => return Err(stored(e)),
                }
                self.emit(system("user.create").details(serde_json::json!({ "superuser": true })));
            }
            Some(user) if user.kind == AccountKind::User => {
                store.set_password(user.id, &hash).await?;
                store.set_enabled(user.id, true).await?;
                store.set_superuser(user.id, true).await?;
                self.emit(
                    system("user.superuser")
                        .details(serde_json::json!({ "superuser": true, "password_reset": true })),
                );
            }
            Some(_) => {
                return Err(AuthError::Invalid(format!(
                    "no superuser exists and the name {ADMIN_USER} is taken by an organization \
                     or a robot: cannot create the first superuser"
                )));
            }
        }
        Ok(generated.then_some(password))
    }

    // --- organizations and teams ----------------------------------------------------------

    /// Creates an organization owned by the acting user: a team `owners` with the role
    /// `admin` holding the creator.
    pub async fn create_organization(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        email: Option<&str>,
    ) -> Result<Account, AuthError> {
        let creator = acting_user(by)?;
        validate_namespace(name)?;
        if name == LIBRARY_NAMESPACE && !by.is_superuser() {
            return Err(AuthError::Invalid(format!(
                "{LIBRARY_NAMESPACE:?} holds the repositories without a namespace; only a \
                 superuser may create it"
            )));
        }
        if let Some(email) = email {
            validate_email(email)?;
        }
        let org = self
            .create_organization_owned_by(name, email, creator)
            .await?;
        self.emit(
            Self::event("org.create", by, client)
                .namespace(name)
                .target(name),
        );
        Ok(org)
    }

    async fn create_organization_owned_by(
        &self,
        name: &str,
        email: Option<&str>,
        creator: i64,
    ) -> Result<Account, AuthError> {
        let store = self.store();
        let org = store
            .create_account(NewAccount {
                name,
                kind: AccountKind::Organization,
                owner_id: None,
                email,
                password_hash: None,
                token_hash: None,
                superuser: false,
                description: None,
            })
            .await
            .map_err(stored)?;
        // Three store calls: an organization left without its owners team could only be
        // administered by superusers, so a failure undoes the creation.
        let owners = async {
            let team = store
                .create_team(
                    org.id,
                    OWNERS_TEAM,
                    TeamRole::Admin,
                    Some("Owners of the organization"),
                )
                .await?;
            store.add_team_member(team.id, creator).await
        };
        if let Err(e) = owners.await {
            if let Err(undo) = store.delete_account(org.id).await {
                tracing::error!(organization = name, error = %undo, "could not remove a half-created organization");
            }
            return Err(stored(e));
        }
        Ok(org)
    }

    /// Deletes an organization with its teams, robots and repositories.
    pub async fn delete_organization(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
    ) -> Result<(), AuthError> {
        let org = self.organization(name).await?;
        if !self.store().delete_account(org.id).await? {
            return Err(AuthError::NotFound(format!("organization {name}")));
        }
        self.emit(
            Self::event("org.delete", by, client)
                .namespace(name)
                .target(name),
        );
        Ok(())
    }

    /// Creates a team, or changes the role of an existing one. Returns the team and whether
    /// it was created. A description is set at creation; the store keeps no way to change
    /// it, so a different one for an existing team is refused rather than ignored.
    pub async fn set_team(
        &self,
        by: &Identity,
        client: &ClientInfo,
        organization: &str,
        team: &str,
        role: TeamRole,
        description: Option<&str>,
    ) -> Result<(Team, bool), AuthError> {
        let org = self.organization(organization).await?;
        validate_short_name("team", team)?;
        if let Some(d) = description {
            validate_text("description", d, MAX_DESCRIPTION_CHARS, true)?;
        }
        let store = self.store();
        if let Some(mut existing) = store.team(org.id, team).await? {
            if description.is_some_and(|d| existing.description.as_deref().unwrap_or("") != d) {
                return Err(AuthError::Invalid(
                    "a team's description cannot be changed after its creation".into(),
                ));
            }
            if existing.role == role {
                return Ok((existing, false));
            }
            if existing.name == OWNERS_TEAM {
                return Err(AuthError::Invalid(format!(
                    "the {OWNERS_TEAM} team keeps the admin role"
                )));
            }
            if !store.set_team_role(existing.id, role).await? {
                return Err(AuthError::NotFound(format!("team {team}")));
            }
            existing.role = role;
            self.emit(
                Self::event("team.role", by, client)
                    .namespace(organization)
                    .target(team)
                    .details(serde_json::json!({ "role": role })),
            );
            return Ok((existing, false));
        }
        let created = store
            .create_team(org.id, team, role, description.filter(|d| !d.is_empty()))
            .await
            .map_err(stored)?;
        self.emit(
            Self::event("team.create", by, client)
                .namespace(organization)
                .target(team)
                .details(serde_json::json!({ "role": role })),
        );
        Ok((created, true))
    }

    pub async fn delete_team(
        &self,
        by: &Identity,
        client: &ClientInfo,
        organization: &str,
        team: &str,
    ) -> Result<(), AuthError> {
        let org = self.organization(organization).await?;
        let found = self.team_in(&org, team).await?;
        if found.name == OWNERS_TEAM {
            return Err(AuthError::Invalid(format!(
                "the {OWNERS_TEAM} team cannot be deleted"
            )));
        }
        if !self.store().delete_team(found.id).await? {
            return Err(AuthError::NotFound(format!("team {team}")));
        }
        self.emit(
            Self::event("team.delete", by, client)
                .namespace(organization)
                .target(team),
        );
        Ok(())
    }

    /// Adds a user, or a robot of the organization, to a team (idempotent). Returns the
    /// member's account.
    pub async fn add_team_member(
        &self,
        by: &Identity,
        client: &ClientInfo,
        organization: &str,
        team: &str,
        member: &str,
    ) -> Result<Account, AuthError> {
        let org = self.organization(organization).await?;
        let found = self.team_in(&org, team).await?;
        let account = self
            .store()
            .account(member)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("account {}", shown(member))))?;
        let eligible = match account.kind {
            AccountKind::User => true,
            AccountKind::Robot => account.owner_id == Some(org.id),
            AccountKind::Organization => false,
        };
        if !eligible {
            return Err(AuthError::Invalid(format!(
                "team members are users or robots of {organization}; {member} is not"
            )));
        }
        if self.store().add_team_member(found.id, account.id).await? {
            self.emit(
                Self::event("team.member.add", by, client)
                    .namespace(organization)
                    .target(member)
                    .details(serde_json::json!({ "team": team })),
            );
        }
        Ok(account)
    }

    /// Removes a member from a team. The owners team keeps at least one member.
    pub async fn remove_team_member(
        &self,
        by: &Identity,
        client: &ClientInfo,
        organization: &str,
        team: &str,
        member: &str,
    ) -> Result<(), AuthError> {
        let org = self.organization(organization).await?;
        let found = self.team_in(&org, team).await?;
        let members = self.store().team_members(found.id).await?;
        let Some(account) = members.iter().find(|m| m.name == member) else {
            return Err(AuthError::NotFound(format!(
                "member {} of team {team}",
                shown(member)
            )));
        };
        if found.name == OWNERS_TEAM && members.len() == 1 {
            return Err(AuthError::Invalid(format!(
                "the {OWNERS_TEAM} team keeps at least one member"
            )));
        }
        if !self
            .store()
            .remove_team_member(found.id, account.id)
            .await?
        {
            return Err(AuthError::NotFound(format!(
                "member {member} of team {team}"
            )));
        }
        self.emit(
            Self::event("team.member.remove", by, client)
                .namespace(organization)
                .target(member)
                .details(serde_json::json!({ "team": team })),
        );
        Ok(())
    }

    // --- robots ---------------------------------------------------------------------------

    /// Creates the robot `namespace+short` and returns it with its token (shown only now).
    pub async fn create_robot(
        &self,
        by: &Identity,
        client: &ClientInfo,
        namespace: &str,
        short: &str,
        description: Option<&str>,
    ) -> Result<(Account, String), AuthError> {
        let ns = self.namespace(namespace).await?;
        validate_short_name("robot", short)?;
        if let Some(d) = description {
            validate_text("description", d, MAX_DESCRIPTION_CHARS, true)?;
        }
        let name = format!("{}+{short}", ns.name);
        let token = secret::generate_robot_token()?;
        let robot = self
            .store()
            .create_account(NewAccount {
                name: &name,
                kind: AccountKind::Robot,
                owner_id: Some(ns.id),
                email: None,
                password_hash: None,
                token_hash: Some(&token.secret_hash),
                superuser: false,
                description: description.filter(|d| !d.is_empty()),
            })
            .await
            .map_err(stored)?;
        self.emit(
            Self::event("robot.create", by, client)
                .namespace(namespace)
                .target(&name),
        );
        Ok((robot, token.token))
    }

    /// Replaces a robot's token; the old one stops working at once.
    pub async fn regenerate_robot_token(
        &self,
        by: &Identity,
        client: &ClientInfo,
        namespace: &str,
        short: &str,
    ) -> Result<(Account, String), AuthError> {
        let robot = self.robot(namespace, short).await?;
        let token = secret::generate_robot_token()?;
        if !self
            .store()
            .set_robot_token(robot.id, &token.secret_hash)
            .await?
        {
            return Err(AuthError::NotFound(format!("robot {}", robot.name)));
        }
        self.emit(
            Self::event("robot.regenerate", by, client)
                .namespace(namespace)
                .target(&robot.name),
        );
        Ok((robot, token.token))
    }

    pub async fn delete_robot(
        &self,
        by: &Identity,
        client: &ClientInfo,
        namespace: &str,
        short: &str,
    ) -> Result<(), AuthError> {
        let robot = self.robot(namespace, short).await?;
        if !self.store().delete_account(robot.id).await? {
            return Err(AuthError::NotFound(format!("robot {}", robot.name)));
        }
        self.emit(
            Self::event("robot.delete", by, client)
                .namespace(namespace)
                .target(&robot.name),
        );
        Ok(())
    }

    // --- application and API tokens -------------------------------------------------------

    /// Creates an application token for the acting user (a password substitute for registry
    /// clients). Returns the record and the token string, shown only now.
    pub async fn create_app_token(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        expires_at: Option<i64>,
    ) -> Result<(TokenRecord, String), AuthError> {
        self.create_token(
            by,
            client,
            TokenKind::App,
            name,
            &ApiScopes::default(),
            expires_at,
        )
        .await
    }

    /// Creates an API token for the acting user, limited to `scopes`, which may not exceed
    /// what the creator may do: `super:user` only for superusers, and a token created with
    /// an API token gets no scope that token lacks. (Every call made with the token is still
    /// decided against the account's own rights.)
    pub async fn create_api_token(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        scopes: &ApiScopes,
        expires_at: Option<i64>,
    ) -> Result<(TokenRecord, String), AuthError> {
        if scopes.0.is_empty() {
            return Err(AuthError::Invalid(format!(
                "an API token needs at least one scope of: {}",
                ApiScopes(ApiScope::ALL.into_iter().collect())
            )));
        }
        if scopes.contains(ApiScope::SuperUser) && !by.is_superuser() {
            return Err(AuthError::Denied);
        }
        if let Credential::ApiToken { scopes: own, .. } = &by.credential
            && !scopes.0.is_subset(&own.0)
        {
            return Err(AuthError::Denied);
        }
        self.create_token(by, client, TokenKind::Api, name, scopes, expires_at)
            .await
    }

    async fn create_token(
        &self,
        by: &Identity,
        client: &ClientInfo,
        kind: TokenKind,
        name: &str,
        scopes: &ApiScopes,
        expires_at: Option<i64>,
    ) -> Result<(TokenRecord, String), AuthError> {
        let owner = acting_user(by)?;
        validate_text("token name", name, MAX_NAME_LEN, false)?;
        validate_expiry(expires_at)?;
        let generated = secret::generate_token(kind)?;
        let record = TokenRecord {
            id: generated.id,
            account_id: owner,
            name: name.to_owned(),
            secret_hash: generated.secret_hash,
            scopes: scopes.to_string(),
            created_at: now_millis(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        self.store()
            .create_token(kind, &record)
            .await
            .map_err(stored)?;
        let (event, details) = match kind {
            TokenKind::App => ("apptoken.create", serde_json::json!({ "name": name })),
            TokenKind::Api => (
                "apitoken.create",
                serde_json::json!({ "name": name, "scopes": record.scopes }),
            ),
        };
        self.emit(
            Self::event(event, by, client)
                .namespace(by.name())
                .target(&record.id)
                .details(details),
        );
        Ok((record, generated.token))
    }

    pub async fn revoke_app_token(
        &self,
        by: &Identity,
        client: &ClientInfo,
        id: &str,
    ) -> Result<(), AuthError> {
        self.revoke_token(by, client, TokenKind::App, id).await
    }

    pub async fn revoke_api_token(
        &self,
        by: &Identity,
        client: &ClientInfo,
        id: &str,
    ) -> Result<(), AuthError> {
        self.revoke_token(by, client, TokenKind::Api, id).await
    }

    /// Revokes one of the caller's tokens; revoking a revoked token changes nothing.
    async fn revoke_token(
        &self,
        by: &Identity,
        client: &ClientInfo,
        kind: TokenKind,
        id: &str,
    ) -> Result<(), AuthError> {
        let token = self.own_token(kind, by, id).await?;
        if self
            .store()
            .revoke_token(kind, &token.id, now_millis())
            .await?
        {
            let event = match kind {
                TokenKind::App => "apptoken.revoke",
                TokenKind::Api => "apitoken.revoke",
            };
            self.emit(
                Self::event(event, by, client)
                    .namespace(by.name())
                    .target(&token.id),
            );
        }
        Ok(())
    }

    // --- repositories ---------------------------------------------------------------------

    /// Creates the repository `namespace/name` (the namespace must exist). The creator gets
    /// `admin` on it unless it administers the namespace anyway.
    pub async fn create_repository(
        &self,
        by: &Identity,
        client: &ClientInfo,
        namespace: &str,
        name: &str,
        visibility: Visibility,
    ) -> Result<RepositoryInfo, AuthError> {
        let ns = self.namespace(namespace).await?;
        let full = format!("{}/{name}", ns.name);
        RepoName::parse(&full, MAX_REPOSITORY_LEN)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let repo = self
            .store()
            .create_repository(&full, visibility)
            .await
            .map_err(stored)?;
        self.emit(
            Self::event("repository.create", by, client)
                .repository(&full)
                .details(serde_json::json!({ "visibility": visibility })),
        );
        self.grant_creator(by, client, &ns, &repo).await?;
        Ok(repo)
    }

    /// Gives the creator of a repository `admin` on it, unless it administers the namespace
    /// (then it has everything there already). The question is about the account, not the
    /// credential it used: a token's scopes limit the token, the grant is the account's.
    async fn grant_creator(
        &self,
        by: &Identity,
        client: &ClientInfo,
        namespace: &Account,
        repo: &RepositoryInfo,
    ) -> Result<(), AuthError> {
        let Some(id) = by.account_id() else {
            return Ok(());
        };
        if by.is_superuser() {
            return Ok(());
        }
        let facts = self
            .store()
            .access_facts(Some(id), &namespace.name, &repo.name)
            .await?;
        let account = Identity {
            principal: by.principal.clone(),
            credential: Credential::None,
        };
        if access::decide_namespace(&account, &facts, Action::Admin) {
            return Ok(());
        }
        self.store()
            .set_grant(repo.id, &Grantee::Account(id), RepoRole::Admin)
            .await?;
        self.emit(
            Self::event("permission.set", by, client)
                .repository(&repo.name)
                .target(by.name())
                .details(serde_json::json!({ "role": RepoRole::Admin, "reason": "creator" })),
        );
        Ok(())
    }

    /// Deletes a repository's metadata (content, tags, grants); blob bytes are left to
    /// garbage collection.
    pub async fn delete_repository(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
    ) -> Result<(), AuthError> {
        if !self.store().delete_repository(name).await? {
            return Err(AuthError::NotFound(format!("repository {}", shown(name))));
        }
        self.emit(Self::event("repository.delete", by, client).repository(name));
        Ok(())
    }

    pub async fn set_visibility(
        &self,
        by: &Identity,
        client: &ClientInfo,
        name: &str,
        visibility: Visibility,
    ) -> Result<(), AuthError> {
        if !self.store().set_visibility(name, visibility).await? {
            return Err(AuthError::NotFound(format!("repository {}", shown(name))));
        }
        self.emit(
            Self::event("repository.visibility", by, client)
                .repository(name)
                .details(serde_json::json!({ "visibility": visibility })),
        );
        Ok(())
    }

    /// Called before content is pushed to `repository` by an identity already authorized to
    /// push there: creates the repository (private) if it does not exist, granting `admin` on
    /// it to a creator who would not otherwise administer it; for a superuser, also creates
    /// a missing namespace as an organization.
    pub async fn prepare_push(
        &self,
        identity: &Identity,
        repository: &str,
    ) -> Result<(), AuthError> {
        let store = self.store();
        // The hot path: every push of an existing repository stops here.
        if store.repository_info(repository).await?.is_some() {
            return Ok(());
        }
        let client = ClientInfo::default();
        let ns_name = namespace_of(repository);
        let namespace = match store.account(ns_name).await? {
            Some(ns) if ns.kind != AccountKind::Robot => ns,
            Some(_) => return Err(AuthError::Denied),
            None => {
                let creator = match identity.principal {
                    Principal::User {
                        id,
                        superuser: true,
                        ..
                    } => id,
                    _ => return Err(AuthError::Denied),
                };
                validate_namespace(ns_name)?;
                match self
                    .create_organization_owned_by(ns_name, None, creator)
                    .await
                {
                    Ok(org) => {
                        self.emit(
                            Self::event("org.create", identity, &client)
                                .namespace(ns_name)
                                .target(ns_name)
                                .details(serde_json::json!({ "via": "push" })),
                        );
                        org
                    }
                    // A concurrent push created it.
                    Err(AuthError::Conflict(_)) => self.namespace(ns_name).await?,
                    Err(e) => return Err(e),
                }
            }
        };
        let repo = match store
            .create_repository(repository, Visibility::Private)
            .await
        {
            Ok(repo) => repo,
            Err(MetaError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.emit(
            Self::event("repository.create", identity, &client)
                .repository(repository)
                .details(serde_json::json!({ "visibility": Visibility::Private, "via": "push" })),
        );
        self.grant_creator(identity, &client, &namespace, &repo)
            .await
    }

    // --- grants ---------------------------------------------------------------------------

    /// Grants `role` on a repository to a user, or to a robot of the repository's namespace.
    pub async fn set_user_grant(
        &self,
        by: &Identity,
        client: &ClientInfo,
        repository: &str,
        grantee: &str,
        role: RepoRole,
    ) -> Result<Grant, AuthError> {
        let repo = self.repository(repository).await?;
        let account = self.grantable_account(repository, grantee).await?;
        let grant = Grant {
            grantee_name: account.name.clone(),
            grantee: Grantee::Account(account.id),
            grantee_kind: Some(account.kind),
            role,
        };
        self.store_grant(by, client, &repo, grant).await
    }

    /// Grants `role` on a repository to a team of the repository's organization.
    pub async fn set_team_grant(
        &self,
        by: &Identity,
        client: &ClientInfo,
        repository: &str,
        team: &str,
        role: RepoRole,
    ) -> Result<Grant, AuthError> {
        let repo = self.repository(repository).await?;
        let team = self.repository_team(repository, team).await?;
        let grant = Grant {
            grantee_name: team.name,
            grantee: Grantee::Team(team.id),
            grantee_kind: None,
            role,
        };
        self.store_grant(by, client, &repo, grant).await
    }

    async fn store_grant(
        &self,
        by: &Identity,
        client: &ClientInfo,
        repo: &RepositoryInfo,
        grant: Grant,
    ) -> Result<Grant, AuthError> {
        self.store()
            .set_grant(repo.id, &grant.grantee, grant.role)
            .await
            .map_err(stored)?;
        self.emit(
            Self::event("permission.set", by, client)
                .repository(&repo.name)
                .target(&grant.grantee_name)
                .details(
                    serde_json::json!({ "grantee": grantee_kind(&grant), "role": grant.role }),
                ),
        );
        Ok(grant)
    }

    pub async fn remove_user_grant(
        &self,
        by: &Identity,
        client: &ClientInfo,
        repository: &str,
        grantee: &str,
    ) -> Result<(), AuthError> {
        let repo = self.repository(repository).await?;
        let account = self
            .store()
            .account(grantee)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("account {}", shown(grantee))))?;
        self.remove_grant(
            by,
            client,
            &repo,
            Grantee::Account(account.id),
            &account.name,
        )
        .await
    }

    pub async fn remove_team_grant(
        &self,
        by: &Identity,
        client: &ClientInfo,
        repository: &str,
        team: &str,
    ) -> Result<(), AuthError> {
        let repo = self.repository(repository).await?;
        let team = self.repository_team(repository, team).await?;
        self.remove_grant(by, client, &repo, Grantee::Team(team.id), &team.name)
            .await
    }

    async fn remove_grant(
        &self,
        by: &Identity,
        client: &ClientInfo,
        repo: &RepositoryInfo,
        grantee: Grantee,
        name: &str,
    ) -> Result<(), AuthError> {
        if !self.store().remove_grant(repo.id, &grantee).await? {
            return Err(AuthError::NotFound(format!("permission of {name}")));
        }
        self.emit(
            Self::event("permission.remove", by, client)
                .repository(&repo.name)
                .target(name),
        );
        Ok(())
    }

    /// A user, or a robot of the repository's namespace (a robot elsewhere could be handed
    /// access its own namespace's administrators never agreed to).
    async fn grantable_account(&self, repository: &str, name: &str) -> Result<Account, AuthError> {
        let account = self
            .store()
            .account(name)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("account {}", shown(name))))?;
        match account.kind {
            AccountKind::User => Ok(account),
            AccountKind::Robot => {
                let ns = self.namespace(namespace_of(repository)).await?;
                if account.owner_id == Some(ns.id) {
                    Ok(account)
                } else {
                    Err(AuthError::Invalid(format!(
                        "robot {name} belongs to another namespace than {}",
                        ns.name
                    )))
                }
            }
            AccountKind::Organization => Err(AuthError::Invalid(format!(
                "{name} is an organization: grant to its teams instead"
            ))),
        }
    }

    /// A team of the organization the repository belongs to.
    async fn repository_team(&self, repository: &str, team: &str) -> Result<Team, AuthError> {
        let ns = self.namespace(namespace_of(repository)).await?;
        if ns.kind != AccountKind::Organization {
            return Err(AuthError::Invalid(format!(
                "{} is a user's namespace; teams exist only in organizations",
                ns.name
            )));
        }
        self.team_in(&ns, team).await
    }
}

fn grantee_kind(grant: &Grant) -> &'static str {
    match grant.grantee_kind {
        Some(kind) => kind.as_str(),
        None => "team",
    }
}
