//! `Env`: what a workflow reaches outside its steps' own code, as typed Rust: vars and
//! secrets, D1, KV, R2, other workflows, the clock and randomness. The same workflow
//! code runs against the Worker's real bindings and against the test engine's fakes
//! (see [`super::engine`]). A missing var or binding is configuration that no retry
//! can fix, so it is a non-retryable error.

use super::engine::{
    BucketBackend, DatabaseBackend, EnvBackend, KvBackend, OutboundRequest, OutboundResponse, SqlRow, SqlStatement, SqlValue,
};
use crate::core::step_error::StepError;
use serde::{de::DeserializeOwned, Serialize};
use std::borrow::Cow;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment a workflow runs in. Cheap to clone.
#[derive(Clone)]
pub struct Env {
    backend: Rc<dyn EnvBackend>,
}

impl Env {
    pub fn new(backend: Rc<dyn EnvBackend>) -> Self {
        Env { backend }
    }

    /// A var or secret, `None` when unset.
    pub fn var(&self, name: &str) -> Option<String> {
        self.backend.var(name)
    }

    /// A var (or secret) that must be set.
    pub fn required_var(&self, name: &str) -> Result<String, StepError> {
        self.var(name).ok_or_else(|| StepError::non_retryable(format!("the var {name} is not set")))
    }

    /// A switch var: on only when set to "true".
    pub fn flag(&self, name: &str) -> bool {
        self.var(name).as_deref() == Some("true")
    }

    /// A D1 database binding.
    pub fn database(&self, binding: &str) -> Result<Database, StepError> {
        Ok(Database { backend: self.backend.database(binding)? })
    }

    /// A KV namespace binding.
    pub fn kv(&self, binding: &str) -> Result<Kv, StepError> {
        Ok(Kv { backend: self.backend.kv(binding)? })
    }

    /// An R2 bucket binding.
    pub fn bucket(&self, binding: &str) -> Result<Bucket, StepError> {
        Ok(Bucket { backend: self.backend.bucket(binding)? })
    }

    /// Creates an instance of another workflow of this Worker with `id` and `params`,
    /// started and not awaited: true when this call created it, false when it existed.
    pub async fn create_instance<P: Serialize + ?Sized>(&self, workflow: &str, id: &str, params: &P) -> Result<bool, StepError> {
        let params = serde_json::to_value(params).map_err(|e| StepError::Serialization(format!("params cannot be serialised: {e}")))?;
        self.backend.create_instance(workflow, id, &params).await
    }

    /// The current time. Outside a step it differs on every replay: read it inside one.
    pub fn now(&self) -> SystemTime {
        self.backend.now()
    }

    /// The current time in Unix milliseconds.
    pub fn now_millis(&self) -> u64 {
        self.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    /// A random UUID (v4). Outside a step it differs on every replay: make it inside one.
    pub fn random_uuid(&self) -> String {
        self.backend.random_uuid()
    }

    pub(crate) async fn fetch(&self, request: OutboundRequest) -> Result<OutboundResponse, StepError> {
        self.backend.fetch(request).await
    }
}

impl<'a> From<&'a str> for SqlValue<'a> {
    fn from(s: &'a str) -> Self {
        SqlValue::Text(Cow::Borrowed(s))
    }
}

impl From<String> for SqlValue<'_> {
    fn from(s: String) -> Self {
        SqlValue::Text(Cow::Owned(s))
    }
}

impl<'a> From<&'a String> for SqlValue<'a> {
    fn from(s: &'a String) -> Self {
        SqlValue::Text(Cow::Borrowed(s))
    }
}

impl From<i64> for SqlValue<'_> {
    fn from(n: i64) -> Self {
        SqlValue::Integer(n)
    }
}

impl From<u64> for SqlValue<'_> {
    /// Past `i64::MAX` (never a row count or a time in ms) it is stored as a real.
    fn from(n: u64) -> Self {
        i64::try_from(n).map_or(SqlValue::Real(n as f64), SqlValue::Integer)
    }
}

impl From<u32> for SqlValue<'_> {
    fn from(n: u32) -> Self {
        SqlValue::Integer(i64::from(n))
    }
}

impl From<f64> for SqlValue<'_> {
    fn from(n: f64) -> Self {
        SqlValue::Real(n)
    }
}

impl<'a, T: Into<SqlValue<'a>>> From<Option<T>> for SqlValue<'a> {
    fn from(value: Option<T>) -> Self {
        value.map_or(SqlValue::Null, Into::into)
    }
}

/// A D1 database.
#[derive(Clone)]
pub struct Database {
    backend: Rc<dyn DatabaseBackend>,
}

impl Database {
    /// A statement to bind values to and run.
    pub fn prepare<'a>(&'a self, sql: impl Into<Cow<'a, str>>) -> Statement<'a> {
        Statement { db: self, statement: SqlStatement { sql: sql.into(), params: Vec::new() } }
    }

    /// Runs the statements in one transaction, in order.
    pub async fn batch(&self, statements: Vec<Statement<'_>>) -> Result<(), StepError> {
        let statements: Vec<SqlStatement<'_>> = statements.into_iter().map(|s| s.statement).collect();
        self.backend.batch(&statements).await
    }
}

/// A prepared statement of a [`Database`].
pub struct Statement<'a> {
    db: &'a Database,
    statement: SqlStatement<'a>,
}

/// What running a statement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunResult {
    /// Rows inserted, updated or deleted.
    pub changes: u64,
}

impl<'a> Statement<'a> {
    /// Binds the values of the statement's `?` parameters, in order.
    pub fn bind(mut self, values: impl IntoIterator<Item = SqlValue<'a>>) -> Self {
        self.statement.params = values.into_iter().collect();
        self
    }

    pub async fn run(&self) -> Result<RunResult, StepError> {
        Ok(RunResult { changes: self.db.backend.run(&self.statement).await? })
    }

    /// Every row, each read as `T` (a struct named like the columns, or a map).
    pub async fn all<T: DeserializeOwned>(&self) -> Result<Vec<T>, StepError> {
        self.db.backend.rows(&self.statement).await?.into_iter().map(read_row).collect()
    }

    /// The first row's `column` (or, with `None`, the whole first row) as `T`; `None`
    /// when there is no row.
    pub async fn first<T: DeserializeOwned>(&self, column: Option<&str>) -> Result<Option<T>, StepError> {
        let Some(row) = self.db.backend.rows(&self.statement).await?.into_iter().next() else {
            return Ok(None);
        };
        match column {
            None => read_row(row).map(Some),
            Some(column) => {
                let value = row.get(column).cloned().ok_or_else(|| StepError::failed(format!("D1: the row has no column {column:?}")))?;
                serde_json::from_value(value).map(Some).map_err(|e| StepError::failed(format!("D1: column {column:?}: {e}")))
            }
        }
    }
}

fn read_row<T: DeserializeOwned>(row: SqlRow) -> Result<T, StepError> {
    serde_json::from_value(serde_json::Value::Object(row)).map_err(|e| StepError::failed(format!("D1: unexpected row: {e}")))
}

/// A KV namespace.
#[derive(Clone)]
pub struct Kv {
    backend: Rc<dyn KvBackend>,
}

impl Kv {
    pub async fn get(&self, key: &str) -> Result<Option<String>, StepError> {
        self.backend.get(key).await
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<(), StepError> {
        self.backend.put(key, value).await
    }
}

/// An R2 bucket.
#[derive(Clone)]
pub struct Bucket {
    backend: Rc<dyn BucketBackend>,
}

impl Bucket {
    /// The object's body, `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StepError> {
        self.backend.get(key).await
    }

    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: Option<&str>) -> Result<(), StepError> {
        self.backend.put(key, body, content_type).await
    }
}
