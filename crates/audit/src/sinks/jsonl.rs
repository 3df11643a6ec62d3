//! One JSON object per line, to standard output or appended to a file.

use std::path::Path;

use bulwark_events::Event;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::buffer::Deliver;

pub struct JsonLines {
    out: Box<dyn AsyncWrite + Send + Unpin>,
}

impl JsonLines {
    pub fn stdout() -> JsonLines {
        JsonLines {
            out: Box::new(tokio::io::stdout()),
        }
    }

    /// Appends to `path`, creating it.
    pub async fn file(path: &Path) -> std::io::Result<JsonLines> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await?;
        Ok(JsonLines {
            out: Box::new(file),
        })
    }
}

#[async_trait::async_trait]
impl Deliver for JsonLines {
    async fn deliver(&mut self, batch: Vec<Event>, _closing: bool) -> u64 {
        let mut buf = Vec::new();
        for event in &batch {
            // An Event always serializes (its details are a JSON value already).
            if serde_json::to_writer(&mut buf, &super::streamed(event)).is_ok() {
                buf.push(b'\n');
            }
        }
        let written = async {
            self.out.write_all(&buf).await?;
            self.out.flush().await
        };
        match written.await {
            Ok(()) => 0,
            Err(e) => {
                tracing::warn!(error = %e, "writing action log lines failed");
                batch.len() as u64
            }
        }
    }
}
