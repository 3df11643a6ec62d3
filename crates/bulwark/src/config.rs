//! Configuration: defaults, then a TOML file, then `BULWARK_…` environment variables
//! (`__` separates sections: `BULWARK_LIMITS__MAX_MANIFEST_BYTES`), then command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::vulndb_source::{Downloader, Source};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the embedded default: SQLite metadata and filesystem blobs.
    pub data_dir: PathBuf,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    pub database: Database,
    pub storage: Storage,
    pub limits: Limits,
    pub log: Log,
    pub jobs: Jobs,
    pub auth: Auth,
    pub audit: Audit,
    pub lifecycle: Lifecycle,
    pub scanner: Scanner,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Metadata database URL: empty means SQLite at `<data_dir>/meta.db`;
    /// `postgres://user:pass@host:5432/db` selects PostgreSQL.
    pub url: String,
    /// Connections for reads (for PostgreSQL, the whole pool).
    pub readers: u32,
    /// PostgreSQL: longest a statement may run, in milliseconds.
    pub statement_timeout_ms: u64,
    /// SQLite: fsync the log at every commit, so that even a power loss keeps the last
    /// pushes (a process crash loses nothing either way).
    pub sqlite_sync_every_commit: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Blobs in an S3-compatible object store; without this section, files under
    /// `<data_dir>/blobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3 {
    /// `http(s)://host:port` of an S3-compatible service; empty for AWS S3 itself.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Static credentials; empty to take them from the environment (instance metadata).
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Address buckets by path (`endpoint/bucket/key`), as most S3-compatible stores want;
    /// without it, `endpoint` must name the bucket's own host.
    pub path_style: bool,
    /// Keys live under this prefix, so that a bucket can hold more than one registry.
    pub prefix: String,
    /// Bytes per multipart part (at least 5 MiB): the most an upload request buffers.
    pub part_size: usize,
    /// Answer blob downloads with a redirect to a presigned URL of the object store.
    pub presigned_redirect: bool,
    /// How long a presigned URL stays valid.
    pub presigned_ttl_secs: u64,
    /// PEM trust anchors for an HTTPS endpoint; empty means `$AWS_CA_BUNDLE`, if set.
    pub ca_bundle: String,
}

/// A secret from the configuration: `Debug` never shows it, `config print` masks it.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Default for S3 {
    fn default() -> Self {
        let o = bulwark_storage::S3Options::default();
        S3 {
            endpoint: o.endpoint,
            bucket: o.bucket,
            region: o.region,
            access_key_id: o.access_key_id,
            secret_access_key: Secret(o.secret_access_key),
            path_style: o.path_style,
            prefix: o.prefix,
            part_size: o.part_size,
            presigned_redirect: false,
            presigned_ttl_secs: 300,
            ca_bundle: String::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_manifest_bytes: usize,
    pub max_name_len: usize,
    pub max_blob_bytes: u64,
    /// Upload sessions idle this long are purged.
    pub upload_ttl_secs: u64,
    /// Largest page of tags or repositories in one response.
    pub max_page: u32,
    /// Seconds a connection has to send a request's head, counted from when it opens or
    /// its previous response ends: silent or slow clients, and connections idle between
    /// requests, are closed after it.
    pub head_timeout_secs: u64,
    /// Seconds a request body may send nothing before the request is aborted (an upload
    /// from a stalled client would otherwise hold its connection for ever).
    pub body_idle_timeout_secs: u64,
    /// Seconds a response may wait for the client to take data before the connection is
    /// closed (a client that stops reading would otherwise hold it for ever).
    pub send_timeout_secs: u64,
}

/// Background jobs on this node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jobs {
    /// Jobs run at once.
    pub workers: usize,
    /// How long a claimed job stays this node's without a heartbeat: after a node dies,
    /// another takes its jobs once this runs out.
    pub lease_secs: u64,
}

/// The tag lifecycle and garbage collection.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// Seconds between runs of the expiry job, which records expired tags in their history
    /// (they are hidden from pulls and listings as soon as they expire either way).
    pub expire_every_secs: u64,
    /// Seconds between runs of the retention policies (tags they prune go into the
    /// history); 0 runs none.
    pub retention_every_secs: u64,
    /// Seconds between garbage collections; 0 runs none (`bulwark gc` or
    /// `POST /api/v1/superuser/gc` then collect).
    pub gc_every_secs: u64,
    /// Seconds an untagged manifest or an unreferenced blob stays after it was last pushed
    /// or checked: a client may be about to reference it.
    pub gc_grace_secs: u64,
    /// The Time Machine windows (seconds) namespaces may choose from.
    pub time_machine_options_secs: Vec<u64>,
    /// The window of namespaces that chose none; one of the options.
    pub time_machine_default_secs: u64,
}

/// Vulnerability scanning of pushed images, and where vulnerability data comes from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scanner {
    /// Scan every image pushed (a background job per manifest).
    pub enabled: bool,
    /// OSV sources imported every `import_every_secs`: paths (files `.json`/`.jsonl`/`.zip`
    /// or directories) or `http(s)://` URLs of one such file. An import that changes
    /// nothing changes nothing; a source that fails is logged and tried next period.
    pub vulndb: Vec<Source>,
    pub import_every_secs: u64,
    /// Bytes of one download of a URL source.
    pub max_download_bytes: u64,
    /// Seconds one download of a URL source may take.
    pub download_timeout_secs: u64,
    /// Seconds between prunings of the scans of manifests and layers garbage collection
    /// removed.
    pub prune_every_secs: u64,
    /// Layers per image.
    pub max_layers: u64,
    /// Decompressed bytes per layer.
    pub max_layer_bytes: u64,
    /// Tar entries per layer.
    pub max_entries: u64,
    /// One file read into memory (a package database).
    pub max_file_bytes: u64,
    /// All the bytes read into memory from one image.
    pub max_total_read_bytes: u64,
    /// One PAX extended header or GNU long name.
    pub max_header_bytes: u64,
}

/// Authentication and access. The superuser `admin` is created at first start with the
/// password in `BULWARK_ADMIN_PASSWORD`, or a generated one printed once.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Anonymous callers may pull public repositories.
    pub anonymous_access: bool,
    /// Anyone may create an account through the API.
    pub user_creation: bool,
    /// Refuse users' real passwords on the registry API: clients log in with application
    /// tokens or robot tokens, so the password never sits in a client's configuration.
    pub tokens_only: bool,
    /// The public base URL of the registry (`https://registry.example`), used in token
    /// challenges; by default taken from each request's `Host`.
    pub external_url: String,
    /// The token service's name: `service` in challenges, `aud` and `iss` of tokens.
    pub service: String,
    /// Lifetime of registry bearer tokens.
    pub token_ttl_secs: u64,
    /// Lifetime of refresh tokens (`offline_token`).
    pub refresh_ttl_secs: u64,
    /// Failed logins per account and per address before each further attempt must wait.
    pub login_failures_before_backoff: u32,
    /// Longest wait imposed after repeated failed logins.
    pub max_login_backoff_secs: u64,
}

impl Auth {
    pub fn settings(&self) -> bulwark_auth::AuthSettings {
        bulwark_auth::AuthSettings {
            anonymous_access: self.anonymous_access,
            user_creation: self.user_creation,
            tokens_only_on_registry: self.tokens_only,
            issuer: self.service.clone(),
            service: self.service.clone(),
            token_ttl: Duration::from_secs(self.token_ttl_secs.max(1)),
            refresh_ttl: Duration::from_secs(self.refresh_ttl_secs.max(1)),
            login_failures_before_backoff: self.login_failures_before_backoff,
            max_login_backoff: Duration::from_secs(self.max_login_backoff_secs),
        }
    }
}

/// The action log: every event (pushes, pulls, logins, permission changes…) stored in the
/// metadata database, hash-chained, searchable at `/api/v1/…/logs` and with `bulwark logs`;
/// optionally streamed to JSON Lines, syslog and Elasticsearch/OpenSearch.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Store the action log in the metadata database.
    pub enabled: bool,
    /// Events waiting for delivery, per sink; beyond it they are dropped and counted
    /// (`bulwark_audit_dropped_events_total`).
    pub queue: usize,
    /// Most events written at once.
    pub batch: usize,
    /// Longest an event waits before it is written: what a crash can lose.
    pub flush_interval_ms: u64,
    /// How often the chain head is signed with the registry's key.
    pub checkpoint_secs: u64,
    /// Entries older than this many days are deleted (behind a signed cut); 0 keeps all.
    pub retention_days: u64,
    /// Before retention deletes entries, write them to a JSON Lines file in this directory
    /// (ending with the signed cut; `bulwark logs verify --archive FILE…` checks it); empty:
    /// delete without archiving.
    pub archive_dir: PathBuf,
    /// Copy every event as a JSON line to this file (`-`: standard output); empty: none.
    pub jsonl: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<AuditSyslog>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch: Option<AuditElasticsearch>,
}

/// Send every event to a syslog collector as RFC 5424.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSyslog {
    pub address: SocketAddr,
    /// `udp` or `tcp` (octet-counted frames).
    pub transport: SyslogTransport,
    /// 0-23; 13 is "log audit".
    pub facility: u8,
    /// The HOSTNAME of messages; empty: this machine's name.
    pub hostname: String,
    pub app_name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    Udp,
    Tcp,
}

impl Default for AuditSyslog {
    fn default() -> Self {
        AuditSyslog {
            address: "127.0.0.1:514".parse().expect("valid address"),
            transport: SyslogTransport::Udp,
            facility: 13,
            hostname: String::new(),
            app_name: "bulwark".into(),
        }
    }
}

/// Index every event in Elasticsearch or OpenSearch through the bulk API.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditElasticsearch {
    /// e.g. `https://search.example:9200`
    pub url: String,
    pub index: String,
    pub username: String,
    pub password: Secret,
    /// Retries of a refused batch (429, 5xx, connection errors) before its events are
    /// dropped and counted.
    pub max_retries: u32,
    pub timeout_secs: u64,
}

impl Default for AuditElasticsearch {
    fn default() -> Self {
        AuditElasticsearch {
            url: String::new(),
            index: "bulwark-audit".into(),
            username: String::new(),
            password: Secret::default(),
            max_retries: 5,
            timeout_secs: 30,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// A tracing filter, e.g. `info` or `bulwark=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
    /// One line per request (with its request id).
    pub access: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        let limits = bulwark_registry::Limits::default();
        Config {
            listen: "0.0.0.0:5000".parse().expect("valid address"),
            data_dir: PathBuf::from("./bulwark-data"),
            shutdown_grace_secs: 30,
            database: Database {
                url: String::new(),
                readers: 8,
                statement_timeout_ms: 30_000,
                sqlite_sync_every_commit: false,
            },
            storage: Storage::default(),
            limits: Limits {
                max_manifest_bytes: limits.max_manifest_bytes,
                max_name_len: limits.max_name_len,
                max_blob_bytes: limits.max_blob_bytes,
                upload_ttl_secs: limits.upload_ttl.as_secs(),
                max_page: limits.max_page,
                head_timeout_secs: 30,
                body_idle_timeout_secs: 60,
                send_timeout_secs: 60,
            },
            log: Log {
                level: "info".into(),
                format: LogFormat::Text,
                access: true,
            },
            jobs: Jobs {
                workers: 2,
                lease_secs: 60,
            },
            auth: Auth {
                anonymous_access: false,
                user_creation: false,
                tokens_only: false,
                external_url: String::new(),
                service: "bulwark".into(),
                token_ttl_secs: 300,
                refresh_ttl_secs: 30 * 24 * 3600,
                login_failures_before_backoff: 5,
                max_login_backoff_secs: 300,
            },
            audit: Audit {
                enabled: true,
                queue: 65_536,
                batch: 1000,
                flush_interval_ms: 1000,
                checkpoint_secs: 300,
                retention_days: 0,
                archive_dir: PathBuf::new(),
                jsonl: String::new(),
                syslog: None,
                elasticsearch: None,
            },
            lifecycle: {
                let l = bulwark_registry::LifecycleSettings::default();
                Lifecycle {
                    expire_every_secs: 60,
                    retention_every_secs: 3600,
                    gc_every_secs: 3600,
                    gc_grace_secs: l.gc_grace.as_secs(),
                    time_machine_options_secs: l
                        .time_machine_options
                        .iter()
                        .map(Duration::as_secs)
                        .collect(),
                    time_machine_default_secs: l.time_machine_default.as_secs(),
                }
            },
            scanner: {
                let l = bulwark_scanner::Limits::default();
                Scanner {
                    enabled: true,
                    vulndb: Vec::new(),
                    import_every_secs: 3600,
                    max_download_bytes: 1 << 30,
                    download_timeout_secs: 600,
                    prune_every_secs: 3600,
                    max_layers: l.max_layers,
                    max_layer_bytes: l.max_layer_bytes,
                    max_entries: l.max_entries,
                    max_file_bytes: l.max_file_bytes,
                    max_total_read_bytes: l.max_total_read_bytes,
                    max_header_bytes: l.max_header_bytes,
                }
            },
            tls: None,
        }
    }
}

/// Top-level keys, so that unrelated `BULWARK_*` variables are not read as configuration.
const KEYS: [&str; 13] = [
    "listen",
    "data_dir",
    "shutdown_grace_secs",
    "database",
    "storage",
    "limits",
    "log",
    "jobs",
    "auth",
    "audit",
    "lifecycle",
    "scanner",
    "tls",
];

/// Flags given on the command line; they win over every other source.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 0.0.0.0:5000).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory of the embedded default (default ./bulwark-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl Config {
    pub fn load(o: &Overrides) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &o.config {
            anyhow::ensure!(
                path.exists(),
                "configuration file {} not found",
                path.display()
            );
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(
            Env::prefixed("BULWARK_")
                .filter(|k| {
                    let key = k.as_str().to_ascii_lowercase();
                    KEYS.contains(&key.split("__").next().unwrap_or(""))
                })
                .split("__"),
        );
        if let Some(listen) = o.listen {
            fig = fig.merge(Serialized::default("listen", listen));
        }
        if let Some(dir) = &o.data_dir {
            fig = fig.merge(Serialized::default("data_dir", dir));
        }
        Ok(fig.extract()?)
    }

    pub fn registry_limits(&self) -> bulwark_registry::Limits {
        bulwark_registry::Limits {
            max_manifest_bytes: self.limits.max_manifest_bytes,
            max_name_len: self.limits.max_name_len,
            max_blob_bytes: self.limits.max_blob_bytes,
            upload_ttl: Duration::from_secs(self.limits.upload_ttl_secs),
            max_page: self.limits.max_page.max(1),
        }
    }

    pub fn lifecycle_settings(&self) -> anyhow::Result<bulwark_registry::LifecycleSettings> {
        let l = &self.lifecycle;
        anyhow::ensure!(
            l.time_machine_options_secs
                .contains(&l.time_machine_default_secs),
            "lifecycle.time_machine_default_secs ({}) is not one of \
             lifecycle.time_machine_options_secs ({:?})",
            l.time_machine_default_secs,
            l.time_machine_options_secs
        );
        Ok(bulwark_registry::LifecycleSettings {
            time_machine_options: l
                .time_machine_options_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            time_machine_default: Duration::from_secs(l.time_machine_default_secs),
            gc_grace: Duration::from_secs(l.gc_grace_secs),
        })
    }

    pub fn scanner_settings(&self) -> bulwark_security::Settings {
        let s = &self.scanner;
        bulwark_security::Settings {
            enabled: s.enabled,
            limits: bulwark_scanner::Limits {
                max_layers: s.max_layers,
                max_layer_bytes: s.max_layer_bytes,
                max_entries: s.max_entries,
                max_file_bytes: s.max_file_bytes,
                max_total_read_bytes: s.max_total_read_bytes,
                max_header_bytes: s.max_header_bytes,
            },
        }
    }

    /// The downloader of URL sources of vulnerability data, with the configured limits.
    pub fn vulndb_downloader(&self) -> anyhow::Result<Downloader> {
        Downloader::new(
            self.scanner.max_download_bytes,
            Duration::from_secs(self.scanner.download_timeout_secs.max(1)),
        )
    }

    pub fn sql_options(&self) -> bulwark_meta::SqlOptions {
        bulwark_meta::SqlOptions {
            readers: self.database.readers,
            statement_timeout_ms: self.database.statement_timeout_ms,
            sqlite_sync_every_commit: self.database.sqlite_sync_every_commit,
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("meta.db")
    }

    /// The S3 store's options, if `[storage.s3]` is configured.
    pub fn s3_options(&self) -> Option<bulwark_storage::S3Options> {
        let s3 = self.storage.s3.as_ref()?;
        let ca_bundle = if s3.ca_bundle.is_empty() {
            std::env::var_os("AWS_CA_BUNDLE").map(PathBuf::from)
        } else {
            Some(PathBuf::from(&s3.ca_bundle))
        };
        Some(bulwark_storage::S3Options {
            endpoint: s3.endpoint.clone(),
            bucket: s3.bucket.clone(),
            region: s3.region.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret_access_key: s3.secret_access_key.0.clone(),
            path_style: s3.path_style,
            prefix: s3.prefix.clone(),
            part_size: s3.part_size,
            presign_ttl: s3
                .presigned_redirect
                .then(|| Duration::from_secs(s3.presigned_ttl_secs)),
            ca_bundle,
            ..bulwark_storage::S3Options::default()
        })
    }

    /// The configuration as TOML, secrets masked: it is printed and pasted into tickets.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.database.url = redact_url_password(&shown.database.url);
        if let Some(s3) = &mut shown.storage.s3
            && !s3.secret_access_key.0.is_empty()
        {
            s3.secret_access_key = Secret(REDACTED.into());
        }
        if let Some(es) = &mut shown.audit.elasticsearch
            && !es.password.0.is_empty()
        {
            es.password = Secret(REDACTED.into());
        }
        Ok(toml::to_string_pretty(&shown)?)
    }
}

const REDACTED: &str = "<redacted>";

/// `postgres://user:secret@host/db` → `postgres://user:<redacted>@host/db`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{REDACTED}@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
// figment's Jail closures must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_env_and_flags_layer_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "listen = \"127.0.0.1:7000\"\n[limits]\nmax_manifest_bytes = 1000\n",
            )?;
            jail.set_env("BULWARK_LIMITS__MAX_NAME_LEN", "100");
            jail.set_env("BULWARK_ADMIN_PASSWORD", "not configuration");
            let o = Overrides {
                config: Some("b.toml".into()),
                data_dir: Some("/tmp/x".into()),
                listen: None,
            };
            let c = Config::load(&o).expect("loads");
            assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
            assert_eq!(c.limits.max_manifest_bytes, 1000);
            assert_eq!(c.limits.max_name_len, 100);
            assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
            assert_eq!(c.limits.max_page, 10_000);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("b.toml", "[limits]\nmax_manifest_byte = 1\n")?;
            let o = Overrides {
                config: Some("b.toml".into()),
                ..Overrides::default()
            };
            assert!(Config::load(&o).is_err());
            Ok(())
        });
    }

    #[test]
    fn s3_section_loads_and_prints_without_secrets() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "[database]\nurl = \"postgres://u:pw@db:5432/bulwark\"\n\
                 [storage.s3]\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"bulwark\"\n\
                 region = \"garage\"\naccess_key_id = \"GK1\"\n\
                 secret_access_key = \"s3cr3t\"\npath_style = true\n",
            )?;
            jail.set_env("BULWARK_STORAGE__S3__PRESIGNED_REDIRECT", "true");
            let o = Overrides {
                config: Some("b.toml".into()),
                ..Overrides::default()
            };
            let c = Config::load(&o).expect("loads");
            let s3 = c.s3_options().expect("S3 configured");
            assert_eq!(s3.bucket, "bulwark");
            assert!(s3.path_style);
            assert_eq!(s3.part_size, bulwark_storage::DEFAULT_PART_SIZE);
            assert_eq!(s3.presign_ttl, Some(Duration::from_secs(300)));
            let printed = c.to_toml().unwrap();
            assert!(printed.contains("[storage.s3]"), "{printed}");
            assert!(printed.contains("access_key_id = \"GK1\""), "{printed}");
            assert!(
                !printed.contains("s3cr3t") && !printed.contains("pw@"),
                "{printed}"
            );
            assert!(printed.contains("postgres://u:<redacted>@db:5432/bulwark"));
            assert!(!format!("{c:?}").contains("s3cr3t"));
            assert!(Config::default().s3_options().is_none());
            Ok(())
        });
    }

    #[test]
    fn printed_config_loads_back() {
        let text = Config::default().to_toml().unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.listen, Config::default().listen);
    }

    #[test]
    fn audit_section_loads_with_its_sinks_and_prints_without_the_password() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "[audit]\nretention_days = 90\n\
                 [audit.syslog]\naddress = \"127.0.0.1:6514\"\ntransport = \"tcp\"\n\
                 [audit.elasticsearch]\nurl = \"http://127.0.0.1:9200\"\npassword = \"es-s3cr3t\"\n",
            )?;
            jail.set_env("BULWARK_AUDIT__FLUSH_INTERVAL_MS", "50");
            let o = Overrides {
                config: Some("b.toml".into()),
                ..Overrides::default()
            };
            let c = Config::load(&o).expect("loads");
            assert!(c.audit.enabled);
            assert_eq!(
                (c.audit.retention_days, c.audit.flush_interval_ms),
                (90, 50)
            );
            let syslog = c.audit.syslog.as_ref().expect("syslog");
            assert_eq!(syslog.transport, SyslogTransport::Tcp);
            assert_eq!(syslog.facility, 13);
            let es = c.audit.elasticsearch.as_ref().expect("elasticsearch");
            assert_eq!((es.index.as_str(), es.max_retries), ("bulwark-audit", 5));
            let printed = c.to_toml().unwrap();
            assert!(printed.contains("[audit.elasticsearch]"), "{printed}");
            assert!(!printed.contains("es-s3cr3t") && !format!("{c:?}").contains("es-s3cr3t"));
            Ok(())
        });
    }

    #[test]
    fn lifecycle_section_loads_and_its_default_window_must_be_an_option() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "[lifecycle]\ngc_every_secs = 0\ngc_grace_secs = 60\n\
                 time_machine_options_secs = [0, 3600]\ntime_machine_default_secs = 3600\n",
            )?;
            jail.set_env("BULWARK_LIFECYCLE__EXPIRE_EVERY_SECS", "5");
            let o = Overrides {
                config: Some("b.toml".into()),
                ..Overrides::default()
            };
            let c = Config::load(&o).expect("loads");
            assert_eq!(c.lifecycle.expire_every_secs, 5);
            assert_eq!(c.lifecycle.gc_every_secs, 0);
            let settings = c.lifecycle_settings().expect("valid");
            assert_eq!(settings.gc_grace, Duration::from_secs(60));
            assert_eq!(settings.time_machine_default, Duration::from_secs(3600));
            let mut bad = c.clone();
            bad.lifecycle.time_machine_default_secs = 60;
            assert!(bad.lifecycle_settings().is_err());
            Ok(())
        });
        Config::default()
            .lifecycle_settings()
            .expect("the defaults are consistent");
    }

    #[test]
    fn vulndb_sources_are_paths_or_http_urls_and_other_schemes_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "[scanner]\nvulndb = [\"/srv/osv\", \"https://osv.example/PyPI/all.zip\"]\n\
                 max_download_bytes = 1000\n",
            )?;
            let o = Overrides {
                config: Some("b.toml".into()),
                ..Overrides::default()
            };
            let c = Config::load(&o).expect("loads");
            assert_eq!(
                c.scanner.vulndb,
                [
                    Source::Path("/srv/osv".into()),
                    Source::Url("https://osv.example/PyPI/all.zip".parse().unwrap())
                ]
            );
            assert_eq!(c.scanner.max_download_bytes, 1000);
            let printed = toml::to_string(&c).expect("prints");
            assert!(
                printed.contains("https://osv.example/PyPI/all.zip"),
                "{printed}"
            );

            jail.set_env("BULWARK_SCANNER__VULNDB", "[\"ftp://osv.example/all.zip\"]");
            let err = Config::load(&o).unwrap_err().to_string();
            assert!(err.contains("ftp://"), "{err}");
            Ok(())
        });
    }
}
