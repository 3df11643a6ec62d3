//! The management API (`/api/v1/…`) over the real binary: each area's happy path, its
//! refusals, and the error format. (The full authorization matrix lives elsewhere.)

use bulwark_testkit::{TestServer, admin_basic_auth, basic_auth};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

struct Api {
    server: TestServer,
    http: reqwest::Client,
}

/// An answer: status, `Content-Type`, `Cache-Control` and the JSON body (`Null` if none).
struct Answer {
    status: StatusCode,
    content_type: String,
    cache_control: String,
    www_authenticate: String,
    body: Value,
}

impl Answer {
    /// Asserts the status, and for errors the problem+json format.
    #[track_caller]
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        if status.is_client_error() {
            assert_eq!(self.content_type, "application/problem+json");
            assert_eq!(self.body["status"], status.as_u16());
            assert!(self.body["detail"].is_string(), "{}", self.body);
        }
        self.body
    }
}

impl Api {
    fn start(env: &[(&str, &str)]) -> Api {
        Api {
            server: TestServer::start_with(BIN, &[], env),
            // Loopback only: never through a proxy from the environment.
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (content_type, cache_control, www_authenticate) = (
            header("content-type"),
            header("cache-control"),
            header("www-authenticate"),
        );
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            content_type,
            cache_control,
            www_authenticate,
            body,
        }
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> Answer {
        self.call(Method::GET, path, auth, None).await
    }

    async fn put(&self, path: &str, auth: Option<&str>, body: Value) -> Answer {
        self.call(Method::PUT, path, auth, Some(body)).await
    }

    async fn post(&self, path: &str, auth: Option<&str>, body: Value) -> Answer {
        self.call(Method::POST, path, auth, Some(body)).await
    }

    async fn delete(&self, path: &str, auth: Option<&str>) -> Answer {
        self.call(Method::DELETE, path, auth, None).await
    }

    /// Creates a user through the superuser API and returns its Basic credentials.
    async fn user(&self, name: &str) -> String {
        let password = format!("{name}-password");
        self.post(
            "/api/v1/superuser/users/",
            Some(&admin_basic_auth()),
            json!({ "username": name, "password": password }),
        )
        .await
        .expect(StatusCode::CREATED);
        basic_auth(name, &password)
    }
}

#[tokio::test]
async fn the_openapi_document_is_public() {
    let api = Api::start(&[]);
    let doc = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.content_type, "application/json");
    let doc = doc.expect(StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/repository/{ns}/{repo}"]["get"].is_object());
}

#[tokio::test]
async fn users_the_caller_and_superuser_administration() {
    let api = Api::start(&[]);
    let admin = admin_basic_auth();
    let alice = api.user("alice").await;

    let me = api
        .get("/api/v1/user/", Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert_eq!(me["username"], "alice");
    assert_eq!(me["anonymous"], false);
    assert_eq!(me["super_user"], false);
    assert_eq!(me["organizations"], json!([]));

    // No credentials: 401 with a challenge; bad ones: 401; not a superuser: 403.
    let anonymous = api.get("/api/v1/user/", None).await;
    assert!(
        anonymous.www_authenticate.contains("Basic"),
        "{}",
        anonymous.www_authenticate
    );
    anonymous.expect(StatusCode::UNAUTHORIZED);
    api.get(
        "/api/v1/user/",
        Some(&basic_auth("alice", "wrong-password")),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    api.get("/api/v1/superuser/users/", Some(&alice))
        .await
        .expect(StatusCode::FORBIDDEN);
    let users = api
        .get("/api/v1/superuser/users/", Some(&admin))
        .await
        .expect(StatusCode::OK);
    let names: Vec<_> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    // Password hashes never appear.
    assert!(!users.to_string().contains("argon2"));

    // Self-registration is off by default; taken names and bad passwords are refused.
    api.post(
        "/api/v1/user/",
        None,
        json!({ "username": "mallory", "password": "long-enough" }),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    api.post(
        "/api/v1/superuser/users/",
        Some(&admin),
        json!({ "username": "alice", "password": "long-enough" }),
    )
    .await
    .expect(StatusCode::CONFLICT);
    api.post(
        "/api/v1/superuser/users/",
        Some(&admin),
        json!({ "username": "bob", "password": "short" }),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    // Changing one's password takes the current one.
    api.put(
        "/api/v1/user/",
        Some(&alice),
        json!({ "password": "new-password", "current_password": "wrong" }),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    api.put(
        "/api/v1/user/",
        Some(&alice),
        json!({ "password": "new-password", "current_password": "alice-password" }),
    )
    .await
    .expect(StatusCode::OK);
    api.get("/api/v1/user/", Some(&alice))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let alice = basic_auth("alice", "new-password");
    api.get("/api/v1/user/", Some(&alice))
        .await
        .expect(StatusCode::OK);

    // A superuser disables, re-enables, promotes and deletes.
    let disabled = api
        .put(
            "/api/v1/superuser/users/alice",
            Some(&admin),
            json!({ "enabled": false }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(disabled["enabled"], false);
    api.get("/api/v1/user/", Some(&alice))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let promoted = api
        .put(
            "/api/v1/superuser/users/alice",
            Some(&admin),
            json!({ "enabled": true, "superuser": true }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (promoted["enabled"].clone(), promoted["super_user"].clone()),
        (json!(true), json!(true))
    );
    api.get("/api/v1/superuser/users/", Some(&alice))
        .await
        .expect(StatusCode::OK);
    api.put(
        "/api/v1/superuser/users/alice",
        Some(&admin),
        json!({ "email": "a@example.com" }),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    api.delete("/api/v1/superuser/users/alice", Some(&admin))
        .await
        .expect(StatusCode::NO_CONTENT);
    api.delete("/api/v1/superuser/users/alice", Some(&admin))
        .await
        .expect(StatusCode::NOT_FOUND);
    // The last superuser stays.
    api.delete("/api/v1/superuser/users/admin", Some(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn self_registration_when_enabled() {
    let api = Api::start(&[("BULWARK_AUTH__USER_CREATION", "true")]);
    let created = api
        .post(
            "/api/v1/user/",
            None,
            json!({ "username": "carol", "password": "carol-password" }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(created["username"], "carol");
    assert_eq!(created["super_user"], false);
    api.get(
        "/api/v1/user/",
        Some(&basic_auth("carol", "carol-password")),
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn organizations_teams_and_robots() {
    let api = Api::start(&[]);
    let admin = admin_basic_auth();
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let org = api
        .post(
            "/api/v1/organization/",
            Some(&alice),
            json!({ "name": "acme", "email": "ops@acme.example" }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(org["name"], "acme");
    let detail = api
        .get("/api/v1/organization/acme", Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert_eq!(detail["ordered_teams"], json!(["owners"]));
    assert_eq!(detail["teams"]["owners"]["role"], "admin");
    assert_eq!(detail["teams"]["owners"]["member_count"], 1);

    // Outsiders get the same answer whether the organization exists or not.
    api.get("/api/v1/organization/acme", Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);
    api.get("/api/v1/organization/nosuch", Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);
    api.get("/api/v1/organization/nosuch", Some(&admin))
        .await
        .expect(StatusCode::NOT_FOUND);
    api.post(
        "/api/v1/organization/",
        Some(&bob),
        json!({ "name": "acme" }),
    )
    .await
    .expect(StatusCode::CONFLICT);
    api.post(
        "/api/v1/organization/",
        Some(&bob),
        json!({ "name": "Bad.Name" }),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    // Teams: create (201), change the role (200), members.
    let team = api
        .put(
            "/api/v1/organization/acme/team/devs",
            Some(&alice),
            json!({ "role": "member", "description": "Developers" }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(team["role"], "member");
    let team = api
        .put(
            "/api/v1/organization/acme/team/devs",
            Some(&alice),
            json!({ "role": "creator" }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(team["role"], "creator");
    api.put(
        "/api/v1/organization/acme/team/devs",
        Some(&alice),
        json!({ "role": "overlord" }),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let member = api
        .put(
            "/api/v1/organization/acme/team/devs/members/bob",
            Some(&alice),
            json!({}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        member,
        json!({ "name": "bob", "kind": "user", "is_robot": false })
    );
    // Now a member, bob sees the organization but does not administer it.
    let teams = api
        .get("/api/v1/organization/acme/teams", Some(&bob))
        .await
        .expect(StatusCode::OK);
    assert_eq!(teams["teams"].as_array().unwrap().len(), 2);
    let members = api
        .get("/api/v1/organization/acme/team/devs/members", Some(&bob))
        .await
        .expect(StatusCode::OK);
    assert_eq!(members["members"][0]["name"], "bob");
    api.delete("/api/v1/organization/acme/team/devs", Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);
    let me = api
        .get("/api/v1/user/", Some(&bob))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        me["organizations"],
        json!([{ "name": "acme", "role": "creator", "is_org_admin": false, "can_create_repo": true }])
    );
    api.delete("/api/v1/organization/acme/team/owners", Some(&alice))
        .await
        .expect(StatusCode::BAD_REQUEST);

    // Robots: the token only in the answers that make it, and it works as a password.
    let created = api
        .put(
            "/api/v1/organization/acme/robots/deployer",
            Some(&alice),
            json!({ "description": "CI" }),
        )
        .await;
    assert_eq!(created.cache_control, "no-store");
    let created = created.expect(StatusCode::CREATED);
    assert_eq!(created["name"], "acme+deployer");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("bwr_"));
    let robot = basic_auth("acme+deployer", &token);
    let shown = api
        .get("/api/v1/organization/acme/robots/deployer", Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["description"], "CI");
    assert!(shown.get("token").is_none());
    let listed = api
        .get("/api/v1/organization/acme/robots", Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert!(!listed.to_string().contains(&token));
    api.get("/api/v1/organization/acme/robots", Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);
    // Robots have no account settings of their own.
    api.get("/api/v1/user/", Some(&robot))
        .await
        .expect(StatusCode::FORBIDDEN);
    let regenerated = api
        .post(
            "/api/v1/organization/acme/robots/deployer/regenerate",
            Some(&alice),
            json!({}),
        )
        .await
        .expect(StatusCode::OK);
    assert_ne!(regenerated["token"], created["token"]);
    api.get("/api/v1/user/", Some(&robot))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    api.delete("/api/v1/organization/acme/robots/deployer", Some(&alice))
        .await
        .expect(StatusCode::NO_CONTENT);

    // A user's own robots, with no body at all.
    let own = api
        .call(Method::PUT, "/api/v1/user/robots/builder", Some(&bob), None)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(own["name"], "bob+builder");
    let own_list = api
        .get("/api/v1/user/robots", Some(&bob))
        .await
        .expect(StatusCode::OK);
    assert_eq!(own_list["robots"][0]["name"], "bob+builder");

    api.delete("/api/v1/organization/acme", Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);
    api.delete("/api/v1/organization/acme", Some(&alice))
        .await
        .expect(StatusCode::NO_CONTENT);
    api.get("/api/v1/organization/acme", Some(&alice))
        .await
        .expect(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn repositories_and_permissions() {
    let api = Api::start(&[("BULWARK_AUTH__ANONYMOUS_ACCESS", "true")]);
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.post(
        "/api/v1/organization/",
        Some(&alice),
        json!({ "name": "acme" }),
    )
    .await
    .expect(StatusCode::CREATED);
    api.put(
        "/api/v1/organization/acme/team/readers",
        Some(&alice),
        json!({ "role": "member" }),
    )
    .await
    .expect(StatusCode::CREATED);

    let repo = api
        .post(
            "/api/v1/repository",
            Some(&alice),
            json!({ "namespace": "acme", "repository": "tools/cli", "visibility": "private", "description": "" }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        repo,
        json!({ "namespace": "acme", "name": "tools/cli", "kind": "image", "is_public": false, "created": repo["created"] })
    );
    api.post(
        "/api/v1/repository",
        Some(&bob),
        json!({ "namespace": "acme", "repository": "x", "visibility": "private" }),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    api.post(
        "/api/v1/repository",
        Some(&alice),
        json!({ "namespace": "acme", "repository": "Bad Name", "visibility": "private" }),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    // A / below the namespace travels as %2F. Others see 403 whether it exists or not.
    let path = "/api/v1/repository/acme/tools%2Fcli";
    api.get(path, Some(&alice)).await.expect(StatusCode::OK);
    api.get(path, Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);
    api.get("/api/v1/repository/acme/nothing", Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);
    api.get(path, None).await.expect(StatusCode::UNAUTHORIZED);
    api.get("/api/v1/repository/acme/nothing", Some(&alice))
        .await
        .expect(StatusCode::NOT_FOUND);
    let listed = api
        .get("/api/v1/repository?namespace=acme", Some(&bob))
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed["repositories"], json!([]));
    api.get("/api/v1/repository", Some(&bob))
        .await
        .expect(StatusCode::BAD_REQUEST);

    // Permissions: a user grant makes it visible to bob; teams of the organization.
    let granted = api
        .put(
            &format!("{path}/permissions/user/bob"),
            Some(&alice),
            json!({ "role": "read" }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        granted,
        json!({ "role": "read", "name": "bob", "is_robot": false })
    );
    api.get(path, Some(&bob)).await.expect(StatusCode::OK);
    let listed = api
        .get("/api/v1/repository?namespace=acme", Some(&bob))
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed["repositories"][0]["name"], "tools/cli");
    api.put(
        &format!("{path}/permissions/user/bob"),
        Some(&bob),
        json!({ "role": "admin" }),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    api.put(
        &format!("{path}/permissions/user/nobody"),
        Some(&alice),
        json!({ "role": "read" }),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    api.put(
        &format!("{path}/permissions/team/readers"),
        Some(&alice),
        json!({ "role": "write" }),
    )
    .await
    .expect(StatusCode::OK);
    let users = api
        .get(&format!("{path}/permissions/user/"), Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert_eq!(users["permissions"]["bob"]["role"], "read");
    let teams = api
        .get(&format!("{path}/permissions/team/"), Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        teams["permissions"],
        json!({ "readers": { "role": "write", "name": "readers" } })
    );
    api.delete(&format!("{path}/permissions/user/bob"), Some(&alice))
        .await
        .expect(StatusCode::NO_CONTENT);
    api.get(path, Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);

    // Public: everyone may see it, anonymous callers too (anonymous access is on here).
    let changed = api
        .post(
            &format!("{path}/changevisibility"),
            Some(&alice),
            json!({ "visibility": "public" }),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(changed, json!({ "success": true }));
    assert_eq!(
        api.get(path, None).await.expect(StatusCode::OK)["is_public"],
        true
    );
    let anonymous_list = api
        .get("/api/v1/repository?namespace=acme", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(anonymous_list["repositories"].as_array().unwrap().len(), 1);
    // Reading is not administering.
    api.delete(path, Some(&bob))
        .await
        .expect(StatusCode::FORBIDDEN);
    api.delete(path, Some(&alice))
        .await
        .expect(StatusCode::NO_CONTENT);
    api.get(path, Some(&alice))
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn app_and_api_tokens() {
    let api = Api::start(&[]);
    let alice = api.user("alice").await;

    let created = api
        .post(
            "/api/v1/user/apptoken",
            Some(&alice),
            json!({ "title": "laptop" }),
        )
        .await;
    assert_eq!(created.cache_control, "no-store");
    let created = created.expect(StatusCode::CREATED);
    let code = created["token"]["token_code"].as_str().unwrap().to_owned();
    let id = created["token"]["uuid"].as_str().unwrap().to_owned();
    assert!(code.starts_with("bwa_"));
    // The application token is a password for this user.
    let with_app_token = basic_auth("alice", &code);
    api.get("/api/v1/user/", Some(&with_app_token))
        .await
        .expect(StatusCode::OK);
    let listed = api
        .get("/api/v1/user/apptoken", Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed["tokens"][0]["title"], "laptop");
    assert!(!listed.to_string().contains(&code));
    let one = api
        .get(&format!("/api/v1/user/apptoken/{id}"), Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert!(one["token"].get("token_code").is_none());
    api.delete(&format!("/api/v1/user/apptoken/{id}"), Some(&alice))
        .await
        .expect(StatusCode::NO_CONTENT);
    api.get("/api/v1/user/", Some(&with_app_token))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    // API tokens: bearer tokens limited to their scopes.
    let created = api
        .post(
            "/api/v1/user/apitoken",
            Some(&alice),
            json!({ "name": "automation", "scopes": "user:admin repo:read" }),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(created["token"]["scopes"], "repo:read user:admin");
    let bearer = format!("Bearer {}", created["token"]["token"].as_str().unwrap());
    api.get("/api/v1/user/", Some(&bearer))
        .await
        .expect(StatusCode::OK);
    let narrow = api
        .post(
            "/api/v1/user/apitoken",
            Some(&bearer),
            json!({ "name": "narrow", "scopes": "repo:read" }),
        )
        .await
        .expect(StatusCode::CREATED);
    let narrow = format!("Bearer {}", narrow["token"]["token"].as_str().unwrap());
    // Without user:admin, the token cannot reach the account's settings.
    api.get("/api/v1/user/", Some(&narrow))
        .await
        .expect(StatusCode::FORBIDDEN);
    // Never beyond the creator.
    api.post(
        "/api/v1/user/apitoken",
        Some(&bearer),
        json!({ "name": "wider", "scopes": "org:admin" }),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    api.post(
        "/api/v1/user/apitoken",
        Some(&alice),
        json!({ "name": "su", "scopes": "super:user" }),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    api.post(
        "/api/v1/user/apitoken",
        Some(&alice),
        json!({ "name": "bad", "scopes": "repo:everything" }),
    )
    .await
    .expect(StatusCode::BAD_REQUEST);
    let tokens = api
        .get("/api/v1/user/apitoken", Some(&alice))
        .await
        .expect(StatusCode::OK);
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 2);
    let id = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "automation")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.delete(&format!("/api/v1/user/apitoken/{id}"), Some(&alice))
        .await
        .expect(StatusCode::NO_CONTENT);
    api.get("/api/v1/user/", Some(&bearer))
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bodies_are_bounded_and_errors_are_problems() {
    let api = Api::start(&[]);
    let admin = admin_basic_auth();
    let huge = "x".repeat(100 * 1024);
    api.post(
        "/api/v1/superuser/users/",
        Some(&admin),
        json!({ "username": "big", "password": huge }),
    )
    .await
    .expect(StatusCode::PAYLOAD_TOO_LARGE);
    let malformed = api
        .http
        .post(format!("{}/api/v1/superuser/users/", api.server.url))
        .header("authorization", &admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    api.post(
        "/api/v1/superuser/users/",
        Some(&admin),
        json!({ "username": 1 }),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);

    // Jobs are for superusers.
    api.get("/api/v1/jobs", None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let alice = api.user("alice").await;
    api.get("/api/v1/jobs", Some(&alice))
        .await
        .expect(StatusCode::FORBIDDEN);
    api.get("/api/v1/jobs", Some(&admin))
        .await
        .expect(StatusCode::OK);
    api.get("/api/v1/jobs/notanumber", Some(&admin))
        .await
        .expect(StatusCode::BAD_REQUEST);
}
