//! Elasticsearch or OpenSearch through the bulk API. Each event gets an id of its own, sent
//! with `create`, so that a retried batch the server had partly indexed does not index twice
//! (the copies answer 409, taken as done). Whole-request failures (connection, 429, 5xx)
//! and items refused with 429 or 5xx are retried with exponential backoff up to
//! `max_retries`; what is still refused then, or refused for good (a mapping error), is
//! counted as dropped. While it retries, the queue in front fills and drops: that is the
//! back-pressure, and the registry never waits.

use std::time::Duration;

use bulwark_events::Event;

use crate::buffer::Deliver;

#[derive(Clone, Debug)]
pub struct ElasticSettings {
    /// Base URL, e.g. `http://127.0.0.1:9200`.
    pub url: String,
    pub index: String,
    pub username: String,
    pub password: String,
    pub max_retries: u32,
    /// First backoff; doubles each retry up to 30 s.
    pub backoff: Duration,
    pub timeout: Duration,
}

pub struct Elastic {
    settings: ElasticSettings,
    client: reqwest::Client,
    /// Prefix of this process's document ids.
    node: String,
    next_id: u64,
}

impl Elastic {
    pub fn new(settings: ElasticSettings) -> Result<Elastic, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()?;
        let node = format!("{:x}-{:x}", std::process::id(), bulwark_meta::now_millis());
        Ok(Elastic {
            settings,
            client,
            node,
            next_id: 0,
        })
    }

    /// Sends `docs` (id, JSON); returns the ones to retry, or `Err` if the whole request
    /// should be retried. Items refused for good are counted in `refused`.
    async fn send(
        &self,
        docs: &[(String, String)],
        refused: &mut u64,
    ) -> Result<Vec<(String, String)>, String> {
        let mut body = String::new();
        for (id, doc) in docs {
            let action = serde_json::json!({"create": {"_index": self.settings.index, "_id": id}});
            body.push_str(&action.to_string());
            body.push('\n');
            body.push_str(doc);
            body.push('\n');
        }
        let mut request = self
            .client
            .post(format!("{}/_bulk", self.settings.url.trim_end_matches('/')))
            .header("content-type", "application/x-ndjson")
            .body(body);
        if !self.settings.username.is_empty() {
            request = request.basic_auth(&self.settings.username, Some(&self.settings.password));
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(format!("the server answered {status}"));
        }
        if !status.is_success() {
            // A request the server will never take (bad URL, credentials): no retry.
            tracing::warn!(%status, "the search cluster refused an action log batch");
            *refused += docs.len() as u64;
            return Ok(Vec::new());
        }
        let answer: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        if answer["errors"] != serde_json::Value::Bool(true) {
            return Ok(Vec::new());
        }
        let items = answer["items"].as_array().cloned().unwrap_or_default();
        let mut retry = Vec::new();
        for (doc, item) in docs.iter().zip(items.iter()) {
            let status = item["create"]["status"].as_u64().unwrap_or(500);
            match status {
                200..=299 | 409 => {}
                429 | 500..=599 => retry.push(doc.clone()),
                _ => {
                    tracing::warn!(status, error = %item["create"]["error"], "the search cluster refused an action log entry");
                    *refused += 1;
                }
            }
        }
        Ok(retry)
    }
}

#[async_trait::async_trait]
impl Deliver for Elastic {
    async fn deliver(&mut self, batch: Vec<Event>, _closing: bool) -> u64 {
        let mut docs = Vec::with_capacity(batch.len());
        for event in &batch {
            self.next_id += 1;
            let doc = serde_json::to_string(&super::streamed(event)).unwrap_or_default();
            docs.push((format!("{}-{}", self.node, self.next_id), doc));
        }
        let mut refused = 0;
        let mut delay = self.settings.backoff;
        for attempt in 0..=self.settings.max_retries {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            match self.send(&docs, &mut refused).await {
                Ok(retry) if retry.is_empty() => return refused,
                Ok(retry) => docs = retry,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "sending action log entries to the search cluster failed")
                }
            }
        }
        refused + docs.len() as u64
    }
}
