//! Shared helpers of the OCI Distribution Specification conformance tests: one real server per
//! test, request shorthands, blob and manifest pushes, and the spec's error-body check.
#![allow(dead_code, unused_imports)] // each test file uses a subset

use std::time::Duration;

pub use bulwark_oci::media_types::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
pub use bulwark_oci::{Algorithm, Digest, DigestHasher};
pub use reqwest::{Method, Response, StatusCode};
pub use serde_json::{Value, json};

use bulwark_testkit::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod clients;

pub const REPO: &str = "conformance/test";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Every error code the spec allows (distribution-spec v1.1, "Error Codes").
pub const SPEC_ERROR_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

/// A running registry and a client for it that authenticates as the superuser.
pub struct Registry {
    server: TestServer,
    pub http: reqwest::Client,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with_env(&[])
    }

    /// Starts the server with `BULWARK_…` configuration overrides.
    pub fn start_with_env(env: &[(&str, &str)]) -> Registry {
        let server = TestServer::start_with(env!("CARGO_BIN_EXE_bulwark"), &[], env);
        let http = clients::http_builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        Registry { server, http }
    }

    /// `path` (from `/v2…`) or a `Location` value, relative or absolute, as a URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.server.url)
        }
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub async fn send(&self, method: Method, path: &str) -> Response {
        self.req(method, path).send().await.expect("request")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path).await
    }

    pub async fn head(&self, path: &str) -> Response {
        self.send(Method::HEAD, path).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path).await
    }

    /// Pushes `data` monolithically (`POST ?digest=`) and returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let digest = Digest::sha256_of(data);
        let resp = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::CREATED, "blob push to {repo}");
        digest
    }

    /// Opens an upload session (`POST`) and returns its `Location`.
    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .header("content-length", "0")
            .send()
            .await
            .expect("request");
        assert_eq!(
            resp.status(),
            StatusCode::ACCEPTED,
            "upload start in {repo}"
        );
        header(&resp, "location").to_owned()
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with `body` as `media_type`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("request")
    }

    /// Pushes a manifest, expecting success; returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Digest {
        let resp = self.put_manifest(repo, reference, media_type, body).await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "manifest push to {repo}:{reference}"
        );
        Digest::sha256_of(body)
    }

    /// Pushes a config and a layer made from `seed`, then an OCI image manifest over them
    /// under `reference`.
    pub async fn push_image(&self, repo: &str, reference: &str, seed: u8) -> Image {
        let config = format!("{{\"seed\":{seed}}}").into_bytes();
        let layer = bytes(seed, 300);
        self.push_blob(repo, &config).await;
        self.push_blob(repo, &layer).await;
        let manifest = image_manifest(
            descriptor(OCI_CONFIG, &config),
            &[descriptor(OCI_LAYER, &layer)],
            json!({}),
        );
        let digest = self
            .push_manifest(repo, reference, OCI_MANIFEST, &manifest)
            .await;
        Image {
            manifest,
            digest,
            config,
            layer,
        }
    }

    /// Sends `request` verbatim on a new connection, closes the sending side, and returns the
    /// status and body of the answer: for requests a normal client refuses to make. Nothing
    /// is added, credentials included.
    pub async fn raw(&self, request: &[u8]) -> (u16, Value) {
        let mut conn = tokio::net::TcpStream::connect(&self.server.host)
            .await
            .expect("connect");
        conn.write_all(request).await.expect("write");
        conn.shutdown().await.expect("shutdown");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut answer))
            .await
            .expect("answer in time")
            .expect("read");
        let text = String::from_utf8_lossy(&answer);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    pub fn host(&self) -> &str {
        &self.server.host
    }
}

/// An image pushed by [`Registry::push_image`].
pub struct Image {
    pub manifest: Vec<u8>,
    pub digest: Digest,
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
}

/// `len` deterministic bytes that differ by `seed`.
pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32 * 101) as u8 ^ seed)
        .collect()
}

pub fn sha512_of(data: &[u8]) -> Digest {
    let mut h = DigestHasher::new(Algorithm::Sha512);
    h.update(data);
    h.finish()
}

/// A descriptor of `data` as `media_type`.
pub fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": Digest::sha256_of(data).to_string(),
        "size": data.len(),
    })
}

/// An OCI image manifest; the fields of `extra` (an object) are added at the top level.
pub fn image_manifest(config: Value, layers: &[Value], extra: Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config,
        "layers": layers,
    });
    merge(&mut m, extra);
    serde_json::to_vec(&m).expect("json")
}

/// An OCI image index over `manifests`; `extra` as for [`image_manifest`].
pub fn index_manifest(manifests: &[Value], extra: Value) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    merge(&mut m, extra);
    serde_json::to_vec(&m).expect("json")
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(t), Value::Object(e)) = (target.as_object_mut(), extra) {
        t.extend(e);
    }
}

/// A response header as text; panics when absent.
pub fn header<'a>(resp: &'a Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} {} has no {name} header", resp.status(), resp.url()))
        .to_str()
        .expect("ascii header")
}

pub fn has_header(resp: &Response, name: &str) -> bool {
    resp.headers().contains_key(name)
}

pub async fn body(resp: Response) -> Vec<u8> {
    resp.bytes().await.expect("body").to_vec()
}

pub async fn json_body(resp: Response) -> Value {
    serde_json::from_slice(&body(resp).await).expect("JSON body")
}

/// Asserts the status and that the body is the spec's error document whose first code is
/// `code`, with every code from the spec's list and a string message.
pub async fn assert_error(resp: Response, status: StatusCode, code: &str) {
    let got = resp.status();
    let url = resp.url().to_string();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let text = String::from_utf8_lossy(&body(resp).await).into_owned();
    assert_eq!(got, status, "{url}: {text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{url}");
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"));
    let errors = doc["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{url}: {text}"));
    assert!(!errors.is_empty(), "{url}: {text}");
    for e in errors {
        let c = e["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{url}: {text}"));
        assert!(
            SPEC_ERROR_CODES.contains(&c),
            "{url}: {c} is not a spec error code"
        );
        assert!(e["message"].is_string(), "{url}: message missing: {text}");
    }
    assert_eq!(errors[0]["code"], code, "{url}: {text}");
}
