//! The scan store (vulnerability records and generations, layer indexes, manifest scans)
//! on every backend.

mod common;

use bulwark_meta::{
    JobStore, LayerIndexRow, ManifestScan, MetaStore, NewJob, NewManifest, ScanPolicy, ScanStatus,
    ScanStore, VulnerabilityRecord, now_millis,
};
use bulwark_oci::Digest;
use common::{Fixture, on_every_backend};

on_every_backend!(
    imports_change_the_generation_only_when_records_change,
    layer_indexes_are_stored_and_replaced,
    manifest_scans_queue_store_and_list_for_rematching,
    policies_of_a_repository_override_their_namespace,
    manifest_repositories_name_every_holder_and_unheld_scans_are_pruned,
);

fn d(s: &str) -> Digest {
    Digest::sha256_of(s.as_bytes())
}

fn record(id: &str, modified: &str) -> VulnerabilityRecord {
    VulnerabilityRecord {
        id: id.into(),
        modified: Some(modified.into()),
        record: format!(r#"{{"id":"{id}","modified":"{modified}"}}"#),
    }
}

async fn imports_change_the_generation_only_when_records_change(f: &Fixture) {
    let s = f.open().await;
    assert_eq!(s.vulnerability_generation().await.unwrap(), 0);
    let first = s
        .import_vulnerabilities(&[record("A-1", "2024-01-01"), record("B-2", "2024-01-01")])
        .await
        .unwrap();
    assert_eq!((first.added, first.updated, first.unchanged), (2, 0, 0));
    assert_eq!(first.generation, 1);

    let again = s
        .import_vulnerabilities(&[record("A-1", "2024-01-01")])
        .await
        .unwrap();
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 1));
    assert_eq!(again.generation, 1, "an import changing nothing keeps it");
    assert_eq!(s.vulnerability_generation().await.unwrap(), 1);

    let changed = s
        .import_vulnerabilities(&[record("A-1", "2024-02-01"), record("C-3", "2024-02-01")])
        .await
        .unwrap();
    assert_eq!(
        (changed.added, changed.updated, changed.unchanged),
        (1, 1, 0)
    );
    assert_eq!(changed.generation, 2);

    let page = s.vulnerability_records(None, 2).await.unwrap();
    assert_eq!(
        page,
        vec![record("A-1", "2024-02-01"), record("B-2", "2024-01-01")]
    );
    let rest = s.vulnerability_records(Some("B-2"), 2).await.unwrap();
    assert_eq!(rest, vec![record("C-3", "2024-02-01")]);

    // Another connection (another node) sees the same generation.
    assert_eq!(f.open().await.vulnerability_generation().await.unwrap(), 2);
}

async fn layer_indexes_are_stored_and_replaced(f: &Fixture) {
    let s = f.open().await;
    let layer = d("layer");
    assert_eq!(s.layer_index(&layer).await.unwrap(), None);
    let failed = LayerIndexRow {
        digest: layer.clone(),
        format: 1,
        status: ScanStatus::Unsupported,
        reason: Some("too large: entries per layer".into()),
        data: None,
        created_at: now_millis(),
    };
    s.put_layer_index(&failed).await.unwrap();
    assert_eq!(s.layer_index(&layer).await.unwrap(), Some(failed));
    let indexed = LayerIndexRow {
        digest: layer.clone(),
        format: 2,
        status: ScanStatus::Scanned,
        reason: None,
        data: Some(vec![0, 1, 2, 255]),
        created_at: now_millis(),
    };
    s.put_layer_index(&indexed).await.unwrap();
    assert_eq!(s.layer_index(&layer).await.unwrap(), Some(indexed));
}

async fn manifest_scans_queue_store_and_list_for_rematching(f: &Fixture) {
    let s = f.open().await;
    let (a, b, c) = (d("a"), d("b"), d("c"));
    fn job(digest: &Digest) -> NewJob<'_> {
        NewJob {
            kind: "scan",
            payload: "{}",
            unique_key: Some(digest.hex()),
            run_after: 0,
            max_attempts: 3,
        }
    }
    assert!(s.queue_manifest_scan(&a, job(&a)).await.unwrap());
    assert!(!s.queue_manifest_scan(&a, job(&a)).await.unwrap());
    let queued = s.manifest_scan(&a).await.unwrap().unwrap();
    assert_eq!(queued.status, ScanStatus::Queued);
    assert_eq!(queued.findings, "[]");
    // The scan's job came with it, once.
    let jobs = s.jobs(None, 10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, "scan");

    let scanned = |digest: &Digest, generation| ManifestScan {
        digest: digest.clone(),
        status: ScanStatus::Scanned,
        reason: None,
        layers: vec![d("l1"), d("l2")],
        findings: r#"[{"id":"A-1"}]"#.into(),
        grade: Some("B".into()),
        next_drop_date: Some("2025-01-01".into()),
        generation,
        updated_at: now_millis(),
    };
    s.put_manifest_scan(&scanned(&a, 1)).await.unwrap();
    s.put_manifest_scan(&scanned(&b, 2)).await.unwrap();
    s.put_manifest_scan(&ManifestScan {
        status: ScanStatus::Failed,
        reason: Some("broken".into()),
        ..scanned(&c, 0)
    })
    .await
    .unwrap();
    let stored = s.manifest_scan(&a).await.unwrap().unwrap();
    assert_eq!(
        stored,
        ManifestScan {
            updated_at: stored.updated_at,
            ..scanned(&a, 1)
        }
    );
    // A queue after a result changes nothing.
    assert!(!s.queue_manifest_scan(&b, job(&b)).await.unwrap());
    assert_eq!(
        s.manifest_scan(&b).await.unwrap().unwrap().status,
        ScanStatus::Scanned
    );

    let digests =
        |scans: Vec<ManifestScan>| scans.into_iter().map(|x| x.digest).collect::<Vec<_>>();
    // Only scanned manifests behind the generation; failed ones have nothing to re-match.
    assert_eq!(
        digests(s.scans_to_rematch(2, None, 10).await.unwrap()),
        vec![a.clone()]
    );
    let mut behind = vec![a.clone(), b.clone()];
    behind.sort_by_key(ToString::to_string);
    assert_eq!(
        digests(s.scans_to_rematch(3, None, 10).await.unwrap()),
        behind
    );
    assert_eq!(
        digests(s.scans_to_rematch(3, Some(&behind[0]), 10).await.unwrap()),
        vec![behind[1].clone()]
    );
}

async fn policies_of_a_repository_override_their_namespace(f: &Fixture) {
    let s = f.open().await;
    assert_eq!(
        s.effective_scan_policy("acme", "acme/web").await.unwrap(),
        None
    );
    let org = ScanPolicy {
        namespace: "acme".into(),
        repository: String::new(),
        max_grade: Some("C".into()),
        block_severity: None,
        allowlist: vec!["CVE-1".into()],
        updated_at: now_millis(),
    };
    s.set_scan_policy(&org).await.unwrap();
    assert_eq!(
        s.effective_scan_policy("acme", "acme/web").await.unwrap(),
        Some(org.clone())
    );
    let repo = ScanPolicy {
        repository: "acme/web".into(),
        max_grade: None,
        block_severity: Some("High".into()),
        allowlist: vec![],
        ..org.clone()
    };
    s.set_scan_policy(&repo).await.unwrap();
    assert_eq!(
        s.effective_scan_policy("acme", "acme/web").await.unwrap(),
        Some(repo.clone())
    );
    assert_eq!(
        s.effective_scan_policy("acme", "acme/api").await.unwrap(),
        Some(org.clone())
    );
    assert_eq!(
        s.effective_scan_policy("other", "other/web").await.unwrap(),
        None
    );
    assert_eq!(s.scan_policy("acme", "").await.unwrap(), Some(org.clone()));

    let replaced = ScanPolicy {
        max_grade: Some("B".into()),
        ..org.clone()
    };
    s.set_scan_policy(&replaced).await.unwrap();
    assert_eq!(s.scan_policy("acme", "").await.unwrap(), Some(replaced));
    assert!(s.delete_scan_policy("acme", "acme/web").await.unwrap());
    assert!(!s.delete_scan_policy("acme", "acme/web").await.unwrap());
    assert_eq!(
        s.effective_scan_policy("acme", "acme/web")
            .await
            .unwrap()
            .unwrap()
            .repository,
        ""
    );
}

async fn manifest_repositories_name_every_holder_and_unheld_scans_are_pruned(f: &Fixture) {
    let s = f.open().await;
    let m = d("manifest");
    for repo in ["ns/two", "ns/one"] {
        s.put_manifest(NewManifest {
            repository: repo,
            digest: &m,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            artifact_type: None,
            subject: None,
            annotations_json: None,
            content: b"{}",
            blobs: vec![],
            children: vec![],
            tag: None,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        s.manifest_repositories(&m).await.unwrap(),
        vec!["ns/one".to_string(), "ns/two".to_string()]
    );
    assert!(
        s.manifest_repositories(&d("other"))
            .await
            .unwrap()
            .is_empty()
    );
}
