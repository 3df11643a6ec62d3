//! The `docker://HOST[:PORT]/REPO(:TAG|@DIGEST)` transport of `bulwark scan`: the image's
//! manifest and layers fetched from a registry over the distribution API. Each layer
//! streams into an anonymous temporary file while its digest and size are checked, and
//! is indexed from there only once they match; nothing holds a layer in memory.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bulwark_oci::{
    Descriptor, Digest, DigestHasher, ManifestKind, ParsedManifest, Reference, RepoName,
    media_types,
};
use bulwark_scanner::image::{
    MAX_INDEX_DEPTH, MAX_JSON_BYTES, choose_platform, require_image_config,
};
use bulwark_scanner::{Inventory, LayerIndex, Limit, Limits, Platform, ScanError};
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode, Url};

/// Longest repository name accepted (the distribution spec's limit with a host).
const MAX_NAME_BYTES: usize = 255;

/// An image in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerReference {
    /// `HOST[:PORT]`
    pub host: String,
    pub repository: RepoName,
    /// A tag (`latest` when none is given) or a manifest digest.
    pub reference: Reference,
}

impl FromStr for DockerReference {
    type Err = anyhow::Error;

    /// Reads what follows `docker://`.
    fn from_str(s: &str) -> Result<DockerReference> {
        let usage = || anyhow!("docker://{s}: expected docker://HOST[:PORT]/REPO[:TAG|@DIGEST]");
        let (host, path) = s.split_once('/').ok_or_else(usage)?;
        if host.is_empty() || host.contains(['@', '?', '#']) {
            return Err(usage());
        }
        let (repository, reference) = match path.split_once('@') {
            Some((repository, digest)) => (repository, digest),
            None => match path.rsplit_once(':') {
                Some((repository, tag)) if !tag.contains('/') => (repository, tag),
                _ => (path, "latest"),
            },
        };
        Ok(DockerReference {
            host: host.to_string(),
            repository: RepoName::parse(repository, MAX_NAME_BYTES)
                .with_context(|| format!("docker://{s}"))?,
            reference: Reference::parse(reference).with_context(|| format!("docker://{s}"))?,
        })
    }
}

/// How to reach the registry and which image of an index to take.
pub struct Options {
    pub platform: Platform,
    /// `USER:PASS`, sent to the registry (Basic) or to its token service.
    pub creds: Option<(String, String)>,
    /// When off, certificates are not verified and plain HTTP is tried when TLS fails
    /// (as skopeo's `--tls-verify=false`).
    pub tls_verify: bool,
}

/// Indexes the image: the manifest (of `options.platform` from an index), then each
/// layer, downloaded, verified and indexed in turn.
pub fn index(image: &DockerReference, options: &Options, limits: &Limits) -> Result<Inventory> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    let mut registry = runtime.block_on(Registry::connect(image, options))?;
    let layers = runtime.block_on(registry.image_layers(&options.platform))?;
    if layers.len() as u64 > limits.max_layers {
        return Err(ScanError::TooLarge {
            limit: Limit::Layers,
            max: limits.max_layers,
            context: "image".into(),
        }
        .into());
    }
    let mut indexes: Vec<LayerIndex> = Vec::with_capacity(layers.len());
    for layer in &layers {
        let file = runtime.block_on(registry.download(layer, limits))?;
        let digest = layer.digest.to_string();
        indexes.push(bulwark_scanner::index_layer(
            &digest,
            BufReader::new(file),
            limits,
        )?);
    }
    Ok(bulwark_scanner::inventory_from_layers(&indexes, limits)?)
}

enum Authorization {
    Basic(String, String),
    Bearer(String),
}

struct Registry<'a> {
    http: reqwest::Client,
    /// `https://HOST/v2/REPO/` (or `http://` when TLS is off and the registry has none).
    base: Url,
    image: &'a DockerReference,
    options: &'a Options,
    authorization: Option<Authorization>,
}

impl<'a> Registry<'a> {
    /// Finds the registry's scheme with `GET /v2/`.
    async fn connect(image: &'a DockerReference, options: &'a Options) -> Result<Registry<'a>> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("bulwark-scan/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .tls_danger_accept_invalid_certs(!options.tls_verify)
            .build()
            .context("building the HTTP client")?;
        let url = |scheme: &str| -> Result<Url> {
            Url::parse(&format!("{scheme}://{}/v2/", image.host))
                .with_context(|| format!("registry address {:?}", image.host))
        };
        let mut root = url("https")?;
        if let Err(tls) = http.get(root.clone()).send().await {
            if options.tls_verify {
                return Err(tls).with_context(|| {
                    format!(
                        "reaching {root} (--tls-verify=false for a registry without TLS or \
                         with a self-signed certificate)"
                    )
                });
            }
            root = url("http")?;
            http.get(root.clone())
                .send()
                .await
                .with_context(|| format!("reaching {} over HTTPS or HTTP", image.host))?;
        }
        let base = root
            .join(&format!("{}/", image.repository))
            .context("repository URL")?;
        Ok(Registry {
            http,
            base,
            image,
            options,
            authorization: None,
        })
    }

    /// GET `path` (under the repository), authenticating once when the registry asks.
    async fn get(&mut self, path: &str, accept: Option<&str>) -> Result<Response> {
        let url = self.base.join(path).context("request URL")?;
        let response = self.send(&url, accept).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.authorization = Some(self.authenticate(&challenge).await?);
        self.send(&url, accept).await
    }

    async fn send(&self, url: &Url, accept: Option<&str>) -> Result<Response> {
        let mut request = self.http.get(url.clone());
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        request = match &self.authorization {
            Some(Authorization::Basic(user, pass)) => request.basic_auth(user, Some(pass)),
            Some(Authorization::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };
        request.send().await.with_context(|| format!("GET {url}"))
    }

    /// Answers a `401` challenge: Basic with the credentials, or the token flow (the
    /// token service, with the credentials if any, for pull access to the repository).
    async fn authenticate(&self, challenge: &str) -> Result<Authorization> {
        let (scheme, params) = parse_challenge(challenge);
        let needs_creds = || {
            anyhow!(
                "docker://{}/{}: the registry requires authentication (--creds USER:PASS)",
                self.image.host,
                self.image.repository
            )
        };
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, pass) = self.options.creds.clone().ok_or_else(needs_creds)?;
            return Ok(Authorization::Basic(user, pass));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            bail!("the registry answered 401 with an unusable challenge {challenge:?}");
        }
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let realm = param("realm").ok_or_else(|| anyhow!("Bearer challenge without a realm"))?;
        let realm = Url::parse(realm).with_context(|| format!("token realm {realm:?}"))?;
        let scope = format!("repository:{}:pull", self.image.repository);
        let mut query = vec![("scope", scope.as_str())];
        if let Some(service) = param("service") {
            query.push(("service", service));
        }
        let mut request = self.http.get(realm.clone()).query(&query);
        if let Some((user, pass)) = &self.options.creds {
            request = request.basic_auth(user, Some(pass));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("GET {realm}"))?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(match self.options.creds {
                Some(_) => anyhow!("the token service {realm} refused the credentials"),
                None => needs_creds(),
            });
        }
        let response = expect_ok(response, "token").await?;
        let body: TokenResponse = serde_json::from_slice(&read_limited(response).await?)
            .context("the token service's answer")?;
        body.token
            .or(body.access_token)
            .map(Authorization::Bearer)
            .ok_or_else(|| anyhow!("the token service {realm} answered no token"))
    }

    /// The layers of the image, resolving indexes to `platform`'s manifest; every
    /// manifest fetched by digest is checked against it.
    async fn image_layers(&mut self, platform: &Platform) -> Result<Vec<Descriptor>> {
        let mut reference = self.image.reference.clone();
        for _ in 0..MAX_INDEX_DEPTH {
            let accept = media_types::ALL_MANIFESTS.join(", ");
            let response = self
                .get(&format!("manifests/{reference}"), Some(&accept))
                .await?;
            let what = format!(
                "manifest docker://{}/{}:{reference}",
                self.image.host, self.image.repository
            );
            let response = expect_ok(response, &what).await?;
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = read_limited(response).await?;
            if let Reference::Digest(expected) = &reference {
                let got = expected.same_algorithm_of(&body);
                if &got != expected {
                    bail!("{what}: the registry sent a manifest of digest {got}");
                }
            }
            let manifest = ParsedManifest::parse(content_type.as_deref(), &body)
                .with_context(|| what.clone())?;
            match manifest.kind {
                ManifestKind::Image => {
                    let config = manifest.config.as_ref().map_or("", |c| &c.media_type);
                    require_image_config(&reference.to_string(), config)?;
                    return Ok(manifest.layers);
                }
                ManifestKind::Index => {
                    let chosen = choose_platform(
                        &what,
                        &manifest.manifests,
                        |d| {
                            d.platform
                                .clone()
                                .and_then(|p| serde_json::from_value(p).ok())
                        },
                        platform,
                    )?;
                    reference = Reference::Digest(chosen.digest.clone());
                }
            }
        }
        bail!("{}: indexes nested too deep", self.image.repository)
    }

    /// The layer's blob in an anonymous temporary file, its digest and size verified.
    async fn download(&mut self, layer: &Descriptor, limits: &Limits) -> Result<File> {
        if layer.size > limits.max_layer_bytes {
            return Err(ScanError::TooLarge {
                limit: Limit::LayerBytes,
                max: limits.max_layer_bytes,
                context: format!("layer {}", layer.digest),
            }
            .into());
        }
        let what = format!("layer {}", layer.digest);
        let response = self.get(&format!("blobs/{}", layer.digest), None).await?;
        let mut response = expect_ok(response, &what).await?;
        let mut file = tempfile::tempfile().context("creating a temporary file")?;
        let mut verifier = Verifier::new(&layer.digest, layer.size);
        while let Some(chunk) = response
            .chunk()
            .await
            .with_context(|| format!("reading {what}"))?
        {
            verifier.update(&chunk)?;
            file.write_all(&chunk)
                .context("writing the layer to a temporary file")?;
        }
        verifier.finish()?;
        file.seek(SeekFrom::Start(0))
            .context("rewinding the temporary file")?;
        Ok(file)
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

/// Checks a blob's bytes as they stream by against its descriptor: never more than the
/// declared size, then exactly that size and digest.
struct Verifier<'d> {
    expected: &'d Digest,
    size: u64,
    seen: u64,
    hasher: DigestHasher,
}

impl<'d> Verifier<'d> {
    fn new(expected: &'d Digest, size: u64) -> Self {
        Verifier {
            expected,
            size,
            seen: 0,
            hasher: DigestHasher::new(expected.algorithm()),
        }
    }

    fn update(&mut self, bytes: &[u8]) -> Result<()> {
        self.seen += bytes.len() as u64;
        if self.seen > self.size {
            bail!(
                "blob {}: the registry sent more than the {} bytes the manifest declares",
                self.expected,
                self.size
            );
        }
        self.hasher.update(bytes);
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if self.seen != self.size {
            bail!(
                "blob {}: the registry sent {} bytes, the manifest declares {}",
                self.expected,
                self.seen,
                self.size
            );
        }
        let got = self.hasher.finish();
        if &got != self.expected {
            bail!(
                "blob {}: digest mismatch, the registry sent {got}",
                self.expected
            );
        }
        Ok(())
    }
}

/// Fails on a non-2xx answer with the registry's error code and message.
async fn expect_ok(response: Response, what: &str) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = read_limited(response).await.unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let e = v.get("errors")?.get(0)?.clone();
            Some(format!(
                ": {} {}",
                e.get("code")?.as_str()?,
                e.get("message").and_then(|m| m.as_str()).unwrap_or("")
            ))
        })
        .unwrap_or_default();
    match status {
        StatusCode::NOT_FOUND => bail!("{what}: not found (404{detail})"),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            bail!("{what}: access refused ({status}{detail}); --creds USER:PASS")
        }
        _ => bail!("{what}: {status}{detail}"),
    }
}

/// A small body (manifest, token, error), refused beyond `MAX_JSON_BYTES`.
async fn read_limited(mut response: Response) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.context("reading a response")? {
        if (body.len() + chunk.len()) as u64 > MAX_JSON_BYTES {
            bail!(
                "{}: response larger than {MAX_JSON_BYTES} bytes",
                response.url()
            );
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Bearer realm="…",service="…",scope="…"` → the scheme and its parameters (values may
/// be quoted and hold commas).
fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_string(), value.trim().to_string()));
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r: DockerReference = "127.0.0.1:5000/acme/app:v1".parse().unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository.as_str(), "acme/app");
        assert_eq!(r.reference.to_string(), "v1");
        let r: DockerReference = "registry.example/app".parse().unwrap();
        assert_eq!(r.reference.to_string(), "latest");
        let digest = format!("sha256:{}", "a".repeat(64));
        let r: DockerReference = format!("host:1/a/b@{digest}").parse().unwrap();
        assert_eq!(r.reference.to_string(), digest);
        for bad in [
            "",
            "host",
            "host/",
            "host/UPPER:tag",
            "host/a@sha256:short",
            "/a:b",
        ] {
            assert!(bad.parse::<DockerReference>().is_err(), "{bad}");
        }
    }

    #[test]
    fn challenges() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:5000/v2/auth",service="bulwark",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(
            params,
            [
                ("realm".into(), "http://127.0.0.1:5000/v2/auth".into()),
                ("service".into(), "bulwark".into()),
                ("scope".into(), "repository:a/b:pull,push".into()),
            ]
        );
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry""#);
        assert_eq!((scheme.as_str(), params.len()), ("Basic", 1));
    }

    #[test]
    fn blobs_are_verified_as_they_stream() {
        let data = b"layer bytes";
        let digest = Digest::sha256_of(data);
        let mut ok = Verifier::new(&digest, data.len() as u64);
        ok.update(&data[..5]).unwrap();
        ok.update(&data[5..]).unwrap();
        ok.finish().unwrap();
        let mut long = Verifier::new(&digest, 4);
        assert!(long.update(data).is_err());
        let mut short = Verifier::new(&digest, data.len() as u64);
        short.update(&data[..5]).unwrap();
        assert!(short.finish().is_err());
        let mut other = Verifier::new(&digest, data.len() as u64);
        other.update(b"LAYER BYTES").unwrap();
        let e = other.finish().unwrap_err().to_string();
        assert!(e.contains("digest mismatch"), "{e}");
    }
}
