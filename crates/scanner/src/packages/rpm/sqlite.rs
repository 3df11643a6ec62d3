//! `rpmdb.sqlite`: the `Packages` table's `blob` column.

use rusqlite::Connection;

/// The header blobs, read from the database bytes in memory (SQLite's deserialize: no
/// file is written).
pub(super) fn blobs(data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let err = |e: rusqlite::Error| e.to_string();
    let mut db = Connection::open_in_memory().map_err(err)?;
    db.deserialize_read_exact("main", data, data.len(), true)
        .map_err(err)?;
    // A hostile schema could make `Packages` a view with an endless query: read only a
    // real table, and let no schema-defined function run.
    db.execute_batch("PRAGMA trusted_schema = OFF; PRAGMA query_only = ON;")
        .map_err(err)?;
    let kind: Option<String> = db
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'",
            [],
            |r| r.get(0),
        )
        .ok();
    if kind.as_deref() != Some("table") {
        return Err("no Packages table".into());
    }
    let mut stmt = db.prepare("SELECT blob FROM Packages").map_err(err)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}
