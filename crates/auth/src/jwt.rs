//! Registry tokens: ES256 JWTs signed by a ring of keys kept in the metadata store, so that
//! every node signs with the same key and verifies every node's tokens.
//!
//! - Keys are P-256 key pairs (PKCS#8) generated with aws-lc-rs; `kid` is the RFC 7638
//!   JWK thumbprint of the public key.
//! - The newest non-retired key signs. Several nodes starting at once may each add a key;
//!   each reloads after adding and signs with the newest, so they converge, and the keys
//!   that lost keep verifying.
//! - Any known key verifies, by `kid`. An unknown `kid` reloads the keys from the store (at
//!   most once per [`RELOAD_INTERVAL`]): another node may have rotated.
//! - Validation pins the algorithm to ES256 (so `none`, HS256 keyed with the public key,
//!   RS256… are refused before any signature check), requires `kid`, `iss`, `aud`, `sub`,
//!   `exp`, `nbf` and `iat`, and checks which use (access or refresh) a token was made for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bulwark_meta::{IdentityStore, SigningKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::scope::Scope;
use crate::{AuthError, Principal};

/// The one algorithm tokens are signed and verified with.
pub const ALGORITHM: &str = "ES256";
/// Clock skew tolerated between nodes (and clients) for `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 10;
/// Least time between two reloads caused by unknown key ids.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// What a token was issued for; the two are never interchangeable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    /// A registry bearer token for `/v2`.
    Access,
    /// A refresh token (`offline_token`), redeemed at the token endpoint only.
    Refresh,
}

/// The claims of Bulwark's tokens: the registered ones, the Docker token spec's `access`,
/// and a private `bulwark` claim that lets `/v2` rebuild the caller without the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The account name; empty for anonymous callers.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    /// Granted scopes (empty in refresh tokens).
    #[serde(default)]
    pub access: Vec<Scope>,
    pub bulwark: PrivateClaims,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateClaims {
    #[serde(rename = "use")]
    pub token_use: TokenUse,
    pub principal: PrincipalClaim,
    pub credential: CredentialClaim,
}

/// The principal, less its name (that is `sub`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalClaim {
    /// `anonymous`, `user` or `robot`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superuser: bool,
    /// Robots: the owning namespace's account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<i64>,
}

impl PrincipalClaim {
    pub fn of(principal: &Principal) -> PrincipalClaim {
        match *principal {
            Principal::Anonymous => PrincipalClaim {
                kind: "anonymous".into(),
                id: None,
                superuser: false,
                owner: None,
            },
            Principal::User { id, superuser, .. } => PrincipalClaim {
                kind: "user".into(),
                id: Some(id),
                superuser,
                owner: None,
            },
            Principal::Robot { id, owner_id, .. } => PrincipalClaim {
                kind: "robot".into(),
                id: Some(id),
                superuser: false,
                owner: Some(owner_id),
            },
        }
    }

    /// The principal named `name` (the token's `sub`).
    pub fn principal(&self, name: &str) -> Result<Principal, AuthError> {
        let malformed = || AuthError::InvalidToken("malformed principal claim".into());
        match (self.kind.as_str(), self.id, self.owner) {
            ("anonymous", None, None) if name.is_empty() && !self.superuser => {
                Ok(Principal::Anonymous)
            }
            ("user", Some(id), None) if !name.is_empty() => Ok(Principal::User {
                id,
                name: name.to_owned(),
                superuser: self.superuser,
            }),
            ("robot", Some(id), Some(owner_id)) if !name.is_empty() && !self.superuser => {
                Ok(Principal::Robot {
                    id,
                    name: name.to_owned(),
                    owner_id,
                })
            }
            _ => Err(malformed()),
        }
    }
}

/// The credential a token was issued on. In refresh tokens, also what binds it to that
/// credential: the app or API token's id, or the password's or robot token's generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialClaim {
    /// As `Actor::credential`: `password`, `app_token`, `robot_token`, `api_token`,
    /// `registry_token`, or empty.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Public point coordinates, base64url (for the JWK set).
    x: String,
    y: String,
}

#[derive(Default)]
struct Keys {
    /// Newest first.
    all: Vec<Arc<Key>>,
    by_kid: HashMap<String, Arc<Key>>,
    signing: Option<Arc<Key>>,
}

struct Inner {
    store: Arc<dyn IdentityStore>,
    keys: RwLock<Arc<Keys>>,
    /// When an unknown `kid` last caused a reload.
    last_unknown_reload: Mutex<Option<Instant>>,
}

/// The signing keys, shared by every node through the metadata store.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

impl KeyRing {
    /// Loads the keys, generating and storing the first one if there is no usable key.
    pub async fn load(store: Arc<dyn IdentityStore>) -> Result<KeyRing, AuthError> {
        let ring = KeyRing {
            inner: Arc::new(Inner {
                store,
                keys: RwLock::new(Arc::new(Keys::default())),
                last_unknown_reload: Mutex::new(None),
            }),
        };
        ring.reload().await?;
        if ring.keys().signing.is_none() {
            ring.add_new_key().await?;
        }
        Ok(ring)
    }

    /// Reads the keys from the store again.
    pub async fn reload(&self) -> Result<(), AuthError> {
        let stored = self.inner.store.signing_keys().await?;
        let mut keys = Keys::default();
        let mut newest_live: Option<(i64, &str)> = None;
        for record in &stored {
            let key = match load_key(record) {
                Ok(key) => Arc::new(key),
                Err(e) => {
                    tracing::warn!(kid = %record.kid, error = %e, "ignoring an unusable signing key");
                    continue;
                }
            };
            // Newest by creation time, ties broken by kid: every node picks the same key.
            if record.retired_at.is_none()
                && newest_live.is_none_or(|best| (record.created_at, record.kid.as_str()) > best)
            {
                newest_live = Some((record.created_at, record.kid.as_str()));
                keys.signing = Some(key.clone());
            }
            keys.by_kid.insert(key.kid.clone(), key.clone());
            keys.all.push(key);
        }
        *self.inner.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// Adds a new key and retires the others; tokens they signed keep verifying. Returns
    /// the new key's id.
    pub async fn rotate(&self) -> Result<String, AuthError> {
        let previous: Vec<String> = self
            .inner
            .store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| k.kid)
            .collect();
        let kid = self.add_new_key().await?;
        let now = unix_now();
        for old in previous.iter().filter(|old| **old != kid) {
            self.inner.store.retire_signing_key(old, now).await?;
        }
        self.reload().await?;
        Ok(kid)
    }

    /// Generates a key, stores it, and reloads (converging on the newest key if other
    /// nodes added one meanwhile).
    async fn add_new_key(&self) -> Result<String, AuthError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| AuthError::Crypto("generating a P-256 key failed".into()))?;
        let der = pkcs8.as_ref().to_vec();
        let (x, y) = coordinates(&public_point(&der)?);
        let record = SigningKey {
            kid: thumbprint(&x, &y),
            algorithm: ALGORITHM.into(),
            private_der: der,
            created_at: unix_now(),
            retired_at: None,
        };
        self.inner.store.add_signing_key(&record).await?;
        self.reload().await?;
        if self.keys().signing.is_none() {
            return Err(AuthError::Crypto(
                "no usable signing key after adding one".into(),
            ));
        }
        Ok(record.kid)
    }

    fn keys(&self) -> Arc<Keys> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Signs `claims` with the newest non-retired key.
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let keys = self.keys();
        let key = keys
            .signing
            .as_ref()
            .ok_or_else(|| AuthError::Crypto("no signing key".into()))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| AuthError::Crypto(format!("signing a token: {e}")))
    }

    /// Verifies a token's signature and claims for `expected` use, issued by `issuer` for
    /// `audience`.
    pub fn verify(
        &self,
        token: &str,
        expected: TokenUse,
        issuer: &str,
        audience: &str,
    ) -> Result<Claims, AuthError> {
        let invalid = |why: &str| AuthError::InvalidToken(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        if header.alg != Algorithm::ES256 {
            return Err(invalid("the algorithm must be ES256"));
        }
        // Signed statements (`sign_statement`) name their own type.
        if header.typ.as_deref().is_some_and(|t| t != "JWT") {
            return Err(invalid("not a token"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
        let key = self
            .known_key(&kid)
            .ok_or_else(|| invalid("unknown signing key"))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("expired"),
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => invalid("not yet valid"),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => invalid("wrong audience"),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => invalid("wrong issuer"),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid("bad signature"),
                _ => invalid("malformed or badly signed token"),
            },
        )?;
        if data.claims.bulwark.token_use != expected {
            return Err(invalid(match expected {
                TokenUse::Access => "a refresh token is not an access token",
                TokenUse::Refresh => "not a refresh token",
            }));
        }
        Ok(data.claims)
    }

    /// The key `kid`, reloading the ring once if it is unknown (another node may have
    /// rotated).
    fn known_key(&self, kid: &str) -> Option<Arc<Key>> {
        if let Some(key) = self.keys().by_kid.get(kid) {
            return Some(key.clone());
        }
        self.reload_for_unknown_kid();
        self.keys().by_kid.get(kid).cloned()
    }

    /// Signs a statement that is not a token (an action-log checkpoint) as a compact JWS
    /// whose `typ` header names its kind, so that neither can pass for the other (tokens
    /// carry `typ: JWT`).
    pub fn sign_statement<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, AuthError> {
        let keys = self.keys();
        let key = keys
            .signing
            .as_ref()
            .ok_or_else(|| AuthError::Crypto("no signing key".into()))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| AuthError::Crypto(format!("signing a statement: {e}")))
    }

    /// Verifies a statement made by [`KeyRing::sign_statement`] with `typ`, by any known key
    /// (retired keys too: old statements stay verifiable). Statements do not expire.
    pub fn verify_statement<T: DeserializeOwned>(
        &self,
        typ: &str,
        jws: &str,
    ) -> Result<T, AuthError> {
        let invalid = |why: &str| AuthError::InvalidToken(why.to_owned());
        let header =
            jsonwebtoken::decode_header(jws).map_err(|_| invalid("malformed statement"))?;
        if header.alg != Algorithm::ES256 {
            return Err(invalid("the algorithm must be ES256"));
        }
        if header.typ.as_deref() != Some(typ) {
            return Err(invalid("not a statement of this type"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
        let key = self
            .known_key(&kid)
            .ok_or_else(|| invalid("unknown signing key"))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims::<&str>(&[]);
        jsonwebtoken::decode::<T>(jws, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|_| invalid("bad signature or malformed statement"))
    }

    /// Reloads the keys now, at most once per [`RELOAD_INTERVAL`]. Verification is
    /// synchronous (it never waits for the database but here), so on a multi-threaded
    /// runtime the reload runs in place; elsewhere it runs in the background and this token
    /// is refused (a retry finds the key).
    fn reload_for_unknown_kid(&self) {
        {
            let mut last = self
                .inner
                .last_unknown_reload
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < RELOAD_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let ring = self.clone();
        let reload = async move {
            if let Err(e) = ring.reload().await {
                tracing::warn!(error = %e, "reloading signing keys failed");
            }
        };
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| handle.block_on(reload));
        } else {
            handle.spawn(reload);
        }
    }

    /// The public keys (retired ones too: they still verify) as a JWK set.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys()
            .all
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": k.x,
                    "y": k.y,
                    "kid": k.kid,
                    "use": "sig",
                    "alg": ALGORITHM,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn load_key(record: &SigningKey) -> Result<Key, AuthError> {
    if record.algorithm != ALGORITHM {
        return Err(AuthError::Crypto(format!(
            "unsupported algorithm {:?}",
            record.algorithm
        )));
    }
    let point = public_point(&record.private_der)?;
    let (x, y) = coordinates(&point);
    let kid = thumbprint(&x, &y);
    // The kid names the key: a row whose kid is not its key's thumbprint is corrupt.
    if kid != record.kid {
        return Err(AuthError::Crypto("key id does not match the key".into()));
    }
    Ok(Key {
        kid,
        encoding: EncodingKey::from_ec_der(&record.private_der),
        decoding: DecodingKey::from_ec_der(&point),
        x,
        y,
    })
}

/// The public key of a PKCS#8 P-256 private key as an uncompressed SEC1 point:
/// 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
fn public_point(pkcs8: &[u8]) -> Result<Vec<u8>, AuthError> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
        .map_err(|e| AuthError::Crypto(format!("not a P-256 PKCS#8 key: {e}")))?;
    let point = pair.public_key().as_ref();
    if point.len() != 65 || point[0] != 4 {
        return Err(AuthError::Crypto("unexpected public key encoding".into()));
    }
    Ok(point.to_vec())
}

/// The base64url x and y coordinates of an uncompressed point.
fn coordinates(point: &[u8]) -> (String, String) {
    (
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    )
}

/// RFC 7638 JWK thumbprint: SHA-256 of the required members in lexical order, no spaces.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
