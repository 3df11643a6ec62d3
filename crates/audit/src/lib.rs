//! The action log: every [`Event`](bulwark_events::Event) the layers emit, kept so that a
//! security team can answer who did what, from where and when, and trust the answer.
//!
//! - [`buffer`]: sinks never block the request path: a bounded queue per sink, drained in
//!   batches by a task (full batch or flush interval), drops counted; closing delivers what
//!   is queued (graceful shutdown).
//! - [`store`]: the persistent log in the metadata store, each entry chained by hash to the
//!   one before ([`chain`]); checkpoints of the chain head and retention cuts signed with
//!   the registry's key.
//! - [`verify`]: walks the chain and says where it was edited, deleted, inserted or
//!   reordered.
//! - [`archive`]: what retention removes, written first to a JSON Lines file that ends
//!   with the signed cut and verifies on its own.
//! - [`search`]: scoped searches with filters and a cursor, counts per day and kind,
//!   JSON Lines export.
//! - [`sinks`]: optional streaming copies: JSON Lines to stdout or a file, syslog
//!   (RFC 5424), Elasticsearch/OpenSearch (bulk API).

pub mod archive;
pub mod buffer;
pub mod chain;
pub mod search;
pub mod sinks;
pub mod store;
pub mod verify;

use std::sync::Arc;

use bulwark_events::{EventSink, FanOut};
use bulwark_meta::{AuditStore, MetaError};

pub use buffer::{BufferSettings, Buffered, Deliver};
pub use search::{Aggregate, LogEntry, Page, Query, Scope};
pub use verify::{Finding, Report, Tamper};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("signing a checkpoint: {0}")]
    Sign(#[from] bulwark_auth::AuthError),
    #[error("invalid page cursor")]
    BadCursor,
    #[error("invalid time {0:?} (expected RFC 3339, YYYY-MM-DD or milliseconds)")]
    BadTime(String),
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    #[error("unreadable archive: {0}")]
    Archive(String),
    #[error("encoding an entry: {0}")]
    Json(#[from] serde_json::Error),
}

/// The running action log: the persistent log and any streaming sinks, each behind its own
/// queue, fed by one [`EventSink`].
pub struct ActionLog {
    sinks: Vec<Arc<Buffered>>,
    fan_out: Arc<FanOut>,
}

impl ActionLog {
    /// Starts the persistent log (if `store` is given) and `streams`, each with `settings`.
    pub fn start(
        store: Option<Arc<dyn AuditStore>>,
        streams: Vec<(&'static str, Box<dyn Deliver>)>,
        settings: BufferSettings,
    ) -> ActionLog {
        let mut sinks = Vec::new();
        if let Some(store) = store {
            sinks.push(Buffered::start(
                "database",
                settings,
                store::StoreWriter::new(store),
            ));
        }
        for (name, deliver) in streams {
            sinks.push(Buffered::start(name, settings, deliver));
        }
        let fan_out = Arc::new(FanOut(
            sinks
                .iter()
                .map(|s| s.clone() as Arc<dyn EventSink>)
                .collect(),
        ));
        ActionLog { sinks, fan_out }
    }

    /// Where layers emit.
    pub fn sink(&self) -> Arc<dyn EventSink> {
        self.fan_out.clone()
    }

    /// Delivers what every sink holds, then stops them.
    pub async fn close(&self) {
        futures::future::join_all(self.sinks.iter().map(|s| s.close())).await;
    }
}
