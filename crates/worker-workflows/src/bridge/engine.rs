//! The seam between workflow code and the world it runs in. A workflow sees only
//! [`Step`](super::Step) and [`Env`](super::Env); behind them sit these traits, with two
//! implementations: the Workflows engine and the Worker's bindings (`js_step`, `js_env`,
//! in the wasm build), and the test engine with in-memory fakes on the host.
//!
//! The traits are object-safe and deal in JSON text and plain data, so each typed
//! call site compiles its serde code once and the engine behind it is chosen at run time.

use crate::core::binding_limits;
use crate::core::rollback::InstanceFailure;
use crate::core::service::MAX_SERVICE_ANSWER_BYTES;
use crate::core::step_config::EngineStepConfig;
use crate::core::step_error::StepError;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};
use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// A boxed future that need not be `Send` (Workers run one thread).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One attempt of a step's closure: its result as JSON text.
pub type AttemptFuture<'a> = LocalBoxFuture<'a, Result<String, StepError>>;

pub use crate::core::step_context::StepContext;

/// One `step.do`: its name, its config as the engine reads it (`None`: the engine's
/// defaults), the attempt to run, once per attempt, and the step's rollback if it has one.
pub struct StepCall<'a, 'w> {
    /// The step's name.
    pub name: &'a str,
    /// Its retries and timeout as the engine reads them (`None`: the engine's defaults).
    pub config: Option<EngineStepConfig>,
    /// Runs one attempt.
    pub attempt: &'a dyn Fn(StepContext) -> AttemptFuture<'a>,
    /// The step's rollback, if it has one.
    pub rollback: Option<RollbackCall<'w>>,
}

/// One attempt of a streamed step's closure: its bytes.
pub type BytesAttemptFuture<'a> = LocalBoxFuture<'a, Result<Vec<u8>, StepError>>;

/// One `step.do` whose value is a stream of bytes (the engine's `ReadableStream`
/// outputs): no 1 MiB limit, no rollback (the engine would hand a rollback the stream it
/// already returned, consumed).
pub struct StreamCall<'a> {
    /// The step's name.
    pub name: &'a str,
    /// Its retries and timeout as the engine reads them (`None`: the engine's defaults).
    pub config: Option<EngineStepConfig>,
    /// Runs one attempt.
    pub attempt: &'a dyn Fn(StepContext) -> BytesAttemptFuture<'a>,
}

/// A step's rollback as the engine keeps it: it lives as long as the workflow (`'w`),
/// since the engine calls it after the step, and after the run itself has failed.
pub struct RollbackCall<'w> {
    /// Runs one attempt of the rollback.
    pub run: RollbackFn<'w>,
    /// The rollback's own retries and timeout (`None`: the engine's defaults).
    pub config: Option<EngineStepConfig>,
}

/// One attempt of a rollback, from what the engine passes it.
pub type RollbackFn<'w> = Box<dyn Fn(RollbackInput) -> LocalBoxFuture<'w, Result<(), StepError>> + 'w>;

/// What the engine passes a rollback attempt, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackInput {
    /// The rollback's attempt: 1, then 2 on its first retry, …
    pub attempt: u32,
    /// The rolled-back step's context as the engine last saw it (its own last attempt).
    pub step: StepContext,
    /// The error that made the engine roll back.
    pub error: InstanceFailure,
    /// The step's output as JSON text; `None` when the step did not complete.
    pub output_json: Option<String>,
}

/// An event a `waitForEvent` received: its payload as JSON text, its type, and when it
/// was sent (Unix milliseconds, when the engine says).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// The payload, as JSON text.
    pub payload_json: String,
    /// The event's type.
    pub event_type: String,
    /// When it was sent, in Unix milliseconds (when the engine says).
    pub timestamp_millis: Option<u64>,
}

/// The engine's side of a workflow's step handle. `'w` is the lifetime of the workflow
/// and its event, which step code (and later compensations) may borrow.
pub trait StepEngine<'w> {
    /// Runs a step (`step.do`): the result is the JSON text of the value the engine
    /// persisted, whether from this run's attempts or from an earlier run (replay).
    /// A step with a rollback registers it: the engine calls it, in reverse order of the
    /// steps' starts, when the run fails or is terminated with rollback, and stops at the
    /// first rollback that fails for good.
    fn run<'a>(&'a self, call: StepCall<'a, 'w>) -> LocalBoxFuture<'a, Result<String, StepError>>;
    /// Runs a streamed step: the attempt's bytes go to the engine as a stream, and the
    /// result is the bytes the engine stored, read back from the stream it returns (live
    /// and on replay alike), at most [`MAX_STREAM_STEP_BYTES`](crate::core::step_error::MAX_STREAM_STEP_BYTES).
    fn run_stream<'a>(&'a self, call: StreamCall<'a>) -> LocalBoxFuture<'a, Result<Vec<u8>, StepError>>;
    /// Sleeps for `duration` (`step.sleep`).
    fn sleep<'a>(&'a self, name: &'a str, duration: Duration) -> LocalBoxFuture<'a, Result<(), StepError>>;
    /// Sleeps until a time, in Unix milliseconds (`step.sleepUntil`).
    fn sleep_until<'a>(&'a self, name: &'a str, epoch_millis: u64) -> LocalBoxFuture<'a, Result<(), StepError>>;
    /// Waits for an event of `event_type`; running out of time is [`StepError::Timeout`].
    fn wait_for_event<'a>(
        &'a self,
        name: &'a str,
        event_type: &'a str,
        timeout: Duration,
    ) -> LocalBoxFuture<'a, Result<EventRecord, StepError>>;
}

/// The HTTP methods outbound calls use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// `GET`: reads, no side effect.
    Get,
    /// `POST`: a side effect; repeated on every retry, so give it an idempotency key.
    Post,
    /// `PUT`: replaces a resource; repeating the same `PUT` is harmless by HTTP's rules,
    /// though a service may still ask for an idempotency key.
    Put,
    /// `PATCH`: changes part of a resource; a side effect, like `POST`.
    Patch,
    /// `DELETE`: removes a resource; a repeat may answer 404 where the first succeeded.
    Delete,
}

impl HttpMethod {
    /// The method's name as HTTP writes it (`"GET"`).
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// What a request does with a redirect (a 3xx answer with a `Location`): `fetch`'s
/// `redirect` option, which the Worker's fetch sets from it and the test engine's
/// router follows alike. Manual unless a request says otherwise: a redirect followed
/// blindly can lead a request where no one checked it may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Redirect {
    /// Never follows it: the 3xx is the answer (`redirect: "manual"`), with its
    /// `location`. The default; [`ServiceCall`](super::outbound::ServiceCall) always
    /// asks for this.
    #[default]
    Manual,
    /// Follows it, up to 20 redirects, as `fetch` does when not told otherwise: the
    /// answer is the last one's. Ask for it only where any target is fine.
    Follow,
}

/// An outbound HTTP request, as plain data: through the runtime's `fetch`, a service
/// binding or a Durable Object stub. A redirect is not followed (a 3xx comes back as the
/// answer) unless [`redirect`](Self::redirect) says [`Redirect::Follow`]
/// ([`ServiceCall`](super::outbound::ServiceCall) never does). Build
/// one with [`new`](Self::new) (or [`get`](Self::get), …) and the builder methods; the
/// answer is read up to [`MAX_SERVICE_ANSWER_BYTES`] unless
/// [`max_response_bytes`](Self::max_response_bytes) says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// The method.
    pub method: HttpMethod,
    /// The absolute URL (through a binding, its host is only what the other side sees).
    pub url: String,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// The most bytes of the answer's body to read: reading stops there (or before the
    /// first byte, when the answer declares a longer `Content-Length`).
    pub max_response_bytes: usize,
    /// Whether a redirect is the answer (the default) or is followed.
    pub redirect: Redirect,
}

impl OutboundRequest {
    /// A request with no headers and no body, its answer read up to
    /// [`MAX_SERVICE_ANSWER_BYTES`].
    pub fn new(method: HttpMethod, url: impl Into<String>) -> Self {
        OutboundRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            max_response_bytes: MAX_SERVICE_ANSWER_BYTES,
            redirect: Redirect::Manual,
        }
    }

    /// A `GET` of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Get, url)
    }

    /// A `POST` to `url` (set its body with [`json`](Self::json) or [`body`](Self::body)).
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Post, url)
    }

    /// A `PUT` to `url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Put, url)
    }

    /// A `PATCH` to `url`.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Patch, url)
    }

    /// A `DELETE` of `url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(HttpMethod::Delete, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body, as bytes.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets the body to `value` as JSON, with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, StepError> {
        let body = serde_json::to_vec(value).map_err(|e| StepError::Serialization(format!("a request body cannot be serialised: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Reads at most `bytes` of the answer's body.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Sets what a redirect does: [`Redirect::Manual`] makes a 3xx the answer.
    pub fn redirect(mut self, redirect: Redirect) -> Self {
        self.redirect = redirect;
        self
    }
}

/// The answer to an outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most the request's `max_response_bytes` of it.
    pub body: Vec<u8>,
    /// The body was longer than `max_response_bytes`: `body` holds only its start.
    pub body_over_limit: bool,
    /// How long the service asked to wait before trying again (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Where a 3xx answer points (`Location`, at most 256 bytes of it), when the request
    /// did not follow it ([`Redirect::Manual`]).
    pub location: Option<String>,
}

impl OutboundResponse {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text (invalid UTF-8 replaced); only its start when it was over the cap.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body read as JSON `T`. A body over the request's cap was not read whole, so it
    /// is an error (non-retryable: the same request gets the same body), as is a body
    /// that does not read as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        if self.body_over_limit {
            return Err(StepError::non_retryable(format!(
                "the answer ({}) has a body over the request's limit; it was not read further",
                self.status
            )));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| StepError::failed(format!("the answer ({}) is not the JSON expected: {e}", self.status)))
    }
}

/// A value bound to a SQL statement's `?` parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue<'a> {
    /// SQL `NULL`.
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text.
    Text(Cow<'a, str>),
}

/// A SQL statement with its bound values.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlStatement<'a> {
    /// The SQL, with `?` parameters.
    pub sql: Cow<'a, str>,
    /// The parameters' values, in order.
    pub params: Vec<SqlValue<'a>>,
}

/// A result row: column name to value.
pub type SqlRow = Map<String, Value>;

/// A D1 database (SQLite).
pub trait DatabaseBackend {
    /// Runs a statement, returning how many rows it changed.
    fn run<'a>(&'a self, statement: &'a SqlStatement<'a>) -> LocalBoxFuture<'a, Result<u64, StepError>>;
    /// Runs a query, returning every row.
    fn rows<'a>(&'a self, statement: &'a SqlStatement<'a>) -> LocalBoxFuture<'a, Result<Vec<SqlRow>, StepError>>;
    /// Runs statements in one transaction.
    fn batch<'a>(&'a self, statements: &'a [SqlStatement<'a>]) -> LocalBoxFuture<'a, Result<(), StepError>>;
}

/// What a KV or R2 list call asks for: keys starting with `prefix`, at most `limit` of
/// them (clamped to 1..=1000; 1000 when unset), after the page a `cursor` from an earlier
/// call ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOptions {
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// The most entries wanted (see [`ListOptions::limit`]).
    pub limit: Option<u32>,
    /// Where the previous page ended (its `cursor`).
    pub cursor: Option<String>,
}

impl ListOptions {
    /// Every key, from the first, as many as one call returns (1000).
    pub fn new() -> Self {
        Self::default()
    }

    /// Only keys starting with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// At most `limit` entries: clamped to 1..=1000, the platform's maximum.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The page after the one that returned `cursor`.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// The limit the call asks for: the one set, clamped to 1..=1000, else 1000.
    pub fn effective_limit(&self) -> u32 {
        binding_limits::list_limit(self.limit)
    }
}

/// How a KV write expires and what it carries: [`expiration_ttl`](Self::expiration_ttl)
/// (seconds from the write) or [`expiration`](Self::expiration) (an absolute Unix time in
/// seconds), both at least 60 seconds ahead; when both are set the TTL wins, as on the
/// platform. Metadata (any JSON, at most 1024 bytes of it) comes back from
/// [`Kv::list`](super::Kv::list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KvPutOptions {
    /// Seconds from the write until the key expires (at least 60).
    pub expiration_ttl: Option<u64>,
    /// When the key expires, in Unix seconds (at least 60 seconds from now).
    pub expiration: Option<u64>,
    /// JSON kept with the key (at most 1024 bytes of it), listed with it.
    pub metadata: Option<Value>,
}

impl KvPutOptions {
    /// No expiry, no metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key expires `seconds` after the write (at least 60).
    pub fn expiration_ttl(mut self, seconds: u64) -> Self {
        self.expiration_ttl = Some(seconds);
        self
    }

    /// The key expires at `unix_seconds` (at least 60 seconds from now).
    pub fn expiration(mut self, unix_seconds: u64) -> Self {
        self.expiration = Some(unix_seconds);
        self
    }

    /// Keeps `metadata` with the key.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// A key as a KV list gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvKey {
    /// The key.
    pub name: String,
    /// When it expires, in Unix seconds; `None` when it never does.
    pub expiration: Option<u64>,
    /// The metadata it was written with.
    pub metadata: Option<Value>,
}

/// One page of a KV list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvKeyList {
    /// The keys, in the platform's order (UTF-8 bytes, ascending).
    pub keys: Vec<KvKey>,
    /// No keys follow this page.
    pub list_complete: bool,
    /// Where this page ends, for [`ListOptions::cursor`]; `None` on the last page.
    pub cursor: Option<String>,
}

/// An R2 object's metadata, without its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its etag (the body's MD5 in hex for a single-part upload; the test engine writes a
    /// digest of its own).
    pub etag: String,
    /// When it was written, in Unix milliseconds.
    pub uploaded_millis: u64,
    /// Its `Content-Type`, from [`Bucket::head`](super::Bucket::head); a list leaves it
    /// `None` (the platform lists objects without their HTTP metadata).
    pub content_type: Option<String>,
}

/// One page of an R2 list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectList {
    /// The objects, by key.
    pub objects: Vec<ObjectInfo>,
    /// More objects follow: ask again with `cursor`.
    pub truncated: bool,
    /// Where this page ends, for [`ListOptions::cursor`]; `None` on the last page.
    pub cursor: Option<String>,
}

/// A KV namespace.
pub trait KvBackend {
    /// The value of `key`, `None` when there is none (or it expired).
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<String>, StepError>>;
    /// Writes `value` to `key`, with an expiry and metadata when `options` set them
    /// (checked already: see [`binding_limits`]).
    fn put<'a>(&'a self, key: &'a str, value: &'a str, options: &'a KvPutOptions) -> LocalBoxFuture<'a, Result<(), StepError>>;
    /// Deletes `key`; deleting a key that does not exist succeeds.
    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>>;
    /// One page of the keys `options` asks for.
    fn list<'a>(&'a self, options: &'a ListOptions) -> LocalBoxFuture<'a, Result<KvKeyList, StepError>>;
}

/// An R2 bucket.
pub trait BucketBackend {
    /// The object's body, `None` when there is no such object.
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, StepError>>;
    /// Writes an object.
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>, content_type: Option<&'a str>) -> LocalBoxFuture<'a, Result<(), StepError>>;
    /// The object's metadata without its body, `None` when there is no such object.
    fn head<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<ObjectInfo>, StepError>>;
    /// Deletes an object; deleting one that does not exist succeeds.
    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>>;
    /// One page of the objects `options` asks for.
    fn list<'a>(&'a self, options: &'a ListOptions) -> LocalBoxFuture<'a, Result<ObjectList, StepError>>;
}

/// A queue's producer. Bodies are JSON text, checked against the queue's limits already
/// (see [`binding_limits::check_queue_batch`]).
pub trait QueueBackend {
    /// Sends one message.
    fn send(&self, body_json: String) -> LocalBoxFuture<'_, Result<(), StepError>>;
    /// Sends messages as one batch: all of them or none.
    fn send_batch(&self, bodies_json: Vec<String>) -> LocalBoxFuture<'_, Result<(), StepError>>;
}

/// Where requests go other than the runtime's `fetch`: a service binding, or a Durable
/// Object's stub. The answer is read as [`OutboundRequest::max_response_bytes`] says,
/// and a redirect is returned, never followed.
pub trait FetcherBackend {
    /// Sends the request and reads its answer.
    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>>;
}

/// A Durable Object namespace binding.
pub trait DurableObjectBackend {
    /// The stub of the object named `name` (the same name, the same object).
    fn get_by_name(&self, name: &str) -> Result<Rc<dyn FetcherBackend>, StepError>;
}

/// Everything a workflow reaches outside its steps' own code: vars and secrets,
/// bindings, outbound HTTP, other workflows, the clock and randomness.
pub trait EnvBackend {
    /// A var or secret, `None` when unset.
    fn var(&self, name: &str) -> Option<String>;
    /// A secret, `None` when unset.
    fn secret(&self, name: &str) -> Option<String>;
    /// A D1 database binding.
    fn database(&self, binding: &str) -> Result<Rc<dyn DatabaseBackend>, StepError>;
    /// A KV namespace binding.
    fn kv(&self, binding: &str) -> Result<Rc<dyn KvBackend>, StepError>;
    /// An R2 bucket binding.
    fn bucket(&self, binding: &str) -> Result<Rc<dyn BucketBackend>, StepError>;
    /// A queue producer binding.
    fn queue(&self, binding: &str) -> Result<Rc<dyn QueueBackend>, StepError>;
    /// A service binding.
    fn service(&self, binding: &str) -> Result<Rc<dyn FetcherBackend>, StepError>;
    /// A Durable Object namespace binding.
    fn durable_object(&self, binding: &str) -> Result<Rc<dyn DurableObjectBackend>, StepError>;
    /// A request through the runtime's `fetch`.
    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>>;
    /// Creates an instance of another workflow of this Worker: true when this call
    /// created it, false when that id existed already.
    fn create_instance<'a>(&'a self, workflow: &'a str, id: &'a str, params: &'a Value) -> LocalBoxFuture<'a, Result<bool, StepError>>;
    /// The current time.
    fn now(&self) -> SystemTime;
    /// A random UUID (v4).
    fn random_uuid(&self) -> String;
    /// This Worker's workflows as instances to create, read, send events to and terminate
    /// (typed handles and child workflows), when the backend reaches them.
    fn instances(&self) -> Option<&dyn super::handles::InstancesBackend> {
        None
    }
    /// The backend itself, for the edge to reach what only it has (the raw
    /// `worker::Env` behind [`Env::raw`](super::Env), in the wasm build).
    fn as_any(&self) -> &dyn Any;
}
