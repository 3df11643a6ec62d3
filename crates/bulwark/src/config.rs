//! Configuration: defaults, then a TOML file, then `BULWARK_…` environment variables
//! (`__` separates sections: `BULWARK_LIMITS__MAX_MANIFEST_BYTES`), then command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

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
    pub limits: Limits,
    pub log: Log,
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
            limits: Limits {
                max_manifest_bytes: limits.max_manifest_bytes,
                max_name_len: limits.max_name_len,
                max_blob_bytes: limits.max_blob_bytes,
                upload_ttl_secs: limits.upload_ttl.as_secs(),
                max_page: limits.max_page,
            },
            log: Log {
                level: "info".into(),
                format: LogFormat::Text,
                access: true,
            },
            tls: None,
        }
    }
}

/// Top-level keys, so that unrelated `BULWARK_*` variables are not read as configuration.
const KEYS: [&str; 7] = [
    "listen",
    "data_dir",
    "shutdown_grace_secs",
    "database",
    "limits",
    "log",
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

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
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
    fn printed_config_loads_back() {
        let text = Config::default().to_toml().unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.listen, Config::default().listen);
    }
}
