//! The tag lifecycle's periodic jobs: the expiry job records expired tags in their history,
//! the retention job applies every namespace's retention policies, garbage collection
//! reclaims what no tag and no history keeps. They are scheduled cluster-wide by the job
//! runner, so one node runs each per period.

use std::sync::Arc;
use std::time::Duration;

use bulwark_events::{Actor, Origin};
use bulwark_jobs::{JobError, JobHandler, Runner};
use bulwark_meta::Job;
use bulwark_registry::Registry;

use crate::config::Lifecycle;

const EXPIRE_TAGS: &str = "expire_tags";
const COLLECT_GARBAGE: &str = "collect_garbage";
const APPLY_RETENTION: &str = "apply_retention";

/// `runner` with the lifecycle jobs scheduled as `config` says.
pub(crate) fn jobs(runner: Runner, config: &Lifecycle, registry: Arc<Registry>) -> Runner {
    let task = Arc::new(LifecycleJob(registry));
    let runner = runner.handle(EXPIRE_TAGS, task.clone()).every(
        EXPIRE_TAGS,
        Duration::from_secs(config.expire_every_secs.max(1)),
    );
    let periodic = [
        (APPLY_RETENTION, config.retention_every_secs),
        (COLLECT_GARBAGE, config.gc_every_secs),
    ];
    periodic
        .into_iter()
        .filter(|(_, secs)| *secs > 0)
        .fold(runner, |runner, (kind, secs)| {
            runner
                .handle(kind, task.clone())
                .every(kind, Duration::from_secs(secs))
        })
}

struct LifecycleJob(Arc<Registry>);

#[async_trait::async_trait]
impl JobHandler for LifecycleJob {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let failed = |e: bulwark_registry::RegistryError| JobError::Failed(e.to_string());
        match job.kind.as_str() {
            EXPIRE_TAGS => {
                let expired = self.0.expire_tags().await.map_err(failed)?;
                if expired > 0 {
                    tracing::info!(expired, "expired tags");
                }
            }
            APPLY_RETENTION => {
                let pruned = self
                    .0
                    .apply_retention(None, false, Actor::system(), Origin::default())
                    .await
                    .map_err(failed)?;
                if !pruned.is_empty() {
                    tracing::info!(pruned = pruned.len(), "pruned tags by retention policies");
                }
            }
            COLLECT_GARBAGE => {
                // The registry reports the collection as a `gc.run` event too.
                let report = self.0.collect_garbage().await.map_err(failed)?;
                tracing::info!(?report, "garbage collected");
            }
            other => return Err(JobError::Failed(format!("not a lifecycle job: {other}"))),
        }
        Ok(())
    }
}
