//! OCI Distribution Spec v1.1 conformance: manifests — push, pull and delete by tag and by
//! digest for every supported type, artifacts, byte-for-byte storage, content negotiation,
//! references that must exist, size limits, and what a repository must not see of another.

mod common;

use common::*;

const EMPTY_CONFIG_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

async fn get_accepting(r: &Registry, path: &str, accept: &[&str]) -> Response {
    let mut req = r.req(Method::GET, path);
    for a in accept {
        req = req.header("accept", *a);
    }
    req.send().await.unwrap()
}

/// Asserts a manifest GET: 200, its type, digest, length and exact bytes.
async fn assert_manifest(resp: Response, media_type: &str, content: &[u8]) {
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.url());
    assert_eq!(header(&resp, "content-type"), media_type);
    assert_eq!(
        header(&resp, "docker-content-digest"),
        Digest::sha256_of(content).to_string()
    );
    assert_eq!(header(&resp, "content-length"), content.len().to_string());
    assert_eq!(body(resp).await, content, "stored byte for byte");
}

/// A Docker schema 2 image over fresh blobs made from `seed`.
async fn push_docker_image(r: &Registry, reference: &str, seed: u8) -> (Vec<u8>, Digest) {
    let config = format!("{{\"docker\":{seed}}}").into_bytes();
    let layer = bytes(seed, 200);
    r.push_blob(REPO, &config).await;
    r.push_blob(REPO, &layer).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, &config),
        "layers": [descriptor(DOCKER_LAYER, &layer)],
    }))
    .unwrap();
    let digest = r
        .push_manifest(REPO, reference, DOCKER_MANIFEST, &manifest)
        .await;
    (manifest, digest)
}

fn child(media_type: &str, manifest: &[u8], arch: &str) -> Value {
    let mut d = descriptor(media_type, manifest);
    d["platform"] = json!({"os": "linux", "architecture": arch});
    d
}

// --- Push and pull ---

#[tokio::test]
async fn put_manifest_by_tag_is_201_with_location_and_digest() {
    let r = Registry::start();
    let config = b"{}".to_vec();
    r.push_blob(REPO, &config).await;
    let manifest = image_manifest(descriptor(OCI_CONFIG, &config), &[], json!({}));
    let digest = Digest::sha256_of(&manifest);
    let resp = r.put_manifest(REPO, "v1", OCI_MANIFEST, &manifest).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    let location = header(&resp, "location").to_owned();
    assert_eq!(location, format!("/v2/{REPO}/manifests/{digest}"));
    assert_manifest(r.get(&location).await, OCI_MANIFEST, &manifest).await;
}

#[tokio::test]
async fn get_manifest_by_tag_and_by_digest() {
    let r = Registry::start();
    let image = r.push_image(REPO, "latest", 1).await;
    for reference in ["latest".to_owned(), image.digest.to_string()] {
        let resp = r.get(&format!("/v2/{REPO}/manifests/{reference}")).await;
        assert_manifest(resp, OCI_MANIFEST, &image.manifest).await;
    }
}

#[tokio::test]
async fn head_manifest_is_200_with_digest_length_and_no_body() {
    let r = Registry::start();
    let image = r.push_image(REPO, "latest", 2).await;
    for reference in ["latest".to_owned(), image.digest.to_string()] {
        let resp = r.head(&format!("/v2/{REPO}/manifests/{reference}")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header(&resp, "docker-content-digest"),
            image.digest.to_string()
        );
        assert_eq!(
            header(&resp, "content-length"),
            image.manifest.len().to_string()
        );
        assert_eq!(header(&resp, "content-type"), OCI_MANIFEST);
        assert!(body(resp).await.is_empty());
    }
}

#[tokio::test]
async fn put_manifest_by_digest_is_201_and_leaves_no_tag() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(descriptor(OCI_CONFIG, b"{}"), &[], json!({}));
    let digest = Digest::sha256_of(&manifest);
    let resp = r
        .put_manifest(REPO, &digest.to_string(), OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/{REPO}/manifests/{digest}")
    );
    assert_manifest(
        r.get(&format!("/v2/{REPO}/manifests/{digest}")).await,
        OCI_MANIFEST,
        &manifest,
    )
    .await;
    let tags = json_body(r.get(&format!("/v2/{REPO}/tags/list")).await).await;
    assert_eq!(tags["tags"], json!([]));
}

#[tokio::test]
async fn put_manifest_by_sha512_digest_keeps_that_digest() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(descriptor(OCI_CONFIG, b"{}"), &[], json!({}));
    let digest = sha512_of(&manifest);
    let resp = r
        .put_manifest(REPO, &digest.to_string(), OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(
        header(&resp, "docker-content-digest"),
        digest.to_string(),
        "the digest header equals the digest the client gave"
    );
    let resp = r.get(&format!("/v2/{REPO}/manifests/{digest}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());
    assert_eq!(body(resp).await, manifest);
}

#[tokio::test]
async fn image_manifest_without_layers_is_accepted() {
    let r = Registry::start();
    r.push_blob(REPO, b"{\"a\":1}").await;
    let manifest = image_manifest(descriptor(OCI_CONFIG, b"{\"a\":1}"), &[], json!({}));
    r.push_manifest(REPO, "nolayers", OCI_MANIFEST, &manifest)
        .await;
    assert_manifest(
        r.get(&format!("/v2/{REPO}/manifests/nolayers")).await,
        OCI_MANIFEST,
        &manifest,
    )
    .await;
}

#[tokio::test]
async fn oci_index_can_be_pushed_and_pulled() {
    let r = Registry::start();
    let amd = r.push_image(REPO, "amd64", 3).await;
    let arm = r.push_image(REPO, "arm64", 4).await;
    let index = index_manifest(
        &[
            child(OCI_MANIFEST, &amd.manifest, "amd64"),
            child(OCI_MANIFEST, &arm.manifest, "arm64"),
        ],
        json!({}),
    );
    let digest = r.push_manifest(REPO, "multi", OCI_INDEX, &index).await;
    for reference in ["multi".to_owned(), digest.to_string()] {
        let resp = r.get(&format!("/v2/{REPO}/manifests/{reference}")).await;
        assert_manifest(resp, OCI_INDEX, &index).await;
    }
}

#[tokio::test]
async fn docker_schema2_manifest_can_be_pushed_and_pulled() {
    let r = Registry::start();
    let (manifest, digest) = push_docker_image(&r, "docker", 5).await;
    for reference in ["docker".to_owned(), digest.to_string()] {
        let path = format!("/v2/{REPO}/manifests/{reference}");
        let resp = get_accepting(&r, &path, &[DOCKER_MANIFEST]).await;
        assert_manifest(resp, DOCKER_MANIFEST, &manifest).await;
    }
}

#[tokio::test]
async fn docker_manifest_list_can_be_pushed_and_pulled() {
    let r = Registry::start();
    let (amd, _) = push_docker_image(&r, "amd64", 6).await;
    let (arm, _) = push_docker_image(&r, "arm64", 7).await;
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [child(DOCKER_MANIFEST, &amd, "amd64"), child(DOCKER_MANIFEST, &arm, "arm64")],
    }))
    .unwrap();
    let digest = r
        .push_manifest(REPO, "list", DOCKER_MANIFEST_LIST, &list)
        .await;
    for reference in ["list".to_owned(), digest.to_string()] {
        let path = format!("/v2/{REPO}/manifests/{reference}");
        let resp = get_accepting(&r, &path, &[DOCKER_MANIFEST_LIST, DOCKER_MANIFEST]).await;
        assert_manifest(resp, DOCKER_MANIFEST_LIST, &list).await;
    }
}

#[tokio::test]
async fn artifact_with_artifact_type_and_the_empty_config_is_accepted() {
    let r = Registry::start();
    let empty = r.push_blob(REPO, b"{}").await;
    assert_eq!(empty.to_string(), EMPTY_CONFIG_DIGEST);
    let payload = b"{\"sbom\":true}";
    r.push_blob(REPO, payload).await;
    let manifest = image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        &[descriptor("application/vnd.example.sbom.v1+json", payload)],
        json!({"artifactType": "application/vnd.example.sbom.v1"}),
    );
    r.push_manifest(REPO, "sbom", OCI_MANIFEST, &manifest).await;
    assert_manifest(
        r.get(&format!("/v2/{REPO}/manifests/sbom")).await,
        OCI_MANIFEST,
        &manifest,
    )
    .await;
}

#[tokio::test]
async fn artifact_whose_only_layer_is_the_empty_descriptor_is_accepted() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        &[descriptor(OCI_EMPTY, b"{}")],
        json!({"artifactType": "application/vnd.example.empty"}),
    );
    r.push_manifest(REPO, "empty", OCI_MANIFEST, &manifest)
        .await;
}

#[tokio::test]
async fn artifact_with_the_empty_config_but_no_artifact_type_is_manifest_invalid() {
    // Image spec 1.1: artifactType MUST be set when config.mediaType is the empty type.
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(descriptor(OCI_EMPTY, b"{}"), &[], json!({}));
    let resp = r
        .put_manifest(REPO, "untyped", OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
}

#[tokio::test]
async fn manifest_is_stored_byte_for_byte() {
    let r = Registry::start();
    let config = b"{\"odd\":1}";
    r.push_blob(REPO, config).await;
    // Unusual key order, indentation, spacing, escapes and a trailing newline.
    let manifest = format!(
        "{{\n\t\"layers\" : [ ],\n    \"config\":{{ \"size\":{},\"digest\":\"{}\",\n\"mediaType\":\"{OCI_CONFIG}\"}},\
         \"annotations\":{{\"note\":\"caf\\u00e9 \\/ \u{2603}\"}},\n\"schemaVersion\" :2 ,\"mediaType\":\"{OCI_MANIFEST}\"   }}\n\n",
        config.len(),
        Digest::sha256_of(config),
    )
    .into_bytes();
    let digest = r.push_manifest(REPO, "odd", OCI_MANIFEST, &manifest).await;
    assert_eq!(digest, Digest::sha256_of(&manifest));
    for reference in ["odd".to_owned(), digest.to_string()] {
        let resp = r.get(&format!("/v2/{REPO}/manifests/{reference}")).await;
        assert_manifest(resp, OCI_MANIFEST, &manifest).await;
    }
}

#[tokio::test]
async fn pushing_the_same_manifest_twice_is_201_both_times() {
    let r = Registry::start();
    let image = r.push_image(REPO, "a", 8).await;
    r.push_manifest(REPO, "a", OCI_MANIFEST, &image.manifest)
        .await;
    r.push_manifest(
        REPO,
        &image.digest.to_string(),
        OCI_MANIFEST,
        &image.manifest,
    )
    .await;
}

#[tokio::test]
async fn content_type_parameters_are_ignored() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(descriptor(OCI_CONFIG, b"{}"), &[], json!({}));
    let with_param = format!("{OCI_MANIFEST}; charset=utf-8");
    let resp = r.put_manifest(REPO, "params", &with_param, &manifest).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = r.get(&format!("/v2/{REPO}/manifests/params")).await;
    assert_eq!(
        header(&resp, "content-type"),
        OCI_MANIFEST,
        "no parameters on the way out"
    );
}

#[tokio::test]
async fn retagging_moves_the_tag() {
    let r = Registry::start();
    let first = r.push_image(REPO, "latest", 9).await;
    let second = r.push_image(REPO, "latest", 10).await;
    let resp = r.get(&format!("/v2/{REPO}/manifests/latest")).await;
    assert_manifest(resp, OCI_MANIFEST, &second.manifest).await;
    let resp = r
        .get(&format!("/v2/{REPO}/manifests/{}", first.digest))
        .await;
    assert_manifest(resp, OCI_MANIFEST, &first.manifest).await;
}

#[tokio::test]
async fn tags_of_the_longest_allowed_form_are_accepted() {
    let r = Registry::start();
    let image = r.push_image(REPO, "seed", 11).await;
    let longest = format!("_{}", "a.b-C_9".repeat(19)[..127].to_owned());
    assert_eq!(longest.len(), 128);
    r.push_manifest(REPO, &longest, OCI_MANIFEST, &image.manifest)
        .await;
    let resp = r.get(&format!("/v2/{REPO}/manifests/{longest}")).await;
    assert_manifest(resp, OCI_MANIFEST, &image.manifest).await;
}

// --- Content negotiation ---

#[tokio::test]
async fn accept_header_selects_among_stored_types() {
    let r = Registry::start();
    let image = r.push_image(REPO, "latest", 12).await;
    let path = format!("/v2/{REPO}/manifests/latest");
    let served: [&[&str]; 6] = [
        &[],
        &[OCI_MANIFEST],
        &["*/*"],
        &["application/json"],
        &[
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json;q=0.5",
        ],
        &[DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST],
    ];
    for accept in served {
        let resp = get_accepting(&r, &path, accept).await;
        assert_manifest(resp, OCI_MANIFEST, &image.manifest).await;
    }
}

#[tokio::test]
async fn accept_header_excluding_the_stored_type_is_404_manifest_unknown() {
    let r = Registry::start();
    r.push_image(REPO, "oci", 13).await;
    push_docker_image(&r, "docker", 14).await;
    let cases = [
        ("oci", &[DOCKER_MANIFEST][..]),
        ("oci", &[OCI_INDEX, DOCKER_MANIFEST_LIST][..]),
        ("docker", &[OCI_MANIFEST][..]),
    ];
    for (tag, accept) in cases {
        let resp = get_accepting(&r, &format!("/v2/{REPO}/manifests/{tag}"), accept).await;
        assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    }
}

#[tokio::test]
async fn every_manifest_response_carries_docker_content_digest() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(descriptor(OCI_CONFIG, b"{}"), &[], json!({}));
    let digest = Digest::sha256_of(&manifest).to_string();
    let by_tag = r.put_manifest(REPO, "t", OCI_MANIFEST, &manifest).await;
    let by_digest = r.put_manifest(REPO, &digest, OCI_MANIFEST, &manifest).await;
    let mut responses = vec![by_tag, by_digest];
    for reference in ["t", digest.as_str()] {
        let path = format!("/v2/{REPO}/manifests/{reference}");
        responses.push(r.get(&path).await);
        responses.push(r.head(&path).await);
    }
    for resp in responses {
        assert!(resp.status().is_success(), "{}", resp.url());
        assert_eq!(
            header(&resp, "docker-content-digest"),
            digest,
            "{}",
            resp.url()
        );
    }
}

// --- References that must exist ---

#[tokio::test]
async fn manifest_with_missing_config_is_manifest_blob_unknown() {
    let r = Registry::start();
    let layer = bytes(15, 100);
    r.push_blob(REPO, &layer).await;
    let manifest = image_manifest(
        descriptor(OCI_CONFIG, b"{\"never\":\"pushed\"}"),
        &[descriptor(OCI_LAYER, &layer)],
        json!({}),
    );
    let resp = r
        .put_manifest(REPO, "broken", OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
    let resp = r.get(&format!("/v2/{REPO}/manifests/broken")).await;
    assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn manifest_with_missing_layer_is_manifest_blob_unknown() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(
        descriptor(OCI_CONFIG, b"{}"),
        &[descriptor(OCI_LAYER, b"never pushed")],
        json!({}),
    );
    let resp = r
        .put_manifest(REPO, "broken", OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
    let digest = Digest::sha256_of(&manifest);
    let resp = r.head(&format!("/v2/{REPO}/manifests/{digest}")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn index_with_missing_child_is_manifest_blob_unknown() {
    let r = Registry::start();
    let present = r.push_image(REPO, "present", 16).await;
    let absent = image_manifest(descriptor(OCI_CONFIG, b"{\"absent\":1}"), &[], json!({}));
    let index = index_manifest(
        &[
            child(OCI_MANIFEST, &present.manifest, "amd64"),
            child(OCI_MANIFEST, &absent, "arm64"),
        ],
        json!({}),
    );
    let resp = r.put_manifest(REPO, "multi", OCI_INDEX, &index).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
    let resp = r.get(&format!("/v2/{REPO}/manifests/multi")).await;
    assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
}

// --- Invalid manifests ---

#[tokio::test]
async fn invalid_json_is_manifest_invalid() {
    let r = Registry::start();
    let resp = r
        .put_manifest(REPO, "bad", OCI_MANIFEST, b"{not json")
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
}

#[tokio::test]
async fn json_that_is_not_a_manifest_is_manifest_invalid() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let config = descriptor(OCI_CONFIG, b"{}");
    let cases = [
        json!([1, 2, 3]),
        json!({"schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": config, "layers": []}),
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}),
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": OCI_CONFIG, "digest": "sha256:short", "size": 2}, "layers": []}),
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "config": config, "layers": []}),
    ];
    for case in cases {
        let resp = r
            .put_manifest(
                REPO,
                "bad",
                OCI_MANIFEST,
                &serde_json::to_vec(&case).unwrap(),
            )
            .await;
        assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    }
}

#[tokio::test]
async fn content_type_contradicting_the_media_type_field_is_manifest_invalid() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(descriptor(OCI_CONFIG, b"{}"), &[], json!({}));
    let resp = r
        .put_manifest(REPO, "bad", DOCKER_MANIFEST, &manifest)
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
}

#[tokio::test]
async fn digest_reference_not_matching_the_body_is_digest_invalid() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let manifest = image_manifest(descriptor(OCI_CONFIG, b"{}"), &[], json!({}));
    let wrong = Digest::sha256_of(b"some other manifest");
    let resp = r
        .put_manifest(REPO, &wrong.to_string(), OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    for digest in [wrong, Digest::sha256_of(&manifest)] {
        let resp = r.head(&format!("/v2/{REPO}/manifests/{digest}")).await;
        assert_eq!(
            resp.status(),
            StatusCode::NOT_FOUND,
            "nothing stored under {digest}"
        );
    }
}

#[tokio::test]
async fn malformed_references_are_400() {
    let r = Registry::start();
    let image = r.push_image(REPO, "ok", 17).await;
    let too_long = "a".repeat(129);
    for tag in ["-leading-dash", ".dot", too_long.as_str()] {
        let resp = r
            .put_manifest(REPO, tag, OCI_MANIFEST, &image.manifest)
            .await;
        assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
        let resp = r.get(&format!("/v2/{REPO}/manifests/{tag}")).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_INVALID").await;
    }
    let resp = r
        .get(&format!("/v2/{REPO}/manifests/sha256:totallywrong"))
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
}

// --- Size limits ---

/// An image manifest of exactly `size` bytes, padded with an annotation.
fn manifest_of_size(size: usize) -> Vec<u8> {
    let config = descriptor(OCI_CONFIG, b"{}");
    let base = image_manifest(config.clone(), &[], json!({"annotations": {"pad": ""}})).len();
    let pad = "p".repeat(size - base);
    let m = image_manifest(config, &[], json!({"annotations": {"pad": pad}}));
    assert_eq!(m.len(), size);
    m
}

#[tokio::test]
async fn manifests_up_to_4_mib_are_accepted_and_larger_are_413() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let limit = 4 * 1024 * 1024;
    let at_limit = manifest_of_size(limit);
    let digest = r.push_manifest(REPO, "big", OCI_MANIFEST, &at_limit).await;
    let resp = r.get(&format!("/v2/{REPO}/manifests/{digest}")).await;
    assert_manifest(resp, OCI_MANIFEST, &at_limit).await;

    let over = manifest_of_size(limit + 1);
    let resp = r.put_manifest(REPO, "toobig", OCI_MANIFEST, &over).await;
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID").await;
    let resp = r.get(&format!("/v2/{REPO}/manifests/toobig")).await;
    assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn configured_manifest_limit_applies_with_and_without_content_length() {
    let r = Registry::start_with_env(&[("BULWARK_LIMITS__MAX_MANIFEST_BYTES", "2000")]);
    r.push_blob(REPO, b"{}").await;
    r.push_manifest(REPO, "fits", OCI_MANIFEST, &manifest_of_size(2000))
        .await;
    let over = manifest_of_size(2001);
    let resp = r.put_manifest(REPO, "over", OCI_MANIFEST, &over).await;
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        over.chunks(300).map(|c| Ok(c.to_vec())).collect();
    let resp = r
        .req(Method::PUT, &format!("/v2/{REPO}/manifests/over"))
        .header("content-type", OCI_MANIFEST)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID").await;
}

// --- Missing manifests and repositories ---

#[tokio::test]
async fn unknown_manifest_is_404_manifest_unknown() {
    let r = Registry::start();
    r.push_image(REPO, "latest", 18).await;
    let unknown = Digest::sha256_of(b"no such manifest");
    for reference in ["nope".to_owned(), unknown.to_string()] {
        let path = format!("/v2/{REPO}/manifests/{reference}");
        assert_error(
            r.get(&path).await,
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        )
        .await;
        let resp = r.head(&path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(body(resp).await.is_empty());
    }
}

#[tokio::test]
async fn manifest_in_unknown_repository_is_404_name_unknown() {
    let r = Registry::start();
    let resp = r.get("/v2/no/such/repo/manifests/latest").await;
    assert_error(resp, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    assert_eq!(
        r.head("/v2/no/such/repo/manifests/latest").await.status(),
        StatusCode::NOT_FOUND
    );
}

// --- Isolation between repositories ---

#[tokio::test]
async fn blob_pushed_to_one_repository_is_unknown_in_another() {
    let r = Registry::start();
    let data = bytes(19, 128);
    let digest = r.push_blob("team/a", &data).await;
    r.push_blob("team/b", b"{}").await;
    let path = format!("/v2/team/b/blobs/{digest}");
    assert_error(r.get(&path).await, StatusCode::NOT_FOUND, "BLOB_UNKNOWN").await;
    assert_eq!(r.head(&path).await.status(), StatusCode::NOT_FOUND);
    let manifest = image_manifest(
        descriptor(OCI_CONFIG, b"{}"),
        &[descriptor(OCI_LAYER, &data)],
        json!({}),
    );
    let resp = r
        .put_manifest("team/b", "leak", OCI_MANIFEST, &manifest)
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn manifest_pushed_to_one_repository_is_unknown_in_another() {
    let r = Registry::start();
    let image = r.push_image("team/a", "latest", 20).await;
    r.push_image("team/b", "other", 21).await;
    let resp = r
        .get(&format!("/v2/team/b/manifests/{}", image.digest))
        .await;
    assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let resp = r.get("/v2/team/b/manifests/latest").await;
    assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    let index = index_manifest(&[child(OCI_MANIFEST, &image.manifest, "amd64")], json!({}));
    let resp = r.put_manifest("team/b", "index", OCI_INDEX, &index).await;
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
}

// --- Deleting manifests and tags ---

#[tokio::test]
async fn delete_manifest_by_digest_removes_it_and_its_tags() {
    let r = Registry::start();
    let image = r.push_image(REPO, "latest", 22).await;
    r.push_manifest(REPO, "also", OCI_MANIFEST, &image.manifest)
        .await;
    let by_digest = format!("/v2/{REPO}/manifests/{}", image.digest);
    assert_eq!(r.delete(&by_digest).await.status(), StatusCode::ACCEPTED);
    for path in [
        by_digest.clone(),
        format!("/v2/{REPO}/manifests/latest"),
        format!("/v2/{REPO}/manifests/also"),
    ] {
        assert_error(
            r.get(&path).await,
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        )
        .await;
        assert_eq!(r.head(&path).await.status(), StatusCode::NOT_FOUND);
    }
    assert_error(
        r.delete(&by_digest).await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn delete_tag_removes_only_the_tag() {
    let r = Registry::start();
    let image = r.push_image(REPO, "latest", 23).await;
    r.push_manifest(REPO, "stable", OCI_MANIFEST, &image.manifest)
        .await;
    let tag = format!("/v2/{REPO}/manifests/latest");
    assert_eq!(r.delete(&tag).await.status(), StatusCode::ACCEPTED);
    assert_error(r.get(&tag).await, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
    for reference in ["stable".to_owned(), image.digest.to_string()] {
        let resp = r.get(&format!("/v2/{REPO}/manifests/{reference}")).await;
        assert_manifest(resp, OCI_MANIFEST, &image.manifest).await;
    }
    assert_error(
        r.delete(&tag).await,
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_manifest_leaves_a_tag_that_moved_away() {
    let r = Registry::start();
    let old = r.push_image(REPO, "latest", 25).await;
    let new = r.push_image(REPO, "latest", 26).await;
    let path = format!("/v2/{REPO}/manifests/{}", old.digest);
    assert_eq!(r.delete(&path).await.status(), StatusCode::ACCEPTED);
    let resp = r.get(&format!("/v2/{REPO}/manifests/latest")).await;
    assert_manifest(resp, OCI_MANIFEST, &new.manifest).await;
}

#[tokio::test]
async fn delete_in_unknown_repository_is_404_name_unknown() {
    let r = Registry::start();
    let digest = Digest::sha256_of(b"x");
    for reference in ["latest".to_owned(), digest.to_string()] {
        let resp = r
            .delete(&format!("/v2/no/such/manifests/{reference}"))
            .await;
        assert_error(resp, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
    }
}

#[tokio::test]
async fn deleted_manifest_can_be_pushed_again() {
    let r = Registry::start();
    let image = r.push_image(REPO, "latest", 24).await;
    let path = format!("/v2/{REPO}/manifests/{}", image.digest);
    assert_eq!(r.delete(&path).await.status(), StatusCode::ACCEPTED);
    r.push_manifest(REPO, "latest", OCI_MANIFEST, &image.manifest)
        .await;
    assert_manifest(r.get(&path).await, OCI_MANIFEST, &image.manifest).await;
}
