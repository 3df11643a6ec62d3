//! The persistent log end to end over a real metadata store (SQLite and PostgreSQL): events
//! through the queue into the chain, signed checkpoints, retention, and tampering done the
//! way an attacker with database access would — editing, deleting, reordering and inserting
//! rows directly — which `verify` must catch at the right entry.

use std::sync::Arc;
use std::time::Duration;

use bulwark_audit::store::{checkpoint, retain};
use bulwark_audit::verify::{Tamper, verify};
use bulwark_audit::{ActionLog, BufferSettings, archive, chain};
use bulwark_auth::jwt::KeyRing;
use bulwark_events::{Actor, Event, Origin};
use bulwark_meta::{AuditEntry, AuditPage, AuditStore, SqlMetaStore, SqlOptions};
use sqlx::AnyPool;

struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        Db {
            url: format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display()),
            _dir: Some(dir),
        }
    }

    fn postgres() -> Db {
        Db {
            url: bulwark_testkit::postgres_database(),
            _dir: None,
        }
    }

    async fn store(&self) -> Arc<SqlMetaStore> {
        Arc::new(
            SqlMetaStore::open(&self.url, &SqlOptions::default())
                .await
                .unwrap(),
        )
    }

    /// The attacker's connection.
    async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPool::connect(&self.url).await.unwrap()
    }
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                super::$name(&super::Db::sqlite()).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                super::$name(&super::Db::postgres()).await
            })*
        }
    };
}

on_every_backend!(
    events_reach_the_chain_and_a_clean_log_verifies,
    an_edited_entry_is_found,
    a_deleted_entry_is_found,
    reordered_entries_are_found,
    an_inserted_entry_is_found,
    a_rewritten_chain_fails_its_signed_checkpoint,
    entries_deleted_from_the_end_are_found,
    a_log_cut_by_retention_still_verifies_and_its_cut_is_checked,
    a_forged_checkpoint_is_found,
    retention_archives_verify_on_their_own_and_tampering_is_found,
);

async fn env(db: &Db) -> (Arc<SqlMetaStore>, KeyRing) {
    let store = db.store().await;
    let keys = KeyRing::load(store.clone()).await.unwrap();
    (store, keys)
}

fn event(i: i64) -> Event {
    let mut e = Event::new(
        if i % 2 == 0 { "pull" } else { "push" },
        Actor {
            kind: "user".into(),
            name: format!("user{}", i % 3),
            credential: "password".into(),
        },
        Origin {
            address: Some("127.0.0.1".parse().unwrap()),
            user_agent: Some("test".into()),
        },
    )
    .repository("acme/app")
    .target(format!("v{i}"))
    .details(serde_json::json!({ "i": i }));
    e.time = 1_000_000 + i * 1000;
    e
}

/// Writes `n` events through the real queue and writer, and signs the head.
async fn fill(store: &Arc<SqlMetaStore>, keys: &KeyRing, n: i64) {
    let log = ActionLog::start(
        Some(store.clone() as Arc<dyn AuditStore>),
        Vec::new(),
        BufferSettings {
            capacity: 10_000,
            batch: 7,
            flush_interval: Duration::from_millis(20),
        },
    );
    let sink = log.sink();
    for i in 1..=n {
        sink.emit(event(i));
    }
    log.close().await;
    checkpoint(store.as_ref(), keys)
        .await
        .unwrap()
        .expect("a checkpoint");
}

fn all() -> AuditPage {
    AuditPage {
        after: None,
        limit: 100_000,
        newest_first: false,
    }
}

async fn findings(store: &SqlMetaStore, keys: &KeyRing) -> Vec<(i64, Tamper)> {
    let report = verify(store, keys).await.unwrap();
    report.findings.iter().map(|f| (f.seq, f.tamper)).collect()
}

async fn exec(pool: &AnyPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap();
}

async fn events_reach_the_chain_and_a_clean_log_verifies(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 50).await;
    let rows = store
        .search_audit(&Default::default(), all())
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[9].entry, chain::entry_of(&event(10)));
    let report = verify(store.as_ref(), &keys).await.unwrap();
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(
        (report.entries, report.first, report.last),
        (50, Some(1), Some(50))
    );
    assert_eq!(report.checkpoints, 1);
    // Nothing new, no new checkpoint.
    assert!(checkpoint(store.as_ref(), &keys).await.unwrap().is_none());
}

async fn an_edited_entry_is_found(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 30).await;
    exec(
        &db.raw().await,
        "UPDATE audit_log SET actor_name = 'mallory' WHERE seq = 17",
    )
    .await;
    assert_eq!(findings(&store, &keys).await, [(17, Tamper::Edited)]);
}

async fn a_deleted_entry_is_found(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 30).await;
    exec(&db.raw().await, "DELETE FROM audit_log WHERE seq = 12").await;
    assert_eq!(findings(&store, &keys).await, [(12, Tamper::Deleted)]);
}

async fn reordered_entries_are_found(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 30).await;
    let raw = db.raw().await;
    exec(&raw, "UPDATE audit_log SET seq = -1 WHERE seq = 10").await;
    exec(&raw, "UPDATE audit_log SET seq = 10 WHERE seq = 20").await;
    exec(&raw, "UPDATE audit_log SET seq = 20 WHERE seq = -1").await;
    // Each swapped entry, and each entry after one, links elsewhere than to its neighbour.
    assert_eq!(
        findings(&store, &keys).await,
        [
            (10, Tamper::Moved),
            (11, Tamper::Moved),
            (20, Tamper::Moved),
            (21, Tamper::Moved),
        ]
    );
}

async fn an_inserted_entry_is_found(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 30).await;
    let raw = db.raw().await;
    // Make room at 15 and forge an entry that links correctly to 14, as someone who knows
    // the hash rule would.
    exec(
        &raw,
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 15",
    )
    .await;
    exec(
        &raw,
        "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1015",
    )
    .await;
    let rows = store
        .search_audit(&Default::default(), all())
        .await
        .unwrap();
    let prev = rows.iter().find(|r| r.seq == 14).unwrap();
    let forged = AuditEntry {
        kind: "pull".into(),
        actor_kind: "user".into(),
        actor_name: "alibi".into(),
        actor_credential: "password".into(),
        details: "{}".into(),
        time: prev.entry.time,
        ..AuditEntry::default()
    };
    sqlx::query(
        "INSERT INTO audit_log (seq, time, kind, actor_kind, actor_name, actor_credential, \
         details, prev_hash, hash) VALUES (15, $1, 'pull', 'user', 'alibi', 'password', '{}', $2, $3)",
    )
    .bind(forged.time)
    .bind(&prev.hash)
    .bind(chain::hash(&prev.hash, &forged))
    .execute(&raw)
    .await
    .unwrap();
    let found = findings(&store, &keys).await;
    assert_eq!(found.first(), Some(&(15, Tamper::Inserted)), "{found:?}");
    // The chain now ends at 31 past the head row, and entry 30 is not the one signed.
    assert!(found.contains(&(30, Tamper::Checkpoint)), "{found:?}");
    assert!(found.contains(&(31, Tamper::Inserted)), "{found:?}");
}

async fn a_rewritten_chain_fails_its_signed_checkpoint(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 20).await;
    let raw = db.raw().await;
    exec(
        &raw,
        "UPDATE audit_log SET actor_name = 'mallory' WHERE seq = 5",
    )
    .await;
    // Recompute every hash and the head, as an attacker without the key can.
    let rows = store
        .search_audit(&Default::default(), all())
        .await
        .unwrap();
    let mut prev = chain::GENESIS.to_owned();
    for row in rows {
        let hash = chain::hash(&prev, &row.entry);
        sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(row.seq)
            .execute(&raw)
            .await
            .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1")
        .bind(&prev)
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(findings(&store, &keys).await, [(20, Tamper::Checkpoint)]);
}

async fn entries_deleted_from_the_end_are_found(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 20).await;
    exec(&db.raw().await, "DELETE FROM audit_log WHERE seq > 17").await;
    assert_eq!(
        findings(&store, &keys).await,
        [(18, Tamper::Deleted), (20, Tamper::Checkpoint)]
    );
}

async fn a_log_cut_by_retention_still_verifies_and_its_cut_is_checked(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 40).await;
    // Entries 1..=25 have times before 1_026_000.
    assert_eq!(
        retain(store.as_ref(), &keys, 1_026_000, None)
            .await
            .unwrap(),
        25
    );
    let report = verify(store.as_ref(), &keys).await.unwrap();
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(
        (report.cut, report.first, report.entries),
        (Some(25), Some(26), 15)
    );
    assert_eq!(
        retain(store.as_ref(), &keys, 1_026_000, None)
            .await
            .unwrap(),
        0
    );
    // Deleting past the cut is still seen.
    exec(
        &db.raw().await,
        "DELETE FROM audit_log WHERE seq IN (26, 27)",
    )
    .await;
    assert_eq!(findings(&store, &keys).await, [(26, Tamper::Deleted)]);
}

async fn a_forged_checkpoint_is_found(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 10).await;
    let raw = db.raw().await;
    // A cut that would hide entries 1..=5, under the signature of the real head checkpoint.
    exec(
        &raw,
        "INSERT INTO audit_checkpoints (kind, seq, hash, time, signature) \
         SELECT 'cut', 5, hash, time, signature FROM audit_checkpoints WHERE kind = 'head'",
    )
    .await;
    exec(&raw, "DELETE FROM audit_log WHERE seq <= 5").await;
    assert_eq!(
        findings(&store, &keys).await,
        [(1, Tamper::Deleted), (5, Tamper::Signature)]
    );
}

async fn retention_archives_verify_on_their_own_and_tampering_is_found(db: &Db) {
    let (store, keys) = env(db).await;
    fill(&store, &keys, 40).await;
    let dir = tempfile::tempdir().unwrap();
    // Two retention runs: entries 1..=10, then 11..=25.
    assert_eq!(
        retain(store.as_ref(), &keys, 1_011_000, Some(dir.path()))
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        retain(store.as_ref(), &keys, 1_026_000, Some(dir.path()))
            .await
            .unwrap(),
        15
    );
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "audit-000000000001-000000000010.jsonl",
            "audit-000000000011-000000000025.jsonl"
        ]
    );
    let report = archive::verify(&files, &keys).unwrap();
    assert!(report.ok(), "{:?}", report.findings);
    assert_eq!(
        (report.entries, report.first, report.cut, report.checkpoints),
        (25, Some(1), Some(25), 2)
    );
    // The stored rest starts where the archives end.
    assert!(verify(store.as_ref(), &keys).await.unwrap().ok());

    let lines = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let check = |edit: &dyn Fn(&mut Vec<String>)| -> Vec<(i64, Tamper)> {
        let mut second = lines(&files[1]);
        edit(&mut second);
        let forged = dir.path().join("forged.jsonl");
        std::fs::write(&forged, second.join("\n") + "\n").unwrap();
        let report = archive::verify(&[files[0].clone(), forged], &keys).unwrap();
        report.findings.iter().map(|f| (f.seq, f.tamper)).collect()
    };
    // Line k of the second archive is entry 11 + k; the last line is the cut.
    assert_eq!(
        check(&|l| l[3] = l[3].replace(r#"{\"i\":14}"#, r#"{\"i\":99}"#)),
        [(14, Tamper::Edited)]
    );
    assert_eq!(
        check(&|l| {
            l.remove(5);
        }),
        [(16, Tamper::Deleted)]
    );
    // Lines swapped: positions out of order, found from entry 13 on.
    let swapped = check(&|l| l.swap(2, 3));
    assert_eq!(swapped.first(), Some(&(13, Tamper::Deleted)), "{swapped:?}");
    // The first archive missing: the second does not link to anything seen.
    let report = archive::verify(&files[1..], &keys).unwrap();
    assert!(
        report.ok(),
        "an archive alone verifies: {:?}",
        report.findings
    );
    let report = archive::verify(&[files[1].clone(), files[0].clone()], &keys).unwrap();
    assert!(!report.ok(), "archives out of order do not chain");
    // A forged cut (signature of another statement) and a truncated file.
    let cut_line = lines(&files[0]).pop().unwrap();
    assert_eq!(
        check(&|l| {
            let last = l.len() - 1;
            let mut forged: serde_json::Value = serde_json::from_str(&l[last]).unwrap();
            let real: serde_json::Value = serde_json::from_str(&cut_line).unwrap();
            forged["signature"] = real["signature"].clone();
            l[last] = forged.to_string();
        }),
        [(25, Tamper::Signature)]
    );
    let mut truncated = lines(&files[1]);
    truncated.pop();
    std::fs::write(dir.path().join("truncated.jsonl"), truncated.join("\n")).unwrap();
    let err = archive::verify(&[dir.path().join("truncated.jsonl")], &keys).unwrap_err();
    assert!(err.to_string().contains("no signed cut"), "{err}");
}
