//! The action log in the binary: its wiring for `serve` (sinks from `[audit]`, the
//! checkpoint and retention jobs) and `bulwark logs list|export|verify`, which read the
//! metadata database named by the configuration (as `serve` does: `--config`,
//! `--data-dir`, `BULWARK_…`) without a running server.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bulwark_audit::search::{self, parse_time};
use bulwark_audit::sinks::{
    Elastic, ElasticSettings, JsonLines, Syslog, SyslogSettings, Transport,
};
use bulwark_audit::{ActionLog, BufferSettings, Deliver, Scope};
use bulwark_auth::jwt::KeyRing;
use bulwark_jobs::{JobError, JobHandler, Runner};
use bulwark_meta::{AuditStore, Job, SqlMetaStore};
use clap::{Args, Subcommand};

use crate::config::{Audit, Config, Overrides, SyslogTransport};

/// Starts the action log `[audit]` describes: the stored log if enabled, and each stream.
pub(crate) async fn start(audit: &Audit, meta: Arc<SqlMetaStore>) -> Result<ActionLog> {
    let mut streams: Vec<(&'static str, Box<dyn Deliver>)> = Vec::new();
    match audit.jsonl.as_str() {
        "" => {}
        "-" => streams.push(("stdout", Box::new(JsonLines::stdout()))),
        path => {
            let file = JsonLines::file(path.as_ref())
                .await
                .with_context(|| format!("opening the action log file {path}"))?;
            streams.push(("file", Box::new(file)));
        }
    }
    if let Some(s) = &audit.syslog {
        let hostname = if s.hostname.is_empty() {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default()
        } else {
            s.hostname.clone()
        };
        let settings = SyslogSettings {
            address: s.address,
            transport: match s.transport {
                SyslogTransport::Udp => Transport::Udp,
                SyslogTransport::Tcp => Transport::Tcp,
            },
            facility: s.facility,
            hostname,
            app_name: s.app_name.clone(),
        };
        streams.push(("syslog", Box::new(Syslog::new(settings))));
    }
    if let Some(es) = &audit.elasticsearch {
        let elastic = Elastic::new(ElasticSettings {
            url: es.url.clone(),
            index: es.index.clone(),
            username: es.username.clone(),
            password: es.password.0.clone(),
            max_retries: es.max_retries,
            backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(es.timeout_secs.max(1)),
        })
        .context("configuring the Elasticsearch sink")?;
        streams.push(("elasticsearch", Box::new(elastic)));
    }
    let store = audit.enabled.then_some(meta as Arc<dyn AuditStore>);
    Ok(ActionLog::start(
        store,
        streams,
        BufferSettings {
            capacity: audit.queue.max(1),
            batch: audit.batch.max(1),
            flush_interval: Duration::from_millis(audit.flush_interval_ms.max(1)),
        },
    ))
}

const CHECKPOINT: &str = "audit_checkpoint";
const RETENTION: &str = "audit_retention";

/// Adds the jobs of the stored log: signing the chain head, and retention if set.
pub(crate) fn jobs(
    runner: Runner,
    audit: &Audit,
    meta: Arc<SqlMetaStore>,
    keys: KeyRing,
) -> Runner {
    if !audit.enabled {
        return runner;
    }
    let task = Arc::new(AuditJob {
        meta,
        keys,
        retention_days: audit.retention_days,
        archive: (!audit.archive_dir.as_os_str().is_empty()).then(|| audit.archive_dir.clone()),
    });
    let runner = runner.handle(CHECKPOINT, task.clone()).every(
        CHECKPOINT,
        Duration::from_secs(audit.checkpoint_secs.max(1)),
    );
    if audit.retention_days == 0 {
        return runner;
    }
    runner
        .handle(RETENTION, task)
        .every(RETENTION, Duration::from_secs(3600))
}

struct AuditJob {
    meta: Arc<SqlMetaStore>,
    keys: KeyRing,
    retention_days: u64,
    /// Where entries go before retention deletes them.
    archive: Option<PathBuf>,
}

#[async_trait::async_trait]
impl JobHandler for AuditJob {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let failed = |e: bulwark_audit::AuditError| JobError::Failed(e.to_string());
        if job.kind == RETENTION {
            let before = bulwark_meta::now_millis() - (self.retention_days * 86_400_000) as i64;
            let deleted = bulwark_audit::store::retain(
                self.meta.as_ref(),
                &self.keys,
                before,
                self.archive.as_deref(),
            )
            .await
            .map_err(failed)?;
            if deleted > 0 {
                tracing::info!(deleted, "action log retention");
            }
        } else {
            bulwark_audit::store::checkpoint(self.meta.as_ref(), &self.keys)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

#[derive(Subcommand)]
pub enum LogsCommand {
    /// Entries, newest first.
    List {
        #[command(flatten)]
        config: Overrides,
        #[command(flatten)]
        filter: Filter,
        /// Most entries shown.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Entries oldest first as JSON Lines.
    Export {
        #[command(flatten)]
        config: Overrides,
        #[command(flatten)]
        filter: Filter,
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check the hash chain and its signed checkpoints; exits non-zero at any tampering.
    Verify {
        #[command(flatten)]
        config: Overrides,
        /// Check these retention archives (oldest first) instead of the stored log.
        #[arg(long = "archive", value_name = "FILE")]
        archives: Vec<PathBuf>,
    },
}

#[derive(Args)]
pub struct Filter {
    /// Entries in this namespace (user or organization).
    #[arg(long)]
    namespace: Option<String>,
    /// Entries about this repository.
    #[arg(long)]
    repository: Option<String>,
    /// Entries by this account.
    #[arg(long)]
    actor: Option<String>,
    /// Entries of this kind (repeatable).
    #[arg(long)]
    kind: Vec<String>,
    /// From this time (RFC 3339, YYYY-MM-DD or milliseconds).
    #[arg(long)]
    since: Option<String>,
    /// Before this time.
    #[arg(long)]
    until: Option<String>,
}

impl Filter {
    fn scope_and_query(&self) -> Result<(Scope, bulwark_audit::Query)> {
        let time = |t: &Option<String>| t.as_deref().map(parse_time).transpose();
        let scope = match &self.namespace {
            Some(ns) => Scope::Namespace(ns.clone()),
            None => Scope::All,
        };
        Ok((
            scope,
            bulwark_audit::Query {
                kinds: self.kind.clone(),
                actor: self.actor.clone(),
                repository: self.repository.clone(),
                since: time(&self.since)?,
                until: time(&self.until)?,
            },
        ))
    }
}

async fn open(o: &Overrides) -> Result<Arc<SqlMetaStore>> {
    let config = Config::load(o)?;
    if !crate::serve::has_database(&config) {
        bail!(
            "no registry database at {}: give the data directory with --data-dir or the \
             configuration with --config, as for `bulwark serve`",
            config.sqlite_path().display()
        );
    }
    crate::serve::open_meta(&config).await
}

pub fn run(command: LogsCommand) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(execute(command))
}

async fn execute(command: LogsCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        LogsCommand::List {
            config,
            filter,
            limit,
            json,
        } => {
            let store = open(&config).await?;
            let (scope, query) = filter.scope_and_query()?;
            let page = search::search(store.as_ref(), &scope, &query, None, limit).await?;
            for e in &page.logs {
                if json {
                    serde_json::to_writer(&mut out, e)?;
                    writeln!(out)?;
                } else {
                    writeln!(
                        out,
                        "{:>8}  {}  {:<22} {:<20} {:<15} {} {}",
                        e.id,
                        e.datetime,
                        e.kind,
                        if e.performer.name.is_empty() {
                            &e.performer.kind
                        } else {
                            &e.performer.name
                        },
                        e.ip.as_deref().unwrap_or("-"),
                        e.repository
                            .as_deref()
                            .or(e.namespace.as_deref())
                            .unwrap_or("-"),
                        e.target.as_deref().unwrap_or(""),
                    )?;
                }
            }
        }
        LogsCommand::Export {
            config,
            filter,
            output,
        } => {
            let store = open(&config).await?;
            let (scope, query) = filter.scope_and_query()?;
            let n = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    search::export(store.as_ref(), &scope, &query, &mut w).await?
                }
                None => search::export(store.as_ref(), &scope, &query, &mut out).await?,
            };
            eprintln!("exported {n} entries");
        }
        LogsCommand::Verify { config, archives } => {
            let store = open(&config).await?;
            let keys = KeyRing::load(store.clone())
                .await
                .context("loading the registry's signing keys")?;
            let report = if archives.is_empty() {
                bulwark_audit::verify::verify(store.as_ref(), &keys).await?
            } else {
                bulwark_audit::archive::verify(&archives, &keys)?
            };
            let range = match (report.first, report.last) {
                (Some(a), Some(b)) => format!("entries {a} to {b}"),
                _ => "no entries".into(),
            };
            let cut = report
                .cut
                .map(|c| format!(", cut by retention after entry {c}"))
                .unwrap_or_default();
            writeln!(
                out,
                "{} checked ({range}{cut}), {} signed checkpoints",
                report.entries, report.checkpoints
            )?;
            for finding in &report.findings {
                writeln!(out, "{finding}")?;
            }
            if !report.ok() {
                bail!(
                    "the action log does not verify: {} findings",
                    report.findings.len()
                );
            }
            writeln!(out, "the action log verifies")?;
        }
    }
    Ok(())
}
