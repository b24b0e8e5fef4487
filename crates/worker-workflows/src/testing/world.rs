//! The outside world of the test engine, all in memory: vars and secrets, an HTTP router
//! that records every request (with routes per service binding and per Durable Object
//! namespace), KV (expiring on the virtual clock), R2, queues that record what was sent,
//! D1 (SQLite, see `d1`), other workflows' instances, a virtual clock and UUIDs that are
//! new on every call (as real ones are), random from one seed (see `seed`), as is the
//! clock read outside steps.
//!
//! Every call that reaches outside is noted with [`World::effect`], which reports one
//! made outside any step as a replay hazard; secrets' values never appear in what the
//! engine writes (its effects and its own error messages): [`World::redact`].

use super::d1::SqliteD1;
use crate::bridge::engine::{
    BucketBackend, DatabaseBackend, DurableObjectBackend, EnvBackend, FetcherBackend, HttpMethod, KvBackend, KvKey, KvKeyList,
    KvPutOptions, ListOptions, LocalBoxFuture, ObjectInfo, ObjectList, OutboundRequest, OutboundResponse, QueueBackend, Redirect, SqlRow,
    SqlStatement,
};
use crate::core::binding_limits;
use crate::core::service::CappedBody;
use crate::core::step_error::StepError;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which attempt of which step (or of its rollback) did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRef {
    /// The instance's id.
    pub instance: String,
    /// The step's name.
    pub step: String,
    /// Which call of that name (1 for the first).
    pub count: u32,
    /// The attempt: the step's, or its rollback's when `rollback` is set.
    pub attempt: u32,
    /// It was the step's rollback.
    pub rollback: bool,
}

/// What a request went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The runtime's `fetch`, answered by [`TestEngine::route`](super::TestEngine::route)s.
    Fetch,
    /// A service binding, answered by [`TestEngine::service`](super::TestEngine::service).
    Service(String),
    /// A Durable Object's stub, answered by
    /// [`TestEngine::durable_object`](super::TestEngine::durable_object).
    DurableObject {
        /// The namespace binding.
        binding: String,
        /// The object's name.
        name: String,
    },
}

/// A request a workflow sent, as the router received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: HttpMethod,
    /// The URL.
    pub url: String,
    /// The headers, in order (secrets included: this is what was sent).
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// What it went through: `fetch`, a service binding or a Durable Object stub.
    pub via: Via,
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

    /// The body as text (invalid UTF-8 replaced).
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
    /// The HTTP status.
    pub status: u16,
    /// The body (read by the workflow up to its request's cap, as in the Worker).
    pub body: Vec<u8>,
    /// The request failed before any answer (the runtime's `fetch` rejected).
    pub network_error: Option<String>,
    /// No answer ever comes: the attempt hangs until its step's timeout.
    pub hangs: bool,
    /// The wait the answer asks for (its `Retry-After` header).
    pub retry_after: Option<Duration>,
    /// Where a 3xx answer points (its `Location` header): followed when the request
    /// follows redirects, as `fetch` does by default; a `ServiceCall` never does.
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

    /// A redirect (`status` 3xx) to `location`. A request that asks to follow redirects
    /// ([`Redirect::Follow`]) is sent on there, as the runtime does; any other (a
    /// `ServiceCall` always asks for [`Redirect::Manual`]) gets the 3xx, as in the Worker,
    /// and a `ServiceCall` fails its step with it.
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

/// The most redirects a followed request takes, as `fetch` (then it fails).
pub const MAX_REDIRECTS: usize = 20;

/// The request `fetch` sends on after a `status` redirect to `location` (relative to the
/// request's URL), by the Fetch standard: a 303, and a 301 or 302 of a POST, become a GET
/// without the body and its headers; a redirect to another origin drops `Authorization`.
/// `None` when `location` does not read as a URL.
fn redirected(request: &Request, status: u16, location: &str) -> Option<Request> {
    let from = url::Url::parse(&request.url).ok()?;
    let to = from.join(location).ok()?;
    let mut next = request.clone();
    if status == 303 || (matches!(status, 301 | 302) && request.method == HttpMethod::Post) {
        next.method = HttpMethod::Get;
        next.body = None;
        next.headers.retain(|(name, _)| {
            !["content-type", "content-encoding", "content-language", "content-location"].iter().any(|h| name.eq_ignore_ascii_case(h))
        });
    }
    if from.origin() != to.origin() {
        next.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
    }
    next.url = to.to_string();
    Some(next)
}

/// What answers requests: a route's, or a service binding's, handler.
pub(crate) type Handler = Box<dyn FnMut(&Request) -> Response>;
/// What answers a Durable Object namespace's requests: the object's name, the request.
pub(crate) type ObjectHandler = Box<dyn FnMut(&str, &Request) -> Response>;

/// A route of the `fetch` router: requests whose URL starts with `prefix`.
struct Route {
    prefix: String,
    handler: Rc<RefCell<Handler>>,
}

/// An instance of another workflow a step created through `Env::create_instance`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedInstance {
    /// The workflow's name.
    pub workflow: String,
    /// The instance's id.
    pub id: String,
    /// The params it was created with.
    pub params: Value,
    /// False when an instance with that id existed already.
    pub created: bool,
    /// The step attempt that created it (`None` outside any step).
    pub by: Option<AttemptRef>,
    /// The instance that started it as its child workflow (`Step::child`), if any.
    pub parent: Option<crate::core::child::InstanceRef>,
}

/// A message a step sent to a queue (`Env::queue`), as the queue received it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The message's body.
    pub body: Value,
    /// When it was sent (virtual time).
    pub at: SystemTime,
    /// The step attempt that sent it (`None` outside any step).
    pub step: Option<AttemptRef>,
    /// It was sent in a batch (`Queue::send_batch`).
    pub batch: bool,
}

impl SentMessage {
    /// The body read as `T`; panics when it is not one.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body.clone())
            .unwrap_or_else(|e| panic!("the queue message {} does not read as the type asked for: {e}", self.body))
    }
}

/// What the test set for an attempt of a step.
#[derive(Debug, Clone)]
pub(crate) enum Injected {
    /// Fail with this error without running the closure.
    Fail(StepError),
    /// Run the closure, then fail with this error anyway (its answer was lost).
    FailAfterRunning(StepError),
    /// Return this JSON without running the closure.
    Result(String),
    /// Hang until the step's timeout.
    TimeOut,
}

/// How the test overrides a step's attempts (see `TestEngine::fail_step` and friends).
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

/// An override of one step's attempts: the step's name and call count, and what happens.
#[derive(Debug, Clone)]
pub(crate) struct StepOverride {
    /// The step's name.
    pub name: String,
    /// Which call of that name.
    pub count: u32,
    /// What happens to its attempts.
    pub kind: OverrideKind,
}

/// A KV namespace's keys and values.
pub(crate) type Namespace = Rc<RefCell<BTreeMap<String, StoredValue>>>;
/// An R2 bucket's objects by key.
pub(crate) type Objects = Rc<RefCell<BTreeMap<String, StoredObject>>>;
/// A queue's messages, in the order they were sent.
pub(crate) type Messages = Rc<RefCell<Vec<SentMessage>>>;

/// The virtual clock starts here: 2026-01-01T00:00:00Z.
pub const DEFAULT_START_MILLIS: u64 = 1_767_225_600_000;

/// Everything outside the instances, shared by the engine and every instance's env.
pub(crate) struct World {
    /// The virtual clock, in Unix milliseconds.
    now_ms: Cell<u64>,
    /// Vars by name.
    vars: RefCell<BTreeMap<String, String>>,
    /// Secrets by name; their values are redacted from everything the engine writes.
    secrets: RefCell<BTreeMap<String, String>>,
    /// The `fetch` router's routes.
    routes: RefCell<Vec<Route>>,
    /// Service bindings' handlers, by binding.
    services: RefCell<BTreeMap<String, Rc<RefCell<Handler>>>>,
    /// Durable Object namespaces' handlers, by binding.
    durable_objects: RefCell<BTreeMap<String, Rc<RefCell<ObjectHandler>>>>,
    /// Every request sent, in order, whatever it went through.
    requests: RefCell<Vec<Request>>,
    /// D1 databases, by binding.
    pub d1: RefCell<BTreeMap<String, Rc<SqliteD1>>>,
    /// KV namespaces, by binding.
    pub kv: RefCell<BTreeMap<String, Namespace>>,
    /// R2 buckets, by binding.
    pub r2: RefCell<BTreeMap<String, Objects>>,
    /// Queues' sent messages, by binding.
    pub queues: RefCell<BTreeMap<String, Messages>>,
    /// The randomness of UUIDs and of the clock outside steps (see `seed`).
    pub rng: super::seed::Rng,
    /// Runs started so far, of every instance: the clock outside steps is offset per run.
    runs: Cell<u64>,
    /// When each patch of each workflow was first seen (Unix ms), by (workflow, patch id).
    pub patches_seen: RefCell<BTreeMap<(String, String), u64>>,
    /// When each workflow's code was last deployed here (`TestEngine::upgrade`), Unix ms;
    /// a patch first asked for is recorded as seen then (the beginning of time when the
    /// workflow's code was never upgraded).
    pub deployed_at: RefCell<BTreeMap<String, u64>>,
    /// The instances steps created, in order.
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
    /// The test's overrides of steps' attempts.
    pub overrides: RefCell<Vec<StepOverride>>,
    /// A step name may be called more than once in a run.
    pub allow_duplicate_names: Cell<bool>,
    /// The `step.run` calls allowed in one run.
    pub step_limit: Cell<u32>,
    /// Instances by (workflow, id), their parents, and the notices children sent.
    pub family: RefCell<super::children::Family>,
}

/// A KV value, with its expiry and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredValue {
    /// The value.
    pub value: String,
    /// When it expires, in Unix seconds (`None`: never). Past it, the key is gone for
    /// every read, the workflow's and the test's alike.
    pub expiration: Option<u64>,
    /// The metadata it was written with.
    pub metadata: Option<Value>,
}

impl StoredValue {
    /// Whether it has expired at `now_ms` (virtual time).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expiration.is_some_and(|at| at.saturating_mul(1000) <= now_ms)
    }
}

/// An R2 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The body.
    pub body: Vec<u8>,
    /// Its `Content-Type`, when written with one.
    pub content_type: Option<String>,
    /// When it was written, in Unix milliseconds (virtual time).
    pub uploaded_millis: u64,
}

impl StoredObject {
    /// Its etag: a digest of the body, in hex (the platform's is the body's MD5; tests
    /// should only compare etags, never compute them).
    pub fn etag(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(&self.body).iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// Its metadata as `Bucket::head` gives it (`with_content_type`) or a list does.
    fn info(&self, key: &str, with_content_type: bool) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: self.body.len() as u64,
            etag: self.etag(),
            uploaded_millis: self.uploaded_millis,
            content_type: self.content_type.clone().filter(|_| with_content_type),
        }
    }
}

/// The cursors the test engine's lists hand out: where the page ended, opaque to the
/// workflow (as the platform's are).
const CURSOR_MARK: &str = "test-engine-cursor:";

/// The key a cursor continues after; a cursor the test engine did not write fails the
/// call, as a made-up cursor does on the platform.
fn cursor_key<'a>(kind: &str, options: &'a ListOptions) -> Result<Option<&'a str>, StepError> {
    match options.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(cursor) => cursor
            .strip_prefix(CURSOR_MARK)
            .map(Some)
            .ok_or_else(|| StepError::failed(format!("{kind} list: the cursor {cursor:?} is not one a list returned"))),
    }
}

/// A page of entries, by key, and the cursor of the next page (`None` on the last).
type Page<'a, T> = (Vec<(&'a String, &'a T)>, Option<String>);

/// One page of `entries` (sorted by key) as `options` asks: the keys with its prefix,
/// after its cursor, at most its limit; and the cursor of the next page, if any.
fn page<'a, T>(kind: &str, entries: impl Iterator<Item = (&'a String, &'a T)>, options: &ListOptions) -> Result<Page<'a, T>, StepError>
where
    T: 'a,
{
    let after = cursor_key(kind, options)?;
    let prefix = options.prefix.as_deref().unwrap_or_default();
    let limit = options.effective_limit() as usize;
    let mut matching = entries.filter(|(key, _)| key.starts_with(prefix) && after.is_none_or(|after| key.as_str() > after));
    let page: Vec<_> = matching.by_ref().take(limit).collect();
    let next = match (matching.next(), page.last()) {
        (Some(_), Some((last, _))) => Some(format!("{CURSOR_MARK}{last}")),
        _ => None,
    };
    Ok((page, next))
}

impl World {
    /// An empty world, its clock at [`DEFAULT_START_MILLIS`].
    pub fn new() -> Self {
        World {
            now_ms: Cell::new(DEFAULT_START_MILLIS),
            vars: RefCell::default(),
            secrets: RefCell::default(),
            routes: RefCell::default(),
            services: RefCell::default(),
            durable_objects: RefCell::default(),
            requests: RefCell::default(),
            d1: RefCell::default(),
            kv: RefCell::default(),
            r2: RefCell::default(),
            queues: RefCell::default(),
            rng: super::seed::Rng::new(super::seed::default_seed()),
            runs: Cell::new(0),
            patches_seen: RefCell::default(),
            deployed_at: RefCell::default(),
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
            family: RefCell::default(),
        }
    }

    /// The virtual time, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    /// Moves the virtual clock.
    pub fn set_now_ms(&self, ms: u64) {
        self.now_ms.set(ms);
    }

    /// Unix milliseconds as a time.
    pub fn time(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// Sets a var.
    pub fn set_var(&self, name: &str, value: &str) {
        self.vars.borrow_mut().insert(name.to_string(), value.to_string());
    }

    /// Sets a secret.
    pub fn set_secret(&self, name: &str, value: &str) {
        self.secrets.borrow_mut().insert(name.to_string(), value.to_string());
    }

    /// `text` with every secret's value replaced by `[secret NAME]`: everything the
    /// engine writes about what a workflow did passes through here.
    pub fn redact(&self, text: String) -> String {
        let secrets = self.secrets.borrow();
        // Longest first, so a secret containing another is replaced whole.
        let mut values: Vec<(&String, &String)> = secrets.iter().filter(|(_, v)| !v.is_empty()).collect();
        values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        values.into_iter().fold(text, |text, (name, value)| text.replace(value.as_str(), &format!("[secret {name}]")))
    }

    /// Adds a route of the `fetch` router.
    pub fn add_route(&self, prefix: &str, handler: Handler) {
        self.routes.borrow_mut().push(Route { prefix: prefix.to_string(), handler: Rc::new(RefCell::new(handler)) });
    }

    /// Adds a service binding, answered by `handler`.
    pub fn add_service(&self, binding: &str, handler: Handler) {
        self.services.borrow_mut().insert(binding.to_string(), Rc::new(RefCell::new(handler)));
    }

    /// Adds a Durable Object namespace binding, answered by `handler`.
    pub fn add_durable_object(&self, binding: &str, handler: ObjectHandler) {
        self.durable_objects.borrow_mut().insert(binding.to_string(), Rc::new(RefCell::new(handler)));
    }

    /// Every request sent so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.borrow().clone()
    }

    /// Sets the attempt being polled.
    pub fn set_current(&self, attempt: Option<AttemptRef>) {
        *self.current.borrow_mut() = attempt;
    }

    /// Sets the instance whose `run` is being polled, starting its list of effects anew.
    pub fn set_running(&self, instance: Option<String>) {
        if instance.is_some() {
            self.runs.set(self.runs.get() + 1);
        }
        *self.running.borrow_mut() = instance;
        self.outside_steps.borrow_mut().clear();
    }

    /// The step attempt being polled, if any.
    pub(crate) fn current_attempt(&self) -> Option<AttemptRef> {
        self.current.borrow().clone()
    }

    /// Notes a side effect; outside any step of a running instance it is a replay hazard,
    /// reported with secrets redacted.
    pub(crate) fn effect(&self, what: impl FnOnce() -> String) {
        if self.current.borrow().is_none() && self.running.borrow().is_some() {
            let what = self.redact(what());
            self.outside_steps.borrow_mut().push(what);
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

    /// The route for a `fetch` request: the longest matching prefix wins, so a specific
    /// route can shadow a general one.
    fn route(&self, request: &Request) -> Option<Rc<RefCell<Handler>>> {
        self.routes
            .borrow()
            .iter()
            .filter(|r| request.url.starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len())
            .map(|r| Rc::clone(&r.handler))
    }

    /// What answers `request`, by what it went through: its handler's answer, or why
    /// there is none.
    fn answer(&self, request: &Request) -> Result<Response, String> {
        match &request.via {
            Via::Fetch => {
                let Some(handler) = self.route(request) else {
                    let routes: Vec<String> = self.routes.borrow().iter().map(|r| r.prefix.clone()).collect();
                    return Err(format!(
                        "test engine: no route for {} {} (routes: {routes:?}); add one with TestEngine::route",
                        request.method.as_str(),
                        request.url
                    ));
                };
                let response = (handler.borrow_mut())(request);
                Ok(response)
            }
            Via::Service(binding) => {
                let handler = self.services.borrow().get(binding).cloned().ok_or_else(|| format!("test engine: no service {binding}"))?;
                let response = (handler.borrow_mut())(request);
                Ok(response)
            }
            Via::DurableObject { binding, name } => {
                let handler = self
                    .durable_objects
                    .borrow()
                    .get(binding)
                    .cloned()
                    .ok_or_else(|| format!("test engine: no Durable Object {binding}"))?;
                let response = (handler.borrow_mut())(name, request);
                Ok(response)
            }
        }
    }

    /// Records a request and answers it as the Worker would read the answer; `None` when
    /// the answer never comes. A request that follows redirects is sent on to each
    /// `Location` as `fetch` sends it (every hop recorded, through what the first went
    /// through), at most [`MAX_REDIRECTS`] times.
    fn fetch(&self, outbound: OutboundRequest, via: Via) -> Option<Result<OutboundResponse, StepError>> {
        let max_response_bytes = outbound.max_response_bytes;
        let follow = outbound.redirect == Redirect::Follow;
        let mut request = Request {
            method: outbound.method,
            url: outbound.url,
            headers: outbound.headers,
            body: outbound.body,
            via,
            at: Self::time(self.now_ms()),
            step: self.current.borrow().clone(),
        };
        let mut redirects = 0;
        loop {
            let response = match self.send_one(&request) {
                Some(Ok(response)) => response,
                Some(Err(e)) => return Some(Err(e)),
                None => return None,
            };
            let location = response.location.clone().filter(|_| matches!(response.status, 301 | 302 | 303 | 307 | 308));
            if let (true, Some(location)) = (follow, location) {
                if redirects == MAX_REDIRECTS {
                    return Some(Err(StepError::failed(format!(
                        "{} {}: more than {MAX_REDIRECTS} redirects",
                        request.method.as_str(),
                        request.url
                    ))));
                }
                redirects += 1;
                request = match redirected(&request, response.status, &location) {
                    Some(next) => Request { at: Self::time(self.now_ms()), step: self.current.borrow().clone(), ..next },
                    None => return Some(Err(StepError::failed(format!("a redirect to a location that is not a URL: {location}")))),
                };
                continue;
            }
            // Capped as the Worker reads it: a body over the cap is cut there.
            let mut body = CappedBody::new(max_response_bytes, None);
            body.push(&response.body);
            let (body, body_over_limit) = body.finish();
            let location = response.location.filter(|_| (300..400).contains(&response.status));
            return Some(Ok(OutboundResponse {
                status: response.status,
                body,
                body_over_limit,
                retry_after: response.retry_after,
                location,
            }));
        }
    }

    /// Records one request and gets its handler's answer: `None` when it never comes, an
    /// error when no answer comes at all.
    fn send_one(&self, request: &Request) -> Option<Result<Response, StepError>> {
        self.effect(|| {
            let through = match &request.via {
                Via::Fetch => String::new(),
                Via::Service(binding) => format!(" through service {binding}"),
                Via::DurableObject { binding, name } => format!(" through Durable Object {binding} {name:?}"),
            };
            format!("fetch {} {}{through}", request.method.as_str(), request.url)
        });
        self.requests.borrow_mut().push(request.clone());
        let response = match self.answer(request) {
            Ok(response) => response,
            Err(message) => return Some(Err(StepError::failed(self.redact(message)))),
        };
        match response.network_error.clone() {
            _ if response.hangs => None,
            Some(message) => Some(Err(StepError::failed(message))),
            None => Some(Ok(response)),
        }
    }

    /// A fetch's answer as the future the backends return: one that never resolves when
    /// the answer never comes.
    fn fetch_future(&self, request: OutboundRequest, via: Via) -> LocalBoxFuture<'static, Result<OutboundResponse, StepError>> {
        match self.fetch(request, via) {
            Some(result) => Box::pin(async move { result }),
            None => Box::pin(std::future::pending()),
        }
    }

    /// A new UUID: random in all its random bits, from the engine's seed, so one made
    /// outside a step differs on replay as a real one does, and a failure reproduces
    /// with the seed.
    fn random_uuid(&self) -> String {
        self.rng.uuid()
    }

    /// The clock as the workflow reads it: the virtual time inside a step (and outside
    /// any run), and outside a step of a running instance the virtual time plus this
    /// run's offset (0 to 999 ms, from the seed), which differs from run to run as a real
    /// replay's clock does.
    fn workflow_now_ms(&self) -> u64 {
        let now = self.now_ms();
        if self.current.borrow().is_none() && self.running.borrow().is_some() {
            now.saturating_add(super::seed::clock_offset_ms(self.rng.seed(), self.runs.get()))
        } else {
            now
        }
    }
}

/// The `Env` backend every instance on the test engine gets.
pub(crate) struct TestEnv {
    /// The world it reaches.
    pub world: Rc<World>,
}

/// A binding the test did not set up.
fn missing(kind: &str, binding: &str, how: &str) -> StepError {
    StepError::non_retryable(format!("the {kind} binding {binding}: not configured on the test engine (TestEngine::{how})"))
}

impl EnvBackend for TestEnv {
    fn var(&self, name: &str) -> Option<String> {
        // On the platform, secrets are strings on `env` as vars are.
        let var = self.world.vars.borrow().get(name).cloned();
        var.or_else(|| self.world.secrets.borrow().get(name).cloned())
    }

    fn secret(&self, name: &str) -> Option<String> {
        // Only secrets: a secret set as a plain var would be committed in wrangler.jsonc.
        self.world.secrets.borrow().get(name).cloned()
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

    fn queue(&self, binding: &str) -> Result<Rc<dyn QueueBackend>, StepError> {
        let messages = self.world.queues.borrow().get(binding).cloned().ok_or_else(|| missing("queue", binding, "queue"))?;
        Ok(Rc::new(TestQueue { messages, binding: binding.to_string(), world: Rc::clone(&self.world) }))
    }

    fn service(&self, binding: &str) -> Result<Rc<dyn FetcherBackend>, StepError> {
        if !self.world.services.borrow().contains_key(binding) {
            return Err(missing("service", binding, "service"));
        }
        Ok(Rc::new(TestFetcher { via: Via::Service(binding.to_string()), world: Rc::clone(&self.world) }))
    }

    fn durable_object(&self, binding: &str) -> Result<Rc<dyn DurableObjectBackend>, StepError> {
        if !self.world.durable_objects.borrow().contains_key(binding) {
            return Err(missing("Durable Object", binding, "durable_object"));
        }
        Ok(Rc::new(TestDurableObjects { binding: binding.to_string(), world: Rc::clone(&self.world) }))
    }

    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>> {
        self.world.fetch_future(request, Via::Fetch)
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
                parent: None,
            });
            Ok(created)
        })
    }

    fn now(&self) -> SystemTime {
        World::time(self.world.workflow_now_ms())
    }

    fn random_uuid(&self) -> String {
        self.world.random_uuid()
    }

    fn instances(&self) -> Option<&dyn crate::bridge::InstancesBackend> {
        Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A D1 binding: SQLite in memory.
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

/// A KV binding: its keys expire on the virtual clock.
struct TestKv {
    kv: Namespace,
    binding: String,
    world: Rc<World>,
}

impl TestKv {
    /// Drops the keys that have expired by now, as the platform forgets them.
    fn expire(&self) {
        let now = self.world.now_ms();
        self.kv.borrow_mut().retain(|_, stored| !stored.is_expired(now));
    }
}

impl KvBackend for TestKv {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<String>, StepError>> {
        self.world.effect(|| format!("KV {} get {key}", self.binding));
        self.expire();
        let value = self.kv.borrow().get(key).map(|stored| stored.value.clone());
        Box::pin(async move { Ok(value) })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a str, options: &'a KvPutOptions) -> LocalBoxFuture<'a, Result<(), StepError>> {
        self.world.effect(|| format!("KV {} put {key}", self.binding));
        let now_seconds = self.world.now_ms() / 1000;
        let result = binding_limits::kv_expiration(now_seconds, options.expiration_ttl, options.expiration)
            .map_err(|e| StepError::failed(format!("KV {}: {e}", self.binding)))
            .map(|expiration| {
                let stored = StoredValue { value: value.to_string(), expiration, metadata: options.metadata.clone() };
                self.kv.borrow_mut().insert(key.to_string(), stored);
            });
        Box::pin(async move { result })
    }

    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>> {
        self.world.effect(|| format!("KV {} delete {key}", self.binding));
        self.kv.borrow_mut().remove(key);
        Box::pin(async move { Ok(()) })
    }

    fn list<'a>(&'a self, options: &'a ListOptions) -> LocalBoxFuture<'a, Result<KvKeyList, StepError>> {
        self.world.effect(|| format!("KV {} list {:?}", self.binding, options.prefix.as_deref().unwrap_or_default()));
        self.expire();
        let kv = self.kv.borrow();
        let result = page(&format!("KV {}", self.binding), kv.iter(), options).map(|(keys, cursor)| KvKeyList {
            keys: keys
                .into_iter()
                .map(|(name, stored)| KvKey { name: name.clone(), expiration: stored.expiration, metadata: stored.metadata.clone() })
                .collect(),
            list_complete: cursor.is_none(),
            cursor,
        });
        Box::pin(async move { result })
    }
}

/// An R2 binding.
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
        let object = StoredObject { body, content_type: content_type.map(str::to_string), uploaded_millis: self.world.now_ms() };
        self.bucket.borrow_mut().insert(key.to_string(), object);
        Box::pin(async move { Ok(()) })
    }

    fn head<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<ObjectInfo>, StepError>> {
        self.world.effect(|| format!("R2 {} head {key}", self.binding));
        let info = self.bucket.borrow().get(key).map(|o| o.info(key, true));
        Box::pin(async move { Ok(info) })
    }

    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>> {
        self.world.effect(|| format!("R2 {} delete {key}", self.binding));
        self.bucket.borrow_mut().remove(key);
        Box::pin(async move { Ok(()) })
    }

    fn list<'a>(&'a self, options: &'a ListOptions) -> LocalBoxFuture<'a, Result<ObjectList, StepError>> {
        self.world.effect(|| format!("R2 {} list {:?}", self.binding, options.prefix.as_deref().unwrap_or_default()));
        let bucket = self.bucket.borrow();
        let result = page(&format!("R2 {}", self.binding), bucket.iter(), options).map(|(objects, cursor)| ObjectList {
            objects: objects.into_iter().map(|(key, object)| object.info(key, false)).collect(),
            truncated: cursor.is_some(),
            cursor,
        });
        Box::pin(async move { result })
    }
}

/// A queue binding: it keeps what was sent.
struct TestQueue {
    messages: Messages,
    binding: String,
    world: Rc<World>,
}

impl TestQueue {
    /// Records `bodies` (JSON text, from `Queue`), all or none.
    fn record(&self, bodies: Vec<String>, batch: bool) -> Result<(), StepError> {
        let bodies = bodies
            .iter()
            .map(|b| {
                serde_json::from_str::<Value>(b)
                    .map_err(|e| StepError::failed(format!("queue {}: a message is not JSON: {e}", self.binding)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (at, step) = (World::time(self.world.now_ms()), self.world.current.borrow().clone());
        let sent = bodies.into_iter().map(|body| SentMessage { body, at, step: step.clone(), batch });
        self.messages.borrow_mut().extend(sent);
        Ok(())
    }
}

impl QueueBackend for TestQueue {
    fn send(&self, body_json: String) -> LocalBoxFuture<'_, Result<(), StepError>> {
        self.world.effect(|| format!("queue {} send", self.binding));
        let result = self.record(vec![body_json], false);
        Box::pin(async move { result })
    }

    fn send_batch(&self, bodies_json: Vec<String>) -> LocalBoxFuture<'_, Result<(), StepError>> {
        self.world.effect(|| format!("queue {} send_batch of {} messages", self.binding, bodies_json.len()));
        let result = self.record(bodies_json, true);
        Box::pin(async move { result })
    }
}

/// A service binding or a Durable Object's stub: its requests go to its handler.
struct TestFetcher {
    via: Via,
    world: Rc<World>,
}

impl FetcherBackend for TestFetcher {
    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>> {
        self.world.fetch_future(request, self.via.clone())
    }
}

/// A Durable Object namespace binding.
struct TestDurableObjects {
    binding: String,
    world: Rc<World>,
}

impl DurableObjectBackend for TestDurableObjects {
    fn get_by_name(&self, name: &str) -> Result<Rc<dyn FetcherBackend>, StepError> {
        let via = Via::DurableObject { binding: self.binding.clone(), name: name.to_string() };
        Ok(Rc::new(TestFetcher { via, world: Rc::clone(&self.world) }))
    }
}
