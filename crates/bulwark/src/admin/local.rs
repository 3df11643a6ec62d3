//! The local backend: `Accounts` over the metadata database named by the configuration,
//! as a local operator with superuser rights (whoever can read the data directory or the
//! database URL can change it anyway). It takes no lock on the data directory: the
//! database is made for several processes (SQLite in WAL mode with a busy timeout, or
//! PostgreSQL), so a running server sees each change at once.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bulwark_audit::ActionLog;
use bulwark_auth::access::namespace_of;
use bulwark_auth::{Accounts, AuthError, ClientInfo, Credential, Identity, Principal};
use bulwark_events::{Actor, Origin};
use bulwark_meta::{
    Account, AccountKind, RepoRole, RepositoryInfo, SqlMetaStore, TeamRole, Visibility,
};
use bulwark_registry::Registry;
use tokio::sync::OnceCell;

use super::backend::{
    AppToken, Backend, Grantee, Member, NewAppToken, Organization, Permission, RepoPath,
    Repository, Robot, RobotToken, Team, User,
};
use crate::config::Config;
use crate::serve;

pub struct Local {
    accounts: Arc<Accounts>,
    operator: Identity,
    operator_id: i64,
    client: ClientInfo,
    /// For the lifecycle commands: the registry over `meta`, opened when first needed (the
    /// account commands need no blob store).
    config: Config,
    meta: Arc<SqlMetaStore>,
    registry: OnceCell<Arc<Registry>>,
    /// Where the commands' events go, as a server's do.
    action_log: ActionLog,
}

impl Local {
    pub async fn open(config: &Config) -> Result<Local> {
        // Opening would create an empty database; a missing one means a wrong directory.
        if config.database.url.is_empty() && !config.sqlite_path().exists() {
            bail!(
                "no registry database at {}: give the data directory with --data-dir or the \
                 configuration with --config (as for `bulwark serve`), or --server for a \
                 remote registry",
                config.sqlite_path().display()
            );
        }
        let (meta, accounts, action_log) = serve::open_accounts(config).await?;
        let operator = operator(&accounts).await?;
        Ok(Local {
            accounts,
            operator_id: operator.id,
            operator: identity(operator, true),
            client: ClientInfo {
                address: None,
                user_agent: Some(format!("bulwark-cli/{} (local)", env!("CARGO_PKG_VERSION"))),
            },
            config: config.clone(),
            meta,
            registry: OnceCell::new(),
            action_log,
        })
    }

    /// Writes out the events still queued for the action log.
    pub async fn close(&self) {
        self.action_log.close().await;
    }

    /// The registry of the configured storage; its events go to the action log, like the
    /// accounts'.
    pub(super) async fn registry(&self) -> Result<&Registry> {
        let registry = self
            .registry
            .get_or_try_init(|| {
                serve::open_registry(&self.config, self.meta.clone(), self.action_log.sink())
            })
            .await?;
        Ok(registry)
    }

    pub(super) fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Who the lifecycle events name: the operator, from this host.
    pub(super) fn actor(&self) -> (Actor, Origin) {
        let origin = Origin {
            address: self.client.address,
            user_agent: self.client.user_agent.clone(),
        };
        (self.operator.actor(), origin)
    }

    /// The user `name`, for the operations that belong to the acting account (application
    /// tokens are made for the account that makes them).
    async fn as_user(&self, name: &str) -> Result<Identity> {
        if name == self.operator.name() {
            return Ok(self.operator.clone());
        }
        let user = self.accounts.user(name).await?;
        let superuser = user.superuser;
        Ok(identity(user, superuser))
    }

    /// A team with its member count.
    async fn team(&self, org: &str, team: &str) -> Result<Team> {
        let (team, members) = self.accounts.team_members(org, team).await?;
        Ok(team_summary(team, members.len()))
    }
}

fn team_summary(team: bulwark_meta::Team, member_count: usize) -> Team {
    Team {
        name: team.name,
        role: team.role,
        description: team.description,
        member_count,
    }
}

fn identity(user: Account, superuser: bool) -> Identity {
    Identity {
        principal: Principal::User {
            id: user.id,
            name: user.name,
            superuser,
        },
        credential: Credential::None,
    }
}

/// `admin`, or if it is gone, the first enabled superuser.
async fn operator(accounts: &Accounts) -> Result<Account> {
    let user = match accounts.user(bulwark_auth::ADMIN_USER).await {
        Ok(user) => user,
        Err(AuthError::NotFound(_)) => accounts
            .users()
            .await?
            .into_iter()
            .find(|u| u.superuser && u.enabled)
            .context(
                "local commands act as the superuser admin, and this database has no \
                 superuser: `bulwark serve` creates admin at its first start",
            )?,
        Err(e) => return Err(e.into()),
    };
    Ok(user)
}

impl From<Account> for User {
    fn from(a: Account) -> User {
        User {
            username: a.name,
            email: a.email,
            super_user: a.superuser,
            enabled: a.enabled,
            created: a.created_at,
        }
    }
}

impl From<Account> for Robot {
    fn from(a: Account) -> Robot {
        Robot {
            name: a.name,
            description: a.description,
            created: a.created_at,
        }
    }
}

impl From<RepositoryInfo> for Repository {
    fn from(r: RepositoryInfo) -> Repository {
        let namespace = namespace_of(&r.name).to_owned();
        let name = r
            .name
            .strip_prefix(&format!("{namespace}/"))
            .unwrap_or(&r.name)
            .to_owned();
        Repository {
            namespace,
            name,
            is_public: r.visibility == Visibility::Public,
            created: r.created_at,
        }
    }
}

impl From<bulwark_meta::TokenRecord> for AppToken {
    fn from(t: bulwark_meta::TokenRecord) -> AppToken {
        AppToken {
            uuid: t.id,
            title: t.name,
            created: t.created_at,
            last_accessed: t.last_used_at,
            expiration: t.expires_at,
            revoked: t.revoked_at,
        }
    }
}

impl Backend for Local {
    async fn acting_user(&self) -> Result<String> {
        Ok(self.operator.name().to_owned())
    }

    async fn users(&self) -> Result<Vec<User>> {
        let users = self.accounts.users().await?;
        Ok(users.into_iter().map(User::from).collect())
    }

    async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        password: &str,
        superuser: bool,
    ) -> Result<User> {
        let (by, client) = (&self.operator, &self.client);
        let user = self
            .accounts
            .create_user(by, client, name, email, password, superuser)
            .await?;
        Ok(user.into())
    }

    async fn set_password(&self, name: &str, password: &str) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        Ok(self
            .accounts
            .set_password(by, client, name, password)
            .await?)
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<User> {
        let (by, client) = (&self.operator, &self.client);
        let user = self.accounts.set_enabled(by, client, name, enabled).await?;
        Ok(user.into())
    }

    async fn delete_user(&self, name: &str) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        Ok(self.accounts.delete_user(by, client, name).await?)
    }

    /// Every organization (the operator has superuser rights), with the operator's role.
    async fn organizations(&self) -> Result<Vec<Organization>> {
        let roles: HashMap<String, TeamRole> = self
            .accounts
            .memberships(self.operator_id)
            .await?
            .into_iter()
            .map(|(org, role)| (org.name, role))
            .collect();
        // `Accounts` lists users only; organizations are read from the store directly.
        let store = self.accounts.authenticator().store();
        let orgs = store.accounts(AccountKind::Organization, None).await?;
        Ok(orgs
            .into_iter()
            .map(|org| Organization {
                role: roles.get(&org.name).copied(),
                name: org.name,
            })
            .collect())
    }

    async fn create_organization(&self, name: &str) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        self.accounts
            .create_organization(by, client, name, None)
            .await?;
        Ok(())
    }

    async fn delete_organization(&self, name: &str) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        Ok(self.accounts.delete_organization(by, client, name).await?)
    }

    async fn teams(&self, org: &str) -> Result<Vec<Team>> {
        let teams = self.accounts.teams_with_members(org).await?;
        Ok(teams
            .into_iter()
            .map(|(team, members)| team_summary(team, members.len()))
            .collect())
    }

    async fn set_team(&self, org: &str, team: &str, role: TeamRole) -> Result<(Team, bool)> {
        let (by, client) = (&self.operator, &self.client);
        let (team, created) = self
            .accounts
            .set_team(by, client, org, team, role, None)
            .await?;
        Ok((self.team(org, &team.name).await?, created))
    }

    async fn delete_team(&self, org: &str, team: &str) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        Ok(self.accounts.delete_team(by, client, org, team).await?)
    }

    async fn members(&self, org: &str, team: &str) -> Result<Vec<Member>> {
        let (_, members) = self.accounts.team_members(org, team).await?;
        Ok(members
            .into_iter()
            .map(|m| Member {
                kind: m.kind.as_str().to_owned(),
                name: m.name,
            })
            .collect())
    }

    async fn add_member(&self, org: &str, team: &str, member: &str) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        self.accounts
            .add_team_member(by, client, org, team, member)
            .await?;
        Ok(())
    }

    async fn remove_member(&self, org: &str, team: &str, member: &str) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        Ok(self
            .accounts
            .remove_team_member(by, client, org, team, member)
            .await?)
    }

    async fn robots(&self, namespace: &str) -> Result<Vec<Robot>> {
        let robots = self.accounts.robots(namespace).await?;
        Ok(robots.into_iter().map(Robot::from).collect())
    }

    async fn create_robot(&self, namespace: &str, short: &str) -> Result<RobotToken> {
        let (by, client) = (&self.operator, &self.client);
        let (robot, token) = self
            .accounts
            .create_robot(by, client, namespace, short, None)
            .await?;
        Ok(RobotToken {
            robot: robot.into(),
            token,
        })
    }

    async fn regenerate_robot(&self, namespace: &str, short: &str) -> Result<RobotToken> {
        let (by, client) = (&self.operator, &self.client);
        let (robot, token) = self
            .accounts
            .regenerate_robot_token(by, client, namespace, short)
            .await?;
        Ok(RobotToken {
            robot: robot.into(),
            token,
        })
    }

    async fn delete_robot(&self, namespace: &str, short: &str) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        Ok(self
            .accounts
            .delete_robot(by, client, namespace, short)
            .await?)
    }

    async fn repositories(&self, namespace: &str) -> Result<Vec<Repository>> {
        let repos = self
            .accounts
            .visible_repositories(&self.operator, namespace)
            .await?;
        Ok(repos.into_iter().map(Repository::from).collect())
    }

    async fn create_repository(
        &self,
        repo: &RepoPath,
        visibility: Visibility,
    ) -> Result<Repository> {
        let (by, client) = (&self.operator, &self.client);
        let created = self
            .accounts
            .create_repository(by, client, &repo.namespace, &repo.name, visibility)
            .await?;
        Ok(created.into())
    }

    async fn delete_repository(&self, repo: &RepoPath) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        let name = repo.to_string();
        Ok(self.accounts.delete_repository(by, client, &name).await?)
    }

    async fn set_visibility(&self, repo: &RepoPath, visibility: Visibility) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        let name = repo.to_string();
        Ok(self
            .accounts
            .set_visibility(by, client, &name, visibility)
            .await?)
    }

    async fn permissions(&self, repo: &RepoPath) -> Result<Vec<Permission>> {
        let grants = self.accounts.grants(&repo.to_string()).await?;
        Ok(grants
            .into_iter()
            .map(|g| Permission {
                kind: g
                    .grantee_kind
                    .map_or("team", AccountKind::as_str)
                    .to_owned(),
                name: g.grantee_name,
                role: g.role,
            })
            .collect())
    }

    async fn grant(&self, repo: &RepoPath, grantee: &Grantee, role: RepoRole) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        let name = repo.to_string();
        match grantee {
            Grantee::User(user) => {
                self.accounts
                    .set_user_grant(by, client, &name, user, role)
                    .await?
            }
            Grantee::Team(team) => {
                self.accounts
                    .set_team_grant(by, client, &name, team, role)
                    .await?
            }
        };
        Ok(())
    }

    async fn revoke(&self, repo: &RepoPath, grantee: &Grantee) -> Result<()> {
        let (by, client) = (&self.operator, &self.client);
        let name = repo.to_string();
        match grantee {
            Grantee::User(user) => {
                self.accounts
                    .remove_user_grant(by, client, &name, user)
                    .await?
            }
            Grantee::Team(team) => {
                self.accounts
                    .remove_team_grant(by, client, &name, team)
                    .await?
            }
        }
        Ok(())
    }

    async fn app_tokens(&self, user: &str) -> Result<Vec<AppToken>> {
        let by = self.as_user(user).await?;
        let tokens = self.accounts.app_tokens(&by).await?;
        Ok(tokens.into_iter().map(AppToken::from).collect())
    }

    async fn create_app_token(
        &self,
        user: &str,
        title: &str,
        expiration: Option<i64>,
    ) -> Result<NewAppToken> {
        let by = self.as_user(user).await?;
        let (record, token_code) = self
            .accounts
            .create_app_token(&by, &self.client, title, expiration)
            .await?;
        Ok(NewAppToken {
            token: record.into(),
            token_code,
        })
    }

    async fn revoke_app_token(&self, user: &str, id: &str) -> Result<()> {
        let by = self.as_user(user).await?;
        Ok(self
            .accounts
            .revoke_app_token(&by, &self.client, id)
            .await?)
    }
}
