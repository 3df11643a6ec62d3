//! A manifest push as one batch of statements (SQLite's fast path; see `batch`).
//!
//! The transaction path (`SqlMetaStore::store_manifest_in_transaction`) reads what the
//! push depends on — the blobs and child manifests the repository holds, the tag's live
//! row — then writes, about eight hand-offs to SQLite's writer thread. Here every write
//! carries one condition instead, the *guard*: the repository exists, holds every blob
//! with its declared size and every child manifest, and the tag is not immutable at
//! another manifest. No statement of the batch changes what the guard reads (a manifest
//! is never its own child, and the tag rows it writes point at this manifest), so the
//! guard holds for the whole batch or for none of it: the push happens entirely or not at
//! all, and a final query reports which. When it did not, the caller takes the transaction
//! path, which creates a missing repository or reports exactly what is wrong.

use crate::batch::{
    Statement, Value,
    Value::{Bytes, Int, MaybeInt, MaybeText, Text},
};
use crate::sql::placeholders;
use crate::{NewManifest, TagOptions};

/// Manifests referencing more blobs and children than this take the transaction path: the
/// guard's lists are bound once per statement.
const MAX_BATCHED_REFERENCES: usize = 64;

/// The repository's id; `$1` is its name in every statement of the batch.
const REPOSITORY: &str = "(SELECT id FROM repositories WHERE name = $1)";

/// The statements storing `m` and moving its tag with `options` at `now`, the last one
/// returning a row if they did; `None` if `m` is too large to batch.
pub(crate) fn statements(
    m: &NewManifest<'_>,
    options: TagOptions,
    now: i64,
) -> Option<Vec<Statement>> {
    if m.blobs.len() + m.children.len() > MAX_BATCHED_REFERENCES {
        return None;
    }
    let guard = Guard::new(m, now);
    let manifest_id =
        format!("(SELECT id FROM manifests WHERE repository_id = {REPOSITORY} AND digest = $2)");
    let mut statements = vec![guard.statement(
        |n, guard| {
            format!(
                "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, \
                 subject_digest, annotations, size, content, created_at) \
                 SELECT {REPOSITORY}, $2, {}, $3 WHERE {guard} \
                 ON CONFLICT (repository_id, digest) DO NOTHING",
                placeholders(n, 6)
            )
        },
        vec![
            Text(m.media_type.to_owned()),
            MaybeText(m.artifact_type.map(str::to_owned)),
            MaybeText(m.subject.map(ToString::to_string)),
            MaybeText(m.annotations_json.clone()),
            Int(m.content.len() as i64),
            Bytes(m.content.to_vec()),
        ],
    )];
    // A manifest stored before has these references already (the same bytes reference the
    // same blobs and children): the inserts change nothing then.
    if let Some(blobs) = &guard.blobs {
        statements.push(guard.statement(
            |_, guard| {
                format!(
                    "INSERT INTO manifest_blobs (manifest_id, digest) \
                     SELECT DISTINCT {manifest_id}, column1 FROM (VALUES {blobs}) \
                     WHERE {guard} ON CONFLICT DO NOTHING"
                )
            },
            vec![],
        ));
    }
    if let Some(children) = &guard.children {
        statements.push(guard.statement(
            |_, guard| {
                format!(
                    "INSERT INTO manifest_children (manifest_id, child_digest) \
                     SELECT {manifest_id}, column1 FROM (VALUES {children}) \
                     WHERE {guard} ON CONFLICT DO NOTHING"
                )
            },
            vec![],
        ));
    }
    if let Some(tag) = &guard.tag {
        let options = || {
            vec![
                MaybeInt(options.expires_at),
                Int(i64::from(options.immutable)),
            ]
        };
        let live = format!("repository_id = {REPOSITORY} AND name = {tag} AND end_at IS NULL");
        let unexpired = "(expires_at IS NULL OR expires_at > $3)";
        // The same manifest again: what this push says about the tag applies (as in
        // `sql::move_tag`).
        statements.push(guard.statement(
            |n, guard| {
                let (expires, immutable) = (n, n + 1);
                format!(
                    "UPDATE tags SET immutable = CASE WHEN ${immutable} = 1 THEN 1 ELSE immutable END, \
                     expires_at = CASE WHEN ${immutable} = 1 THEN ${expires} \
                     WHEN immutable = 1 THEN expires_at ELSE COALESCE(${expires}, expires_at) END \
                     WHERE {live} AND manifest_digest = $2 AND {unexpired} AND {guard}"
                )
            },
            options(),
        ));
        // Another manifest, or this one expired: the row ends now, or at its expiry.
        statements.push(guard.statement(
            |_, guard| {
                format!(
                    "UPDATE tags SET end_at = CASE WHEN expires_at IS NOT NULL AND expires_at <= $3 \
                     THEN expires_at ELSE $3 END \
                     WHERE {live} AND NOT (manifest_digest = $2 AND {unexpired}) AND {guard}"
                )
            },
            vec![],
        ));
        statements.push(guard.statement(
            |n, guard| {
                format!(
                    "INSERT INTO tags (repository_id, name, manifest_digest, start_at, \
                     expires_at, immutable) SELECT {REPOSITORY}, {tag}, $2, $3, {} \
                     WHERE NOT EXISTS (SELECT 1 FROM tags WHERE {live}) AND {guard}",
                    placeholders(n, 2)
                )
            },
            options(),
        ));
    }
    statements.push(guard.statement(|_, guard| format!("SELECT 1 WHERE {guard}"), vec![]));
    Some(statements)
}

/// The condition every statement of the batch carries, and the values it binds: `$1` the
/// repository's name, `$2` the manifest's digest, `$3` now, then the guard's own from `$4`.
struct Guard {
    sql: String,
    values: Vec<Value>,
    /// `VALUES` rows (digest, declared size) of the blobs, if any.
    blobs: Option<String>,
    /// `VALUES` rows (digest) of the distinct children, if any.
    children: Option<String>,
    /// The tag's parameter, if pushed by tag.
    tag: Option<String>,
}

impl Guard {
    fn new(m: &NewManifest<'_>, now: i64) -> Guard {
        let mut values = vec![
            Text(m.repository.to_owned()),
            Text(m.digest.to_string()),
            Int(now),
        ];
        let mut conditions = vec![format!("EXISTS {REPOSITORY}")];
        let blobs = (!m.blobs.is_empty()).then(|| {
            let rows = rows(values.len() + 1, m.blobs.len(), 2);
            for &(digest, size) in &m.blobs {
                values.extend([Text(digest.to_string()), Int(size as i64)]);
            }
            // Every listed blob, duplicates included, held with the size listed.
            conditions.push(format!(
                "(SELECT count(*) FROM (VALUES {rows}) v \
                 JOIN repository_blobs rb ON rb.digest = v.column1 AND rb.repository_id = {REPOSITORY} \
                 JOIN blobs b ON b.digest = v.column1 AND b.size = v.column2) = {}",
                m.blobs.len()
            ));
            rows
        });
        let mut distinct_children = m.children.clone();
        distinct_children.sort();
        distinct_children.dedup();
        let children = (!distinct_children.is_empty()).then(|| {
            let rows = rows(values.len() + 1, distinct_children.len(), 1);
            values.extend(distinct_children.iter().map(|d| Text(d.to_string())));
            conditions.push(format!(
                "(SELECT count(*) FROM (VALUES {rows}) v \
                 JOIN manifests m ON m.digest = v.column1 AND m.repository_id = {REPOSITORY}) = {}",
                distinct_children.len()
            ));
            rows
        });
        let tag = m.tag.map(|tag| {
            values.push(Text(tag.to_owned()));
            let param = format!("${}", values.len());
            conditions.push(format!(
                "NOT EXISTS (SELECT 1 FROM tags WHERE repository_id = {REPOSITORY} \
                 AND name = {param} AND end_at IS NULL AND immutable = 1 \
                 AND manifest_digest <> $2 AND (expires_at IS NULL OR expires_at > $3))"
            ));
            param
        });
        Guard {
            sql: conditions.join(" AND "),
            values,
            blobs,
            children,
            tag,
        }
    }

    /// A statement whose text `sql(n, guard)` carries the guard and has its own parameters
    /// from `$n`, bound to `own`.
    fn statement(&self, sql: impl FnOnce(usize, &str) -> String, own: Vec<Value>) -> Statement {
        let sql = sql(self.values.len() + 1, &self.sql);
        let mut values = self.values.clone();
        values.extend(own);
        Statement::new(sql, values)
    }
}

/// `count` parenthesized rows of `width` parameters each, numbered from `first`.
fn rows(first: usize, count: usize, width: usize) -> String {
    (0..count)
        .map(|i| format!("({})", placeholders(first + i * width, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use bulwark_oci::Digest;
    use sqlx::Row;

    use super::*;
    use crate::batch::sqlite_transaction;
    use crate::sql::{SqlMetaStore, SqlOptions};
    use crate::{MetaError, MetaStore, now_millis};

    const REPO: &str = "ns/app";

    struct Pushed {
        content: Vec<u8>,
        digest: Digest,
        blobs: Vec<(Digest, u64)>,
        children: Vec<Digest>,
    }

    fn manifest(name: &str, blobs: &[(&Digest, u64)], children: &[&Digest]) -> Pushed {
        let content = format!("manifest {name}").into_bytes();
        Pushed {
            digest: Digest::sha256_of(&content),
            content,
            blobs: blobs.iter().map(|&(d, s)| (d.clone(), s)).collect(),
            children: children.iter().map(|&d| d.clone()).collect(),
        }
    }

    fn new_manifest<'a>(
        p: &'a Pushed,
        repository: &'a str,
        tag: Option<&'a str>,
    ) -> NewManifest<'a> {
        NewManifest {
            repository,
            digest: &p.digest,
            media_type: "application/vnd.oci.image.manifest.v1+json",
            artifact_type: None,
            subject: None,
            annotations_json: Some(r#"{"k":"v"}"#.into()),
            content: &p.content,
            blobs: p.blobs.iter().map(|(d, s)| (d, *s)).collect(),
            children: p.children.iter().collect(),
            tag,
        }
    }

    /// Two stores holding the same blobs in `REPO`: one for the batch, one for the
    /// transaction path.
    async fn stores(dir: &tempfile::TempDir, blobs: &[(&Digest, u64)]) -> [SqlMetaStore; 2] {
        let mut stores = Vec::new();
        for name in ["batch.db", "transaction.db"] {
            let store = SqlMetaStore::open_sqlite(&dir.path().join(name), &SqlOptions::default())
                .await
                .unwrap();
            for &(digest, size) in blobs {
                store.link_blob(REPO, digest, size).await.unwrap();
            }
            stores.push(store);
        }
        stores.try_into().unwrap_or_else(|_| unreachable!())
    }

    /// Whether the batch applied.
    async fn batch(store: &SqlMetaStore, m: &NewManifest<'_>, options: TagOptions) -> bool {
        let statements = statements(m, options, now_millis()).expect("small enough to batch");
        !sqlite_transaction(&store.write, statements)
            .await
            .unwrap()
            .is_empty()
    }

    /// What the manifests, their references and the tags say, without the times of day.
    async fn state(store: &SqlMetaStore) -> Vec<String> {
        let mut state = Vec::new();
        for sql in [
            "SELECT r.name || ' ' || m.digest || ' ' || m.media_type || ' ' || \
             COALESCE(m.annotations, '-') || ' ' || m.size || ' ' || hex(m.content) \
             FROM manifests m JOIN repositories r ON r.id = m.repository_id ORDER BY 1",
            "SELECT m.digest || ' blob ' || mb.digest FROM manifest_blobs mb \
             JOIN manifests m ON m.id = mb.manifest_id ORDER BY 1",
            "SELECT m.digest || ' child ' || mc.child_digest FROM manifest_children mc \
             JOIN manifests m ON m.id = mc.manifest_id ORDER BY 1",
            "SELECT name || ' ' || manifest_digest || ' ' || \
             CASE WHEN end_at IS NULL THEN 'live' WHEN end_at = expires_at THEN 'expired' \
             ELSE 'ended' END || ' immutable=' || immutable || ' expires=' || \
             COALESCE(expires_at, '-') FROM tags ORDER BY id",
        ] {
            for row in sqlx::query(sql).fetch_all(&store.read).await.unwrap() {
                state.push(row.try_get(0).unwrap());
            }
        }
        state
    }

    /// Every kind of tag move and reference list, applied by the batch, leaves what the
    /// transaction path leaves.
    #[tokio::test]
    async fn the_batch_stores_what_the_transaction_stores() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            Digest::sha256_of(b"a"),
            Digest::sha256_of(b"b"),
            Digest::sha256_of(b"c"),
        );
        let [batched, transacted] = stores(&dir, &[(&a, 1), (&b, 2), (&c, 3)]).await;
        let one = manifest("one", &[(&a, 1), (&b, 2)], &[]);
        let two = manifest("two", &[(&a, 1), (&c, 3), (&a, 1)], &[]);
        let three = manifest("three", &[(&a, 1)], &[]);
        let index = manifest(
            "index",
            &[(&c, 3)],
            &[&one.digest, &two.digest, &two.digest],
        );
        let now = now_millis();
        let later = TagOptions {
            immutable: false,
            expires_at: Some(now + 3_600_000),
        };
        let immutable = TagOptions {
            immutable: true,
            expires_at: None,
        };
        let pushes: Vec<(&Pushed, Option<&str>, TagOptions)> = vec![
            (&one, Some("t"), TagOptions::default()),
            // The same manifest again, now with an expiry.
            (&one, Some("t"), later),
            // The tag moves.
            (&two, Some("t"), TagOptions::default()),
            (&two, None, TagOptions::default()),
            // A tag whose expiry passed ends at its expiry when it moves.
            (
                &three,
                Some("x"),
                TagOptions {
                    immutable: false,
                    expires_at: Some(now - 1_000),
                },
            ),
            (&one, Some("x"), TagOptions::default()),
            // An immutable tag keeps its own expiry when pushed again without a rule.
            (&two, Some("i"), immutable),
            (&two, Some("i"), later),
            (&index, Some("multi"), TagOptions::default()),
        ];
        for (pushed, tag, options) in pushes {
            let m = new_manifest(pushed, REPO, tag);
            assert!(batch(&batched, &m, options).await, "{tag:?} applies");
            transacted
                .store_manifest_in_transaction(m, options)
                .await
                .unwrap();
        }
        let state_batched = state(&batched).await;
        assert_eq!(state_batched, state(&transacted).await);
        assert!(state_batched.iter().any(|row| row.contains("expired")));
        assert!(
            state_batched
                .iter()
                .any(|row| row.contains("immutable=1 expires=-"))
        );
    }

    /// A push the guard refuses leaves nothing behind, and the transaction path then says
    /// why.
    #[tokio::test]
    async fn a_refused_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, missing) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"missing"));
        let [store, _] = stores(&dir, &[(&a, 1)]).await;
        let held = manifest("held", &[(&a, 1)], &[]);
        let pinned = TagOptions {
            immutable: true,
            expires_at: None,
        };
        assert!(batch(&store, &new_manifest(&held, REPO, Some("pinned")), pinned).await);
        let before = state(&store).await;

        let refused = [
            (
                manifest("missing blob", &[(&a, 1), (&missing, 9)], &[]),
                REPO,
                None,
            ),
            (manifest("wrong size", &[(&a, 2)], &[]), REPO, None),
            (
                manifest("missing child", &[], &[&held.digest, &missing]),
                REPO,
                None,
            ),
            (manifest("other", &[(&a, 1)], &[]), REPO, Some("pinned")),
            (manifest("no repository", &[], &[]), "ns/none", Some("t")),
        ];
        for (pushed, repository, tag) in &refused {
            let m = new_manifest(pushed, repository, *tag);
            assert!(
                !batch(&store, &m, TagOptions::default()).await,
                "{m:?} is refused"
            );
            assert_eq!(state(&store).await, before);
            assert!(!store.repository_exists("ns/none").await.unwrap());
        }
        let errors = [
            matches!(
                store.put_manifest(new_manifest(&refused[0].0, REPO, None)).await,
                Err(MetaError::MissingReferences(m)) if m == [missing.clone()]
            ),
            matches!(
                store
                    .put_manifest(new_manifest(&refused[1].0, REPO, None))
                    .await,
                Err(MetaError::SizeMismatch {
                    declared: 2,
                    actual: 1,
                    ..
                })
            ),
            matches!(
                store.put_manifest(new_manifest(&refused[2].0, REPO, None)).await,
                Err(MetaError::MissingReferences(m)) if m == [missing.clone()]
            ),
            matches!(
                store.put_manifest(new_manifest(&refused[3].0, REPO, Some("pinned"))).await,
                Err(MetaError::ImmutableTag(t)) if t == "pinned"
            ),
        ];
        assert_eq!(errors, [true; 4]);
        // The transaction path creates the repository the batch would not.
        store
            .put_manifest(new_manifest(&refused[4].0, "ns/none", Some("t")))
            .await
            .unwrap();
        assert!(store.repository_exists("ns/none").await.unwrap());
    }
}
