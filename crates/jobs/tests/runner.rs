//! The runner against a real metadata store: two runners on one database stand for two
//! nodes. Each test runs on SQLite and on PostgreSQL (see crates/meta/tests/store.rs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulwark_jobs::{JobError, JobHandler, Runner, RunnerConfig};
use bulwark_meta::{Job, JobStatus, JobStore, NewJob, SqlMetaStore, SqlOptions};
use tokio::sync::watch;

async fn sqlite() -> (Option<tempfile::TempDir>, Arc<SqlMetaStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetaStore::open_sqlite(&dir.path().join("meta.db"), &SqlOptions::default())
        .await
        .unwrap();
    (Some(dir), Arc::new(store))
}

async fn postgres() -> (Option<tempfile::TempDir>, Arc<SqlMetaStore>) {
    let url = bulwark_testkit::postgres_database();
    let store = SqlMetaStore::open(&url, &SqlOptions::default())
        .await
        .unwrap();
    (None, Arc::new(store))
}

/// Counts runs per job id; optionally hangs on the first run of each job (a node that
/// stops responding mid-job).
#[derive(Default)]
struct Recorder {
    runs: Mutex<HashMap<i64, u32>>,
    hang_first: bool,
}

#[async_trait::async_trait]
impl JobHandler for Recorder {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let first = {
            let mut runs = self.runs.lock().unwrap();
            let n = runs.entry(job.id).or_default();
            *n += 1;
            *n == 1
        };
        if self.hang_first && first {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    }
}

fn config(lease_ms: u64) -> RunnerConfig {
    RunnerConfig {
        workers: 3,
        lease: Duration::from_millis(lease_ms),
        poll: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

async fn wait_until_done(store: &SqlMetaStore, ids: &[i64], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut done = 0;
        for id in ids {
            if store.job(*id).await.unwrap().unwrap().status == JobStatus::Done {
                done += 1;
            }
        }
        if done == ids.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{done}/{} jobs done in time",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn enqueue(store: &SqlMetaStore, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let job = NewJob {
            kind: "count",
            payload: "{}",
            unique_key: None,
            run_after: 0,
            max_attempts: 3,
        };
        ids.push(store.enqueue(job).await.unwrap().unwrap());
    }
    ids
}

async fn every_job_runs_once_across_nodes(store: Arc<SqlMetaStore>) {
    let recorder = Arc::new(Recorder::default());
    let (stop, stopped) = watch::channel(false);
    let nodes: Vec<_> = (0..2)
        .map(|_| {
            Runner::new(store.clone(), config(10_000))
                .handle("count", recorder.clone())
                .start(stopped.clone())
        })
        .collect();
    let ids = enqueue(&store, 30).await;
    wait_until_done(&store, &ids, Duration::from_secs(30)).await;
    stop.send(true).unwrap();
    for mut node in nodes {
        while node.join_next().await.is_some() {}
    }
    let runs = recorder.runs.lock().unwrap();
    assert_eq!(runs.len(), 30);
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
}

async fn a_dead_nodes_job_is_finished_by_another(store: Arc<SqlMetaStore>) {
    let hanging = Arc::new(Recorder {
        hang_first: true,
        ..Recorder::default()
    });
    let (_stop, stopped) = watch::channel(false);
    let ids = enqueue(&store, 1).await;
    // Node A takes the job and hangs; then it dies (its tasks are aborted).
    let node_a = Runner::new(store.clone(), config(500))
        .handle("count", hanging.clone())
        .start(stopped.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.job(ids[0]).await.unwrap().unwrap().status != JobStatus::Running {
        assert!(Instant::now() < deadline, "node A never claimed the job");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(node_a);
    // Node B takes it once the lease runs out, and finishes it.
    let _node_b = Runner::new(store.clone(), config(500))
        .handle("count", hanging.clone())
        .start(stopped);
    wait_until_done(&store, &ids, Duration::from_secs(20)).await;
    let job = store.job(ids[0]).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    assert_eq!(hanging.runs.lock().unwrap()[&ids[0]], 2);
}

async fn heartbeats_keep_a_long_job_leased(store: Arc<SqlMetaStore>) {
    struct Slow(Mutex<u32>);
    #[async_trait::async_trait]
    impl JobHandler for Slow {
        async fn run(&self, _: &Job) -> Result<(), JobError> {
            *self.0.lock().unwrap() += 1;
            // Several leases long: only heartbeats keep other workers away.
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            Ok(())
        }
    }
    let slow = Arc::new(Slow(Mutex::new(0)));
    let (_stop, stopped) = watch::channel(false);
    let _nodes: Vec<_> = (0..2)
        .map(|_| {
            Runner::new(store.clone(), config(300))
                .handle("count", slow.clone())
                .start(stopped.clone())
        })
        .collect();
    let ids = enqueue(&store, 1).await;
    wait_until_done(&store, &ids, Duration::from_secs(20)).await;
    assert_eq!(*slow.0.lock().unwrap(), 1);
}

async fn scheduled_jobs_run_once_per_period_cluster_wide(store: Arc<SqlMetaStore>) {
    let recorder = Arc::new(Recorder::default());
    let (stop, stopped) = watch::channel(false);
    let nodes: Vec<_> = (0..3)
        .map(|_| {
            Runner::new(store.clone(), config(10_000))
                .handle("tick", recorder.clone())
                .every("tick", Duration::from_secs(1))
                .start(stopped.clone())
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    stop.send(true).unwrap();
    for mut node in nodes {
        while node.join_next().await.is_some() {}
    }
    let jobs = store.jobs(None, 100).await.unwrap();
    let keys: Vec<_> = jobs.iter().filter_map(|j| j.unique_key.clone()).collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(keys.len(), unique.len(), "one job per period: {keys:?}");
    assert!((3..=5).contains(&keys.len()), "{keys:?}");
    let runs = recorder.runs.lock().unwrap();
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_dir, store) = super::sqlite().await;
                super::$name(store).await
            })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (_dir, store) = super::postgres().await;
                super::$name(store).await
            })*
        }
    };
}

on_every_backend!(
    every_job_runs_once_across_nodes,
    a_dead_nodes_job_is_finished_by_another,
    heartbeats_keep_a_long_job_leased,
    scheduled_jobs_run_once_per_period_cluster_wide,
);
