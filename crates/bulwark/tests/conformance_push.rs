//! OCI Distribution Spec v1.1 conformance: pushing blobs — monolithic (`POST ?digest=`, and
//! `POST` then `PUT`), chunked (`PATCH` with `Content-Range`), upload status and cancellation,
//! cross-repository mounts, sha512 digests, and every way an upload can be refused.

mod common;

use bulwark_testkit::admin_basic_auth;
use common::*;
use futures::stream;

/// `location` with the `digest` query parameter added.
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

async fn patch(r: &Registry, location: &str, range: Option<&str>, chunk: &[u8]) -> Response {
    let mut req = r
        .req(Method::PATCH, location)
        .header("content-type", "application/octet-stream")
        .body(chunk.to_vec());
    if let Some(range) = range {
        req = req.header("content-range", range);
    }
    req.send().await.unwrap()
}

async fn put(r: &Registry, location: &str, digest: &Digest, body: &[u8]) -> Response {
    r.req(Method::PUT, &with_digest(location, digest))
        .header("content-type", "application/octet-stream")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// A body sent with chunked transfer encoding: no `Content-Length`.
fn streamed(data: &[u8]) -> reqwest::Body {
    let parts: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(7).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(stream::iter(parts))
}

async fn assert_blob(r: &Registry, repo: &str, digest: &Digest, data: &[u8]) {
    let resp = r.get(&format!("/v2/{repo}/blobs/{digest}")).await;
    assert_eq!(resp.status(), StatusCode::OK, "{repo}@{digest}");
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    assert_eq!(body(resp).await, data);
}

async fn assert_no_blob(r: &Registry, repo: &str, digest: &Digest) {
    let resp = r.head(&format!("/v2/{repo}/blobs/{digest}")).await;
    assert_eq!(
        resp.status(),
        StatusCode::NOT_FOUND,
        "{repo}@{digest} must not exist"
    );
}

/// The upload's `Range` as reported by `GET <location>`.
async fn upload_range(r: &Registry, location: &str) -> String {
    let resp = r.get(location).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    header(&resp, "range").to_owned()
}

// --- Monolithic: single POST ---

#[tokio::test]
async fn single_post_with_digest_is_201_with_pullable_location() {
    let r = Registry::start();
    let data = bytes(1, 2000);
    let digest = Digest::sha256_of(&data);
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={digest}"),
        )
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    let location = header(&resp, "location").to_owned();
    assert_eq!(location, format!("/v2/{REPO}/blobs/{digest}"));
    let resp = r.get(&location).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await, data);
}

#[tokio::test]
async fn monolithic_uploads_accept_a_body_without_content_length() {
    let r = Registry::start();
    let data = bytes(23, 1000);
    let digest = Digest::sha256_of(&data);
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={digest}"),
        )
        .body(streamed(&data))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_blob(&r, REPO, &digest, &data).await;

    let data = bytes(24, 1000);
    let digest = Digest::sha256_of(&data);
    let location = r.start_upload("other").await;
    let resp = r
        .req(Method::PUT, &with_digest(&location, &digest))
        .body(streamed(&data))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_blob(&r, "other", &digest, &data).await;
}

#[tokio::test]
async fn single_post_of_an_existing_blob_is_201_again() {
    let r = Registry::start();
    let data = b"twice";
    r.push_blob(REPO, data).await;
    let digest = r.push_blob(REPO, data).await;
    assert_blob(&r, REPO, &digest, data).await;
}

#[tokio::test]
async fn single_post_with_wrong_digest_is_digest_invalid_and_stores_nothing() {
    let r = Registry::start();
    let data = bytes(2, 100);
    let claimed = Digest::sha256_of(b"something else");
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={claimed}"),
        )
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_no_blob(&r, REPO, &claimed).await;
    assert_no_blob(&r, REPO, &Digest::sha256_of(&data)).await;
}

#[tokio::test]
async fn single_post_with_malformed_digest_is_digest_invalid() {
    let r = Registry::start();
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest=sha256:1234"),
        )
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn single_post_with_body_shorter_than_content_length_is_size_invalid() {
    let r = Registry::start();
    let data = bytes(3, 10);
    let digest = Digest::sha256_of(&data);
    let mut request = format!(
        "POST /v2/{REPO}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {}\r\n\
         Authorization: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 20\r\n\r\n",
        r.host(),
        admin_basic_auth()
    )
    .into_bytes();
    request.extend_from_slice(&data);
    let (status, doc) = r.raw(&request).await;
    assert_eq!(status, 400, "{doc}");
    assert_eq!(doc["errors"][0]["code"], "SIZE_INVALID", "{doc}");
    assert_no_blob(&r, REPO, &digest).await;
}

#[tokio::test]
async fn single_post_with_sha512_digest_is_201() {
    let r = Registry::start();
    let data = bytes(4, 3000);
    let digest = sha512_of(&data);
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={digest}"),
        )
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    assert_blob(&r, REPO, &digest, &data).await;
}

#[tokio::test]
async fn single_post_with_wrong_sha512_digest_is_digest_invalid() {
    let r = Registry::start();
    let claimed = sha512_of(b"other");
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={claimed}"),
        )
        .body(b"content".to_vec())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_no_blob(&r, REPO, &claimed).await;
}

#[tokio::test]
async fn blob_over_the_configured_limit_is_413_size_invalid() {
    let r = Registry::start_with_env(&[("BULWARK_LIMITS__MAX_BLOB_BYTES", "100")]);
    let data = bytes(5, 101);
    let digest = Digest::sha256_of(&data);
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={digest}"),
        )
        .body(data)
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID").await;
    assert_no_blob(&r, REPO, &digest).await;
    r.push_blob(REPO, &bytes(5, 100)).await;
}

// --- Monolithic: POST then PUT ---

#[tokio::test]
async fn post_opens_a_session_with_a_unique_location() {
    let r = Registry::start();
    let resp = r
        .send(Method::POST, &format!("/v2/{REPO}/blobs/uploads/"))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let first = header(&resp, "location").to_owned();
    let id = first.rsplit('/').next().unwrap();
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    assert_eq!(hex.len(), 32, "the location names a UUID: {first}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{first}");
    assert!(
        first.starts_with(&format!("/v2/{REPO}/blobs/uploads/")),
        "{first}"
    );
    let second = r.start_upload(REPO).await;
    assert_ne!(first, second, "each session has its own location");
}

#[tokio::test]
async fn post_then_put_is_201_with_pullable_location() {
    let r = Registry::start();
    let data = bytes(6, 4096);
    let digest = Digest::sha256_of(&data);
    let location = r.start_upload(REPO).await;
    let resp = put(&r, &location, &digest, &data).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    let blob_location = header(&resp, "location").to_owned();
    let resp = r.get(&blob_location).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await, data);
    // The session is closed.
    assert_error(
        r.get(&location).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn post_then_put_with_sha512_digest_is_201() {
    let r = Registry::start();
    let data = bytes(7, 1500);
    let digest = sha512_of(&data);
    let location = r.start_upload(REPO).await;
    let resp = put(&r, &location, &digest, &data).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_blob(&r, REPO, &digest, &data).await;
}

#[tokio::test]
async fn put_with_wrong_digest_is_digest_invalid_and_stores_nothing() {
    let r = Registry::start();
    let data = bytes(8, 100);
    let claimed = Digest::sha256_of(b"not it");
    let location = r.start_upload(REPO).await;
    let resp = put(&r, &location, &claimed, &data).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_no_blob(&r, REPO, &claimed).await;
    assert_no_blob(&r, REPO, &Digest::sha256_of(&data)).await;
}

#[tokio::test]
async fn put_without_digest_is_digest_invalid_and_keeps_the_session() {
    let r = Registry::start();
    let data = bytes(9, 64);
    let location = r.start_upload(REPO).await;
    let resp = r
        .req(Method::PUT, &location)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let digest = Digest::sha256_of(&data);
    assert_eq!(
        put(&r, &location, &digest, &data).await.status(),
        StatusCode::CREATED
    );
    assert_blob(&r, REPO, &digest, &data).await;
}

#[tokio::test]
async fn put_with_malformed_digest_is_digest_invalid() {
    let r = Registry::start();
    let location = r.start_upload(REPO).await;
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = r
        .req(Method::PUT, &format!("{location}{sep}digest=sha256:zz"))
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn put_with_body_shorter_than_content_length_is_size_invalid() {
    let r = Registry::start();
    let data = bytes(10, 10);
    let digest = Digest::sha256_of(&data);
    let location = r.start_upload(REPO).await;
    let mut request = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 25\r\n\r\n",
        with_digest(&location, &digest),
        r.host(),
        admin_basic_auth()
    )
    .into_bytes();
    request.extend_from_slice(&data);
    let (status, doc) = r.raw(&request).await;
    assert_eq!(status, 400, "{doc}");
    assert_eq!(doc["errors"][0]["code"], "SIZE_INVALID", "{doc}");
    assert_no_blob(&r, REPO, &digest).await;
}

// --- Chunked ---

#[tokio::test]
async fn chunked_upload_with_content_range_is_202_per_chunk_then_201() {
    let r = Registry::start();
    let data = bytes(11, 3000);
    let digest = Digest::sha256_of(&data);
    let mut location = r.start_upload(REPO).await;
    for (start, end) in [(0usize, 1000usize), (1000, 2000), (2000, 3000)] {
        let range = format!("{start}-{}", end - 1);
        let resp = patch(&r, &location, Some(&range), &data[start..end]).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "{range}");
        assert_eq!(header(&resp, "range"), format!("0-{}", end - 1));
        location = header(&resp, "location").to_owned();
    }
    let resp = put(&r, &location, &digest, b"").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/{REPO}/blobs/{digest}")
    );
    assert_blob(&r, REPO, &digest, &data).await;
}

#[tokio::test]
async fn final_chunk_may_come_with_the_closing_put() {
    let r = Registry::start();
    let data = bytes(12, 1000);
    let digest = Digest::sha256_of(&data);
    let location = r.start_upload(REPO).await;
    let resp = patch(&r, &location, Some("0-599"), &data[..600]).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location").to_owned();
    let resp = r
        .req(Method::PUT, &with_digest(&location, &digest))
        .header("content-type", "application/octet-stream")
        .header("content-range", "600-999")
        .body(data[600..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_blob(&r, REPO, &digest, &data).await;
}

#[tokio::test]
async fn streamed_patch_without_content_range_is_accepted() {
    let r = Registry::start();
    let data = bytes(13, 500);
    let digest = Digest::sha256_of(&data);
    let location = r.start_upload(REPO).await;
    let resp = r
        .req(Method::PATCH, &location)
        .header("content-type", "application/octet-stream")
        .body(streamed(&data))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), "0-499");
    let location = header(&resp, "location").to_owned();
    let resp = r
        .req(Method::PUT, &with_digest(&location, &digest))
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_blob(&r, REPO, &digest, &data).await;
}

#[tokio::test]
async fn chunked_upload_with_sha512_digest_is_201() {
    let r = Registry::start();
    let data = bytes(14, 2500);
    let digest = sha512_of(&data);
    let location = r.start_upload(REPO).await;
    let resp = patch(&r, &location, Some("0-1199"), &data[..1200]).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location").to_owned();
    let resp = patch(&r, &location, Some("1200-2499"), &data[1200..]).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location").to_owned();
    let resp = put(&r, &location, &digest, b"").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    assert_blob(&r, REPO, &digest, &data).await;
}

#[tokio::test]
async fn chunked_upload_with_wrong_digest_is_digest_invalid_and_stores_nothing() {
    let r = Registry::start();
    let data = bytes(15, 800);
    let claimed = Digest::sha256_of(b"a different blob");
    let location = r.start_upload(REPO).await;
    let resp = patch(&r, &location, Some("0-799"), &data).await;
    let location = header(&resp, "location").to_owned();
    let resp = put(&r, &location, &claimed, b"").await;
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_no_blob(&r, REPO, &claimed).await;
    assert_no_blob(&r, REPO, &Digest::sha256_of(&data)).await;
}

#[tokio::test]
async fn out_of_order_chunk_is_416_with_location_and_range() {
    let r = Registry::start();
    let data = bytes(16, 300);
    let location = r.start_upload(REPO).await;
    // The first chunk must begin at 0.
    let resp = patch(&r, &location, Some("100-199"), &data[100..200]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(has_header(&resp, "location"));
    assert_error(
        resp,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "BLOB_UPLOAD_INVALID",
    )
    .await;

    let resp = patch(&r, &location, Some("0-99"), &data[..100]).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location").to_owned();
    // A gap, then a retry of the chunk already taken: both out of order.
    for (range, chunk) in [("150-199", &data[150..200]), ("0-99", &data[..100])] {
        let resp = patch(&r, &location, Some(range), chunk).await;
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(&resp, "range"), "0-99", "where the upload stands");
        let resume = header(&resp, "location").to_owned();
        assert_eq!(r.get(&resume).await.status(), StatusCode::NO_CONTENT);
    }
    // The upload resumes where it stands.
    let resp = patch(&r, &location, Some("100-299"), &data[100..]).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location").to_owned();
    let digest = Digest::sha256_of(&data);
    assert_eq!(
        put(&r, &location, &digest, b"").await.status(),
        StatusCode::CREATED
    );
    assert_blob(&r, REPO, &digest, &data).await;
}

#[tokio::test]
async fn out_of_order_final_chunk_in_put_is_416() {
    let r = Registry::start();
    let data = bytes(17, 200);
    let digest = Digest::sha256_of(&data);
    let location = r.start_upload(REPO).await;
    let resp = patch(&r, &location, Some("0-99"), &data[..100]).await;
    let location = header(&resp, "location").to_owned();
    let resp = r
        .req(Method::PUT, &with_digest(&location, &digest))
        .header("content-range", "120-199")
        .body(data[120..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "range"), "0-99");
    assert_error(
        resp,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "BLOB_UPLOAD_INVALID",
    )
    .await;
    assert_no_blob(&r, REPO, &digest).await;
    assert_eq!(upload_range(&r, &location).await, "0-99");
}

#[tokio::test]
async fn malformed_content_range_is_refused() {
    let r = Registry::start();
    let location = r.start_upload(REPO).await;
    for range in ["abc", "5-2", "-5", "0-"] {
        let resp = patch(&r, &location, Some(range), b"hello").await;
        assert_error(
            resp,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
        )
        .await;
    }
    let resp = patch(&r, &location, Some("0-4"), b"hello").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn content_range_disagreeing_with_content_length_is_size_invalid() {
    let r = Registry::start();
    let location = r.start_upload(REPO).await;
    let resp = patch(&r, &location, Some("0-9"), b"only5").await;
    assert_error(resp, StatusCode::BAD_REQUEST, "SIZE_INVALID").await;
    let resp = patch(&r, &location, Some("0-4"), b"only5").await;
    assert_eq!(
        resp.status(),
        StatusCode::ACCEPTED,
        "nothing was taken from the refused chunk"
    );
}

#[tokio::test]
async fn streamed_chunk_shorter_than_its_content_range_is_size_invalid() {
    let r = Registry::start();
    let location = r.start_upload(REPO).await;
    let resp = patch(&r, &location, Some("0-2"), b"abc").await;
    let location = header(&resp, "location").to_owned();
    let resp = r
        .req(Method::PATCH, &location)
        .header("content-range", "3-12")
        .body(streamed(b"defgh"))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::BAD_REQUEST, "SIZE_INVALID").await;
    assert_eq!(
        upload_range(&r, &location).await,
        "0-2",
        "the short chunk was not kept"
    );
    let resp = patch(&r, &location, Some("3-7"), b"defgh").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let data = b"abcdefgh";
    let digest = Digest::sha256_of(data);
    let location = header(&resp, "location").to_owned();
    assert_eq!(
        put(&r, &location, &digest, b"").await.status(),
        StatusCode::CREATED
    );
    assert_blob(&r, REPO, &digest, data).await;
}

// --- Upload status and cancellation ---

#[tokio::test]
async fn get_upload_status_is_204_with_location_and_range() {
    let r = Registry::start();
    let data = bytes(18, 400);
    let location = r.start_upload(REPO).await;
    let resp = patch(&r, &location, Some("0-399"), &data).await;
    let location = header(&resp, "location").to_owned();
    let resp = r.get(&location).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "range"), "0-399");
    let next = header(&resp, "location").to_owned();
    assert!(body(resp).await.is_empty());
    // The location it gives takes the next chunk.
    let resp = patch(&r, &next, Some("400-409"), &bytes(18, 10)).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), "0-409");
}

#[tokio::test]
async fn unknown_upload_session_is_404_blob_upload_unknown() {
    let r = Registry::start();
    r.start_upload(REPO).await;
    let path = format!("/v2/{REPO}/blobs/uploads/00000000000000000000000000000000");
    assert_error(
        r.get(&path).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let resp = patch(&r, &path, None, b"data").await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    let resp = put(&r, &path, &Digest::sha256_of(b"data"), b"data").await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    assert_error(
        r.delete(&path).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn upload_session_is_bound_to_its_repository() {
    let r = Registry::start();
    let location = r.start_upload("team/a").await;
    let id = location
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let foreign = format!("/v2/team/b/blobs/uploads/{id}");
    assert_error(
        r.get(&foreign).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let resp = put(&r, &foreign, &Digest::sha256_of(b"x"), b"x").await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    assert_eq!(r.get(&location).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn delete_upload_cancels_it() {
    let r = Registry::start();
    let data = bytes(19, 100);
    let digest = Digest::sha256_of(&data);
    let location = r.start_upload(REPO).await;
    let resp = patch(&r, &location, Some("0-99"), &data).await;
    let location = header(&resp, "location").to_owned();
    let resp = r
        .req(Method::DELETE, &location)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_error(
        r.get(&location).await,
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let resp = put(&r, &location, &digest, b"").await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN").await;
    assert_no_blob(&r, REPO, &digest).await;
}

// --- Cross-repository mounts ---

async fn mount(r: &Registry, repo: &str, digest: &Digest, from: Option<&str>) -> Response {
    let mut path = format!("/v2/{repo}/blobs/uploads/?mount={digest}");
    if let Some(from) = from {
        path.push_str(&format!("&from={from}"));
    }
    r.send(Method::POST, &path).await
}

#[tokio::test]
async fn mount_with_from_is_201_with_pullable_location() {
    let r = Registry::start();
    let data = bytes(20, 900);
    let digest = r.push_blob("source/repo", &data).await;
    let resp = mount(&r, "target/repo", &digest, Some("source/repo")).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    let location = header(&resp, "location").to_owned();
    assert_eq!(location, format!("/v2/target/repo/blobs/{digest}"));
    let resp = r.get(&location).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await, data);
}

#[tokio::test]
async fn mount_without_from_finds_the_blob() {
    let r = Registry::start();
    let data = bytes(21, 900);
    let digest = r.push_blob("source/repo", &data).await;
    let resp = mount(&r, "target/repo", &digest, None).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/target/repo/blobs/{digest}")
    );
    assert_blob(&r, "target/repo", &digest, &data).await;
}

#[tokio::test]
async fn mount_of_a_blob_missing_from_the_source_falls_back_to_an_upload() {
    let r = Registry::start();
    let data = bytes(22, 700);
    // The blob exists, but not in the repository named by `from`.
    let digest = r.push_blob("elsewhere", &data).await;
    r.push_blob("source/repo", b"unrelated").await;
    let resp = mount(&r, "target/repo", &digest, Some("source/repo")).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location").to_owned();
    assert!(
        location.starts_with("/v2/target/repo/blobs/uploads/"),
        "{location}"
    );
    assert_no_blob(&r, "target/repo", &digest).await;
    // The session it opened takes the upload.
    assert_eq!(
        put(&r, &location, &digest, &data).await.status(),
        StatusCode::CREATED
    );
    assert_blob(&r, "target/repo", &digest, &data).await;
}

#[tokio::test]
async fn mount_of_an_unknown_blob_opens_an_upload_session() {
    let r = Registry::start();
    let digest = Digest::sha256_of(b"nobody has this");
    for from in [None, Some("source/repo")] {
        let resp = mount(&r, "target/repo", &digest, from).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED, "from {from:?}");
        let location = header(&resp, "location").to_owned();
        assert!(
            location.starts_with("/v2/target/repo/blobs/uploads/"),
            "{location}"
        );
        assert_eq!(r.get(&location).await.status(), StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn mount_with_malformed_arguments_is_400() {
    let r = Registry::start();
    let digest = r.push_blob("source/repo", b"x").await;
    let resp = r
        .send(
            Method::POST,
            "/v2/target/repo/blobs/uploads/?mount=sha256:12&from=source/repo",
        )
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    let resp = mount(&r, "target/repo", &digest, Some("Source/Repo")).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "NAME_INVALID").await;
}
