//! The seam between workflow code and the world it runs in. A workflow sees only
//! [`Step`](super::Step) and [`Env`](super::Env); behind them sit these traits, with two
//! implementations: the Workflows engine and the Worker's bindings (`js_step`, `js_env`,
//! in the wasm build), and the test engine with in-memory fakes on the host.
//!
//! The traits are object-safe and deal in JSON text and plain data, so each typed
//! call site compiles its serde code once and the engine behind it is chosen at run time.

use crate::core::rollback::InstanceFailure;
use crate::core::step_config::EngineStepConfig;
use crate::core::step_error::StepError;
use serde_json::{Map, Value};
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
    pub name: &'a str,
    pub config: Option<EngineStepConfig>,
    pub attempt: &'a dyn Fn(StepContext) -> AttemptFuture<'a>,
    pub rollback: Option<RollbackCall<'w>>,
}

/// One attempt of a streamed step's closure: its bytes.
pub type BytesAttemptFuture<'a> = LocalBoxFuture<'a, Result<Vec<u8>, StepError>>;

/// One `step.do` whose value is a stream of bytes (the engine's `ReadableStream`
/// outputs): no 1 MiB limit, no rollback (the engine would hand a rollback the stream it
/// already returned, consumed).
pub struct StreamCall<'a> {
    pub name: &'a str,
    pub config: Option<EngineStepConfig>,
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
    pub payload_json: String,
    pub event_type: String,
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
    fn sleep<'a>(&'a self, name: &'a str, duration: Duration) -> LocalBoxFuture<'a, Result<(), StepError>>;
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
    Get,
    Post,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

/// An outbound HTTP request, as plain data. Redirects are never followed: a 3xx comes
/// back as the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: HttpMethod,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The most bytes of the answer's body to read: reading stops there (or before the
    /// first byte, when the answer declares a longer `Content-Length`).
    pub max_response_bytes: usize,
}

/// The answer to an outbound request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    /// The body, at most the request's `max_response_bytes` of it.
    pub body: Vec<u8>,
    /// The body was longer than `max_response_bytes`: `body` holds only its start.
    pub body_over_limit: bool,
    /// How long the service asked to wait before trying again (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// Where a 3xx answer points (`Location`, at most 256 bytes of it); never followed.
    pub location: Option<String>,
}

/// A value bound to a SQL statement's `?` parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(Cow<'a, str>),
}

/// A SQL statement with its bound values.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlStatement<'a> {
    pub sql: Cow<'a, str>,
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

/// A KV namespace.
pub trait KvBackend {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<String>, StepError>>;
    fn put<'a>(&'a self, key: &'a str, value: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>>;
}

/// An R2 bucket.
pub trait BucketBackend {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, StepError>>;
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>, content_type: Option<&'a str>) -> LocalBoxFuture<'a, Result<(), StepError>>;
}

/// Everything a workflow reaches outside its steps' own code: vars and secrets,
/// bindings, outbound HTTP, other workflows, the clock and randomness.
pub trait EnvBackend {
    /// A var or secret, `None` when unset.
    fn var(&self, name: &str) -> Option<String>;
    fn database(&self, binding: &str) -> Result<Rc<dyn DatabaseBackend>, StepError>;
    fn kv(&self, binding: &str) -> Result<Rc<dyn KvBackend>, StepError>;
    fn bucket(&self, binding: &str) -> Result<Rc<dyn BucketBackend>, StepError>;
    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>>;
    /// Creates an instance of another workflow of this Worker: true when this call
    /// created it, false when that id existed already.
    fn create_instance<'a>(&'a self, workflow: &'a str, id: &'a str, params: &'a Value) -> LocalBoxFuture<'a, Result<bool, StepError>>;
    fn now(&self) -> SystemTime;
    fn random_uuid(&self) -> String;
}
