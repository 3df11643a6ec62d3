//! `bulwark serve`: wires the stores, the registry and HTTP, and runs until SIGTERM/SIGINT.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsAcceptor;
use bulwark_audit::ActionLog;
use bulwark_auth::{Accounts, Authenticator};
use bulwark_events::EventSink;
use bulwark_jobs::{JobError, JobHandler, Runner, RunnerConfig};
use bulwark_meta::{Job, SqlMetaStore};
use bulwark_registry::Registry;
use bulwark_security::Security;
use bulwark_storage::{BlobStore, FsBlobStore, S3BlobStore};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::sockets::{ConnectionTimeouts, TunedSockets};

pub fn run(config: Config) -> anyhow::Result<()> {
    init_logging(&config)?;
    fix_mmap_threshold();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // File I/O runs on blocking threads; bound them so memory stays bounded under load.
        .max_blocking_threads(64)
        .build()?;
    runtime.block_on(serve(config))
}

/// The most an HTTP/1 connection reads at once (hyper's default is 400 KiB), which is
/// also the longest request head it accepts. Below the allocator's mmap threshold (below),
/// the buffers a request body is read into come from the heap and are reused: at 400 KiB
/// every read of an upload was a fresh `mmap` whose pages the kernel zeroed and faulted in
/// (650 `mmap`/`munmap` pairs and some 65,000 page faults per 256 MiB pushed).
const HTTP1_READ_BUFFER: usize = 64 * 1024;

/// The listener `config` asks for, with what every listener shares: connections accepted by
/// `inner` (plain or TLS) under [`ConnectionTimeouts`], hyper's HTTP/1 header timeout (which
/// also closes a connection idle between requests for as long) and read buffer, and its
/// HTTP/2 keep-alive pings.
fn listener<Inner>(
    config: &Config,
    inner: Inner,
    handle: axum_server::Handle<std::net::SocketAddr>,
) -> axum_server::Server<std::net::SocketAddr, ConnectionTimeouts<Inner>> {
    let head_timeout = Duration::from_secs(config.limits.head_timeout_secs.max(1));
    let send_timeout = Duration::from_secs(config.limits.send_timeout_secs.max(1));
    let mut server = axum_server::bind(config.listen)
        .acceptor(ConnectionTimeouts::new(inner, head_timeout, send_timeout))
        .handle(handle);
    let builder = server.http_builder();
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(HTTP1_READ_BUFFER);
    // HTTP/2 has no header timeout: a connection that goes quiet is pinged, and closed when
    // the ping is not answered (a peer gone without a word).
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(head_timeout)
        .keep_alive_timeout(head_timeout);
    server
}

/// Keeps glibc from holding freed blob buffers. Its mmap threshold grows each time a large
/// block is freed, after which the 256 KiB read buffers of concurrent pulls come from the
/// per-thread arenas and stay there, fragmented: resident memory climbed from 47 to over
/// 120 MiB across repeated concurrent pulls. A fixed threshold sends them to `mmap`, and
/// freeing returns them to the system (21 MiB after the same runs, same throughput).
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 128 * 1024;
        // SAFETY: mallopt only sets an allocator parameter; called before the runtime starts
        // its threads.
        if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) } != 1 {
            tracing::warn!("could not fix the allocator's mmap threshold");
        }
    }
}

pub(crate) fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log.level)
        .with_context(|| format!("invalid log.level {:?}", config.log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

/// Creates the superuser `admin` at first start (when no superuser exists), with the
/// password from `BULWARK_ADMIN_PASSWORD` or a generated one, printed once.
async fn bootstrap_admin(accounts: &Accounts) -> anyhow::Result<()> {
    let password = std::env::var("BULWARK_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let generated = accounts
        .ensure_admin(password.as_deref())
        .await
        .context("creating the superuser admin")?;
    if let Some(generated) = generated {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "created the superuser admin with the password {generated} (shown once; change it \
             with `bulwark user passwd admin`)"
        )?;
        out.flush()?;
    }
    Ok(())
}

/// Holds an exclusive lock on the data directory: two processes writing the same files
/// would break the upload protocol's assumptions.
fn lock_data_dir(config: &Config) -> anyhow::Result<File> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join("bulwark.lock");
    let file = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another bulwark process is using the data directory {}",
            config.data_dir.display()
        )
    })?;
    Ok(file)
}

/// The metadata database, the action log and the account services over them, built the
/// same way for `serve` and for the local administration commands, so both apply the same
/// settings and record the same events. Close the action log before exiting.
pub(crate) async fn open_accounts(
    config: &Config,
) -> anyhow::Result<(Arc<SqlMetaStore>, Arc<Accounts>, ActionLog)> {
    let meta = open_meta(config).await?;
    let action_log = crate::logs::start(&config.audit, meta.clone()).await?;
    let accounts = accounts_over(config, meta.clone(), action_log.sink()).await?;
    Ok((meta, accounts, action_log))
}

/// Whether the configured metadata database exists: a PostgreSQL URL, or the embedded
/// database in the data directory (opening a missing one would create it empty).
pub(crate) fn has_database(config: &Config) -> bool {
    !config.database.url.is_empty() || config.sqlite_path().exists()
}

pub(crate) async fn open_meta(config: &Config) -> anyhow::Result<Arc<SqlMetaStore>> {
    let meta = if config.database.url.is_empty() {
        SqlMetaStore::open_sqlite(&config.sqlite_path(), &config.sql_options()).await
    } else {
        SqlMetaStore::open(&config.database.url, &config.sql_options()).await
    }
    .context("opening the metadata database")?;
    Ok(Arc::new(meta))
}

async fn accounts_over(
    config: &Config,
    meta: Arc<SqlMetaStore>,
    events: Arc<dyn EventSink>,
) -> anyhow::Result<Arc<Accounts>> {
    let auth = Arc::new(
        Authenticator::new(meta, events, config.auth.settings())
            .await
            .context("loading the token signing keys")?,
    );
    Ok(Arc::new(Accounts::new(auth)))
}

/// The configured blob store: S3, or files under the data directory.
pub(crate) async fn open_blobs(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    Ok(match config.s3_options() {
        Some(s3) => Arc::new(S3BlobStore::new(&s3).context("configuring S3 blob storage")?),
        None => Arc::new(
            FsBlobStore::open(&config.data_dir)
                .await
                .context("opening blob storage")?,
        ),
    })
}

/// The blob store and the registry over `meta`, built the same way for `serve` and for the
/// local lifecycle commands.
pub(crate) async fn open_registry(
    config: &Config,
    meta: Arc<SqlMetaStore>,
    events: Arc<dyn EventSink>,
) -> anyhow::Result<Arc<Registry>> {
    let blobs = open_blobs(config).await?;
    Ok(Arc::new(registry_over(config, meta, blobs, events)?))
}

fn registry_over(
    config: &Config,
    meta: Arc<SqlMetaStore>,
    blobs: Arc<dyn BlobStore>,
    events: Arc<dyn EventSink>,
) -> anyhow::Result<Registry> {
    Ok(Registry::new(meta, blobs, config.registry_limits())
        .with_lifecycle(config.lifecycle_settings()?)
        .with_events(events))
}

/// Vulnerability scanning over `meta` and the blob store, as `[scanner]` says.
pub(crate) fn security_over(
    config: &Config,
    meta: Arc<SqlMetaStore>,
    blobs: Arc<dyn BlobStore>,
    events: Arc<dyn EventSink>,
) -> Arc<Security> {
    Arc::new(Security::new(
        meta,
        blobs,
        events,
        config.scanner_settings(),
    ))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&config)?;
    let meta = open_meta(&config).await?;
    let action_log = crate::logs::start(&config.audit, meta.clone()).await?;
    let accounts = accounts_over(&config, meta.clone(), action_log.sink()).await?;
    let keys = accounts.authenticator().keys().clone();
    let blobs = open_blobs(&config).await?;
    let security = security_over(&config, meta.clone(), blobs.clone(), action_log.sink());
    let registry = Arc::new(
        registry_over(&config, meta.clone(), blobs, action_log.sink())?
            .with_observer(security.clone())
            .with_pull_gate(security.clone()),
    );

    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("bulwark_http_request_duration_seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                60.0,
            ],
        )?
        .install_recorder()
        .context("installing the metrics recorder")?;
    bootstrap_admin(&accounts).await?;
    let state = bulwark_api::AppState::new(
        registry.clone(),
        accounts,
        meta.clone(),
        Some(prometheus),
        config.log.access,
    )
    .with_external_url(Some(config.auth.external_url.clone()).filter(|u| !u.is_empty()))
    .with_tls(config.tls.is_some())
    .with_action_log(
        config
            .audit
            .enabled
            .then(|| meta.clone() as Arc<dyn bulwark_meta::AuditStore>),
    )
    .with_security(security.clone())
    .with_body_idle_timeout(Duration::from_secs(
        config.limits.body_idle_timeout_secs.max(1),
    ));
    let app =
        bulwark_api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();

    let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
    let purge_every = (config.registry_limits().upload_ttl / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(300));
    let runner_config = RunnerConfig {
        workers: config.jobs.workers.max(1),
        lease: Duration::from_secs(config.jobs.lease_secs.max(1)),
        ..RunnerConfig::default()
    };
    let runner = Runner::new(meta.clone(), runner_config)
        .handle(PURGE_UPLOADS, Arc::new(PurgeUploads(registry.clone())))
        .every(PURGE_UPLOADS, purge_every);
    let runner = crate::lifecycle::jobs(runner, &config.lifecycle, registry.clone());
    let runner = crate::security::jobs(runner, &config, security)?;
    let mut jobs = crate::logs::jobs(runner, &config.audit, meta.clone(), keys).start(jobs_stopped);

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone(), stop_jobs, grace));
    let announce = {
        let handle = handle.clone();
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        async move {
            if let Some(addr) = handle.listening().await {
                tracing::info!(%addr, "listening");
                // Tests and scripts read the bound address (the port may be 0) from stdout.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "bulwark listening on {scheme}://{addr}");
                let _ = out.flush();
            }
        }
    };
    tokio::spawn(announce);

    match &config.tls {
        Some(tls) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let tls_config =
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                    .await
                    .context("loading the TLS certificate and key")?;
            let tls = RustlsAcceptor::new(tls_config).acceptor(TunedSockets);
            listener(&config, tls, handle).serve(app).await?
        }
        None => listener(&config, TunedSockets, handle).serve(app).await?,
    }
    // Jobs in hand get what is left of the grace period.
    if tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!("background jobs did not finish within the grace period");
    }
    // Requests and jobs are done: nothing emits any more. Write what the log holds.
    action_log.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_on_signal(
    handle: axum_server::Handle<std::net::SocketAddr>,
    stop_jobs: tokio::sync::watch::Sender<bool>,
    grace: Duration,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    handle.graceful_shutdown(Some(grace));
    let _ = stop_jobs.send(true);
}

const PURGE_UPLOADS: &str = "purge_uploads";

/// Removes abandoned uploads; scheduled cluster-wide by the job runner.
struct PurgeUploads(Arc<Registry>);

#[async_trait::async_trait]
impl JobHandler for PurgeUploads {
    async fn run(&self, _: &Job) -> Result<(), JobError> {
        let purged = self
            .0
            .purge_stale_uploads()
            .await
            .map_err(|e| JobError::Failed(e.to_string()))?;
        if purged > 0 {
            tracing::info!(purged, "purged abandoned uploads");
        }
        Ok(())
    }
}
