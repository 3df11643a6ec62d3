//! The hash chain: what an entry's hash covers. Each hash is SHA-256 over a version tag, the
//! previous entry's hash and the entry's stored fields in a fixed order, each length-prefixed
//! (with a presence byte for optional ones), so that no two different entries encode alike
//! and nothing depends on how JSON would be re-serialized: `details` is hashed as stored.

use bulwark_events::Event;
use bulwark_meta::AuditEntry;
use sha2::{Digest, Sha256};

/// The hash "before" the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const VERSION: &[u8] = b"bulwark-audit-v1\n";

/// The hash of `entry` following an entry whose hash is `prev` (hex).
pub fn hash(prev: &str, entry: &AuditEntry) -> String {
    let mut h = Sha256::new();
    h.update(VERSION);
    field(&mut h, Some(prev));
    h.update(entry.time.to_be_bytes());
    for value in [
        Some(entry.kind.as_str()),
        Some(entry.actor_kind.as_str()),
        Some(entry.actor_name.as_str()),
        Some(entry.actor_credential.as_str()),
        entry.address.as_deref(),
        entry.user_agent.as_deref(),
        entry.namespace.as_deref(),
        entry.repository.as_deref(),
        entry.target.as_deref(),
        Some(entry.details.as_str()),
    ] {
        field(&mut h, value);
    }
    hex::encode(h.finalize())
}

fn field(h: &mut Sha256, value: Option<&str>) {
    match value {
        None => h.update([0u8]),
        Some(v) => {
            h.update([1u8]);
            h.update((v.len() as u64).to_be_bytes());
            h.update(v.as_bytes());
        }
    }
}

/// An event as the log stores it.
pub fn entry_of(event: &Event) -> AuditEntry {
    AuditEntry {
        time: event.time,
        kind: event.kind.clone(),
        actor_kind: event.actor.kind.clone(),
        actor_name: event.actor.name.clone(),
        actor_credential: event.actor.credential.clone(),
        address: event.origin.address.map(|a| a.to_string()),
        user_agent: event.origin.user_agent.clone(),
        namespace: event.namespace.clone(),
        repository: event.repository.clone(),
        target: event.target.clone(),
        details: event.details.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            time: 1,
            kind: "pull".into(),
            actor_kind: "user".into(),
            actor_name: "alice".into(),
            actor_credential: "password".into(),
            address: Some("::1".into()),
            user_agent: None,
            namespace: Some("acme".into()),
            repository: Some("acme/app".into()),
            target: Some("latest".into()),
            details: "{}".into(),
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let base = hash(GENESIS, &entry());
        assert_eq!(base.len(), 64);
        assert_eq!(base, hash(GENESIS, &entry()));
        let changed: Vec<AuditEntry> = vec![
            AuditEntry { time: 2, ..entry() },
            AuditEntry {
                kind: "push".into(),
                ..entry()
            },
            AuditEntry {
                actor_name: "alicf".into(),
                ..entry()
            },
            AuditEntry {
                address: None,
                ..entry()
            },
            AuditEntry {
                user_agent: Some(String::new()),
                ..entry()
            },
            AuditEntry {
                target: Some("latest2".into()),
                ..entry()
            },
            AuditEntry {
                details: "{ }".into(),
                ..entry()
            },
            // Moving bytes between adjacent fields changes the encoding too.
            AuditEntry {
                namespace: Some("acme/".into()),
                repository: Some("app".into()),
                ..entry()
            },
        ];
        for e in changed {
            assert_ne!(hash(GENESIS, &e), base, "{e:?}");
        }
        assert_ne!(hash(&base, &entry()), base);
    }

    #[test]
    fn events_keep_every_field() {
        let event = Event::new(
            "push",
            bulwark_events::Actor {
                kind: "robot".into(),
                name: "acme+ci".into(),
                credential: "robot_token".into(),
            },
            bulwark_events::Origin {
                address: Some("10.0.0.1".parse().unwrap()),
                user_agent: Some("skopeo".into()),
            },
        )
        .repository("acme/app")
        .target("sha256:ab")
        .details(serde_json::json!({"tag": "v1"}));
        let e = entry_of(&event);
        assert_eq!(e.actor_name, "acme+ci");
        assert_eq!(e.address.as_deref(), Some("10.0.0.1"));
        assert_eq!(e.namespace.as_deref(), Some("acme"));
        assert_eq!(e.details, r#"{"tag":"v1"}"#);
    }
}
