//! The action log's rows, run once on SQLite and once on PostgreSQL: appends extend one
//! chain even from concurrent writers, searches filter and page, counts group by day and
//! kind, retention cuts behind a checkpoint.

mod common;

use std::sync::Arc;

use bulwark_meta::{
    AuditCheckpoint, AuditEntry, AuditFilter, AuditPage, AuditStore, CheckpointKind, MetaError,
};
use common::{Fixture, on_every_backend};

on_every_backend!(
    appends_extend_one_chain,
    concurrent_writers_on_two_stores_serialize_the_chain,
    searches_filter_and_page_both_ways,
    counts_group_by_day_and_kind,
    cuts_delete_up_to_a_checked_entry_and_record_a_checkpoint,
);

/// A stand-in chain rule: the test only needs each hash to depend on the previous one.
fn chain(prev: &str, e: &AuditEntry) -> String {
    format!(
        "{:x}",
        fnv(&format!("{prev}|{}|{}|{}", e.time, e.kind, e.details))
    )
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn entry(time: i64, kind: &str, actor: &str, repository: Option<&str>) -> AuditEntry {
    AuditEntry {
        time,
        kind: kind.into(),
        actor_kind: "user".into(),
        actor_name: actor.into(),
        actor_credential: "password".into(),
        address: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        namespace: repository.map(|r| r.split('/').next().unwrap_or(r).to_owned()),
        repository: repository.map(str::to_owned),
        target: Some("latest".into()),
        details: format!("{{\"n\":{time}}}"),
    }
}

const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn all() -> AuditPage {
    AuditPage {
        after: None,
        limit: 10_000,
        newest_first: false,
    }
}

async fn appends_extend_one_chain(f: &Fixture) {
    let store = f.open().await;
    assert_eq!(store.audit_head().await.unwrap(), (0, ZERO.to_owned()));
    let first: Vec<_> = (0..100)
        .map(|i| entry(i, "pull", "alice", Some("a/b")))
        .collect();
    assert_eq!(store.append_audit(&first, &chain).await.unwrap(), 100);
    assert_eq!(
        store
            .append_audit(&[entry(100, "push", "bob", None)], &chain)
            .await
            .unwrap(),
        101
    );
    let rows = store
        .search_audit(&AuditFilter::default(), all())
        .await
        .unwrap();
    assert_eq!(rows.len(), 101);
    let mut prev = ZERO.to_owned();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.seq, i as i64 + 1);
        assert_eq!(row.prev_hash, prev);
        assert_eq!(row.hash, chain(&prev, &row.entry));
        prev = row.hash.clone();
    }
    assert_eq!(rows[0].entry, first[0]);
    assert_eq!(store.audit_head().await.unwrap(), (101, prev));
}

async fn concurrent_writers_on_two_stores_serialize_the_chain(f: &Fixture) {
    // Two stores stand for two nodes (on SQLite, two processes would share the file lock).
    let stores = [Arc::new(f.open().await), Arc::new(f.open().await)];
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let store = stores[w as usize % 2].clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..5i64 {
                let batch: Vec<_> = (0..7)
                    .map(|i| entry(w * 1000 + b * 10 + i, "pull", &format!("w{w}"), None))
                    .collect();
                store.append_audit(&batch, &chain).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = stores[0]
        .search_audit(&AuditFilter::default(), all())
        .await
        .unwrap();
    assert_eq!(rows.len(), 8 * 5 * 7);
    let mut prev = ZERO.to_owned();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.seq, i as i64 + 1, "contiguous");
        assert_eq!(row.prev_hash, prev, "linked at {}", row.seq);
        assert_eq!(row.hash, chain(&prev, &row.entry));
        prev = row.hash.clone();
    }
    assert_eq!(stores[1].audit_head().await.unwrap(), (280, prev));
}

async fn searches_filter_and_page_both_ways(f: &Fixture) {
    let store = f.open().await;
    let entries = vec![
        entry(10, "push", "alice", Some("acme/app")),
        entry(20, "pull", "bob", Some("acme/app")),
        entry(30, "pull", "alice", Some("acme/db")),
        entry(40, "login.success", "carol", None),
        entry(50, "pull", "carol", Some("carol/tool")),
        entry(60, "tag.delete", "alice", Some("acme/app")),
    ];
    store.append_audit(&entries, &chain).await.unwrap();
    let seqs =
        |rows: Vec<bulwark_meta::AuditRecord>| rows.iter().map(|r| r.seq).collect::<Vec<_>>();
    let newest = |after, limit| AuditPage {
        after,
        limit,
        newest_first: true,
    };
    let filter = |f: AuditFilter| f;
    let by_ns = filter(AuditFilter {
        namespace: Some("acme".into()),
        ..AuditFilter::default()
    });
    assert_eq!(
        seqs(store.search_audit(&by_ns, newest(None, 2)).await.unwrap()),
        [6, 3]
    );
    assert_eq!(
        seqs(
            store
                .search_audit(&by_ns, newest(Some(3), 2))
                .await
                .unwrap()
        ),
        [2, 1]
    );
    assert!(
        store
            .search_audit(&by_ns, newest(Some(1), 2))
            .await
            .unwrap()
            .is_empty()
    );
    let oldest = AuditPage {
        after: Some(2),
        limit: 2,
        newest_first: false,
    };
    assert_eq!(
        seqs(store.search_audit(&by_ns, oldest).await.unwrap()),
        [3, 6]
    );

    let cases: Vec<(AuditFilter, Vec<i64>)> = vec![
        (
            AuditFilter {
                repository: Some("acme/app".into()),
                ..AuditFilter::default()
            },
            vec![6, 2, 1],
        ),
        (
            AuditFilter {
                actor: Some("alice".into()),
                kinds: vec!["pull".into(), "push".into()],
                ..AuditFilter::default()
            },
            vec![3, 1],
        ),
        (
            AuditFilter {
                involving: Some("carol".into()),
                ..AuditFilter::default()
            },
            vec![5, 4],
        ),
        (
            AuditFilter {
                since: Some(20),
                until: Some(50),
                ..AuditFilter::default()
            },
            vec![4, 3, 2],
        ),
        (
            AuditFilter {
                kinds: vec!["nothing".into()],
                ..AuditFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let got = seqs(
            store
                .search_audit(&filter, newest(None, 100))
                .await
                .unwrap(),
        );
        assert_eq!(got, expected, "{filter:?}");
    }
}

async fn counts_group_by_day_and_kind(f: &Fixture) {
    let store = f.open().await;
    let day = 86_400_000;
    let entries = vec![
        entry(5, "pull", "a", Some("x/y")),
        entry(day - 1, "pull", "a", Some("x/y")),
        entry(day - 1, "push", "a", Some("x/y")),
        entry(3 * day + 7, "pull", "b", Some("z/y")),
    ];
    store.append_audit(&entries, &chain).await.unwrap();
    let counts = store.count_audit(&AuditFilter::default()).await.unwrap();
    let got: Vec<_> = counts
        .iter()
        .map(|c| (c.day, c.kind.as_str(), c.count))
        .collect();
    assert_eq!(got, [(0, "pull", 2), (0, "push", 1), (3, "pull", 1)]);
    let only_x = AuditFilter {
        namespace: Some("x".into()),
        kinds: vec!["pull".into()],
        ..AuditFilter::default()
    };
    let got: Vec<_> = store
        .count_audit(&only_x)
        .await
        .unwrap()
        .iter()
        .map(|c| (c.day, c.count))
        .collect();
    assert_eq!(got, [(0, 2)]);
}

async fn cuts_delete_up_to_a_checked_entry_and_record_a_checkpoint(f: &Fixture) {
    let store = f.open().await;
    assert_eq!(store.audit_cut_point(100).await.unwrap(), None);
    // Times interleave (two nodes): the cut stops before the first young entry.
    let times = [10, 20, 90, 30, 100, 40, 120];
    let entries: Vec<_> = times.iter().map(|&t| entry(t, "pull", "a", None)).collect();
    store.append_audit(&entries, &chain).await.unwrap();
    let rows = store
        .search_audit(&AuditFilter::default(), all())
        .await
        .unwrap();
    let (seq, hash) = store.audit_cut_point(50).await.unwrap().expect("a cut");
    assert_eq!((seq, hash.as_str()), (2, rows[1].hash.as_str()));
    let (last, _) = store.audit_cut_point(1000).await.unwrap().expect("a cut");
    assert_eq!(last, 7);

    let stale = AuditCheckpoint {
        kind: CheckpointKind::Cut,
        seq: 2,
        hash: rows[0].hash.clone(),
        time: 1,
        signature: "sig".into(),
    };
    assert!(matches!(
        store.cut_audit(&stale).await,
        Err(MetaError::Conflict(_))
    ));
    let cut = AuditCheckpoint {
        hash,
        ..stale.clone()
    };
    assert_eq!(store.cut_audit(&cut).await.unwrap(), 2);
    let left = store
        .search_audit(&AuditFilter::default(), all())
        .await
        .unwrap();
    assert_eq!(left.first().map(|r| r.seq), Some(3));
    assert_eq!(left[0].prev_hash, cut.hash);
    let head = AuditCheckpoint {
        kind: CheckpointKind::Head,
        seq: 7,
        hash: left[4].hash.clone(),
        time: 2,
        signature: "sig2".into(),
    };
    store.add_audit_checkpoint(&head).await.unwrap();
    assert_eq!(store.audit_checkpoints().await.unwrap(), [cut, head]);
}
