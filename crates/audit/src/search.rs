//! Reading the log: searches within a scope (what the caller may see) with filters and a
//! cursor, counts per day and kind, and JSON Lines export. Entries read as JSON in Quay's
//! terms (`performer`, `ip`, `metadata`, `datetime`) plus their place in the chain.

use std::ops::ControlFlow;

use bulwark_meta::{AuditFilter, AuditPage, AuditRecord, AuditStore};
use serde::Serialize;

use crate::AuditError;

/// Whose log: the scope is fixed by the route (and authorized there); filters narrow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Repository(String),
    Namespace(String),
    /// What an account did, and what happened in its namespace.
    Account(String),
    All,
}

/// Filters a caller may add.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub kinds: Vec<String>,
    pub actor: Option<String>,
    pub repository: Option<String>,
    /// Milliseconds, inclusive.
    pub since: Option<i64>,
    /// Milliseconds, exclusive.
    pub until: Option<i64>,
}

/// The store's filter for `query` within `scope`; `None` when nothing can match (a
/// repository outside the scope).
fn filter(scope: &Scope, query: &Query) -> Option<AuditFilter> {
    let mut f = AuditFilter {
        kinds: query.kinds.clone(),
        actor: query.actor.clone(),
        repository: query.repository.clone(),
        since: query.since,
        until: query.until,
        ..AuditFilter::default()
    };
    match scope {
        Scope::Repository(repo) => {
            if f.repository.as_ref().is_some_and(|r| r != repo) {
                return None;
            }
            f.repository = Some(repo.clone());
        }
        Scope::Namespace(ns) => f.namespace = Some(ns.clone()),
        Scope::Account(name) => f.involving = Some(name.clone()),
        Scope::All => {}
    }
    Some(f)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Performer {
    pub kind: String,
    pub name: String,
    pub credential: String,
}

/// An entry as the API, the CLI and exports show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogEntry {
    /// Its position in the chain.
    pub id: i64,
    pub kind: String,
    /// RFC 3339, UTC.
    pub datetime: String,
    /// Milliseconds since the epoch.
    pub time: i64,
    pub performer: Performer,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub namespace: Option<String>,
    pub repository: Option<String>,
    pub target: Option<String>,
    pub metadata: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl From<AuditRecord> for LogEntry {
    fn from(r: AuditRecord) -> LogEntry {
        let e = r.entry;
        LogEntry {
            id: r.seq,
            datetime: rfc3339(e.time),
            time: e.time,
            metadata: serde_json::from_str(&e.details)
                .unwrap_or(serde_json::Value::String(e.details)),
            kind: e.kind,
            performer: Performer {
                kind: e.actor_kind,
                name: e.actor_name,
                credential: e.actor_credential,
            },
            ip: e.address,
            user_agent: e.user_agent,
            namespace: e.namespace,
            repository: e.repository,
            target: e.target,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// One page of a search, newest first.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub logs: Vec<LogEntry>,
    /// Pass back as `next_page` for the following page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<String>,
}

/// Entries of one kind on one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Aggregate {
    pub kind: String,
    pub count: i64,
    /// `YYYY-MM-DD`, UTC.
    pub datetime: String,
}

/// Newest first, `limit` per page (at least 1), continuing after `cursor`.
pub async fn search(
    store: &dyn AuditStore,
    scope: &Scope,
    query: &Query,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page, AuditError> {
    let after = cursor
        .map(|c| c.parse::<i64>().map_err(|_| AuditError::BadCursor))
        .transpose()?;
    let Some(filter) = filter(scope, query) else {
        return Ok(Page {
            logs: Vec::new(),
            next_page: None,
        });
    };
    let limit = limit.max(1);
    let mut rows = store
        .search_audit(
            &filter,
            AuditPage {
                after,
                limit: limit + 1,
                newest_first: true,
            },
        )
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_page = more
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    Ok(Page {
        logs: rows.into_iter().map(LogEntry::from).collect(),
        next_page,
    })
}

pub async fn aggregate(
    store: &dyn AuditStore,
    scope: &Scope,
    query: &Query,
) -> Result<Vec<Aggregate>, AuditError> {
    let Some(filter) = filter(scope, query) else {
        return Ok(Vec::new());
    };
    Ok(store
        .count_audit(&filter)
        .await?
        .into_iter()
        .map(|c| Aggregate {
            kind: c.kind,
            count: c.count,
            datetime: chrono::DateTime::from_timestamp(c.day * 86_400, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
        })
        .collect())
}

/// Writes the matching entries oldest first as JSON Lines; returns how many.
pub async fn export(
    store: &dyn AuditStore,
    scope: &Scope,
    query: &Query,
    out: &mut dyn std::io::Write,
) -> Result<u64, AuditError> {
    let Some(filter) = filter(scope, query) else {
        return Ok(0);
    };
    let mut n = 0;
    walk_entries(store, &filter, None, |row| {
        serde_json::to_writer(&mut *out, &LogEntry::from(row))?;
        out.write_all(b"\n")?;
        n += 1;
        Ok(ControlFlow::Continue(()))
    })
    .await?;
    out.flush()?;
    Ok(n)
}

/// Entries read per query when walking the log.
const WALK_PAGE: u32 = 1000;

/// Hands `each` the stored entries matching `filter` oldest first, from past position
/// `after`, a page at a time, until they end or `each` breaks.
pub(crate) async fn walk_entries(
    store: &dyn AuditStore,
    filter: &AuditFilter,
    mut after: Option<i64>,
    mut each: impl FnMut(AuditRecord) -> Result<ControlFlow<()>, AuditError>,
) -> Result<(), AuditError> {
    loop {
        let page = AuditPage {
            after,
            limit: WALK_PAGE,
            newest_first: false,
        };
        let rows = store.search_audit(filter, page).await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = Some(last.seq);
        for row in rows {
            if each(row)?.is_break() {
                return Ok(());
            }
        }
    }
}

/// Reads a time bound: RFC 3339, a date (`YYYY-MM-DD`, midnight UTC), or milliseconds.
pub fn parse_time(s: &str) -> Result<i64, AuditError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| AuditError::BadTime(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_bound_filters() {
        let q = Query {
            repository: Some("acme/app".into()),
            ..Query::default()
        };
        assert!(filter(&Scope::Repository("acme/db".into()), &q).is_none());
        let f = filter(&Scope::Repository("acme/app".into()), &q).unwrap();
        assert_eq!(f.repository.as_deref(), Some("acme/app"));
        let f = filter(&Scope::Namespace("acme".into()), &q).unwrap();
        assert_eq!(
            (f.namespace.as_deref(), f.repository.as_deref()),
            (Some("acme"), Some("acme/app"))
        );
        let f = filter(&Scope::Account("alice".into()), &Query::default()).unwrap();
        assert_eq!(f.involving.as_deref(), Some("alice"));
    }

    #[test]
    fn times_parse_in_three_forms() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        assert_eq!(rfc3339(1500), "1970-01-01T00:00:01.500Z");
        assert!(parse_time("yesterday").is_err());
    }
}
