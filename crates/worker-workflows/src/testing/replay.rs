//! The test engine's step engine, with the Workflows engine's replay semantics.
//!
//! An instance is a history of steps keyed as the engine keys them (kind, name, call
//! count). Each *run* executes the workflow's `run` from the top: completed steps
//! answer from the history; a step that must wait (a sleep, a retry delay, an event, a
//! hanging attempt) leaves its future pending. When nothing can progress the run is
//! dropped, the virtual clock moves to the next wake, and `run` executes again, as the
//! engine does after hibernation. A suspension is never an error the workflow could
//! catch: its future simply never completes in that run.
//!
//! Every run after the first is checked for determinism against the run before it (see
//! [`Invocation::check_replay`]).

use super::history::{
    Attempt, AttemptOutcome, ErrorInfo, ResolvedConfig, RollbackOutcome, RollbackRecord, Status, StepKind, StepOutcome, StepRecord, TestRun,
};
use super::world::{AttemptRef, Injected, TestEnv, World};
use crate::bridge::engine::{EventRecord, LocalBoxFuture, RollbackCall, RollbackInput, StepCall, StepContext, StepEngine, StreamCall};
use crate::bridge::{output_text, Env, Step, Workflow, WorkflowEvent};
use crate::core::duration;
use crate::core::rollback::InstanceFailure;
use crate::core::step_config::{Backoff, DelayFn, EngineStepConfig};
use crate::core::step_error::{StepError, NON_RETRYABLE_NAME};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::{pending, poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake as WakeTask, Waker};
use std::time::Duration;

/// The engine's defaults (engine.md §2, §13): what a step without config runs with.
pub const DEFAULT_RETRY_LIMIT: u32 = 5;
pub const DEFAULT_RETRY_DELAY_MS: u64 = 1_000;
pub const DEFAULT_STEP_TIMEOUT_MS: u64 = 600_000;
/// `waitForEvent` without a timeout (or with 0) waits 24 hours.
pub const DEFAULT_WAIT_TIMEOUT_MS: u64 = 86_400_000;
/// `step.do` calls allowed in one run, cached ones included.
pub const STEP_LIMIT: u32 = 10_000;

/// The config a step runs with: its own parts over the engine's defaults.
pub fn resolve_config(config: Option<&EngineStepConfig>) -> ResolvedConfig {
    let retries = config.and_then(|c| c.retries.as_ref());
    ResolvedConfig {
        limit: retries.map_or(DEFAULT_RETRY_LIMIT, |r| r.limit),
        delay: match retries {
            None => Some(Duration::from_millis(DEFAULT_RETRY_DELAY_MS)),
            Some(r) => r.delay.map(Duration::from_millis),
        },
        backoff: retries.map_or(Backoff::Exponential, |r| r.backoff),
        timeout: Duration::from_millis(config.and_then(|c| c.timeout).unwrap_or(DEFAULT_STEP_TIMEOUT_MS)),
    }
}

/// The wait after attempt `attempt` (1-based) failed, as the engine computes it
/// (`calcRetryDuration`): constant `d`, linear `d·n`, exponential `d·2^(n-1)`, where `d`
/// is the fixed delay (the engine's 1 s if none).
pub fn retry_delay(config: &ResolvedConfig, attempt: u32) -> Duration {
    backed_off(config, config.delay.unwrap_or(Duration::from_millis(DEFAULT_RETRY_DELAY_MS)), attempt)
}

/// The wait after attempt `attempt` failed with `error`: a delay function's value, with
/// the backoff on top as the engine applies it; else [`retry_delay`]. A delay function
/// that panics fails the step for good, as a failed one does on the engine.
fn next_delay(
    config: &ResolvedConfig,
    dynamic: Option<&DelayFn>,
    attempt: u32,
    error: &ErrorInfo,
    step: &str,
) -> Result<Duration, ErrorInfo> {
    let Some(f) = dynamic else { return Ok(retry_delay(config, attempt)) };
    let base = catch_unwind(AssertUnwindSafe(|| f.delay(attempt, &from_engine(error)))).map_err(|panic| ErrorInfo {
        name: "NonRetryableDelayError".into(),
        message: format!("The delay function for step \"{step}\" threw an error: {}", panic_message(&*panic)),
    })?;
    Ok(backed_off(config, base, attempt))
}

fn backed_off(config: &ResolvedConfig, base: Duration, attempt: u32) -> Duration {
    let base = duration::as_millis(base);
    let ms = match config.backoff {
        Backoff::Constant => base,
        Backoff::Linear => base.saturating_mul(u64::from(attempt)),
        Backoff::Exponential => base.saturating_mul(1_u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX)),
    };
    Duration::from_millis(ms)
}

/// A step as the engine keys it. Sleeps are counted per name and duration, as the
/// engine counts them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StepKey {
    kind: StepKind,
    name: String,
    sleep_ms: Option<u64>,
    count: u32,
}

/// What a pending step waits for.
#[derive(Debug, Clone, PartialEq)]
enum Wake {
    None,
    RetryAt(u64),
    /// An attempt is running; at this time it has timed out.
    AttemptDeadline(u64),
    SleepUntil(u64),
    Event {
        event_type: String,
        deadline: u64,
        message: String,
    },
}

impl Wake {
    fn at(&self) -> Option<u64> {
        match self {
            Wake::None => None,
            Wake::RetryAt(t) | Wake::AttemptDeadline(t) | Wake::SleepUntil(t) => Some(*t),
            Wake::Event { deadline, .. } => Some(*deadline),
        }
    }
}

/// A step's value as the engine stores it: JSON text (`run`), or a streamed step's bytes
/// (`run_stream`, no 1 MiB limit).
#[derive(Clone)]
enum Stored {
    Json(String),
    Bytes(Vec<u8>),
}

/// One attempt of a step's closure, whichever kind of value it makes.
type StoredFuture<'a> = LocalBoxFuture<'a, Result<Stored, StepError>>;

struct Entry {
    key: StepKey,
    record: StepRecord,
    /// The value, exactly as the step stored it (sensitive or not).
    stored: Option<Stored>,
    event: Option<EventRecord>,
    wake: Wake,
    /// The run that last suspended this step: it resumes in a later run only.
    suspended_in: u32,
}

impl Entry {
    /// Whether the engine has stored this step's outcome (a replay gets it without running anything).
    fn settled(&self) -> bool {
        !matches!(self.record.outcome, StepOutcome::Pending | StepOutcome::NonRetryable(_))
    }
}

/// The calls of one run, in order, and whether steps were in flight at once.
#[derive(Default)]
struct CallLog {
    calls: Vec<usize>,
    concurrent: bool,
}

/// One instance: status, step history, buffered events and when it wakes next.
pub(crate) struct InstanceCore {
    pub workflow: String,
    pub id: String,
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<ErrorInfo>,
    pub violation: Option<String>,
    entries: Vec<Entry>,
    index: HashMap<StepKey, usize>,
    events: HashMap<String, VecDeque<EventRecord>>,
    pub runs: u32,
    previous: Option<CallLog>,
    /// Waits pending when the last run stopped, in call order: the first of a type gets its event.
    waiters: Vec<usize>,
    pub next_wake: Option<u64>,
    /// The cron tick that started it, kept for the new code of an upgrade.
    pub schedule: Option<crate::core::schedule::ScheduledRun>,
    /// Something (an event) settled a step: run again now.
    pub kicked: bool,
    pub created_at: u64,
    pub finished_at: Option<u64>,
    pub rollbacks: Vec<RollbackRecord>,
}

impl InstanceCore {
    pub fn new(workflow: &str, id: &str, created_at: u64) -> Self {
        InstanceCore {
            workflow: workflow.to_string(),
            id: id.to_string(),
            status: Status::Queued,
            output: None,
            error: None,
            violation: None,
            entries: Vec::new(),
            index: HashMap::new(),
            events: HashMap::new(),
            runs: 0,
            schedule: None,
            previous: None,
            waiters: Vec::new(),
            next_wake: None,
            kicked: false,
            created_at,
            finished_at: None,
            rollbacks: Vec::new(),
        }
    }

    /// A restart from the beginning: the history and buffered events go; the event stays.
    pub fn reset(&mut self) {
        let (workflow, id, created_at) = (std::mem::take(&mut self.workflow), std::mem::take(&mut self.id), self.created_at);
        *self = InstanceCore::new(&workflow, &id, created_at);
    }

    pub fn errored_before_running(&mut self, error: ErrorInfo, at: u64) {
        self.status = Status::Errored;
        self.error = Some(error);
        self.finished_at = Some(at);
    }

    /// Whether it should run now.
    pub fn runnable(&self, now: u64) -> bool {
        match self.status {
            Status::Queued => true,
            Status::Running | Status::Waiting => self.kicked || self.next_wake.is_some_and(|t| t <= now),
            _ => false,
        }
    }

    /// An event sent to this instance: to the first wait for its type, or buffered for a
    /// later one (a FIFO per type). A finished instance ignores it, as the engine does.
    pub fn deliver(&mut self, event: EventRecord) {
        if self.status.is_finished() {
            return;
        }
        let waiter = self.waiters.iter().position(|&i| {
            matches!(&self.entries[i].wake, Wake::Event { event_type, .. } if *event_type == event.event_type)
                && self.entries[i].record.outcome == StepOutcome::Pending
        });
        match waiter {
            Some(position) => {
                let index = self.waiters.remove(position);
                self.settle_event(index, event);
                self.kicked = true;
            }
            None => self.events.entry(event.event_type.clone()).or_default().push_back(event),
        }
    }

    fn settle_event(&mut self, index: usize, event: EventRecord) {
        let entry = &mut self.entries[index];
        entry.record.outcome = StepOutcome::Event {
            event_type: event.event_type.clone(),
            payload: serde_json::from_str(&event.payload_json).unwrap_or(Value::Null),
            sent_at: World::time(event.timestamp_millis.unwrap_or(0)),
        };
        entry.event = Some(event);
        entry.wake = Wake::None;
    }

    fn entry_for(&mut self, key: StepKey, now: u64) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let record = StepRecord {
            kind: key.kind,
            name: key.name.clone(),
            count: key.count,
            started_at: World::time(now),
            config: None,
            attempts: Vec::new(),
            outcome: StepOutcome::Pending,
        };
        self.entries.push(Entry { key: key.clone(), record, stored: None, event: None, wake: Wake::None, suspended_in: 0 });
        self.index.insert(key, self.entries.len() - 1);
        self.entries.len() - 1
    }

    pub fn snapshot(&self) -> TestRun {
        TestRun {
            workflow: self.workflow.clone(),
            id: self.id.clone(),
            status: self.status.clone(),
            output: self.output.clone(),
            error: self.error.clone(),
            violation: self.violation.clone(),
            steps: self.entries.iter().map(|e| e.record.clone()).collect(),
            runs: self.runs,
            rollbacks: self.rollbacks.clone(),
            created_at: World::time(self.created_at),
            finished_at: self.finished_at.map(World::time),
        }
    }

    fn describe(&self, index: usize) -> String {
        self.entries[index].record.to_string()
    }
}

/// Runs one instance of a workflow type: one call is one run of `run` from the top.
pub(crate) trait Driver {
    fn run_once(&mut self, world: &Rc<World>, core: &Rc<RefCell<InstanceCore>>);
}

pub(crate) struct TypedDriver<W: Workflow> {
    pub event: WorkflowEvent<W::Params>,
}

struct WakeFlag(AtomicBool);

impl WakeTask for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls in one run before concluding a workflow keeps waking itself without progress.
const MAX_POLLS_PER_RUN: u32 = 100_000;

impl<W: Workflow> Driver for TypedDriver<W>
where
    W::Params: 'static,
{
    fn run_once(&mut self, world: &Rc<World>, core: &Rc<RefCell<InstanceCore>>) {
        let run = {
            let mut core = core.borrow_mut();
            core.runs += 1;
            core.status = Status::Running;
            core.kicked = false;
            core.runs
        };
        // As in the Worker, each run builds the workflow anew from the env.
        let env = Env::new(Rc::new(TestEnv { world: Rc::clone(world) }));
        let workflow = W::new(env.clone());
        let invocation = Rc::new(Invocation::new(Rc::clone(core), Rc::clone(world), run));
        world.set_running(Some(self.event.instance_id.clone()));
        let (result, in_flight) = {
            let patches = super::patches::context(world, &self.event);
            let step = Step::new(invocation.clone(), W::EVENTS).with_instance(env, &self.event).with_patches(patches);
            let mut future = pin!(workflow.run(&self.event, step));
            let flag = Arc::new(WakeFlag(AtomicBool::new(false)));
            let waker = Waker::from(Arc::clone(&flag));
            let mut context = Context::from_waker(&waker);
            let mut polls = 0;
            let result = loop {
                flag.0.store(false, Ordering::SeqCst);
                if let Poll::Ready(result) = future.as_mut().poll(&mut context) {
                    break Some(result.and_then(|output| output_text(&output)));
                }
                polls += 1;
                if !flag.0.load(Ordering::SeqCst) {
                    break None;
                }
                assert!(
                    polls < MAX_POLLS_PER_RUN,
                    "test engine: instance {} keeps waking itself without finishing",
                    self.event.instance_id
                );
            };
            // What is still in flight when the run stops: the steps it waits on. (Taken
            // before the future drops, and not borrowed past it: dropping it ends them.)
            let in_flight = invocation.in_flight.borrow().clone();
            (result, in_flight)
        };
        let outside_steps = world.outside_steps.borrow().clone();
        world.set_running(None);
        // A failed run: the rollbacks run before the instance is marked errored.
        if let Some(Err(error)) = &result {
            if invocation.violation.borrow().is_none() && outside_steps.is_empty() {
                invocation.roll_back(error);
            }
        }
        invocation.conclude(result, &in_flight, &outside_steps);
    }
}

/// One run of an instance: the step engine its `Step` talks to. `'w`: the workflow and
/// its event, which the rollbacks registered in this run may borrow.
pub(crate) struct Invocation<'w> {
    core: Rc<RefCell<InstanceCore>>,
    world: Rc<World>,
    run: u32,
    counters: RefCell<HashMap<CounterKey, u32>>,
    calls: RefCell<Vec<usize>>,
    in_flight: RefCell<BTreeSet<usize>>,
    concurrent: Cell<bool>,
    /// Entries whose outcome was stored before this run began.
    settled_at_start: Vec<bool>,
    do_calls: Cell<u32>,
    violation: RefCell<Option<String>>,
    /// The rollbacks this run's steps registered, by entry (the first registration of a
    /// step wins, as on the engine).
    rollbacks: RefCell<Vec<(usize, RollbackCall<'w>)>>,
}

/// The engine counts calls per kind and name (and, for sleeps, duration).
type CounterKey = (StepKind, String, Option<u64>);

/// Keeps a step in the run's in-flight set until its future completes or is dropped.
struct InFlight<'a, 'w> {
    invocation: &'a Invocation<'w>,
    index: usize,
}

impl Drop for InFlight<'_, '_> {
    fn drop(&mut self) {
        self.invocation.in_flight.borrow_mut().remove(&self.index);
    }
}

/// The error an attempt failed with, as the engine received it (by JS name and message).
fn error_info(error: &StepError) -> ErrorInfo {
    ErrorInfo { name: error.js_name().to_string(), message: error.to_string() }
}

/// An error crossing JS RPC between the Worker and the engine (either way): a custom
/// `name` is lost and kept in the message, `"<name>: <message>"` (seen on the local
/// runtime: tests/e2e/engine-parity.test.mjs).
pub(crate) fn across_rpc(error: &ErrorInfo) -> ErrorInfo {
    match error.name.as_str() {
        "Error" => error.clone(),
        name => ErrorInfo { name: "Error".into(), message: format!("{name}: {}", error.message) },
    }
}

/// What the workflow gets back for an error the engine threw, as the Worker's bridge reads it.
fn from_engine(error: &ErrorInfo) -> StepError {
    let received = across_rpc(error);
    StepError::from_engine(&received.name, &received.message)
}

/// The instance's error when `run` rejects with `error`, as the engine records it: a
/// non-retryable one by its name (its message without the name; the project sets
/// `workflows_preserve_non_retryable_error_message`), any other as it arrived.
fn instance_error(error: &StepError) -> ErrorInfo {
    let received = across_rpc(&error_info(error));
    if is_non_retryable(&received) {
        let message =
            received.message.strip_prefix(NON_RETRYABLE_NAME).map_or(received.message.as_str(), |m| m.trim_start_matches(':').trim_start());
        return ErrorInfo { name: NON_RETRYABLE_NAME.into(), message: message.to_string() };
    }
    received
}

fn is_non_retryable(error: &ErrorInfo) -> bool {
    error.name == NON_RETRYABLE_NAME || error.message.starts_with(NON_RETRYABLE_NAME)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("step panicked: {text}")
}

const REPLAY_RULE: &str = "code outside steps must make the same step calls, in the same order, on every replay: \
     read the clock, make random values and iterate unordered maps inside a step";

impl<'w> Invocation<'w> {
    fn new(core: Rc<RefCell<InstanceCore>>, world: Rc<World>, run: u32) -> Self {
        let settled_at_start = core.borrow().entries.iter().map(Entry::settled).collect();
        Invocation {
            core,
            world,
            run,
            counters: RefCell::default(),
            calls: RefCell::default(),
            in_flight: RefCell::default(),
            concurrent: Cell::new(false),
            settled_at_start,
            do_calls: Cell::new(0),
            violation: RefCell::default(),
            rollbacks: RefCell::default(),
        }
    }

    fn now(&self) -> u64 {
        self.world.now_ms()
    }

    fn violate(&self, message: String) {
        self.violation.borrow_mut().get_or_insert(message);
    }

    fn replay_label(&self) -> String {
        format!("replay {} (run {} of instance {})", self.run - 1, self.run, self.core.borrow().id)
    }

    /// Registers a step call: counts it, checks it against the previous run when that
    /// run was sequential, and marks it in flight. `None` after a replay rule was broken:
    /// the call then never completes and the run stops.
    fn begin(&self, kind: StepKind, name: &str, sleep_ms: Option<u64>) -> Option<InFlight<'_, 'w>> {
        if self.violation.borrow().is_some() {
            return None;
        }
        let count = {
            let mut counters = self.counters.borrow_mut();
            let n = counters.entry((kind, name.to_string(), sleep_ms)).or_insert(0);
            *n += 1;
            *n
        };
        let key = StepKey { kind, name: name.to_string(), sleep_ms, count };
        let index = self.core.borrow_mut().entry_for(key, self.now());
        // A patch's step (`Step::patched`) is outside the call order: a deploy adds it to
        // the replays of instances in flight (where it answers false and changes nothing
        // else), and removing the patch later drops it from theirs.
        if kind == StepKind::Do && crate::core::patch::patch_id(name).is_some() {
            self.in_flight.borrow_mut().insert(index);
            return Some(InFlight { invocation: self, index });
        }
        if count > 1 && !self.world.allow_duplicate_names.get() {
            let step = self.core.borrow().describe(index);
            self.violate(format!(
                "{step}: the name is used {count} times in one run. The engine keys results by name and call count, so if these calls \
                 ever run in another order they get each other's results: give each its own name (or allow it with \
                 TestEngine::allow_duplicate_step_names)"
            ));
            return None;
        }
        if !self.in_flight.borrow().is_empty() {
            self.concurrent.set(true);
        }
        let position = self.calls.borrow().len();
        let expected = self.core.borrow().previous.as_ref().filter(|p| !p.concurrent).and_then(|p| p.calls.get(position).copied());
        if let Some(expected) = expected.filter(|&e| e != index) {
            let (got, want) = { (self.core.borrow().describe(index), self.core.borrow().describe(expected)) };
            self.violate(format!(
                "non-deterministic workflow: on {} call {} was {got}, where the previous run called {want}; {REPLAY_RULE}",
                self.replay_label(),
                position + 1
            ));
            return None;
        }
        self.calls.borrow_mut().push(index);
        self.in_flight.borrow_mut().insert(index);
        Some(InFlight { invocation: self, index })
    }

    fn with_entry<R>(&self, index: usize, f: impl FnOnce(&mut Entry) -> R) -> R {
        f(&mut self.core.borrow_mut().entries[index])
    }

    /// Leaves the step pending until `wake`, in a later run.
    async fn suspend<T>(&self, index: usize, wake: Wake) -> T {
        self.with_entry(index, |e| {
            e.wake = wake;
            e.suspended_in = self.run;
        });
        pending().await
    }

    /// Whether a wake set in an earlier run has come.
    fn due(&self, index: usize, at: u64) -> bool {
        self.with_entry(index, |e| e.suspended_in < self.run) && self.now() >= at
    }

    /// A `step.do`, of either kind (`streamed`: its value is bytes).
    async fn run_step<'a>(
        &self,
        name: &str,
        step_config: Option<EngineStepConfig>,
        rollback: Option<RollbackCall<'w>>,
        streamed: bool,
        make: &dyn Fn(StepContext) -> StoredFuture<'a>,
    ) -> Result<Stored, StepError> {
        let calls = self.do_calls.get() + 1;
        self.do_calls.set(calls);
        let limit = self.world.step_limit.get();
        if calls > limit {
            return Err(from_engine(&ErrorInfo {
                name: "WorkflowFatalError".into(),
                message: format!("The limit of {limit} steps has been reached. This limit can be changed in your worker configuration."),
            }));
        }
        let Some(flight) = self.begin(StepKind::Do, name, None) else { return pending().await };
        let index = flight.index;
        if let Some(rollback) = rollback {
            let mut rollbacks = self.rollbacks.borrow_mut();
            if rollbacks.iter().all(|(i, _)| *i != index) {
                rollbacks.push((index, rollback));
            }
        }
        // A delay function is the current call's (the engine keeps none across runs).
        let dynamic = step_config.as_ref().and_then(|c| c.retries.as_ref()).and_then(|r| r.delay_fn.clone());
        // The engine stores a step's config at its first call and keeps it.
        let config = self.with_entry(index, |e| *e.record.config.get_or_insert_with(|| resolve_config(step_config.as_ref())));
        let (value, stored_error, wake) = self.with_entry(index, |e| {
            let stored = match &e.record.outcome {
                StepOutcome::Failed(info) => Some(info.clone()),
                _ => None,
            };
            (e.stored.clone(), stored, e.wake.clone())
        });
        if let Some(value) = value {
            return Ok(value);
        }
        if let Some(error) = stored_error {
            return Err(from_engine(&error));
        }
        match wake {
            Wake::RetryAt(at) if !self.due(index, at) => return self.suspend(index, Wake::RetryAt(at)).await,
            Wake::AttemptDeadline(at) if !self.due(index, at) => return self.suspend(index, Wake::AttemptDeadline(at)).await,
            Wake::AttemptDeadline(at) => {
                // The attempt ran out of time in an earlier run.
                let timed_out = ErrorInfo {
                    name: "WorkflowTimeoutError".into(),
                    message: format!("Execution timed out after {}ms", config.timeout.as_millis()),
                };
                return self.attempt_failed(index, &config, dynamic.as_ref(), timed_out, at).await;
            }
            _ => {}
        }

        let (number, count) = self.with_entry(index, |e| {
            let number = e.record.attempts.len() as u32 + 1;
            e.record.attempts.push(Attempt {
                number,
                started_at: World::time(self.now()),
                outcome: AttemptOutcome::Running,
                retry_delay: None,
            });
            (number, e.key.count)
        });
        let started = self.now();
        let deadline = started.saturating_add(duration::as_millis(config.timeout));
        let context = StepContext::resolved(name, count, number, step_config.as_ref());
        let outcome = match self.world.injected(name, count, number) {
            Some(Injected::Fail(error)) => Err(across_rpc(&error_info(&error))),
            // A streamed step replaced with a value gets its JSON text's bytes.
            Some(Injected::Result(text)) if streamed => Ok(Stored::Bytes(text.into_bytes())),
            Some(Injected::Result(text)) => Ok(Stored::Json(text)),
            Some(Injected::TimeOut) => return self.suspend(index, Wake::AttemptDeadline(deadline)).await,
            Some(Injected::FailAfterRunning(error)) => {
                self.attempt(index, context, deadline, make).await.and(Err(across_rpc(&error_info(&error))))
            }
            None => self.attempt(index, context, deadline, make).await,
        };
        // What the engine shows of the value (engine.md §4, §5): a sensitive one redacted.
        let sensitive = step_config.as_ref().is_some_and(|c| c.sensitive);
        match outcome {
            Ok(value) => {
                self.with_entry(index, |e| {
                    if let Some(last) = e.record.attempts.last_mut() {
                        last.outcome = AttemptOutcome::Succeeded;
                    }
                    e.record.outcome = match &value {
                        _ if sensitive => StepOutcome::Redacted,
                        Stored::Json(text) => StepOutcome::Value(serde_json::from_str(text).unwrap_or(Value::Null)),
                        Stored::Bytes(bytes) => StepOutcome::Stream { len: bytes.len() },
                    };
                    e.stored = Some(value.clone());
                    e.wake = Wake::None;
                });
                Ok(value)
            }
            Err(error) => self.attempt_failed(index, &config, dynamic.as_ref(), error, self.now()).await,
        }
    }

    /// Polls one attempt of the closure, catching a panic as a failure of that attempt
    /// (the Worker is built with panic=unwind). An attempt that stays pending when the
    /// run can go no further hangs: it times out at `deadline`.
    async fn attempt<'a>(
        &self,
        index: usize,
        context: StepContext,
        deadline: u64,
        make: &dyn Fn(StepContext) -> StoredFuture<'a>,
    ) -> Result<Stored, ErrorInfo> {
        let current = AttemptRef {
            instance: self.core.borrow().id.clone(),
            step: context.name.clone(),
            count: context.count,
            attempt: context.attempt,
            rollback: false,
        };
        self.world.set_current(Some(current.clone()));
        let made = catch_unwind(AssertUnwindSafe(|| make(context)));
        self.world.set_current(None);
        let mut future = match made {
            Ok(future) => future,
            Err(panic) => return Err(across_rpc(&ErrorInfo { name: "PanicError".into(), message: panic_message(&*panic) })),
        };
        poll_fn(|cx| {
            self.world.set_current(Some(current.clone()));
            let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
            self.world.set_current(None);
            match polled {
                Ok(Poll::Pending) => {
                    self.with_entry(index, |e| {
                        if e.wake != Wake::AttemptDeadline(deadline) {
                            e.wake = Wake::AttemptDeadline(deadline);
                            e.suspended_in = self.run;
                        }
                    });
                    Poll::Pending
                }
                Ok(Poll::Ready(result)) => Poll::Ready(result.map_err(|e| across_rpc(&error_info(&e)))),
                Err(panic) => Poll::Ready(Err(across_rpc(&ErrorInfo { name: "PanicError".into(), message: panic_message(&*panic) }))),
            }
        })
        .await
    }

    /// After a failed attempt: a non-retryable error fails the step now (not stored: a
    /// replay runs it again); while retries remain the step waits out the delay and
    /// retries in a later run; then it fails for good, stored.
    async fn attempt_failed(
        &self,
        index: usize,
        config: &ResolvedConfig,
        dynamic: Option<&DelayFn>,
        error: ErrorInfo,
        failed_at: u64,
    ) -> Result<Stored, StepError> {
        let (attempts, target) = self.with_entry(index, |e| (e.record.attempts.len() as u32, format!("{}-{}", e.key.name, e.key.count)));
        let retry = !is_non_retryable(&error) && attempts <= config.limit;
        // The delay function runs only when a retry follows, as on the engine.
        let delay = if retry { Some(next_delay(config, dynamic, attempts, &error, &target)) } else { None };
        let next = self.with_entry(index, |e| {
            let last = e.record.attempts.last_mut().expect("a failed attempt was recorded");
            last.outcome = AttemptOutcome::Failed(error.clone());
            e.wake = Wake::None;
            match delay {
                None if is_non_retryable(&error) => {
                    // Logged by its name, with its message as thrown (the preserve flag).
                    let preserved = instance_error(&from_engine(&error));
                    last.outcome = AttemptOutcome::Failed(preserved.clone());
                    e.record.outcome = StepOutcome::NonRetryable(preserved);
                    Err(error.clone())
                }
                None => {
                    e.record.outcome = StepOutcome::Failed(error.clone());
                    Err(error.clone())
                }
                Some(Err(failed_delay)) => {
                    e.record.outcome = StepOutcome::NonRetryable(failed_delay.clone());
                    Err(failed_delay)
                }
                Some(Ok(delay)) => {
                    last.retry_delay = Some(delay);
                    Ok(failed_at.saturating_add(duration::as_millis(delay)))
                }
            }
        });
        match next {
            Ok(at) => self.suspend(index, Wake::RetryAt(at)).await,
            Err(error) => Err(from_engine(&error)),
        }
    }

    /// The instance failed with `error`: runs the rollbacks of the steps that started, as
    /// the engine does before it marks the instance errored: in reverse order of the
    /// steps' starts, each with its own attempts and retries (their delays are recorded,
    /// not waited), stopping at the first that fails for good. A rollback future that
    /// stays pending hangs: that attempt times out.
    fn roll_back(&self, error: &StepError) {
        let info = error_info(error);
        let failure = InstanceFailure::from_engine(&info.name, &info.message);
        let mut registered = std::mem::take(&mut *self.rollbacks.borrow_mut());
        registered.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
        let instance = self.core.borrow().id.clone();
        let mut records = Vec::new();
        for (index, rollback) in registered {
            let (name, count, output_json, step_attempts, step_config, started) = self.with_entry(index, |e| {
                let config = e.record.config.unwrap_or_else(|| resolve_config(None));
                let output = match &e.stored {
                    Some(Stored::Json(text)) => Some(text.clone()),
                    // Streamed steps have no rollback (`Step::run_stream`).
                    Some(Stored::Bytes(_)) | None => None,
                };
                (e.key.name.clone(), e.key.count, output, e.record.attempts.len() as u32, config, !e.record.attempts.is_empty())
            });
            if !started {
                continue;
            }
            let config = resolve_config(rollback.config.as_ref());
            let dynamic = rollback.config.as_ref().and_then(|c| c.retries.as_ref()).and_then(|r| r.delay_fn.clone());
            let mut record = RollbackRecord { step: name.clone(), count, attempts: Vec::new(), outcome: RollbackOutcome::Succeeded };
            for number in 1..=config.limit.saturating_add(1) {
                let mut step = StepContext::resolved(&name, count, step_attempts.max(1), None);
                step.config = resolved_step_config(&step_config);
                let input = RollbackInput { attempt: number, step, error: failure.clone(), output_json: output_json.clone() };
                let current = AttemptRef { instance: instance.clone(), step: name.clone(), count, attempt: number, rollback: true };
                record.attempts.push(Attempt {
                    number,
                    started_at: World::time(self.now()),
                    outcome: AttemptOutcome::Running,
                    retry_delay: None,
                });
                let result = self.poll_rollback(&rollback, input, current, config.timeout);
                let last = record.attempts.last_mut().expect("just pushed");
                match result {
                    Ok(()) => {
                        last.outcome = AttemptOutcome::Succeeded;
                        break;
                    }
                    Err(error) => {
                        last.outcome = AttemptOutcome::Failed(error.clone());
                        let delay = (!is_non_retryable(&error) && number <= config.limit)
                            .then(|| next_delay(&config, dynamic.as_ref(), number, &error, &format!("{name}-{count}")));
                        match delay {
                            Some(Ok(delay)) => last.retry_delay = Some(delay),
                            Some(Err(failed)) => {
                                record.outcome = RollbackOutcome::Failed(failed);
                                break;
                            }
                            None => {
                                record.outcome = RollbackOutcome::Failed(error);
                                break;
                            }
                        }
                    }
                }
            }
            let failed = matches!(record.outcome, RollbackOutcome::Failed(_));
            records.push(record);
            if failed {
                break;
            }
        }
        self.core.borrow_mut().rollbacks.extend(records);
    }

    /// Runs one rollback attempt to its end: a panic fails it, and so does staying
    /// pending (it hangs until its timeout).
    fn poll_rollback(
        &self,
        rollback: &RollbackCall<'w>,
        input: RollbackInput,
        current: AttemptRef,
        timeout: Duration,
    ) -> Result<(), ErrorInfo> {
        let panicked = |panic: Box<dyn std::any::Any + Send>| ErrorInfo {
            name: "PanicError".into(),
            message: panic_message(&*panic).replacen("step panicked", "rollback panicked", 1),
        };
        self.world.set_current(Some(current.clone()));
        let made = catch_unwind(AssertUnwindSafe(|| (rollback.run)(input)));
        let mut future = match made {
            Ok(future) => future,
            Err(panic) => {
                self.world.set_current(None);
                return Err(panicked(panic));
            }
        };
        let flag = Arc::new(WakeFlag(AtomicBool::new(false)));
        let waker = Waker::from(Arc::clone(&flag));
        let mut context = Context::from_waker(&waker);
        let result = loop {
            flag.0.store(false, Ordering::SeqCst);
            match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut context))) {
                Ok(Poll::Ready(result)) => break result.map_err(|e| error_info(&e)),
                Err(panic) => break Err(panicked(panic)),
                Ok(Poll::Pending) if flag.0.load(Ordering::SeqCst) => continue,
                Ok(Poll::Pending) => {
                    break Err(ErrorInfo {
                        name: "WorkflowTimeoutError".into(),
                        message: format!("Execution timed out after {}ms", timeout.as_millis()),
                    })
                }
            }
        };
        self.world.set_current(None);
        result
    }

    async fn sleep_step(
        &self,
        kind: StepKind,
        name: &str,
        target: impl FnOnce(u64) -> Result<u64, ErrorInfo>,
        sleep_ms: Option<u64>,
    ) -> Result<(), StepError> {
        let Some(flight) = self.begin(kind, name, sleep_ms) else { return pending().await };
        let index = flight.index;
        let (outcome, wake) = self.with_entry(index, |e| (e.record.outcome.clone(), e.wake.clone()));
        match (outcome, wake) {
            (StepOutcome::Slept, _) => Ok(()),
            (StepOutcome::Failed(error), _) => Err(from_engine(&error)),
            (_, Wake::SleepUntil(at)) if self.due(index, at) => {
                self.with_entry(index, |e| {
                    e.record.outcome = StepOutcome::Slept;
                    e.wake = Wake::None;
                });
                Ok(())
            }
            (_, Wake::SleepUntil(at)) => self.suspend(index, Wake::SleepUntil(at)).await,
            _ => match target(self.now()) {
                Ok(at) => self.suspend(index, Wake::SleepUntil(at)).await,
                Err(error) => {
                    self.with_entry(index, |e| e.record.outcome = StepOutcome::Failed(error.clone()));
                    Err(from_engine(&error))
                }
            },
        }
    }

    async fn wait_step(&self, name: &str, event_type: &str, timeout: Duration) -> Result<EventRecord, StepError> {
        let Some(flight) = self.begin(StepKind::WaitForEvent, name, None) else { return pending().await };
        let index = flight.index;
        let (event, outcome, wake) = self.with_entry(index, |e| (e.event.clone(), e.record.outcome.clone(), e.wake.clone()));
        if let Some(event) = event {
            return Ok(event);
        }
        if let StepOutcome::TimedOut(message) = outcome {
            return Err(StepError::Timeout(message));
        }
        let (deadline, message) = match wake {
            Wake::Event { deadline, message, .. } => (deadline, message),
            _ => {
                // A timeout of 0 means the default, as in the engine (`timeout || "24 hours"`).
                let ms = match duration::as_millis(timeout) {
                    0 => DEFAULT_WAIT_TIMEOUT_MS,
                    ms => ms,
                };
                (self.now().saturating_add(ms), format!("Execution timed out after {ms}ms"))
            }
        };
        let buffered = self.core.borrow_mut().events.get_mut(event_type).and_then(VecDeque::pop_front);
        if let Some(event) = buffered {
            self.core.borrow_mut().settle_event(index, event.clone());
            return Ok(event);
        }
        if self.due(index, deadline) && matches!(self.with_entry(index, |e| e.wake.clone()), Wake::Event { .. }) {
            self.with_entry(index, |e| {
                e.record.outcome = StepOutcome::TimedOut(message.clone());
                e.wake = Wake::None;
            });
            return Err(StepError::Timeout(message));
        }
        let wake = Wake::Event { event_type: event_type.to_string(), deadline, message };
        if self.with_entry(index, |e| e.wake == wake) {
            pending().await
        } else {
            self.suspend(index, wake).await
        }
    }

    /// Checks a replay against the run before it. After a sequential run (one step in
    /// flight at a time) `begin` already held every call to the previous run's sequence;
    /// here the replay must also have gone at least as far. After a run with steps in
    /// flight at once, cached results can arrive in another interleaving, so the checks
    /// are the ones that hold for any interleaving: the calls both runs made keep their
    /// order, and a step with a stored outcome is not skipped while steps the previous
    /// run called after it are called.
    fn check_replay(&self) -> Option<String> {
        let core = self.core.borrow();
        let previous = core.previous.as_ref()?;
        let calls = self.calls.borrow();
        if !previous.concurrent {
            if let Some(&missing) = previous.calls.get(calls.len()) {
                return Some(format!(
                    "non-deterministic workflow: {} stopped after {} calls, where the previous run went on to call {}; {REPLAY_RULE}",
                    self.replay_label(),
                    calls.len(),
                    core.describe(missing)
                ));
            }
            return None;
        }
        let now: BTreeSet<usize> = calls.iter().copied().collect();
        let before: BTreeSet<usize> = previous.calls.iter().copied().collect();
        let common_now: Vec<usize> = calls.iter().copied().filter(|i| before.contains(i)).collect();
        let common_before: Vec<usize> = previous.calls.iter().copied().filter(|i| now.contains(i)).collect();
        if let Some((got, want)) = common_now.iter().zip(&common_before).find(|(a, b)| a != b) {
            return Some(format!(
                "non-deterministic workflow: on {} {} was called before {}, where the previous run called them the other way round; {REPLAY_RULE}",
                self.replay_label(),
                core.describe(*got),
                core.describe(*want)
            ));
        }
        for (position, &skipped) in previous.calls.iter().enumerate() {
            let stored = self.settled_at_start.get(skipped).copied().unwrap_or(false);
            if stored && !now.contains(&skipped) && previous.calls[position + 1..].iter().any(|later| now.contains(later)) {
                let instead: Vec<String> = calls.iter().filter(|i| !before.contains(i)).map(|&i| core.describe(i)).collect();
                let instead = if instead.is_empty() { String::new() } else { format!(" (it called {} instead)", instead.join(", ")) };
                return Some(format!(
                    "non-deterministic workflow: on {} the workflow did not call {}, which the previous run called and whose result is stored{instead}; {REPLAY_RULE}",
                    self.replay_label(),
                    core.describe(skipped)
                ));
            }
        }
        None
    }

    /// Ends the run: the instance completes, errors, waits for its next wake, or is
    /// stopped for breaking a replay rule.
    fn conclude(&self, result: Option<Result<String, StepError>>, in_flight: &BTreeSet<usize>, outside_steps: &[String]) {
        let now = self.now();
        let mut violation = self.violation.borrow().clone().or_else(|| self.check_replay());
        if violation.is_none() && !outside_steps.is_empty() {
            violation = Some(format!(
                "side effects outside any step run again on every replay: {} (run {}); move them into a step",
                outside_steps.join(", "),
                self.run
            ));
        }
        if violation.is_none() && result.is_none() && in_flight.is_empty() {
            violation = Some(
                "the workflow's run is pending but no step is: it awaits something only the Worker could complete (the test engine \
                 drives steps, sleeps and events only)"
                    .to_string(),
            );
        }
        let mut core = self.core.borrow_mut();
        core.previous = Some(CallLog { calls: self.calls.borrow().clone(), concurrent: self.concurrent.get() });
        core.waiters.clear();
        core.next_wake = None;
        if let Some(message) = violation {
            core.status = Status::NonDeterministic;
            core.violation = Some(message);
            core.finished_at = Some(now);
            return;
        }
        match result {
            Some(Ok(text)) => {
                core.status = Status::Complete;
                core.output = Some(serde_json::from_str(&text).unwrap_or(Value::Null));
                core.finished_at = Some(now);
            }
            Some(Err(error)) => {
                core.status = Status::Errored;
                core.error = Some(instance_error(&error));
                core.finished_at = Some(now);
            }
            None => {
                let calls = self.calls.borrow();
                let pending: Vec<usize> = calls.iter().copied().filter(|i| in_flight.contains(i)).collect();
                core.next_wake = pending.iter().filter_map(|&i| core.entries[i].wake.at()).min();
                core.waiters = pending.iter().copied().filter(|&i| matches!(core.entries[i].wake, Wake::Event { .. })).collect();
                core.status = if core.waiters.is_empty() { Status::Running } else { Status::Waiting };
            }
        }
    }
}

/// A step's resolved config as its context reports it.
fn resolved_step_config(config: &ResolvedConfig) -> crate::core::step_context::ResolvedStepConfig {
    crate::core::step_context::ResolvedStepConfig {
        timeout: Some(config.timeout),
        retries: crate::core::step_context::ResolvedRetries { limit: config.limit, delay: config.delay, backoff: config.backoff },
        sensitive: false,
    }
}

impl<'w> StepEngine<'w> for Invocation<'w> {
    fn run<'a>(&'a self, call: StepCall<'a, 'w>) -> LocalBoxFuture<'a, Result<String, StepError>> {
        let StepCall { name, config, attempt, rollback } = call;
        Box::pin(async move {
            let json = |context| -> StoredFuture<'a> {
                let future = attempt(context);
                Box::pin(async move { future.await.map(Stored::Json) })
            };
            match self.run_step(name, config, rollback, false, &json).await? {
                Stored::Json(text) => Ok(text),
                Stored::Bytes(_) => {
                    Err(StepError::Serialization(format!("step {name:?} stored a stream (run_stream) and is read as JSON")))
                }
            }
        })
    }

    fn run_stream<'a>(&'a self, call: StreamCall<'a>) -> LocalBoxFuture<'a, Result<Vec<u8>, StepError>> {
        let StreamCall { name, config, attempt } = call;
        Box::pin(async move {
            let bytes = |context| -> StoredFuture<'a> {
                let future = attempt(context);
                Box::pin(async move { future.await.map(Stored::Bytes) })
            };
            match self.run_step(name, config, None, true, &bytes).await? {
                Stored::Bytes(bytes) => Ok(bytes),
                Stored::Json(_) => Err(StepError::Serialization(format!("step {name:?} stored JSON (run) and is read as a stream"))),
            }
        })
    }

    fn sleep<'a>(&'a self, name: &'a str, duration: Duration) -> LocalBoxFuture<'a, Result<(), StepError>> {
        let ms = duration::as_millis(duration);
        Box::pin(self.sleep_step(StepKind::Sleep, name, move |now| Ok(now.saturating_add(ms)), Some(ms)))
    }

    fn sleep_until<'a>(&'a self, name: &'a str, epoch_millis: u64) -> LocalBoxFuture<'a, Result<(), StepError>> {
        let target = move |now: u64| {
            if epoch_millis < now {
                Err(ErrorInfo { name: "Error".into(), message: "You can't sleep until a time in the past, time-traveler".into() })
            } else {
                Ok(epoch_millis)
            }
        };
        Box::pin(self.sleep_step(StepKind::SleepUntil, name, target, None))
    }

    fn wait_for_event<'a>(
        &'a self,
        name: &'a str,
        event_type: &'a str,
        timeout: Duration,
    ) -> LocalBoxFuture<'a, Result<EventRecord, StepError>> {
        Box::pin(self.wait_step(name, event_type, timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::step_config::{Retries, StepConfig};

    #[test]
    fn defaults_are_the_local_engines() {
        let c = resolve_config(None);
        assert_eq!(
            (c.limit, c.delay, c.backoff, c.timeout),
            (5, Some(Duration::from_secs(1)), Backoff::Exponential, Duration::from_secs(600))
        );
        let partial = StepConfig::new().timeout("30 seconds").to_engine().unwrap();
        let c = resolve_config(Some(&partial));
        assert_eq!((c.limit, c.delay, c.timeout), (5, Some(Duration::from_secs(1)), Duration::from_secs(30)));
    }

    #[test]
    fn retry_delays_follow_the_engines_formulas() {
        let config = |backoff| {
            resolve_config(Some(&StepConfig::new().retries(Retries::new(5).delay("2 seconds").backoff(backoff)).to_engine().unwrap()))
        };
        let delays = |backoff| (1..=4).map(|n| retry_delay(&config(backoff), n).as_secs()).collect::<Vec<_>>();
        assert_eq!(delays(Backoff::Constant), [2, 2, 2, 2]);
        assert_eq!(delays(Backoff::Linear), [2, 4, 6, 8]);
        assert_eq!(delays(Backoff::Exponential), [2, 4, 8, 16]);
        assert_eq!(retry_delay(&config(Backoff::Exponential), 200), Duration::from_millis(u64::MAX), "saturates");
    }
}
