//! OCI Distribution Spec v1.1 conformance: error responses. Every 4xx answer of the `/v2` API
//! is the spec's JSON document, `{"errors":[{"code":…,"message":…}]}`, with a code from the
//! spec's list; unsupported methods are 405 `UNSUPPORTED`.

mod common;

use common::*;

/// Asserts the error document's shape whatever the code, and returns the first code.
async fn error_code(resp: Response) -> String {
    let status = resp.status();
    let url = resp.url().to_string();
    assert!(status.is_client_error(), "{url}: {status}");
    assert_eq!(header(&resp, "content-type"), "application/json", "{url}");
    let doc = json_body(resp).await;
    let errors = doc["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{url}: {doc}"));
    assert!(!errors.is_empty(), "{url}: {doc}");
    for e in errors {
        let code = e["code"].as_str().unwrap_or_else(|| panic!("{url}: {doc}"));
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
            "{url}: a code has only uppercase letters and underscores: {code}"
        );
        assert!(
            SPEC_ERROR_CODES.contains(&code),
            "{url}: {code} is not a spec code"
        );
        assert!(e["message"].is_string(), "{url}: {doc}");
    }
    errors[0]["code"].as_str().unwrap().to_owned()
}

/// A request: method, path, headers and body.
type Request = (Method, String, Vec<(&'static str, &'static str)>, Vec<u8>);

#[tokio::test]
async fn every_error_is_a_spec_error_document() {
    let r = Registry::start();
    let image = r.push_image(REPO, "latest", 1).await;
    let location = r.start_upload(REPO).await;
    let missing = Digest::sha256_of(b"missing");
    let requests: Vec<Request> = vec![
        (
            Method::GET,
            format!("/v2/{REPO}/blobs/{missing}"),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            format!("/v2/{REPO}/blobs/sha256:bad"),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            format!("/v2/{REPO}/blobs/{}", image.digest),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            format!("/v2/{REPO}/manifests/missing"),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            "/v2/nope/manifests/latest".into(),
            vec![],
            vec![],
        ),
        (Method::GET, "/v2/nope/tags/list".into(), vec![], vec![]),
        (Method::GET, "/v2/BAD/tags/list".into(), vec![], vec![]),
        (
            Method::GET,
            format!("/v2/{REPO}/tags/list?n=x"),
            vec![],
            vec![],
        ),
        (
            Method::PUT,
            format!("/v2/{REPO}/manifests/sha256:totallywrong"),
            vec![("content-type", OCI_MANIFEST)],
            b"{}".to_vec(),
        ),
        (
            Method::PUT,
            format!("/v2/{REPO}/manifests/x"),
            vec![("content-type", OCI_MANIFEST)],
            b"nope".to_vec(),
        ),
        (
            Method::DELETE,
            format!("/v2/{REPO}/manifests/missing"),
            vec![],
            vec![],
        ),
        (
            Method::DELETE,
            format!("/v2/{REPO}/blobs/{missing}"),
            vec![],
            vec![],
        ),
        (
            Method::POST,
            format!("/v2/{REPO}/blobs/uploads/?digest={missing}"),
            vec![],
            b"x".to_vec(),
        ),
        (
            Method::PATCH,
            location.clone(),
            vec![("content-range", "5-9")],
            b"abcde".to_vec(),
        ),
        (
            Method::PATCH,
            location.clone(),
            vec![("content-range", "x")],
            b"abcde".to_vec(),
        ),
        (Method::PUT, location.clone(), vec![], vec![]),
        (
            Method::GET,
            format!("/v2/{REPO}/blobs/uploads/unknown"),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            format!("/v2/{REPO}/referrers/sha256:bad"),
            vec![],
            vec![],
        ),
        (
            Method::POST,
            format!("/v2/{REPO}/manifests/latest"),
            vec![],
            vec![],
        ),
        (
            Method::GET,
            format!("/v2/{REPO}/no/such/route"),
            vec![],
            vec![],
        ),
        // Wrong credentials (admin:wrong-password) in place of the client's own: 401.
        (
            Method::GET,
            format!("/v2/{REPO}/tags/list"),
            vec![("authorization", "Basic YWRtaW46d3JvbmctcGFzc3dvcmQ=")],
            vec![],
        ),
    ];
    for (method, path, headers, body) in requests {
        let mut req = r.req(method, &path).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if path.contains(&image.digest.to_string()) {
            req = req.header("range", "bytes=100000-");
        }
        error_code(req.send().await.unwrap()).await;
    }
}

#[tokio::test]
async fn unsupported_methods_are_405_unsupported() {
    let r = Registry::start();
    let image = r.push_image(REPO, "latest", 2).await;
    let cases = [
        (Method::POST, format!("/v2/{REPO}/manifests/latest")),
        (Method::PATCH, format!("/v2/{REPO}/manifests/latest")),
        (Method::PUT, format!("/v2/{REPO}/blobs/{}", image.digest)),
        (Method::DELETE, format!("/v2/{REPO}/tags/list")),
        (Method::PUT, "/v2/_catalog".to_owned()),
        (Method::DELETE, "/v2/".to_owned()),
        (
            Method::DELETE,
            format!("/v2/{REPO}/referrers/{}", image.digest),
        ),
    ];
    for (method, path) in cases {
        let resp = r.send(method.clone(), &path).await;
        assert_error(resp, StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED").await;
    }
}

#[tokio::test]
async fn unsupported_digest_algorithm_is_refused() {
    let r = Registry::start();
    r.push_blob(REPO, b"x").await;
    let md5 = "md5:d41d8cd98f00b204e9800998ecf8427e";
    let resp = r.get(&format!("/v2/{REPO}/blobs/{md5}")).await;
    assert_eq!(error_code(resp).await, "UNSUPPORTED");
    let resp = r
        .req(
            Method::POST,
            &format!("/v2/{REPO}/blobs/uploads/?digest={md5}"),
        )
        .body(b"".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await, "UNSUPPORTED");
}

/// A request head longer than a connection's 64 KiB read buffer is refused by the HTTP
/// layer, before the registry sees it: HTTP's own 431 (no spec document: the request
/// never became a registry request), and the server goes on serving.
#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = Registry::start();
    let request = format!(
        "GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Padding: {}\r\n\r\n",
        r.host(),
        "a".repeat(70 * 1024)
    );
    let mut conn = tokio::net::TcpStream::connect(r.host()).await.unwrap();
    // The server stops reading at its limit, answers and closes; closing with our unread
    // bytes in its buffer resets the connection, which may cut the write or the answer.
    let _ = conn.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    // (A server that took the request would keep the connection open after answering.)
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "refused, not served: {answer}"
    );
    let within = r
        .req(Method::GET, "/v2/")
        .header("X-Padding", "a".repeat(60 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(
        within.status(),
        StatusCode::OK,
        "a head within the limit reaches the registry"
    );
}
