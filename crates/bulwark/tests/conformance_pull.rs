//! OCI Distribution Spec v1.1 conformance: the base endpoint, pulling and checking blobs
//! (GET, HEAD, `Range`), and deleting blobs.

mod common;

use common::*;

#[tokio::test]
async fn base_endpoint_answers_200_with_api_version_header() {
    let r = Registry::start();
    for path in ["/v2/", "/v2"] {
        let resp = r.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&resp, "docker-distribution-api-version"),
            "registry/2.0"
        );
    }
    let resp = r.head("/v2/").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[tokio::test]
async fn error_responses_carry_api_version_header() {
    let r = Registry::start();
    let resp = r.get(&format!("/v2/{REPO}/manifests/latest")).await;
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_error(resp, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn get_blob_returns_its_bytes_and_digest() {
    let r = Registry::start();
    let data = bytes(1, 1000);
    let digest = r.push_blob(REPO, &data).await;
    let resp = r.get(&format!("/v2/{REPO}/blobs/{digest}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    assert_eq!(header(&resp, "content-length"), "1000");
    let got = body(resp).await;
    assert_eq!(got, data);
    assert_eq!(
        Digest::sha256_of(&got),
        digest,
        "the body matches the digest header"
    );
}

#[tokio::test]
async fn head_blob_returns_200_with_length_and_digest_and_no_body() {
    let r = Registry::start();
    let data = bytes(2, 777);
    let digest = r.push_blob(REPO, &data).await;
    let resp = r.head(&format!("/v2/{REPO}/blobs/{digest}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    assert_eq!(header(&resp, "content-length"), "777");
    assert!(body(resp).await.is_empty());
}

#[tokio::test]
async fn empty_blob_can_be_pushed_and_pulled() {
    let r = Registry::start();
    let digest = r.push_blob(REPO, b"").await;
    let resp = r.get(&format!("/v2/{REPO}/blobs/{digest}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), "0");
    assert!(body(resp).await.is_empty());
}

#[tokio::test]
async fn get_unknown_blob_is_404_blob_unknown() {
    let r = Registry::start();
    r.push_blob(REPO, b"something").await;
    let missing = Digest::sha256_of(b"never pushed");
    let resp = r.get(&format!("/v2/{REPO}/blobs/{missing}")).await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn head_unknown_blob_is_404_without_body() {
    let r = Registry::start();
    r.push_blob(REPO, b"something").await;
    let missing = Digest::sha256_of(b"never pushed");
    let resp = r.head(&format!("/v2/{REPO}/blobs/{missing}")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(body(resp).await.is_empty());
}

#[tokio::test]
async fn blob_in_unknown_repository_is_404() {
    let r = Registry::start();
    let digest = r.push_blob(REPO, b"here").await;
    let resp = r.get(&format!("/v2/other/repo/blobs/{digest}")).await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn blob_with_malformed_digest_is_400_digest_invalid() {
    let r = Registry::start();
    r.push_blob(REPO, b"x").await;
    for bad in ["sha256:abc", "sha256:XYZ", "nocolon", "sha256:"] {
        let resp = r.get(&format!("/v2/{REPO}/blobs/{bad}")).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn blob_with_sha512_digest_is_served_under_that_digest() {
    let r = Registry::start();
    let data = bytes(3, 500);
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
    let resp = r.get(&format!("/v2/{REPO}/blobs/{digest}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    assert_eq!(body(resp).await, data);
}

// --- Range requests (RFC 9110), which the spec says a registry SHOULD support ---

async fn get_range(r: &Registry, digest: &Digest, range: &str) -> Response {
    r.req(Method::GET, &format!("/v2/{REPO}/blobs/{digest}"))
        .header("range", range)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn range_request_returns_206_with_content_range() {
    let r = Registry::start();
    let data = bytes(4, 100);
    let digest = r.push_blob(REPO, &data).await;
    let resp = get_range(&r, &digest, "bytes=10-19").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 10-19/100");
    assert_eq!(header(&resp, "content-length"), "10");
    assert_eq!(body(resp).await, &data[10..20]);
}

#[tokio::test]
async fn open_ended_range_returns_the_rest() {
    let r = Registry::start();
    let data = bytes(5, 100);
    let digest = r.push_blob(REPO, &data).await;
    let resp = get_range(&r, &digest, "bytes=90-").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 90-99/100");
    assert_eq!(body(resp).await, &data[90..]);
}

#[tokio::test]
async fn suffix_range_returns_the_last_bytes() {
    let r = Registry::start();
    let data = bytes(6, 100);
    let digest = r.push_blob(REPO, &data).await;
    let resp = get_range(&r, &digest, "bytes=-7").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 93-99/100");
    assert_eq!(body(resp).await, &data[93..]);
    // A suffix longer than the blob selects all of it.
    let resp = get_range(&r, &digest, "bytes=-500").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 0-99/100");
    assert_eq!(body(resp).await, data);
}

#[tokio::test]
async fn range_past_the_end_is_clamped() {
    let r = Registry::start();
    let data = bytes(7, 100);
    let digest = r.push_blob(REPO, &data).await;
    let resp = get_range(&r, &digest, "bytes=95-1000").await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 95-99/100");
    assert_eq!(body(resp).await, &data[95..]);
}

#[tokio::test]
async fn unsatisfiable_range_is_416_with_content_range_star() {
    let r = Registry::start();
    let data = bytes(8, 100);
    let digest = r.push_blob(REPO, &data).await;
    for range in ["bytes=100-", "bytes=150-200", "bytes=-0"] {
        let resp = get_range(&r, &digest, range).await;
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(&resp, "content-range"), "bytes */100", "{range}");
    }
}

#[tokio::test]
async fn range_in_an_unknown_unit_is_ignored() {
    // RFC 9110 §14.2: a server MUST ignore a Range header with a unit it does not understand.
    let r = Registry::start();
    let data = bytes(9, 50);
    let digest = r.push_blob(REPO, &data).await;
    let resp = get_range(&r, &digest, "items=0-4").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await, data);
}

#[tokio::test]
async fn blob_responses_advertise_byte_ranges() {
    let r = Registry::start();
    let digest = r.push_blob(REPO, b"ranged").await;
    let resp = r.head(&format!("/v2/{REPO}/blobs/{digest}")).await;
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
}

// --- Deleting blobs (content management) ---

#[tokio::test]
async fn delete_blob_is_202_and_then_404() {
    let r = Registry::start();
    let digest = r.push_blob(REPO, b"to delete").await;
    let path = format!("/v2/{REPO}/blobs/{digest}");
    let resp = r.delete(&path).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_error(r.get(&path).await, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    assert_eq!(r.head(&path).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_unknown_blob_is_404_blob_unknown() {
    let r = Registry::start();
    let digest = r.push_blob(REPO, b"once").await;
    let path = format!("/v2/{REPO}/blobs/{digest}");
    assert_eq!(r.delete(&path).await.status(), StatusCode::ACCEPTED);
    assert_error(r.delete(&path).await, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    let never = Digest::sha256_of(b"never");
    let resp = r.delete(&format!("/v2/{REPO}/blobs/{never}")).await;
    assert_error(resp, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn delete_blob_with_malformed_digest_is_400() {
    let r = Registry::start();
    r.push_blob(REPO, b"x").await;
    let resp = r.delete(&format!("/v2/{REPO}/blobs/sha256:nothex")).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn delete_blob_in_one_repository_leaves_it_in_another() {
    let r = Registry::start();
    let data = b"shared bytes";
    let digest = r.push_blob("team/a", data).await;
    r.push_blob("team/b", data).await;
    assert_eq!(
        r.delete(&format!("/v2/team/a/blobs/{digest}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        r.get(&format!("/v2/team/a/blobs/{digest}")).await.status(),
        StatusCode::NOT_FOUND
    );
    let resp = r.get(&format!("/v2/team/b/blobs/{digest}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(body(resp).await, data);
}
