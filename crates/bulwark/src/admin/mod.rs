//! `bulwark user|org|robot|repo|token|tag|retention|quota|gc …`: administration of accounts, organizations,
//! robots, repositories, application tokens and the tag lifecycle from the command line.
//! One set of commands over two [`Backend`]s: the local metadata database (the
//! configuration of `serve`: `--config`, `--data-dir`, `BULWARK_…`) or, with `--server`, a
//! running registry's management API.
//!
//! Secrets appear only once: the generated password of `user add`/`user passwd`, the token
//! of `robot add`/`robot regenerate` and of `token add`. Passwords are read from stdin,
//! never from arguments (they would show in `ps` and shell histories).

mod backend;
mod lifecycle;
mod local;
mod quota;
mod remote;

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bulwark_meta::{RepoRole, TeamRole, Visibility, now_millis};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use self::backend::{Backend, Grantee, RepoPath};
use self::lifecycle::{
    ImmutabilityCommand, Lifecycle, RetentionCommand, TagCommand, TimeMachineCommand,
};
use self::local::Local;
use self::quota::{QuotaCommand, Quotas};
use self::remote::Login;
pub(crate) use self::remote::Remote;
use crate::config::{Config, Overrides};

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Users: create, set passwords, list, enable, disable, delete.
    User {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Organizations, their teams and team members.
    Org {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Robot accounts (`namespace+name`) and their tokens.
    Robot {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: RobotCommand,
    },
    /// Repositories, their visibility and permissions.
    Repo {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: RepoCommand,
    },
    /// Application tokens: passwords for registry clients that can be revoked one by one.
    Token {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Tags: history within the Time Machine window, restore, expiry, immutability.
    Tag {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: TagCommand,
    },
    /// Retention (auto-prune) policies of namespaces and repositories, and running them.
    Retention {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// The Time Machine window of a namespace: how long tag history can be restored.
    Timemachine {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: TimeMachineCommand,
    },
    /// Immutability rules of namespaces and repositories: tag patterns made immutable on
    /// push.
    Immutability {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: ImmutabilityCommand,
    },
    /// Namespace quotas: size, warning and reject limits, usage (superusers).
    Quota {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: QuotaCommand,
    },
    /// Collect garbage now and report what was reclaimed (superusers).
    Gc {
        #[command(flatten)]
        target: Target,
    },
}

/// Where the commands act, and how they answer.
#[derive(Args, Clone)]
pub struct Target {
    /// Administer the registry at URL through its management API instead of the local
    /// database.
    #[arg(long, global = true, value_name = "URL", conflicts_with_all = ["config", "data_dir"])]
    server: Option<reqwest::Url>,
    /// With --server: log in as this user, with the password in BULWARK_PASSWORD or on
    /// stdin (--password-stdin). Without it, BULWARK_TOKEN holds an API token.
    #[arg(long, global = true, requires = "server")]
    username: Option<String>,
    /// Read passwords from stdin, one per line, in this order: the login password (with
    /// --username, unless BULWARK_PASSWORD is set), then the new password of `user add` or
    /// `user passwd`.
    #[arg(long, global = true)]
    password_stdin: bool,
    /// With --server: accept any TLS certificate (never in production). To trust a private
    /// CA instead, name its PEM file in SSL_CERT_FILE.
    #[arg(long, global = true, requires = "server")]
    insecure: bool,
    /// Local: TOML configuration file, as for `serve`.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Local: data directory, as for `serve` (default ./bulwark-data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Output for people (`text`) or scripts (`json`).
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; its password is generated and printed once unless --password-stdin.
    Add {
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Give the user superuser rights.
        #[arg(long)]
        superuser: bool,
    },
    /// Set a user's password: generated and printed once unless --password-stdin.
    Passwd { name: String },
    /// List users.
    List,
    /// Delete a user with its repositories, robots and tokens.
    Delete { name: String },
    /// Disable a user: it can no longer log in and its namespace is closed.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization; its `owners` team holds OWNER (default: the acting user:
    /// the caller with --server, the operator `admin` locally).
    Add {
        name: String,
        #[arg(long)]
        owner: Option<String>,
    },
    /// List organizations: every one locally, the caller's with --server.
    List,
    /// Delete an organization with its teams, robots and repositories.
    Delete { name: String },
    /// Teams of an organization.
    Team {
        #[command(subcommand)]
        command: TeamCommand,
    },
    /// Members of a team.
    Member {
        #[command(subcommand)]
        command: MemberCommand,
    },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team, or change the role of an existing one.
    Add {
        org: String,
        team: String,
        /// member, creator (may create repositories) or admin (administers the organization).
        #[arg(long, value_parser = lowercase::<TeamRole>)]
        role: TeamRole,
    },
    /// Delete a team (never `owners`).
    Delete { org: String, team: String },
    /// List the teams of an organization.
    List { org: String },
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Add a user, or a robot of the organization, to a team.
    Add {
        org: String,
        team: String,
        member: String,
    },
    /// Remove a member from a team.
    Remove {
        org: String,
        team: String,
        member: String,
    },
    /// List the members of a team.
    List { org: String, team: String },
}

#[derive(Subcommand)]
pub enum RobotCommand {
    /// Create the robot NAMESPACE+SHORT; its token is printed once.
    Add { namespace: String, short: String },
    /// Replace a robot's token (the old one stops working); the new one is printed once.
    Regenerate { namespace: String, short: String },
    /// Delete a robot.
    Delete { namespace: String, short: String },
    /// List the robots of a namespace.
    List { namespace: String },
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Create a repository (private unless --public).
    Add {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        #[arg(long)]
        public: bool,
    },
    /// List the repositories of a namespace.
    List { namespace: String },
    /// Delete a repository (its blobs are left to garbage collection).
    Delete {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
    },
    /// Make a repository public (anonymous pulls, when allowed) or private.
    Visibility {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        /// public or private
        #[arg(value_parser = lowercase::<Visibility>)]
        visibility: Visibility,
    },
    /// Grant read (pull), write (pull, push) or admin on a repository.
    Grant {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        #[command(flatten)]
        grantee: GranteeArgs,
        /// read, write or admin
        #[arg(value_parser = lowercase::<RepoRole>)]
        role: RepoRole,
    },
    /// Remove a user's, robot's or team's permission on a repository.
    Revoke {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
        #[command(flatten)]
        grantee: GranteeArgs,
    },
    /// List the permissions on a repository.
    Permissions {
        #[arg(value_parser = RepoPath::parse, value_name = "NAMESPACE/REPOSITORY")]
        repository: RepoPath,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct GranteeArgs {
    /// A user, or a robot of the repository's namespace (`namespace+short`).
    #[arg(long)]
    user: Option<String>,
    /// A team of the repository's organization.
    #[arg(long)]
    team: Option<String>,
}

impl GranteeArgs {
    fn grantee(self) -> Grantee {
        match (self.user, self.team) {
            (Some(user), None) => Grantee::User(user),
            (None, Some(team)) => Grantee::Team(team),
            _ => unreachable!("clap's group requires exactly one of --user and --team"),
        }
    }
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an application token, printed once: the password of `docker login` and the
    /// like, revocable on its own.
    Add {
        title: String,
        /// Lifetime: a number and s, m, h, d or w (`30d`); without it, the token lasts
        /// until revoked.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        expires_in: Option<Duration>,
        /// Local: the user the token is for (default: the operator `admin`). With
        /// --server, tokens are the caller's own.
        #[arg(long)]
        user: Option<String>,
    },
    /// List application tokens (revoked ones included).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an application token by its id.
    Revoke {
        id: String,
        #[arg(long)]
        user: Option<String>,
    },
}

/// Parses a value of an enum serialized in lowercase (the roles and visibilities), so the
/// command line accepts exactly what the API does.
fn lowercase<T: DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|e| e.to_string())
}

/// `30d`, `12h`, `90m`, `3600s`, `2w`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?}: a number and s, m, h, d or w, e.g. 30d");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(invalid()),
    };
    match n.checked_mul(unit_secs) {
        Some(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(invalid()),
    }
}

/// Passwords from stdin, one per line, in the order they are needed.
struct Stdin {
    enabled: bool,
}

impl Stdin {
    /// The next password, if --password-stdin was given.
    fn password(&self, what: &str) -> Result<Option<String>> {
        if !self.enabled {
            return Ok(None);
        }
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading stdin")?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            bail!("--password-stdin: no {what} on stdin (one password per line)");
        }
        Ok(Some(password.to_owned()))
    }
}

pub fn run(command: AdminCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(command))
}

async fn dispatch(command: AdminCommand) -> Result<()> {
    let (AdminCommand::User { target, .. }
    | AdminCommand::Org { target, .. }
    | AdminCommand::Robot { target, .. }
    | AdminCommand::Repo { target, .. }
    | AdminCommand::Token { target, .. }
    | AdminCommand::Tag { target, .. }
    | AdminCommand::Retention { target, .. }
    | AdminCommand::Timemachine { target, .. }
    | AdminCommand::Immutability { target, .. }
    | AdminCommand::Quota { target, .. }
    | AdminCommand::Gc { target }) = &command;
    let target = target.clone();
    let format = target.format;
    let stdin = Stdin {
        enabled: target.password_stdin,
    };
    let output = match target.connect_with(&stdin)? {
        Connection::Remote(remote) => execute(&remote, command, &stdin).await?,
        Connection::Local(overrides) => {
            let config = Config::load(&overrides)?;
            crate::serve::init_logging(&config)?;
            let local = Local::open(&config).await?;
            let output = execute(&local, command, &stdin).await;
            local.close().await;
            output?
        }
    };
    output.print(format)
}

/// Where a command acts: a running registry's management API, logged in, or the local
/// configuration.
pub(crate) enum Connection {
    Remote(Remote),
    Local(Overrides),
}

impl Target {
    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// Logs in to `--server`, or names the local configuration.
    pub(crate) fn connect(self) -> Result<Connection> {
        let stdin = Stdin {
            enabled: self.password_stdin,
        };
        self.connect_with(&stdin)
    }

    /// The same, the login password read from `stdin` first when it is read there.
    fn connect_with(self, stdin: &Stdin) -> Result<Connection> {
        Ok(match self.server {
            Some(server) => {
                let login = login(self.username, stdin)?;
                Connection::Remote(Remote::new(server, login, self.insecure)?)
            }
            None => Connection::Local(Overrides {
                config: self.config,
                listen: None,
                data_dir: self.data_dir,
            }),
        })
    }
}

/// The remote credentials: `--username` with its password, or an API token.
fn login(username: Option<String>, stdin: &Stdin) -> Result<Login> {
    let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    match username {
        Some(username) => {
            let password = match env("BULWARK_PASSWORD") {
                Some(password) => password,
                None => stdin.password("login password")?.with_context(|| {
                    format!(
                        "no password for {username}: set BULWARK_PASSWORD or pass it on stdin \
                         with --password-stdin"
                    )
                })?,
            };
            Ok(Login::Password { username, password })
        }
        None => env("BULWARK_TOKEN").map(Login::ApiToken).context(
            "--server needs credentials: --username (password in BULWARK_PASSWORD or on \
             stdin with --password-stdin), or an API token in BULWARK_TOKEN",
        ),
    }
}

/// What a command prints: text for people, JSON for scripts.
pub(crate) struct Output {
    text: String,
    json: serde_json::Value,
}

impl Output {
    pub(crate) fn new(text: impl Into<String>, json: impl Serialize) -> Result<Output> {
        Ok(Output {
            text: text.into(),
            json: serde_json::to_value(json)?,
        })
    }

    /// An action with nothing to show but that it was done.
    fn done(message: String) -> Result<Output> {
        let json = json!({ "ok": true, "message": message });
        Output::new(message, json)
    }

    pub(crate) fn print(self, format: Format) -> Result<()> {
        let text = match format {
            Format::Text => self.text,
            Format::Json => serde_json::to_string_pretty(&self.json)?,
        };
        println!("{}", text.trim_end());
        Ok(())
    }
}

/// A secret shown once, with what to do about it.
fn secret_line(label: &str, secret: &str) -> String {
    format!("{label}: {secret}\n(shown once: store it now; only its hash is kept)")
}

async fn execute(
    backend: &(impl Backend + Lifecycle + Quotas),
    command: AdminCommand,
    stdin: &Stdin,
) -> Result<Output> {
    match command {
        AdminCommand::User { command, .. } => user(backend, command, stdin).await,
        AdminCommand::Org { command, .. } => org(backend, command).await,
        AdminCommand::Robot { command, .. } => robot(backend, command).await,
        AdminCommand::Repo { command, .. } => repo(backend, command).await,
        AdminCommand::Token { command, .. } => token(backend, command).await,
        AdminCommand::Tag { command, .. } => lifecycle::tag(backend, command).await,
        AdminCommand::Retention { command, .. } => lifecycle::retention(backend, command).await,
        AdminCommand::Timemachine { command, .. } => {
            lifecycle::time_machine(backend, command).await
        }
        AdminCommand::Immutability { command, .. } => {
            lifecycle::immutability(backend, command).await
        }
        AdminCommand::Quota { command, .. } => quota::quota(backend, command).await,
        AdminCommand::Gc { .. } => lifecycle::gc(backend).await,
    }
}

/// The password from stdin, or a generated one (returned as well, to be shown once).
fn new_password(stdin: &Stdin, name: &str) -> Result<(String, Option<String>)> {
    match stdin.password(&format!("new password for {name}"))? {
        Some(password) => Ok((password, None)),
        None => {
            // The same strength as the first superuser's generated password.
            let generated = bulwark_auth::secret::random_string::<18>()?;
            Ok((generated.clone(), Some(generated)))
        }
    }
}

async fn user(backend: &impl Backend, command: UserCommand, stdin: &Stdin) -> Result<Output> {
    match command {
        UserCommand::Add {
            name,
            email,
            superuser,
        } => {
            let (password, generated) = new_password(stdin, &name)?;
            let user = backend
                .create_user(&name, email.as_deref(), &password, superuser)
                .await?;
            let mut text = format!("created user {}", user.username);
            if user.super_user {
                text.push_str(" (superuser)");
            }
            if let Some(generated) = &generated {
                write!(text, "\n{}", secret_line("password", generated))?;
            }
            Output::new(text, json!({ "user": user, "password": generated }))
        }
        UserCommand::Passwd { name } => {
            let (password, generated) = new_password(stdin, &name)?;
            backend.set_password(&name, &password).await?;
            let mut text = format!("changed the password of {name}");
            if let Some(generated) = &generated {
                write!(text, "\n{}", secret_line("password", generated))?;
            }
            Output::new(text, json!({ "username": name, "password": generated }))
        }
        UserCommand::List => {
            let users = backend.users().await?;
            let rows = users.iter().map(|u| {
                vec![
                    u.username.clone(),
                    u.email.clone().unwrap_or_else(|| "-".into()),
                    yes_no(u.super_user),
                    yes_no(u.enabled),
                    utc(u.created),
                ]
            });
            let text = table(&["NAME", "EMAIL", "SUPERUSER", "ENABLED", "CREATED"], rows);
            Output::new(text, users)
        }
        UserCommand::Delete { name } => {
            backend.delete_user(&name).await?;
            Output::done(format!("deleted user {name}"))
        }
        UserCommand::Disable { name } => {
            let user = backend.set_enabled(&name, false).await?;
            Output::new(format!("disabled user {name}"), user)
        }
        UserCommand::Enable { name } => {
            let user = backend.set_enabled(&name, true).await?;
            Output::new(format!("enabled user {name}"), user)
        }
    }
}

async fn org(backend: &impl Backend, command: OrgCommand) -> Result<Output> {
    match command {
        OrgCommand::Add { name, owner } => {
            let me = backend.acting_user().await?;
            backend.create_organization(&name).await?;
            let owner = owner.unwrap_or_else(|| me.clone());
            if owner != me {
                hand_over(backend, &name, &me, &owner).await?;
            }
            Output::new(
                format!("created organization {name} (owners: {owner})"),
                json!({ "name": name, "owner": owner }),
            )
        }
        OrgCommand::List => {
            let orgs = backend.organizations().await?;
            let rows = orgs
                .iter()
                .map(|o| vec![o.name.clone(), o.role.map_or("-".into(), lower)]);
            Output::new(table(&["NAME", "YOUR ROLE"], rows), orgs)
        }
        OrgCommand::Delete { name } => {
            backend.delete_organization(&name).await?;
            Output::done(format!("deleted organization {name}"))
        }
        OrgCommand::Team {
            command: TeamCommand::Add { org, team, role },
        } => {
            let (team, created) = backend.set_team(&org, &team, role).await?;
            let text = if created {
                format!("created team {} in {org} ({})", team.name, lower(team.role))
            } else {
                format!(
                    "team {} of {org} has the role {}",
                    team.name,
                    lower(team.role)
                )
            };
            Output::new(text, json!({ "team": team, "created": created }))
        }
        OrgCommand::Team {
            command: TeamCommand::Delete { org, team },
        } => {
            backend.delete_team(&org, &team).await?;
            Output::done(format!("deleted team {team} of {org}"))
        }
        OrgCommand::Team {
            command: TeamCommand::List { org },
        } => {
            let teams = backend.teams(&org).await?;
            let rows = teams.iter().map(|t| {
                vec![
                    t.name.clone(),
                    lower(t.role),
                    t.member_count.to_string(),
                    t.description.clone().unwrap_or_default(),
                ]
            });
            let text = table(&["NAME", "ROLE", "MEMBERS", "DESCRIPTION"], rows);
            Output::new(text, teams)
        }
        OrgCommand::Member {
            command: MemberCommand::Add { org, team, member },
        } => {
            backend.add_member(&org, &team, &member).await?;
            Output::done(format!("{member} is a member of team {team} of {org}"))
        }
        OrgCommand::Member {
            command: MemberCommand::Remove { org, team, member },
        } => {
            backend.remove_member(&org, &team, &member).await?;
            Output::done(format!("removed {member} from team {team} of {org}"))
        }
        OrgCommand::Member {
            command: MemberCommand::List { org, team },
        } => {
            let members = backend.members(&org, &team).await?;
            let rows = members.iter().map(|m| vec![m.name.clone(), m.kind.clone()]);
            Output::new(table(&["NAME", "KIND"], rows), members)
        }
    }
}

/// Makes `owner` the only member of a new organization's owners team in place of the
/// acting user (organizations are created owned by whoever creates them). On failure the
/// organization is deleted again rather than left with owners nobody asked for.
async fn hand_over(backend: &impl Backend, org: &str, me: &str, owner: &str) -> Result<()> {
    let handed = async {
        backend
            .add_member(org, bulwark_auth::OWNERS_TEAM, owner)
            .await?;
        backend
            .remove_member(org, bulwark_auth::OWNERS_TEAM, me)
            .await
    }
    .await;
    let Err(e) = handed else {
        return Ok(());
    };
    match backend.delete_organization(org).await {
        Ok(()) => Err(e.context(format!(
            "could not make {owner} the owner of {org}; the organization was not kept"
        ))),
        Err(undo) => Err(e.context(format!(
            "could not make {owner} the owner of {org}, nor delete it again ({undo:#}): \
             delete it with `bulwark org delete {org}`"
        ))),
    }
}

async fn robot(backend: &impl Backend, command: RobotCommand) -> Result<Output> {
    let (verb, robot) = match command {
        RobotCommand::Add { namespace, short } => {
            ("created", backend.create_robot(&namespace, &short).await?)
        }
        RobotCommand::Regenerate { namespace, short } => (
            "regenerated the token of",
            backend.regenerate_robot(&namespace, &short).await?,
        ),
        RobotCommand::Delete { namespace, short } => {
            backend.delete_robot(&namespace, &short).await?;
            return Output::done(format!("deleted robot {namespace}+{short}"));
        }
        RobotCommand::List { namespace } => {
            let robots = backend.robots(&namespace).await?;
            let rows = robots.iter().map(|r| {
                vec![
                    r.name.clone(),
                    utc(r.created),
                    r.description.clone().unwrap_or_default(),
                ]
            });
            let text = table(&["NAME", "CREATED", "DESCRIPTION"], rows);
            return Output::new(text, robots);
        }
    };
    let text = format!(
        "{verb} robot {}\n{}",
        robot.robot.name,
        secret_line("token", &robot.token)
    );
    Output::new(text, robot)
}

async fn repo(backend: &impl Backend, command: RepoCommand) -> Result<Output> {
    match command {
        RepoCommand::Add { repository, public } => {
            let visibility = if public {
                Visibility::Public
            } else {
                Visibility::Private
            };
            let created = backend.create_repository(&repository, visibility).await?;
            let text = format!("created repository {repository} ({})", lower(visibility));
            Output::new(text, created)
        }
        RepoCommand::List { namespace } => {
            let repos = backend.repositories(&namespace).await?;
            let rows = repos.iter().map(|r| {
                vec![
                    format!("{}/{}", r.namespace, r.name),
                    if r.is_public { "public" } else { "private" }.into(),
                    utc(r.created),
                ]
            });
            let text = table(&["NAME", "VISIBILITY", "CREATED"], rows);
            Output::new(text, repos)
        }
        RepoCommand::Delete { repository } => {
            backend.delete_repository(&repository).await?;
            Output::done(format!("deleted repository {repository}"))
        }
        RepoCommand::Visibility {
            repository,
            visibility,
        } => {
            backend.set_visibility(&repository, visibility).await?;
            Output::done(format!("{repository} is {}", lower(visibility)))
        }
        RepoCommand::Grant {
            repository,
            grantee,
            role,
        } => {
            let grantee = grantee.grantee();
            backend.grant(&repository, &grantee, role).await?;
            Output::done(format!(
                "granted {} on {repository} to {}",
                lower(role),
                grantee_name(&grantee)
            ))
        }
        RepoCommand::Revoke {
            repository,
            grantee,
        } => {
            let grantee = grantee.grantee();
            backend.revoke(&repository, &grantee).await?;
            Output::done(format!(
                "revoked the permission of {} on {repository}",
                grantee_name(&grantee)
            ))
        }
        RepoCommand::Permissions { repository } => {
            let permissions = backend.permissions(&repository).await?;
            let rows = permissions
                .iter()
                .map(|p| vec![p.name.clone(), p.kind.clone(), lower(p.role)]);
            Output::new(table(&["NAME", "KIND", "ROLE"], rows), permissions)
        }
    }
}

fn grantee_name(grantee: &Grantee) -> String {
    match grantee {
        Grantee::User(user) => user.clone(),
        Grantee::Team(team) => format!("team {team}"),
    }
}

async fn token(backend: &impl Backend, command: TokenCommand) -> Result<Output> {
    let (TokenCommand::Add { user, .. }
    | TokenCommand::List { user }
    | TokenCommand::Revoke { user, .. }) = &command;
    let user = match user {
        Some(user) => user.clone(),
        None => backend.acting_user().await?,
    };
    match command {
        TokenCommand::Add {
            title, expires_in, ..
        } => {
            let expiration = expires_in
                .map(|d| {
                    i64::try_from(d.as_millis())
                        .ok()
                        .and_then(|ms| now_millis().checked_add(ms))
                        .ok_or_else(|| anyhow!("--expires-in is too long"))
                })
                .transpose()?;
            let created = backend.create_app_token(&user, &title, expiration).await?;
            let expires = created
                .token
                .expiration
                .map_or("never expires".into(), |at| format!("expires {}", utc(at)));
            let text = format!(
                "created application token {:?} of {user} (id {}, {expires})\n{}",
                created.token.title,
                created.token.uuid,
                secret_line(
                    &format!("token (the password of {user})"),
                    &created.token_code
                )
            );
            Output::new(text, created)
        }
        TokenCommand::List { .. } => {
            let tokens = backend.app_tokens(&user).await?;
            let when = |t: Option<i64>| t.map_or("-".into(), utc);
            let rows = tokens.iter().map(|t| {
                vec![
                    t.uuid.clone(),
                    t.title.clone(),
                    utc(t.created),
                    when(t.expiration),
                    when(t.last_accessed),
                    when(t.revoked),
                ]
            });
            let text = table(
                &["ID", "TITLE", "CREATED", "EXPIRES", "LAST USED", "REVOKED"],
                rows,
            );
            Output::new(text, tokens)
        }
        TokenCommand::Revoke { id, .. } => {
            backend.revoke_app_token(&user, &id).await?;
            Output::done(format!("revoked application token {id}"))
        }
    }
}

/// The lowercase name of a role or visibility, as the API spells it.
fn lower(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// Columns padded to their widest cell; "(none)" for an empty listing.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    if rows.is_empty() {
        return "(none)".into();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let headers = headers.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(headers).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `YYYY-MM-DD HH:MMZ` of milliseconds since the Unix epoch.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, time) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "",
            "d",
            "30",
            "0d",
            "30x",
            "-1d",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00Z");
        assert_eq!(utc(1_709_210_040_000), "2024-02-29 12:34Z");
        assert_eq!(utc(-60_000), "1969-12-31 23:59Z");
    }

    #[test]
    fn repository_paths() {
        let p = RepoPath::parse("acme/tools/app").unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str()),
            ("acme", "tools/app")
        );
        for bad in ["app", "/app", "acme/"] {
            assert!(RepoPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_parse_as_the_api_spells_them() {
        assert_eq!(lowercase::<TeamRole>("creator"), Ok(TeamRole::Creator));
        assert!(lowercase::<RepoRole>("owner").is_err());
        assert_eq!(lower(Visibility::Public), "public");
    }
}
