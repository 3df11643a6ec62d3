//! Background work. Every node runs a `Runner`: workers claim due jobs from the queue in the
//! metadata store, renew their lease while a handler runs, and record the outcome; a
//! scheduler enqueues periodic jobs under a per-period unique key, so that each period's job
//! runs once whatever the number of nodes. A node that dies mid-job stops renewing its lease
//! and another node takes the job when the lease runs out, so handlers must be idempotent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bulwark_meta::{Job, JobStore, MetaError, NewJob, now_millis};
use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The attempt failed; the job is retried while attempts remain.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Runs jobs of one kind.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// Jobs run at once on this node.
    pub workers: usize,
    /// How long a claim lasts without a heartbeat; heartbeats come every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for work.
    pub poll: Duration,
    /// Attempts per job before it fails for good.
    pub max_attempts: u32,
    /// Finished jobs are kept this long, for the API and for unique keys.
    pub retention: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            workers: 2,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            max_attempts: 5,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

struct Schedule {
    kind: &'static str,
    every: Duration,
}

pub struct Runner {
    store: Arc<dyn JobStore>,
    config: RunnerConfig,
    /// This node's identity on leases: unique per process.
    owner: String,
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    schedules: Vec<Schedule>,
}

impl Runner {
    pub fn new(store: Arc<dyn JobStore>, config: RunnerConfig) -> Self {
        Runner {
            store,
            config,
            owner: format!(
                "node-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            handlers: HashMap::new(),
            schedules: Vec::new(),
        }
    }

    /// Registers the handler for jobs of `kind`.
    pub fn handle(mut self, kind: &'static str, handler: Arc<dyn JobHandler>) -> Self {
        self.handlers.insert(kind, handler);
        self
    }

    /// Enqueues a job of `kind` once per `every`, cluster-wide.
    pub fn every(mut self, kind: &'static str, every: Duration) -> Self {
        self.schedules.push(Schedule {
            kind,
            every: every.max(Duration::from_secs(1)),
        });
        self
    }

    /// Starts the workers and the scheduler; they stop taking work when `shutdown` turns
    /// true, and the returned set finishes once the jobs in hand are done.
    pub fn start(self, shutdown: watch::Receiver<bool>) -> JoinSet<()> {
        let runner = Arc::new(self);
        let mut tasks = JoinSet::new();
        for _ in 0..runner.config.workers.max(1) {
            tasks.spawn(runner.clone().work(shutdown.clone()));
        }
        tasks.spawn(runner.schedule(shutdown));
        tasks
    }

    async fn work(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let lease_ms = self.config.lease.as_millis() as i64;
        while !*shutdown.borrow() {
            match self.store.claim(&self.owner, lease_ms).await {
                Ok(Some(job)) => {
                    let span = tracing::info_span!(
                        "job", id = job.id, kind = %job.kind, attempt = job.attempts
                    );
                    self.run(job).instrument(span).await
                }
                Ok(None) => idle(&mut shutdown, self.config.poll).await,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a job failed");
                    idle(&mut shutdown, self.config.poll).await;
                }
            }
        }
    }

    async fn run(&self, job: Job) {
        let outcome = match self.handlers.get(job.kind.as_str()) {
            // The heartbeat lives in this task, so that it stops with it: a node that dies
            // (or a worker that is aborted) lets its lease run out.
            Some(handler) => {
                let beat = heartbeat(self.store.as_ref(), job.id, &self.owner, self.config.lease);
                let work = handler.run(&job);
                tokio::pin!(beat, work);
                let mut beating = true;
                loop {
                    tokio::select! {
                        outcome = &mut work => break outcome,
                        () = &mut beat, if beating => beating = false,
                    }
                }
            }
            // Possible during a rolling upgrade: let a node that knows the kind take it.
            None => Err(JobError::Failed(format!(
                "no handler for kind {:?} on this node",
                job.kind
            ))),
        };
        let recorded = match &outcome {
            Ok(()) => self.store.complete(job.id, &self.owner).await,
            Err(e) => {
                tracing::warn!(error = %e, "job attempt failed");
                let retry_at = now_millis() + backoff(job.attempts).as_millis() as i64;
                self.store
                    .fail(job.id, &self.owner, &e.to_string(), Some(retry_at))
                    .await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the job's lease was lost before it finished"),
            Err(e) => tracing::warn!(error = %e, "recording the job's outcome failed"),
        }
    }

    async fn schedule(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let tick = self
            .schedules
            .iter()
            .map(|s| s.every)
            .min()
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(60));
        let mut last_prune = 0;
        while !*shutdown.borrow() {
            let now = now_millis();
            for s in &self.schedules {
                let every = s.every.as_millis() as i64;
                let slot = now / every;
                let key = format!("{}@{slot}", s.kind);
                let job = NewJob {
                    kind: s.kind,
                    payload: "{}",
                    unique_key: Some(&key),
                    run_after: slot * every,
                    max_attempts: self.config.max_attempts,
                };
                if let Err(e) = self.store.enqueue(job).await {
                    tracing::warn!(error = %e, kind = s.kind, "scheduling a job failed");
                }
            }
            if now - last_prune > 3_600_000 {
                let before = now - self.config.retention.as_millis() as i64;
                match self.store.prune_jobs(before).await {
                    Ok(n) if n > 0 => tracing::info!(pruned = n, "pruned finished jobs"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning finished jobs failed"),
                }
                last_prune = now;
            }
            idle(&mut shutdown, tick).await;
        }
    }
}

/// Renews a lease until dropped; returns if the lease was lost.
async fn heartbeat(store: &dyn JobStore, id: i64, owner: &str, lease: Duration) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.heartbeat(id, owner, lease.as_millis() as i64).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(id, "lease lost: another node may run this job too");
                return;
            }
            Err(e) => tracing::warn!(id, error = %e, "heartbeat failed"),
        }
    }
}

/// Waits `period` (with jitter, so nodes don't poll in step) or until shutdown.
async fn idle(shutdown: &mut watch::Receiver<bool>, period: Duration) {
    let jitter = rand::rng().random_range(0.8..1.2);
    tokio::select! {
        _ = tokio::time::sleep(period.mul_f64(jitter)) => {}
        _ = shutdown.changed() => {}
    }
}

/// Exponential backoff between attempts: 5 s, 10 s, 20 s, … capped at 10 minutes.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(5 << attempts.saturating_sub(1).min(7)).min(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(40), Duration::from_secs(600));
    }
}
