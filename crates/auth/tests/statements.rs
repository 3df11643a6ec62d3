//! Signed statements (action-log checkpoints) by the registry's key ring: they verify by any
//! known key, retired ones too, and can never pass for a registry token or the reverse.

use std::sync::Arc;

use bulwark_auth::AuthError;
use bulwark_auth::jwt::{
    Claims, CredentialClaim, KeyRing, PrincipalClaim, PrivateClaims, TokenUse, unix_now,
};
use bulwark_meta::{SqlMetaStore, SqlOptions};
use serde::{Deserialize, Serialize};

const TYP: &str = "test-statement";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Statement {
    seq: i64,
    hash: String,
}

async fn ring() -> (tempfile::TempDir, KeyRing) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetaStore::open_sqlite(&dir.path().join("meta.db"), &SqlOptions::default())
        .await
        .unwrap();
    let ring = KeyRing::load(Arc::new(store)).await.unwrap();
    (dir, ring)
}

fn statement() -> Statement {
    Statement {
        seq: 42,
        hash: "ab".repeat(32),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_verify_after_rotation_and_refuse_tampering() {
    let (_dir, ring) = ring().await;
    let jws = ring.sign_statement(TYP, &statement()).unwrap();
    assert_eq!(
        ring.verify_statement::<Statement>(TYP, &jws).unwrap(),
        statement()
    );
    ring.rotate().await.unwrap();
    assert_eq!(
        ring.verify_statement::<Statement>(TYP, &jws).unwrap(),
        statement()
    );

    let refused = |jws: &str, typ: &str| {
        matches!(
            ring.verify_statement::<Statement>(typ, jws),
            Err(AuthError::InvalidToken(_))
        )
    };
    assert!(refused(&jws, "another-type"));
    // Another payload under the same signature.
    let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
    let other = ring
        .sign_statement(
            TYP,
            &Statement {
                seq: 43,
                ..statement()
            },
        )
        .unwrap();
    parts[1] = other.split('.').nth(1).unwrap().to_owned();
    assert!(refused(&parts.join("."), TYP));
    assert!(refused("not.a.jws", TYP));
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_and_tokens_are_never_confused() {
    let (_dir, ring) = ring().await;
    let now = unix_now();
    let claims = Claims {
        iss: "bulwark".into(),
        sub: "alice".into(),
        aud: "bulwark".into(),
        exp: now + 300,
        nbf: now,
        iat: now,
        jti: "j".into(),
        access: Vec::new(),
        bulwark: PrivateClaims {
            token_use: TokenUse::Access,
            principal: PrincipalClaim {
                kind: "user".into(),
                id: Some(1),
                superuser: false,
                owner: None,
            },
            credential: CredentialClaim {
                kind: "password".into(),
                id: None,
                generation: None,
            },
        },
    };
    let token = ring.sign(&claims).unwrap();
    assert!(ring.verify_statement::<Claims>(TYP, &token).is_err());
    let jws = ring.sign_statement(TYP, &claims).unwrap();
    assert!(
        ring.verify(&jws, TokenUse::Access, "bulwark", "bulwark")
            .is_err()
    );
    assert!(
        ring.verify(&token, TokenUse::Access, "bulwark", "bulwark")
            .is_ok()
    );
}
