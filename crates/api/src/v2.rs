//! The OCI distribution API under `/v2/`. Repository names contain slashes, so routes are
//! told apart by their last path segments rather than by the router.

use std::collections::HashMap;
use std::io;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bulwark_auth::Action;
use bulwark_oci::{Digest, ErrorCode, Reference, RepoName};
use bulwark_registry::{BlobRead, ByteRange, ByteStream, ListPage, MountOutcome, UploadState};
use futures::{FutureExt, TryStreamExt};

use crate::AppState;
use crate::auth::{CATALOG_SCOPE, V2Caller, repository_scope};
use crate::error::ApiError;
use crate::metrics::RouteName;

const DIGEST_HEADER: &str = "docker-content-digest";
const UPLOAD_UUID_HEADER: &str = "docker-upload-uuid";

/// What a `/v2/…` path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Uploads(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn parse_target(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Target::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Target::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Target::Uploads(name));
    }
    let (head, last) = rest.rsplit_once('/')?;
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        Some(Target::Upload(name, last))
    } else if let Some(name) = head.strip_suffix("/blobs") {
        Some(Target::Blob(name, last))
    } else if let Some(name) = head.strip_suffix("/manifests") {
        Some(Target::Manifest(name, last))
    } else {
        head.strip_suffix("/referrers")
            .map(|name| Target::Referrers(name, last))
    }
}

/// Entry point for every `/v2` request.
pub async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let route = parse_target(&path);
    let name = route_name(route.as_ref(), req.method());
    let sends_body = sends_body(req.headers());
    let mut resp = match route {
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NameInvalid,
            "no such route",
        )
        .into_response(),
        Some(target) => {
            let (parts, body) = req.into_parts();
            let audited = Audited::of(&target, &parts);
            match V2Caller::from_request(&state, &parts).await {
                Ok(caller) => {
                    let resp = match admit(&state, &target, &parts, &caller).await {
                        Ok(()) => handle(&state, &caller, target, Request::from_parts(parts, body))
                            .await
                            .unwrap_or_else(IntoResponse::into_response),
                        Err(e) => e.into_response(),
                    };
                    if let Some(audited) = audited {
                        audited.record(&state, &caller, &resp);
                    }
                    resp
                }
                Err(e) => e.into_response(),
            }
        }
    };
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    // A refused request's body may be left unread (a chunk at the wrong offset, a push
    // without credentials): the server will not read on, so say so, or the client may reuse
    // the connection and see it cut under its next request.
    if sends_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp.extensions_mut().insert(RouteName(name));
    resp
}

/// Whether a request carries a body (a non-zero length or a chunked one).
fn sends_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// What a request needs the caller to be allowed.
enum Requirement<'a> {
    /// `/v2/`: any valid credentials (answering 401 otherwise is how clients discover the
    /// token service).
    Authenticated,
    Catalog,
    Repository(&'a str, Action),
}

fn requirement<'a>(target: &Target<'a>, method: &Method) -> Requirement<'a> {
    let read = method == Method::GET || method == Method::HEAD;
    let write = |name| {
        if method == Method::DELETE {
            Requirement::Repository(name, Action::Delete)
        } else if read {
            Requirement::Repository(name, Action::Pull)
        } else {
            Requirement::Repository(name, Action::Push)
        }
    };
    match *target {
        Target::Base => Requirement::Authenticated,
        Target::Catalog => Requirement::Catalog,
        Target::Tags(name) | Target::Referrers(name, _) => {
            Requirement::Repository(name, Action::Pull)
        }
        Target::Manifest(name, _) | Target::Blob(name, _) => write(name),
        // Every request on an upload session writes, including its status and cancellation.
        Target::Uploads(name) | Target::Upload(name, _) => {
            Requirement::Repository(name, Action::Push)
        }
    }
}

/// Authenticates the caller and asks the authorization decision for what the request needs.
async fn admit(
    state: &AppState,
    target: &Target<'_>,
    parts: &Parts,
    caller: &V2Caller,
) -> Result<()> {
    match requirement(target, &parts.method) {
        Requirement::Authenticated if !caller.authenticated() => {
            Err(caller.refuse(state, parts, None))
        }
        Requirement::Authenticated => Ok(()),
        Requirement::Catalog => {
            let anonymous_refused =
                caller.identity.account_id().is_none() && !state.auth.settings().anonymous_access;
            if anonymous_refused || !caller.may_list_catalog() {
                Err(caller.refuse(state, parts, Some(CATALOG_SCOPE.to_owned())))
            } else {
                Ok(())
            }
        }
        Requirement::Repository(name, action) => {
            // An invalid name is a client error whoever asks; check it before access so the
            // challenge never carries it.
            let repo = state.registry.repo_name(name)?;
            if caller.may(state, repo.as_str(), action).await? {
                Ok(())
            } else {
                Err(caller.refuse(state, parts, Some(repository_scope(repo.as_str(), action))))
            }
        }
    }
}

/// A manifest pull (`GET`), push (`PUT`) or delete, for the action log: recorded once
/// the response is known, as `pull`, `push`, `tag.delete` or `manifest.delete`, or that
/// kind with `.failure` (refused or failed).
struct Audited {
    kind: &'static str,
    repository: String,
    reference: String,
    client: bulwark_auth::ClientInfo,
}

impl Audited {
    fn of(target: &Target<'_>, parts: &Parts) -> Option<Audited> {
        let Target::Manifest(repository, reference) = *target else {
            return None;
        };
        let kind = match parts.method {
            Method::GET => "pull",
            Method::PUT => "push",
            Method::DELETE if reference.contains(':') => "manifest.delete",
            Method::DELETE => "tag.delete",
            // HEAD only checks for existence.
            _ => return None,
        };
        Some(Audited {
            kind,
            repository: repository.to_owned(),
            reference: reference.to_owned(),
            client: crate::auth::client_info(parts),
        })
    }

    fn record(self, state: &AppState, caller: &V2Caller, resp: &Response) {
        let status = resp.status();
        // A challenge to a caller without credentials: the client comes back with a token.
        if status == StatusCode::UNAUTHORIZED && !caller.authenticated() {
            return;
        }
        let kind = if status.is_success() {
            self.kind.to_owned()
        } else {
            format!("{}.failure", self.kind)
        };
        let digest = resp
            .headers()
            .get(DIGEST_HEADER)
            .and_then(|v| v.to_str().ok());
        let origin = bulwark_events::Origin {
            address: self.client.address,
            user_agent: self.client.user_agent,
        };
        let event = bulwark_events::Event::new(kind, caller.identity.actor(), origin)
            .repository(&self.repository)
            .target(self.reference.clone())
            .details(serde_json::json!({
                "reference": self.reference,
                "digest": digest,
                "status": status.as_u16(),
            }));
        state.auth.events().emit(event);
    }
}

fn route_name(target: Option<&Target>, method: &Method) -> &'static str {
    let get = method == Method::GET || method == Method::HEAD;
    match target {
        None => "unknown",
        Some(Target::Base) => "base",
        Some(Target::Catalog) => "catalog",
        Some(Target::Tags(_)) => "tags_list",
        Some(Target::Manifest(..)) if get => "manifest_get",
        Some(Target::Manifest(..)) => "manifest_write",
        Some(Target::Blob(..)) if get => "blob_get",
        Some(Target::Blob(..)) => "blob_delete",
        Some(Target::Uploads(_)) => "upload_start",
        Some(Target::Upload(..)) => "upload",
        Some(Target::Referrers(..)) => "referrers",
    }
}

/// Every route [`dispatch`] serves, as (`route_name` label, method), for tests that must
/// cover them all: the authorization matrix (`crates/bulwark/tests/authz_matrix.rs`) has a
/// row for each and probes the server for methods missing here. Keep it in step with
/// `route_name` and `handle`.
pub const ROUTES: [(&str, &str); 17] = [
    ("base", "GET"),
    ("base", "HEAD"),
    ("catalog", "GET"),
    ("tags_list", "GET"),
    ("manifest_get", "GET"),
    ("manifest_get", "HEAD"),
    ("manifest_write", "PUT"),
    ("manifest_write", "DELETE"),
    ("blob_get", "GET"),
    ("blob_get", "HEAD"),
    ("blob_delete", "DELETE"),
    ("upload_start", "POST"),
    ("upload", "GET"),
    ("upload", "PATCH"),
    ("upload", "PUT"),
    ("upload", "DELETE"),
    ("referrers", "GET"),
];

type Result<T> = std::result::Result<T, ApiError>;

async fn handle(
    state: &AppState,
    caller: &V2Caller,
    target: Target<'_>,
    req: Request,
) -> Result<Response> {
    let reg = &state.registry;
    let method = req.method().clone();
    let query = query_map(&req);
    match (target, method) {
        (Target::Base, Method::GET | Method::HEAD) => Ok(Json(b"{}".to_vec()).into_response()),
        (Target::Catalog, Method::GET) => {
            let (last, n) = page_params(&query)?;
            let limit = reg.page_limit(n);
            let items = state
                .auth
                .visible_repositories(&caller.identity, last, limit + 1)
                .await?;
            let page = ListPage::from_overfetched(items, limit);
            Ok(list_response("/v2/_catalog", None, page, n))
        }
        (Target::Tags(name), Method::GET) => {
            let repo = reg.repo_name(name)?;
            let (last, n) = page_params(&query)?;
            let page = reg.tags(&repo, last, n).await?;
            let path = format!("/v2/{repo}/tags/list");
            Ok(list_response(&path, Some(repo.as_str()), page, n))
        }
        (Target::Manifest(name, reference), m @ (Method::GET | Method::HEAD)) => {
            let repo = reg.repo_name(name)?;
            let reference = Reference::parse(reference)?;
            let accept: Vec<&str> = req
                .headers()
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let manifest = reg.manifest(&repo, &reference, &accept).await?;
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, header_value(&manifest.media_type)?);
            headers.insert(DIGEST_HEADER, header_value(&manifest.digest.to_string())?);
            headers.insert(header::CONTENT_LENGTH, manifest.content.len().into());
            headers.insert(
                header::ETAG,
                header_value(&format!("\"{}\"", manifest.digest))?,
            );
            let body = if m == Method::HEAD {
                Body::empty()
            } else {
                Body::from(manifest.content)
            };
            Ok((StatusCode::OK, headers, body).into_response())
        }
        (Target::Manifest(name, reference), Method::PUT) => {
            let repo = reg.repo_name(name)?;
            let reference = Reference::parse(reference)?;
            let content_type = header_str(req.headers(), header::CONTENT_TYPE).map(str::to_owned);
            state
                .accounts
                .prepare_push(&caller.identity, repo.as_str())
                .await?;
            let limit = reg.limits().max_manifest_bytes;
            let body = axum::body::to_bytes(req.into_body(), limit)
                .await
                .map_err(|_| {
                    ApiError::from(bulwark_registry::RegistryError::ManifestTooLarge { limit })
                })?;
            let put = reg
                .put_manifest(&repo, &reference, content_type.as_deref(), &body)
                .await?;
            let mut headers = HeaderMap::new();
            headers.insert(
                header::LOCATION,
                header_value(&format!("/v2/{repo}/manifests/{}", put.digest))?,
            );
            headers.insert(DIGEST_HEADER, header_value(&put.digest.to_string())?);
            if let Some(subject) = put.subject {
                headers.insert("oci-subject", header_value(&subject.to_string())?);
            }
            Ok((StatusCode::CREATED, headers).into_response())
        }
        (Target::Manifest(name, reference), Method::DELETE) => {
            let repo = reg.repo_name(name)?;
            let reference = Reference::parse(reference)?;
            reg.delete_manifest(&repo, &reference).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Target::Blob(name, digest), m @ (Method::GET | Method::HEAD)) => {
            let repo = reg.repo_name(name)?;
            let digest: Digest = digest.parse()?;
            let mut headers = HeaderMap::new();
            headers.insert(DIGEST_HEADER, header_value(&digest.to_string())?);
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(header::ETAG, header_value(&format!("\"{digest}\""))?);
            if m == Method::HEAD {
                let size = reg.blob_size(&repo, &digest).await?;
                headers.insert(header::CONTENT_LENGTH, size.into());
                return Ok((StatusCode::OK, headers).into_response());
            }
            let range = header_str(req.headers(), header::RANGE).and_then(parse_range);
            let (size, range, stream) = match reg.read_blob(&repo, &digest, range).await? {
                BlobRead::Bytes {
                    size,
                    range,
                    stream,
                } => (size, range, stream),
                BlobRead::Redirect(url) => {
                    headers.insert(header::LOCATION, header_value(&url)?);
                    return Ok((StatusCode::TEMPORARY_REDIRECT, headers).into_response());
                }
            };
            let status = match &range {
                Some(r) => {
                    headers.insert(
                        header::CONTENT_RANGE,
                        header_value(&format!("bytes {}-{}/{}", r.start, r.end - 1, size))?,
                    );
                    headers.insert(header::CONTENT_LENGTH, (r.end - r.start).into());
                    StatusCode::PARTIAL_CONTENT
                }
                None => {
                    headers.insert(header::CONTENT_LENGTH, size.into());
                    StatusCode::OK
                }
            };
            Ok((status, headers, Body::from_stream(stream)).into_response())
        }
        (Target::Blob(name, digest), Method::DELETE) => {
            let repo = reg.repo_name(name)?;
            let digest: Digest = digest.parse()?;
            reg.delete_blob(&repo, &digest).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Target::Uploads(name), Method::POST) => {
            let repo = reg.repo_name(name)?;
            state
                .accounts
                .prepare_push(&caller.identity, repo.as_str())
                .await?;
            if let Some(mount) = query.get("mount") {
                let digest: Digest = mount.parse()?;
                let from = query.get("from").map(|f| reg.repo_name(f)).transpose()?;
                // A mount must never reveal a blob of a repository the caller cannot pull.
                let can_read = |source: RepoName| {
                    let (state, caller) = (state.clone(), caller.clone());
                    async move {
                        caller
                            .may(&state, source.as_str(), Action::Pull)
                            .await
                            .unwrap_or(false)
                    }
                    .boxed()
                };
                return match reg.mount(&repo, &digest, from.as_ref(), &can_read).await? {
                    MountOutcome::Mounted => blob_created(&repo, &digest),
                    MountOutcome::Upload(state) => {
                        upload_response(StatusCode::ACCEPTED, &repo, &state)
                    }
                };
            }
            if let Some(digest) = query.get("digest") {
                let digest: Digest = digest.parse()?;
                let len = content_length(req.headers())?;
                reg.put_blob(&repo, &digest, len, body_stream(req)).await?;
                return blob_created(&repo, &digest);
            }
            let state = reg.start_upload(&repo).await?;
            upload_response(StatusCode::ACCEPTED, &repo, &state)
        }
        (Target::Upload(name, id), Method::GET) => {
            let repo = reg.repo_name(name)?;
            let state = reg.upload_status(&repo, id).await?;
            upload_response(StatusCode::NO_CONTENT, &repo, &state)
        }
        (Target::Upload(name, id), Method::PATCH) => {
            let repo = reg.repo_name(name)?;
            let (start, declared) = chunk_headers(req.headers())?;
            match reg
                .append_chunk(&repo, id, start, declared, body_stream(req))
                .await
            {
                Ok(state) => upload_response(StatusCode::ACCEPTED, &repo, &state),
                Err(e) => Err(upload_error(reg, &repo, id, e).await),
            }
        }
        (Target::Upload(name, id), Method::PUT) => {
            let repo = reg.repo_name(name)?;
            let digest: Digest = query
                .get("digest")
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::DigestInvalid,
                        "the digest query parameter is required to complete an upload",
                    )
                })?
                .parse()?;
            let (start, declared) = chunk_headers(req.headers())?;
            let last_chunk = (declared != Some(0)).then(|| (body_stream(req), declared));
            match reg
                .finish_upload(&repo, id, &digest, start, last_chunk)
                .await
            {
                Ok(()) => blob_created(&repo, &digest),
                Err(e) => Err(upload_error(reg, &repo, id, e).await),
            }
        }
        (Target::Upload(name, id), Method::DELETE) => {
            let repo = reg.repo_name(name)?;
            reg.cancel_upload(&repo, id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Target::Referrers(name, digest), Method::GET) => {
            let repo = reg.repo_name(name)?;
            let digest: Digest = digest.parse()?;
            let artifact_type = query.get("artifactType").map(String::as_str);
            let index = reg.referrers(&repo, &digest, artifact_type).await?;
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(bulwark_oci::media_types::OCI_INDEX),
            );
            if index.filtered {
                headers.insert(
                    "oci-filters-applied",
                    HeaderValue::from_static("artifactType"),
                );
            }
            Ok((StatusCode::OK, headers, index.body).into_response())
        }
        (_, method) => Err(ApiError::unsupported(format!(
            "{method} is not supported on this route"
        ))),
    }
}

/// A JSON body with its content type.
struct Json(Vec<u8>);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

fn query_map(req: &Request) -> HashMap<String, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default()
}

fn page_params(query: &HashMap<String, String>) -> Result<(Option<&str>, Option<u32>)> {
    let n = query
        .get("n")
        .map(|n| {
            n.parse::<u32>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Unsupported,
                    format!("n must be a non-negative integer, got {n:?}"),
                )
            })
        })
        .transpose()?;
    Ok((query.get("last").map(String::as_str), n))
}

/// A tag list (for the repository `name`) or, without a name, a catalog page.
fn list_response(path: &str, name: Option<&str>, page: ListPage, n: Option<u32>) -> Response {
    #[derive(serde::Serialize)]
    struct Tags<'a> {
        name: &'a str,
        tags: &'a [String],
    }
    #[derive(serde::Serialize)]
    struct Repositories<'a> {
        repositories: &'a [String],
    }
    let body = match name {
        Some(name) => serde_json::to_vec(&Tags {
            name,
            tags: &page.items,
        }),
        None => serde_json::to_vec(&Repositories {
            repositories: &page.items,
        }),
    };
    let mut resp = Json(body.expect("json serializes")).into_response();
    if let Some(last) = page.next {
        let mut link = format!("<{path}?last={}", urlencode(&last));
        if let Some(n) = n {
            link.push_str(&format!("&n={n}"));
        }
        link.push_str(">; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    resp
}

/// Percent-encodes what may appear in tags and repository names but not in a query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unsupported,
            "value not representable in a header",
        )
    })
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>> {
    header_str(headers, header::CONTENT_LENGTH)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::SizeInvalid,
                    "bad Content-Length",
                )
            })
        })
        .transpose()
}

fn body_stream(req: Request) -> ByteStream {
    Box::pin(req.into_body().into_data_stream().map_err(io::Error::other))
}

/// `Range: bytes=a-b`, `bytes=a-` or `bytes=-n`. Anything else (another unit, several
/// ranges, bad syntax) is `None`: RFC 9110 lets a server ignore it and send the whole blob.
fn parse_range(v: &str) -> Option<ByteRange> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (false, false) => Some(ByteRange::Closed(num(a)?, num(b)?)),
        (false, true) => Some(ByteRange::From(num(a)?)),
        (true, false) => Some(ByteRange::Suffix(num(b)?)),
        (true, true) => None,
    }
}

fn content_range_error() -> ApiError {
    ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::BlobUploadInvalid,
        "malformed Content-Range (expected start-end)",
    )
}

/// `Content-Range: start-end` on a chunk (some clients prefix `bytes `/`bytes=`).
fn parse_content_range(v: &str) -> Result<(u64, u64)> {
    let v = v.trim();
    let v = v
        .strip_prefix("bytes ")
        .or_else(|| v.strip_prefix("bytes="))
        .unwrap_or(v);
    let v = v.split('/').next().unwrap_or(v);
    let (a, b) = v.split_once('-').ok_or_else(content_range_error)?;
    let start: u64 = a.trim().parse().map_err(|_| content_range_error())?;
    let end: u64 = b.trim().parse().map_err(|_| content_range_error())?;
    if end < start {
        return Err(content_range_error());
    }
    Ok((start, end))
}

/// The chunk a `PATCH` or closing `PUT` carries: the offset its `Content-Range` starts at, and
/// its declared length (`Content-Length`, else the range's), which must agree when both are given.
fn chunk_headers(headers: &HeaderMap) -> Result<(Option<u64>, Option<u64>)> {
    let range = header_str(headers, header::CONTENT_RANGE)
        .map(parse_content_range)
        .transpose()?;
    let len = content_length(headers)?;
    if let (Some((start, end)), Some(len)) = (range, len)
        && end - start + 1 != len
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::SizeInvalid,
            format!("Content-Range {start}-{end} does not match Content-Length {len}"),
        ));
    }
    Ok((range.map(|r| r.0), len.or(range.map(|(s, e)| e - s + 1))))
}

/// An error on an upload; an out-of-order chunk also tells the client where the upload
/// stands (`Location`, `Range`) so that it can resume.
async fn upload_error(
    reg: &bulwark_registry::Registry,
    repo: &RepoName,
    id: &str,
    e: bulwark_registry::RegistryError,
) -> ApiError {
    if !matches!(e, bulwark_registry::RegistryError::ChunkOutOfOrder { .. }) {
        return e.into();
    }
    let state = match reg.upload_status(repo, id).await {
        Ok(state) => state,
        Err(e) => return e.into(),
    };
    let headers = match upload_headers(repo, &state) {
        Ok(headers) => headers,
        Err(e) => return e,
    };
    headers
        .into_iter()
        .fold(ApiError::from(e), |err, (k, v)| err.with_header(k, v))
}

fn upload_headers(
    repo: &RepoName,
    state: &UploadState,
) -> Result<Vec<(header::HeaderName, HeaderValue)>> {
    // An empty upload reports "0-0", as the reference implementation does.
    let end = state.size.saturating_sub(1);
    Ok(vec![
        (
            header::LOCATION,
            header_value(&format!("/v2/{repo}/blobs/uploads/{}", state.id))?,
        ),
        (header::RANGE, header_value(&format!("0-{end}"))?),
        (
            header::HeaderName::from_static(UPLOAD_UUID_HEADER),
            header_value(&state.id)?,
        ),
    ])
}

fn upload_response(status: StatusCode, repo: &RepoName, state: &UploadState) -> Result<Response> {
    let mut resp = status.into_response();
    resp.headers_mut().extend(upload_headers(repo, state)?);
    Ok(resp)
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Result<Response> {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        header_value(&format!("/v2/{repo}/blobs/{digest}"))?,
    );
    h.insert(DIGEST_HEADER, header_value(&digest.to_string())?);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("/v2/"), Some(Target::Base));
        assert_eq!(parse_target("/v2"), Some(Target::Base));
        assert_eq!(parse_target("/v2/_catalog"), Some(Target::Catalog));
        assert_eq!(parse_target("/v2/a/b/tags/list"), Some(Target::Tags("a/b")));
        assert_eq!(
            parse_target("/v2/a/manifests/b/manifests/latest"),
            Some(Target::Manifest("a/manifests/b", "latest"))
        );
        assert_eq!(
            parse_target("/v2/a/blobs/sha256:x"),
            Some(Target::Blob("a", "sha256:x"))
        );
        assert_eq!(
            parse_target("/v2/a/blobs/uploads/"),
            Some(Target::Uploads("a"))
        );
        assert_eq!(
            parse_target("/v2/a/blobs/uploads/u1"),
            Some(Target::Upload("a", "u1"))
        );
        assert_eq!(
            parse_target("/v2/a/referrers/sha256:x"),
            Some(Target::Referrers("a", "sha256:x"))
        );
        assert_eq!(parse_target("/v2/a/unknown/x"), None);
        assert_eq!(parse_target("/v3/a"), None);
    }

    #[test]
    fn routes_lists_the_route_names() {
        // A path of each kind of target, with every method `handle` could be asked.
        let paths = [
            "/v2/",
            "/v2/_catalog",
            "/v2/a/tags/list",
            "/v2/a/manifests/t",
            "/v2/a/blobs/sha256:x",
            "/v2/a/blobs/uploads/",
            "/v2/a/blobs/uploads/u",
            "/v2/a/referrers/sha256:x",
        ];
        let methods = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"];
        let named: std::collections::BTreeSet<(&str, &str)> = paths
            .iter()
            .flat_map(|path| {
                let target = parse_target(path).expect("a route");
                methods.map(|m| {
                    let method = Method::from_bytes(m.as_bytes()).unwrap();
                    (route_name(Some(&target), &method), m)
                })
            })
            .collect();
        for route in ROUTES {
            assert!(
                named.contains(&route),
                "{route:?} is not a route_name label"
            );
        }
        let named_labels: std::collections::BTreeSet<&str> = named.iter().map(|r| r.0).collect();
        let listed_labels: std::collections::BTreeSet<&str> = ROUTES.iter().map(|r| r.0).collect();
        assert_eq!(
            named_labels, listed_labels,
            "route_name's labels, then ROUTES'"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9"), Some(ByteRange::Closed(0, 9)));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Suffix(5)));
        assert_eq!(parse_range("bytes=-"), None);
        assert_eq!(parse_range("items=0-1"), None);
        assert_eq!(parse_range("bytes=0-1,4-5"), None);
        assert_eq!(parse_content_range("0-9").unwrap(), (0, 9));
        assert_eq!(parse_content_range("bytes 10-19/100").unwrap(), (10, 19));
        assert!(parse_content_range("9-0").is_err());
    }
}
