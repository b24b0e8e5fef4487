//! `Env`: what a workflow reaches outside its steps' own code, as typed Rust: vars and
//! secrets, D1, KV, R2, queues, service bindings and Durable Objects, other workflows,
//! the clock and randomness. The same workflow code runs against the Worker's real
//! bindings and against the test engine's fakes (see [`super::engine`]). A missing var,
//! secret or binding is configuration that no retry can fix, so it is a non-retryable
//! error, and so is a call over one of the platform's limits (checked here, before
//! anything is sent: see [`binding_limits`]). In the wasm build, `Env::raw` (in
//! `js_env`) hands out the Worker's own `worker::Env` for anything else.

use super::engine::{
    BucketBackend, DatabaseBackend, DurableObjectBackend, EnvBackend, FetcherBackend, KvBackend, KvKeyList, KvPutOptions, ListOptions,
    ObjectInfo, ObjectList, OutboundRequest, OutboundResponse, QueueBackend, SqlRow, SqlStatement, SqlValue,
};
use crate::core::binding_limits;
use crate::core::step_error::StepError;
use serde::{de::DeserializeOwned, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment a workflow runs in. Cheap to clone.
#[derive(Clone)]
pub struct Env {
    backend: Rc<dyn EnvBackend>,
}

impl Env {
    /// The env over a backend: the Worker's bindings (wasm) or the test engine's fakes.
    pub fn new(backend: Rc<dyn EnvBackend>) -> Self {
        Env { backend }
    }

    /// The backend behind this env (for `Env::raw`, in the wasm build).
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn backend(&self) -> &dyn EnvBackend {
        self.backend.as_ref()
    }

    /// A var (or a secret: the platform gives both as strings), `None` when unset.
    pub fn var(&self, name: &str) -> Option<String> {
        self.backend.var(name)
    }

    /// A secret (`wrangler secret put`, `.dev.vars` locally), which must be set. The
    /// [`Secret`] keeps its value out of `Debug` output and cannot be a step's result
    /// (it is not `Serialize`, so it is never persisted in the engine's history); read it
    /// with [`Secret::expose`] where it is used. On the test engine it comes from
    /// `TestEngine::secret`, and never shows in what the engine records.
    pub fn secret(&self, name: &str) -> Result<Secret, StepError> {
        self.backend.secret(name).map(Secret).ok_or_else(|| StepError::non_retryable(format!("the secret {name} is not set")))
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
        Ok(Kv { backend: self.backend.kv(binding)?, binding: binding.to_string(), env: self.clone() })
    }

    /// An R2 bucket binding.
    pub fn bucket(&self, binding: &str) -> Result<Bucket, StepError> {
        Ok(Bucket { backend: self.backend.bucket(binding)? })
    }

    /// A queue producer binding (`queues.producers` in wrangler.jsonc).
    pub fn queue(&self, binding: &str) -> Result<Queue, StepError> {
        Ok(Queue { backend: self.backend.queue(binding)?, binding: binding.to_string() })
    }

    /// A service binding (`services` in wrangler.jsonc): requests to another Worker.
    pub fn service(&self, binding: &str) -> Result<Fetcher, StepError> {
        Ok(Fetcher { backend: self.backend.service(binding)? })
    }

    /// A Durable Object namespace binding (`durable_objects.bindings` in wrangler.jsonc).
    pub fn durable_object(&self, binding: &str) -> Result<DurableObjectNamespace, StepError> {
        Ok(DurableObjectNamespace { backend: self.backend.durable_object(binding)? })
    }

    /// Creates an instance of another workflow of this Worker with `id` and `params`,
    /// started and not awaited: true when this call created it, false when it existed.
    pub async fn create_instance<P: Serialize + ?Sized>(&self, workflow: &str, id: &str, params: &P) -> Result<bool, StepError> {
        let params = serde_json::to_value(params).map_err(|e| StepError::Serialization(format!("params cannot be serialised: {e}")))?;
        self.backend.create_instance(workflow, id, &params).await
    }

    /// The instances of this Worker's workflows this env reaches (what typed handles,
    /// [`Env::workflow`], and child workflows use).
    pub(crate) fn instances(&self) -> Result<&dyn super::handles::InstancesBackend, crate::core::engine_error::BindingError> {
        self.backend
            .instances()
            .ok_or_else(|| crate::core::engine_error::BindingError::MissingBinding("this env reaches no workflow instances".into()))
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

    /// A request through the runtime's `fetch` (what [`ServiceCall`](super::outbound::ServiceCall) sends).
    pub(crate) async fn fetch(&self, request: OutboundRequest) -> Result<OutboundResponse, StepError> {
        self.backend.fetch(request).await
    }
}

/// A secret's value, kept out of `Debug` output (it shows as `Secret(***)`) and out of
/// step results (it is not `Serialize`). [`expose`](Self::expose) it where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
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

    /// Runs the statement, returning how many rows it changed.
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

/// A KV namespace. Keys are at most 512 bytes (not empty, `.` or `..`), values at most
/// 25 MiB; a write over a limit fails the step (non-retryable) before it is sent.
#[derive(Clone)]
pub struct Kv {
    backend: Rc<dyn KvBackend>,
    binding: String,
    /// For the clock an absolute expiration is checked against.
    env: Env,
}

impl Kv {
    /// The value of `key`, `None` when there is none (or it expired).
    pub async fn get(&self, key: &str) -> Result<Option<String>, StepError> {
        self.backend.get(key).await
    }

    /// Writes `value` to `key`, never expiring.
    pub async fn put(&self, key: &str, value: &str) -> Result<(), StepError> {
        self.put_with(key, value, KvPutOptions::new()).await
    }

    /// Writes `value` to `key` with an expiry and metadata (see [`KvPutOptions`]):
    /// `kv.put_with("session:1", &token, KvPutOptions::new().expiration_ttl(3600))`.
    /// A TTL under 60 seconds, an absolute expiration less than 60 seconds from now,
    /// metadata over 1024 bytes of JSON, or a key or value over its limit fails the step
    /// (non-retryable) without a write.
    pub async fn put_with(&self, key: &str, value: &str, options: KvPutOptions) -> Result<(), StepError> {
        let refused = |e: String| StepError::non_retryable(format!("KV {}: {e}", self.binding));
        let metadata = options.metadata.as_ref().map(serde_json::to_string).transpose()?;
        binding_limits::check_kv_put(key, value.len(), metadata.as_deref(), options.expiration_ttl).map_err(refused)?;
        let now = self.env.now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        binding_limits::kv_expiration(now, options.expiration_ttl, options.expiration).map_err(refused)?;
        // The TTL wins when both are set: only it is sent, so the platform and the test
        // engine agree whatever either would do with both.
        let options = match options.expiration_ttl {
            Some(_) => KvPutOptions { expiration: None, ..options },
            None => options,
        };
        self.backend.put(key, value, &options).await
    }

    /// Deletes `key`; deleting a key that does not exist succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StepError> {
        self.backend.delete(key).await
    }

    /// One page of keys, with their expiry and metadata:
    /// `kv.list(ListOptions::new().prefix("session:").limit(100))`. Pass the page's
    /// `cursor` to [`ListOptions::cursor`] for the next one while `list_complete` is false.
    /// The limit is clamped to 1..=1000 (the platform's maximum, and the default).
    pub async fn list(&self, options: ListOptions) -> Result<KvKeyList, StepError> {
        let options = ListOptions { limit: Some(options.effective_limit()), ..options };
        self.backend.list(&options).await
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

    /// Writes an object, with its `Content-Type` when given.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: Option<&str>) -> Result<(), StepError> {
        self.backend.put(key, body, content_type).await
    }

    /// The object's metadata (size, etag, upload time, content type) without reading its
    /// body; `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StepError> {
        self.backend.head(key).await
    }

    /// Deletes an object; deleting one that does not exist succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StepError> {
        self.backend.delete(key).await
    }

    /// One page of objects (key, size, etag, upload time):
    /// `bucket.list(ListOptions::new().prefix("reports/"))`. Pass the page's `cursor` to
    /// [`ListOptions::cursor`] for the next one while `truncated` is true. The limit is
    /// clamped to 1..=1000 (the platform's maximum, and the default).
    pub async fn list(&self, options: ListOptions) -> Result<ObjectList, StepError> {
        let options = ListOptions { limit: Some(options.effective_limit()), ..options };
        self.backend.list(&options).await
    }
}

/// A queue's producer: messages are JSON. A message is at most 128 KB of JSON, a batch
/// at most 100 messages and 256 KB; more fails the step (non-retryable) before anything
/// is sent. A send is a side effect: a step that sends and then fails sends again on its
/// retry, so a consumer should expect a message more than once (give it an id to
/// de-duplicate by, [`StepContext::idempotency_key`](super::StepContext) for one).
#[derive(Clone)]
pub struct Queue {
    backend: Rc<dyn QueueBackend>,
    binding: String,
}

impl Queue {
    /// Sends `body` as one JSON message.
    pub async fn send<B: Serialize + ?Sized>(&self, body: &B) -> Result<(), StepError> {
        let body = self.message(body)?;
        binding_limits::check_queue_batch(std::slice::from_ref(&body)).map_err(|e| self.refused(e))?;
        self.backend.send(body).await
    }

    /// Sends `bodies` as one batch of JSON messages: all of them or none. An empty batch
    /// sends nothing.
    pub async fn send_batch<B: Serialize>(&self, bodies: &[B]) -> Result<(), StepError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let bodies = bodies.iter().map(|b| self.message(b)).collect::<Result<Vec<_>, _>>()?;
        binding_limits::check_queue_batch(&bodies).map_err(|e| self.refused(e))?;
        self.backend.send_batch(bodies).await
    }

    fn message<B: Serialize + ?Sized>(&self, body: &B) -> Result<String, StepError> {
        serde_json::to_string(body)
            .map_err(|e| StepError::Serialization(format!("queue {}: a message cannot be serialised: {e}", self.binding)))
    }

    fn refused(&self, e: String) -> StepError {
        StepError::non_retryable(format!("queue {}: {e}", self.binding))
    }
}

/// What requests can be sent through besides the runtime's `fetch`: a service binding
/// ([`Env::service`]) or a Durable Object's stub ([`DurableObjectNamespace::get_by_name`]).
/// [`fetch`](Self::fetch) returns the raw answer; for a service's answer read as a step
/// outcome (status rules, retries, JSON), send a
/// [`ServiceCall`](super::outbound::ServiceCall) [`through`](super::outbound::ServiceCall::through) it.
#[derive(Clone)]
pub struct Fetcher {
    backend: Rc<dyn FetcherBackend>,
}

impl Fetcher {
    /// Sends `request` and reads its answer, as every outbound call does: the body up to
    /// the request's `max_response_bytes` (1 MiB unless set) and never further, and a
    /// redirect returned as the answer, not followed. Whatever the status, it is the
    /// answer: [`OutboundResponse::is_success`] says whether it was a 2xx. Fails only when
    /// no answer came (a retryable error).
    pub async fn fetch(&self, request: OutboundRequest) -> Result<OutboundResponse, StepError> {
        self.backend.fetch(request).await
    }
}

/// A Durable Object namespace.
#[derive(Clone)]
pub struct DurableObjectNamespace {
    backend: Rc<dyn DurableObjectBackend>,
}

impl DurableObjectNamespace {
    /// The stub of the object named `name`: the same name reaches the same object,
    /// wherever and whenever it is asked for.
    pub fn get_by_name(&self, name: &str) -> Result<Fetcher, StepError> {
        Ok(Fetcher { backend: self.backend.get_by_name(name)? })
    }
}
