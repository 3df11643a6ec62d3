//! The authorization matrix (issue 4): every route of the registry API and of the management
//! API × every kind of caller × private/public repository → the expected status, each request
//! sent for real to one server whose organization, teams, users, robots, tokens and
//! repositories were made through the management API.
//!
//! Expectations come from the table ([`TABLE`]) and the rules in [`allowed`] and
//! [`expected`], written from the access model (ARCHITECTURE.md, "Access control"), not from
//! the server's decision code:
//! - the superuser may do everything; an organization's admin team everything in it; its
//!   creator team may also create repositories; any team member may see the organization;
//! - repository grants: `read` → pull; `write` → pull, push, delete; `admin` → also settings
//!   and permissions. Public repositories may be pulled by every authenticated caller, and by
//!   anonymous ones when anonymous access is on;
//! - a user's own account (password, tokens, robots, new organizations) is the user's alone;
//!   robots have none;
//! - a deleted robot, a robot's replaced token and an expired application token are no
//!   credentials at all: 401 wherever credentials are read.
//!
//! Refusals: anonymous callers, bad credentials and registry tokens lacking the action get
//! 401, with a challenge (`Bearer` naming the scope to ask for on `/v2`, `Basic` on
//! `/api/v1`); an authenticated caller refused on Basic credentials gets 403. The registry API
//! is called both ways real clients do, Basic on each request and the token flow (`/v2/auth`
//! with the scope, then `Bearer`), and the status must be the same either way but for that
//! 401/403 difference and one more: `GET /v2/` takes any valid token, and the token service
//! gives anonymous callers one (granting nothing).
//!
//! Completeness: the management rows must be exactly the operations of the served OpenAPI
//! document, and the registry rows exactly `bulwark_api::REGISTRY_ROUTES`, which is in turn
//! checked against what the server serves (every kind of `/v2` path × every method, read back
//! from the route labels of its own request metrics).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulwark_oci::Digest;
use bulwark_testkit::{ADMIN_PASSWORD, TestServer};
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use Act as A;
use Needs as N;

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");
const ORG: &str = "acme";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Requests in flight at once.
const CONCURRENCY: usize = 16;

// --- who calls ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Who {
    Anonymous,
    Superuser,
    /// Member of the organization's `admin` team.
    OrgAdmin,
    /// Member of its `creator` team.
    Creator,
    /// Members of `member` teams granted `read`, `write`, `admin` on the repositories.
    TeamRead,
    TeamWrite,
    TeamAdmin,
    /// A user outside the organization without any grant.
    NoGrant,
    /// Robots of the organization granted `read` and `write`.
    RobotRead,
    RobotWrite,
    /// A robot granted `write`, then deleted; it calls with its token.
    RobotDeleted,
    /// A robot granted `write` whose token was then regenerated; it calls with the old one.
    RobotRegenerated,
    /// `TeamWrite`'s application token, past its expiry.
    ExpiredAppToken,
}

const EVERYONE: [Who; 13] = [
    Who::Anonymous,
    Who::Superuser,
    Who::OrgAdmin,
    Who::Creator,
    Who::TeamRead,
    Who::TeamWrite,
    Who::TeamAdmin,
    Who::NoGrant,
    Who::RobotRead,
    Who::RobotWrite,
    Who::RobotDeleted,
    Who::RobotRegenerated,
    Who::ExpiredAppToken,
];

/// The users created for the callers, and one (`target`) that only ever is acted upon.
const USERS: [(Option<Who>, &str); 7] = [
    (Some(Who::OrgAdmin), "oadmin"),
    (Some(Who::Creator), "creator"),
    (Some(Who::TeamRead), "reader"),
    (Some(Who::TeamWrite), "writer"),
    (Some(Who::TeamAdmin), "maintainer"),
    (Some(Who::NoGrant), "outsider"),
    (None, "target"),
];

/// The organization's teams: name, role, member. `scratch` has no grant and takes the
/// members and permissions that rows add.
const TEAMS: [(&str, &str, Option<&str>); 6] = [
    ("admins", "admin", Some("oadmin")),
    ("creators", "creator", Some("creator")),
    ("readers", "member", Some("reader")),
    ("writers", "member", Some("writer")),
    ("maintainers", "member", Some("maintainer")),
    ("scratch", "member", None),
];

/// The grants of every repository the matrix uses: to teams, then to robots.
const TEAM_GRANTS: [(&str, &str); 3] = [
    ("readers", "read"),
    ("writers", "write"),
    ("maintainers", "admin"),
];
const ROBOT_GRANTS: [(&str, &str); 2] = [("acme+pull", "read"), ("acme+push", "write")];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RepoRole {
    Read,
    Write,
    Admin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TeamRole {
    Member,
    Creator,
    Admin,
}

impl Who {
    /// Credentials that authenticate no more.
    fn revoked(self) -> bool {
        matches!(
            self,
            Who::RobotDeleted | Who::RobotRegenerated | Who::ExpiredAppToken
        )
    }

    /// A user calling with its password: it has an account of its own.
    fn own_account(self) -> bool {
        self == Who::Superuser || USERS.iter().any(|(who, _)| *who == Some(self))
    }

    /// What the caller may do on the matrix's repositories.
    fn repo_role(self) -> Option<RepoRole> {
        match self {
            Who::Superuser | Who::OrgAdmin | Who::TeamAdmin => Some(RepoRole::Admin),
            Who::TeamWrite | Who::RobotWrite => Some(RepoRole::Write),
            Who::TeamRead | Who::RobotRead => Some(RepoRole::Read),
            _ => None,
        }
    }

    /// The caller's strongest team role in the organization.
    fn team_role(self) -> Option<TeamRole> {
        match self {
            Who::OrgAdmin => Some(TeamRole::Admin),
            Who::Creator => Some(TeamRole::Creator),
            Who::TeamRead | Who::TeamWrite | Who::TeamAdmin => Some(TeamRole::Member),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Vis {
    Private,
    Public,
}

impl Vis {
    fn repo(self) -> &'static str {
        match self {
            Vis::Private => "acme/app-private",
            Vis::Public => "acme/app-public",
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Vis::Private => "private",
            Vis::Public => "public",
        }
    }
}

/// How the credentials travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// `Authorization: Basic` on the request (none for anonymous callers).
    Basic,
    /// A token from `/v2/auth` (asked with Basic) for the request's scope, then `Bearer`.
    Token,
    /// In an OAuth2 password-grant form (`POST /v2/auth`).
    Form,
}

/// The deployment's switches.
#[derive(Clone, Copy, Debug)]
struct Config {
    anonymous_access: bool,
    user_creation: bool,
}

// --- the rules ---------------------------------------------------------------------------

/// What a route asks of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    /// Nothing: credentials are not even read.
    Nothing,
    /// Valid credentials or none.
    Anyone,
    /// Self-registration: open to all exactly when the deployment allows it, a closed door
    /// (403, whoever asks) otherwise.
    Registration,
    /// Valid credentials.
    Login,
    /// The catalog: authenticated callers, and anonymous ones with anonymous access.
    Catalog,
    /// An account of one's own (a user, not a robot).
    OwnAccount,
    Superuser,
    OrgView,
    OrgAdmin,
    /// Creating a repository in the organization (also by pushing to one that does not
    /// exist).
    CreateRepo,
    Pull,
    Push,
    Delete,
    RepoAdmin,
}

impl Needs {
    /// Whether the route addresses an existing repository (run on each visibility).
    fn on_repository(self) -> bool {
        matches!(
            self,
            Needs::Pull | Needs::Push | Needs::Delete | Needs::RepoAdmin
        )
    }
}

fn allowed(needs: Needs, who: Who, vis: Option<Vis>, via: Via, config: Config) -> bool {
    let superuser = who == Who::Superuser;
    let anonymous = who == Who::Anonymous;
    match needs {
        Needs::Nothing | Needs::Anyone => true,
        Needs::Registration => config.user_creation,
        Needs::Login => !anonymous || via == Via::Token,
        Needs::Catalog => !anonymous || config.anonymous_access,
        Needs::OwnAccount => who.own_account(),
        Needs::Superuser => superuser,
        Needs::OrgView => superuser || who.team_role().is_some(),
        Needs::OrgAdmin => superuser || who.team_role() == Some(TeamRole::Admin),
        Needs::CreateRepo => superuser || who.team_role() >= Some(TeamRole::Creator),
        Needs::Pull => {
            who.repo_role().is_some()
                || (vis == Some(Vis::Public) && (!anonymous || config.anonymous_access))
        }
        Needs::Push | Needs::Delete => who.repo_role() >= Some(RepoRole::Write),
        Needs::RepoAdmin => who.repo_role() == Some(RepoRole::Admin),
    }
}

fn expected(row: &Row, who: Who, vis: Option<Vis>, via: Via, config: Config) -> u16 {
    if row.needs == Needs::Nothing {
        row.ok
    } else if who.revoked() {
        401
    } else if allowed(row.needs, who, vis, via, config) {
        row.ok
    } else if row.needs == Needs::Registration {
        403
    } else if who == Who::Anonymous || via == Via::Token {
        401
    } else {
        403
    }
}

/// The scope a registry client asks the token service for (and the server's challenge names).
fn scope(needs: Needs, repo: Option<&str>) -> Option<String> {
    let actions = match needs {
        Needs::Catalog => return Some("registry:catalog:*".to_owned()),
        Needs::Pull => "pull",
        Needs::Push | Needs::CreateRepo => "pull,push",
        Needs::Delete => "delete",
        _ => return None,
    };
    repo.map(|repo| format!("repository:{repo}:{actions}"))
}

// --- the table ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// An OpenAPI path template of `/api/v1`.
    Management(&'static str),
    /// A `/v2` route by its label (`bulwark_api::REGISTRY_ROUTES`).
    Registry(&'static str),
    /// The token service, by its path.
    TokenService(&'static str),
}

/// What the row's request does; [`Matrix::prepare`] makes its fixtures and path.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// The route as it is: `{org}` is the organization, `{ns}/{repo}` the repository of the
    /// case's visibility; no body.
    Route,
    Register,
    ChangePassword,
    CreateUser,
    UpdateUser,
    DeleteUser,
    Job,
    CreateOrg,
    DeleteOrg,
    SetTeam,
    DeleteTeam,
    Members,
    AddMember,
    RemoveMember,
    CreateOrgRobot,
    OrgRobot,
    DeleteOrgRobot,
    RegenerateOrgRobot,
    CreateMyRobot,
    MyRobot,
    DeleteMyRobot,
    RegenerateMyRobot,
    CreateRepo,
    Repos,
    DeleteRepo,
    ChangeVisibility,
    SetUserPermission,
    RemoveUserPermission,
    SetTeamPermission,
    RemoveTeamPermission,
    CreateAppToken,
    AppToken,
    RevokeAppToken,
    CreateApiToken,
    RevokeApiToken,
    /// A fresh tag of the case's repository: its expiry set, made immutable, an immutable
    /// one made mutable again, deleted into the Time Machine, purged, restored after a move.
    TagExpiry,
    TagImmutable,
    TagMutable,
    DeleteTag,
    PurgeTag,
    RestoreTag,
    /// Immutability rules and retention policies of a throwaway repository (made with the
    /// case's visibility), added or removed: rules and policies on the fixture repositories
    /// would change what later rows push or keep.
    AddRepoRule,
    DeleteRepoRule,
    AddRepoPolicy,
    DeleteRepoPolicy,
    /// The Time Machine window, immutability rules and retention policies of a throwaway
    /// organization; a retention run there.
    SetWindow,
    AddOrgRule,
    DeleteOrgRule,
    AddOrgPolicy,
    DeleteOrgPolicy,
    RunRetention,
    /// A quota route as its template says, on a throwaway namespace (an organization, or a
    /// user on the superuser's `users` routes) given a quota with a warning limit unless the
    /// row creates the quota: a quota of the fixture organization would refuse later pushes.
    Quota,
    /// A quota of the caller's own namespace (without reject limit: it refuses nothing).
    MyQuota,
    /// Pull policies of a throwaway repository or organization, set or removed: a policy
    /// on the fixtures could refuse later rows' pulls.
    SetRepoScanPolicy,
    DeleteRepoScanPolicy,
    SetOrgScanPolicy,
    DeleteOrgScanPolicy,
    /// The vulnerability scan of the fixture image (Quay's shape, the report, the SBOM —
    /// a conflict: its layer is no tar, so it has no successful scan).
    ManifestScan,
    /// One OSV record, imported (again: it changes nothing after the first).
    ImportVulndb,
    Ping,
    Catalog,
    Tags,
    Manifest,
    PutManifest,
    DeleteManifest,
    Blob,
    DeleteBlob,
    StartUpload,
    /// An upload to a repository that does not exist yet (pushing creates it).
    StartUploadNew,
    UploadStatus,
    UploadChunk,
    FinishUpload,
    CancelUpload,
    Referrers,
    TokenGet,
    TokenPost,
}

#[derive(Debug)]
struct Row {
    method: &'static str,
    route: Route,
    needs: Needs,
    /// The status of an allowed request.
    ok: u16,
    act: Act,
}

impl Row {
    fn vias(&self) -> &'static [Via] {
        match (self.route, self.act) {
            (Route::Registry(_), _) => &[Via::Basic, Via::Token],
            (_, Act::TokenPost) => &[Via::Form],
            _ => &[Via::Basic],
        }
    }

    fn visibilities(&self) -> &'static [Option<Vis>] {
        if self.needs.on_repository() {
            &[Some(Vis::Private), Some(Vis::Public)]
        } else {
            &[None]
        }
    }
}

/// Every row: method, route (a management path as the OpenAPI document writes it, a `/v2`
/// route by its label, the token service), what it needs, its status when allowed, and the
/// request ([`Matrix::prepare`]).
#[rustfmt::skip]
const TABLE: [Row; 128] = [
    m("GET",    "/api/v1/openapi.json",                                     N::Nothing,      200, A::Route),
    m("GET",    "/api/v1/user/",                                            N::OwnAccount,   200, A::Route),
    m("POST",   "/api/v1/user/",                                            N::Registration, 201, A::Register),
    m("PUT",    "/api/v1/user/",                                            N::OwnAccount,   200, A::ChangePassword),
    m("GET",    "/api/v1/superuser/users/",                                 N::Superuser,    200, A::Route),
    m("POST",   "/api/v1/superuser/users/",                                 N::Superuser,    201, A::CreateUser),
    m("PUT",    "/api/v1/superuser/users/{username}",                       N::Superuser,    200, A::UpdateUser),
    m("DELETE", "/api/v1/superuser/users/{username}",                       N::Superuser,    204, A::DeleteUser),
    m("GET",    "/api/v1/jobs",                                             N::Superuser,    200, A::Route),
    m("GET",    "/api/v1/jobs/{id}",                                        N::Superuser,    200, A::Job),
    m("POST",   "/api/v1/organization/",                                    N::OwnAccount,   201, A::CreateOrg),
    m("GET",    "/api/v1/organization/{org}",                               N::OrgView,      200, A::Route),
    m("DELETE", "/api/v1/organization/{org}",                               N::OrgAdmin,     204, A::DeleteOrg),
    m("GET",    "/api/v1/organization/{org}/teams",                         N::OrgView,      200, A::Route),
    m("PUT",    "/api/v1/organization/{org}/team/{team}",                   N::OrgAdmin,     201, A::SetTeam),
    m("DELETE", "/api/v1/organization/{org}/team/{team}",                   N::OrgAdmin,     204, A::DeleteTeam),
    m("GET",    "/api/v1/organization/{org}/team/{team}/members",           N::OrgView,      200, A::Members),
    m("PUT",    "/api/v1/organization/{org}/team/{team}/members/{member}",  N::OrgAdmin,     200, A::AddMember),
    m("DELETE", "/api/v1/organization/{org}/team/{team}/members/{member}",  N::OrgAdmin,     204, A::RemoveMember),
    m("GET",    "/api/v1/organization/{org}/robots",                        N::OrgAdmin,     200, A::Route),
    m("PUT",    "/api/v1/organization/{org}/robots/{short}",                N::OrgAdmin,     201, A::CreateOrgRobot),
    m("GET",    "/api/v1/organization/{org}/robots/{short}",                N::OrgAdmin,     200, A::OrgRobot),
    m("DELETE", "/api/v1/organization/{org}/robots/{short}",                N::OrgAdmin,     204, A::DeleteOrgRobot),
    m("POST",   "/api/v1/organization/{org}/robots/{short}/regenerate",     N::OrgAdmin,     200, A::RegenerateOrgRobot),
    m("GET",    "/api/v1/user/robots",                                      N::OwnAccount,   200, A::Route),
    m("PUT",    "/api/v1/user/robots/{short}",                              N::OwnAccount,   201, A::CreateMyRobot),
    m("GET",    "/api/v1/user/robots/{short}",                              N::OwnAccount,   200, A::MyRobot),
    m("DELETE", "/api/v1/user/robots/{short}",                              N::OwnAccount,   204, A::DeleteMyRobot),
    m("POST",   "/api/v1/user/robots/{short}/regenerate",                   N::OwnAccount,   200, A::RegenerateMyRobot),
    m("POST",   "/api/v1/repository",                                       N::CreateRepo,   201, A::CreateRepo),
    m("GET",    "/api/v1/repository",                                       N::Anyone,       200, A::Repos),
    m("GET",    "/api/v1/repository/{ns}/{repo}",                           N::Pull,         200, A::Route),
    m("DELETE", "/api/v1/repository/{ns}/{repo}",                           N::RepoAdmin,    204, A::DeleteRepo),
    m("POST",   "/api/v1/repository/{ns}/{repo}/changevisibility",          N::RepoAdmin,    200, A::ChangeVisibility),
    m("GET",    "/api/v1/repository/{ns}/{repo}/permissions/user/",         N::RepoAdmin,    200, A::Route),
    m("PUT",    "/api/v1/repository/{ns}/{repo}/permissions/user/{name}",   N::RepoAdmin,    200, A::SetUserPermission),
    m("DELETE", "/api/v1/repository/{ns}/{repo}/permissions/user/{name}",   N::RepoAdmin,    204, A::RemoveUserPermission),
    m("GET",    "/api/v1/repository/{ns}/{repo}/permissions/team/",         N::RepoAdmin,    200, A::Route),
    m("PUT",    "/api/v1/repository/{ns}/{repo}/permissions/team/{team}",   N::RepoAdmin,    200, A::SetTeamPermission),
    m("DELETE", "/api/v1/repository/{ns}/{repo}/permissions/team/{team}",   N::RepoAdmin,    204, A::RemoveTeamPermission),
    m("GET",    "/api/v1/user/apptoken",                                    N::OwnAccount,   200, A::Route),
    m("POST",   "/api/v1/user/apptoken",                                    N::OwnAccount,   201, A::CreateAppToken),
    m("GET",    "/api/v1/user/apptoken/{id}",                               N::OwnAccount,   200, A::AppToken),
    m("DELETE", "/api/v1/user/apptoken/{id}",                               N::OwnAccount,   204, A::RevokeAppToken),
    m("GET",    "/api/v1/user/apitoken",                                    N::OwnAccount,   200, A::Route),
    m("POST",   "/api/v1/user/apitoken",                                    N::OwnAccount,   201, A::CreateApiToken),
    m("DELETE", "/api/v1/user/apitoken/{id}",                               N::OwnAccount,   204, A::RevokeApiToken),
    m("GET",    "/api/v1/repository/{ns}/{repo}/logs",                      N::RepoAdmin,    200, A::Route),
    m("GET",    "/api/v1/repository/{ns}/{repo}/aggregatelogs",             N::RepoAdmin,    200, A::Route),
    m("GET",    "/api/v1/organization/{org}/logs",                          N::OrgAdmin,     200, A::Route),
    m("GET",    "/api/v1/organization/{org}/aggregatelogs",                 N::OrgAdmin,     200, A::Route),
    m("GET",    "/api/v1/user/logs",                                        N::OwnAccount,   200, A::Route),
    m("GET",    "/api/v1/user/aggregatelogs",                               N::OwnAccount,   200, A::Route),
    m("GET",    "/api/v1/superuser/logs",                                   N::Superuser,    200, A::Route),
    m("GET",    "/api/v1/superuser/aggregatelogs",                          N::Superuser,    200, A::Route),
    m("GET",    "/api/v1/repository/{ns}/{repo}/tag/",                      N::Pull,         200, A::Route),
    m("PUT",    "/api/v1/repository/{ns}/{repo}/tag/{tag}",                 N::Push,         204, A::TagExpiry),
    m("PUT",    "/api/v1/repository/{ns}/{repo}/tag/{tag}",                 N::RepoAdmin,    204, A::TagImmutable),
    m("PUT",    "/api/v1/repository/{ns}/{repo}/tag/{tag}",                 N::RepoAdmin,    204, A::TagMutable),
    m("DELETE", "/api/v1/repository/{ns}/{repo}/tag/{tag}",                 N::Delete,       204, A::DeleteTag),
    m("DELETE", "/api/v1/repository/{ns}/{repo}/tag/{tag}",                 N::RepoAdmin,    204, A::PurgeTag),
    m("POST",   "/api/v1/repository/{ns}/{repo}/tag/{tag}/restore",         N::Push,         204, A::RestoreTag),
    m("GET",    "/api/v1/repository/{ns}/{repo}/immutabilityrules",         N::Pull,         200, A::Route),
    m("POST",   "/api/v1/repository/{ns}/{repo}/immutabilityrules",         N::RepoAdmin,    201, A::AddRepoRule),
    m("DELETE", "/api/v1/repository/{ns}/{repo}/immutabilityrules/{id}",    N::RepoAdmin,    204, A::DeleteRepoRule),
    m("GET",    "/api/v1/repository/{ns}/{repo}/manifest/{digest}/security", N::Pull,       200, A::ManifestScan),
    m("GET",    "/api/v1/repository/{ns}/{repo}/manifest/{digest}/report",  N::Pull,         200, A::ManifestScan),
    m("GET",    "/api/v1/repository/{ns}/{repo}/manifest/{digest}/sbom",    N::Pull,         409, A::ManifestScan),
    m("GET",    "/api/v1/organization/{org}/scanpolicy",                    N::OrgView,      200, A::Route),
    m("PUT",    "/api/v1/organization/{org}/scanpolicy",                    N::OrgAdmin,     200, A::SetOrgScanPolicy),
    m("DELETE", "/api/v1/organization/{org}/scanpolicy",                    N::OrgAdmin,     204, A::DeleteOrgScanPolicy),
    m("GET",    "/api/v1/repository/{ns}/{repo}/scanpolicy",                N::Pull,         200, A::Route),
    m("PUT",    "/api/v1/repository/{ns}/{repo}/scanpolicy",                N::RepoAdmin,    200, A::SetRepoScanPolicy),
    m("DELETE", "/api/v1/repository/{ns}/{repo}/scanpolicy",                N::RepoAdmin,    204, A::DeleteRepoScanPolicy),
    m("GET",    "/api/v1/repository/{ns}/{repo}/autoprunepolicy/",          N::Pull,         200, A::Route),
    m("POST",   "/api/v1/repository/{ns}/{repo}/autoprunepolicy/",          N::RepoAdmin,    201, A::AddRepoPolicy),
    m("DELETE", "/api/v1/repository/{ns}/{repo}/autoprunepolicy/{id}",      N::RepoAdmin,    204, A::DeleteRepoPolicy),
    m("GET",    "/api/v1/organization/{org}/timemachine",                   N::OrgView,      200, A::Route),
    m("PUT",    "/api/v1/organization/{org}/timemachine",                   N::OrgAdmin,     200, A::SetWindow),
    m("GET",    "/api/v1/organization/{org}/immutabilityrules",             N::OrgView,      200, A::Route),
    m("POST",   "/api/v1/organization/{org}/immutabilityrules",             N::OrgAdmin,     201, A::AddOrgRule),
    m("DELETE", "/api/v1/organization/{org}/immutabilityrules/{id}",        N::OrgAdmin,     204, A::DeleteOrgRule),
    m("GET",    "/api/v1/organization/{org}/autoprunepolicy/",              N::OrgView,      200, A::Route),
    m("POST",   "/api/v1/organization/{org}/autoprunepolicy/",              N::OrgAdmin,     201, A::AddOrgPolicy),
    m("DELETE", "/api/v1/organization/{org}/autoprunepolicy/{id}",          N::OrgAdmin,     204, A::DeleteOrgPolicy),
    m("POST",   "/api/v1/organization/{org}/autoprunepolicy/run",           N::OrgAdmin,     200, A::RunRetention),
    m("POST",   "/api/v1/superuser/gc",                                     N::Superuser,    200, A::Route),
    m("POST",   "/api/v1/superuser/vulndb",                                 N::Superuser,    200, A::ImportVulndb),
    m("GET",    "/api/v1/organization/{org}/quota",                         N::OrgView,      200, A::Route),
    m("POST",   "/api/v1/organization/{org}/quota",                         N::Superuser,    201, A::Quota),
    m("GET",    "/api/v1/organization/{org}/quota/{quota_id}",              N::OrgView,      200, A::Quota),
    m("PUT",    "/api/v1/organization/{org}/quota/{quota_id}",              N::Superuser,    200, A::Quota),
    m("DELETE", "/api/v1/organization/{org}/quota/{quota_id}",              N::Superuser,    204, A::Quota),
    m("GET",    "/api/v1/organization/{org}/quota/{quota_id}/limit",        N::OrgView,      200, A::Quota),
    m("POST",   "/api/v1/organization/{org}/quota/{quota_id}/limit",        N::Superuser,    201, A::Quota),
    m("GET",    "/api/v1/organization/{org}/quota/{quota_id}/limit/{limit_id}", N::OrgView,  200, A::Quota),
    m("PUT",    "/api/v1/organization/{org}/quota/{quota_id}/limit/{limit_id}", N::Superuser, 200, A::Quota),
    m("DELETE", "/api/v1/organization/{org}/quota/{quota_id}/limit/{limit_id}", N::Superuser, 204, A::Quota),
    m("GET",    "/api/v1/user/quota",                                       N::OwnAccount,   200, A::Route),
    m("GET",    "/api/v1/user/quota/{quota_id}",                            N::OwnAccount,   200, A::MyQuota),
    m("GET",    "/api/v1/superuser/organization/{namespace}/quota",         N::Superuser,    200, A::Quota),
    m("POST",   "/api/v1/superuser/organization/{namespace}/quota",         N::Superuser,    201, A::Quota),
    m("PUT",    "/api/v1/superuser/organization/{namespace}/quota/{quota_id}", N::Superuser, 200, A::Quota),
    m("DELETE", "/api/v1/superuser/organization/{namespace}/quota/{quota_id}", N::Superuser, 204, A::Quota),
    m("GET",    "/api/v1/superuser/users/{username}/quota",                 N::Superuser,    200, A::Quota),
    m("POST",   "/api/v1/superuser/users/{username}/quota",                 N::Superuser,    201, A::Quota),
    m("PUT",    "/api/v1/superuser/users/{username}/quota/{quota_id}",      N::Superuser,    200, A::Quota),
    m("DELETE", "/api/v1/superuser/users/{username}/quota/{quota_id}",      N::Superuser,    204, A::Quota),
    r("GET",    "base",                                                     N::Login,        200, A::Ping),
    r("HEAD",   "base",                                                     N::Login,        200, A::Ping),
    r("GET",    "catalog",                                                  N::Catalog,      200, A::Catalog),
    r("GET",    "tags_list",                                                N::Pull,         200, A::Tags),
    r("GET",    "manifest_get",                                             N::Pull,         200, A::Manifest),
    r("HEAD",   "manifest_get",                                             N::Pull,         200, A::Manifest),
    r("PUT",    "manifest_write",                                           N::Push,         201, A::PutManifest),
    r("DELETE", "manifest_write",                                           N::Delete,       202, A::DeleteManifest),
    r("GET",    "blob_get",                                                 N::Pull,         200, A::Blob),
    r("HEAD",   "blob_get",                                                 N::Pull,         200, A::Blob),
    r("DELETE", "blob_delete",                                              N::Delete,       202, A::DeleteBlob),
    r("POST",   "upload_start",                                             N::Push,         202, A::StartUpload),
    r("POST",   "upload_start",                                             N::CreateRepo,   202, A::StartUploadNew),
    r("GET",    "upload",                                                   N::Push,         204, A::UploadStatus),
    r("PATCH",  "upload",                                                   N::Push,         202, A::UploadChunk),
    r("PUT",    "upload",                                                   N::Push,         201, A::FinishUpload),
    r("DELETE", "upload",                                                   N::Push,         204, A::CancelUpload),
    r("GET",    "referrers",                                                N::Pull,         200, A::Referrers),
    t("GET",    "/v2/auth",                                                 N::Anyone,       200, A::TokenGet),
    t("POST",   "/v2/auth",                                                 N::Login,        200, A::TokenPost),
];

/// A management API row.
const fn m(method: &'static str, path: &'static str, needs: Needs, ok: u16, act: Act) -> Row {
    Row {
        method,
        route: Route::Management(path),
        needs,
        ok,
        act,
    }
}

/// A `/v2` row.
const fn r(method: &'static str, label: &'static str, needs: Needs, ok: u16, act: Act) -> Row {
    Row {
        method,
        route: Route::Registry(label),
        needs,
        ok,
        act,
    }
}

/// A row of the token service (which clients find at the challenge's realm).
const fn t(method: &'static str, path: &'static str, needs: Needs, ok: u16, act: Act) -> Row {
    Row {
        method,
        route: Route::TokenService(path),
        needs,
        ok,
        act,
    }
}

// --- requests ----------------------------------------------------------------------------

struct Body {
    content_type: &'static str,
    data: Vec<u8>,
}

impl Body {
    fn json(value: &Value) -> Body {
        Body {
            content_type: "application/json",
            data: serde_json::to_vec(value).expect("json"),
        }
    }
}

/// A row's request for one caller: everything but its method and credentials.
struct Req {
    path: String,
    body: Option<Body>,
    headers: Vec<(&'static str, String)>,
    /// The repository a registry request addresses (for its token scope).
    repo: Option<String>,
}

impl Req {
    fn to(path: impl Into<String>) -> Req {
        Req {
            path: path.into(),
            body: None,
            headers: Vec::new(),
            repo: None,
        }
    }

    fn json(mut self, value: Value) -> Req {
        self.body = Some(Body::json(&value));
        self
    }

    fn bytes(mut self, content_type: &'static str, data: Vec<u8>) -> Req {
        self.body = Some(Body { content_type, data });
        self
    }

    fn header(mut self, name: &'static str, value: String) -> Req {
        self.headers.push((name, value));
        self
    }

    fn repo(mut self, repo: &str) -> Req {
        self.repo = Some(repo.to_owned());
        self
    }
}

struct Answer {
    status: u16,
    challenge: String,
    location: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }
}

/// Percent-encodes everything but unreserved characters (a query value, a form field).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `key="value"` in a `WWW-Authenticate` challenge or a Prometheus label set.
fn quoted_param(text: &str, key: &str) -> Option<String> {
    let start = text.find(&format!("{key}=\""))? + key.len() + 2;
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned())
}

/// Whether `path` (without its query) is an instance of the OpenAPI path `template`.
fn instance_of(path: &str, template: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (ps, ts): (Vec<_>, Vec<_>) = (path.split('/').collect(), template.split('/').collect());
    ps.len() == ts.len()
        && ps.iter().zip(&ts).all(|(p, t)| {
            if t.starts_with('{') {
                !p.is_empty()
            } else {
                p == t
            }
        })
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// An image in a fixture repository.
struct Image {
    config: (Digest, usize),
    layer: (Digest, usize),
    manifest: Digest,
}

fn descriptor(media_type: &str, (digest, size): &(Digest, usize)) -> Value {
    json!({ "mediaType": media_type, "digest": digest.to_string(), "size": size })
}

/// An OCI image manifest over a config and a layer (digest, size), made distinct by `tag`.
fn manifest(config: &(Digest, usize), layer: &(Digest, usize), tag: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer)],
        "annotations": { "matrix.row": tag },
    }))
    .expect("json")
}

impl Image {
    /// Another manifest over this image's blobs.
    fn manifest(&self, tag: &str) -> Vec<u8> {
        manifest(&self.config, &self.layer, tag)
    }
}

// --- the server and its fixtures ---------------------------------------------------------

struct Matrix {
    server: TestServer,
    http: reqwest::Client,
    config: Config,
    /// From the registry's challenge.
    realm: String,
    service: String,
    /// Username and password (or token) of each caller but the anonymous one.
    creds: HashMap<Who, (String, String)>,
    images: HashMap<Vis, Image>,
    /// A job of the queue, for `GET /api/v1/jobs/{id}`.
    job: i64,
    /// Each own account's application token, for `GET /api/v1/user/apptoken/{id}`.
    app_tokens: HashMap<Who, String>,
    /// The superuser's API token, named when callers without an account ask to revoke one.
    admin_api_token: String,
    /// Makes the names of throwaway objects unique.
    next: AtomicUsize,
}

impl Matrix {
    fn start(config: Config) -> Matrix {
        let flag = |on: bool| if on { "true" } else { "false" };
        let server = TestServer::start_with(
            BIN,
            &[],
            &[
                (
                    "BULWARK_AUTH__ANONYMOUS_ACCESS",
                    flag(config.anonymous_access),
                ),
                ("BULWARK_AUTH__USER_CREATION", flag(config.user_creation)),
                // Revoked credentials fail on every row; the login backoff (tested
                // elsewhere) would otherwise slow everyone on 127.0.0.1 down.
                ("BULWARK_AUTH__LOGIN_FAILURES_BEFORE_BACKOFF", "4000000000"),
            ],
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let mut creds = HashMap::new();
        creds.insert(
            Who::Superuser,
            ("admin".to_owned(), ADMIN_PASSWORD.to_owned()),
        );
        for (who, name) in USERS {
            if let Some(who) = who {
                creds.insert(who, (name.to_owned(), password_of(name)));
            }
        }
        Matrix {
            server,
            http,
            config,
            realm: String::new(),
            service: String::new(),
            creds,
            images: HashMap::new(),
            job: 0,
            app_tokens: HashMap::new(),
            admin_api_token: String::new(),
            next: AtomicUsize::new(0),
        }
    }

    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn basic(&self, who: Who) -> Option<String> {
        self.creds
            .get(&who)
            .map(|(user, password)| bulwark_testkit::basic_auth(user, password))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&Body>,
        headers: &[(&'static str, String)],
    ) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.server.url)
        };
        let mut req = self.http.request(method.clone(), url);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", body.content_type)
                .body(body.data.clone());
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (challenge, location) = (header("www-authenticate"), header("location"));
        Answer {
            status: resp.status().as_u16(),
            challenge,
            location,
            body: resp.bytes().await.expect("body").to_vec(),
        }
    }

    /// A fixture-making request as `who`, which must answer `want`.
    async fn call_as(
        &self,
        who: Who,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Answer {
        let body = body.as_ref().map(Body::json);
        let answer = self
            .send(
                method.clone(),
                path,
                self.basic(who).as_deref(),
                body.as_ref(),
                &[],
            )
            .await;
        assert_eq!(
            answer.status,
            want,
            "setting up, as {who:?}: {method} {path}: {}",
            answer.text()
        );
        answer
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>, want: u16) -> Value {
        self.call_as(Who::Superuser, method, path, body, want)
            .await
            .json()
    }

    async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::sha256_of(data);
        let body = Body {
            content_type: "application/octet-stream",
            data: data.to_vec(),
        };
        let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let auth = self.basic(Who::Superuser);
        let answer = self
            .send(Method::POST, &path, auth.as_deref(), Some(&body), &[])
            .await;
        assert_eq!(answer.status, 201, "setting up: blob push to {repo}");
        digest
    }

    async fn push_manifest(&self, repo: &str, reference: &str, data: Vec<u8>) -> Digest {
        let digest = Digest::sha256_of(&data);
        let body = Body {
            content_type: OCI_MANIFEST,
            data,
        };
        let path = format!("/v2/{repo}/manifests/{reference}");
        let auth = self.basic(Who::Superuser);
        let answer = self
            .send(Method::PUT, &path, auth.as_deref(), Some(&body), &[])
            .await;
        assert_eq!(
            answer.status,
            201,
            "setting up: manifest push to {repo}: {}",
            answer.text()
        );
        digest
    }

    /// Opens an upload session as the superuser; returns its path.
    async fn start_upload(&self, repo: &str) -> String {
        let path = format!("/v2/{repo}/blobs/uploads/");
        let auth = self.basic(Who::Superuser);
        let answer = self
            .send(Method::POST, &path, auth.as_deref(), None, &[])
            .await;
        assert_eq!(answer.status, 202, "setting up: upload to {repo}");
        answer.location
    }

    async fn grant_roles(&self, repo: &str) {
        for (team, role) in TEAM_GRANTS {
            let path = format!("/api/v1/repository/{repo}/permissions/team/{team}");
            self.admin(Method::PUT, &path, Some(json!({ "role": role })), 200)
                .await;
        }
        for (robot, role) in ROBOT_GRANTS {
            let path = format!("/api/v1/repository/{repo}/permissions/user/{robot}");
            self.admin(Method::PUT, &path, Some(json!({ "role": role })), 200)
                .await;
        }
    }

    async fn team(&self, org: &str, team: &str, role: &str, member: Option<&str>) {
        let path = format!("/api/v1/organization/{org}/team/{team}");
        self.admin(Method::PUT, &path, Some(json!({ "role": role })), 201)
            .await;
        if let Some(member) = member {
            self.admin(Method::PUT, &format!("{path}/members/{member}"), None, 200)
                .await;
        }
    }

    async fn org_robot(&self, org: &str, short: &str) -> String {
        let path = format!("/api/v1/organization/{org}/robots/{short}");
        let robot = self.admin(Method::PUT, &path, None, 201).await;
        robot["token"].as_str().expect("robot token").to_owned()
    }

    /// An organization with the teams and members of the fixture one.
    async fn throwaway_org(&self) -> String {
        let org = self.unique("zorg");
        self.admin(
            Method::POST,
            "/api/v1/organization/",
            Some(json!({ "name": org })),
            201,
        )
        .await;
        for (team, role, member) in TEAMS.iter().filter(|(_, _, member)| member.is_some()) {
            self.team(&org, team, role, *member).await;
        }
        org
    }

    /// A repository of the organization with the grants of the fixture ones.
    async fn throwaway_repo(&self, vis: Vis) -> String {
        let name = self.unique("zz-del");
        let body = json!({ "namespace": ORG, "repository": name, "visibility": vis.as_str() });
        self.admin(Method::POST, "/api/v1/repository", Some(body), 201)
            .await;
        let repo = format!("{ORG}/{name}");
        self.grant_roles(&repo).await;
        repo
    }

    /// A new tag of `repo` on a manifest of its own over `image`'s blobs; its name and the
    /// manifest's digest.
    async fn fresh_tag(&self, repo: &str, image: &Image, prefix: &str) -> (String, Digest) {
        let tag = self.unique(prefix);
        let digest = self.push_manifest(repo, &tag, image.manifest(&tag)).await;
        (tag, digest)
    }

    /// An immutability rule, retention policy, quota or quota limit made by the superuser at
    /// `base` (its collection); its id.
    async fn rule_or_policy(&self, base: &str, body: Value) -> i64 {
        let created = self.admin(Method::POST, base, Some(body), 201).await;
        created["id"].as_i64().expect("id")
    }

    /// The organization, its teams, users, robots, repositories with an image, tokens; the
    /// revoked credentials are checked to have worked before they were revoked.
    async fn set_up(&mut self) {
        let ping = self.send(Method::GET, "/v2/", None, None, &[]).await;
        assert_eq!(ping.status, 401, "anonymous GET /v2/");
        self.realm = quoted_param(&ping.challenge, "realm").expect("realm");
        self.service = quoted_param(&ping.challenge, "service").expect("service");
        assert_eq!(
            self.realm,
            format!("{}/v2/auth", self.server.url),
            "the realm"
        );

        futures::future::join_all(USERS.iter().map(|(_, name)| {
            let body = json!({ "username": name, "password": password_of(name) });
            self.admin(Method::POST, "/api/v1/superuser/users/", Some(body), 201)
        }))
        .await;
        self.admin(
            Method::POST,
            "/api/v1/organization/",
            Some(json!({ "name": ORG })),
            201,
        )
        .await;
        for (team, role, member) in TEAMS {
            self.team(ORG, team, role, member).await;
        }
        let mut robot_creds = HashMap::new();
        for (who, short) in [
            (Who::RobotRead, "pull"),
            (Who::RobotWrite, "push"),
            (Who::RobotDeleted, "deleted"),
            (Who::RobotRegenerated, "rotated"),
        ] {
            let token = self.org_robot(ORG, short).await;
            robot_creds.insert(who, (format!("{ORG}+{short}"), token));
        }
        self.creds.extend(robot_creds);
        for vis in [Vis::Private, Vis::Public] {
            let (ns, name) = vis.repo().split_once('/').expect("namespace/name");
            let body = json!({ "namespace": ns, "repository": name, "visibility": vis.as_str() });
            self.admin(Method::POST, "/api/v1/repository", Some(body), 201)
                .await;
            self.grant_roles(vis.repo()).await;
            for robot in ["acme+deleted", "acme+rotated"] {
                let path = format!("/api/v1/repository/{}/permissions/user/{robot}", vis.repo());
                self.admin(Method::PUT, &path, Some(json!({ "role": "write" })), 200)
                    .await;
            }
        }

        // An application token of a user with grants, expiring soon.
        let expires = now_millis() + 5000;
        let created = self
            .call_as(
                Who::TeamWrite,
                Method::POST,
                "/api/v1/user/apptoken",
                Some(json!({ "title": "short-lived", "expiration": expires })),
                201,
            )
            .await
            .json();
        let code = created["token"]["token_code"].as_str().expect("token_code");
        self.creds
            .insert(Who::ExpiredAppToken, ("writer".to_owned(), code.to_owned()));
        for who in [
            Who::ExpiredAppToken,
            Who::RobotDeleted,
            Who::RobotRegenerated,
        ] {
            let path = format!("/v2/{}/tags/list", Vis::Private.repo());
            let auth = self.basic(who);
            let answer = self
                .send(Method::GET, &path, auth.as_deref(), None, &[])
                .await;
            assert_eq!(answer.status, 200, "{who:?} works before it is revoked");
        }
        self.admin(
            Method::DELETE,
            "/api/v1/organization/acme/robots/deleted",
            None,
            204,
        )
        .await;
        self.admin(
            Method::POST,
            "/api/v1/organization/acme/robots/rotated/regenerate",
            None,
            200,
        )
        .await;

        for vis in [Vis::Private, Vis::Public] {
            let repo = vis.repo();
            let config = format!("{{\"repository\":\"{repo}\"}}").into_bytes();
            let layer = format!("the layer of {repo}").repeat(20).into_bytes();
            let config = (self.push_blob(repo, &config).await, config.len());
            let layer = (self.push_blob(repo, &layer).await, layer.len());
            let digest = self
                .push_manifest(repo, "v1", manifest(&config, &layer, "fixture"))
                .await;
            let image = Image {
                config,
                layer,
                manifest: digest,
            };
            self.images.insert(vis, image);
        }

        // Each account's own robot and application token; an API token of the superuser.
        for who in EVERYONE.into_iter().filter(|w| w.own_account()) {
            self.call_as(who, Method::PUT, "/api/v1/user/robots/mine", None, 201)
                .await;
            let created = self
                .call_as(
                    who,
                    Method::POST,
                    "/api/v1/user/apptoken",
                    Some(json!({ "title": "mine" })),
                    201,
                )
                .await
                .json();
            let id = created["token"]["uuid"].as_str().expect("uuid");
            self.app_tokens.insert(who, id.to_owned());
        }
        let body = json!({ "name": "mine", "scopes": "repo:read" });
        let created = self
            .admin(Method::POST, "/api/v1/user/apitoken", Some(body), 201)
            .await;
        self.admin_api_token = created["token"]["id"].as_str().expect("id").to_owned();

        // The job runner schedules its periodic jobs at start.
        let deadline = Instant::now() + Duration::from_secs(30);
        self.job = loop {
            let jobs = self.admin(Method::GET, "/api/v1/jobs", None, 200).await;
            if let Some(id) = jobs["jobs"][0]["id"].as_i64() {
                break id;
            }
            assert!(Instant::now() < deadline, "no job was queued within 30 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };

        let left = expires + 500 - now_millis();
        if left > 0 {
            tokio::time::sleep(Duration::from_millis(left as u64)).await;
        }
    }

    /// The request of `row` for `who` on the repository of visibility `vis`, with throwaway
    /// objects made first for the routes that destroy or change what they name.
    async fn prepare(&self, row: &Row, who: Who, vis: Option<Vis>) -> Req {
        let fixture = vis.map(|v| (v.repo(), &self.images[&v]));
        let repo = || fixture.expect("a row on a repository").0;
        let image = || fixture.expect("a row on a repository").1;
        let own = who.own_account();
        let act = row.act;
        match act {
            Act::Route => {
                let Route::Management(path) = row.route else {
                    panic!("{row:?}: only management routes are sent as they are")
                };
                let path = path.replace("{org}", ORG);
                Req::to(match vis {
                    Some(vis) => path.replace("{ns}/{repo}", vis.repo()),
                    None => path,
                })
            }
            Act::ImportVulndb => Req::to("/api/v1/superuser/vulndb").json(json!([{
                "id": "MATRIX-1",
                "modified": "2024-01-01T00:00:00Z",
                "affected": [{ "package": { "ecosystem": "PyPI", "name": "matrix" }, "versions": ["1.0"] }],
            }])),
            Act::Register => Req::to("/api/v1/user/").json(
                json!({ "username": self.unique("zreg"), "password": "registered-password" }),
            ),
            Act::ChangePassword => {
                // To the same password: the caller's credentials stay valid for other rows.
                let password = self
                    .creds
                    .get(&who)
                    .map_or("not-a-password", |(_, password)| password.as_str());
                Req::to("/api/v1/user/")
                    .json(json!({ "password": password, "current_password": password }))
            }
            Act::CreateUser => Req::to("/api/v1/superuser/users/")
                .json(json!({ "username": self.unique("zuser"), "password": "created-password" })),
            Act::UpdateUser => {
                Req::to("/api/v1/superuser/users/target").json(json!({ "enabled": true }))
            }
            Act::DeleteUser => {
                let name = self.unique("zdel");
                let body = json!({ "username": name, "password": "doomed-password" });
                self.admin(Method::POST, "/api/v1/superuser/users/", Some(body), 201)
                    .await;
                Req::to(format!("/api/v1/superuser/users/{name}"))
            }
            Act::Job => Req::to(format!("/api/v1/jobs/{}", self.job)),
            Act::CreateOrg => {
                Req::to("/api/v1/organization/").json(json!({ "name": self.unique("zneworg") }))
            }
            Act::DeleteOrg => Req::to(format!(
                "/api/v1/organization/{}",
                self.throwaway_org().await
            )),
            Act::SetTeam => Req::to(format!(
                "/api/v1/organization/{ORG}/team/{}",
                self.unique("zt")
            ))
            .json(json!({ "role": "member" })),
            Act::DeleteTeam => {
                let team = self.unique("zd");
                self.team(ORG, &team, "member", None).await;
                Req::to(format!("/api/v1/organization/{ORG}/team/{team}"))
            }
            Act::Members => Req::to(format!("/api/v1/organization/{ORG}/team/readers/members")),
            Act::AddMember => Req::to(format!(
                "/api/v1/organization/{ORG}/team/scratch/members/target"
            )),
            Act::RemoveMember => {
                let short = self.unique("zm");
                self.org_robot(ORG, &short).await;
                let path = format!("/api/v1/organization/{ORG}/team/scratch/members/{ORG}+{short}");
                self.admin(Method::PUT, &path, None, 200).await;
                Req::to(path)
            }
            Act::CreateOrgRobot => Req::to(format!(
                "/api/v1/organization/{ORG}/robots/{}",
                self.unique("zc")
            )),
            Act::OrgRobot => Req::to(format!("/api/v1/organization/{ORG}/robots/pull")),
            Act::DeleteOrgRobot => {
                let short = self.unique("zd");
                self.org_robot(ORG, &short).await;
                Req::to(format!("/api/v1/organization/{ORG}/robots/{short}"))
            }
            Act::RegenerateOrgRobot => {
                let short = self.unique("zg");
                self.org_robot(ORG, &short).await;
                Req::to(format!(
                    "/api/v1/organization/{ORG}/robots/{short}/regenerate"
                ))
            }
            Act::CreateMyRobot => Req::to(format!("/api/v1/user/robots/{}", self.unique("zc"))),
            Act::MyRobot => Req::to("/api/v1/user/robots/mine"),
            Act::DeleteMyRobot | Act::RegenerateMyRobot => {
                // The caller's own throwaway robot; callers without an account name one
                // they could not have.
                let short = if own {
                    let short = self.unique("zr");
                    let path = format!("/api/v1/user/robots/{short}");
                    self.call_as(who, Method::PUT, &path, None, 201).await;
                    short
                } else {
                    "mine".to_owned()
                };
                let path = format!("/api/v1/user/robots/{short}");
                match act {
                    Act::RegenerateMyRobot => Req::to(format!("{path}/regenerate")),
                    _ => Req::to(path),
                }
            }
            Act::CreateRepo => Req::to("/api/v1/repository").json(json!({
                "namespace": ORG,
                "repository": self.unique("zz-new"),
                "visibility": "private",
            })),
            Act::Repos => Req::to(format!("/api/v1/repository?namespace={ORG}")),
            Act::DeleteRepo => {
                let vis = vis.expect("a row on a repository");
                Req::to(format!(
                    "/api/v1/repository/{}",
                    self.throwaway_repo(vis).await
                ))
            }
            Act::ChangeVisibility => {
                // To the visibility it has: other rows still see the repository as before.
                let vis = vis.expect("a row on a repository");
                Req::to(format!("/api/v1/repository/{}/changevisibility", repo()))
                    .json(json!({ "visibility": vis.as_str() }))
            }
            Act::SetUserPermission => Req::to(format!(
                "/api/v1/repository/{}/permissions/user/target",
                repo()
            ))
            .json(json!({ "role": "read" })),
            Act::RemoveUserPermission => {
                let short = self.unique("zp");
                self.org_robot(ORG, &short).await;
                let path = format!(
                    "/api/v1/repository/{}/permissions/user/{ORG}+{short}",
                    repo()
                );
                self.admin(Method::PUT, &path, Some(json!({ "role": "read" })), 200)
                    .await;
                Req::to(path)
            }
            Act::SetTeamPermission => Req::to(format!(
                "/api/v1/repository/{}/permissions/team/scratch",
                repo()
            ))
            .json(json!({ "role": "read" })),
            Act::RemoveTeamPermission => {
                let team = self.unique("zg");
                self.team(ORG, &team, "member", None).await;
                let path = format!("/api/v1/repository/{}/permissions/team/{team}", repo());
                self.admin(Method::PUT, &path, Some(json!({ "role": "read" })), 200)
                    .await;
                Req::to(path)
            }
            Act::CreateAppToken => {
                Req::to("/api/v1/user/apptoken").json(json!({ "title": self.unique("row ") }))
            }
            Act::AppToken => {
                let id = self
                    .app_tokens
                    .get(&who)
                    .unwrap_or(&self.app_tokens[&Who::Superuser]);
                Req::to(format!("/api/v1/user/apptoken/{id}"))
            }
            Act::RevokeAppToken => {
                let id = if own {
                    let body = json!({ "title": self.unique("doomed ") });
                    let created = self
                        .call_as(who, Method::POST, "/api/v1/user/apptoken", Some(body), 201)
                        .await
                        .json();
                    created["token"]["uuid"].as_str().expect("uuid").to_owned()
                } else {
                    self.app_tokens[&Who::Superuser].clone()
                };
                Req::to(format!("/api/v1/user/apptoken/{id}"))
            }
            Act::CreateApiToken => Req::to("/api/v1/user/apitoken")
                .json(json!({ "name": self.unique("row "), "scopes": "repo:read" })),
            Act::RevokeApiToken => {
                let id = if own {
                    let body = json!({ "name": self.unique("doomed "), "scopes": "repo:read" });
                    let created = self
                        .call_as(who, Method::POST, "/api/v1/user/apitoken", Some(body), 201)
                        .await
                        .json();
                    created["token"]["id"].as_str().expect("id").to_owned()
                } else {
                    self.admin_api_token.clone()
                };
                Req::to(format!("/api/v1/user/apitoken/{id}"))
            }
            Act::TagExpiry
            | Act::TagImmutable
            | Act::TagMutable
            | Act::DeleteTag
            | Act::PurgeTag => {
                let (tag, _) = self.fresh_tag(repo(), image(), "lc").await;
                let path = format!("/api/v1/repository/{}/tag/{tag}", repo());
                match act {
                    Act::TagExpiry => {
                        let tomorrow = now_millis() / 1000 + 86_400;
                        Req::to(path).json(json!({ "expiration": tomorrow }))
                    }
                    Act::TagImmutable => Req::to(path).json(json!({ "immutable": true })),
                    Act::TagMutable => {
                        let body = json!({ "immutable": true });
                        self.admin(Method::PUT, &path, Some(body), 204).await;
                        Req::to(path).json(json!({ "immutable": false }))
                    }
                    Act::PurgeTag => Req::to(format!("{path}?permanent=true")),
                    _ => Req::to(path),
                }
            }
            Act::RestoreTag => {
                // The tag moves on; restoring points it back at where it was.
                let (tag, before) = self.fresh_tag(repo(), image(), "lc").await;
                let moved = image().manifest(&format!("{tag} moved"));
                self.push_manifest(repo(), &tag, moved).await;
                Req::to(format!("/api/v1/repository/{}/tag/{tag}/restore", repo()))
                    .json(json!({ "manifest_digest": before.to_string() }))
            }
            Act::AddRepoRule | Act::DeleteRepoRule | Act::AddRepoPolicy | Act::DeleteRepoPolicy => {
                let vis = vis.expect("a row on a repository");
                let repo = self.throwaway_repo(vis).await;
                let (collection, body) = match act {
                    Act::AddRepoRule | Act::DeleteRepoRule => (
                        format!("/api/v1/repository/{repo}/immutabilityrules"),
                        json!({ "tag_pattern": "frozen-.*" }),
                    ),
                    _ => (
                        format!("/api/v1/repository/{repo}/autoprunepolicy/"),
                        json!({ "method": "number_of_tags", "value": 3, "tagPattern": "old-.*" }),
                    ),
                };
                match act {
                    Act::AddRepoRule | Act::AddRepoPolicy => Req::to(collection).json(body),
                    _ => {
                        let id = self.rule_or_policy(&collection, body).await;
                        let collection = collection.trim_end_matches('/');
                        Req::to(format!("{collection}/{id}"))
                    }
                }
            }
            Act::SetWindow
            | Act::AddOrgRule
            | Act::DeleteOrgRule
            | Act::AddOrgPolicy
            | Act::DeleteOrgPolicy
            | Act::RunRetention => {
                let org = self.throwaway_org().await;
                let rules = format!("/api/v1/organization/{org}/immutabilityrules");
                let policies = format!("/api/v1/organization/{org}/autoprunepolicy/");
                let rule = json!({ "tag_pattern": "frozen-.*" });
                let policy =
                    json!({ "method": "creation_date", "value": "7d", "tagPattern": "old-.*" });
                match act {
                    Act::SetWindow => Req::to(format!("/api/v1/organization/{org}/timemachine"))
                        .json(json!({ "tag_expiration_s": 7 * 86_400 })),
                    Act::AddOrgRule => Req::to(rules).json(rule),
                    Act::DeleteOrgRule => {
                        let id = self.rule_or_policy(&rules, rule).await;
                        Req::to(format!("{rules}/{id}"))
                    }
                    Act::AddOrgPolicy => Req::to(policies).json(policy),
                    Act::DeleteOrgPolicy => {
                        let id = self.rule_or_policy(&policies, policy).await;
                        Req::to(format!("{policies}{id}"))
                    }
                    _ => {
                        self.rule_or_policy(&policies, policy).await;
                        Req::to(format!("{policies}run"))
                    }
                }
            }
            Act::Quota => {
                let Route::Management(template) = row.route else {
                    panic!("{row:?}: quota rows are management routes")
                };
                let users = template.starts_with("/api/v1/superuser/users/");
                let namespace = if users {
                    let name = self.unique("zq");
                    let body = json!({ "username": name, "password": "quota-password" });
                    self.admin(Method::POST, "/api/v1/superuser/users/", Some(body), 201)
                        .await;
                    name
                } else {
                    self.throwaway_org().await
                };
                let mut path = template
                    .replace("{org}", &namespace)
                    .replace("{namespace}", &namespace)
                    .replace("{username}", &namespace);
                if !template.ends_with("/quota") {
                    let kind = if users { "users" } else { "organization" };
                    let quotas = format!("/api/v1/superuser/{kind}/{namespace}/quota");
                    let body = json!({ "limit_bytes": 1_u64 << 40 });
                    let quota = self.rule_or_policy(&quotas, body).await;
                    let limits = format!("/api/v1/organization/{namespace}/quota/{quota}/limit");
                    let body = json!({ "type": "Warning", "threshold_percent": 80 });
                    let limit = self.rule_or_policy(&limits, body).await;
                    path = path
                        .replace("{quota_id}", &quota.to_string())
                        .replace("{limit_id}", &limit.to_string());
                }
                let body = match row.method {
                    "POST" if template.ends_with("/limit") => {
                        Some(json!({ "type": "Warning", "threshold_percent": 50 }))
                    }
                    "POST" => Some(json!({ "limit_bytes": 1_u64 << 30 })),
                    "PUT" if template.ends_with("{limit_id}") => {
                        Some(json!({ "threshold_percent": 90 }))
                    }
                    "PUT" => Some(json!({ "limit_bytes": 1_u64 << 41 })),
                    _ => None,
                };
                match body {
                    Some(body) => Req::to(path).json(body),
                    None => Req::to(path),
                }
            }
            Act::MyQuota => {
                // Callers without an account name an id they could not own.
                let id = match self.creds.get(&who).filter(|_| own) {
                    Some((name, _)) => {
                        let quotas = format!("/api/v1/superuser/users/{name}/quota");
                        let listed = self.admin(Method::GET, &quotas, None, 200).await;
                        match listed[0]["id"].as_i64() {
                            Some(id) => id,
                            None => {
                                let body = json!({ "limit_bytes": 1_u64 << 40 });
                                self.rule_or_policy(&quotas, body).await
                            }
                        }
                    }
                    None => 1,
                };
                Req::to(format!("/api/v1/user/quota/{id}"))
            }
            Act::SetRepoScanPolicy
            | Act::DeleteRepoScanPolicy
            | Act::SetOrgScanPolicy
            | Act::DeleteOrgScanPolicy => {
                let path = match act {
                    Act::SetRepoScanPolicy | Act::DeleteRepoScanPolicy => {
                        let vis = vis.expect("a row on a repository");
                        let repo = self.throwaway_repo(vis).await;
                        format!("/api/v1/repository/{repo}/scanpolicy")
                    }
                    _ => {
                        let org = self.throwaway_org().await;
                        format!("/api/v1/organization/{org}/scanpolicy")
                    }
                };
                let policy =
                    json!({ "block_severity": "Critical", "allowlist": ["CVE-2000-0001"] });
                match act {
                    Act::SetRepoScanPolicy | Act::SetOrgScanPolicy => Req::to(path).json(policy),
                    _ => {
                        self.admin(Method::PUT, &path, Some(policy), 200).await;
                        Req::to(path)
                    }
                }
            }
            Act::Ping => Req::to("/v2/"),
            Act::Catalog => Req::to("/v2/_catalog"),
            Act::Tags => Req::to(format!("/v2/{}/tags/list", repo())).repo(repo()),
            Act::ManifestScan => {
                let Route::Management(path) = row.route else {
                    panic!("{row:?}: a management route")
                };
                Req::to(
                    path.replace("{ns}/{repo}", repo())
                        .replace("{digest}", &image().manifest.to_string()),
                )
            }
            Act::Manifest => Req::to(format!("/v2/{}/manifests/v1", repo()))
                .header("accept", OCI_MANIFEST.to_owned())
                .repo(repo()),
            Act::PutManifest => {
                let tag = self.unique("row");
                Req::to(format!("/v2/{}/manifests/{tag}", repo()))
                    .bytes(OCI_MANIFEST, image().manifest(&tag))
                    .repo(repo())
            }
            Act::DeleteManifest => {
                let tag = self.unique("doomed");
                let digest = self
                    .push_manifest(repo(), &tag, image().manifest(&tag))
                    .await;
                Req::to(format!("/v2/{}/manifests/{digest}", repo())).repo(repo())
            }
            Act::Blob => Req::to(format!("/v2/{}/blobs/{}", repo(), image().layer.0)).repo(repo()),
            Act::DeleteBlob => {
                let data = self.unique("a doomed blob ").into_bytes();
                let digest = self.push_blob(repo(), &data).await;
                Req::to(format!("/v2/{}/blobs/{digest}", repo())).repo(repo())
            }
            Act::StartUpload => Req::to(format!("/v2/{}/blobs/uploads/", repo())).repo(repo()),
            Act::StartUploadNew => {
                let new = format!("{ORG}/{}", self.unique("zz-push"));
                Req::to(format!("/v2/{new}/blobs/uploads/")).repo(&new)
            }
            Act::UploadStatus | Act::CancelUpload => {
                Req::to(self.start_upload(repo()).await).repo(repo())
            }
            Act::UploadChunk => {
                let data = self.unique("a chunk ").into_bytes();
                let range = format!("0-{}", data.len() - 1);
                Req::to(self.start_upload(repo()).await)
                    .bytes("application/octet-stream", data)
                    .header("content-range", range)
                    .repo(repo())
            }
            Act::FinishUpload => {
                let data = self.unique("an uploaded blob ").into_bytes();
                let location = self.start_upload(repo()).await;
                let digest = Digest::sha256_of(&data);
                Req::to(format!("{location}?digest={digest}"))
                    .bytes("application/octet-stream", data)
                    .repo(repo())
            }
            Act::Referrers => {
                Req::to(format!("/v2/{}/referrers/{}", repo(), image().manifest)).repo(repo())
            }
            Act::TokenGet => Req::to(format!(
                "{}?service={}&scope={}",
                self.realm,
                encode(&self.service),
                encode(&format!("repository:{}:pull", Vis::Private.repo()))
            )),
            Act::TokenPost => {
                let (username, password) = self.creds.get(&who).cloned().unwrap_or_default();
                let form = [
                    ("grant_type", "password"),
                    ("username", &username),
                    ("password", &password),
                    ("service", &self.service),
                    ("scope", &format!("repository:{}:pull", Vis::Private.repo())),
                ]
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect::<Vec<_>>()
                .join("&");
                Req::to(&self.realm).bytes("application/x-www-form-urlencoded", form.into_bytes())
            }
        }
    }

    /// A registry token for `who` from the token service, or its refusal.
    async fn registry_token(&self, who: Who, scope: Option<&str>) -> Result<String, Answer> {
        let mut path = format!("{}?service={}", self.realm, encode(&self.service));
        if let Some(scope) = scope {
            path.push_str(&format!("&scope={}", encode(scope)));
        }
        let auth = self.basic(who);
        let answer = self
            .send(Method::GET, &path, auth.as_deref(), None, &[])
            .await;
        if answer.status != 200 {
            return Err(answer);
        }
        Ok(answer.json()["token"].as_str().expect("a token").to_owned())
    }

    /// Sends one case; returns what went wrong.
    async fn run(&self, row: &Row, who: Who, vis: Option<Vis>, via: Via) -> Vec<String> {
        let req = self.prepare(row, who, vis).await;
        let want = expected(row, who, vis, via, self.config);
        let token_scope = scope(row.needs, req.repo.as_deref());
        let route = match row.route {
            Route::Management(path) => path.to_owned(),
            Route::Registry(label) => format!("/v2 {label}"),
            Route::TokenService(path) => path.to_owned(),
        };
        let on = vis.map_or(String::new(), |v| {
            format!(" on the {} repository", v.as_str())
        });
        let case = format!(
            "{} {route}{on} as {who:?} via {via:?} ({})",
            row.method, req.path
        );
        let mut problems = Vec::new();
        if let Route::Management(template) = row.route
            && !instance_of(&req.path, template)
        {
            problems.push(format!("{case}: the request is not of its row's route"));
        }
        let auth = match via {
            Via::Basic => self.basic(who),
            Via::Form => None,
            Via::Token => match self.registry_token(who, token_scope.as_deref()).await {
                Ok(token) => Some(format!("Bearer {token}")),
                Err(refused) => {
                    if refused.status != want {
                        problems.push(format!(
                            "{case}: expected {want}, got {} from the token service: {}",
                            refused.status,
                            refused.text()
                        ));
                    }
                    return problems;
                }
            },
        };
        let answer = self
            .send(
                Method::from_bytes(row.method.as_bytes()).expect("a method"),
                &req.path,
                auth.as_deref(),
                req.body.as_ref(),
                &req.headers,
            )
            .await;
        if answer.status != want {
            problems.push(format!(
                "{case}: expected {want}, got {}: {}",
                answer.status,
                answer.text()
            ));
            return problems;
        }
        if answer.status == 401 {
            problems.extend(self.challenge_problem(
                row,
                who,
                token_scope.as_deref(),
                &answer.challenge,
                &case,
            ));
        }
        if answer.status == 200 {
            problems.extend(self.listing_problem(row, who, via, &answer, &case));
        }
        problems
    }

    /// A 401 tells the client how to authenticate: Basic on `/api/v1`; on `/v2` the token
    /// service and, unless the credentials themselves failed, the scope to ask for.
    fn challenge_problem(
        &self,
        row: &Row,
        who: Who,
        scope: Option<&str>,
        challenge: &str,
        case: &str,
    ) -> Option<String> {
        let fine = match row.route {
            Route::Management(_) => challenge.starts_with("Basic "),
            Route::Registry(_) => {
                challenge.starts_with("Bearer ")
                    && quoted_param(challenge, "realm").as_ref() == Some(&self.realm)
                    && quoted_param(challenge, "service").as_ref() == Some(&self.service)
                    && (who.revoked() || quoted_param(challenge, "scope").as_deref() == scope)
            }
            Route::TokenService(_) => true,
        };
        (!fine).then(|| format!("{case}: 401 with the challenge {challenge:?}, scope {scope:?}"))
    }

    /// Listings show exactly the fixture repositories the caller may pull.
    fn listing_problem(
        &self,
        row: &Row,
        who: Who,
        via: Via,
        answer: &Answer,
        case: &str,
    ) -> Option<String> {
        let body = answer.json();
        let names: Vec<String> = match row.act {
            Act::Catalog => body["repositories"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect(),
            Act::Repos => body["repositories"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["namespace"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    )
                })
                .collect(),
            _ => return None,
        };
        let wrong: Vec<_> = [Vis::Private, Vis::Public]
            .into_iter()
            .filter(|vis| {
                let may = allowed(Needs::Pull, who, Some(*vis), via, self.config);
                names.iter().any(|n| n == vis.repo()) != may
            })
            .map(Vis::repo)
            .collect();
        (!wrong.is_empty())
            .then(|| format!("{case}: wrongly listed or left out: {wrong:?} (listed: {names:?})"))
    }

    /// Every case of `rows` for `callers`, concurrently; returns the number of cases and the
    /// failures.
    async fn run_all(&self, rows: &[Row], callers: &[Who]) -> (usize, Vec<String>) {
        let cases: Vec<_> = rows
            .iter()
            .flat_map(|row| {
                callers.iter().flat_map(move |who| {
                    row.visibilities().iter().flat_map(move |vis| {
                        row.vias().iter().map(move |via| (row, *who, *vis, *via))
                    })
                })
            })
            .collect();
        let count = cases.len();
        let failures = futures::stream::iter(cases)
            .map(|(row, who, vis, via)| self.run(row, who, vis, via))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        (count, failures)
    }

    /// `(METHOD, path)` of every operation of the served OpenAPI document.
    async fn documented_operations(&self) -> BTreeSet<(String, String)> {
        let answer = self
            .send(Method::GET, "/api/v1/openapi.json", None, None, &[])
            .await;
        assert_eq!(answer.status, 200, "GET /api/v1/openapi.json");
        let doc = answer.json();
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    ops.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    /// The `(label, method)` of every `/v2` route the server serves: each kind of path is
    /// sent every method as the superuser, and whatever was not answered 405 (unsupported)
    /// is read back from the route labels of the request metrics.
    async fn served_registry_routes(&self) -> BTreeSet<(String, String)> {
        let zero = format!("sha256:{}", "0".repeat(64));
        let paths = [
            "/v2/".to_owned(),
            "/v2/_catalog".to_owned(),
            "/v2/acme/zz-probe/tags/list".to_owned(),
            "/v2/acme/zz-probe/manifests/probe".to_owned(),
            format!("/v2/acme/zz-probe/blobs/{zero}"),
            "/v2/acme/zz-probe/blobs/uploads/".to_owned(),
            "/v2/acme/zz-probe/blobs/uploads/no-such-upload".to_owned(),
            format!("/v2/acme/zz-probe/referrers/{zero}"),
        ];
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ];
        let auth = self.basic(Who::Superuser);
        for path in &paths {
            for method in &methods {
                self.send(method.clone(), path, auth.as_deref(), None, &[])
                    .await;
            }
        }
        let metrics = self.send(Method::GET, "/metrics", None, None, &[]).await;
        assert_eq!(metrics.status, 200, "GET /metrics");
        let mut served = BTreeSet::new();
        for line in String::from_utf8_lossy(&metrics.body).lines() {
            let Some(labels) = line.strip_prefix("bulwark_http_requests_total{") else {
                continue;
            };
            let label = |key: &str| quoted_param(labels, key).unwrap_or_default();
            let route = label("route");
            // Management routes are labelled by their path, others by a name.
            if route.starts_with('/') || ["other", "unknown"].contains(&route.as_str()) {
                continue;
            }
            if label("status") != "405" {
                served.insert((route, label("method")));
            }
        }
        served
    }
}

fn password_of(user: &str) -> String {
    format!("{user}-secret-password")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_caller_on_private_and_public_repositories() {
    let started = Instant::now();
    let mut matrix = Matrix::start(Config {
        anonymous_access: true,
        user_creation: false,
    });
    let rows = &TABLE;
    // Everything wrong is reported at the end, the table's gaps with the failed cases.
    let mut problems = Vec::new();

    let management: BTreeSet<_> = rows
        .iter()
        .filter_map(|row| match row.route {
            Route::Management(path) => Some((row.method.to_string(), path.to_owned())),
            _ => None,
        })
        .collect();
    let documented = matrix.documented_operations().await;
    for (method, path) in management.difference(&documented) {
        problems.push(format!(
            "a row for {method} {path}, which the OpenAPI document lacks"
        ));
    }
    for (method, path) in documented.difference(&management) {
        problems.push(format!(
            "no row for {method} {path} of the OpenAPI document"
        ));
    }
    let registry: BTreeSet<_> = rows
        .iter()
        .filter_map(|row| match row.route {
            Route::Registry(label) => Some((label.to_owned(), row.method.to_string())),
            _ => None,
        })
        .collect();
    let listed: BTreeSet<_> = bulwark_api::REGISTRY_ROUTES
        .iter()
        .map(|(label, method)| (label.to_string(), method.to_string()))
        .collect();
    for (label, method) in registry.difference(&listed) {
        problems.push(format!(
            "a row for {method} /v2 {label}, not in REGISTRY_ROUTES"
        ));
    }
    for (label, method) in listed.difference(&registry) {
        problems.push(format!(
            "no row for {method} /v2 {label} of REGISTRY_ROUTES"
        ));
    }

    matrix.set_up().await;
    let set_up = started.elapsed();
    let (cases, failures) = matrix.run_all(rows, &EVERYONE).await;
    problems.extend(failures);

    let served = matrix.served_registry_routes().await;
    for (label, method) in served.difference(&listed) {
        problems.push(format!(
            "{method} /v2 {label} is served but not in REGISTRY_ROUTES"
        ));
    }
    for (label, method) in listed.difference(&served) {
        problems.push(format!(
            "{method} /v2 {label} is in REGISTRY_ROUTES but not served"
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problems ({cases} cases):\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!(
        "authorization matrix: {} rows × {} callers → {cases} cases (set up in {set_up:.1?}, \
         {:.1?} in all)",
        rows.len(),
        EVERYONE.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_anonymous_callers_without_anonymous_access() {
    let mut matrix = Matrix::start(Config {
        anonymous_access: false,
        user_creation: true,
    });
    matrix.set_up().await;
    let (cases, failures) = matrix.run_all(&TABLE, &[Who::Anonymous]).await;
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
