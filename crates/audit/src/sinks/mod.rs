//! Streaming copies of the action log, each optional and each behind its own queue (see
//! [`Buffered`](crate::Buffered)): a destination that is slow or away drops and counts,
//! never holds the registry.

mod elastic;
mod jsonl;
mod syslog;

pub use elastic::{Elastic, ElasticSettings};
pub use jsonl::JsonLines;
pub use syslog::{Syslog, SyslogSettings, Transport};

use bulwark_events::Event;
use serde::Serialize;

/// An event as the streaming sinks send it: the event and its time in RFC 3339.
#[derive(Serialize)]
struct Streamed<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    #[serde(flatten)]
    event: &'a Event,
}

fn streamed(event: &Event) -> Streamed<'_> {
    Streamed {
        timestamp: crate::search::rfc3339(event.time),
        event,
    }
}
