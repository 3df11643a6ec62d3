//! Set-up for the tests of who may do what: users, organizations, robots, application
//! tokens, repositories and grants made through the management API, and registry tokens
//! asked of the token endpoint (`/v2/auth`) as clients ask for them.
//!
//! Each test binary uses a subset of these.
#![allow(dead_code)]

use std::time::Duration;

use bulwark_testkit::{TestServer, admin_basic_auth, basic_auth};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The token service's name in challenges and in the `aud` of tokens (`auth.service`).
pub const SERVICE: &str = "bulwark";

/// A server's management API, driven as the superuser unless a call says otherwise.
pub struct Manage {
    url: String,
    http: reqwest::Client,
}

impl Manage {
    pub fn new(server: &TestServer) -> Manage {
        Manage {
            url: server.url.clone(),
            http: plain_http(),
        }
    }

    /// A management request authenticated with `auth` (an `Authorization` value) that must
    /// succeed; returns the JSON answer (`Null` when there is none).
    pub async fn call_as(&self, auth: &str, method: Method, path: &str, body: Value) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("authorization", auth);
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("management request");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("management answer");
        assert!(
            status.is_success(),
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON answer")
        }
    }

    /// [`Manage::call_as`] the superuser.
    pub async fn call(&self, method: Method, path: &str, body: Value) -> Value {
        self.call_as(&admin_basic_auth(), method, path, body).await
    }

    /// Creates the user `name`; returns its password.
    pub async fn user(&self, name: &str) -> String {
        let password = format!("{name}-secret-password");
        self.call(
            Method::POST,
            "/api/v1/superuser/users/",
            json!({ "username": name, "password": password }),
        )
        .await;
        password
    }

    /// Creates the organization `name`, owned by the superuser.
    pub async fn org(&self, name: &str) {
        self.call(
            Method::POST,
            "/api/v1/organization/",
            json!({ "name": name }),
        )
        .await;
    }

    /// Creates the repository `name` (`namespace/…`), public or private.
    pub async fn repository(&self, name: &str, public: bool) {
        let (namespace, repository) = name.split_once('/').expect("namespace/repository");
        let visibility = if public { "public" } else { "private" };
        self.call(
            Method::POST,
            "/api/v1/repository",
            json!({ "namespace": namespace, "repository": repository, "visibility": visibility }),
        )
        .await;
    }

    /// Grants `role` (`read`, `write`, `admin`) on `repository` to the user or robot
    /// `grantee`.
    pub async fn grant(&self, repository: &str, grantee: &str, role: &str) {
        self.call(
            Method::PUT,
            &format!("{}/permissions/user/{grantee}", repository_path(repository)),
            json!({ "role": role }),
        )
        .await;
    }

    /// Creates the robot `org+short`; returns its token.
    pub async fn robot(&self, org: &str, short: &str) -> String {
        let created = self
            .call(
                Method::PUT,
                &format!("/api/v1/organization/{org}/robots/{short}"),
                json!({ "description": "made by a test" }),
            )
            .await;
        created["token"].as_str().expect("robot token").to_owned()
    }

    /// Gives the robot `org+short` a new token; returns it.
    pub async fn regenerate_robot(&self, org: &str, short: &str) -> String {
        let regenerated = self
            .call(
                Method::POST,
                &format!("/api/v1/organization/{org}/robots/{short}/regenerate"),
                json!({}),
            )
            .await;
        regenerated["token"]
            .as_str()
            .expect("robot token")
            .to_owned()
    }

    /// An application token that `user` creates for itself with its password.
    pub async fn app_token(&self, user: &str, password: &str, title: &str) -> String {
        let created = self
            .call_as(
                &basic_auth(user, password),
                Method::POST,
                "/api/v1/user/apptoken",
                json!({ "title": title }),
            )
            .await;
        created["token"]["token_code"]
            .as_str()
            .expect("token_code")
            .to_owned()
    }
}

/// The management API's path of `repository` (a `/` below the namespace travels as `%2F`).
pub fn repository_path(repository: &str) -> String {
    let (namespace, rest) = repository.split_once('/').expect("namespace/repository");
    format!(
        "/api/v1/repository/{namespace}/{}",
        rest.replace('/', "%2F")
    )
}

/// An HTTP client that adds nothing to requests: no credentials, never a proxy.
pub fn plain_http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

/// `GET /v2/auth` with `query` (`service`, `scope`, `offline_token`…), with Basic
/// `credentials` or none; returns the status and the JSON answer.
pub async fn ask_token(
    server: &TestServer,
    credentials: Option<(&str, &str)>,
    query: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = plain_http()
        .get(format!("{}/v2/auth", server.url))
        .query(query);
    if let Some((user, secret)) = credentials {
        req = req.header("authorization", basic_auth(user, secret));
    }
    let resp = req.send().await.expect("GET /v2/auth");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A registry token for `scope` (the service left to the server), which the token endpoint
/// must issue.
pub async fn registry_token(
    server: &TestServer,
    credentials: Option<(&str, &str)>,
    scope: &str,
) -> String {
    let (status, answer) = ask_token(server, credentials, &[("scope", scope)]).await;
    assert_eq!(status, StatusCode::OK, "token for {scope}: {answer}");
    answer["token"].as_str().expect("token").to_owned()
}

/// Status of `GET /v2/<repository>/manifests/<reference>` with `authorization` (an
/// `Authorization` value) or none.
pub async fn manifest_status(
    server: &TestServer,
    repository: &str,
    reference: &str,
    authorization: Option<&str>,
) -> StatusCode {
    let mut req = plain_http()
        .get(format!(
            "{}/v2/{repository}/manifests/{reference}",
            server.url
        ))
        .header("accept", "application/vnd.oci.image.manifest.v1+json");
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.send().await.expect("GET manifest").status()
}
