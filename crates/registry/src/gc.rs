//! Online garbage collection.
//!
//! 1. Per repository, in one transaction no push to that repository runs beside: tag
//!    history older than the namespace's window goes; manifests not reachable go; links no
//!    remaining manifest references and not touched within the grace period go.
//!    Reachable: from a tag row (live or in the window), from a manifest created within the
//!    grace period, from an index (its children), as the subject of a reachable referrer,
//!    and as a referrer of a reachable subject.
//! 2. Blobs no repository links and no manifest references: each is marked as being deleted
//!    (only if no upload announced it), its bytes are deleted, then its row. No link or
//!    intent can be made while the mark stands, so no push ever references bytes that go.
//! 3. Bytes older than the grace period that no row names (a crash between commit and
//!    link) are claimed the same way and deleted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use bulwark_events::{Actor, Event, Origin};
use bulwark_meta::{GraphManifest, RepositoryCutoffs, now_millis};
use bulwark_oci::{Digest, namespace_of};
use futures::{StreamExt, TryStreamExt};

use crate::{Registry, RegistryError};

/// Blob candidates taken per query.
const BATCH: u32 = 1000;

/// Blob deletions in flight at once.
const DELETE_CONCURRENCY: usize = 16;

/// What one collection removed.
// Deserialize: the CLI reads it back from the management API.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub repositories: u64,
    pub history_rows: u64,
    pub manifests: u64,
    pub links: u64,
    /// Blobs whose bytes and row were deleted.
    pub blobs: u64,
    /// Bytes deleted that no row named.
    pub orphans: u64,
    pub bytes_reclaimed: u64,
    pub millis: u64,
}

impl Registry {
    /// Runs one collection over every repository and the blob store.
    pub async fn collect_garbage(&self) -> Result<GcReport, RegistryError> {
        let started = Instant::now();
        let mut report = GcReport::default();
        let now = now_millis();
        let grace = i64::try_from(self.lifecycle.gc_grace.as_millis()).unwrap_or(i64::MAX);
        let grace_before = now.saturating_sub(grace);
        let mut windows = HashMap::new();
        for repository in self.meta.all_repositories().await? {
            let namespace = namespace_of(&repository).to_owned();
            let window = match windows.get(&namespace) {
                Some(w) => *w,
                None => {
                    let w = self.time_machine_window(&namespace).await?;
                    windows.insert(namespace, w);
                    w
                }
            };
            let cutoffs = RepositoryCutoffs {
                history_before: now
                    .saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX)),
                grace_before,
            };
            let pick = |graph: &[GraphManifest]| unreachable(graph, grace_before);
            let got = self
                .meta
                .collect_repository(&repository, cutoffs, &pick)
                .await?;
            report.repositories += 1;
            report.history_rows += got.history_rows;
            report.manifests += got.manifests.len() as u64;
            report.links += got.links;
        }

        // An intent older than the upload lifetime belongs to an upload that died.
        let upload_ttl = i64::try_from(self.limits.upload_ttl.as_millis()).unwrap_or(i64::MAX);
        let intents_since = now.saturating_sub(upload_ttl);
        self.meta.purge_intents(intents_since).await?;
        loop {
            let candidates = self.meta.unreferenced_blobs(grace_before, BATCH).await?;
            let marked = self
                .meta
                .mark_blobs_deleting(&candidates, intents_since)
                .await?;
            self.delete_bytes(&marked).await?;
            let sizes = self.meta.forget_blobs(&marked).await?;
            report.blobs += sizes.len() as u64;
            report.bytes_reclaimed += sizes.iter().sum::<u64>();
            // A full batch of blobs kept alive by intents would come back forever.
            if candidates.len() < BATCH as usize || sizes.is_empty() {
                break;
            }
        }
        let stored = self.blobs.committed_blobs(self.lifecycle.gc_grace).await?;
        for batch in stored.chunks(BATCH as usize) {
            let digests: Vec<Digest> = batch.iter().map(|(d, _)| d.clone()).collect();
            let named = self.meta.stored_blobs(&digests).await?;
            let mut claimed = Vec::new();
            for (digest, size) in batch {
                if !named.contains(digest)
                    && self
                        .meta
                        .claim_orphan_blob(digest, *size, intents_since)
                        .await?
                {
                    claimed.push(digest.clone());
                }
            }
            self.delete_bytes(&claimed).await?;
            let sizes = self.meta.forget_blobs(&claimed).await?;
            report.orphans += sizes.len() as u64;
            report.bytes_reclaimed += sizes.iter().sum::<u64>();
        }
        report.millis = started.elapsed().as_millis() as u64;
        self.emit_gc(&report);
        Ok(report)
    }

    /// Deletes the bytes of blobs marked as being deleted, several at a time (each is a
    /// file unlink or an object-store request).
    async fn delete_bytes(&self, digests: &[Digest]) -> Result<(), RegistryError> {
        // Owned digests and store: a stream of borrowed ones would make the collection's
        // future not `Send` for every lifetime (a known limit of the compiler).
        futures::stream::iter(digests.to_vec())
            .map(|digest| {
                let blobs = self.blobs.clone();
                async move { blobs.delete(&digest).await }
            })
            .buffer_unordered(DELETE_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        Ok(())
    }

    fn emit_gc(&self, report: &GcReport) {
        self.events.emit(
            Event::new("gc.run", Actor::system(), Origin::default())
                .details(serde_json::to_value(report).unwrap_or_default()),
        );
    }
}

/// Ids of the manifests of one repository that nothing keeps (see the module comment).
pub(crate) fn unreachable(graph: &[GraphManifest], grace_before: i64) -> Vec<i64> {
    let by_digest: HashMap<&str, usize> = graph
        .iter()
        .enumerate()
        .map(|(i, m)| (m.digest.as_str(), i))
        .collect();
    let mut referrers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, m) in graph.iter().enumerate() {
        if let Some(subject) = &m.subject {
            referrers.entry(subject.as_str()).or_default().push(i);
        }
    }
    let mut reached = HashSet::new();
    let mut queue: VecDeque<usize> = graph
        .iter()
        .enumerate()
        .filter(|(_, m)| m.tagged || m.created_at >= grace_before)
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = queue.pop_front() {
        if !reached.insert(i) {
            continue;
        }
        let m = &graph[i];
        let children = m.children.iter().filter_map(|c| by_digest.get(c.as_str()));
        let subject = m.subject.as_deref().and_then(|s| by_digest.get(s));
        let its_referrers = referrers.get(m.digest.as_str()).into_iter().flatten();
        queue.extend(children.chain(subject).chain(its_referrers).copied());
    }
    graph
        .iter()
        .enumerate()
        .filter(|(i, _)| !reached.contains(i))
        .map(|(_, m)| m.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: i64, tagged: bool, created_at: i64) -> GraphManifest {
        GraphManifest {
            id,
            digest: format!("d{id}"),
            created_at,
            subject: None,
            children: vec![],
            tagged,
        }
    }

    #[test]
    fn reachability() {
        let old = 0;
        let mut graph = vec![
            // 1: tagged index of 2; 3 refers to 2 (a signature of a child).
            GraphManifest {
                children: vec!["d2".into()],
                ..m(1, true, old)
            },
            m(2, false, old),
            GraphManifest {
                subject: Some("d2".into()),
                ..m(3, false, old)
            },
            // 4: untagged and old; 5 refers to it: both go.
            m(4, false, old),
            GraphManifest {
                subject: Some("d4".into()),
                ..m(5, false, old)
            },
            // 6: untagged but within the grace period; 7 is its child.
            GraphManifest {
                children: vec!["d7".into()],
                ..m(6, false, 100)
            },
            m(7, false, old),
            // 8: a tagged referrer keeps its subject 9.
            GraphManifest {
                subject: Some("d9".into()),
                ..m(8, true, old)
            },
            m(9, false, old),
            // 10: refers to a subject that is not stored.
            GraphManifest {
                subject: Some("absent".into()),
                ..m(10, false, old)
            },
        ];
        let mut gone = unreachable(&graph, 50);
        gone.sort();
        assert_eq!(gone, vec![4, 5, 10]);
        graph[0].tagged = false;
        let mut gone = unreachable(&graph, 50);
        gone.sort();
        assert_eq!(gone, vec![1, 2, 3, 4, 5, 10]);
    }
}
