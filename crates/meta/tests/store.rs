//! The metadata store's behaviour, run against every backend: each test below runs once on
//! SQLite and once on PostgreSQL (a real server: `scripts/test.sh` starts one and exports
//! `BULWARK_TEST_POSTGRES_URL`; each test gets a database of its own).

use bulwark_meta::{
    MetaError, MetaStore, NewManifest, Page, SqlMetaStore, SqlOptions, UploadSession,
};
use bulwark_oci::{Digest, Reference, Tag};

/// A store on a fresh database, and how to open that database again.
struct Fixture {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
        Fixture {
            url,
            _dir: Some(dir),
        }
    }

    fn postgres() -> Fixture {
        Fixture {
            url: bulwark_testkit::postgres_database(),
            _dir: None,
        }
    }

    async fn open(&self) -> SqlMetaStore {
        SqlMetaStore::open(&self.url, &SqlOptions::default())
            .await
            .unwrap()
    }
}

/// Runs each named test on every backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(&super::Fixture::sqlite()).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(&super::Fixture::postgres()).await
            })*
        }
    };
}

on_every_backend!(
    blobs_are_visible_only_where_linked,
    manifest_push_checks_references_in_one_transaction,
    tags_move_delete_and_paginate,
    concurrent_moves_of_one_tag_leave_one_live_row,
    catalog_paginates,
    referrers_follow_subject_and_filter,
    uploads_advance_by_compare_and_set,
    reopening_keeps_data_and_migrations_are_idempotent,
);

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn manifest<'a>(
    repo: &'a str,
    digest: &'a Digest,
    blobs: Vec<(&'a Digest, u64)>,
) -> NewManifest<'a> {
    NewManifest {
        repository: repo,
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: Some("application/vnd.oci.image.config.v1+json"),
        subject: None,
        annotations_json: None,
        content: b"{}",
        blobs,
        children: vec![],
        tag: None,
    }
}

fn tag(t: &str) -> Reference {
    Reference::Tag(Tag::parse(t).unwrap())
}

const ALL: Page<'static> = Page {
    last: None,
    limit: 1000,
};

async fn blobs_are_visible_only_where_linked(f: &Fixture) {
    let s = f.open().await;
    let b = d("blob");
    assert_eq!(s.repository_blob("a/x", &b).await.unwrap(), None);
    s.link_blob("a/x", &b, 4).await.unwrap();
    s.link_blob("a/x", &b, 4).await.unwrap();
    assert_eq!(s.repository_blob("a/x", &b).await.unwrap(), Some(4));
    assert_eq!(s.repository_blob("a/y", &b).await.unwrap(), None);
    assert_eq!(s.blob_size(&b).await.unwrap(), Some(4));
    assert_eq!(s.repositories_with_blob(&b, 10).await.unwrap(), vec!["a/x"]);
    assert!(s.unlink_blob("a/x", &b).await.unwrap());
    assert!(!s.unlink_blob("a/x", &b).await.unwrap());
    assert_eq!(s.repository_blob("a/x", &b).await.unwrap(), None);
}

async fn manifest_push_checks_references_in_one_transaction(f: &Fixture) {
    let s = f.open().await;
    let (cfg, layer, m) = (d("cfg"), d("layer"), d("manifest"));
    s.link_blob("r", &cfg, 3).await.unwrap();
    let err = s
        .put_manifest(manifest("r", &m, vec![(&cfg, 3), (&layer, 5)]))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::MissingReferences(ref v) if v == &vec![layer.clone()]));
    s.link_blob("r", &layer, 5).await.unwrap();
    let err = s
        .put_manifest(manifest("r", &m, vec![(&cfg, 3), (&layer, 6)]))
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::SizeMismatch { actual: 5, .. }));
    assert!(
        s.manifest("r", &Reference::Digest(m.clone()))
            .await
            .unwrap()
            .is_none()
    );
    s.put_manifest(manifest("r", &m, vec![(&cfg, 3), (&layer, 5)]))
        .await
        .unwrap();
    let got = s
        .manifest("r", &Reference::Digest(m.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.content, b"{}");
    // Idempotent re-push.
    s.put_manifest(manifest("r", &m, vec![(&cfg, 3), (&layer, 5)]))
        .await
        .unwrap();

    // An index needs its children in the same repository.
    let idx = d("index");
    let mut index = manifest("r", &idx, vec![]);
    let other = d("other");
    index.children = vec![&m, &other];
    assert!(matches!(
        s.put_manifest(index.clone()).await,
        Err(MetaError::MissingReferences(ref v)) if v == &vec![other.clone()]
    ));
    index.children = vec![&m];
    s.put_manifest(index).await.unwrap();
}

async fn tags_move_delete_and_paginate(f: &Fixture) {
    let s = f.open().await;
    let (m1, m2) = (d("m1"), d("m2"));
    assert_eq!(s.tags("r", ALL).await.unwrap(), None);
    for (t, m) in [("b", &m1), ("a", &m1), ("c", &m2)] {
        let mut nm = manifest("r", m, vec![]);
        nm.tag = Some(t);
        s.put_manifest(nm).await.unwrap();
    }
    assert_eq!(s.tags("r", ALL).await.unwrap().unwrap(), ["a", "b", "c"]);
    assert_eq!(
        s.tags(
            "r",
            Page {
                last: Some("a"),
                limit: 1
            }
        )
        .await
        .unwrap()
        .unwrap(),
        ["b"]
    );
    // Move "a" to m2.
    let mut nm = manifest("r", &m2, vec![]);
    nm.tag = Some("a");
    s.put_manifest(nm).await.unwrap();
    assert_eq!(
        s.manifest("r", &tag("a")).await.unwrap().unwrap().digest,
        m2
    );
    assert!(s.delete_tag("r", "b").await.unwrap());
    assert!(!s.delete_tag("r", "b").await.unwrap());
    assert!(s.manifest("r", &tag("b")).await.unwrap().is_none());
    assert_eq!(s.tags("r", ALL).await.unwrap().unwrap(), ["a", "c"]);
    // Deleting m2 ends both tags that point at it; the manifest is gone.
    assert!(s.delete_manifest("r", &m2).await.unwrap());
    assert!(!s.delete_manifest("r", &m2).await.unwrap());
    assert_eq!(
        s.tags("r", ALL).await.unwrap().unwrap(),
        Vec::<String>::new()
    );
    assert!(
        s.manifest("r", &Reference::Digest(m2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.manifest("r", &Reference::Digest(m1))
            .await
            .unwrap()
            .is_some()
    );
}

async fn catalog_paginates(f: &Fixture) {
    let s = f.open().await;
    for r in ["c/x", "a", "b/y"] {
        s.link_blob(r, &d(r), 1).await.unwrap();
    }
    assert_eq!(s.repositories(ALL).await.unwrap(), ["a", "b/y", "c/x"]);
    assert_eq!(
        s.repositories(Page {
            last: Some("a"),
            limit: 1
        })
        .await
        .unwrap(),
        ["b/y"]
    );
    assert!(s.repository_exists("b/y").await.unwrap());
    assert!(!s.repository_exists("b").await.unwrap());
}

async fn referrers_follow_subject_and_filter(f: &Fixture) {
    let s = f.open().await;
    let (subject, sig, sbom) = (d("subject"), d("sig"), d("sbom"));
    for (m, at) in [(&sig, "application/sig"), (&sbom, "application/sbom")] {
        let mut nm = manifest("r", m, vec![]);
        nm.subject = Some(&subject);
        nm.artifact_type = Some(at);
        nm.annotations_json = Some(r#"{"k":"v"}"#.into());
        s.put_manifest(nm).await.unwrap();
    }
    let all = s.referrers("r", &subject, None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].annotations_json.as_deref(), Some(r#"{"k":"v"}"#));
    let only = s
        .referrers("r", &subject, Some("application/sbom"))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].digest, sbom);
    assert!(
        s.referrers("other", &subject, None)
            .await
            .unwrap()
            .is_empty()
    );
    s.delete_manifest("r", &sbom).await.unwrap();
    assert_eq!(s.referrers("r", &subject, None).await.unwrap().len(), 1);
}

async fn uploads_advance_by_compare_and_set(f: &Fixture) {
    let s = f.open().await;
    let session = UploadSession {
        id: "u1".into(),
        repository: "r".into(),
        size: 0,
        hash_state: vec![0, 1],
        created_at: 1,
        updated_at: 1,
    };
    s.create_upload(&session).await.unwrap();
    assert_eq!(s.upload("u1").await.unwrap().unwrap(), session);
    assert!(s.advance_upload("u1", 0, 10, &[7]).await.unwrap());
    assert!(!s.advance_upload("u1", 0, 20, &[8]).await.unwrap());
    let got = s.upload("u1").await.unwrap().unwrap();
    assert_eq!((got.size, got.hash_state), (10, vec![7]));
    assert_eq!(s.stale_uploads(i64::MAX, 10).await.unwrap(), ["u1"]);
    assert!(s.stale_uploads(0, 10).await.unwrap().is_empty());
    assert!(s.delete_upload("u1").await.unwrap());
    assert!(s.upload("u1").await.unwrap().is_none());

    s.create_upload(&UploadSession {
        id: "u2".into(),
        ..session
    })
    .await
    .unwrap();
    let b = d("completed");
    s.complete_upload("u2", "r", &b, 3).await.unwrap();
    assert!(s.upload("u2").await.unwrap().is_none());
    assert_eq!(s.repository_blob("r", &b).await.unwrap(), Some(3));
}

async fn reopening_keeps_data_and_migrations_are_idempotent(f: &Fixture) {
    let b = d("kept");
    {
        let s = f.open().await;
        s.link_blob("r", &b, 9).await.unwrap();
    }
    let s = f.open().await;
    assert_eq!(s.repository_blob("r", &b).await.unwrap(), Some(9));
}

async fn concurrent_moves_of_one_tag_leave_one_live_row(f: &Fixture) {
    let s = std::sync::Arc::new(f.open().await);
    let digests: Vec<Digest> = (0..16).map(|i| d(&format!("m{i}"))).collect();
    let moves = digests.iter().cloned().map(|digest| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut nm = manifest("r", &digest, vec![]);
            nm.tag = Some("latest");
            s.put_manifest(nm).await
        })
    });
    for result in futures_join(moves).await {
        result.unwrap();
    }
    assert_eq!(s.tags("r", ALL).await.unwrap().unwrap(), ["latest"]);
    let live = s.manifest("r", &tag("latest")).await.unwrap().unwrap();
    assert!(digests.contains(&live.digest));
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}
