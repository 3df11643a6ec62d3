//! OCI Distribution Spec v1.1 conformance: the referrers API — `OCI-Subject` on push, the
//! listing's descriptors (`artifactType`, annotations), the `artifactType` filter with
//! `OCI-Filters-Applied`, the empty index, and removal with the referrer.

mod common;

use common::*;

const SBOM: &str = "application/vnd.example.sbom.v1";
const SIGNATURE: &str = "application/vnd.example.signature.v1";

/// The descriptor of a manifest as a `subject`.
fn subject(media_type: &str, manifest: &[u8]) -> Value {
    descriptor(media_type, manifest)
}

/// An artifact manifest (empty config) of `artifact_type` that refers to `subject`.
fn artifact(subject: &Value, artifact_type: &str, note: &str) -> Vec<u8> {
    image_manifest(
        descriptor(OCI_EMPTY, b"{}"),
        &[descriptor(OCI_EMPTY, b"{}")],
        json!({
            "artifactType": artifact_type,
            "subject": subject,
            "annotations": {"org.example.note": note},
        }),
    )
}

/// `GET /v2/<repo>/referrers/<digest>`, filtered to `artifact_type` if given.
async fn referrers(
    r: &Registry,
    repo: &str,
    digest: &Digest,
    artifact_type: Option<&str>,
) -> Response {
    let mut req = r.req(Method::GET, &format!("/v2/{repo}/referrers/{digest}"));
    if let Some(t) = artifact_type {
        req = req.query(&[("artifactType", t)]);
    }
    req.send().await.unwrap()
}

/// Asserts a referrers answer: 200, an OCI index; returns its descriptors.
async fn listing(resp: Response) -> Vec<Value> {
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.url());
    assert_eq!(header(&resp, "content-type"), OCI_INDEX);
    let doc = json_body(resp).await;
    assert_eq!(doc["schemaVersion"], 2);
    assert_eq!(doc["mediaType"], OCI_INDEX);
    doc["manifests"]
        .as_array()
        .expect("a manifests array")
        .clone()
}

fn digests(descriptors: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = descriptors
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn sorted_strings(items: &[&Digest]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|d| d.to_string()).collect();
    v.sort();
    v
}

async fn setup(r: &Registry) -> (Image, Value) {
    let image = r.push_image(REPO, "latest", 1).await;
    r.push_blob(REPO, b"{}").await;
    let subject = subject(OCI_MANIFEST, &image.manifest);
    (image, subject)
}

#[tokio::test]
async fn manifest_with_subject_is_answered_with_oci_subject() {
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    let sbom = artifact(&subject, SBOM, "sbom");
    let digest = Digest::sha256_of(&sbom);
    let resp = r
        .put_manifest(REPO, &digest.to_string(), OCI_MANIFEST, &sbom)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "oci-subject"), image.digest.to_string());
}

#[tokio::test]
async fn index_with_subject_is_answered_with_oci_subject() {
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    let sbom = artifact(&subject, SBOM, "child");
    r.push_manifest(REPO, "child", OCI_MANIFEST, &sbom).await;
    let index = index_manifest(
        &[descriptor(OCI_MANIFEST, &sbom)],
        json!({"subject": subject, "artifactType": "application/vnd.example.bundle"}),
    );
    let resp = r.put_manifest(REPO, "bundle", OCI_INDEX, &index).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "oci-subject"), image.digest.to_string());
}

#[tokio::test]
async fn manifest_without_subject_has_no_oci_subject() {
    let r = Registry::start();
    let image = r.push_image(REPO, "a", 2).await;
    let resp = r
        .put_manifest(REPO, "b", OCI_MANIFEST, &image.manifest)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert!(!has_header(&resp, "oci-subject"));
}

#[tokio::test]
async fn subject_that_does_not_exist_yet_is_accepted() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    // The image the artifact refers to is pushed after it.
    let config = b"{\"later\":true}".to_vec();
    let later = image_manifest(descriptor(OCI_CONFIG, &config), &[], json!({}));
    let later_digest = Digest::sha256_of(&later);
    let sig = artifact(&subject(OCI_MANIFEST, &later), SIGNATURE, "early");
    let resp = r.put_manifest(REPO, "sig", OCI_MANIFEST, &sig).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "oci-subject"), later_digest.to_string());
    let listed = listing(referrers(&r, REPO, &later_digest, None).await).await;
    assert_eq!(digests(&listed), [Digest::sha256_of(&sig).to_string()]);
    // Pushing the subject afterwards changes nothing.
    r.push_blob(REPO, &config).await;
    r.push_manifest(REPO, "later", OCI_MANIFEST, &later).await;
    let listed = listing(referrers(&r, REPO, &later_digest, None).await).await;
    assert_eq!(digests(&listed), [Digest::sha256_of(&sig).to_string()]);
}

#[tokio::test]
async fn listing_describes_each_referrer() {
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    // An artifact with artifactType.
    let sbom = artifact(&subject, SBOM, "with artifactType");
    r.push_manifest(REPO, "sbom", OCI_MANIFEST, &sbom).await;
    // An image manifest without artifactType: its config's media type stands in.
    let config = b"{\"signed\":1}".to_vec();
    r.push_blob(REPO, &config).await;
    let config_type = "application/vnd.example.config.v1+json";
    let typed_by_config = image_manifest(
        descriptor(config_type, &config),
        &[],
        json!({"subject": subject, "annotations": {"org.example.note": "config type"}}),
    );
    r.push_manifest(REPO, "cfg", OCI_MANIFEST, &typed_by_config)
        .await;
    // An index without artifactType: the descriptor has none.
    let index = index_manifest(
        &[descriptor(OCI_MANIFEST, &sbom)],
        json!({"subject": subject, "annotations": {"org.example.note": "index", "b": "2"}}),
    );
    r.push_manifest(REPO, "idx", OCI_INDEX, &index).await;

    let listed = listing(referrers(&r, REPO, &image.digest, None).await).await;
    assert_eq!(listed.len(), 3);
    let find = |m: &[u8]| {
        let d = Digest::sha256_of(m).to_string();
        listed
            .iter()
            .find(|x| x["digest"] == d)
            .unwrap_or_else(|| panic!("{d} listed"))
            .clone()
    };
    let d = find(&sbom);
    assert_eq!(d["mediaType"], OCI_MANIFEST);
    assert_eq!(d["size"], sbom.len());
    assert_eq!(d["artifactType"], SBOM);
    assert_eq!(
        d["annotations"],
        json!({"org.example.note": "with artifactType"})
    );
    let d = find(&typed_by_config);
    assert_eq!(d["size"], typed_by_config.len());
    assert_eq!(d["artifactType"], config_type);
    assert_eq!(d["annotations"], json!({"org.example.note": "config type"}));
    let d = find(&index);
    assert_eq!(d["mediaType"], OCI_INDEX);
    assert_eq!(d["size"], index.len());
    assert!(
        d.get("artifactType").is_none(),
        "an index without artifactType has none: {d}"
    );
    assert_eq!(
        d["annotations"],
        json!({"org.example.note": "index", "b": "2"})
    );
}

#[tokio::test]
async fn artifact_type_filter_is_applied_and_announced() {
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    let sbom_a = artifact(&subject, SBOM, "a");
    let sbom_b = artifact(&subject, SBOM, "b");
    let sig = artifact(&subject, SIGNATURE, "c");
    for (tag, m) in [("a", &sbom_a), ("b", &sbom_b), ("c", &sig)] {
        r.push_manifest(REPO, tag, OCI_MANIFEST, m).await;
    }
    let resp = referrers(&r, REPO, &image.digest, Some(SBOM)).await;
    assert_eq!(header(&resp, "oci-filters-applied"), "artifactType");
    let listed = listing(resp).await;
    let expected = [&Digest::sha256_of(&sbom_a), &Digest::sha256_of(&sbom_b)];
    assert_eq!(digests(&listed), sorted_strings(&expected));
    assert!(listed.iter().all(|d| d["artifactType"] == SBOM));

    let resp = referrers(&r, REPO, &image.digest, Some("application/vnd.none")).await;
    assert_eq!(header(&resp, "oci-filters-applied"), "artifactType");
    assert!(listing(resp).await.is_empty());

    let resp = referrers(&r, REPO, &image.digest, None).await;
    assert!(
        !has_header(&resp, "oci-filters-applied"),
        "no filter asked, none applied"
    );
    assert_eq!(listing(resp).await.len(), 3);
}

#[tokio::test]
async fn empty_artifact_type_counts_as_missing() {
    // "If the artifactType is empty or missing in the image manifest, the value of
    // artifactType MUST be set to the config descriptor mediaType value" (and omitted for
    // an index).
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    let config = b"{\"e\":1}".to_vec();
    r.push_blob(REPO, &config).await;
    let config_type = "application/vnd.example.config.v1+json";
    let m = image_manifest(
        descriptor(config_type, &config),
        &[],
        json!({"artifactType": "", "subject": subject}),
    );
    r.push_manifest(REPO, "m", OCI_MANIFEST, &m).await;
    let index = index_manifest(&[], json!({"artifactType": "", "subject": subject}));
    r.push_manifest(REPO, "i", OCI_INDEX, &index).await;
    let listed = listing(referrers(&r, REPO, &image.digest, None).await).await;
    assert_eq!(listed.len(), 2);
    for d in listed {
        if d["mediaType"] == OCI_MANIFEST {
            assert_eq!(d["artifactType"], config_type);
        } else {
            assert!(d.get("artifactType").is_none(), "{d}");
        }
    }
}

#[tokio::test]
async fn filter_matches_the_config_media_type_stand_in() {
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    let config = b"{\"c\":2}".to_vec();
    r.push_blob(REPO, &config).await;
    let config_type = "application/vnd.example.config.v1+json";
    let m = image_manifest(
        descriptor(config_type, &config),
        &[],
        json!({"subject": subject}),
    );
    r.push_manifest(REPO, "m", OCI_MANIFEST, &m).await;
    let resp = referrers(&r, REPO, &image.digest, Some(config_type)).await;
    assert_eq!(
        digests(&listing(resp).await),
        [Digest::sha256_of(&m).to_string()]
    );
}

#[tokio::test]
async fn no_referrers_is_an_empty_index() {
    let r = Registry::start();
    let (image, _) = setup(&r).await;
    assert!(
        listing(referrers(&r, REPO, &image.digest, None).await)
            .await
            .is_empty()
    );
    let unknown = Digest::sha256_of(b"no such manifest");
    assert!(
        listing(referrers(&r, REPO, &unknown, None).await)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn referrers_in_an_unknown_repository_are_an_empty_index_not_404() {
    // "If the registry supports the referrers API, the registry MUST NOT return a 404".
    let r = Registry::start();
    let digest = Digest::sha256_of(b"anything");
    assert!(
        listing(referrers(&r, "no/such/repo", &digest, None).await)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn malformed_digest_is_400() {
    let r = Registry::start();
    setup(&r).await;
    for bad in ["sha256:abc", "latest", "sha256:ZZZZ"] {
        let resp = r.get(&format!("/v2/{REPO}/referrers/{bad}")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn deleted_referrer_leaves_the_listing() {
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    let keep = artifact(&subject, SBOM, "keep");
    let drop = artifact(&subject, SIGNATURE, "drop");
    r.push_manifest(REPO, "keep", OCI_MANIFEST, &keep).await;
    let drop_digest = r.push_manifest(REPO, "drop", OCI_MANIFEST, &drop).await;
    assert_eq!(
        listing(referrers(&r, REPO, &image.digest, None).await)
            .await
            .len(),
        2
    );
    let resp = r
        .delete(&format!("/v2/{REPO}/manifests/{drop_digest}"))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let listed = listing(referrers(&r, REPO, &image.digest, None).await).await;
    assert_eq!(digests(&listed), [Digest::sha256_of(&keep).to_string()]);
}

#[tokio::test]
async fn referrers_are_scoped_to_their_repository() {
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    r.push_blob("other/repo", b"{}").await;
    let sig = artifact(&subject, SIGNATURE, "elsewhere");
    r.push_manifest("other/repo", "sig", OCI_MANIFEST, &sig)
        .await;
    assert!(
        listing(referrers(&r, REPO, &image.digest, None).await)
            .await
            .is_empty()
    );
    let listed = listing(referrers(&r, "other/repo", &image.digest, None).await).await;
    assert_eq!(digests(&listed), [Digest::sha256_of(&sig).to_string()]);
}

#[tokio::test]
async fn subject_addressed_by_sha512_is_listed_under_that_digest() {
    let r = Registry::start();
    r.push_blob(REPO, b"{}").await;
    let target = image_manifest(descriptor(OCI_CONFIG, b"{}"), &[], json!({}));
    let digest = sha512_of(&target);
    r.push_manifest(REPO, &digest.to_string(), OCI_MANIFEST, &target)
        .await;
    let mut subject = descriptor(OCI_MANIFEST, &target);
    subject["digest"] = json!(digest.to_string());
    let sig = artifact(&subject, SIGNATURE, "sha512");
    let resp = r.put_manifest(REPO, "sig", OCI_MANIFEST, &sig).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "oci-subject"), digest.to_string());
    let listed = listing(referrers(&r, REPO, &digest, None).await).await;
    assert_eq!(digests(&listed), [Digest::sha256_of(&sig).to_string()]);
}

#[tokio::test]
async fn referrer_descriptor_matches_the_bytes_as_pushed() {
    let r = Registry::start();
    let (image, subject) = setup(&r).await;
    let compact = artifact(&subject, SBOM, "spaced");
    let value: Value = serde_json::from_slice(&compact).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    r.push_manifest(REPO, "pretty", OCI_MANIFEST, &pretty).await;
    let listed = listing(referrers(&r, REPO, &image.digest, None).await).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["digest"], Digest::sha256_of(&pretty).to_string());
    assert_eq!(listed[0]["size"], pretty.len());
}
