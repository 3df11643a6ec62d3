//! The authentication service over a real metadata store (SQLite in a temporary directory):
//! logins with every kind of credential, rate limits, the token service, and every way a
//! registry token can be forged or misused.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_auth::jwt::unix_now;
use bulwark_auth::scope::{ApiScope, ApiScopes, Scope};
use bulwark_auth::{
    Action, AuthError, AuthSettings, Authenticator, Channel, ClientInfo, Credential, Identity,
    Principal, Resource, password, secret,
};
use bulwark_events::MemorySink;
use bulwark_meta::{
    Account, AccountKind, Grantee, IdentityStore, NewAccount, RepoRole, SqlMetaStore, SqlOptions,
    TeamRole, TokenKind, TokenRecord, Visibility,
};
use serde_json::{Value, json};

const ISSUER: &str = "bulwark-test";
const SERVICE: &str = "registry.test";

fn settings() -> AuthSettings {
    AuthSettings {
        anonymous_access: true,
        user_creation: false,
        tokens_only_on_registry: false,
        issuer: ISSUER.into(),
        service: SERVICE.into(),
        token_ttl: Duration::from_secs(300),
        refresh_ttl: Duration::from_secs(3600),
        // High: only the rate-limit test reaches it.
        login_failures_before_backoff: 100,
        max_login_backoff: Duration::from_secs(60),
    }
}

struct Env {
    store: Arc<SqlMetaStore>,
    events: Arc<MemorySink>,
    auth: Authenticator,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        Env::with(settings()).await
    }

    async fn with(settings: AuthSettings) -> Env {
        let (dir, store) = open_store().await;
        let events = Arc::new(MemorySink::default());
        let auth = Authenticator::new(store.clone(), events.clone(), settings)
            .await
            .unwrap();
        Env {
            store,
            events,
            auth,
            _dir: dir,
        }
    }

    /// Another node on the same database.
    async fn node(&self, settings: AuthSettings) -> Authenticator {
        Authenticator::new(
            self.store.clone(),
            Arc::new(MemorySink::default()),
            settings,
        )
        .await
        .unwrap()
    }

    async fn user(&self, name: &str, password: &str) -> Account {
        let hash = password::hash_password(password).unwrap();
        self.store
            .create_account(NewAccount {
                password_hash: Some(&hash),
                ..new_account(name, AccountKind::User)
            })
            .await
            .unwrap()
    }

    async fn org(&self, name: &str) -> Account {
        self.store
            .create_account(new_account(name, AccountKind::Organization))
            .await
            .unwrap()
    }

    /// A robot of `owner` and its token.
    async fn robot(&self, owner: &Account, name: &str) -> (Account, String) {
        let token = secret::generate_robot_token().unwrap();
        let name = format!("{}+{name}", owner.name);
        let account = self
            .store
            .create_account(NewAccount {
                owner_id: Some(owner.id),
                token_hash: Some(&token.secret_hash),
                ..new_account(&name, AccountKind::Robot)
            })
            .await
            .unwrap();
        (account, token.token)
    }

    /// An application or API token of `account`, with `scopes` and expiry.
    async fn token(
        &self,
        kind: TokenKind,
        account: &Account,
        scopes: &str,
        expires_at: Option<i64>,
    ) -> (String, String) {
        let token = secret::generate_token(kind).unwrap();
        self.store
            .create_token(
                kind,
                &TokenRecord {
                    id: token.id.clone(),
                    account_id: account.id,
                    name: "test".into(),
                    secret_hash: token.secret_hash.clone(),
                    scopes: scopes.into(),
                    created_at: unix_now(),
                    expires_at,
                    revoked_at: None,
                    last_used_at: None,
                },
            )
            .await
            .unwrap();
        (token.id, token.token)
    }

    async fn login(&self, user: &str, password: &str) -> Result<Identity, AuthError> {
        self.auth
            .authenticate_basic(user, password, Channel::Registry, &client("192.0.2.1"))
            .await
    }

    async fn issue(&self, identity: &Identity, scopes: &[&str]) -> String {
        let scopes = Scope::parse_list(scopes).unwrap();
        self.auth
            .issue_registry_token(identity, &scopes, false, &client("192.0.2.1"))
            .await
            .unwrap()
            .token
    }

    /// Signs arbitrary claims with the store's current signing key, as a forger holding
    /// the key would: for checks of the claims themselves.
    async fn sign_with_store_key(&self, claims: &Value) -> String {
        let key = self.store.signing_keys().await.unwrap().remove(0);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(key.kid);
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&key.private_der),
        )
        .unwrap()
    }
}

async fn open_store() -> (tempfile::TempDir, Arc<SqlMetaStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetaStore::open_sqlite(&dir.path().join("meta.db"), &SqlOptions::default())
        .await
        .unwrap();
    (dir, Arc::new(store))
}

fn new_account(name: &str, kind: AccountKind) -> NewAccount<'_> {
    NewAccount {
        name,
        kind,
        owner_id: None,
        email: None,
        password_hash: None,
        token_hash: None,
        superuser: false,
        description: None,
    }
}

fn client(address: &str) -> ClientInfo {
    ClientInfo {
        address: Some(address.parse().unwrap()),
        user_agent: Some("test".into()),
    }
}

fn decode_part(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn parts(token: &str) -> (Value, Value, String) {
    let mut it = token.split('.');
    let header = decode_part(it.next().unwrap());
    let payload = decode_part(it.next().unwrap());
    (header, payload, it.next().unwrap().to_owned())
}

/// Valid claims of an access token for `alice` (id `id`) granting pull on `alice/app`.
fn claims(id: i64) -> Value {
    let now = unix_now();
    json!({
        "iss": ISSUER, "sub": "alice", "aud": SERVICE,
        "exp": now + 300, "nbf": now, "iat": now, "jti": "j",
        "access": [{"type": "repository", "name": "alice/app", "actions": ["pull"]}],
        "bulwark": {
            "use": "access",
            "principal": {"kind": "user", "id": id},
            "credential": {"kind": "password"},
        },
    })
}

fn is_invalid_token<T: std::fmt::Debug>(result: Result<T, AuthError>) -> bool {
    matches!(result, Err(AuthError::InvalidToken(_)))
}

fn invalid_credentials<T: std::fmt::Debug>(result: Result<T, AuthError>) -> bool {
    matches!(result, Err(AuthError::InvalidCredentials))
}

#[tokio::test]
async fn password_logins() {
    let env = Env::new().await;
    let alice = env.user("alice", "correct horse").await;
    let identity = env.login("alice", "correct horse").await.unwrap();
    assert_eq!(
        identity,
        Identity {
            principal: Principal::User {
                id: alice.id,
                name: "alice".into(),
                superuser: false
            },
            credential: Credential::Password,
        }
    );
    // Cached the second time, and still the same answer.
    assert_eq!(env.login("alice", "correct horse").await.unwrap(), identity);
    let management = env
        .auth
        .authenticate_basic(
            "alice",
            "correct horse",
            Channel::Management,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    assert_eq!(management, identity);
    assert_eq!(env.events.kinds(), ["login.success"; 3]);

    // A changed password is seen at once, cache or not.
    let new_hash = password::hash_password("battery staple").unwrap();
    env.store.set_password(alice.id, &new_hash).await.unwrap();
    assert!(invalid_credentials(
        env.login("alice", "correct horse").await
    ));
    assert!(env.login("alice", "battery staple").await.is_ok());
}

#[tokio::test]
async fn bad_passwords_unknown_and_disabled_accounts_look_alike() {
    let env = Env::new().await;
    let alice = env.user("alice", "correct horse").await;
    env.org("acme").await;
    env.login("alice", "correct horse").await.unwrap();

    let wrong = env.login("alice", "wrong").await.unwrap_err();
    let unknown = env.login("nobody", "wrong").await.unwrap_err();
    let org = env.login("acme", "wrong").await.unwrap_err();
    assert!(matches!(wrong, AuthError::InvalidCredentials));
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(wrong.to_string(), org.to_string());

    // Disabled: refused even with the right password (and even though it was cached).
    env.store.set_enabled(alice.id, false).await.unwrap();
    let disabled = env
        .auth
        .authenticate_basic(
            "alice",
            "correct horse",
            Channel::Registry,
            &client("198.51.100.1"),
        )
        .await
        .unwrap_err();
    assert_eq!(disabled.to_string(), wrong.to_string());

    // Failures are reported, never with the password.
    let events = env.events.0.lock().unwrap().clone();
    let failures: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "login.failure")
        .collect();
    assert_eq!(failures.len(), 4);
    assert_eq!(failures[1].actor.name, "nobody");
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains("wrong") && !all.contains("correct horse"),
        "{all}"
    );
}

#[tokio::test]
async fn tokens_only_on_the_registry_refuses_passwords_before_any_lookup() {
    let env = Env::with(AuthSettings {
        tokens_only_on_registry: true,
        ..settings()
    })
    .await;
    let alice = env.user("alice", "correct horse").await;
    for user in ["alice", "nobody"] {
        let refused = env.login(user, "correct horse").await;
        assert!(
            matches!(refused, Err(AuthError::CredentialRefused(_))),
            "{refused:?}"
        );
    }
    // The management API still takes passwords; the registry takes tokens.
    env.auth
        .authenticate_basic(
            "alice",
            "correct horse",
            Channel::Management,
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    let (_, app) = env.token(TokenKind::App, &alice, "", None).await;
    assert!(env.login("alice", &app).await.is_ok());
}

#[tokio::test]
async fn failed_logins_back_off_the_same_for_unknown_accounts() {
    let env = Env::with(AuthSettings {
        login_failures_before_backoff: 3,
        ..settings()
    })
    .await;
    env.user("alice", "correct horse").await;
    let attempt = |user: &'static str, password: &'static str, address: &'static str| {
        let env = &env;
        async move {
            env.auth
                .authenticate_basic(user, password, Channel::Registry, &client(address))
                .await
        }
    };
    for (user, address) in [("alice", "192.0.2.10"), ("nobody", "192.0.2.20")] {
        for _ in 0..3 {
            assert!(invalid_credentials(attempt(user, "wrong", address).await));
        }
        // The threshold is reached: even the right password waits now.
        let limited = attempt(user, "correct horse", address).await;
        assert!(
            matches!(limited, Err(AuthError::RateLimited(1))),
            "{user}: {limited:?}"
        );
        // Per account, from another address too.
        let limited = attempt(user, "correct horse", "203.0.113.99").await;
        assert!(
            matches!(limited, Err(AuthError::RateLimited(_))),
            "{user}: {limited:?}"
        );
    }
    // Per address, for other names too.
    let limited = attempt("carol", "x", "192.0.2.20").await;
    assert!(
        matches!(limited, Err(AuthError::RateLimited(_))),
        "{limited:?}"
    );

    // After the wait, a success resets the account.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    attempt("alice", "correct horse", "203.0.113.1")
        .await
        .unwrap();
    assert!(invalid_credentials(
        attempt("alice", "wrong", "203.0.113.2").await
    ));
}

#[tokio::test]
async fn app_tokens() {
    let env = Env::new().await;
    let alice = env.user("alice", "correct horse").await;
    env.user("bob", "pw").await;
    let (id, token) = env.token(TokenKind::App, &alice, "", None).await;
    let expected = Identity {
        principal: Principal::User {
            id: alice.id,
            name: "alice".into(),
            superuser: false,
        },
        credential: Credential::AppToken(id.clone()),
    };
    assert_eq!(env.login("$app", &token).await.unwrap(), expected);
    assert_eq!(env.login("alice", &token).await.unwrap(), expected);
    // Someone else's name with alice's token.
    assert!(invalid_credentials(env.login("bob", &token).await));
    // A wrong secret under a real id.
    let forged = format!(
        "{}{}",
        &token[..token.len() - 1],
        if token.ends_with('A') { 'B' } else { 'A' }
    );
    assert!(invalid_credentials(env.login("$app", &forged).await));
    assert!(invalid_credentials(env.login("$app", "not a token").await));
    let used = env.store.token(TokenKind::App, &id).await.unwrap().unwrap();
    assert!(used.last_used_at.is_some());

    let (_, expired) = env
        .token(TokenKind::App, &alice, "", Some(unix_now() - 1))
        .await;
    assert!(invalid_credentials(env.login("$app", &expired).await));
    env.store
        .revoke_token(TokenKind::App, &id, unix_now())
        .await
        .unwrap();
    assert!(invalid_credentials(env.login("$app", &token).await));

    let (_, live) = env.token(TokenKind::App, &alice, "", None).await;
    env.store.set_enabled(alice.id, false).await.unwrap();
    assert!(invalid_credentials(env.login("$app", &live).await));
}

#[tokio::test]
async fn robot_tokens() {
    let env = Env::new().await;
    let acme = env.org("acme").await;
    let (bot, token) = env.robot(&acme, "ci").await;
    let identity = env.login("acme+ci", &token).await.unwrap();
    assert_eq!(
        identity,
        Identity {
            principal: Principal::Robot {
                id: bot.id,
                name: "acme+ci".into(),
                owner_id: acme.id
            },
            credential: Credential::RobotToken,
        }
    );
    assert!(invalid_credentials(env.login("acme+other", &token).await));
    assert!(invalid_credentials(env.login("acme+ci", "bwr_wrong").await));

    let regenerated = secret::generate_robot_token().unwrap();
    env.store
        .set_robot_token(bot.id, &regenerated.secret_hash)
        .await
        .unwrap();
    assert!(invalid_credentials(env.login("acme+ci", &token).await));
    assert!(env.login("acme+ci", &regenerated.token).await.is_ok());
}

#[tokio::test]
async fn api_tokens() {
    let env = Env::new().await;
    let alice = env.user("alice", "correct horse").await;
    let (id, token) = env
        .token(TokenKind::Api, &alice, "repo:read user:admin", None)
        .await;
    let expected = Identity {
        principal: Principal::User {
            id: alice.id,
            name: "alice".into(),
            superuser: false,
        },
        credential: Credential::ApiToken {
            id: id.clone(),
            scopes: ApiScopes::parse("repo:read user:admin").unwrap(),
        },
    };
    assert_eq!(env.login("$oauthtoken", &token).await.unwrap(), expected);
    assert_eq!(
        env.auth
            .authenticate_api_token(&token, &ClientInfo::default())
            .await
            .unwrap(),
        expected
    );
    // An API token is not an app token, nor a password.
    assert!(invalid_credentials(env.login("alice", &token).await));
    assert!(invalid_credentials(env.login("$app", &token).await));
    assert!(invalid_credentials(
        env.auth
            .authenticate_api_token("bwp_nothing", &ClientInfo::default())
            .await
    ));

    // Scopes limit what the token may do, whatever alice may.
    env.store
        .create_repository("alice/app", Visibility::Private)
        .await
        .unwrap();
    let may = |action| {
        env.auth
            .authorize(&expected, Resource::Repository("alice/app"), action)
    };
    assert!(may(Action::Pull).await.unwrap());
    assert!(!may(Action::Push).await.unwrap());
    assert!(
        env.auth
            .authorize(&expected, Resource::Account(alice.id), Action::Manage)
            .await
            .unwrap()
    );
    let issued = env
        .issue(&expected, &["repository:alice/app:pull,push"])
        .await;
    let verified = env.auth.verify_registry_token(&issued).unwrap();
    assert!(verified.allows("alice/app", "pull") && !verified.allows("alice/app", "push"));
    assert_eq!(verified.issued_via, "api_token");
}

#[tokio::test]
async fn issued_tokens_grant_exactly_the_intersection() {
    let env = Env::new().await;
    env.user("alice", "a").await;
    let bob = env.user("bob", "b").await;
    let acme = env.org("acme").await;
    env.store
        .create_repository("alice/app", Visibility::Private)
        .await
        .unwrap();
    let shared = env
        .store
        .create_repository("alice/shared", Visibility::Private)
        .await
        .unwrap();
    env.store
        .create_repository("acme/pub", Visibility::Public)
        .await
        .unwrap();
    env.store
        .set_grant(shared.id, &Grantee::Account(bob.id), RepoRole::Read)
        .await
        .unwrap();
    let team = env
        .store
        .create_team(acme.id, "builders", TeamRole::Creator, None)
        .await
        .unwrap();
    env.store.add_team_member(team.id, bob.id).await.unwrap();

    let bob_identity = env.login("bob", "b").await.unwrap();
    let scopes = Scope::parse_list(&[
        "repository:alice/app:pull,push repository:alice/shared:*",
        "repository:acme/pub:pull,push repository:acme/new:pull,push,delete",
        "registry:catalog:* unknown:thing:pull repository(plugin):alice/app:pull",
    ])
    .unwrap();
    let response = env
        .auth
        .issue_registry_token(&bob_identity, &scopes, false, &client("192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(response.token, response.access_token);
    assert_eq!(response.expires_in, 300);
    assert!(response.refresh_token.is_none());
    assert!(response.issued_at.ends_with('Z') && response.issued_at.len() == 20);
    assert_eq!(
        response.scope,
        "repository:alice/shared:pull repository:acme/pub:pull repository:acme/new:pull,push registry:catalog:*"
    );
    let (header, payload, _) = parts(&response.token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(payload["sub"], "bob");
    assert_eq!(
        payload["access"],
        json!([
            {"type": "repository", "name": "alice/app", "actions": []},
            {"type": "repository", "name": "alice/shared", "actions": ["pull"]},
            {"type": "repository", "name": "acme/pub", "actions": ["pull"]},
            {"type": "repository", "name": "acme/new", "actions": ["pull", "push"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ])
    );
    let token = env.auth.verify_registry_token(&response.token).unwrap();
    assert_eq!(token.identity.principal, bob_identity.principal);
    assert_eq!(token.identity.credential, Credential::RegistryToken);
    assert_eq!(token.issued_via, "password");
    for (repository, action, allowed) in [
        ("alice/app", "pull", false),
        ("alice/app", "push", false),
        ("alice/shared", "pull", true),
        ("alice/shared", "push", false),
        ("alice/shared", "delete", false),
        ("acme/pub", "pull", true),
        ("acme/pub", "push", false),
        ("acme/new", "pull", true),
        ("acme/new", "push", true),
        ("acme/new", "delete", false),
        ("acme/other", "pull", false),
    ] {
        assert_eq!(
            token.allows(repository, action),
            allowed,
            "{repository} {action}"
        );
    }
    let issued = env.events.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(issued.kind, "token.issued");
    assert_eq!(issued.actor.name, "bob");
    assert_eq!(issued.details["scopes"].as_array().unwrap().len(), 5);

    // The owner gets everything in its namespace; `*` expands.
    let alice_identity = env.login("alice", "a").await.unwrap();
    let token = env
        .issue(&alice_identity, &["repository:alice/app:*"])
        .await;
    let token = env.auth.verify_registry_token(&token).unwrap();
    assert_eq!(token.access[0].actions, ["pull", "push", "delete"]);
    assert_eq!(token.identity.principal, alice_identity.principal);
}

#[tokio::test]
async fn anonymous_tokens_follow_the_anonymous_access_switch() {
    for anonymous_access in [true, false] {
        let env = Env::with(AuthSettings {
            anonymous_access,
            ..settings()
        })
        .await;
        env.user("alice", "a").await;
        env.store
            .create_repository("alice/pub", Visibility::Public)
            .await
            .unwrap();
        env.store
            .create_repository("alice/private", Visibility::Private)
            .await
            .unwrap();
        let anonymous = Identity::anonymous();
        let token = env
            .issue(
                &anonymous,
                &["repository:alice/pub:pull,push repository:alice/private:pull registry:catalog:*"],
            )
            .await;
        let token = env.auth.verify_registry_token(&token).unwrap();
        assert_eq!(
            token.identity,
            Identity {
                principal: Principal::Anonymous,
                credential: Credential::RegistryToken
            }
        );
        assert_eq!(token.allows("alice/pub", "pull"), anonymous_access);
        assert!(!token.allows("alice/pub", "push"));
        assert!(!token.allows("alice/private", "pull"));
        assert_eq!(token.access[2].actions.is_empty(), !anonymous_access);
        let visible = env
            .auth
            .visible_repositories(&anonymous, None, 10)
            .await
            .unwrap();
        assert_eq!(
            visible,
            if anonymous_access {
                vec!["alice/pub"]
            } else {
                vec![]
            }
        );
        // Refresh tokens are never issued to anonymous callers.
        let response = env
            .auth
            .issue_registry_token(&anonymous, &[], true, &ClientInfo::default())
            .await
            .unwrap();
        assert!(response.refresh_token.is_none());
    }
}

#[tokio::test]
async fn forged_and_misused_tokens_are_refused() {
    let env = Env::new().await;
    let alice = env.user("alice", "a").await;
    env.store
        .create_repository("alice/app", Visibility::Private)
        .await
        .unwrap();
    env.user("mallory", "m").await;
    let mallory = env.login("mallory", "m").await.unwrap();
    let token = env.issue(&mallory, &["repository:alice/app:pull"]).await;
    let granted = env.auth.verify_registry_token(&token).unwrap();
    assert!(!granted.allows("alice/app", "pull"));
    let (header, mut payload, signature) = parts(&token);

    // Scope escalation: the payload edited, the signature kept.
    payload["access"][0]["actions"] = json!(["pull", "push"]);
    let escalated = format!(
        "{}.{}.{signature}",
        encode_part(&header),
        encode_part(&payload)
    );
    assert!(is_invalid_token(env.auth.verify_registry_token(&escalated)));
    let mut superuser = parts(&token).1;
    superuser["bulwark"]["principal"]["superuser"] = json!(true);
    let promoted = format!(
        "{}.{}.{signature}",
        encode_part(&header),
        encode_part(&superuser)
    );
    assert!(is_invalid_token(env.auth.verify_registry_token(&promoted)));

    // A tampered signature.
    let mut bytes = URL_SAFE_NO_PAD.decode(&signature).unwrap();
    bytes[10] ^= 1;
    let tampered = format!(
        "{}.{}.{}",
        encode_part(&header),
        encode_part(&parts(&token).1),
        URL_SAFE_NO_PAD.encode(&bytes)
    );
    assert!(is_invalid_token(env.auth.verify_registry_token(&tampered)));

    // Signed by another key: under the real kid, and under its own.
    let other = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let other_key = jsonwebtoken::EncodingKey::from_ec_der(other.as_ref());
    for kid in [header["kid"].as_str().unwrap(), "attacker-key"] {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some(kid.into());
        let forged = jsonwebtoken::encode(&h, &claims(alice.id), &other_key).unwrap();
        assert!(
            is_invalid_token(env.auth.verify_registry_token(&forged)),
            "{kid}"
        );
    }

    // `alg: none`, with and without a signature.
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    for sig in ["", signature.as_str()] {
        let none = format!(
            "{}.{}.{sig}",
            encode_part(&none_header),
            encode_part(&claims(alice.id))
        );
        assert!(is_invalid_token(env.auth.verify_registry_token(&none)));
    }

    // HS256 keyed with the public key (the JWK's point bytes, and the JWK set's text).
    let jwks = env.auth.jwks();
    let jwk = &jwks["keys"][0];
    let point = [
        vec![4u8],
        URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap(),
        URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap(),
    ]
    .concat();
    for secret in [
        point,
        jwks.to_string().into_bytes(),
        jwk.to_string().into_bytes(),
    ] {
        for alg in [
            jsonwebtoken::Algorithm::HS256,
            jsonwebtoken::Algorithm::HS512,
        ] {
            let mut h = jsonwebtoken::Header::new(alg);
            h.kid = Some(jwk["kid"].as_str().unwrap().into());
            let forged = jsonwebtoken::encode(
                &h,
                &claims(alice.id),
                &jsonwebtoken::EncodingKey::from_secret(&secret).unwrap(),
            )
            .unwrap();
            assert!(is_invalid_token(env.auth.verify_registry_token(&forged)));
        }
    }

    // Garbage.
    for garbage in ["", "a.b.c", "a.b", "....", &token[..token.len() / 2]] {
        assert!(
            is_invalid_token(env.auth.verify_registry_token(garbage)),
            "{garbage}"
        );
    }

    // Sanity: the forger's signing helper makes tokens that do verify.
    let good = env.sign_with_store_key(&claims(alice.id)).await;
    assert!(
        env.auth
            .verify_registry_token(&good)
            .unwrap()
            .allows("alice/app", "pull")
    );
}

#[tokio::test]
async fn claims_are_checked() {
    let env = Env::new().await;
    let alice = env.user("alice", "a").await;
    let now = unix_now();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(alice.id);
        f(&mut c);
        c
    };
    let cases: Vec<(&str, Value)> = vec![
        ("expired", edit(&|c| c["exp"] = json!(now - 60))),
        ("not yet valid", edit(&|c| c["nbf"] = json!(now + 60))),
        ("wrong audience", edit(&|c| c["aud"] = json!("elsewhere"))),
        // Bulwark issues one audience, as a string; lists are refused.
        ("audience list", edit(&|c| c["aud"] = json!([SERVICE]))),
        ("wrong issuer", edit(&|c| c["iss"] = json!("someone else"))),
        (
            "no exp",
            edit(&|c| drop(c.as_object_mut().unwrap().remove("exp"))),
        ),
        (
            "no nbf",
            edit(&|c| drop(c.as_object_mut().unwrap().remove("nbf"))),
        ),
        (
            "no iat",
            edit(&|c| drop(c.as_object_mut().unwrap().remove("iat"))),
        ),
        (
            "no sub",
            edit(&|c| drop(c.as_object_mut().unwrap().remove("sub"))),
        ),
        (
            "no iss",
            edit(&|c| drop(c.as_object_mut().unwrap().remove("iss"))),
        ),
        (
            "no aud",
            edit(&|c| drop(c.as_object_mut().unwrap().remove("aud"))),
        ),
        (
            "refresh use",
            edit(&|c| c["bulwark"]["use"] = json!("refresh")),
        ),
        (
            "no use",
            edit(&|c| drop(c["bulwark"].as_object_mut().unwrap().remove("use"))),
        ),
        (
            "no private claim",
            edit(&|c| drop(c.as_object_mut().unwrap().remove("bulwark"))),
        ),
        (
            "user without id",
            edit(&|c| {
                drop(
                    c["bulwark"]["principal"]
                        .as_object_mut()
                        .unwrap()
                        .remove("id"),
                )
            }),
        ),
        (
            "anonymous with a name",
            edit(&|c| c["bulwark"]["principal"] = json!({"kind": "anonymous"})),
        ),
    ];
    for (what, claims) in cases {
        let token = env.sign_with_store_key(&claims).await;
        assert!(
            is_invalid_token(env.auth.verify_registry_token(&token)),
            "{what}"
        );
    }
    // Within the leeway of a few seconds of clock skew.
    let skewed = edit(&|c| {
        c["exp"] = json!(now - 3);
        c["nbf"] = json!(now + 3);
    });
    let token = env.sign_with_store_key(&skewed).await;
    assert!(env.auth.verify_registry_token(&token).is_ok());
    // No kid.
    let key = env.store.signing_keys().await.unwrap().remove(0);
    let no_kid = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &claims(alice.id),
        &jsonwebtoken::EncodingKey::from_ec_der(&key.private_der),
    )
    .unwrap();
    assert!(is_invalid_token(env.auth.verify_registry_token(&no_kid)));
}

#[tokio::test]
async fn other_nodes_settings_are_enforced() {
    let env = Env::new().await;
    env.user("alice", "a").await;
    let identity = env.login("alice", "a").await.unwrap();
    let token = env.issue(&identity, &[]).await;
    // Same keys, other audience or issuer.
    let elsewhere = env
        .node(AuthSettings {
            service: "other.test".into(),
            ..settings()
        })
        .await;
    assert!(is_invalid_token(elsewhere.verify_registry_token(&token)));
    let other_issuer = env
        .node(AuthSettings {
            issuer: "other".into(),
            ..settings()
        })
        .await;
    assert!(is_invalid_token(other_issuer.verify_registry_token(&token)));
}

#[tokio::test]
async fn refresh_tokens() {
    let env = Env::new().await;
    let alice = env.user("alice", "correct horse").await;
    let identity = env.login("alice", "correct horse").await.unwrap();
    let response = env
        .auth
        .issue_registry_token(&identity, &[], true, &ClientInfo::default())
        .await
        .unwrap();
    let refresh = response.refresh_token.unwrap();
    let access = response.token;

    // Not interchangeable.
    assert!(is_invalid_token(env.auth.verify_registry_token(&refresh)));
    assert!(is_invalid_token(
        env.auth
            .redeem_refresh_token(&access, &ClientInfo::default())
            .await
    ));
    let redeemed = env
        .auth
        .redeem_refresh_token(&refresh, &ClientInfo::default())
        .await
        .unwrap();
    assert_eq!(redeemed, identity);

    // A changed password ends it.
    let hash = password::hash_password("battery staple").unwrap();
    env.store.set_password(alice.id, &hash).await.unwrap();
    assert!(invalid_credentials(
        env.auth
            .redeem_refresh_token(&refresh, &ClientInfo::default())
            .await
    ));

    // So does disabling the account.
    let identity = env.login("alice", "battery staple").await.unwrap();
    let refresh = env
        .auth
        .issue_registry_token(&identity, &[], true, &ClientInfo::default())
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    assert!(
        env.auth
            .redeem_refresh_token(&refresh, &ClientInfo::default())
            .await
            .is_ok()
    );
    env.store.set_enabled(alice.id, false).await.unwrap();
    assert!(invalid_credentials(
        env.auth
            .redeem_refresh_token(&refresh, &ClientInfo::default())
            .await
    ));
    env.store.set_enabled(alice.id, true).await.unwrap();

    // App tokens: revocation ends it.
    let (id, app) = env.token(TokenKind::App, &alice, "", None).await;
    let identity = env.login("$app", &app).await.unwrap();
    let refresh = env
        .auth
        .issue_registry_token(&identity, &[], true, &ClientInfo::default())
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    assert_eq!(
        env.auth
            .redeem_refresh_token(&refresh, &ClientInfo::default())
            .await
            .unwrap(),
        identity
    );
    env.store
        .revoke_token(TokenKind::App, &id, unix_now())
        .await
        .unwrap();
    assert!(invalid_credentials(
        env.auth
            .redeem_refresh_token(&refresh, &ClientInfo::default())
            .await
    ));

    // API tokens keep their scopes through a refresh.
    let (_, api) = env.token(TokenKind::Api, &alice, "repo:read", None).await;
    let identity = env.login("$oauthtoken", &api).await.unwrap();
    let refresh = env
        .auth
        .issue_registry_token(&identity, &[], true, &ClientInfo::default())
        .await
        .unwrap()
        .refresh_token
        .unwrap();
    let redeemed = env
        .auth
        .redeem_refresh_token(&refresh, &ClientInfo::default())
        .await
        .unwrap();
    assert!(
        matches!(redeemed.credential, Credential::ApiToken { ref scopes, .. } if scopes.contains(ApiScope::RepoRead) && scopes.0.len() == 1)
    );

    // Robots: a regenerated token ends it, and so does deleting the robot.
    let acme = env.org("acme").await;
    let (bot, token) = env.robot(&acme, "ci").await;
    let identity = env.login("acme+ci", &token).await.unwrap();
    let issue_refresh = |identity: Identity| {
        let env = &env;
        async move {
            env.auth
                .issue_registry_token(&identity, &[], true, &ClientInfo::default())
                .await
                .unwrap()
                .refresh_token
                .unwrap()
        }
    };
    let refresh = issue_refresh(identity.clone()).await;
    assert_eq!(
        env.auth
            .redeem_refresh_token(&refresh, &ClientInfo::default())
            .await
            .unwrap(),
        identity
    );
    let regenerated = secret::generate_robot_token().unwrap();
    env.store
        .set_robot_token(bot.id, &regenerated.secret_hash)
        .await
        .unwrap();
    assert!(invalid_credentials(
        env.auth
            .redeem_refresh_token(&refresh, &ClientInfo::default())
            .await
    ));
    let identity = env.login("acme+ci", &regenerated.token).await.unwrap();
    let refresh = issue_refresh(identity).await;
    env.store.delete_account(bot.id).await.unwrap();
    assert!(invalid_credentials(
        env.auth
            .redeem_refresh_token(&refresh, &ClientInfo::default())
            .await
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_and_two_nodes() {
    let env = Env::new().await;
    env.user("alice", "a").await;
    let identity = env.login("alice", "a").await.unwrap();
    let node2 = env.node(settings()).await;
    // Both nodes sign with the one key found at start.
    let from1 = env.issue(&identity, &[]).await;
    let scopes = Scope::parse_list(&["registry:catalog:*"]).unwrap();
    let from2 = node2
        .issue_registry_token(&identity, &scopes, false, &ClientInfo::default())
        .await
        .unwrap()
        .token;
    let old_kid = parts(&from1).0["kid"].clone();
    assert_eq!(parts(&from2).0["kid"], old_kid);
    assert!(node2.verify_registry_token(&from1).is_ok());
    assert!(env.auth.verify_registry_token(&from2).is_ok());

    // Node 1 rotates: new tokens carry the new kid, old ones still verify.
    let new_kid = env.auth.rotate_signing_key().await.unwrap();
    assert_ne!(json!(new_kid), old_kid);
    let rotated = env.issue(&identity, &[]).await;
    assert_eq!(parts(&rotated).0["kid"], json!(new_kid));
    assert!(env.auth.verify_registry_token(&from1).is_ok());
    assert_eq!(env.auth.jwks()["keys"].as_array().unwrap().len(), 2);
    // Node 2 does not know the new key yet: it reloads when it meets it…
    assert!(node2.verify_registry_token(&rotated).is_ok());
    // …and from then on signs with it too.
    let from2 = node2
        .issue_registry_token(&identity, &scopes, false, &ClientInfo::default())
        .await
        .unwrap()
        .token;
    assert_eq!(parts(&from2).0["kid"], json!(new_kid));
    // A node started now verifies tokens of both keys (no cache).
    let node3 = env.node(settings()).await;
    assert!(node3.verify_registry_token(&from1).is_ok());
    assert!(node3.verify_registry_token(&rotated).is_ok());
    // Unknown kids reload at most once per interval: a burst of forged kids costs nothing.
    let key = env.store.signing_keys().await.unwrap().remove(0);
    for i in 0..20 {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = Some(format!("unknown-{i}"));
        let forged = jsonwebtoken::encode(
            &h,
            &claims(1),
            &jsonwebtoken::EncodingKey::from_ec_der(&key.private_der),
        )
        .unwrap();
        assert!(is_invalid_token(node3.verify_registry_token(&forged)));
    }
}

#[tokio::test]
async fn a_single_threaded_runtime_reloads_in_the_background() {
    let env = Env::new().await;
    env.user("alice", "a").await;
    let identity = env.login("alice", "a").await.unwrap();
    let node2 = env.node(settings()).await;
    env.auth.rotate_signing_key().await.unwrap();
    let rotated = env.issue(&identity, &[]).await;
    assert!(is_invalid_token(node2.verify_registry_token(&rotated)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(node2.verify_registry_token(&rotated).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_converge_on_one_key() {
    let (_dir, store) = open_store().await;
    let node = || {
        let store = store.clone();
        async move {
            Authenticator::new(store, Arc::new(MemorySink::default()), settings())
                .await
                .unwrap()
        }
    };
    // Each may add a key of its own.
    let (a, b, c) = tokio::join!(node(), node(), node());
    let nodes = [a, b, c];
    let identity = Identity::anonymous();
    // Every node verifies every node's tokens (meeting a key it did not know, it reloads)…
    for signer in &nodes {
        let token = signer
            .issue_registry_token(&identity, &[], false, &ClientInfo::default())
            .await
            .unwrap()
            .token;
        for verifier in &nodes {
            assert!(verifier.verify_registry_token(&token).is_ok());
        }
    }
    // …and then all sign with the same, newest key.
    let mut kids = Vec::new();
    for signer in &nodes {
        let token = signer
            .issue_registry_token(&identity, &[], false, &ClientInfo::default())
            .await
            .unwrap()
            .token;
        kids.push(parts(&token).0["kid"].clone());
    }
    kids.dedup();
    assert_eq!(kids.len(), 1, "{kids:?}");
}

#[tokio::test]
async fn authorization_of_accounts_namespaces_and_the_registry() {
    let env = Env::new().await;
    let alice = env.user("alice", "a").await;
    let bob = env.user("bob", "b").await;
    env.store
        .create_account(NewAccount {
            superuser: true,
            password_hash: Some(&password::hash_password("r").unwrap()),
            ..new_account("root", AccountKind::User)
        })
        .await
        .unwrap();
    let acme = env.org("acme").await;
    let team = env
        .store
        .create_team(acme.id, "devs", TeamRole::Member, None)
        .await
        .unwrap();
    env.store.add_team_member(team.id, bob.id).await.unwrap();
    let a = env.login("alice", "a").await.unwrap();
    let b = env.login("bob", "b").await.unwrap();
    let r = env.login("root", "r").await.unwrap();
    let may = |identity: &Identity, resource: Resource<'static>, action| {
        let identity = identity.clone();
        let auth = &env.auth;
        async move { auth.authorize(&identity, resource, action).await.unwrap() }
    };
    assert!(may(&a, Resource::Account(alice.id), Action::Manage).await);
    assert!(!may(&a, Resource::Account(bob.id), Action::Manage).await);
    assert!(may(&r, Resource::Account(bob.id), Action::Manage).await);
    assert!(!may(&a, Resource::Registry, Action::Superuser).await);
    assert!(may(&r, Resource::Registry, Action::Superuser).await);
    assert!(may(&a, Resource::Namespace("alice"), Action::CreateRepository).await);
    assert!(!may(&a, Resource::Namespace("acme"), Action::View).await);
    assert!(may(&b, Resource::Namespace("acme"), Action::View).await);
    assert!(!may(&b, Resource::Namespace("acme"), Action::CreateRepository).await);
    assert!(may(&r, Resource::Namespace("neworg"), Action::CreateRepository).await);
    // Pushing creates: in one's own namespace, not in another's; `library` is nobody's.
    assert!(may(&a, Resource::Repository("alice/new"), Action::Push).await);
    assert!(!may(&b, Resource::Repository("alice/new"), Action::Push).await);
    assert!(!may(&a, Resource::Repository("busybox"), Action::Push).await);
    assert!(may(&r, Resource::Repository("busybox"), Action::Push).await);
}

#[tokio::test]
async fn jwks_lists_public_keys_only() {
    let env = Env::new().await;
    let jwks = env.auth.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["crv"], "P-256");
    // The kid is the RFC 7638 thumbprint.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        keys[0]["x"].as_str().unwrap(),
        keys[0]["y"].as_str().unwrap()
    );
    use sha2::Digest;
    let thumbprint = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
    assert_eq!(keys[0]["kid"], json!(thumbprint));
    // What the store holds is that key.
    let stored = env.store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kid, thumbprint);
    assert_eq!(stored[0].algorithm, "ES256");
}
