//! `bulwark keys rotate` on the data directory of a running server: after a restart, tokens
//! signed with the retired key still verify and new tokens carry the new key's id; the
//! rotation, made by a local command, is in the action log like the server's own events.

#[path = "common/access.rs"]
mod access;

use std::process::Command;

use base64::Engine;
use bulwark_testkit::{ADMIN_PASSWORD, TestServer};
use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

/// The `kid` in a JWT's header.
fn kid(token: &str) -> String {
    let header = token.split('.').next().expect("JWT header");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url header");
    let header: serde_json::Value = serde_json::from_slice(&header).expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}

async fn ping(server: &TestServer, token: &str) -> StatusCode {
    access::plain_http()
        .get(format!("{}/v2/", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /v2/")
        .status()
}

#[tokio::test]
async fn a_rotated_key_signs_new_tokens_and_the_retired_one_still_verifies() {
    let mut server = TestServer::start(BIN);
    let admin = Some(("admin", ADMIN_PASSWORD));
    let before = access::registry_token(&server, admin, "registry:catalog:*").await;
    assert_eq!(ping(&server, &before).await, StatusCode::OK);

    let out = Command::new(BIN)
        .args(["keys", "rotate", "--data-dir"])
        .arg(server.data_dir())
        .env("BULWARK_LOG__LEVEL", "warn")
        .output()
        .expect("run bulwark keys rotate");
    assert!(
        out.status.success(),
        "keys rotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = Command::new(BIN)
        .args(["logs", "list", "--data-dir"])
        .arg(server.data_dir())
        .env("BULWARK_LOG__LEVEL", "warn")
        .output()
        .expect("run bulwark logs list");
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("signing_key.rotate"),
        "the rotation is in the action log: {}",
        String::from_utf8_lossy(&log.stdout)
    );

    server.restart();
    let after = access::registry_token(&server, admin, "registry:catalog:*").await;
    assert_ne!(
        kid(&after),
        kid(&before),
        "new tokens are signed with the new key"
    );
    assert!(
        stdout.contains(&kid(&after)),
        "the command names the new key: {stdout}"
    );
    assert_eq!(ping(&server, &after).await, StatusCode::OK);
    assert_eq!(
        ping(&server, &before).await,
        StatusCode::OK,
        "a token signed with the retired key verifies until it expires"
    );
}
