//! Vulnerability scanning's jobs (a scan per pushed manifest, re-matching when the data
//! changes, the periodic import of `[scanner] vulndb` sources and pruning of what garbage
//! collection left behind) and `bulwark vulndb import`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bulwark_events::{Actor, Origin};
use bulwark_jobs::{JobError, JobHandler, Runner};
use bulwark_meta::Job;
use bulwark_security::{PRUNE_SCANS, REMATCH, SCAN_MANIFEST, ScanRequest, Security, SecurityError};

use crate::config::{Config, Overrides, Scanner};
use crate::serve;

const IMPORT_VULNDB: &str = "import_vulndb";

/// `runner` with the scanning jobs; the import only when sources are configured.
pub(crate) fn jobs(runner: Runner, config: &Scanner, security: Arc<Security>) -> Runner {
    let task = Arc::new(SecurityJob {
        security,
        sources: config.vulndb.clone(),
    });
    let runner = runner
        .handle(SCAN_MANIFEST, task.clone())
        .handle(REMATCH, task.clone())
        .handle(PRUNE_SCANS, task.clone())
        .every(
            PRUNE_SCANS,
            Duration::from_secs(config.prune_every_secs.max(1)),
        );
    if config.vulndb.is_empty() {
        return runner;
    }
    runner.handle(IMPORT_VULNDB, task).every(
        IMPORT_VULNDB,
        Duration::from_secs(config.import_every_secs.max(1)),
    )
}

struct SecurityJob {
    security: Arc<Security>,
    sources: Vec<PathBuf>,
}

#[async_trait::async_trait]
impl JobHandler for SecurityJob {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let failed = |e: SecurityError| JobError::Failed(e.to_string());
        match job.kind.as_str() {
            SCAN_MANIFEST => {
                let request: ScanRequest = serde_json::from_str(&job.payload)
                    .map_err(|e| JobError::Failed(format!("scan job payload: {e}")))?;
                self.security.run_scan(&request).await.map_err(failed)?;
            }
            REMATCH => {
                let rematched = self.security.rematch().await.map_err(failed)?;
                tracing::info!(rematched, "re-matched scanned manifests");
            }
            PRUNE_SCANS => {
                let pruned = self.security.prune().await.map_err(failed)?;
                if pruned > 0 {
                    tracing::info!(pruned, "pruned scans of collected manifests and layers");
                }
            }
            IMPORT_VULNDB => {
                for source in &self.sources {
                    let outcome = self
                        .security
                        .import(source, Actor::system(), Origin::default())
                        .await
                        .map_err(failed)?;
                    tracing::info!(source = %source.display(), ?outcome, "imported vulnerability data");
                }
            }
            other => return Err(JobError::Failed(format!("not a scanning job: {other}"))),
        }
        Ok(())
    }
}

#[derive(clap::Subcommand)]
pub enum VulndbCommand {
    /// Import OSV records (a .json, .jsonl or .zip file, or a directory of them) into the
    /// configured metadata database (safe while servers run: they reload it and re-match
    /// the scanned images).
    Import {
        path: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
}

pub fn run(command: VulndbCommand) -> anyhow::Result<()> {
    let VulndbCommand::Import { path, overrides } = command;
    let config = Config::load(&overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (meta, _, action_log) = serve::open_accounts(&config).await?;
        let blobs = serve::open_blobs(&config).await?;
        let security = serve::security_over(&config, meta, blobs, action_log.sink());
        let outcome = security
            .import(&path, Actor::system(), Origin::default())
            .await
            .with_context(|| format!("importing {}", path.display()));
        action_log.close().await;
        let outcome = outcome?;
        println!(
            "{} records added, {} updated, {} unchanged; vulnerability data generation {}",
            outcome.added, outcome.updated, outcome.unchanged, outcome.generation
        );
        Ok(())
    })
}
