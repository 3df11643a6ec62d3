//! Real clients against the real binary with access control: users, robots and application
//! tokens log in and pull or push what their grants allow, through the registry token flow
//! (Bulwark answers `401` with a `Bearer` challenge; clients fetch a token from `/v2/auth`),
//! and nothing else. Everything a client is refused is checked to have changed nothing.

#[path = "common/access.rs"]
mod access;
#[path = "common/clients.rs"]
mod clients;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use access::*;
use bulwark_testkit::{TestServer, basic_auth};
use clients::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The smallest fixture image.
const SMALL: &str = "alpine318-apkdb";

/// The organization `acme`, owned by the superuser, and its private `repository`.
async fn private_repository(manage: &Manage, repository: &str) {
    manage.org("acme").await;
    manage.repository(repository, false).await;
}

/// The fixture image `tag` as a skopeo source.
fn fixture(tag: &str) -> String {
    format!("oci:{}:{tag}", Layout::fixtures().root.display())
}

/// An empty containers auth file (`REGISTRY_AUTH_FILE`): skopeo then uses only the
/// credentials it is given, never ones a user of the machine stored, and a podman that never
/// logged in none at all (its own auth file exists only after a `login`).
fn empty_auth_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("empty-auth-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"auths":{}}"#).expect("write auth file");
        path
    })
}

/// `skopeo ARGS` with no stored credentials (TLS options and credentials are in `args`).
fn skopeo_cmd(args: &[&str]) -> tokio::process::Command {
    require_tool("skopeo");
    let mut cmd = tokio::process::Command::new("skopeo");
    cmd.args(args).env("REGISTRY_AUTH_FILE", empty_auth_file());
    cmd
}

/// Runs a client command that must fail because the registry refused its credentials (a
/// `401` from the token endpoint, which containers/image reports as an invalid username or
/// password) or their grants (a `401` on `/v2`); returns its stderr.
async fn refused(cmd: &mut tokio::process::Command) -> String {
    let shown = format!("{cmd:?}");
    let out = output(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{shown} succeeded");
    assert!(
        ["unauthorized", "invalid username/password"]
            .iter()
            .any(|refusal| stderr.to_lowercase().contains(refusal)),
        "{shown} failed for another reason than a refusal:\n{stderr}"
    );
    stderr
}

/// Whether the superuser sees `repository:tag`.
async fn tag_exists(server: &TestServer, repository: &str, tag: &str) -> bool {
    get_manifest(&http(), &server.url, repository, tag)
        .await
        .is_some()
}

/// skopeo with `--creds` of a user granted `write` pushes a fixture into a private
/// repository, inspects it and pulls it back whole; without credentials or with a wrong
/// password it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn skopeo_creds_of_a_user_with_write_push_inspect_and_pull() {
    let server = TestServer::start(bulwark_bin());
    let manage = Manage::new(&server);
    private_repository(&manage, "acme/app").await;
    let password = manage.user("alice").await;
    manage.grant("acme/app", "alice", "write").await;
    let creds = format!("alice:{password}");
    let image = format!("docker://{}/acme/app:1", server.host);
    let want = Layout::fixtures().image(SMALL);

    run(&mut skopeo_cmd(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &fixture(SMALL),
        &image,
    ]))
    .await;
    let inspected: Value = serde_json::from_str(
        &run(&mut skopeo_cmd(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &creds,
            &image,
        ]))
        .await,
    )
    .expect("inspect JSON");
    assert_eq!(inspected["Digest"], want.manifest_digest.as_str());

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("layout");
    run(&mut skopeo_cmd(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &image,
        &format!("oci:{}:app", out.display()),
    ]))
    .await;
    let layout = Layout::open(&out);
    let pulled = layout.image("app");
    assert_eq!(pulled.manifest_digest, want.manifest_digest);
    layout.assert_blobs_intact(&pulled);

    refused(&mut skopeo_cmd(&["inspect", "--tls-verify=false", &image])).await;
    let wrong = refused(&mut skopeo_cmd(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:not-her-password",
        &image,
    ]))
    .await;
    assert!(
        wrong.contains("unable to retrieve auth token"),
        "refused by the token endpoint: {wrong}"
    );
}

/// `podman login` as a user with `write` pulls and pushes; another user with `read` pulls
/// what was pushed (same image) but cannot push; podman without login pulls nothing.
#[tokio::test(flavor = "multi_thread")]
async fn podman_login_pushes_with_write_and_pulls_with_read() {
    let server = TestServer::start(bulwark_bin());
    let host = &server.host;
    let manage = Manage::new(&server);
    private_repository(&manage, "acme/app").await;
    let alice = manage.user("alice").await;
    let bob = manage.user("bob").await;
    manage.grant("acme/app", "alice", "write").await;
    manage.grant("acme/app", "bob", "read").await;
    skopeo_copy(&fixture(SMALL), &format!("docker://{host}/acme/app:1")).await;
    let image_id = Layout::fixtures().image(SMALL).config.digest;
    let image_id = image_id.trim_start_matches("sha256:");

    let writer = Tool::new("podman");
    writer.login(host, "alice", &alice).await;
    let original = format!("{host}/acme/app:1");
    writer
        .run(&["pull", "--quiet", "--tls-verify=false", &original])
        .await;
    let pushed = format!("{host}/acme/app:by-alice");
    writer.run(&["tag", &original, &pushed]).await;
    writer
        .run(&["push", "--quiet", "--tls-verify=false", &pushed])
        .await;
    let served = get_manifest(&http(), &server.url, "acme/app", "by-alice")
        .await
        .expect("alice's push is stored");
    pull_verified(&http(), &server.url, "acme/app", "by-alice").await;

    let reader = Tool::new("podman");
    reader.login(host, "bob", &bob).await;
    reader
        .run(&["pull", "--quiet", "--tls-verify=false", &pushed])
        .await;
    let info = reader.inspect(&pushed).await;
    assert_eq!(info["Id"], image_id, "bob pulled alice's image");
    assert_eq!(info["Digest"], served.digest.as_str());
    let by_bob = format!("{host}/acme/app:by-bob");
    reader.run(&["tag", &pushed, &by_bob]).await;
    refused(&mut reader.cmd(&["push", "--tls-verify=false", &by_bob])).await;
    assert!(!tag_exists(&server, "acme/app", "by-bob").await);

    let stranger = Tool::new("podman");
    refused(
        stranger
            .cmd(&["pull", "--tls-verify=false", &original])
            .env("REGISTRY_AUTH_FILE", empty_auth_file()),
    )
    .await;
}

/// `buildah login` as a user with `write`, then a scratch image built, committed and
/// pushed: the registry holds exactly the committed image.
#[tokio::test(flavor = "multi_thread")]
async fn buildah_login_then_push() {
    let server = TestServer::start(bulwark_bin());
    let host = &server.host;
    let manage = Manage::new(&server);
    private_repository(&manage, "acme/app").await;
    let password = manage.user("alice").await;
    manage.grant("acme/app", "alice", "write").await;

    let buildah = Tool::new("buildah");
    buildah.login(host, "alice", &password).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("hello.txt");
    std::fs::write(&file, "built and pushed by alice\n").unwrap();
    let ctr = buildah.run(&["from", "--quiet", "scratch"]).await;
    buildah
        .run(&["copy", &ctr, file.to_str().unwrap(), "/hello.txt"])
        .await;
    let reference = format!("{host}/acme/app:built");
    let image_id = buildah.run(&["commit", "--quiet", &ctr, &reference]).await;
    buildah
        .run(&["push", "--quiet", "--tls-verify=false", &reference])
        .await;

    let served = get_manifest(&http(), &server.url, "acme/app", "built")
        .await
        .expect("pushed");
    assert_eq!(
        Image::parse(served.body).config.digest,
        format!("sha256:{image_id}"),
        "the pushed config is the committed image"
    );
    assert_eq!(
        pull_verified(&http(), &server.url, "acme/app", "built").await,
        served.digest
    );
}

/// oras-py's token backend (`tests/clients/oras_token.py`) logged in as a user with
/// `write`: it pushes with a bearer token for `pull,push` and pulls back through the
/// automatic token flow with a `pull` token; both tokens name the user and only this
/// repository.
#[tokio::test(flavor = "multi_thread")]
async fn oras_py_token_backend_pushes_and_pulls() {
    let python = test_python();
    let server = TestServer::start(bulwark_bin());
    let manage = Manage::new(&server);
    private_repository(&manage, "acme/app").await;
    let password = manage.user("alice").await;
    manage.grant("acme/app", "alice", "write").await;
    let work = tempfile::tempdir().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/oras_token.py");

    let stdout = run(tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&server.host)
        .arg(work.path())
        .args(["alice", &password, "acme/app"]))
    .await;
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("script output is not its JSON report ({e}):\n{stdout}"));

    let digest = report["digest"].as_str().expect("digest");
    assert_eq!(
        pull_verified(&http(), &server.url, "acme/app", "v1").await,
        digest
    );
    for (token, actions) in [
        ("push_token", json!(["pull", "push"])),
        ("pull_token", json!(["pull"])),
    ] {
        let claims = &report[token];
        assert_eq!(claims["sub"], "alice", "{token}: {claims}");
        assert_eq!(claims["aud"], SERVICE, "{token}: {claims}");
        assert_eq!(
            claims["access"],
            json!([{ "type": "repository", "name": "acme/app", "actions": actions }]),
            "{token}"
        );
    }
}

/// A robot granted `read` pulls with `skopeo --creds 'acme+ci:TOKEN'` but its push is
/// refused (its tokens carry `pull` only). Regenerating its token refuses the old one at
/// once, at the token endpoint and for refresh tokens issued on it, and the new one works.
#[tokio::test(flavor = "multi_thread")]
async fn robot_with_read_pulls_but_cannot_push_and_regeneration_retires_its_token() {
    let server = TestServer::start(bulwark_bin());
    let manage = Manage::new(&server);
    private_repository(&manage, "acme/app").await;
    let image = format!("docker://{}/acme/app:1", server.host);
    skopeo_copy(&fixture(SMALL), &image).await;
    let old = manage.robot("acme", "ci").await;
    manage.grant("acme/app", "acme+ci", "read").await;
    let creds = format!("acme+ci:{old}");

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("layout");
    run(&mut skopeo_cmd(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--src-creds",
        &creds,
        &image,
        &format!("oci:{}:app", out.display()),
    ]))
    .await;
    let layout = Layout::open(&out);
    let pulled = layout.image("app");
    assert_eq!(
        pulled.manifest_digest,
        Layout::fixtures().image(SMALL).manifest_digest
    );
    layout.assert_blobs_intact(&pulled);

    refused(&mut skopeo_cmd(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &fixture("rhel8like-rpmsqlite"),
        &format!("docker://{}/acme/app:robot", server.host),
    ]))
    .await;
    assert!(!tag_exists(&server, "acme/app", "robot").await);
    let (status, answer) = ask_token(
        &server,
        Some(("acme+ci", &old)),
        &[
            ("scope", "repository:acme/app:pull,push"),
            ("offline_token", "true"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["scope"], "repository:acme/app:pull",
        "read grants pull only"
    );
    let refresh = answer["refresh_token"].as_str().expect("refresh token");

    let new = manage.regenerate_robot("acme", "ci").await;
    assert_ne!(new, old);
    refused(&mut skopeo_cmd(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds,
        &image,
    ]))
    .await;
    let (status, _) = redeem(&server, refresh, "repository:acme/app:pull").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a refresh token of the old robot token"
    );
    let inspected: Value = serde_json::from_str(
        &run(&mut skopeo_cmd(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("acme+ci:{new}"),
            &image,
        ]))
        .await,
    )
    .expect("inspect JSON");
    assert_eq!(inspected["Digest"], pulled.manifest_digest.as_str());
}

/// With `auth.tokens_only`, `podman login` with the user's real password is refused and
/// with an application token (`bwa_…`) succeeds; podman (and skopeo `--creds`) then push
/// and pull with it.
/// A revoked application token no longer logs in.
#[tokio::test(flavor = "multi_thread")]
async fn app_token_logs_in_while_tokens_only_refuses_the_password() {
    let server =
        TestServer::start_with(bulwark_bin(), &[], &[("BULWARK_AUTH__TOKENS_ONLY", "true")]);
    let host = &server.host;
    let manage = Manage::new(&server);
    private_repository(&manage, "acme/app").await;
    let password = manage.user("alice").await;
    manage.grant("acme/app", "alice", "write").await;
    let code = manage.app_token("alice", &password, "laptop").await;
    assert!(code.starts_with("bwa_"), "{code}");

    let podman = Tool::new("podman");
    refused(&mut podman.cmd(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        &password,
        host,
    ]))
    .await;
    podman.login(host, "alice", &code).await;
    let app_creds = format!("alice:{code}");
    run(&mut skopeo_cmd(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds",
        &app_creds,
        &fixture(SMALL),
        &format!("docker://{host}/acme/app:1"),
    ]))
    .await;
    let original = format!("{host}/acme/app:1");
    podman
        .run(&["pull", "--quiet", "--tls-verify=false", &original])
        .await;
    let reference = format!("{host}/acme/app:app-token");
    podman.run(&["tag", &original, &reference]).await;
    podman
        .run(&["push", "--quiet", "--tls-verify=false", &reference])
        .await;
    let puller = Tool::new("podman");
    puller.login(host, "alice", &code).await;
    puller
        .run(&["pull", "--quiet", "--tls-verify=false", &reference])
        .await;
    let image_id = Layout::fixtures().image(SMALL).config.digest;
    assert_eq!(
        puller.inspect(&reference).await["Id"],
        image_id.trim_start_matches("sha256:")
    );

    // Basic auth straight on /v2 follows the same rule.
    let as_basic = |secret: &str| basic_auth("alice", secret);
    assert_eq!(
        manifest_status(&server, "acme/app", "app-token", Some(&as_basic(&code))).await,
        StatusCode::OK
    );
    assert_eq!(
        manifest_status(&server, "acme/app", "app-token", Some(&as_basic(&password))).await,
        StatusCode::UNAUTHORIZED
    );

    let listed = manage
        .call_as(
            &as_basic(&password),
            Method::GET,
            "/api/v1/user/apptoken",
            Value::Null,
        )
        .await;
    let id = listed["tokens"][0]["uuid"].as_str().expect("token id");
    manage
        .call_as(
            &as_basic(&password),
            Method::DELETE,
            &format!("/api/v1/user/apptoken/{id}"),
            Value::Null,
        )
        .await;
    refused(&mut Tool::new("podman").cmd(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        &code,
        host,
    ]))
    .await;
}

/// With anonymous access on, skopeo and podman without credentials pull a public
/// repository; a private one answers `401` with a challenge naming the scope to ask for,
/// and an anonymous token for it grants nothing.
#[tokio::test(flavor = "multi_thread")]
async fn anonymous_pulls_a_public_repository_but_not_a_private_one() {
    let server = TestServer::start_with(
        bulwark_bin(),
        &[],
        &[("BULWARK_AUTH__ANONYMOUS_ACCESS", "true")],
    );
    let host = &server.host;
    let manage = Manage::new(&server);
    manage.org("acme").await;
    manage.repository("acme/public", true).await;
    manage.repository("acme/private", false).await;
    for repository in ["acme/public", "acme/private"] {
        skopeo_copy(&fixture(SMALL), &format!("docker://{host}/{repository}:1")).await;
    }
    let want = Layout::fixtures().image(SMALL);

    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("layout");
    run(&mut skopeo_cmd(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{host}/acme/public:1"),
        &format!("oci:{}:public", out.display()),
    ]))
    .await;
    let layout = Layout::open(&out);
    assert_eq!(layout.image("public").manifest_digest, want.manifest_digest);
    layout.assert_blobs_intact(&layout.image("public"));
    refused(&mut skopeo_cmd(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/acme/private:1"),
    ]))
    .await;

    // A podman that never logged in.
    let podman = Tool::new("podman");
    let anonymous = |args: &[&str]| {
        let mut cmd = podman.cmd(args);
        cmd.env("REGISTRY_AUTH_FILE", empty_auth_file());
        cmd
    };
    run(&mut anonymous(&[
        "pull",
        "--quiet",
        "--tls-verify=false",
        &format!("{host}/acme/public:1"),
    ]))
    .await;
    refused(&mut anonymous(&[
        "pull",
        "--tls-verify=false",
        &format!("{host}/acme/private:1"),
    ]))
    .await;

    assert_eq!(
        manifest_status(&server, "acme/public", "1", None).await,
        StatusCode::OK
    );
    let resp = plain_http()
        .get(format!("{}/v2/acme/private/manifests/1", server.url))
        .send()
        .await
        .expect("GET manifest");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        format!(
            "Bearer realm=\"{}/v2/auth\",service=\"{SERVICE}\",scope=\"repository:acme/private:pull\"",
            server.url
        )
        .as_str()
    );
    let body: Value = resp.json().await.expect("error document");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    let (status, answer) =
        ask_token(&server, None, &[("scope", "repository:acme/private:pull")]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer.get("scope"), None, "nothing granted: {answer}");
    let anonymous = format!("Bearer {}", answer["token"].as_str().expect("token"));
    assert_eq!(
        manifest_status(&server, "acme/private", "1", Some(&anonymous)).await,
        StatusCode::UNAUTHORIZED
    );
}

/// `POST /v2/auth` with `grant_type=refresh_token` (the OAuth2 variant containerd uses).
async fn redeem(server: &TestServer, refresh: &str, scope: &str) -> (StatusCode, Value) {
    let resp = plain_http()
        .post(format!("{}/v2/auth", server.url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("service", SERVICE),
            ("scope", scope),
            ("client_id", "containerd"),
        ])
        .send()
        .await
        .expect("POST /v2/auth");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The Docker token flow with `offline_token=true` gives a refresh token; redeemed with
/// `POST /v2/auth grant_type=refresh_token`, it yields a token that pulls and pushes what
/// the user may. It is bound to the password: once that changes, it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn offline_refresh_token_redeemed_by_oauth2_post_yields_a_working_token() {
    let server = TestServer::start(bulwark_bin());
    let manage = Manage::new(&server);
    private_repository(&manage, "acme/app").await;
    skopeo_copy(
        &fixture(SMALL),
        &format!("docker://{}/acme/app:1", server.host),
    )
    .await;
    let password = manage.user("alice").await;
    manage.grant("acme/app", "alice", "write").await;

    let (status, answer) = ask_token(
        &server,
        Some(("alice", &password)),
        &[
            ("scope", "repository:acme/app:pull"),
            ("offline_token", "true"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let refresh = answer["refresh_token"].as_str().expect("refresh token");

    let (status, redeemed) = redeem(&server, refresh, "repository:acme/app:pull,push").await;
    assert_eq!(status, StatusCode::OK, "{redeemed}");
    assert_eq!(redeemed["scope"], "repository:acme/app:pull,push");
    let bearer = format!(
        "Bearer {}",
        redeemed["access_token"].as_str().expect("access_token")
    );
    assert_eq!(
        manifest_status(&server, "acme/app", "1", Some(&bearer)).await,
        StatusCode::OK
    );
    let blob = b"pushed with a redeemed token".to_vec();
    let digest = sha256_hex(&blob);
    let pushed = plain_http()
        .post(format!(
            "{}/v2/acme/app/blobs/uploads/?digest={digest}",
            server.url
        ))
        .header("authorization", &bearer)
        .header("content-type", "application/octet-stream")
        .body(blob)
        .send()
        .await
        .expect("POST blob");
    assert_eq!(pushed.status(), StatusCode::CREATED);
    assert_eq!(
        head_blob(&http(), &server.url, "acme/app", &digest).await,
        200
    );

    manage
        .call_as(
            &basic_auth("alice", &password),
            Method::PUT,
            "/api/v1/user/",
            json!({ "password": "a-brand-new-password", "current_password": password }),
        )
        .await;
    let (status, answer) = redeem(&server, refresh, "repository:acme/app:pull").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["error"], "invalid_grant");
}
