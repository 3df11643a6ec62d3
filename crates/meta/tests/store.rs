//! The metadata store's behaviour, run against every backend: each test below runs once on
//! SQLite and once on PostgreSQL (a real server: `scripts/test.sh` starts one and exports
//! `BULWARK_TEST_POSTGRES_URL`; each test gets a database of its own).

mod common;

use bulwark_meta::{
    JobStatus, JobStore, MetaError, MetaStore, NewJob, NewManifest, Page, UploadSession, now_millis,
};
use bulwark_oci::{Digest, Reference, Tag};
use common::{Fixture, on_every_backend};

on_every_backend!(
    blobs_are_visible_only_where_linked,
    manifest_push_checks_references_in_one_transaction,
    tags_move_delete_and_paginate,
    concurrent_moves_of_one_tag_leave_one_live_row,
    catalog_paginates,
    referrers_follow_subject_and_filter,
    uploads_advance_by_compare_and_set,
    reopening_keeps_data_and_migrations_are_idempotent,
    jobs_run_once_retry_and_fail_for_good,
    concurrent_claims_never_share_a_job,
    expired_leases_are_taken_again_until_attempts_run_out,
    singleton_locks_are_exclusive,
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
    // A layer listed twice is one reference.
    let twice = d("twice");
    s.put_manifest(manifest(
        "r",
        &twice,
        vec![(&cfg, 3), (&layer, 5), (&layer, 5)],
    ))
    .await
    .unwrap();
    assert!(
        s.manifest("r", &Reference::Digest(twice))
            .await
            .unwrap()
            .is_some()
    );

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
        storage_state: Vec::new(),
        created_at: 1,
        updated_at: 1,
    };
    s.create_upload(&session).await.unwrap();
    assert_eq!(s.upload("u1").await.unwrap().unwrap(), session);
    assert!(s.advance_upload("u1", 0, 10, &[7], b"parts").await.unwrap());
    assert!(!s.advance_upload("u1", 0, 20, &[8], b"other").await.unwrap());
    let got = s.upload("u1").await.unwrap().unwrap();
    assert_eq!(
        (got.size, got.hash_state, got.storage_state),
        (10, vec![7], b"parts".to_vec())
    );
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

fn new_job<'a>(kind: &'a str, unique_key: Option<&'a str>, max_attempts: u32) -> NewJob<'a> {
    NewJob {
        kind,
        payload: "{}",
        unique_key,
        run_after: 0,
        max_attempts,
    }
}

async fn jobs_run_once_retry_and_fail_for_good(f: &Fixture) {
    let s = f.open().await;
    let id = s
        .enqueue(new_job("purge", Some("purge@1"), 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.enqueue(new_job("purge", Some("purge@1"), 2))
            .await
            .unwrap(),
        None
    );
    // Not due yet: nothing to claim.
    let later = s
        .enqueue(NewJob {
            run_after: now_millis() + 3_600_000,
            ..new_job("later", None, 1)
        })
        .await
        .unwrap()
        .unwrap();

    let job = s.claim("node-a", 60_000).await.unwrap().unwrap();
    assert_eq!(
        (job.id, job.status, job.attempts),
        (id, JobStatus::Running, 1)
    );
    assert_eq!(job.lease_owner.as_deref(), Some("node-a"));
    assert!(s.claim("node-b", 60_000).await.unwrap().is_none());
    // Only the owner may act on its lease.
    assert!(!s.complete(id, "node-b").await.unwrap());
    assert!(s.heartbeat(id, "node-a", 60_000).await.unwrap());

    // A failed attempt with a retry goes back to the queue...
    assert!(s.fail(id, "node-a", "boom", Some(0)).await.unwrap());
    let job = s.job(id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.last_error.as_deref()),
        (JobStatus::Queued, Some("boom"))
    );
    // ...and the last attempt fails for good.
    let job = s.claim("node-b", 60_000).await.unwrap().unwrap();
    assert_eq!((job.id, job.attempts), (id, 2));
    assert!(s.fail(id, "node-b", "boom again", Some(0)).await.unwrap());
    assert_eq!(s.job(id).await.unwrap().unwrap().status, JobStatus::Failed);
    assert!(s.claim("node-a", 60_000).await.unwrap().is_none());

    let done = s.enqueue(new_job("ok", None, 3)).await.unwrap().unwrap();
    let job = s.claim("node-a", 60_000).await.unwrap().unwrap();
    assert_eq!(job.id, done);
    assert!(s.complete(done, "node-a").await.unwrap());
    assert!(!s.complete(done, "node-a").await.unwrap());
    assert_eq!(s.job(done).await.unwrap().unwrap().status, JobStatus::Done);

    let failed = s.jobs(Some(JobStatus::Failed), 10).await.unwrap();
    assert_eq!(failed.iter().map(|j| j.id).collect::<Vec<_>>(), [id]);
    assert_eq!(s.jobs(None, 10).await.unwrap().len(), 3);
    assert_eq!(s.prune_jobs(now_millis() + 1).await.unwrap(), 2);
    assert_eq!(s.jobs(None, 10).await.unwrap()[0].id, later);
}

async fn concurrent_claims_never_share_a_job(f: &Fixture) {
    let s = std::sync::Arc::new(f.open().await);
    for i in 0..40 {
        let key = format!("k{i}");
        s.enqueue(new_job("work", Some(&key), 1))
            .await
            .unwrap()
            .unwrap();
    }
    let claimers = (0..8).map(|n| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(job) = s.claim(&format!("node-{n}"), 60_000).await.unwrap() {
                mine.push(job.id);
            }
            mine
        })
    });
    let mut all: Vec<i64> = futures_join(claimers).await.into_iter().flatten().collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(
        (before, all.len()),
        (40, 40),
        "every job claimed exactly once"
    );
}

async fn expired_leases_are_taken_again_until_attempts_run_out(f: &Fixture) {
    let s = f.open().await;
    let id = s.enqueue(new_job("slow", None, 2)).await.unwrap().unwrap();
    // node-a claims with a lease that has already run out: as if it died at once.
    let job = s.claim("node-a", -1).await.unwrap().unwrap();
    assert_eq!(job.id, id);
    let job = s.claim("node-b", -1).await.unwrap().unwrap();
    assert_eq!(
        (job.id, job.attempts, job.lease_owner.as_deref()),
        (id, 2, Some("node-b"))
    );
    // The dead node's late report changes nothing.
    assert!(!s.complete(id, "node-a").await.unwrap());
    // node-b died too, on the last attempt: the job is not taken again; other work is...
    let other = s.enqueue(new_job("other", None, 2)).await.unwrap().unwrap();
    let job = s.claim("node-c", 60_000).await.unwrap().unwrap();
    assert_eq!(job.id, other);
    assert!(s.complete(other, "node-c").await.unwrap());
    // ...and once the queue is idle, the job fails with the reason.
    assert!(s.claim("node-c", 60_000).await.unwrap().is_none());
    let job = s.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.last_error.unwrap().contains("lease expired"));
}

async fn singleton_locks_are_exclusive(f: &Fixture) {
    let s = f.open().await;
    let gc = s.try_singleton("gc-mark").await.unwrap().expect("free");
    assert!(s.try_singleton("gc-mark").await.unwrap().is_none());
    let other = s.try_singleton("something-else").await.unwrap();
    assert!(other.is_some());
    drop(gc);
    // PostgreSQL releases the lock when the session closes, which drop starts.
    for _ in 0..50 {
        if s.try_singleton("gc-mark").await.unwrap().is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the singleton lock was not released");
}
