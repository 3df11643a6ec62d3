//! Namespace quotas in the metadata store, on every backend: usage counts each digest once
//! per namespace and follows unlinks and collection; quotas and their limits.

mod common;

use bulwark_meta::{
    GraphManifest, LifecycleStore, MetaError, MetaStore, NewManifest, QuotaLimitChange,
    QuotaLimitKind, QuotaStore, RepositoryCutoffs, TagOptions, now_millis,
};
use bulwark_oci::Digest;
use common::{Fixture, on_every_backend};

on_every_backend!(
    usage_counts_each_digest_once_per_namespace,
    usage_drops_when_links_and_manifests_go,
    quotas_and_limits_are_stored_per_namespace,
    a_warning_is_crossed_once_until_rearmed,
    deleting_the_namespace_account_deletes_its_quota,
);

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

/// A manifest of `content` referencing `blobs`, tagged `tag`.
fn manifest<'a>(
    repo: &'a str,
    digest: &'a Digest,
    content: &'a [u8],
    blobs: Vec<(&'a Digest, u64)>,
    tag: Option<&'a str>,
) -> NewManifest<'a> {
    NewManifest {
        repository: repo,
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        artifact_type: None,
        subject: None,
        annotations_json: None,
        content,
        blobs,
        children: vec![],
        tag,
    }
}

async fn usage_counts_each_digest_once_per_namespace(f: &Fixture) {
    let s = f.open().await;
    let (layer, cfg, other) = (d("layer"), d("cfg"), d("other"));
    assert_eq!(s.namespace_usage("acme").await.unwrap(), 0);
    // One layer in two repositories of acme: counted once there.
    s.link_blob("acme/app", &layer, 1000).await.unwrap();
    s.link_blob("acme/app", &cfg, 10).await.unwrap();
    s.link_blob("acme/tools", &layer, 1000).await.unwrap();
    assert_eq!(s.namespace_usage("acme").await.unwrap(), 1010);
    // The same manifest (7 bytes) in both repositories: counted once too.
    let content = b"{\"m\":1}";
    let m = Digest::sha256_of(content);
    for repo in ["acme/app", "acme/tools"] {
        s.link_blob(repo, &cfg, 10).await.unwrap();
        s.put_manifest(manifest(
            repo,
            &m,
            content,
            vec![(&layer, 1000), (&cfg, 10)],
            Some("1"),
        ))
        .await
        .unwrap();
    }
    assert_eq!(s.namespace_usage("acme").await.unwrap(), 1017);
    // Shared with another namespace: counted in each.
    s.link_blob("globex/app", &layer, 1000).await.unwrap();
    s.link_blob("globex/app", &other, 5).await.unwrap();
    assert_eq!(s.namespace_usage("globex").await.unwrap(), 1005);
    assert_eq!(s.namespace_usage("acme").await.unwrap(), 1017);
    // A namespace whose name extends another's is another namespace.
    s.link_blob("acme-labs/app", &other, 5).await.unwrap();
    s.link_blob("acme_x/app", &other, 5).await.unwrap();
    assert_eq!(s.namespace_usage("acme").await.unwrap(), 1017);
    assert_eq!(s.namespace_usage("acme-labs").await.unwrap(), 5);

    assert!(s.namespace_holds("acme", &layer).await.unwrap());
    assert!(s.namespace_holds("acme", &m).await.unwrap());
    assert!(!s.namespace_holds("acme", &other).await.unwrap());
    assert!(!s.namespace_holds("globex", &m).await.unwrap());
}

async fn usage_drops_when_links_and_manifests_go(f: &Fixture) {
    let s = f.open().await;
    let (layer, stray) = (d("layer"), d("stray"));
    let content = b"{\"m\":2}";
    let m = Digest::sha256_of(content);
    s.link_blob("ns/app", &layer, 100).await.unwrap();
    s.link_blob("ns/app", &stray, 40).await.unwrap();
    s.put_manifest_with(
        manifest("ns/app", &m, content, vec![(&layer, 100)], Some("1")),
        TagOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(s.namespace_usage("ns").await.unwrap(), 147);
    assert!(s.unlink_blob("ns/app", &stray).await.unwrap());
    assert_eq!(s.namespace_usage("ns").await.unwrap(), 107);

    // The tag goes; collection past the window and the grace takes the manifest and then
    // the link nothing references any more.
    assert!(s.delete_tag("ns/app", "1").await.unwrap());
    assert_eq!(
        s.namespace_usage("ns").await.unwrap(),
        107,
        "history holds it"
    );
    let after = RepositoryCutoffs {
        history_before: now_millis() + 1,
        grace_before: now_millis() + 1,
    };
    let untagged = |ms: &[GraphManifest]| -> Vec<i64> {
        ms.iter().filter(|m| !m.tagged).map(|m| m.id).collect()
    };
    let got = s
        .collect_repository("ns/app", after, &untagged)
        .await
        .unwrap();
    assert_eq!((got.manifests.len(), got.links), (1, 1));
    assert_eq!(s.namespace_usage("ns").await.unwrap(), 0);
}

async fn quotas_and_limits_are_stored_per_namespace(f: &Fixture) {
    let s = f.open().await;
    assert_eq!(s.namespace_quota("acme").await.unwrap(), None);
    let q = s.create_quota("acme", 1 << 30).await.unwrap();
    assert!(matches!(
        s.create_quota("acme", 5).await,
        Err(MetaError::Conflict(_))
    ));
    let other = s.create_quota("globex", 7).await.unwrap();
    assert_ne!(q.id, other.id);

    let warn = s
        .add_quota_limit("acme", q.id, QuotaLimitKind::Warning, 80)
        .await
        .unwrap()
        .unwrap();
    let reject = s
        .add_quota_limit("acme", q.id, QuotaLimitKind::Reject, 100)
        .await
        .unwrap()
        .unwrap();
    // One reject limit per quota; no duplicate warning.
    for (kind, pct) in [(QuotaLimitKind::Reject, 90), (QuotaLimitKind::Warning, 80)] {
        assert!(matches!(
            s.add_quota_limit("acme", q.id, kind, pct).await,
            Err(MetaError::Conflict(_))
        ));
    }
    // Another namespace's quota id is unknown here.
    assert_eq!(
        s.add_quota_limit("acme", other.id, QuotaLimitKind::Warning, 50)
            .await
            .unwrap(),
        None
    );
    let stored = s.namespace_quota("acme").await.unwrap().unwrap();
    assert_eq!(stored.limit_bytes, 1 << 30);
    assert_eq!(stored.limits, vec![warn.clone(), reject.clone()]);
    assert_eq!(reject.threshold_bytes(stored.limit_bytes), 1 << 30);
    assert_eq!(warn.threshold_bytes(1000), 800);

    assert!(s.set_quota_bytes("acme", q.id, 2048).await.unwrap());
    assert!(!s.set_quota_bytes("globex", q.id, 2048).await.unwrap());
    let to_reject = QuotaLimitChange {
        kind: Some(QuotaLimitKind::Reject),
        threshold_percent: None,
    };
    assert!(matches!(
        s.update_quota_limit("acme", q.id, warn.id, to_reject).await,
        Err(MetaError::Conflict(_))
    ));
    let to_90 = QuotaLimitChange {
        kind: None,
        threshold_percent: Some(90),
    };
    assert!(
        s.update_quota_limit("acme", q.id, warn.id, to_90)
            .await
            .unwrap()
    );
    assert!(
        !s.update_quota_limit("globex", other.id, warn.id, to_90)
            .await
            .unwrap()
    );
    let stored = s.namespace_quota("acme").await.unwrap().unwrap();
    assert_eq!(stored.limit_bytes, 2048);
    assert_eq!(stored.limits[0].threshold_percent, 90);

    assert!(
        !s.delete_quota_limit("globex", other.id, reject.id)
            .await
            .unwrap()
    );
    assert!(s.delete_quota_limit("acme", q.id, reject.id).await.unwrap());
    assert_eq!(
        s.namespace_quota("acme")
            .await
            .unwrap()
            .unwrap()
            .limits
            .len(),
        1
    );
    assert!(!s.delete_quota("globex", q.id).await.unwrap());
    assert!(s.delete_quota("acme", q.id).await.unwrap());
    assert_eq!(s.namespace_quota("acme").await.unwrap(), None);
    // A new quota starts without the old one's limits.
    let again = s.create_quota("acme", 10).await.unwrap();
    assert!(
        s.namespace_quota("acme")
            .await
            .unwrap()
            .unwrap()
            .limits
            .is_empty()
    );
    assert!(s.namespace_quota("globex").await.unwrap().is_some());
    assert_ne!(again.id, q.id);
}

async fn a_warning_is_crossed_once_until_rearmed(f: &Fixture) {
    let s = f.open().await;
    let q = s.create_quota("acme", 100).await.unwrap();
    let warn = s
        .add_quota_limit("acme", q.id, QuotaLimitKind::Warning, 50)
        .await
        .unwrap()
        .unwrap();
    assert!(s.set_quota_limit_crossed(warn.id, true, 1).await.unwrap());
    assert!(!s.set_quota_limit_crossed(warn.id, true, 2).await.unwrap());
    let stored = s.namespace_quota("acme").await.unwrap().unwrap();
    assert_eq!(stored.limits[0].crossed_at, Some(1));
    assert!(s.set_quota_limit_crossed(warn.id, false, 3).await.unwrap());
    assert!(!s.set_quota_limit_crossed(warn.id, false, 4).await.unwrap());
    assert!(s.set_quota_limit_crossed(warn.id, true, 5).await.unwrap());
    // Changing the limit re-arms it.
    let change = QuotaLimitChange {
        kind: None,
        threshold_percent: Some(60),
    };
    assert!(
        s.update_quota_limit("acme", q.id, warn.id, change)
            .await
            .unwrap()
    );
    let stored = s.namespace_quota("acme").await.unwrap().unwrap();
    assert_eq!(stored.limits[0].crossed_at, None);
}

async fn deleting_the_namespace_account_deletes_its_quota(f: &Fixture) {
    use bulwark_meta::{AccountKind, IdentityStore, NewAccount};
    let s = f.open().await;
    let account = s
        .create_account(NewAccount {
            name: "acme",
            kind: AccountKind::Organization,
            owner_id: None,
            email: None,
            password_hash: None,
            token_hash: None,
            superuser: false,
            description: None,
        })
        .await
        .unwrap();
    let q = s.create_quota("acme", 100).await.unwrap();
    s.add_quota_limit("acme", q.id, QuotaLimitKind::Reject, 100)
        .await
        .unwrap();
    assert!(s.delete_account(account.id).await.unwrap());
    assert_eq!(s.namespace_quota("acme").await.unwrap(), None);
}
