//! OCI Distribution Spec v1.1 conformance: content discovery — the tag list with `n`/`last`
//! pagination and `Link` headers, the catalog, tag deletion as seen by listings, and
//! repository names (`NAME_UNKNOWN`, `NAME_INVALID`, the length limit).

mod common;

use common::*;

/// Tags in an order unlike their lexical one.
const TAGS: [&str; 10] = [
    "v2", "V1", "latest", "1.0", "10", "9", "_x", "a-b", "a.b", "A",
];

async fn tag_all(r: &Registry, repo: &str, tags: &[&str]) {
    let image = r.push_image(repo, tags[0], 1).await;
    for tag in &tags[1..] {
        r.push_manifest(repo, tag, OCI_MANIFEST, &image.manifest)
            .await;
    }
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

/// The target of a `Link: <url>; rel="next"` header, if present.
fn next_link(resp: &Response) -> Option<String> {
    let link = resp.headers().get("link")?.to_str().expect("ascii");
    assert!(link.ends_with("rel=\"next\""), "RFC 5988 next link: {link}");
    let url = link.strip_prefix('<')?.split_once('>')?.0;
    Some(url.to_owned())
}

/// Follows `Link` headers from `path`, returning every page's items under `key`.
async fn pages(r: &Registry, path: &str, key: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next {
        let resp = r.get(&path).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        next = next_link(&resp);
        out.push(strings(&json_body(resp).await[key]));
        assert!(out.len() < 100, "pagination does not end");
    }
    out
}

async fn tag_list(r: &Registry) -> Vec<String> {
    strings(&json_body(r.get(&format!("/v2/{REPO}/tags/list")).await).await["tags"])
}

// --- Tags ---

#[tokio::test]
async fn tag_list_has_name_and_lexically_ordered_tags() {
    // The spec allows case-insensitive or "ASCIIbetical" (byte) order; Bulwark uses the
    // latter, which is also the order in which `last` positions a page.
    let r = Registry::start();
    tag_all(&r, REPO, &TAGS).await;
    let resp = r.get(&format!("/v2/{REPO}/tags/list")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(header(&resp, "content-type").starts_with("application/json"));
    assert!(!has_header(&resp, "link"), "everything fits in one page");
    let doc = json_body(resp).await;
    assert_eq!(doc["name"], REPO);
    assert_eq!(strings(&doc["tags"]), sorted(&TAGS));
}

#[tokio::test]
async fn n_limits_the_tag_list_and_links_to_the_rest() {
    let r = Registry::start();
    tag_all(&r, REPO, &TAGS).await;
    let resp = r.get(&format!("/v2/{REPO}/tags/list?n=3")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(next_link(&resp).is_some(), "more tags remain");
    let doc = json_body(resp).await;
    assert_eq!(strings(&doc["tags"]), sorted(&TAGS)[..3]);
}

#[tokio::test]
async fn following_link_headers_lists_every_tag_once() {
    let r = Registry::start();
    tag_all(&r, REPO, &TAGS).await;
    let pages = pages(&r, &format!("/v2/{REPO}/tags/list?n=3"), "tags").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 1]);
    assert_eq!(pages.concat(), sorted(&TAGS));
}

#[tokio::test]
async fn last_starts_the_list_after_the_given_tag() {
    let r = Registry::start();
    tag_all(&r, REPO, &TAGS).await;
    let all = sorted(&TAGS);
    let resp = r
        .get(&format!("/v2/{REPO}/tags/list?n=2&last={}", all[3]))
        .await;
    assert_eq!(strings(&json_body(resp).await["tags"]), all[4..6]);
    // Without n: everything after `last`.
    let resp = r
        .get(&format!("/v2/{REPO}/tags/list?last={}", all[6]))
        .await;
    assert_eq!(strings(&json_body(resp).await["tags"]), all[7..]);
    // `last` need not be a tag that exists: it is a position in lexical order.
    let resp = r.get(&format!("/v2/{REPO}/tags/list?last=b")).await;
    let after_b: Vec<String> = all.iter().filter(|t| t.as_str() > "b").cloned().collect();
    assert_eq!(strings(&json_body(resp).await["tags"]), after_b);
    // After the last tag: an empty list.
    let resp = r
        .get(&format!("/v2/{REPO}/tags/list?last={}", all[9]))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!has_header(&resp, "link"));
    assert_eq!(json_body(resp).await["tags"], json!([]));
}

#[tokio::test]
async fn n_zero_returns_an_empty_list_without_link() {
    let r = Registry::start();
    tag_all(&r, REPO, &TAGS).await;
    let resp = r.get(&format!("/v2/{REPO}/tags/list?n=0")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!has_header(&resp, "link"));
    assert_eq!(json_body(resp).await["tags"], json!([]));
}

#[tokio::test]
async fn n_larger_than_the_list_returns_everything_without_link() {
    let r = Registry::start();
    tag_all(&r, REPO, &TAGS).await;
    for n in [10, 11, 1000] {
        let resp = r.get(&format!("/v2/{REPO}/tags/list?n={n}")).await;
        assert!(!has_header(&resp, "link"), "n={n}");
        assert_eq!(strings(&json_body(resp).await["tags"]), sorted(&TAGS));
    }
}

#[tokio::test]
async fn a_shorter_page_than_n_comes_with_a_link() {
    // Fewer than n tags only when the list ends or a Link header says where it goes on.
    let r = Registry::start_with_env(&[("BULWARK_LIMITS__MAX_PAGE", "4")]);
    tag_all(&r, REPO, &TAGS).await;
    let resp = r.get(&format!("/v2/{REPO}/tags/list?n=6")).await;
    assert!(next_link(&resp).is_some());
    let first = strings(&json_body(resp).await["tags"]);
    assert!(!first.is_empty() && first.len() <= 6);
    let pages = pages(&r, &format!("/v2/{REPO}/tags/list?n=6"), "tags").await;
    assert_eq!(pages.concat(), sorted(&TAGS));
}

#[tokio::test]
async fn malformed_n_is_400() {
    let r = Registry::start();
    tag_all(&r, REPO, &TAGS[..2]).await;
    for n in ["abc", "-1", "1.5"] {
        let resp = r.get(&format!("/v2/{REPO}/tags/list?n={n}")).await;
        assert_error(resp, StatusCode::BAD_REQUEST, "UNSUPPORTED").await;
    }
}

#[tokio::test]
async fn repository_without_tags_lists_an_empty_array() {
    let r = Registry::start();
    let image = r.push_image(REPO, "only", 2).await;
    assert_eq!(
        r.delete(&format!("/v2/{REPO}/manifests/{}", image.digest))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let resp = r.get(&format!("/v2/{REPO}/tags/list")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = json_body(resp).await;
    assert_eq!(doc["name"], REPO);
    assert_eq!(doc["tags"], json!([]));
}

#[tokio::test]
async fn tag_list_of_unknown_repository_is_404_name_unknown() {
    let r = Registry::start();
    let resp = r.get("/v2/no/such/repo/tags/list").await;
    assert_error(resp, StatusCode::NOT_FOUND, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn deleted_tags_leave_the_list() {
    let r = Registry::start();
    tag_all(&r, REPO, &["a", "b", "c"]).await;
    let other = r.push_image(REPO, "d", 3).await;
    r.push_manifest(REPO, "e", OCI_MANIFEST, &other.manifest)
        .await;
    assert_eq!(
        r.delete(&format!("/v2/{REPO}/manifests/b")).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(tag_list(&r).await, ["a", "c", "d", "e"]);
    // Deleting a manifest removes every tag that pointed at it.
    let path = format!("/v2/{REPO}/manifests/{}", other.digest);
    assert_eq!(r.delete(&path).await.status(), StatusCode::ACCEPTED);
    assert_eq!(tag_list(&r).await, ["a", "c"]);
}

// --- Catalog ---

const REPOS: [&str; 5] = ["zeta", "alpha/one", "alpha", "beta/x/y", "alpha-two"];

#[tokio::test]
async fn catalog_lists_repositories_in_lexical_order() {
    let r = Registry::start();
    for (i, repo) in REPOS.iter().enumerate() {
        r.push_image(repo, "latest", i as u8).await;
    }
    let resp = r.get("/v2/_catalog").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!has_header(&resp, "link"));
    assert_eq!(
        strings(&json_body(resp).await["repositories"]),
        sorted(&REPOS)
    );
}

#[tokio::test]
async fn catalog_paginates_with_n_last_and_link() {
    let r = Registry::start();
    for (i, repo) in REPOS.iter().enumerate() {
        r.push_image(repo, "latest", i as u8).await;
    }
    let all = sorted(&REPOS);
    let pages = pages(&r, "/v2/_catalog?n=2", "repositories").await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(pages.concat(), all);
    let resp = r.get(&format!("/v2/_catalog?n=2&last={}", all[1])).await;
    assert_eq!(strings(&json_body(resp).await["repositories"]), all[2..4]);
    let resp = r.get("/v2/_catalog?n=0").await;
    assert!(!has_header(&resp, "link"));
    assert_eq!(json_body(resp).await["repositories"], json!([]));
}

// --- Repository names ---

#[tokio::test]
async fn names_of_every_allowed_form_work() {
    let r = Registry::start();
    let longest = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    assert_eq!(
        longest.len(),
        255,
        "a name must be shorter than 256 characters"
    );
    for name in [
        "a",
        "a__b",
        "a--b",
        "a.b_c-d",
        "0/1/2/3",
        "x9/y_z.w",
        longest.as_str(),
    ] {
        r.push_image(name, "latest", 4).await;
        let resp = r.get(&format!("/v2/{name}/tags/list")).await;
        assert_eq!(json_body(resp).await["name"], name);
    }
}

#[tokio::test]
async fn invalid_names_are_400_name_invalid_on_every_endpoint() {
    let r = Registry::start();
    let too_long = format!("{}/{}", "a".repeat(128), "b".repeat(127));
    assert_eq!(too_long.len(), 256);
    let digest = Digest::sha256_of(b"x");
    for name in [
        "Upper",
        "a//b",
        "-a",
        "a-",
        "a..b",
        "a___b",
        "_a",
        "a/",
        too_long.as_str(),
    ] {
        let requests = [
            (Method::GET, format!("/v2/{name}/tags/list")),
            (Method::GET, format!("/v2/{name}/manifests/latest")),
            (Method::PUT, format!("/v2/{name}/manifests/latest")),
            (Method::DELETE, format!("/v2/{name}/manifests/latest")),
            (Method::GET, format!("/v2/{name}/blobs/{digest}")),
            (Method::DELETE, format!("/v2/{name}/blobs/{digest}")),
            (Method::POST, format!("/v2/{name}/blobs/uploads/")),
            (Method::GET, format!("/v2/{name}/referrers/{digest}")),
        ];
        for (method, path) in requests {
            let resp = r.send(method.clone(), &path).await;
            assert_error(resp, StatusCode::BAD_REQUEST, "NAME_INVALID").await;
        }
    }
}
