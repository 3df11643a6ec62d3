//! Statements that run in order inside one transaction, as one call to the database where
//! the driver allows it. sqlx runs each SQLite connection on its own thread, and every
//! statement is a hand-off to that thread and back: two context switches, which cost more
//! than a small statement itself. A multi-statement query is one hand-off, its `$N`
//! parameters numbered across the whole text, so a batch is joined into one for SQLite.
//! PostgreSQL's extended protocol takes one statement per query: there they run one by one.

use sqlx::any::AnyRow;

use crate::MetaError;
use crate::sql::{Dialect, Tx};

/// A value bound to a statement's parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    Int(i64),
    Text(&'a str),
}

/// One statement, its parameters `$1…$n` bound to `values` in order.
pub(crate) struct Statement<'a> {
    sql: &'static str,
    values: Vec<Value<'a>>,
}

impl<'a> Statement<'a> {
    pub(crate) fn new(sql: &'static str, values: impl Into<Vec<Value<'a>>>) -> Self {
        Statement {
            sql,
            values: values.into(),
        }
    }
}

/// Runs `statements` in order in `tx`; returns the rows they return, in order.
pub(crate) async fn run(
    tx: &mut Tx,
    dialect: Dialect,
    statements: &[Statement<'_>],
) -> Result<Vec<AnyRow>, MetaError> {
    match dialect {
        Dialect::Sqlite => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(joined(statements)));
            for value in statements.iter().flat_map(|s| &s.values) {
                query = bind(query, *value);
            }
            Ok(query.fetch_all(&mut **tx).await?)
        }
        Dialect::Postgres => {
            let mut rows = Vec::new();
            for statement in statements {
                let mut query = sqlx::query(statement.sql);
                for value in &statement.values {
                    query = bind(query, *value);
                }
                rows.extend(query.fetch_all(&mut **tx).await?);
            }
            Ok(rows)
        }
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind<'q>(query: Query<'q>, value: Value<'_>) -> Query<'q> {
    match value {
        Value::Int(v) => query.bind(v),
        Value::Text(v) => query.bind(v.to_owned()),
    }
}

/// The statements as one text, each one's parameters moved past those of the statements
/// before it.
fn joined(statements: &[Statement<'_>]) -> String {
    let mut sql = String::new();
    let mut offset = 0;
    for statement in statements {
        let mut rest = statement.sql;
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
            Statement::new("SELECT 1 FROM t WHERE a = $1", [Value::Text("x")]),
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
}
