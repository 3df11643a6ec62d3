//! Events: what happened, who did it, from where. Every layer that changes something or
//! makes a security decision emits an [`Event`] through an [`EventSink`]; the action log
//! stores them, notifications and metrics read them. Emitting never blocks the caller and
//! never fails it: a sink that cannot keep up drops and counts.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Who acted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `anonymous`, `user`, `robot`, or `system` for background work.
    pub kind: String,
    /// The account name (`user`, `ns+robot`); empty for anonymous and system.
    pub name: String,
    /// How the actor authenticated: `password`, `app_token`, `robot_token`, `api_token`,
    /// `registry_token`, or empty.
    pub credential: String,
}

impl Actor {
    pub fn anonymous() -> Actor {
        Actor {
            kind: "anonymous".into(),
            ..Actor::default()
        }
    }

    pub fn system() -> Actor {
        Actor {
            kind: "system".into(),
            ..Actor::default()
        }
    }
}

/// Where a request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Dotted kind, e.g. `login.success`, `login.failure`, `token.issued`, `robot.create`,
    /// `repository.visibility`, `permission.set`, `push`, `pull`, `tag.move`.
    pub kind: String,
    pub actor: Actor,
    pub origin: Origin,
    pub namespace: Option<String>,
    pub repository: Option<String>,
    /// A tag, a digest, or the name of the account/team/token the event is about.
    pub target: Option<String>,
    pub details: serde_json::Value,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
}

impl Event {
    /// An event of `kind` by `actor` now, with nothing else set.
    pub fn new(kind: impl Into<String>, actor: Actor, origin: Origin) -> Event {
        Event {
            kind: kind.into(),
            actor,
            origin,
            namespace: None,
            repository: None,
            target: None,
            details: serde_json::Value::Null,
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        }
    }

    /// Sets the repository and the namespace it belongs to.
    pub fn repository(mut self, repository: &str) -> Event {
        self.namespace = Some(bulwark_oci::namespace_of(repository).to_owned());
        self.repository = Some(repository.to_owned());
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Event {
        self.namespace = Some(namespace.to_owned());
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Event {
        self.target = Some(target.into());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Event {
        self.details = details;
        self
    }
}

/// Receives events. `emit` must return at once: sinks queue or drop, never block.
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, event: Event);
}

/// Writes each event as one structured log line (target `bulwark::event`). The default
/// until a persistent action log is configured.
#[derive(Debug, Default)]
pub struct LogSink;

impl EventSink for LogSink {
    fn emit(&self, event: Event) {
        match serde_json::to_string(&event) {
            Ok(json) => tracing::info!(target: "bulwark::event", kind = %event.kind, event = %json),
            Err(e) => tracing::warn!(target: "bulwark::event", error = %e, "unserializable event"),
        }
    }
}

/// Sends every event to each of several sinks.
#[derive(Default)]
pub struct FanOut(pub Vec<Arc<dyn EventSink>>);

impl EventSink for FanOut {
    fn emit(&self, event: Event) {
        if let Some((last, rest)) = self.0.split_last() {
            for sink in rest {
                sink.emit(event.clone());
            }
            last.emit(event);
        }
    }
}

/// Keeps events in memory, for tests of what a layer emits.
#[derive(Debug, Default)]
pub struct MemorySink(pub std::sync::Mutex<Vec<Event>>);

impl MemorySink {
    pub fn kinds(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|v| v.iter().map(|e| e.kind.clone()).collect())
            .unwrap_or_default()
    }
}

impl EventSink for MemorySink {
    fn emit(&self, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}
