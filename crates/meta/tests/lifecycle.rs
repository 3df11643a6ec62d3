//! The lifecycle store (tag history, expiry, immutability, collection steps) on every
//! backend.

mod common;

use bulwark_meta::{
    GraphManifest, HistoryQuery, Keep, LifecycleStore, MetaError, MetaStore, NewManifest, Page,
    RepositoryCutoffs, TagOptions, now_millis,
};
use bulwark_oci::{Digest, Reference, Tag};
use common::{Fixture, on_every_backend};

on_every_backend!(
    history_lists_restores_and_shows_a_point_in_time,
    expired_tags_vanish_and_enter_the_history,
    immutable_tags_refuse_moves_deletes_and_expiry,
    settings_and_rules_are_stored_per_namespace,
    collection_removes_what_the_rule_picks_and_unreferenced_links,
    blob_deletion_excludes_links_and_intents,
    touching_a_link_restarts_its_grace_unless_collected,
    retention_policies_are_stored_per_namespace,
);

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn manifest<'a>(
    repo: &'a str,
    digest: &'a Digest,
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
        content: b"{}",
        blobs,
        children: vec![],
        tag,
    }
}

fn tag(t: &str) -> Reference {
    Reference::Tag(Tag::parse(t).unwrap())
}

fn all() -> HistoryQuery<'static> {
    HistoryQuery {
        limit: 100,
        ..HistoryQuery::default()
    }
}

async fn tick() {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

async fn history_lists_restores_and_shows_a_point_in_time(f: &Fixture) {
    let s = f.open().await;
    let (m1, m2) = (d("m1"), d("m2"));
    s.put_manifest(manifest("ns/app", &m1, vec![], Some("v1")))
        .await
        .unwrap();
    tick().await;
    let while_m1 = now_millis();
    tick().await;
    s.put_manifest(manifest("ns/app", &m2, vec![], Some("v1")))
        .await
        .unwrap();
    tick().await;
    assert!(s.delete_tag("ns/app", "v1").await.unwrap());

    let history = s.tag_history("ns/app", &all()).await.unwrap().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].manifest_digest, m2);
    assert_eq!(history[1].manifest_digest, m1);
    assert!(history.iter().all(|t| t.end_at.is_some()));
    assert_eq!(history[1].end_at, Some(history[0].start_at));
    let active = HistoryQuery {
        only_active: true,
        ..all()
    };
    assert!(
        s.tag_history("ns/app", &active)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );

    // The repository as it was while v1 pointed at m1.
    let then = HistoryQuery {
        at: Some(while_m1),
        ..all()
    };
    let view = s.tag_history("ns/app", &then).await.unwrap().unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].manifest_digest, m1);

    // Outside the window: nothing to restore.
    let later = now_millis() + 1000;
    assert!(
        !s.restore_tag("ns/app", "v1", &m1, later, TagOptions::default())
            .await
            .unwrap()
    );
    assert!(
        s.restore_tag("ns/app", "v1", &m1, 0, TagOptions::default())
            .await
            .unwrap()
    );
    let live = s.manifest("ns/app", &tag("v1")).await.unwrap().unwrap();
    assert_eq!(live.digest, m1);
    // A digest the tag never pointed at is not a restore.
    assert!(
        !s.restore_tag("ns/app", "v1", &d("other"), 0, TagOptions::default())
            .await
            .unwrap()
    );
    assert!(s.tag_history("nope/x", &all()).await.unwrap().is_none());

    // Permanent deletion leaves nothing in the history.
    assert_eq!(s.purge_tag("ns/app", "v1").await.unwrap(), 3);
    assert!(
        s.tag_history("ns/app", &all())
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    assert!(s.manifest("ns/app", &tag("v1")).await.unwrap().is_none());
}

async fn expired_tags_vanish_and_enter_the_history(f: &Fixture) {
    let s = f.open().await;
    let m = d("m");
    let soon = now_millis() + 50;
    s.put_manifest_with(
        manifest("ns/app", &m, vec![], Some("tmp")),
        TagOptions {
            immutable: false,
            expires_at: Some(soon),
        },
    )
    .await
    .unwrap();
    s.put_manifest(manifest("ns/app", &m, vec![], Some("keep")))
        .await
        .unwrap();
    assert!(s.manifest("ns/app", &tag("tmp")).await.unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;

    // Gone for pulls and listings before the expiry job ran.
    assert!(s.manifest("ns/app", &tag("tmp")).await.unwrap().is_none());
    let listed = s
        .tags(
            "ns/app",
            Page {
                last: None,
                limit: 10,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed, vec!["keep"]);
    assert!(!s.delete_tag("ns/app", "tmp").await.unwrap());
    let history = s
        .tag_history(
            "ns/app",
            &HistoryQuery {
                tag: Some("tmp"),
                ..all()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history[0].end_at, Some(soon));

    let expired = s.expire_tags(now_millis(), 10).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].tag.as_str(), expired[0].expired_at),
        ("tmp", soon)
    );
    assert!(s.expire_tags(now_millis(), 10).await.unwrap().is_empty());

    // An expiry set through the API; clearing it keeps the tag.
    assert!(
        s.set_tag_expiry("ns/app", "keep", Some(now_millis() + 60_000), false)
            .await
            .unwrap()
    );
    assert!(
        s.set_tag_expiry("ns/app", "keep", None, false)
            .await
            .unwrap()
    );
    assert!(
        s.expire_tags(now_millis() + 120_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !s.set_tag_expiry("ns/app", "tmp", None, false)
            .await
            .unwrap()
    );
    // A tag pushed again after it expired starts a new row.
    s.put_manifest(manifest("ns/app", &m, vec![], Some("tmp")))
        .await
        .unwrap();
    assert!(s.manifest("ns/app", &tag("tmp")).await.unwrap().is_some());
}

async fn immutable_tags_refuse_moves_deletes_and_expiry(f: &Fixture) {
    let s = f.open().await;
    let (m0, m1, m2) = (d("m0"), d("m1"), d("m2"));
    // The registry gives an immutable tag an expiry only where a rule allows it: none here.
    let immutable = TagOptions {
        immutable: true,
        expires_at: None,
    };
    s.put_manifest(manifest("ns/app", &m0, vec![], Some("1.0")))
        .await
        .unwrap();
    // A mutable tag moves; the new row is immutable.
    s.put_manifest_with(manifest("ns/app", &m1, vec![], Some("1.0")), immutable)
        .await
        .unwrap();
    let row = &s.tag_history("ns/app", &all()).await.unwrap().unwrap()[0];
    assert!(row.immutable);
    assert_eq!(row.expires_at, None);

    let refused = |e: MetaError| matches!(e, MetaError::ImmutableTag(ref t) if t == "1.0");
    let err = s
        .put_manifest(manifest("ns/app", &m2, vec![], Some("1.0")))
        .await
        .unwrap_err();
    assert!(refused(err));
    // The refused push stored nothing: the transaction rolled back.
    assert!(
        s.manifest("ns/app", &Reference::Digest(m2.clone()))
            .await
            .unwrap()
            .is_none()
    );
    // Pushing the same content again is no move.
    s.put_manifest(manifest("ns/app", &m1, vec![], Some("1.0")))
        .await
        .unwrap();
    assert!(refused(s.delete_tag("ns/app", "1.0").await.unwrap_err()));
    assert!(refused(s.delete_manifest("ns/app", &m1).await.unwrap_err()));
    assert!(refused(s.purge_tag("ns/app", "1.0").await.unwrap_err()));
    assert!(refused(
        s.set_tag_expiry("ns/app", "1.0", Some(now_millis()), false)
            .await
            .unwrap_err()
    ));
    // Where a rule allows expiry, an immutable tag expires like any other, and the expiry
    // job ends it; it still refuses moves meanwhile.
    let soon = now_millis() + 60_000;
    assert!(
        s.set_tag_expiry("ns/app", "1.0", Some(soon), true)
            .await
            .unwrap()
    );
    assert!(refused(
        s.put_manifest(manifest("ns/app", &m2, vec![], Some("1.0")))
            .await
            .unwrap_err()
    ));
    assert!(s.expire_tags(soon, 10).await.unwrap().len() == 1);
    s.put_manifest(manifest("ns/app", &m1, vec![], Some("1.0")))
        .await
        .unwrap();
    assert!(s.set_tag_immutable("ns/app", "1.0", true).await.unwrap());
    assert!(refused(
        s.restore_tag("ns/app", "1.0", &m0, 0, TagOptions::default())
            .await
            .unwrap_err()
    ));

    assert!(s.set_tag_immutable("ns/app", "1.0", false).await.unwrap());
    s.put_manifest(manifest("ns/app", &m2, vec![], Some("1.0")))
        .await
        .unwrap();
    assert!(s.delete_tag("ns/app", "1.0").await.unwrap());
    assert!(!s.set_tag_immutable("ns/app", "1.0", true).await.unwrap());
}

async fn settings_and_rules_are_stored_per_namespace(f: &Fixture) {
    let s = f.open().await;
    assert_eq!(s.time_machine_window("ns").await.unwrap(), None);
    s.set_time_machine_window("ns", 86_400).await.unwrap();
    s.set_time_machine_window("ns", 604_800).await.unwrap();
    assert_eq!(s.time_machine_window("ns").await.unwrap(), Some(604_800));
    assert_eq!(s.time_machine_window("other").await.unwrap(), None);

    let wide = s
        .add_immutability_rule("ns", None, "v.*", false)
        .await
        .unwrap();
    let narrow = s
        .add_immutability_rule("ns", Some("ns/app"), "release-.*", true)
        .await
        .unwrap();
    s.add_immutability_rule("other", None, ".*", false)
        .await
        .unwrap();
    assert!(!wide.allow_expiry && narrow.allow_expiry);
    let patterns = |rules: Vec<bulwark_meta::ImmutabilityRule>| {
        rules.into_iter().map(|r| r.pattern).collect::<Vec<_>>()
    };
    assert_eq!(
        patterns(s.immutability_rules("ns", Some("ns/app")).await.unwrap()),
        vec!["v.*", "release-.*"]
    );
    assert_eq!(
        patterns(s.immutability_rules("ns", Some("ns/web")).await.unwrap()),
        vec!["v.*"]
    );
    assert_eq!(s.immutability_rules("ns", None).await.unwrap().len(), 2);
    assert!(!s.delete_immutability_rule("other", wide.id).await.unwrap());
    assert!(s.delete_immutability_rule("ns", wide.id).await.unwrap());
    assert_eq!(
        s.immutability_rules("ns", None).await.unwrap(),
        vec![narrow]
    );
}

async fn collection_removes_what_the_rule_picks_and_unreferenced_links(f: &Fixture) {
    let s = f.open().await;
    let (shared, only_old, stray) = (d("shared"), d("only-old"), d("stray"));
    let (kept, dropped) = (d("kept"), d("dropped"));
    for b in [&shared, &only_old, &stray] {
        s.link_blob("ns/app", b, 1).await.unwrap();
    }
    s.put_manifest(manifest("ns/app", &kept, vec![(&shared, 1)], Some("live")))
        .await
        .unwrap();
    s.put_manifest(manifest(
        "ns/app",
        &dropped,
        vec![(&shared, 1), (&only_old, 1)],
        Some("old"),
    ))
    .await
    .unwrap();
    assert!(s.delete_tag("ns/app", "old").await.unwrap());
    tick().await;

    let pick_untagged = |graph: &[GraphManifest]| {
        graph
            .iter()
            .filter(|m| !m.tagged)
            .map(|m| m.id)
            .collect::<Vec<_>>()
    };
    // Within the window the deleted tag's row keeps its manifest.
    let now = now_millis();
    let within = RepositoryCutoffs {
        history_before: 0,
        grace_before: now + 1,
    };
    let got = s
        .collect_repository("ns/app", within, &pick_untagged)
        .await
        .unwrap();
    assert_eq!(
        (got.history_rows, got.manifests.len(), got.links),
        (0, 0, 1)
    );
    assert_eq!(s.repository_blob("ns/app", &stray).await.unwrap(), None);

    let after = RepositoryCutoffs {
        history_before: now + 1,
        grace_before: now + 1,
    };
    let got = s
        .collect_repository("ns/app", after, &pick_untagged)
        .await
        .unwrap();
    assert_eq!(got.history_rows, 1);
    assert_eq!(got.manifests, vec![dropped.clone()]);
    assert_eq!(got.links, 1);
    assert!(
        s.repository_blob("ns/app", &only_old)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.repository_blob("ns/app", &shared)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.manifest("ns/app", &Reference::Digest(dropped))
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.manifest("ns/app", &tag("live")).await.unwrap().is_some());
    // Links touched within the grace period stay.
    s.link_blob("ns/app", &stray, 1).await.unwrap();
    let grace = RepositoryCutoffs {
        history_before: now + 1,
        grace_before: now - 1,
    };
    let got = s
        .collect_repository("ns/app", grace, &pick_untagged)
        .await
        .unwrap();
    assert_eq!(got.links, 0);
    assert!(
        s.all_repositories()
            .await
            .unwrap()
            .contains(&"ns/app".to_owned())
    );
}

async fn blob_deletion_excludes_links_and_intents(f: &Fixture) {
    let s = f.open().await;
    let (linked, free, announced) = (d("linked"), d("free"), d("announced"));
    s.link_blob("ns/a", &linked, 1).await.unwrap();
    for b in [&free, &announced] {
        s.link_blob("ns/a", b, 2).await.unwrap();
        assert!(s.unlink_blob("ns/a", b).await.unwrap());
    }
    let future = now_millis() + 1000;
    let mut candidates = s.unreferenced_blobs(future, 100).await.unwrap();
    candidates.sort();
    let mut expected = vec![free.clone(), announced.clone()];
    expected.sort();
    assert_eq!(candidates, expected);

    // An upload about to commit `announced` keeps it; a stale intent does not.
    assert!(s.announce_blob("up1", &announced).await.unwrap());
    // One batch: only the free blob is marked.
    let batch = [
        announced.clone(),
        linked.clone(),
        free.clone(),
        d("unknown"),
    ];
    assert_eq!(
        s.mark_blobs_deleting(&batch, 0).await.unwrap(),
        vec![free.clone()]
    );
    // While its bytes go, no link and no intent can be made.
    assert!(matches!(
        s.link_blob("ns/b", &free, 2).await.unwrap_err(),
        MetaError::BlobDeleting(_)
    ));
    // The refused link left nothing behind, not even the repository it would have made.
    assert!(!s.repository_exists("ns/b").await.unwrap());
    assert!(!s.announce_blob("up2", &free).await.unwrap());
    // Only marked rows are forgotten.
    assert_eq!(s.forget_blobs(&batch).await.unwrap(), vec![2]);
    assert_eq!(s.blob_size(&free).await.unwrap(), None);
    assert!(s.announce_blob("up2", &free).await.unwrap());

    // Completing the upload links the blob and drops its intent.
    let session = bulwark_meta::UploadSession {
        id: "up1".into(),
        repository: "ns/a".into(),
        size: 0,
        hash_state: vec![],
        storage_state: vec![],
        created_at: 0,
        updated_at: 0,
    };
    s.create_upload(&session).await.unwrap();
    s.complete_upload("up1", "ns/a", &announced, 2)
        .await
        .unwrap();
    assert!(s.unlink_blob("ns/a", &announced).await.unwrap());
    assert_eq!(
        s.mark_blobs_deleting(std::slice::from_ref(&announced), 0)
            .await
            .unwrap(),
        vec![announced.clone()]
    );
    assert_eq!(
        s.forget_blobs(std::slice::from_ref(&announced))
            .await
            .unwrap(),
        vec![2]
    );

    // Bytes without a row: claimed unless announced.
    let orphan = d("orphan");
    assert!(!s.claim_orphan_blob(&free, 2, 0).await.unwrap());
    assert_eq!(s.purge_intents(now_millis() + 1).await.unwrap(), 1);
    assert!(s.claim_orphan_blob(&orphan, 3, 0).await.unwrap());
    assert!(!s.claim_orphan_blob(&linked, 1, 0).await.unwrap());
    let named = s
        .stored_blobs(&[orphan.clone(), linked.clone(), d("none")])
        .await
        .unwrap();
    assert_eq!(
        named,
        [orphan.clone(), linked.clone()].into_iter().collect()
    );
    assert_eq!(
        s.forget_blobs(&[orphan.clone(), linked.clone()])
            .await
            .unwrap(),
        vec![3]
    );
}

async fn touching_a_link_restarts_its_grace_unless_collected(f: &Fixture) {
    let s = f.open().await;
    let b = d("b");
    s.link_blob("ns/a", &b, 7).await.unwrap();
    tick().await;
    let linked_by = now_millis();
    tick().await;
    // Fresh enough: nothing to do.
    assert_eq!(
        s.touch_repository_blob("ns/a", &b, 0).await.unwrap(),
        Some(7)
    );
    assert_eq!(
        s.touch_repository_blob("ns/a", &b, now_millis())
            .await
            .unwrap(),
        Some(7)
    );
    // The touch moved the link past the cutoff the collection uses.
    let keep_all = |_: &[GraphManifest]| Vec::new();
    let got = s
        .collect_repository(
            "ns/a",
            RepositoryCutoffs {
                history_before: 0,
                grace_before: linked_by,
            },
            &keep_all,
        )
        .await
        .unwrap();
    assert_eq!(got.links, 0);
    let got = s
        .collect_repository(
            "ns/a",
            RepositoryCutoffs {
                history_before: 0,
                grace_before: now_millis() + 1,
            },
            &keep_all,
        )
        .await
        .unwrap();
    assert_eq!(got.links, 1);
    assert_eq!(
        s.touch_repository_blob("ns/a", &b, now_millis() + 1)
            .await
            .unwrap(),
        None
    );
}

async fn retention_policies_are_stored_per_namespace(f: &Fixture) {
    let s = f.open().await;
    let keep = |count, secs| Keep { count, secs };
    let wide = s
        .add_retention_policy("ns", None, "pr-.*", keep(Some(3), None))
        .await
        .unwrap();
    let narrow = s
        .add_retention_policy("ns", Some("ns/app"), ".*", keep(None, Some(86_400)))
        .await
        .unwrap();
    s.add_retention_policy("other", None, ".*", keep(Some(1), Some(60)))
        .await
        .unwrap();
    assert_eq!((wide.keep_count, wide.keep_secs), (Some(3), None));
    assert_eq!(narrow.repository.as_deref(), Some("ns/app"));
    let ids = |policies: Vec<bulwark_meta::RetentionPolicy>| {
        policies.into_iter().map(|p| p.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s
            .retention_policies(Some("ns"), Some("ns/app"))
            .await
            .unwrap()),
        vec![wide.id, narrow.id]
    );
    assert_eq!(
        ids(s
            .retention_policies(Some("ns"), Some("ns/web"))
            .await
            .unwrap()),
        vec![wide.id]
    );
    assert_eq!(s.retention_policies(None, None).await.unwrap().len(), 3);
    assert!(
        s.add_retention_policy("ns", None, ".*", Keep::default())
            .await
            .is_err(),
        "a policy keeps something"
    );
    assert!(!s.delete_retention_policy("other", wide.id).await.unwrap());
    // Pruning ends only the listed row, while live and mutable.
    let (a, b) = (d("a"), d("b"));
    s.put_manifest(manifest("ns/app", &a, vec![], Some("pr")))
        .await
        .unwrap();
    let listed = s.tag_history("ns/app", &all()).await.unwrap().unwrap()[0].start_at;
    tick().await;
    s.put_manifest(manifest("ns/app", &b, vec![], Some("pr")))
        .await
        .unwrap();
    assert!(
        !s.prune_tag("ns/app", "pr", listed).await.unwrap(),
        "moved since"
    );
    let live = s.tag_history("ns/app", &all()).await.unwrap().unwrap()[0].start_at;
    s.set_tag_immutable("ns/app", "pr", true).await.unwrap();
    assert!(
        !s.prune_tag("ns/app", "pr", live).await.unwrap(),
        "immutable"
    );
    s.set_tag_immutable("ns/app", "pr", false).await.unwrap();
    assert!(s.prune_tag("ns/app", "pr", live).await.unwrap());
    assert!(
        !s.prune_tag("ns/app", "pr", live).await.unwrap(),
        "already ended"
    );
    assert!(!s.prune_tag("ns/nothing", "pr", live).await.unwrap());
    assert!(s.delete_retention_policy("ns", wide.id).await.unwrap());
    assert_eq!(
        s.retention_policies(Some("ns"), None).await.unwrap(),
        vec![narrow]
    );
}
