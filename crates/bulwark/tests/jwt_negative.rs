//! Forged, tampered, misused, expired and foreign registry tokens sent to the real binary
//! over HTTP: each is refused with `401` and a challenge, and a push attempted with one
//! stores nothing. Every case starts from a real token that works (checked first), so a
//! refusal is the forgery's doing. (`bulwark-auth`'s own tests cover the same at the
//! library level.)

#[path = "common/access.rs"]
mod access;
#[path = "common/clients.rs"]
mod clients;

use std::time::Duration;

use access::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bulwark_meta::{IdentityStore, SqlMetaStore, SqlOptions};
use bulwark_testkit::{ADMIN_PASSWORD, TestServer};
use clients::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const APP: &str = "acme/app";
const OTHER: &str = "acme/other";
/// The smallest fixture image, pushed to both repositories as `1`.
const IMAGE: &str = "alpine318-apkdb";

/// A compact JWS as its three base64url segments, kept as received so that an unchanged
/// segment stays byte for byte what was signed.
#[derive(Clone)]
struct Jws {
    header: String,
    payload: String,
    signature: String,
}

impl Jws {
    fn parse(token: &str) -> Jws {
        let mut parts = token.split('.');
        let mut next = || parts.next().expect("three segments").to_owned();
        let jws = Jws {
            header: next(),
            payload: next(),
            signature: next(),
        };
        assert!(parts.next().is_none(), "three segments");
        jws
    }

    fn header_json(&self) -> Value {
        decode_json(&self.header)
    }

    fn payload_json(&self) -> Value {
        decode_json(&self.payload)
    }

    fn signature_bytes(&self) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(&self.signature).expect("base64url")
    }

    /// What the signature covers.
    fn signing_input(&self) -> String {
        format!("{}.{}", self.header, self.payload)
    }

    fn with_header(&self, header: &Value) -> Jws {
        Jws {
            header: encode_json(header),
            ..self.clone()
        }
    }

    fn with_payload(&self, payload: &Value) -> Jws {
        Jws {
            payload: encode_json(payload),
            ..self.clone()
        }
    }

    fn with_signature(&self, signature: &[u8]) -> Jws {
        Jws {
            signature: URL_SAFE_NO_PAD.encode(signature),
            ..self.clone()
        }
    }

    fn token(&self) -> String {
        format!("{}.{}.{}", self.header, self.payload, self.signature)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }
}

fn decode_json(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("JSON")
}

fn encode_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"))
}

/// A fresh P-256 key pair.
fn new_p256_key() -> EcdsaKeyPair {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("generate P-256 key");
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("key")
}

/// `jws` signed with ES256 by `key` (JWS's fixed-size r ‖ s).
fn sign_es256(jws: &Jws, key: &EcdsaKeyPair) -> Jws {
    let signature = key
        .sign(&SystemRandom::new(), jws.signing_input().as_bytes())
        .expect("sign");
    jws.with_signature(signature.as_ref())
}

/// `jws` with the header `{"alg":"HS256","typ":"JWT","kid":kid}`, MACed with `secret`.
fn sign_hs256(jws: &Jws, kid: &Value, secret: &[u8]) -> Jws {
    let jws = jws.with_header(&json!({ "alg": "HS256", "typ": "JWT", "kid": kid }));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, jws.signing_input().as_bytes());
    jws.with_signature(tag.as_ref())
}

/// A server with `acme/app` and `acme/other` (private), each holding the fixture image as
/// `1`, and `alice`, who may pull `acme/app` only; returns it with alice's password.
async fn server_with(env: &[(&str, &str)]) -> (TestServer, String) {
    let server = TestServer::start_with(bulwark_bin(), &[], env);
    let manage = Manage::new(&server);
    manage.org("acme").await;
    for repository in [APP, OTHER] {
        manage.repository(repository, false).await;
        skopeo_copy(
            &format!("oci:{}:{IMAGE}", Layout::fixtures().root.display()),
            &format!("docker://{}/{repository}:1", server.host),
        )
        .await;
    }
    let password = manage.user("alice").await;
    manage.grant(APP, "alice", "read").await;
    (server, password)
}

/// Alice's real token for pulling `acme/app`, checked to work.
async fn alice_pull_token(server: &TestServer, password: &str) -> Jws {
    let token = registry_token(
        server,
        Some(("alice", password)),
        &format!("repository:{APP}:pull"),
    )
    .await;
    let jws = Jws::parse(&token);
    assert_eq!(
        manifest_status(server, APP, "1", Some(&jws.bearer())).await,
        StatusCode::OK,
        "the real token works"
    );
    jws
}

/// `GET /v2/<repository>/manifests/1` with `authorization` must be refused as a registry
/// refuses a bad token: `401`, `UNAUTHORIZED`, and a challenge to get a good one.
async fn assert_refused(server: &TestServer, repository: &str, authorization: &str, what: &str) {
    let resp = plain_http()
        .get(format!("{}/v2/{repository}/manifests/1", server.url))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .header("authorization", authorization)
        .send()
        .await
        .expect("GET manifest");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{}/v2/auth\"", server.url)),
        "{what}: challenge {challenge:?}"
    );
    let body: Value = resp.json().await.expect("error document");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{what}: {body}");
}

/// The public key (an uncompressed SEC1 point) of the server's signing key `kid`: public by
/// nature, but the server publishes no key set, so it is derived from the key stored in the
/// server's database (opened alongside the running server, as a second node would).
async fn public_key(server: &TestServer, kid: &str) -> Vec<u8> {
    let db = server.data_dir().join("meta.db");
    let store = SqlMetaStore::open_sqlite(&db, &SqlOptions::default())
        .await
        .expect("open the server's database");
    let key = store
        .signing_keys()
        .await
        .expect("signing keys")
        .into_iter()
        .find(|key| key.kid == kid)
        .unwrap_or_else(|| panic!("no signing key {kid} in {}", db.display()));
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.private_der)
        .expect("PKCS#8");
    pair.public_key().as_ref().to_vec()
}

/// A tampered signature, a signature by another P-256 key (under the server's `kid` and
/// under its own), `alg: none` (without and with the real signature), and HS256 keyed
/// with the server's public key in every encoding a confused verifier might use, or with
/// an arbitrary secret: all refused.
#[tokio::test(flavor = "multi_thread")]
async fn forged_signatures_and_algorithms_are_refused() {
    let (server, password) = server_with(&[]).await;
    let real = alice_pull_token(&server, &password).await;
    let header = real.header_json();
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].clone();

    let mut tampered = real.signature_bytes();
    tampered[20] ^= 0x01;
    assert_refused(
        &server,
        APP,
        &real.with_signature(&tampered).bearer(),
        "tampered signature",
    )
    .await;
    let mut truncated = real.signature_bytes();
    truncated.truncate(32);
    assert_refused(
        &server,
        APP,
        &real.with_signature(&truncated).bearer(),
        "half a signature",
    )
    .await;

    let attacker = new_p256_key();
    assert_refused(
        &server,
        APP,
        &sign_es256(&real, &attacker).bearer(),
        "another key under the server's kid",
    )
    .await;
    let mut own_kid = header.clone();
    own_kid["kid"] = json!("attacker-key");
    assert_refused(
        &server,
        APP,
        &sign_es256(&real.with_header(&own_kid), &attacker).bearer(),
        "another key under its own kid",
    )
    .await;

    let none = real.with_header(&json!({ "alg": "none", "typ": "JWT", "kid": kid }));
    assert_refused(
        &server,
        APP,
        &none.with_signature(b"").bearer(),
        "alg none, no signature",
    )
    .await;
    assert_refused(
        &server,
        APP,
        &none.bearer(),
        "alg none with the real signature",
    )
    .await;

    // The public key, checked to be the one that signed the real token.
    let point = public_key(&server, kid.as_str().expect("kid")).await;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(real.signing_input().as_bytes(), &real.signature_bytes())
        .expect("the real token verifies with the key read from the database");
    // SubjectPublicKeyInfo of a P-256 key: the algorithm identifiers, then the point.
    const SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let spki = [SPKI_PREFIX.as_slice(), &point].concat();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    );
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        "kid": kid,
    })
    .to_string();
    for (what, secret) in [
        ("the SEC1 point", point.clone()),
        ("the SubjectPublicKeyInfo DER", spki),
        ("the PEM text", pem.into_bytes()),
        ("the JWK text", jwk.into_bytes()),
        ("an arbitrary secret", b"secret".to_vec()),
    ] {
        assert_refused(
            &server,
            APP,
            &sign_hs256(&real, &kid, &secret).bearer(),
            &format!("HS256 keyed with {what}"),
        )
        .await;
    }
}

/// Alice's pull token for `acme/app` edited to grant `push` there, or `pull` of
/// `acme/other`, or to be the superuser's, its signature kept: refused, and the pushes
/// tried with it store nothing.
#[tokio::test(flavor = "multi_thread")]
async fn edited_scopes_are_refused_and_store_nothing() {
    let (server, password) = server_with(&[]).await;
    let real = alice_pull_token(&server, &password).await;
    let payload = real.payload_json();
    assert_eq!(
        payload["access"],
        json!([{ "type": "repository", "name": APP, "actions": ["pull"] }])
    );

    let mut push = payload.clone();
    push["access"][0]["actions"] = json!(["pull", "push"]);
    let push = real.with_payload(&push).bearer();
    assert_refused(&server, APP, &push, "pull edited into pull,push").await;
    let blob = b"a blob pushed with an edited token".to_vec();
    let digest = sha256_hex(&blob);
    let resp = plain_http()
        .post(format!(
            "{}/v2/{APP}/blobs/uploads/?digest={digest}",
            server.url
        ))
        .header("authorization", &push)
        .header("content-type", "application/octet-stream")
        .body(blob)
        .send()
        .await
        .expect("POST blob");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "blob push");
    let manifest = Layout::fixtures().image(IMAGE).manifest;
    let resp = plain_http()
        .put(format!("{}/v2/{APP}/manifests/edited", server.url))
        .header("authorization", &push)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .await
        .expect("PUT manifest");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "manifest push");
    let admin = http();
    assert_eq!(head_blob(&admin, &server.url, APP, &digest).await, 404);
    assert!(
        get_manifest(&admin, &server.url, APP, "edited")
            .await
            .is_none()
    );
    assert_eq!(
        catalog_with_tags(&admin, &server.url).await[APP],
        ["1"],
        "acme/app keeps its one tag"
    );

    let mut other = payload.clone();
    other["access"][0]["name"] = json!(OTHER);
    assert_refused(
        &server,
        OTHER,
        &real.with_payload(&other).bearer(),
        "acme/app edited into acme/other",
    )
    .await;
    let mut both = payload.clone();
    both["access"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "repository", "name": OTHER, "actions": ["pull"] }));
    assert_refused(
        &server,
        OTHER,
        &real.with_payload(&both).bearer(),
        "acme/other added",
    )
    .await;

    let mut superuser = payload.clone();
    superuser["sub"] = json!("admin");
    superuser["bulwark"]["principal"]["superuser"] = json!(true);
    assert_refused(
        &server,
        APP,
        &real.with_payload(&superuser).bearer(),
        "alice edited into the superuser",
    )
    .await;
}

/// A refresh token (`offline_token=true`) is redeemed at the token endpoint only: as an
/// access token on `/v2` it is refused, and an access token is no refresh token.
#[tokio::test(flavor = "multi_thread")]
async fn refresh_and_access_tokens_are_not_interchangeable() {
    let (server, password) = server_with(&[]).await;
    let (status, answer) = ask_token(
        &server,
        Some(("alice", &password)),
        &[
            ("scope", &format!("repository:{APP}:pull")),
            ("offline_token", "true"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let access = answer["token"].as_str().expect("token");
    let refresh = answer["refresh_token"].as_str().expect("refresh_token");
    assert_eq!(
        manifest_status(&server, APP, "1", Some(&format!("Bearer {access}"))).await,
        StatusCode::OK
    );
    assert_refused(
        &server,
        APP,
        &format!("Bearer {refresh}"),
        "a refresh token on /v2",
    )
    .await;

    for (what, grant, status) in [
        ("the refresh token", refresh, StatusCode::OK),
        ("an access token", access, StatusCode::UNAUTHORIZED),
    ] {
        let resp = plain_http()
            .post(format!("{}/v2/auth", server.url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", grant),
                ("scope", &format!("repository:{APP}:pull")),
            ])
            .send()
            .await
            .expect("POST /v2/auth");
        assert_eq!(resp.status(), status, "{what} redeemed");
    }
}

/// With `auth.token_ttl_secs = 1`, a token works at once and is refused once its `exp`
/// and the tolerated clock skew have passed; moving its `exp` forward breaks its
/// signature.
#[tokio::test(flavor = "multi_thread")]
async fn expired_tokens_are_refused() {
    let (server, password) = server_with(&[("BULWARK_AUTH__TOKEN_TTL_SECS", "1")]).await;
    let real = alice_pull_token(&server, &password).await;
    let payload = real.payload_json();
    let exp = payload["exp"].as_i64().expect("exp");
    assert_eq!(exp - payload["iat"].as_i64().expect("iat"), 1);

    let skew = i64::try_from(bulwark_auth::jwt::LEEWAY_SECS).expect("seconds");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
    };
    let wait = (exp + skew + 1) as f64 - now();
    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    assert_refused(&server, APP, &real.bearer(), "expired").await;

    let mut extended = payload.clone();
    extended["exp"] = json!(exp + 3600);
    assert_refused(
        &server,
        APP,
        &real.with_payload(&extended).bearer(),
        "exp moved forward",
    )
    .await;
}

/// A token another registry service issued is refused, even signed with the same key: a
/// second server over the first one's database (so the same signing keys) with
/// `auth.service = "elsewhere"` issues a token whose `kid` this server knows and whose
/// signature is good, for a scope the caller may have, but its audience is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_for_another_service_is_refused() {
    let (server, password) = server_with(&[]).await;
    let own = alice_pull_token(&server, &password).await;
    let database = format!("sqlite://{}", server.data_dir().join("meta.db").display());
    let elsewhere = TestServer::start_with(
        bulwark_bin(),
        &[],
        &[
            ("BULWARK_DATABASE__URL", &database),
            ("BULWARK_AUTH__SERVICE", "elsewhere"),
        ],
    );
    let foreign = Jws::parse(
        &registry_token(
            &elsewhere,
            Some(("admin", ADMIN_PASSWORD)),
            &format!("repository:{APP}:pull"),
        )
        .await,
    );
    assert_eq!(
        foreign.header_json()["kid"],
        own.header_json()["kid"],
        "both servers sign with the same key"
    );
    assert_eq!(foreign.payload_json()["aud"], "elsewhere");
    assert_eq!(
        foreign.payload_json()["access"][0]["actions"],
        json!(["pull"])
    );
    let status = plain_http()
        .get(format!("{}/v2/", elsewhere.url))
        .header("authorization", foreign.bearer())
        .send()
        .await
        .expect("GET /v2/")
        .status();
    assert_eq!(
        status,
        StatusCode::OK,
        "the token is good where it was issued"
    );

    assert_refused(&server, APP, &foreign.bearer(), "another service's token").await;
}
