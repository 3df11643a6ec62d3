//! The administration commands (`bulwark user|org|robot|repo|token …`) run as the real
//! binary: locally on a data directory (while a server runs on it, and with the server
//! stopped, then started again to use what they made), and remotely against a running
//! server; every effect is checked through the registry or the management API.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use bulwark_oci::Digest;
use bulwark_testkit::{ADMIN_PASSWORD, TestServer, admin_basic_auth, basic_auth};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

/// Runs `bulwark args…` with `stdin` and extra environment variables.
fn bulwark(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("BULWARK_PASSWORD")
        .env_remove("BULWARK_TOKEN")
        .env_remove("SSL_CERT_FILE")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bulwark");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("bulwark output")
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "bulwark {}: {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts success; returns stdout.
#[track_caller]
fn succeeded(args: &[&str], out: Output) -> String {
    assert!(out.status.success(), "{}", describe(args, &out));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Asserts a failure with a message; returns stderr.
#[track_caller]
fn failed(args: &[&str], out: Output) -> String {
    assert!(!out.status.success(), "{}", describe(args, &out));
    let stderr = String::from_utf8(out.stderr).expect("utf-8 errors");
    assert!(!stderr.trim().is_empty(), "{}", args.join(" "));
    stderr
}

/// The administration commands of one registry, locally or remotely.
struct Admin {
    target: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Admin {
    fn local(server: &TestServer) -> Admin {
        let dir = server.data_dir().to_str().expect("utf-8 path").to_owned();
        Admin {
            target: vec!["--data-dir".into(), dir],
            // Quiet, except for the events (logged at info) that one test looks for.
            env: vec![("BULWARK_LOG__LEVEL", "warn,bulwark::event=info".into())],
        }
    }

    fn remote(server: &TestServer) -> Admin {
        Admin {
            target: vec![
                "--server".into(),
                server.url.clone(),
                "--username".into(),
                "admin".into(),
            ],
            env: vec![("BULWARK_PASSWORD", ADMIN_PASSWORD.into())],
        }
    }

    fn run_with(&self, args: &[&str], stdin: &str) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(self.target.iter().map(String::as_str));
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        bulwark(&all, stdin, &env)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run_with(args, ""))
    }

    #[track_caller]
    fn ok_with(&self, args: &[&str], stdin: &str) -> String {
        succeeded(args, self.run_with(args, stdin))
    }

    /// The `--format json` answer.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    #[track_caller]
    fn fails(&self, args: &[&str]) -> String {
        failed(args, self.run_with(args, ""))
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Status and JSON body of `GET /api/v1{path}` with an `Authorization` value.
async fn api_get(server: &TestServer, path: &str, auth: &str) -> (StatusCode, Value) {
    let resp = http()
        .get(format!("{}/api/v1{path}", server.url))
        .header("authorization", auth)
        .send()
        .await
        .expect("GET");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn login_status(server: &TestServer, user: &str, password: &str) -> StatusCode {
    api_get(server, "/user/", &basic_auth(user, password))
        .await
        .0
}

/// Pushes a one-layer image as `repository:v1` with `auth`; returns the status of the first
/// refused step, or of the manifest PUT.
async fn push(server: &TestServer, repository: &str, auth: &str) -> StatusCode {
    let http = http();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = b"a layer pushed by the CLI test".to_vec();
    for blob in [&config, &layer] {
        let started = http
            .post(format!("{}/v2/{repository}/blobs/uploads/", server.url))
            .header("authorization", auth)
            .send()
            .await
            .expect("start upload");
        if started.status() != StatusCode::ACCEPTED {
            return started.status();
        }
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = if location.starts_with('/') {
            format!("{}{location}", server.url)
        } else {
            location
        };
        let done = http
            .put(format!("{url}{sep}digest={}", Digest::sha256_of(blob)))
            .header("authorization", auth)
            .header("content-type", "application/octet-stream")
            .body(blob.clone())
            .send()
            .await
            .expect("finish upload");
        if done.status() != StatusCode::CREATED {
            return done.status();
        }
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::sha256_of(&config).to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": Digest::sha256_of(&layer).to_string(),
            "size": layer.len(),
        }],
    });
    http.put(format!("{}/v2/{repository}/manifests/v1", server.url))
        .header("authorization", auth)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .await
        .expect("PUT manifest")
        .status()
}

/// Status of `GET /v2/{repository}/manifests/v1` with `auth`.
async fn pull(server: &TestServer, repository: &str, auth: &str) -> StatusCode {
    http()
        .get(format!("{}/v2/{repository}/manifests/v1", server.url))
        .header("authorization", auth)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("GET manifest")
        .status()
}

/// A registry token from `/v2/auth` for `scope`, asked with Basic credentials.
async fn registry_token(server: &TestServer, user: &str, secret: &str, scope: &str) -> String {
    let resp = http()
        .get(format!("{}/v2/auth", server.url))
        .query(&[("service", "bulwark"), ("scope", scope)])
        .header("authorization", basic_auth(user, secret))
        .send()
        .await
        .expect("GET /v2/auth");
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json().await.expect("token answer");
    answer["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn local_commands_work_beside_a_server_and_without_one() {
    let mut server = TestServer::start(BIN);
    let local = Admin::local(&server);

    // While the server runs on the same data directory: no lock is taken, and the server
    // sees the change at once.
    let args = ["user", "add", "alice", "--email", "alice@example.com"];
    let args = [&args[..], &["--password-stdin"]].concat();
    let out = local.run_with(&args, "alice-password-1\n");
    let stdout = succeeded(&args, out);
    assert!(stdout.contains("created user alice"), "{stdout}");
    assert!(!stdout.contains("alice-password-1"), "{stdout}");
    // The event is in the action log, as the server's own are, naming the operator and the
    // local CLI.
    let log = std::process::Command::new(BIN)
        .args(["logs", "list", "--json", "--data-dir"])
        .arg(server.data_dir())
        .env("BULWARK_LOG__LEVEL", "warn")
        .output()
        .expect("run bulwark logs list");
    let log = String::from_utf8_lossy(&log.stdout);
    let created = log
        .lines()
        .find(|line| line.contains("\"user.create\""))
        .unwrap_or_else(|| panic!("no user.create entry in the action log: {log}"));
    assert!(created.contains("bulwark-cli/"), "{created}");
    assert!(created.contains("admin"), "{created}");
    assert_eq!(
        login_status(&server, "alice", "alice-password-1").await,
        StatusCode::OK
    );

    // The server stopped: the commands work on the data directory alone.
    server.kill();
    let bob = local.json(&["user", "add", "bob"]);
    let bob_password = bob["password"].as_str().expect("generated password");
    assert_eq!(bob["user"]["username"], "bob");
    assert_eq!(bob["user"]["super_user"], false);
    let carol = local.json(&["user", "add", "carol"]);
    let carol_password = carol["password"].as_str().unwrap().to_owned();
    local.ok(&["user", "disable", "carol"]);
    let out = local.ok(&["org", "add", "acme", "--owner", "alice"]);
    assert!(out.contains("owners: alice"), "{out}");
    let owners = local.json(&["org", "member", "list", "acme", "owners"]);
    assert_eq!(owners, json!([{ "name": "alice", "kind": "user" }]));
    local.ok(&[
        "org", "team", "add", "acme", "builders", "--role", "creator",
    ]);
    local.ok(&["org", "member", "add", "acme", "builders", "bob"]);
    let robot = local.json(&["robot", "add", "acme", "ci"]);
    assert_eq!(robot["name"], "acme+ci");
    let robot_token = robot["token"].as_str().expect("robot token").to_owned();
    local.ok(&["repo", "add", "acme/tools/app"]);
    local.ok(&[
        "repo",
        "grant",
        "acme/tools/app",
        "--user",
        "acme+ci",
        "read",
    ]);
    let permissions = local.json(&["repo", "permissions", "acme/tools/app"]);
    assert_eq!(
        permissions,
        json!([{ "name": "acme+ci", "kind": "robot", "role": "read" }])
    );
    let token = local.json(&["token", "add", "laptop", "--expires-in", "30d"]);
    assert!(token["token_code"].is_string(), "{token}");
    let alice_token = local.json(&["token", "add", "laptop", "--user", "alice"]);
    let alice_token = alice_token["token_code"].as_str().unwrap().to_owned();
    // The first-start message tells operators to change the admin password this way.
    let out = local.ok_with(
        &["user", "passwd", "admin", "--password-stdin"],
        "admin-pw-2\n",
    );
    assert!(!out.contains("admin-pw-2"), "{out}");

    // The server again, on what the commands made.
    server.restart();
    assert_eq!(
        login_status(&server, "admin", ADMIN_PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&server, "admin", "admin-pw-2").await,
        StatusCode::OK
    );
    assert_eq!(
        login_status(&server, "carol", &carol_password).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, me) = api_get(&server, "/user/", &basic_auth("bob", bob_password)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["organizations"][0]["name"], "acme");
    assert_eq!(me["organizations"][0]["role"], "creator");

    // The owner pushes with her application token; the robot pulls with its token and is
    // granted no push.
    let alice = basic_auth("alice", &alice_token);
    assert_eq!(
        push(&server, "acme/tools/app", &alice).await,
        StatusCode::CREATED
    );
    let scope = "repository:acme/tools/app:pull,push";
    let bearer = format!(
        "Bearer {}",
        registry_token(&server, "acme+ci", &robot_token, scope).await
    );
    assert_eq!(
        pull(&server, "acme/tools/app", &bearer).await,
        StatusCode::OK
    );
    let refused = push(&server, "acme/tools/app", &bearer).await;
    assert!(refused.is_client_error(), "{refused}");

    // A regenerated token takes over at once, with the server running.
    let renewed = local.json(&["robot", "regenerate", "acme", "ci"]);
    let renewed = renewed["token"].as_str().unwrap();
    let old = basic_auth("acme+ci", &robot_token);
    assert_eq!(
        pull(&server, "acme/tools/app", &old).await,
        StatusCode::UNAUTHORIZED
    );
    let new = basic_auth("acme+ci", renewed);
    assert_eq!(pull(&server, "acme/tools/app", &new).await, StatusCode::OK);
}

#[tokio::test]
async fn remote_commands_go_through_the_management_api() {
    let server = TestServer::start(BIN);
    let remote = Admin::remote(&server);
    let admin = admin_basic_auth();

    // Users: a generated password, then one from stdin after the login password.
    let dave = remote.json(&["user", "add", "dave", "--email", "dave@example.com"]);
    let dave_password = dave["password"].as_str().unwrap().to_owned();
    assert_eq!(
        login_status(&server, "dave", &dave_password).await,
        StatusCode::OK
    );
    let args = [
        "user",
        "passwd",
        "dave",
        "--password-stdin",
        "--server",
        &server.url,
        "--username",
        "admin",
    ];
    let stdin = format!("{ADMIN_PASSWORD}\ndave-password-2\n");
    let out = succeeded(&args, bulwark(&args, &stdin, &[]));
    assert!(!out.contains("dave-password-2"), "{out}");
    assert_eq!(
        login_status(&server, "dave", "dave-password-2").await,
        StatusCode::OK
    );
    remote.ok_with(
        &["user", "add", "eve", "--password-stdin"],
        "eve-password-1\n",
    );
    let users = remote.json(&["user", "list"]);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "dave", "eve"]);
    let listed = remote.ok(&["user", "list"]);
    assert!(
        listed.lines().next().unwrap().starts_with("NAME"),
        "{listed}"
    );
    assert!(listed.contains("dave@example.com"), "{listed}");
    remote.ok(&["user", "disable", "eve"]);
    assert_eq!(
        login_status(&server, "eve", "eve-password-1").await,
        StatusCode::UNAUTHORIZED
    );
    remote.ok(&["user", "enable", "eve"]);
    assert_eq!(
        login_status(&server, "eve", "eve-password-1").await,
        StatusCode::OK
    );

    // An organization handed to its owner, a team and its members.
    remote.ok(&["org", "add", "widgets", "--owner", "dave"]);
    let (status, owners) =
        api_get(&server, "/organization/widgets/team/owners/members", &admin).await;
    assert_eq!(status, StatusCode::OK, "{owners}");
    assert_eq!(
        owners["members"],
        json!([{ "name": "dave", "kind": "user", "is_robot": false }])
    );
    remote.ok(&["org", "team", "add", "widgets", "qa", "--role", "member"]);
    remote.ok(&["org", "member", "add", "widgets", "qa", "eve"]);
    let teams = remote.json(&["org", "team", "list", "widgets"]);
    assert_eq!(teams[0]["name"], "owners");
    assert_eq!(
        (teams[1]["name"].as_str(), teams[1]["member_count"].as_u64()),
        (Some("qa"), Some(1))
    );
    let eve = basic_auth("eve", "eve-password-1");
    let (_, me) = api_get(&server, "/user/", &eve).await;
    assert_eq!(me["organizations"][0]["name"], "widgets");
    remote.ok(&["org", "member", "remove", "widgets", "qa", "eve"]);
    assert_eq!(
        remote.json(&["org", "member", "list", "widgets", "qa"]),
        json!([])
    );

    // A robot pushes where it was granted write; visibility and team permissions.
    let robot = remote.json(&["robot", "add", "widgets", "deploy"]);
    let robot_token = robot["token"].as_str().unwrap().to_owned();
    let robots = remote.json(&["robot", "list", "widgets"]);
    assert_eq!(robots[0]["name"], "widgets+deploy");
    remote.ok(&["repo", "add", "widgets/web/site"]);
    remote.ok(&[
        "repo",
        "grant",
        "widgets/web/site",
        "--user",
        "widgets+deploy",
        "write",
    ]);
    remote.ok(&["repo", "grant", "widgets/web/site", "--team", "qa", "read"]);
    let deploy = basic_auth("widgets+deploy", &robot_token);
    assert_eq!(
        push(&server, "widgets/web/site", &deploy).await,
        StatusCode::CREATED
    );
    let permissions = remote.json(&["repo", "permissions", "widgets/web/site"]);
    assert_eq!(
        permissions,
        json!([
            { "name": "widgets+deploy", "kind": "robot", "role": "write" },
            { "name": "qa", "kind": "team", "role": "read" },
        ])
    );
    remote.ok(&["repo", "revoke", "widgets/web/site", "--team", "qa"]);
    remote.ok(&["repo", "visibility", "widgets/web/site", "public"]);
    let (status, repo) = api_get(&server, "/repository/widgets/web%2Fsite", &admin).await;
    assert_eq!(status, StatusCode::OK, "{repo}");
    assert_eq!(repo["is_public"], true);
    let repos = remote.json(&["repo", "list", "widgets"]);
    assert_eq!(repos[0]["name"], "web/site");
    let renewed = remote.json(&["robot", "regenerate", "widgets", "deploy"]);
    assert_ne!(renewed["token"], robot["token"]);
    assert_eq!(
        pull(&server, "widgets/web/site", &deploy).await,
        StatusCode::UNAUTHORIZED
    );
    remote.ok(&["robot", "delete", "widgets", "deploy"]);
    assert_eq!(remote.json(&["robot", "list", "widgets"]), json!([]));

    // Application tokens are the caller's: one works as admin's registry password.
    let token = remote.json(&["token", "add", "ci", "--expires-in", "1h"]);
    let expiration = token["expiration"].as_i64().unwrap();
    let created = token["created"].as_i64().unwrap();
    assert!(
        (3_590_000..=3_610_000).contains(&(expiration - created)),
        "{token}"
    );
    let code = token["token_code"].as_str().unwrap();
    let with_token = basic_auth("admin", code);
    assert_eq!(
        pull(&server, "widgets/web/site", &with_token).await,
        StatusCode::OK
    );
    let id = token["uuid"].as_str().unwrap();
    remote.ok(&["token", "revoke", id]);
    let tokens = remote.json(&["token", "list"]);
    assert!(tokens[0]["revoked"].is_i64(), "{tokens}");
    let err = remote.fails(&["token", "add", "x", "--user", "eve"]);
    assert!(err.contains("log in as eve"), "{err}");

    // An API token instead of a password.
    let resp = http()
        .post(format!("{}/api/v1/user/apitoken", server.url))
        .header("authorization", &admin)
        .json(&json!({ "name": "cli", "scopes": "super:user" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let api_token: Value = resp.json().await.unwrap();
    let api_token = api_token["token"]["token"].as_str().unwrap();
    let args = ["user", "delete", "eve", "--server", &server.url];
    succeeded(&args, bulwark(&args, "", &[("BULWARK_TOKEN", api_token)]));
    assert_eq!(
        login_status(&server, "eve", "eve-password-1").await,
        StatusCode::UNAUTHORIZED
    );
    remote.ok(&["org", "delete", "widgets"]);
    let (status, _) = api_get(&server, "/organization/widgets", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Refusals: the server's message and a non-zero exit.
    let err = remote.fails(&["user", "delete", "nobody"]);
    assert!(
        err.contains("nobody not found") && err.contains("404"),
        "{err}"
    );
    let err = remote.fails(&["user", "delete", "admin"]);
    assert!(err.contains("last enabled superuser"), "{err}");
    let args = [
        "user",
        "list",
        "--server",
        &server.url,
        "--username",
        "admin",
    ];
    let err = failed(
        &args,
        bulwark(&args, "", &[("BULWARK_PASSWORD", "wrong-password")]),
    );
    assert!(err.contains("invalid username or password"), "{err}");
    let as_dave = [
        "user",
        "list",
        "--server",
        &server.url,
        "--username",
        "dave",
    ];
    let err = failed(
        &as_dave,
        bulwark(&as_dave, "", &[("BULWARK_PASSWORD", "dave-password-2")]),
    );
    assert!(err.contains("403"), "{err}");
}

#[test]
fn usage_errors_are_explained() {
    let missing = tempfile::tempdir().unwrap();
    let dir = missing.path().to_str().unwrap();
    let err = failed(
        &["user", "list"],
        bulwark(&["user", "list", "--data-dir", dir], "", &[]),
    );
    assert!(err.contains("no registry database"), "{err}");
    let args = [
        "user",
        "list",
        "--server",
        "http://127.0.0.1:9",
        "--data-dir",
        dir,
    ];
    let err = failed(&args, bulwark(&args, "", &[]));
    assert!(err.contains("cannot be used with"), "{err}");
    let args = ["user", "list", "--server", "http://127.0.0.1:9"];
    let err = failed(&args, bulwark(&args, "", &[]));
    assert!(err.contains("BULWARK_TOKEN"), "{err}");
    let args = ["repo", "grant", "acme/app", "read", "--data-dir", dir];
    let err = failed(&args, bulwark(&args, "", &[]));
    assert!(err.contains("--user") && err.contains("--team"), "{err}");
    let args = [
        "org",
        "team",
        "add",
        "acme",
        "qa",
        "--role",
        "boss",
        "--data-dir",
        dir,
    ];
    let err = failed(&args, bulwark(&args, "", &[]));
    assert!(err.contains("member") && err.contains("creator"), "{err}");
    let args = ["repo", "add", "app", "--data-dir", dir];
    let err = failed(&args, bulwark(&args, "", &[]));
    assert!(err.contains("library/app"), "{err}");
}

/// Writes a CA and a certificate for 127.0.0.1 signed by it; returns the CA's path and
/// the server's certificate and key.
fn certificates(dir: &std::path::Path) -> [String; 3] {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let openssl = |args: Vec<&str>| {
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let [ca, ca_key, cert, key, csr, ext] = [
        "ca.pem", "ca.key", "cert.pem", "key.pem", "csr.pem", "ext.cnf",
    ]
    .map(path);
    openssl(
        [
            &["req", "-x509", "-days", "1", "-subj", "/CN=test ca"],
            &new_key[..],
        ]
        .concat()
        .into_iter()
        .chain(["-keyout", &ca_key, "-out", &ca])
        .collect(),
    );
    openssl(
        [&["req", "-subj", "/CN=127.0.0.1"], &new_key[..]]
            .concat()
            .into_iter()
            .chain(["-keyout", &key, "-out", &csr])
            .collect(),
    );
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(vec![
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    [ca, cert, key]
}

#[test]
fn remote_tls_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = certificates(dir.path());
    let server = TestServer::start_with(
        BIN,
        &[],
        &[("BULWARK_TLS__CERT", &cert), ("BULWARK_TLS__KEY", &key)],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let args = [
        "user",
        "list",
        "--server",
        &server.url,
        "--username",
        "admin",
    ];
    let login = ("BULWARK_PASSWORD", ADMIN_PASSWORD);

    let err = failed(&args, bulwark(&args, "", &[login]));
    assert!(err.contains("certificate"), "{err}");
    let out = succeeded(&args, bulwark(&args, "", &[login, ("SSL_CERT_FILE", &ca)]));
    assert!(out.contains("admin"), "{out}");
    let insecure = [&args[..], &["--insecure"]].concat();
    let out = succeeded(&insecure, bulwark(&insecure, "", &[login]));
    assert!(out.contains("admin"), "{out}");
}
