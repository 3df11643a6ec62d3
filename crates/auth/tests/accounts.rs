//! The administration operations over a real `SqlMetaStore` (SQLite in a temp dir): what
//! they store, what they refuse, and the events they emit.

use std::sync::Arc;
use std::time::Duration;

use bulwark_auth::scope::{ApiScope, ApiScopes};
use bulwark_auth::{
    Accounts, AuthError, AuthSettings, Authenticator, ClientInfo, Credential, Identity, Principal,
    secret,
};
use bulwark_events::MemorySink;
use bulwark_meta::{
    Account, AccountKind, Grantee, IdentityStore, RepoRole, SqlMetaStore, SqlOptions, TeamRole,
    TokenKind, Visibility, now_millis,
};

struct Env {
    accounts: Accounts,
    store: Arc<SqlMetaStore>,
    events: Arc<MemorySink>,
    client: ClientInfo,
    _dir: tempfile::TempDir,
}

fn settings(user_creation: bool) -> AuthSettings {
    AuthSettings {
        anonymous_access: true,
        user_creation,
        tokens_only_on_registry: false,
        issuer: "bulwark-test".into(),
        service: "bulwark-test".into(),
        token_ttl: Duration::from_secs(300),
        refresh_ttl: Duration::from_secs(3600),
        login_failures_before_backoff: 5,
        max_login_backoff: Duration::from_secs(60),
    }
}

async fn env_with(user_creation: bool) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqlMetaStore::open_sqlite(&dir.path().join("meta.db"), &SqlOptions::default())
            .await
            .unwrap(),
    );
    let events = Arc::new(MemorySink::default());
    let auth = Authenticator::new(store.clone(), events.clone(), settings(user_creation))
        .await
        .unwrap();
    Env {
        accounts: Accounts::new(Arc::new(auth)),
        store,
        events,
        client: ClientInfo {
            address: Some("192.0.2.7".parse().unwrap()),
            user_agent: Some("accounts-test".into()),
        },
        _dir: dir,
    }
}

async fn env() -> Env {
    env_with(false).await
}

fn as_user(account: &Account) -> Identity {
    Identity {
        principal: Principal::User {
            id: account.id,
            name: account.name.clone(),
            superuser: account.superuser,
        },
        credential: Credential::Password,
    }
}

fn as_robot(account: &Account) -> Identity {
    Identity {
        principal: Principal::Robot {
            id: account.id,
            name: account.name.clone(),
            owner_id: account.owner_id.unwrap(),
        },
        credential: Credential::RobotToken,
    }
}

impl Env {
    /// The bootstrap superuser, as an identity.
    async fn admin(&self) -> Identity {
        self.accounts
            .ensure_admin(Some("admin-password"))
            .await
            .unwrap();
        as_user(&self.accounts.user("admin").await.unwrap())
    }

    async fn user(&self, name: &str) -> (Account, Identity) {
        let admin = self.admin().await;
        let account = self
            .accounts
            .create_user(&admin, &self.client, name, None, "password1", false)
            .await
            .unwrap();
        let identity = as_user(&account);
        (account, identity)
    }

    fn kinds(&self) -> Vec<String> {
        self.events.kinds()
    }

    fn last_event(&self) -> bulwark_events::Event {
        self.events.0.lock().unwrap().last().unwrap().clone()
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, AuthError>) {
    assert!(matches!(r, Err(AuthError::Invalid(_))), "{r:?}");
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, AuthError>) {
    assert!(matches!(r, Err(AuthError::NotFound(_))), "{r:?}");
}

#[tokio::test]
async fn ensure_admin_creates_the_first_superuser_once() {
    let env = env().await;
    let generated = env.accounts.ensure_admin(None).await.unwrap().unwrap();
    assert!(generated.len() >= 20, "{generated}");
    let admin = env.accounts.user("admin").await.unwrap();
    assert!(admin.superuser && admin.enabled);
    let record = env.store.password_record("admin").await.unwrap().unwrap();
    assert!(bulwark_auth::password::verify_password(
        &generated,
        record.password_hash.as_deref().unwrap()
    ));
    // A superuser exists: nothing happens, whatever the password.
    assert_eq!(env.accounts.ensure_admin(None).await.unwrap(), None);
    assert_eq!(
        env.accounts
            .ensure_admin(Some("another-password"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(env.kinds(), ["user.create"]);
    assert_eq!(env.last_event().actor.kind, "system");

    // A given password follows the policy and is never echoed back.
    let env = self::env().await;
    assert_invalid(env.accounts.ensure_admin(Some("short")).await);
    assert_eq!(
        env.accounts
            .ensure_admin(Some("long enough"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn users_are_validated_and_the_last_superuser_is_kept() {
    let env = env().await;
    let admin = env.admin().await;
    let c = &env.client;
    for bad in [
        "Alice", "a.b", "a+b", "a/b", "-ab", "ab-", "a___b", "library", "é1", "",
    ] {
        assert_invalid(
            env.accounts
                .create_user(&admin, c, bad, None, "password1", false)
                .await,
        );
    }
    assert_invalid(
        env.accounts
            .create_user(&admin, c, "alice", None, "short", false)
            .await,
    );
    assert_invalid(
        env.accounts
            .create_user(&admin, c, "alice", None, &"x".repeat(1025), false)
            .await,
    );
    assert_invalid(
        env.accounts
            .create_user(&admin, c, "alice", Some("not an email"), "password1", false)
            .await,
    );
    let alice = env
        .accounts
        .create_user(
            &admin,
            c,
            "alice",
            Some("a@example.com"),
            "password1",
            false,
        )
        .await
        .unwrap();
    assert_eq!(alice.kind, AccountKind::User);
    assert!(!alice.superuser);
    let event = env.last_event();
    assert_eq!(event.kind, "user.create");
    assert_eq!(event.actor.name, "admin");
    assert_eq!(event.origin.user_agent.as_deref(), Some("accounts-test"));
    assert_eq!(event.target.as_deref(), Some("alice"));
    assert!(matches!(
        env.accounts
            .create_user(&admin, c, "alice", None, "password1", false)
            .await,
        Err(AuthError::Conflict(_))
    ));

    // The only enabled superuser can be neither demoted, disabled nor deleted.
    assert_invalid(env.accounts.set_superuser(&admin, c, "admin", false).await);
    assert_invalid(env.accounts.set_enabled(&admin, c, "admin", false).await);
    assert_invalid(env.accounts.delete_user(&admin, c, "admin").await);
    let alice = env
        .accounts
        .set_superuser(&admin, c, "alice", true)
        .await
        .unwrap();
    assert!(alice.superuser);
    assert!(
        !env.accounts
            .set_enabled(&admin, c, "admin", false)
            .await
            .unwrap()
            .enabled
    );
    // Alice is now the only enabled superuser.
    assert_invalid(env.accounts.delete_user(&admin, c, "alice").await);
    env.accounts
        .set_enabled(&admin, c, "admin", true)
        .await
        .unwrap();
    env.accounts.delete_user(&admin, c, "alice").await.unwrap();
    assert_not_found(env.accounts.user("alice").await);
    assert_not_found(env.accounts.delete_user(&admin, c, "alice").await);

    env.accounts
        .set_password(&admin, c, "admin", "new-password")
        .await
        .unwrap();
    let record = env.store.password_record("admin").await.unwrap().unwrap();
    assert!(bulwark_auth::password::verify_password(
        "new-password",
        record.password_hash.as_deref().unwrap()
    ));
    assert_eq!(
        env.kinds(),
        [
            "user.create",
            "user.create",
            "user.superuser",
            "user.disable",
            "user.enable",
            "user.delete",
            "password.change"
        ]
    );
}

#[tokio::test]
async fn self_registration_follows_the_setting() {
    let env = env_with(false).await;
    assert!(matches!(
        env.accounts
            .register_user(&env.client, "bob", None, "password1")
            .await,
        Err(AuthError::Denied)
    ));
    let env = env_with(true).await;
    let bob = env
        .accounts
        .register_user(&env.client, "bob", None, "password1")
        .await
        .unwrap();
    assert!(!bob.superuser);
    assert_eq!(env.last_event().actor.kind, "anonymous");
}

#[tokio::test]
async fn organizations_start_with_an_owners_team_holding_their_creator() {
    let env = env().await;
    let (alice, alice_id) = env.user("alice").await;
    let c = &env.client;
    let org = env
        .accounts
        .create_organization(&alice_id, c, "acme", Some("ops@acme.example"))
        .await
        .unwrap();
    assert_eq!(org.kind, AccountKind::Organization);
    let teams = env.accounts.teams_with_members("acme").await.unwrap();
    assert_eq!(teams.len(), 1);
    let (owners, members) = &teams[0];
    assert_eq!(
        (owners.name.as_str(), owners.role),
        ("owners", TeamRole::Admin)
    );
    assert_eq!(members, std::slice::from_ref(&alice));
    let (_, members) = env.accounts.team_members("acme", "owners").await.unwrap();
    assert_eq!(members, std::slice::from_ref(&alice));
    assert_eq!(
        env.accounts.memberships(alice.id).await.unwrap(),
        [(org.clone(), TeamRole::Admin)]
    );

    // Names: taken (by a user too), invalid, reserved for superusers.
    assert!(matches!(
        env.accounts
            .create_organization(&alice_id, c, "alice", None)
            .await,
        Err(AuthError::Conflict(_))
    ));
    assert_invalid(
        env.accounts
            .create_organization(&alice_id, c, "Acme", None)
            .await,
    );
    assert_invalid(
        env.accounts
            .create_organization(&alice_id, c, "library", None)
            .await,
    );
    let admin = env.admin().await;
    env.accounts
        .create_organization(&admin, c, "library", None)
        .await
        .unwrap();
    // Robots have no organizations of their own.
    let (robot, _) = env
        .accounts
        .create_robot(&alice_id, c, "acme", "ci", None)
        .await
        .unwrap();
    assert_invalid(
        env.accounts
            .create_organization(&as_robot(&robot), c, "robotorg", None)
            .await,
    );

    // An organization is not a user, and the other way round.
    assert_not_found(env.accounts.organization("alice").await);
    assert_not_found(env.accounts.delete_organization(&admin, c, "alice").await);
    env.accounts
        .delete_organization(&alice_id, c, "acme")
        .await
        .unwrap();
    assert_not_found(env.accounts.organization("acme").await);
    assert_not_found(env.accounts.robot("acme", "ci").await);
    assert!(env.kinds().contains(&"org.delete".to_owned()));
}

#[tokio::test]
async fn teams_and_members() {
    let env = env().await;
    let (_, alice) = env.user("alice").await;
    let (bob, _) = env.user("bob").await;
    let c = &env.client;
    env.accounts
        .create_organization(&alice, c, "acme", None)
        .await
        .unwrap();
    env.accounts
        .create_organization(&alice, c, "other", None)
        .await
        .unwrap();

    let (team, created) = env
        .accounts
        .set_team(
            &alice,
            c,
            "acme",
            "devs",
            TeamRole::Member,
            Some("Developers"),
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(team.description.as_deref(), Some("Developers"));
    let (team, created) = env
        .accounts
        .set_team(
            &alice,
            c,
            "acme",
            "devs",
            TeamRole::Creator,
            Some("Developers"),
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(team.role, TeamRole::Creator);
    assert_eq!(
        env.store
            .team(team.organization_id, "devs")
            .await
            .unwrap()
            .unwrap()
            .role,
        TeamRole::Creator
    );
    // Nothing to change: no event.
    let before = env.kinds().len();
    env.accounts
        .set_team(&alice, c, "acme", "devs", TeamRole::Creator, None)
        .await
        .unwrap();
    assert_eq!(env.kinds().len(), before);
    assert_invalid(
        env.accounts
            .set_team(
                &alice,
                c,
                "acme",
                "devs",
                TeamRole::Creator,
                Some("Changed"),
            )
            .await,
    );
    assert_invalid(
        env.accounts
            .set_team(&alice, c, "acme", "Bad-Name", TeamRole::Member, None)
            .await,
    );
    assert_not_found(
        env.accounts
            .set_team(&alice, c, "nosuchorg", "devs", TeamRole::Member, None)
            .await,
    );
    // The owners team stays an admin team and stays.
    assert_invalid(
        env.accounts
            .set_team(&alice, c, "acme", "owners", TeamRole::Member, None)
            .await,
    );
    assert_invalid(env.accounts.delete_team(&alice, c, "acme", "owners").await);

    // Members: users, and robots of this organization only.
    let member = env
        .accounts
        .add_team_member(&alice, c, "acme", "devs", "bob")
        .await
        .unwrap();
    assert_eq!(member, bob);
    let ev = env.last_event();
    assert_eq!(
        (ev.kind.as_str(), ev.target.as_deref()),
        ("team.member.add", Some("bob"))
    );
    env.accounts
        .create_robot(&alice, c, "acme", "ci", None)
        .await
        .unwrap();
    env.accounts
        .create_robot(&alice, c, "other", "ci", None)
        .await
        .unwrap();
    env.accounts
        .add_team_member(&alice, c, "acme", "devs", "acme+ci")
        .await
        .unwrap();
    assert_invalid(
        env.accounts
            .add_team_member(&alice, c, "acme", "devs", "other+ci")
            .await,
    );
    assert_invalid(
        env.accounts
            .add_team_member(&alice, c, "acme", "devs", "other")
            .await,
    );
    assert_not_found(
        env.accounts
            .add_team_member(&alice, c, "acme", "devs", "nobody")
            .await,
    );
    let (_, members) = env.accounts.team_members("acme", "devs").await.unwrap();
    let names: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["acme+ci", "bob"]);

    env.accounts
        .remove_team_member(&alice, c, "acme", "devs", "bob")
        .await
        .unwrap();
    assert_not_found(
        env.accounts
            .remove_team_member(&alice, c, "acme", "devs", "bob")
            .await,
    );
    // The owners team keeps its last member.
    assert_invalid(
        env.accounts
            .remove_team_member(&alice, c, "acme", "owners", "alice")
            .await,
    );
    env.accounts
        .delete_team(&alice, c, "acme", "devs")
        .await
        .unwrap();
    assert_not_found(env.accounts.team_members("acme", "devs").await);
    assert_eq!(
        env.kinds()
            .into_iter()
            .filter(|k| k.starts_with("team."))
            .collect::<Vec<_>>(),
        [
            "team.create",
            "team.role",
            "team.member.add",
            "team.member.add",
            "team.member.remove",
            "team.delete"
        ]
    );
}

#[tokio::test]
async fn robots_get_a_token_once_and_can_regenerate_it() {
    let env = env().await;
    let (alice_account, alice) = env.user("alice").await;
    let c = &env.client;
    env.accounts
        .create_organization(&alice, c, "acme", None)
        .await
        .unwrap();
    for ns in ["acme", "alice"] {
        let (robot, token) = env
            .accounts
            .create_robot(&alice, c, ns, "deployer", Some("deploys"))
            .await
            .unwrap();
        assert_eq!(robot.name, format!("{ns}+deployer"));
        assert_eq!(robot.kind, AccountKind::Robot);
        assert_eq!(robot.description.as_deref(), Some("deploys"));
        let secret_part = secret::parse_robot_token(&token).unwrap();
        let record = env.store.robot_record(&robot.name).await.unwrap().unwrap();
        assert!(secret::secret_matches(secret_part, &record.token_hash));
        // The event names the robot, never the token.
        let ev = env.last_event();
        assert_eq!(ev.kind, "robot.create");
        assert_eq!(ev.target.as_deref(), Some(robot.name.as_str()));
        assert!(!serde_json::to_string(&ev).unwrap().contains(&token));

        let (_, new_token) = env
            .accounts
            .regenerate_robot_token(&alice, c, ns, "deployer")
            .await
            .unwrap();
        assert_ne!(new_token, token);
        let record = env.store.robot_record(&robot.name).await.unwrap().unwrap();
        assert!(!secret::secret_matches(secret_part, &record.token_hash));
        assert!(secret::secret_matches(
            secret::parse_robot_token(&new_token).unwrap(),
            &record.token_hash
        ));
        assert_eq!(env.accounts.robots(ns).await.unwrap().len(), 1);
    }
    assert_eq!(
        env.accounts
            .robot("alice", "deployer")
            .await
            .unwrap()
            .owner_id,
        Some(alice_account.id)
    );
    assert!(matches!(
        env.accounts
            .create_robot(&alice, c, "acme", "deployer", None)
            .await,
        Err(AuthError::Conflict(_))
    ));
    for bad in ["x", "1abc", "Abc", "a-b", "a+b", "a.b"] {
        assert_invalid(
            env.accounts
                .create_robot(&alice, c, "acme", bad, None)
                .await,
        );
    }
    assert_not_found(
        env.accounts
            .create_robot(&alice, c, "nosuch", "ci", None)
            .await,
    );
    // Robots live only under namespaces.
    assert_not_found(
        env.accounts
            .create_robot(&alice, c, "acme+deployer", "ci", None)
            .await,
    );
    env.accounts
        .delete_robot(&alice, c, "acme", "deployer")
        .await
        .unwrap();
    assert_not_found(env.accounts.robot("acme", "deployer").await);
    assert_not_found(
        env.accounts
            .delete_robot(&alice, c, "acme", "deployer")
            .await,
    );
    assert!(env.kinds().contains(&"robot.delete".to_owned()));
}

#[tokio::test]
async fn app_and_api_tokens() {
    let env = env().await;
    let (_, alice) = env.user("alice").await;
    let (_, bob) = env.user("bob").await;
    let c = &env.client;

    let expiry = now_millis() + 86_400_000;
    let (record, token) = env
        .accounts
        .create_app_token(&alice, c, "laptop", Some(expiry))
        .await
        .unwrap();
    let (id, secret_part) = secret::parse_token(TokenKind::App, &token).unwrap();
    assert_eq!(id, record.id);
    let stored = env.store.token(TokenKind::App, id).await.unwrap().unwrap();
    assert!(secret::secret_matches(secret_part, &stored.secret_hash));
    assert_eq!(
        (stored.name.as_str(), stored.expires_at),
        ("laptop", Some(expiry))
    );
    let ev = env.last_event();
    assert_eq!(
        (ev.kind.as_str(), ev.target.as_deref()),
        ("apptoken.create", Some(id))
    );
    assert!(!serde_json::to_string(&ev).unwrap().contains(secret_part));

    assert_eq!(env.accounts.app_tokens(&alice).await.unwrap().len(), 1);
    assert!(env.accounts.app_tokens(&bob).await.unwrap().is_empty());
    // Another user's token is as good as missing.
    assert_not_found(env.accounts.app_token(&bob, id).await);
    assert_not_found(env.accounts.revoke_app_token(&bob, c, id).await);
    env.accounts.revoke_app_token(&alice, c, id).await.unwrap();
    assert!(
        env.accounts
            .app_token(&alice, id)
            .await
            .unwrap()
            .revoked_at
            .is_some()
    );
    // Revoking again changes nothing and emits nothing.
    let before = env.kinds().len();
    env.accounts.revoke_app_token(&alice, c, id).await.unwrap();
    assert_eq!(env.kinds().len(), before);

    assert_invalid(env.accounts.create_app_token(&alice, c, "", None).await);
    assert_invalid(env.accounts.create_app_token(&alice, c, "a\nb", None).await);
    assert_invalid(
        env.accounts
            .create_app_token(&alice, c, "old", Some(now_millis() - 1))
            .await,
    );

    // API tokens: scopes stored as given, never beyond the creator.
    let scopes = ApiScopes::parse("repo:read org:admin").unwrap();
    let (record, token) = env
        .accounts
        .create_api_token(&alice, c, "ci", &scopes, None)
        .await
        .unwrap();
    assert!(secret::parse_token(TokenKind::Api, &token).is_some());
    assert_eq!(record.scopes, "repo:read org:admin");
    assert_eq!(env.last_event().kind, "apitoken.create");
    assert_invalid(
        env.accounts
            .create_api_token(&alice, c, "none", &ApiScopes::default(), None)
            .await,
    );
    let superuser = ApiScopes::parse("super:user").unwrap();
    assert!(matches!(
        env.accounts
            .create_api_token(&alice, c, "su", &superuser, None)
            .await,
        Err(AuthError::Denied)
    ));
    let admin = env.admin().await;
    env.accounts
        .create_api_token(&admin, c, "su", &superuser, None)
        .await
        .unwrap();
    let with_token = Identity {
        credential: Credential::ApiToken {
            id: record.id.clone(),
            scopes: scopes.clone(),
        },
        ..alice.clone()
    };
    env.accounts
        .create_api_token(
            &with_token,
            c,
            "narrower",
            &ApiScopes([ApiScope::RepoRead].into()),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(
        env.accounts
            .create_api_token(
                &with_token,
                c,
                "wider",
                &ApiScopes::parse("repo:write").unwrap(),
                None
            )
            .await,
        Err(AuthError::Denied)
    ));
    assert_eq!(env.accounts.api_tokens(&alice).await.unwrap().len(), 2);
    env.accounts
        .revoke_api_token(&alice, c, &record.id)
        .await
        .unwrap();
    assert_eq!(env.last_event().kind, "apitoken.revoke");
    // Application and API tokens are separate id spaces.
    assert_not_found(env.accounts.app_token(&alice, &record.id).await);
}

#[tokio::test]
async fn repositories_and_their_creators() {
    let env = env().await;
    let (_, alice) = env.user("alice").await;
    let (bob_account, bob) = env.user("bob").await;
    let c = &env.client;
    env.accounts
        .create_organization(&alice, c, "acme", None)
        .await
        .unwrap();
    env.accounts
        .set_team(&alice, c, "acme", "makers", TeamRole::Creator, None)
        .await
        .unwrap();
    env.accounts
        .add_team_member(&alice, c, "acme", "makers", "bob")
        .await
        .unwrap();

    // An organization admin creates without a grant; a creator gets admin on what it creates.
    let app = env
        .accounts
        .create_repository(&alice, c, "acme", "app", Visibility::Private)
        .await
        .unwrap();
    assert!(env.accounts.grants("acme/app").await.unwrap().is_empty());
    let tool = env
        .accounts
        .create_repository(&bob, c, "acme", "tools/cli", Visibility::Public)
        .await
        .unwrap();
    assert_eq!(
        (tool.name.as_str(), tool.visibility),
        ("acme/tools/cli", Visibility::Public)
    );
    let grants = env.accounts.grants("acme/tools/cli").await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grantee, Grantee::Account(bob_account.id));
    assert_eq!(grants[0].role, RepoRole::Admin);
    // A user in its own namespace owns everything there already.
    env.accounts
        .create_repository(&alice, c, "alice", "mine", Visibility::Private)
        .await
        .unwrap();
    assert!(env.accounts.grants("alice/mine").await.unwrap().is_empty());

    assert!(matches!(
        env.accounts
            .create_repository(&alice, c, "acme", "app", Visibility::Private)
            .await,
        Err(AuthError::Conflict(_))
    ));
    assert_not_found(
        env.accounts
            .create_repository(&alice, c, "nosuch", "app", Visibility::Private)
            .await,
    );
    for bad in ["App", "a//b", "a/", "", "-a"] {
        assert_invalid(
            env.accounts
                .create_repository(&alice, c, "acme", bad, Visibility::Private)
                .await,
        );
    }

    env.accounts
        .set_visibility(&alice, c, "acme/app", Visibility::Public)
        .await
        .unwrap();
    assert_eq!(
        env.accounts
            .repository("acme/app")
            .await
            .unwrap()
            .visibility,
        Visibility::Public
    );
    let ev = env.last_event();
    assert_eq!(ev.kind, "repository.visibility");
    assert_eq!(ev.namespace.as_deref(), Some("acme"));
    assert_eq!(ev.repository.as_deref(), Some("acme/app"));
    assert_not_found(
        env.accounts
            .set_visibility(&alice, c, "acme/none", Visibility::Public)
            .await,
    );

    let names: Vec<_> = env
        .store
        .namespace_repositories("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["acme/app", "acme/tools/cli"]);
    env.accounts
        .delete_repository(&alice, c, "acme/app")
        .await
        .unwrap();
    assert_not_found(env.accounts.repository("acme/app").await);
    assert_not_found(env.accounts.delete_repository(&alice, c, "acme/app").await);
    assert_eq!(app.name, "acme/app");
    let kinds = env.kinds();
    for kind in ["repository.create", "permission.set", "repository.delete"] {
        assert!(kinds.contains(&kind.to_owned()), "{kind}: {kinds:?}");
    }
}

#[tokio::test]
async fn grants_go_to_existing_users_robots_of_the_namespace_and_its_teams() {
    let env = env().await;
    let (_, alice) = env.user("alice").await;
    let (bob, _) = env.user("bob").await;
    let c = &env.client;
    for org in ["acme", "other"] {
        env.accounts
            .create_organization(&alice, c, org, None)
            .await
            .unwrap();
        env.accounts
            .create_robot(&alice, c, org, "ci", None)
            .await
            .unwrap();
        env.accounts
            .set_team(&alice, c, org, "readers", TeamRole::Member, None)
            .await
            .unwrap();
    }
    env.accounts
        .create_repository(&alice, c, "acme", "app", Visibility::Private)
        .await
        .unwrap();
    env.accounts
        .create_repository(&alice, c, "alice", "own", Visibility::Private)
        .await
        .unwrap();

    let grant = env
        .accounts
        .set_user_grant(&alice, c, "acme/app", "bob", RepoRole::Write)
        .await
        .unwrap();
    assert_eq!(grant.grantee, Grantee::Account(bob.id));
    assert_eq!(grant.grantee_kind, Some(AccountKind::User));
    let ev = env.last_event();
    assert_eq!(ev.kind, "permission.set");
    assert_eq!(ev.target.as_deref(), Some("bob"));
    // Setting again replaces the role.
    env.accounts
        .set_user_grant(&alice, c, "acme/app", "bob", RepoRole::Read)
        .await
        .unwrap();
    env.accounts
        .set_user_grant(&alice, c, "acme/app", "acme+ci", RepoRole::Read)
        .await
        .unwrap();
    env.accounts
        .set_team_grant(&alice, c, "acme/app", "readers", RepoRole::Read)
        .await
        .unwrap();
    let mut grants: Vec<_> = env
        .accounts
        .grants("acme/app")
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.grantee_name, g.role))
        .collect();
    grants.sort();
    assert_eq!(
        grants,
        [
            ("acme+ci".to_owned(), RepoRole::Read),
            ("bob".to_owned(), RepoRole::Read),
            ("readers".to_owned(), RepoRole::Read)
        ]
    );

    // Refused: a robot of another namespace, an organization, unknown names, teams outside
    // an organization.
    assert_invalid(
        env.accounts
            .set_user_grant(&alice, c, "acme/app", "other+ci", RepoRole::Read)
            .await,
    );
    assert_invalid(
        env.accounts
            .set_user_grant(&alice, c, "acme/app", "other", RepoRole::Read)
            .await,
    );
    assert_not_found(
        env.accounts
            .set_user_grant(&alice, c, "acme/app", "nobody", RepoRole::Read)
            .await,
    );
    assert_not_found(
        env.accounts
            .set_team_grant(&alice, c, "acme/app", "nosuchteam", RepoRole::Read)
            .await,
    );
    assert_invalid(
        env.accounts
            .set_team_grant(&alice, c, "alice/own", "readers", RepoRole::Read)
            .await,
    );
    assert_not_found(
        env.accounts
            .set_user_grant(&alice, c, "acme/none", "bob", RepoRole::Read)
            .await,
    );

    env.accounts
        .remove_user_grant(&alice, c, "acme/app", "bob")
        .await
        .unwrap();
    assert_eq!(env.last_event().kind, "permission.remove");
    assert_not_found(
        env.accounts
            .remove_user_grant(&alice, c, "acme/app", "bob")
            .await,
    );
    env.accounts
        .remove_team_grant(&alice, c, "acme/app", "readers")
        .await
        .unwrap();
    assert_eq!(env.accounts.grants("acme/app").await.unwrap().len(), 1);
}

#[tokio::test]
async fn prepare_push_creates_what_a_push_needs() {
    let env = env().await;
    let admin = env.admin().await;
    let (_, alice) = env.user("alice").await;
    let (bob_account, bob) = env.user("bob").await;
    let c = &env.client;

    // A superuser pushing into a missing namespace creates it as an organization.
    env.accounts
        .prepare_push(&admin, "newns/app")
        .await
        .unwrap();
    assert_eq!(
        env.accounts.organization("newns").await.unwrap().kind,
        AccountKind::Organization
    );
    let repo = env.accounts.repository("newns/app").await.unwrap();
    assert_eq!(repo.visibility, Visibility::Private);
    // Names without a namespace live in `library`.
    env.accounts.prepare_push(&admin, "busybox").await.unwrap();
    env.accounts.organization("library").await.unwrap();
    env.accounts.repository("busybox").await.unwrap();

    // Anyone else needs an existing namespace.
    assert!(matches!(
        env.accounts.prepare_push(&alice, "missing/app").await,
        Err(AuthError::Denied)
    ));
    assert_not_found(env.accounts.namespace("missing").await);

    // In one's own namespace no grant is needed; a creator in an organization gets admin.
    env.accounts
        .prepare_push(&alice, "alice/app")
        .await
        .unwrap();
    assert!(env.accounts.grants("alice/app").await.unwrap().is_empty());
    env.accounts
        .create_organization(&alice, c, "acme", None)
        .await
        .unwrap();
    env.accounts
        .set_team(&alice, c, "acme", "makers", TeamRole::Creator, None)
        .await
        .unwrap();
    env.accounts
        .add_team_member(&alice, c, "acme", "makers", "bob")
        .await
        .unwrap();
    env.accounts.prepare_push(&bob, "acme/svc").await.unwrap();
    let grants = env.accounts.grants("acme/svc").await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].grantee, Grantee::Account(bob_account.id));
    assert_eq!(grants[0].role, RepoRole::Admin);

    // An existing repository is left alone.
    let before = env.kinds().len();
    env.accounts.prepare_push(&bob, "acme/svc").await.unwrap();
    env.accounts
        .prepare_push(&admin, "alice/app")
        .await
        .unwrap();
    assert_eq!(env.kinds().len(), before);
}

#[tokio::test]
async fn changing_ones_own_password_takes_the_current_one() {
    let env = env().await;
    let (alice_account, alice) = env.user("alice").await;
    let c = &env.client;
    let auth = env.accounts.authenticator();
    let login = |password: &'static str| {
        auth.authenticate_basic("alice", password, bulwark_auth::Channel::Management, c)
    };
    login("password1").await.unwrap();

    assert_invalid(
        env.accounts
            .change_own_password(&alice, c, "wrong-password", "password2")
            .await,
    );
    // An application token is a password substitute, not the password.
    let (_, app_token) = env
        .accounts
        .create_app_token(&alice, c, "laptop", None)
        .await
        .unwrap();
    assert_invalid(
        env.accounts
            .change_own_password(&alice, c, &app_token, "password2")
            .await,
    );
    assert_invalid(
        env.accounts
            .change_own_password(&alice, c, "password1", "short")
            .await,
    );
    env.accounts
        .change_own_password(&alice, c, "password1", "password2")
        .await
        .unwrap();
    assert_eq!(env.last_event().kind, "password.change");
    assert!(login("password1").await.is_err());
    assert_eq!(
        login("password2").await.unwrap().account_id(),
        Some(alice_account.id)
    );

    // Robots have no password.
    env.accounts
        .create_robot(&alice, c, "alice", "ci", None)
        .await
        .unwrap();
    let robot = env.accounts.robot("alice", "ci").await.unwrap();
    assert_invalid(
        env.accounts
            .change_own_password(&as_robot(&robot), c, "x", "password3")
            .await,
    );
}

#[tokio::test]
async fn listings_show_what_the_caller_may_pull() {
    let env = env().await;
    let (_, alice) = env.user("alice").await;
    let (_, bob) = env.user("bob").await;
    let c = &env.client;
    for (name, visibility) in [
        ("private", Visibility::Private),
        ("public", Visibility::Public),
        ("shared", Visibility::Private),
    ] {
        env.accounts
            .create_repository(&alice, c, "alice", name, visibility)
            .await
            .unwrap();
    }
    env.accounts
        .set_user_grant(&alice, c, "alice/shared", "bob", RepoRole::Read)
        .await
        .unwrap();
    let accounts = &env.accounts;
    let visible = async |who: &Identity| -> Vec<String> {
        let repos = accounts.visible_repositories(who, "alice").await.unwrap();
        repos.into_iter().map(|r| r.name).collect()
    };
    assert_eq!(
        visible(&alice).await,
        ["alice/private", "alice/public", "alice/shared"]
    );
    assert_eq!(visible(&bob).await, ["alice/public", "alice/shared"]);
    assert_eq!(visible(&Identity::anonymous()).await, ["alice/public"]);
    assert!(
        env.accounts
            .visible_repositories(&bob, "nobody")
            .await
            .unwrap()
            .is_empty()
    );
}
