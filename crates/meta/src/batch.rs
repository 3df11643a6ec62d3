//! Statements that run in order as one transaction, in one call to the database where the
//! driver allows it. sqlx runs each SQLite connection on its own thread, and every
//! statement — `BEGIN` and `COMMIT` included — is a hand-off to that thread and back: two
//! context switches, which cost more than a small statement itself. A multi-statement
//! query is one hand-off (its `$N` parameters numbered across the whole text), so on
//! SQLite the batch, wrapped in `BEGIN IMMEDIATE … COMMIT`, is one query. PostgreSQL's
//! extended protocol takes one statement per query: there they run one by one in the
//! caller's transaction.
//!
//! A batch must not branch on what its own statements find: statements that depend on a
//! condition carry it in their `WHERE`, and a final query can report the outcome.

use std::borrow::Cow;

use sqlx::AnyPool;
use sqlx::any::AnyRow;

use crate::MetaError;
use crate::sql::Tx;

/// A value bound to a statement's parameter.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    /// Typed nulls: PostgreSQL wants the column's type even for a null.
    MaybeInt(Option<i64>),
    MaybeText(Option<String>),
}

/// One statement, its parameters `$1…$n` bound to `values` in order.
pub(crate) struct Statement {
    sql: Cow<'static, str>,
    values: Vec<Value>,
}

impl Statement {
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>, values: impl Into<Vec<Value>>) -> Self {
        Statement {
            sql: sql.into(),
            values: values.into(),
        }
    }

    /// The statement as a query of its own, its values bound.
    pub(crate) fn query(&self) -> Query<'_> {
        let query = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_ref()));
        self.values
            .iter()
            .fold(query, |query, value| bind(query, value.clone()))
    }
}

/// Runs `statements` as one SQLite transaction on a connection of `pool` (the single writer),
/// in one query; returns the rows they return, in order.
pub(crate) async fn sqlite_transaction(
    pool: &AnyPool,
    statements: Vec<Statement>,
) -> Result<Vec<AnyRow>, MetaError> {
    let pool = pool.clone();
    // On a task of its own, so that a request dropped midway cannot stop the query between
    // its `BEGIN` and its `COMMIT` and hand the connection back inside the transaction.
    tokio::spawn(async move {
        let mut conn = pool.acquire().await?;
        let sql = format!("BEGIN IMMEDIATE;\n{}COMMIT;", joined(&statements));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in statements.into_iter().flat_map(|s| s.values) {
            query = bind(query, value);
        }
        match query.fetch_all(&mut *conn).await {
            Ok(rows) => Ok(rows),
            Err(e) => {
                // A statement failed, and its transaction may still be open: closing the
                // connection rolls it back; the pool opens a fresh one.
                let _ = conn.close().await;
                Err(e.into())
            }
        }
    })
    .await
    // Only a panic ends the task early: as when sqlx's own connection thread dies.
    .map_err(|_| MetaError::Database(sqlx::Error::WorkerCrashed))?
}

/// Runs `statements` one by one in `tx` (PostgreSQL); returns the rows they return, in order.
pub(crate) async fn run_each(
    tx: &mut Tx,
    statements: &[Statement],
) -> Result<Vec<AnyRow>, MetaError> {
    let mut rows = Vec::new();
    for statement in statements {
        rows.extend(statement.query().fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind(query: Query<'_>, value: Value) -> Query<'_> {
    match value {
        Value::Int(v) => query.bind(v),
        Value::Text(v) => query.bind(v),
        Value::Bytes(v) => query.bind(v),
        Value::MaybeInt(v) => query.bind(v),
        Value::MaybeText(v) => query.bind(v),
    }
}

/// The statements as one text, each one's parameters moved past those of the statements
/// before it.
fn joined(statements: &[Statement]) -> String {
    let mut sql = String::new();
    let mut offset = 0;
    for statement in statements {
        let mut rest = statement.sql.as_ref();
        while let Some(at) = rest.find('$') {
            sql.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let n: usize = rest[..digits]
                .parse()
                .expect("batched statements use only $N parameters");
            debug_assert!(
                (1..=statement.values.len()).contains(&n),
                "${n} has no value in {:?}",
                statement.sql
            );
            sql.push_str(&(n + offset).to_string());
            rest = &rest[digits..];
        }
        sql.push_str(rest);
        sql.push_str(";\n");
        offset += statement.values.len();
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_across_the_batch() {
        let statements = [
            Statement::new(
                "INSERT INTO t (a, b) VALUES ($1, $2)",
                [Value::Int(1), Value::Int(2)],
            ),
            Statement::new("SELECT 1 FROM t WHERE a = $1", [Value::Text("x".into())]),
            Statement::new(
                "UPDATE t SET a = $2 WHERE b = $1 OR c = $10",
                (0..10).map(Value::Int).collect::<Vec<_>>(),
            ),
        ];
        assert_eq!(
            joined(&statements),
            "INSERT INTO t (a, b) VALUES ($1, $2);\n\
             SELECT 1 FROM t WHERE a = $3;\n\
             UPDATE t SET a = $5 WHERE b = $4 OR c = $13;\n"
        );
    }

    /// A failing statement leaves nothing behind, and the writer connection is usable after:
    /// not stuck inside the failed batch's transaction.
    #[tokio::test]
    async fn a_failed_batch_changes_nothing_and_frees_the_writer() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        let insert = |a| Statement::new("INSERT INTO t (a) VALUES ($1)", [Value::Int(a)]);
        let failed = sqlite_transaction(&pool, vec![insert(1), insert(1)]).await;
        assert!(failed.is_err(), "the second insert breaks the primary key");
        let count = |pool: AnyPool| async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM t")
                .fetch_one(&pool)
                .await
                .unwrap()
        };
        assert_eq!(count(pool.clone()).await, 0);
        let rows = sqlite_transaction(
            &pool,
            vec![
                insert(2),
                Statement::new("SELECT a FROM t WHERE a = $1", [Value::Int(2)]),
            ],
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(count(pool).await, 1);
    }
}
