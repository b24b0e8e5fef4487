//! The outside world of the test engine, all in memory: vars, an HTTP router that
//! records every request, KV, R2, D1 (SQLite, see `d1`), other workflows' instances,
//! a virtual clock and UUIDs that are new on every call (as real ones are).

use super::d1::SqliteD1;
use crate::bridge::engine::{
    BucketBackend, DatabaseBackend, EnvBackend, HttpMethod, KvBackend, LocalBoxFuture, OutboundRequest, OutboundResponse, SqlRow,
    SqlStatement,
};
use crate::core::service::CappedBody;
use crate::core::step_error::StepError;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which attempt of which step (or of its rollback) did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRef {
    pub instance: String,
    pub step: String,
    pub count: u32,
    /// The attempt: the step's, or its rollback's when `rollback` is set.
    pub attempt: u32,
    /// It was the step's rollback.
    pub rollback: bool,
}

/// A request a workflow sent, as the router received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: HttpMethod,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// When it was sent (virtual time).
    pub at: SystemTime,
    /// The step attempt that sent it (`None` outside any step).
    pub step: Option<AttemptRef>,
}

impl Request {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The URL's path (`/charge` of `https://payments.test/charge?x=1`).
    pub fn path(&self) -> String {
        url::Url::parse(&self.url).map(|u| u.path().to_string()).unwrap_or_default()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(self.body.as_deref().unwrap_or_default()).into_owned()
    }

    /// The body read as JSON `T`; panics when it is not.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(self.body.as_deref().unwrap_or(b"null")).unwrap_or_else(|e| {
            panic!("{:?} {}: the body {:?} does not read as the type asked for: {e}", self.method, self.url, self.body_text())
        })
    }
}

/// What a route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The request failed before any answer (the runtime's `fetch` rejected).
    pub network_error: Option<String>,
    /// No answer ever comes: the attempt hangs until its step's timeout.
    pub hangs: bool,
    /// The wait the answer asks for (its `Retry-After` header).
    pub retry_after: Option<Duration>,
    /// Where a 3xx answer points (its `Location` header); never followed, as in the Worker.
    pub location: Option<String>,
}

impl Response {
    /// `status` with `value` as the JSON body.
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        Response {
            status,
            body: serde_json::to_vec(value).expect("a JSON body serialises"),
            network_error: None,
            hangs: false,
            retry_after: None,
            location: None,
        }
    }

    /// 200 with `value` as the JSON body.
    pub fn ok(value: &impl Serialize) -> Self {
        Self::json(200, value)
    }

    /// `status` with a text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response { status, body: body.into().into_bytes(), network_error: None, hangs: false, retry_after: None, location: None }
    }

    /// `status` with no body.
    pub fn status(status: u16) -> Self {
        Response { status, body: Vec::new(), network_error: None, hangs: false, retry_after: None, location: None }
    }

    /// No answer, ever: the attempt waits until its step's timeout fails it.
    pub fn hang() -> Self {
        Response { status: 0, body: Vec::new(), network_error: None, hangs: true, retry_after: None, location: None }
    }

    /// A redirect (`status` 3xx) to `location`. Not followed: the step fails, as in the Worker.
    pub fn redirect(status: u16, location: impl Into<String>) -> Self {
        Response { location: Some(location.into()), ..Self::status(status) }
    }

    /// The same answer with a `Retry-After` header asking the caller to wait `wait`.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// No answer at all: `fetch` fails with `message` (a refused connection, a DNS failure).
    pub fn unreachable(message: impl Into<String>) -> Self {
        Response { status: 0, body: Vec::new(), network_error: Some(message.into()), hangs: false, retry_after: None, location: None }
    }
}

type Handler = Box<dyn FnMut(&Request) -> Response>;

struct Route {
    prefix: String,
    handler: Rc<RefCell<Handler>>,
}

/// An instance of another workflow a step created through `Env::create_instance`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedInstance {
    pub workflow: String,
    pub id: String,
    pub params: Value,
    /// False when an instance with that id existed already.
    pub created: bool,
    pub by: Option<AttemptRef>,
}

/// What the test set for an attempt of a step.
#[derive(Debug, Clone)]
pub(crate) enum Injected {
    Fail(StepError),
    /// Run the closure, then fail with this error anyway (its answer was lost).
    FailAfterRunning(StepError),
    Result(String),
    TimeOut,
}

#[derive(Debug, Clone)]
pub(crate) enum OverrideKind {
    /// The first `times` attempts fail with the error (the closure is not called).
    Fail { times: u32, error: StepError },
    /// Every attempt fails with the error: the step retries per its config, then fails.
    FailAlways(StepError),
    /// The first `times` attempts run the closure, then fail with the error: the work
    /// happened but its answer was lost (a timeout after the side effect).
    FailAfterRunning { times: u32, error: StepError },
    /// Every attempt returns this JSON (the closure is not called).
    Result(String),
    /// The first `times` attempts hang until their timeout.
    TimeOut { times: u32 },
}

#[derive(Debug, Clone)]
pub(crate) struct StepOverride {
    pub name: String,
    pub count: u32,
    pub kind: OverrideKind,
}

/// A KV namespace's keys and values.
pub(crate) type Namespace = Rc<RefCell<BTreeMap<String, String>>>;
/// An R2 bucket's objects by key.
pub(crate) type Objects = Rc<RefCell<BTreeMap<String, StoredObject>>>;

/// The virtual clock starts here: 2026-01-01T00:00:00Z.
pub const DEFAULT_START_MILLIS: u64 = 1_767_225_600_000;

pub(crate) struct World {
    now_ms: Cell<u64>,
    vars: RefCell<BTreeMap<String, String>>,
    routes: RefCell<Vec<Route>>,
    requests: RefCell<Vec<Request>>,
    pub d1: RefCell<BTreeMap<String, Rc<SqliteD1>>>,
    pub kv: RefCell<BTreeMap<String, Namespace>>,
    pub r2: RefCell<BTreeMap<String, Objects>>,
    uuids: Cell<u64>,
    pub created: RefCell<Vec<CreatedInstance>>,
    /// Every instance that exists: (workflow, id).
    pub instances: RefCell<BTreeSet<(String, String)>>,
    /// The workflows the test engine can run (`TestEngine::workflow`), by name.
    pub runnable: RefCell<BTreeSet<String>>,
    /// Workflows that exist without running here (`TestEngine::registry`), by name.
    pub known: RefCell<BTreeSet<String>>,
    /// Children created by steps, for the engine to start.
    pub to_start: RefCell<Vec<(String, String, Value)>>,
    /// The attempt being polled, if any.
    current: RefCell<Option<AttemptRef>>,
    /// The instance whose `run` is being polled, if any.
    running: RefCell<Option<String>>,
    /// Side effects of the running instance outside any step, this run.
    pub outside_steps: RefCell<Vec<String>>,
    pub overrides: RefCell<Vec<StepOverride>>,
    pub allow_duplicate_names: Cell<bool>,
    pub step_limit: Cell<u32>,
}

/// An R2 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

impl World {
    pub fn new() -> Self {
        World {
            now_ms: Cell::new(DEFAULT_START_MILLIS),
            vars: RefCell::default(),
            routes: RefCell::default(),
            requests: RefCell::default(),
            d1: RefCell::default(),
            kv: RefCell::default(),
            r2: RefCell::default(),
            uuids: Cell::new(0),
            created: RefCell::default(),
            instances: RefCell::default(),
            runnable: RefCell::default(),
            known: RefCell::default(),
            to_start: RefCell::default(),
            current: RefCell::default(),
            running: RefCell::default(),
            outside_steps: RefCell::default(),
            overrides: RefCell::default(),
            allow_duplicate_names: Cell::new(false),
            step_limit: Cell::new(crate::testing::replay::STEP_LIMIT),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    pub fn set_now_ms(&self, ms: u64) {
        self.now_ms.set(ms);
    }

    pub fn time(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    pub fn set_var(&self, name: &str, value: &str) {
        self.vars.borrow_mut().insert(name.to_string(), value.to_string());
    }

    pub fn add_route(&self, prefix: &str, handler: Handler) {
        self.routes.borrow_mut().push(Route { prefix: prefix.to_string(), handler: Rc::new(RefCell::new(handler)) });
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.borrow().clone()
    }

    pub fn set_current(&self, attempt: Option<AttemptRef>) {
        *self.current.borrow_mut() = attempt;
    }

    pub fn set_running(&self, instance: Option<String>) {
        *self.running.borrow_mut() = instance;
        self.outside_steps.borrow_mut().clear();
    }

    /// Notes a side effect; outside any step of a running instance it is a replay hazard.
    fn effect(&self, what: impl FnOnce() -> String) {
        if self.current.borrow().is_none() && self.running.borrow().is_some() {
            self.outside_steps.borrow_mut().push(what());
        }
    }

    /// What the test set for this attempt of step `name` (call `count`).
    pub fn injected(&self, name: &str, count: u32, attempt: u32) -> Option<Injected> {
        self.overrides.borrow().iter().filter(|o| o.name == name && o.count == count).find_map(|o| match &o.kind {
            OverrideKind::Fail { times, error } if attempt <= *times => Some(Injected::Fail(error.clone())),
            OverrideKind::FailAlways(error) => Some(Injected::Fail(error.clone())),
            OverrideKind::FailAfterRunning { times, error } if attempt <= *times => Some(Injected::FailAfterRunning(error.clone())),
            OverrideKind::Result(json) => Some(Injected::Result(json.clone())),
            OverrideKind::TimeOut { times } if attempt <= *times => Some(Injected::TimeOut),
            _ => None,
        })
    }

    fn route(&self, request: &Request) -> Option<Rc<RefCell<Handler>>> {
        // The longest matching prefix wins, so a specific route can shadow a general one.
        self.routes
            .borrow()
            .iter()
            .filter(|r| request.url.starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len())
            .map(|r| Rc::clone(&r.handler))
    }

    /// The answer to a request; `None` when it never comes.
    fn fetch(&self, outbound: OutboundRequest) -> Option<Result<OutboundResponse, StepError>> {
        let max_response_bytes = outbound.max_response_bytes;
        let request = Request {
            method: outbound.method,
            url: outbound.url,
            headers: outbound.headers,
            body: outbound.body,
            at: Self::time(self.now_ms()),
            step: self.current.borrow().clone(),
        };
        self.effect(|| format!("fetch {} {}", request.method.as_str(), request.url));
        self.requests.borrow_mut().push(request.clone());
        let Some(handler) = self.route(&request) else {
            let routes: Vec<String> = self.routes.borrow().iter().map(|r| r.prefix.clone()).collect();
            return Some(Err(StepError::failed(format!(
                "test engine: no route for {} {} (routes: {routes:?}); add one with TestEngine::route",
                request.method.as_str(),
                request.url
            ))));
        };
        let response = (handler.borrow_mut())(&request);
        match response.network_error {
            _ if response.hangs => None,
            Some(message) => Some(Err(StepError::failed(message))),
            None => {
                // Capped as the Worker reads it: a body over the cap is cut there.
                let mut body = CappedBody::new(max_response_bytes, None);
                body.push(&response.body);
                let (body, body_over_limit) = body.finish();
                let location = response.location.filter(|_| (300..400).contains(&response.status));
                Some(Ok(OutboundResponse { status: response.status, body, body_over_limit, retry_after: response.retry_after, location }))
            }
        }
    }

    fn random_uuid(&self) -> String {
        // Distinct on every call like real UUIDs (so one made outside a step differs on
        // replay, as it would), and the same from one test run to the next.
        let n = self.uuids.get() + 1;
        self.uuids.set(n);
        format!("00000000-0000-4000-8000-{n:012x}")
    }
}

/// The `Env` backend every instance on the test engine gets.
pub(crate) struct TestEnv {
    pub world: Rc<World>,
}

fn missing(kind: &str, binding: &str, how: &str) -> StepError {
    StepError::non_retryable(format!("the {kind} binding {binding}: not configured on the test engine (TestEngine::{how})"))
}

impl EnvBackend for TestEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.world.vars.borrow().get(name).cloned()
    }

    fn database(&self, binding: &str) -> Result<Rc<dyn DatabaseBackend>, StepError> {
        let db = self.world.d1.borrow().get(binding).cloned().ok_or_else(|| missing("D1", binding, "d1"))?;
        Ok(Rc::new(TestDatabase { db, world: Rc::clone(&self.world) }))
    }

    fn kv(&self, binding: &str) -> Result<Rc<dyn KvBackend>, StepError> {
        let kv = self.world.kv.borrow().get(binding).cloned().ok_or_else(|| missing("KV", binding, "kv"))?;
        Ok(Rc::new(TestKv { kv, binding: binding.to_string(), world: Rc::clone(&self.world) }))
    }

    fn bucket(&self, binding: &str) -> Result<Rc<dyn BucketBackend>, StepError> {
        let bucket = self.world.r2.borrow().get(binding).cloned().ok_or_else(|| missing("R2", binding, "r2"))?;
        Ok(Rc::new(TestBucket { bucket, binding: binding.to_string(), world: Rc::clone(&self.world) }))
    }

    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>> {
        match self.world.fetch(request) {
            Some(result) => Box::pin(async move { result }),
            None => Box::pin(std::future::pending()),
        }
    }

    fn create_instance<'a>(&'a self, workflow: &'a str, id: &'a str, params: &'a Value) -> LocalBoxFuture<'a, Result<bool, StepError>> {
        Box::pin(async move {
            if !self.world.known.borrow().contains(workflow) && !self.world.runnable.borrow().contains(workflow) {
                return Err(StepError::non_retryable(format!("no workflow named {workflow:?}")));
            }
            crate::core::validate::instance_id(id).map_err(|e| StepError::failed(format!("starting {workflow} instance {id}: {e}")))?;
            self.world.effect(|| format!("create_instance {workflow} {id}"));
            let created = self.world.instances.borrow_mut().insert((workflow.to_string(), id.to_string()));
            if created {
                self.world.to_start.borrow_mut().push((workflow.to_string(), id.to_string(), params.clone()));
            }
            let by = self.world.current.borrow().clone();
            self.world.created.borrow_mut().push(CreatedInstance {
                workflow: workflow.to_string(),
                id: id.to_string(),
                params: params.clone(),
                created,
                by,
            });
            Ok(created)
        })
    }

    fn now(&self) -> SystemTime {
        World::time(self.world.now_ms())
    }

    fn random_uuid(&self) -> String {
        self.world.random_uuid()
    }
}

struct TestDatabase {
    db: Rc<SqliteD1>,
    world: Rc<World>,
}

impl DatabaseBackend for TestDatabase {
    fn run<'a>(&'a self, statement: &'a SqlStatement<'a>) -> LocalBoxFuture<'a, Result<u64, StepError>> {
        self.world.effect(|| format!("D1 {}", statement.sql));
        let result = self.db.run(statement);
        Box::pin(async move { result })
    }

    fn rows<'a>(&'a self, statement: &'a SqlStatement<'a>) -> LocalBoxFuture<'a, Result<Vec<SqlRow>, StepError>> {
        self.world.effect(|| format!("D1 {}", statement.sql));
        let result = self.db.rows(statement);
        Box::pin(async move { result })
    }

    fn batch<'a>(&'a self, statements: &'a [SqlStatement<'a>]) -> LocalBoxFuture<'a, Result<(), StepError>> {
        self.world.effect(|| format!("D1 batch of {} statements", statements.len()));
        let result = self.db.batch(statements);
        Box::pin(async move { result })
    }
}

struct TestKv {
    kv: Namespace,
    binding: String,
    world: Rc<World>,
}

impl KvBackend for TestKv {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<String>, StepError>> {
        self.world.effect(|| format!("KV {} get {key}", self.binding));
        let value = self.kv.borrow().get(key).cloned();
        Box::pin(async move { Ok(value) })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>> {
        self.world.effect(|| format!("KV {} put {key}", self.binding));
        self.kv.borrow_mut().insert(key.to_string(), value.to_string());
        Box::pin(async move { Ok(()) })
    }
}

struct TestBucket {
    bucket: Objects,
    binding: String,
    world: Rc<World>,
}

impl BucketBackend for TestBucket {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, StepError>> {
        self.world.effect(|| format!("R2 {} get {key}", self.binding));
        let body = self.bucket.borrow().get(key).map(|o| o.body.clone());
        Box::pin(async move { Ok(body) })
    }

    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>, content_type: Option<&'a str>) -> LocalBoxFuture<'a, Result<(), StepError>> {
        self.world.effect(|| format!("R2 {} put {key}", self.binding));
        self.bucket.borrow_mut().insert(key.to_string(), StoredObject { body, content_type: content_type.map(str::to_string) });
        Box::pin(async move { Ok(()) })
    }
}
