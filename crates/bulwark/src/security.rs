//! Vulnerability scanning's jobs (a scan per pushed manifest, re-matching when the data
//! changes, the periodic import of `[scanner] vulndb` sources and pruning of what garbage
//! collection left behind) and `bulwark vulndb import`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bulwark_events::{Actor, Origin};
use bulwark_jobs::{JobError, JobHandler, Runner};
use bulwark_meta::{Job, VulnerabilityRecord};
use bulwark_security::vulndb::read_records;
use bulwark_security::{PRUNE_SCANS, REMATCH, SCAN_MANIFEST, ScanRequest, Security, SecurityError};

use crate::admin::{Connection, Target};
use crate::config::Config;
use crate::serve;
use crate::vulndb_source::{Downloader, Fetched, Source};

const IMPORT_VULNDB: &str = "import_vulndb";

/// `runner` with the scanning jobs; the import only when sources are configured.
pub(crate) fn jobs(
    runner: Runner,
    config: &Config,
    security: Arc<Security>,
) -> anyhow::Result<Runner> {
    let scanner = &config.scanner;
    let task = Arc::new(SecurityJob {
        security,
        sources: scanner.vulndb.clone(),
        downloads: config.vulndb_downloader()?,
    });
    let runner = runner
        .handle(SCAN_MANIFEST, task.clone())
        .handle(REMATCH, task.clone())
        .handle(PRUNE_SCANS, task.clone())
        .every(
            PRUNE_SCANS,
            Duration::from_secs(scanner.prune_every_secs.max(1)),
        );
    if scanner.vulndb.is_empty() {
        return Ok(runner);
    }
    Ok(runner.handle(IMPORT_VULNDB, task).every(
        IMPORT_VULNDB,
        Duration::from_secs(scanner.import_every_secs.max(1)),
    ))
}

struct SecurityJob {
    security: Arc<Security>,
    sources: Vec<Source>,
    downloads: Downloader,
}

impl SecurityJob {
    /// One source of the periodic import: a URL only when it changed since its last import.
    async fn import_source(&self, source: &Source) -> anyhow::Result<()> {
        // A download is deleted when dropped; its validators are kept once imported.
        let (path, download) = match source {
            Source::Path(path) => (path.clone(), None),
            Source::Url(url) => match self.downloads.fetch_if_changed(url).await? {
                Fetched::Unchanged => {
                    tracing::info!(%source, "vulnerability data unchanged since its last import");
                    return Ok(());
                }
                Fetched::File(download) => (download.path().to_owned(), Some(download)),
            },
        };
        let outcome = self
            .security
            .import(
                &path,
                &source.to_string(),
                Actor::system(),
                Origin::default(),
            )
            .await?;
        if let Some(download) = download {
            self.downloads.remember(download);
        }
        tracing::info!(%source, ?outcome, "imported vulnerability data");
        Ok(())
    }
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
                // A source that fails is tried again next period; it never stops the others.
                for source in &self.sources {
                    if let Err(e) = self.import_source(source).await {
                        tracing::warn!(
                            %source,
                            error = format!("{e:#}"),
                            "importing vulnerability data failed; retried next period"
                        );
                    }
                }
            }
            other => return Err(JobError::Failed(format!("not a scanning job: {other}"))),
        }
        Ok(())
    }
}

#[derive(clap::Subcommand)]
pub enum VulndbCommand {
    /// Import OSV records (a .json, .jsonl or .zip file, a directory of them, or an
    /// http(s):// URL of such a file) into the configured metadata database (safe while
    /// servers run: they reload it and re-match the scanned images), or with --server
    /// through a running registry's management API (as a superuser).
    Import {
        /// A path or an http(s):// URL.
        source: Source,
        #[command(flatten)]
        target: Target,
    },
}

pub fn run(command: VulndbCommand) -> anyhow::Result<()> {
    let VulndbCommand::Import { source, target } = command;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let format = target.format();
        let summary = match target.connect()? {
            Connection::Remote(remote) => {
                let records = read(&source, &Config::default()).await?;
                remote.import_vulndb(&records).await?
            }
            Connection::Local(overrides) => {
                let config = Config::load(&overrides)?;
                let records = read(&source, &config).await?;
                let (meta, _, action_log) = serve::open_accounts(&config).await?;
                let blobs = serve::open_blobs(&config).await?;
                let security = serve::security_over(&config, meta, blobs, action_log.sink());
                let outcome = security
                    .import_records(
                        &records,
                        &source.to_string(),
                        Actor::system(),
                        Origin::default(),
                    )
                    .await
                    .with_context(|| format!("importing {source}"));
                action_log.close().await;
                ImportSummary::new(records.len(), &outcome?)
            }
        };
        crate::admin::Output::new(summary.to_string(), &summary)?.print(format)
    })
}

/// The records of `source`, a URL downloaded with the configured limits.
async fn read(source: &Source, config: &Config) -> anyhow::Result<Vec<VulnerabilityRecord>> {
    // A download is deleted when dropped: kept until its records are read.
    let (path, _download) = match source {
        Source::Path(path) => (path.clone(), None),
        Source::Url(url) => {
            let download = config.vulndb_downloader()?.fetch(url).await?;
            (download.path().to_owned(), Some(download))
        }
    };
    let records = tokio::task::spawn_blocking(move || read_records(&path))
        .await?
        .with_context(|| format!("reading {source}"))?;
    Ok(records)
}

/// What an import did, as `POST /api/v1/superuser/vulndb` answers it.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ImportSummary {
    /// Records read (the last of duplicate ids counts).
    pub records: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub generation: i64,
}

impl ImportSummary {
    fn new(records: usize, outcome: &bulwark_meta::VulnerabilityImport) -> ImportSummary {
        ImportSummary {
            records: records as u64,
            added: outcome.added,
            updated: outcome.updated,
            unchanged: outcome.unchanged,
            generation: outcome.generation,
        }
    }
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records read: {} added, {} updated, {} unchanged; vulnerability data \
             generation {}",
            self.records, self.added, self.updated, self.unchanged, self.generation
        )
    }
}
