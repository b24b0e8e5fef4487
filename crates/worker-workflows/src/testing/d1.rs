//! D1 on the test engine: an in-memory SQLite database (D1 is SQLite) with the
//! Worker's own migrations (`migrations/*.sql`, or another folder) applied in order, answering as the Worker's D1 backend
//! does: changed-row counts, rows as column-name maps, batches in one transaction, and
//! failures as retryable `D1: …` errors.

use crate::bridge::engine::{SqlRow, SqlStatement, SqlValue};
use crate::core::step_error::StepError;
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{params_from_iter, Connection};
use serde_json::{Number, Value};
use std::cell::RefCell;
use std::path::Path;

pub(crate) struct SqliteD1 {
    connection: RefCell<Connection>,
}

fn failed(e: rusqlite::Error) -> StepError {
    StepError::failed(format!("D1: {e}"))
}

fn bound(statement: &SqlStatement<'_>) -> Vec<Sql> {
    statement
        .params
        .iter()
        .map(|value| match value {
            SqlValue::Null => Sql::Null,
            SqlValue::Integer(n) => Sql::Integer(*n),
            SqlValue::Real(n) => Sql::Real(*n),
            SqlValue::Text(s) => Sql::Text(s.to_string()),
        })
        .collect()
}

fn json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::from(n),
        ValueRef::Real(n) => Number::from_f64(n).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Array(b.iter().map(|&byte| Value::from(byte)).collect()),
    }
}

impl SqliteD1 {
    /// A fresh database with every `*.sql` of `dir` applied, by file name order, as
    /// `wrangler d1 migrations apply` applies them. A folder that does not exist gives an
    /// empty database.
    pub fn with_migrations(dir: &Path) -> Self {
        let db = Self::empty();
        if !dir.exists() {
            return db;
        }
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("test engine: cannot read {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        for file in files {
            let sql = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("test engine: cannot read {}: {e}", file.display()));
            db.execute_script(&sql).unwrap_or_else(|e| panic!("test engine: migration {} failed: {e}", file.display()));
        }
        db
    }

    pub fn empty() -> Self {
        SqliteD1 { connection: RefCell::new(Connection::open_in_memory().expect("an in-memory SQLite database opens")) }
    }

    /// Runs SQL text (several statements) as the test's own setup or check.
    pub fn execute_script(&self, sql: &str) -> Result<(), StepError> {
        self.connection.borrow().execute_batch(sql).map_err(failed)
    }

    /// Runs one statement; the rows it changed (none for a query).
    pub fn run(&self, statement: &SqlStatement<'_>) -> Result<u64, StepError> {
        let connection = self.connection.borrow();
        let mut prepared = connection.prepare(&statement.sql).map_err(failed)?;
        let read_only = prepared.readonly();
        let mut rows = prepared.query(params_from_iter(bound(statement))).map_err(failed)?;
        while rows.next().map_err(failed)?.is_some() {}
        drop(rows);
        Ok(if read_only { 0 } else { connection.changes() })
    }

    /// Runs a query; every row as a map of column name to value.
    pub fn rows(&self, statement: &SqlStatement<'_>) -> Result<Vec<SqlRow>, StepError> {
        let connection = self.connection.borrow();
        let mut prepared = connection.prepare(&statement.sql).map_err(failed)?;
        let names: Vec<String> = prepared.column_names().map(str::to_string).collect();
        let mut rows = prepared.query(params_from_iter(bound(statement))).map_err(failed)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(failed)? {
            let mut map = SqlRow::new();
            for (i, name) in names.iter().enumerate() {
                map.insert(name.clone(), json(row.get_ref(i).map_err(failed)?));
            }
            out.push(map);
        }
        Ok(out)
    }

    /// Runs the statements in one transaction: all or nothing.
    pub fn batch(&self, statements: &[SqlStatement<'_>]) -> Result<(), StepError> {
        let mut connection = self.connection.borrow_mut();
        let transaction = connection.transaction().map_err(failed)?;
        for statement in statements {
            let mut prepared = transaction.prepare(&statement.sql).map_err(failed)?;
            let mut rows = prepared.query(params_from_iter(bound(statement))).map_err(failed)?;
            while rows.next().map_err(failed)?.is_some() {}
        }
        transaction.commit().map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn statement<'a>(sql: &'a str, params: Vec<SqlValue<'a>>) -> SqlStatement<'a> {
        SqlStatement { sql: Cow::Borrowed(sql), params }
    }

    /// This crate's own migrations: the library's schema.
    fn library_db() -> SqliteD1 {
        SqliteD1::with_migrations(&Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
    }

    #[test]
    fn migrations_are_applied_and_statements_answer_like_d1() {
        let db = library_db();
        let insert = "INSERT INTO instances (workflow, id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
        let row = |time: i64| statement(insert, vec!["w".into(), "i-1".into(), SqlValue::Integer(time)]);
        assert_eq!(db.run(&row(5)).unwrap(), 1);
        assert_eq!(db.run(&row(6)).unwrap(), 0, "the conflict changes nothing");
        let rows = db.rows(&statement("SELECT workflow, id, created_at, callback FROM instances", vec![])).unwrap();
        assert_eq!(Value::Object(rows[0].clone()), serde_json::json!({"workflow": "w", "id": "i-1", "created_at": 5, "callback": null}));
        assert_eq!(db.run(&statement("SELECT * FROM instances", vec![])).unwrap(), 0);
        assert!(SqliteD1::with_migrations(Path::new("/nonexistent/migrations")).rows(&statement("SELECT 1 AS one", vec![])).is_ok());
    }

    #[test]
    fn a_batch_is_all_or_nothing_and_errors_are_retryable() {
        let db = library_db();
        let ok = statement("INSERT INTO job_failures (message_id, reason, attempts, failed_at) VALUES ('m', 'r', 1, 1)", vec![]);
        let bad = statement("INSERT INTO nowhere VALUES (1)", vec![]);
        let err = db.batch(&[ok.clone(), bad]).unwrap_err();
        assert!(matches!(&err, StepError::Failed(m) if m.starts_with("D1: ") && m.contains("nowhere")), "{err:?}");
        assert!(db.rows(&statement("SELECT * FROM job_failures", vec![])).unwrap().is_empty());
        db.batch(&[ok]).unwrap();
        assert_eq!(db.rows(&statement("SELECT * FROM job_failures", vec![])).unwrap().len(), 1);
    }

    #[test]
    fn the_index_records_a_childs_parent_and_finds_a_parents_children() {
        use crate::core::instance_index::{CHILDREN, INSERT, INSERT_CHILD, PARENT};
        let db = library_db();
        let child = |id: &'static str, at: i64| {
            statement(INSERT_CHILD, vec!["chunk".into(), id.into(), SqlValue::Integer(at), "pipeline".into(), "p-1".into()])
        };
        assert_eq!(db.run(&statement(INSERT, vec!["pipeline".into(), "p-1".into(), SqlValue::Integer(1)])).unwrap(), 1);
        assert_eq!(db.run(&child("c-2", 3)).unwrap(), 1);
        assert_eq!(db.run(&child("c-1", 2)).unwrap(), 1);
        assert_eq!(db.run(&child("c-1", 9)).unwrap(), 0, "a claim held is held");
        let other = statement(INSERT_CHILD, vec!["chunk".into(), "c-9".into(), SqlValue::Integer(4), "pipeline".into(), "p-2".into()]);
        db.run(&other).unwrap();
        let children = db.rows(&statement(CHILDREN, vec!["pipeline".into(), "p-1".into(), SqlValue::Integer(10)])).unwrap();
        let ids: Vec<Value> = children.iter().map(|r| r["id"].clone()).collect();
        assert_eq!(ids, [serde_json::json!("c-1"), serde_json::json!("c-2")], "oldest first, only its own");
        let limited = db.rows(&statement(CHILDREN, vec!["pipeline".into(), "p-1".into(), SqlValue::Integer(1)])).unwrap();
        assert_eq!(limited.len(), 1);
        let parent = db.rows(&statement(PARENT, vec!["chunk".into(), "c-2".into()])).unwrap();
        assert_eq!(Value::Object(parent[0].clone()), serde_json::json!({"parent_workflow": "pipeline", "parent_id": "p-1"}));
        let none = db.rows(&statement(PARENT, vec!["pipeline".into(), "p-1".into()])).unwrap();
        assert_eq!(Value::Object(none[0].clone()), serde_json::json!({"parent_workflow": null, "parent_id": null}));
    }

    /// The status route's record of a finished status: read back with the row, forgotten
    /// by a restart or terminate (FORGET_FINAL), and never written over the row that
    /// follows a restart or a delete by a read made before it.
    #[test]
    fn a_finished_status_is_recorded_forgotten_and_never_recorded_stale() {
        use crate::core::instance_index::{StatusRow, DELETE, FORGET_FINAL, INSERT, RECORD_FINAL, STATUS_ROW};
        let db = library_db();
        let key = || vec![SqlValue::from("step-tour"), SqlValue::from("i-1")];
        let read = || -> StatusRow {
            let rows = db.rows(&statement(STATUS_ROW, key())).unwrap();
            serde_json::from_value(Value::Object(rows[0].clone())).unwrap()
        };
        let record = |row: &StatusRow, text: &'static str, now: i64| {
            let mut params = key();
            params.extend([text.into(), SqlValue::Integer(now), SqlValue::Real(row.created_at), SqlValue::Real(row.generation)]);
            db.run(&statement(RECORD_FINAL, params)).unwrap()
        };
        let claim = |at: i64| db.run(&statement(INSERT, [key(), vec![SqlValue::Integer(at)]].concat())).unwrap();
        claim(10);
        let fresh = read();
        assert_eq!((fresh.final_status.as_deref(), fresh.generation), (None, 0.0));
        assert_eq!(record(&fresh, r#"{"status":"complete"}"#, 100), 1);
        let recorded = read();
        assert_eq!(recorded.final_status.as_deref(), Some(r#"{"status":"complete"}"#));
        assert_eq!(recorded.final_at, Some(100.0));

        // A restart: the record goes, and a status read before it is not recorded after it.
        let before_restart = read();
        assert_eq!(db.run(&statement(FORGET_FINAL, key())).unwrap(), 1);
        let after = read();
        assert_eq!((after.final_status.as_deref(), after.final_at, after.generation), (None, None, 1.0));
        assert_eq!(record(&before_restart, r#"{"status":"complete"}"#, 200), 0, "read before the restart: not recorded");
        assert_eq!(read().final_status, None);
        assert_eq!(record(&after, r#"{"status":"errored"}"#, 300), 1, "read after it: recorded");

        // A delete and a new instance of the same id: a read of the old one is not recorded on it.
        let old = read();
        db.run(&statement(DELETE, key())).unwrap();
        claim(20);
        assert_eq!(record(&old, r#"{"status":"complete"}"#, 400), 0, "the old instance's status is not the new one's");
        let new = read();
        assert_eq!((new.final_status, new.created_at, new.generation), (None, 20.0, 0.0));
    }

    #[test]
    fn the_library_migrations_are_the_ones_in_this_crate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        assert_eq!(files, crate::MIGRATIONS.iter().map(|m| m.file_name).collect::<Vec<_>>(), "in order, and nothing else");
        for migration in crate::MIGRATIONS {
            assert_eq!(std::fs::read_to_string(dir.join(migration.file_name)).unwrap(), migration.sql);
        }
    }

    #[test]
    fn a_patchs_first_sighting_is_recorded_once_and_the_first_writer_wins() {
        use crate::core::patch::{LIST_FOR_WORKFLOW, RECORD_FIRST_SEEN};
        let db = library_db();
        let record = |patch: &'static str, now: i64| {
            let rows = db.rows(&statement(RECORD_FIRST_SEEN, vec!["order".into(), patch.into(), SqlValue::Integer(now)])).unwrap();
            rows[0]["first_seen"].as_i64().unwrap()
        };
        assert_eq!(record("refund-before-ship", 1000), 1000, "the first run to ask records now");
        assert_eq!(record("refund-before-ship", 5000), 1000, "a later run gets the first sighting back");
        assert_eq!(record("other", 3000), 3000);
        let rows = db.rows(&statement(LIST_FOR_WORKFLOW, vec!["order".into()])).unwrap();
        let listed: Vec<Value> = rows.into_iter().map(Value::Object).collect();
        assert_eq!(
            listed,
            [
                serde_json::json!({"patch": "refund-before-ship", "first_seen": 1000}),
                serde_json::json!({"patch": "other", "first_seen": 3000})
            ]
        );
        let other_workflow = db.rows(&statement(RECORD_FIRST_SEEN, vec!["cleanup".into(), "other".into(), SqlValue::Integer(9)])).unwrap();
        assert_eq!(other_workflow[0]["first_seen"], 9, "per workflow");
    }
}
