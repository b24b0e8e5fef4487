//! The test engine: the same workflow code, run natively under `cargo test`, on a
//! simulated Workflows engine with in-memory fakes of everything a workflow reaches.
//! Host only (the Worker never links it).
//!
//! It behaves like the engine, not like a mock (see `replay`):
//! - step results are stored by name and call count, and `run` executes again from the
//!   top after every sleep, retry delay and event wait, getting stored results back;
//! - retries follow each step's config with the engine's defaults and formulas, on a
//!   virtual clock: nothing really waits, and each attempt's delay is in the history;
//! - an attempt's error reaches the engine and comes back as it does through the
//!   Worker's bridge: non-retryable errors (and oversized results) fail the step at
//!   once, panics fail one attempt, timeouts are `StepError::Timeout`;
//! - `wait_for_event` gets events sent before the wait (buffered per type) or during
//!   it, or times out with the engine's message;
//! - when an instance fails, the rollbacks of the steps that started run as the engine
//!   runs them: newest first, each retried per its config, stopping at the first that
//!   fails for good ([`TestRun::rollbacks`]);
//! - every replay is checked: a workflow that names or orders its steps differently on
//!   replay, reuses a step name in one run, or has side effects outside steps is stopped
//!   with a message naming the step ([`Status::NonDeterministic`]); UUIDs and the clock
//!   outside steps differ from run to run as real ones do, from one seed
//!   ([`TestEngine::seed`]) the message prints;
//! - changing a workflow: [`TestEngine::upgrade`] deploys new code to an instance in
//!   flight (its replay is checked against the old code's run; a patch's step,
//!   `Step::patched`, is let in), and [`TestEngine::replay`] replays a history recorded
//!   from a real instance ([`RecordedHistory`], from `GET …/history?format=replay`)
//!   against today's code, naming the first step where the code diverges.
//!
//! The world is in memory: vars and secrets ([`TestEngine::secret`], whose values never
//! show in what the engine records), an HTTP router ([`TestEngine::route`]) that records
//! every request, service bindings ([`TestEngine::service`]) and Durable Objects
//! ([`TestEngine::durable_object`]) answered by handlers and recorded the same way, KV
//! (keys expire on the virtual clock), R2, queues that keep what was sent
//! ([`TestEngine::queue_messages`]), D1 on SQLite with `migrations/*.sql` applied, and
//! instances of other workflows (recorded, and run here too when registered with
//! [`TestEngine::workflow`]). Every call of these from outside a step is reported as a
//! replay hazard.
//!
//! In short: `TestEngine::new().var(..).route(prefix, handler).d1("DB")`, then
//! `engine.run::<OrderWorkflow>(id, params)` gives a [`TestRun`] (status, output, every
//! step with its attempts), and `engine.requests()` what was sent.
//! README's "Testing a workflow" has a complete example, compiled by the test suite.

/// Registers workflow types that exist only in tests, as build.rs registers a Worker's:
/// each gets [`Registered`](crate::Registered) with its type's name as workflow name,
/// class and binding (`registered_for_tests!(Probe, OtherProbe);`).
#[macro_export]
macro_rules! registered_for_tests {
    ($($workflow:ident),+ $(,)?) => {
        $(impl $crate::Registered for $workflow {
            const SETTINGS: $crate::WorkflowSettings =
                $crate::WorkflowSettings::new(stringify!($workflow), stringify!($workflow)).binding(stringify!($workflow));
        })+
    };
}

mod children;
mod d1;
mod history;
mod patches;
mod recorded;
mod replay;
mod seed;
mod world;

#[cfg(test)]
mod children_tests;
#[cfg(test)]
mod env_reach_tests;
#[cfg(test)]
mod evolution_tests;
#[cfg(test)]
mod redirect_tests;
#[cfg(test)]
mod step_features_tests;
#[cfg(test)]
mod tests;

pub use history::{
    Attempt, AttemptOutcome, ErrorInfo, ResolvedConfig, RollbackOutcome, RollbackRecord, Status, StepKind, StepOutcome, StepRecord, TestRun,
};
pub use recorded::{RecordedHistory, ReplayEnd, ReplayError, ReplayReport};
pub use world::{AttemptRef, CreatedInstance, Request, Response, SentMessage, StoredObject, StoredValue, Via};

use crate::bridge::engine::EventRecord;
use crate::bridge::{Workflow, WorkflowEvent};
use crate::core::duration::{self, IntoDuration};
use crate::core::schedule::ScheduledRun;
use crate::core::step_error::StepError;
use crate::core::validate;
use crate::registry::Registered;
use replay::{Driver, InstanceCore, TypedDriver};
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};
use world::{OverrideKind, StepOverride, World};

/// A step of a workflow, for overrides: a name (its first call), or a name and call count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRef {
    /// The step's name.
    pub name: String,
    /// Which call of that name (1 for the first).
    pub count: u32,
}

impl From<&str> for StepRef {
    fn from(name: &str) -> Self {
        StepRef { name: name.to_string(), count: 1 }
    }
}

impl From<(&str, u32)> for StepRef {
    fn from((name, count): (&str, u32)) -> Self {
        StepRef { name: name.to_string(), count }
    }
}

/// An instance stopped for breaking a replay rule: the message names the step.
#[derive(Clone)]
pub struct Nondeterminism {
    /// What rule was broken, naming the step.
    pub message: String,
    /// The instance as it stood when it was stopped.
    pub run: Box<TestRun>,
    /// The engine's seed ([`TestEngine::seed`]): the UUIDs and clock readings that led
    /// here come from it, so the same seed reproduces the failure.
    pub seed: u64,
}

impl fmt::Display for Nondeterminism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instance {}: {} ({})", self.run.id, self.message, seed_note(self.seed))
    }
}

/// How a message names the seed that reproduces it.
pub(crate) fn seed_note(seed: u64) -> String {
    format!("test engine seed {seed}: TestEngine::new().seed({seed}) or {}={seed} reproduces it", seed::SEED_VAR)
}

impl fmt::Debug for Nondeterminism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Makes the driver of a new instance of one workflow: its id, params and creation time.
type Factory = Rc<dyn Fn(&str, &Value, u64) -> Result<Box<dyn Driver>, String>>;

/// An instance: its workflow, its state, and its driver (`None` for a workflow that only
/// exists here, or while it runs).
struct Slot {
    workflow: String,
    core: Rc<RefCell<InstanceCore>>,
    driver: Option<Box<dyn Driver>>,
}

/// An event the test sends later (`send_event_after`).
struct ScheduledEvent {
    at: u64,
    instance: String,
    event: EventRecord,
}

/// Runs before concluding an instance never finishes (a loop of sleeps, say; each run
/// replays the whole history, so an endless loop would otherwise take ever longer).
const MAX_RUNS_PER_DRIVE: u32 = 10_000;

/// A simulated Workflows engine with in-memory bindings. Set it up with the builder
/// methods, run instances with [`run`](Self::run) (or [`start`](Self::start),
/// [`send_event`](Self::send_event), [`advance`](Self::advance), [`finish`](Self::finish)),
/// then read the instance ([`TestRun`]), the requests and the bindings.
pub struct TestEngine {
    world: Rc<World>,
    slots: RefCell<Vec<Slot>>,
    factories: RefCell<BTreeMap<String, Factory>>,
    scheduled: RefCell<Vec<ScheduledEvent>>,
}

impl Default for TestEngine {
    fn default() -> Self {
        Self::new()
    }
}

/// The workflow name of `W`, as registered (`OrderWorkflow` is `order-processing`).
pub fn workflow_name<W: Registered>() -> String {
    W::SETTINGS.name.to_string()
}

/// The Worker's migrations folder: `migrations/` of the crate whose tests run (cargo sets
/// `CARGO_MANIFEST_DIR` for them), as wrangler's default `migrations_dir`.
fn default_migrations_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| std::path::PathBuf::from("."), std::path::PathBuf::from).join("migrations")
}

fn driver_for<W: Workflow>(workflow: &str, id: &str, payload: W::Params, created_at: u64, schedule: Option<ScheduledRun>) -> Box<dyn Driver>
where
    W::Params: 'static,
{
    let event = WorkflowEvent {
        payload,
        timestamp: World::time(created_at),
        instance_id: id.to_string(),
        workflow_name: workflow.to_string(),
        schedule,
    };
    Box::new(TypedDriver::<W> { event })
}

impl TestEngine {
    /// An engine with no vars, routes or bindings, its clock at 2026-01-01T00:00:00Z.
    pub fn new() -> Self {
        TestEngine { world: Rc::new(World::new()), slots: RefCell::default(), factories: RefCell::default(), scheduled: RefCell::default() }
    }

    // ----- setup

    /// Sets a var.
    pub fn var(self, name: &str, value: &str) -> Self {
        self.world.set_var(name, value);
        self
    }

    /// Sets a secret, for `Env::secret` (and `Env::var`, as on the platform). Its value
    /// is replaced by `[secret NAME]` in everything the engine writes: the side effects
    /// it reports and its own error messages. `Env::secret` reads only secrets set here:
    /// a value set with [`var`](Self::var) is not one.
    pub fn secret(self, name: &str, value: &str) -> Self {
        self.world.set_secret(name, value);
        self
    }

    /// Answers requests whose URL starts with `prefix` (the longest matching prefix wins).
    /// Every request is recorded, answered or not; one no route matches fails its attempt.
    pub fn route(self, prefix: &str, handler: impl FnMut(&Request) -> Response + 'static) -> Self {
        self.world.add_route(prefix, Box::new(handler));
        self
    }

    /// A service binding `binding`: `handler` answers its requests, which are recorded
    /// like every other ([`requests`](Self::requests), [`service_requests`](Self::service_requests)),
    /// and read by the workflow as the Worker reads them (capped, redirects not followed).
    pub fn service(self, binding: &str, handler: impl FnMut(&Request) -> Response + 'static) -> Self {
        self.world.add_service(binding, Box::new(handler));
        self
    }

    /// A Durable Object namespace binding `binding`: `handler` answers the requests to
    /// its objects, with the object's name (`get_by_name`), recorded like every other
    /// ([`durable_object_requests`](Self::durable_object_requests)). Keep an object's
    /// state in the handler's captures (a map by name) to give each object its own.
    pub fn durable_object(self, binding: &str, handler: impl FnMut(&str, &Request) -> Response + 'static) -> Self {
        self.world.add_durable_object(binding, Box::new(handler));
        self
    }

    /// A queue producer binding, empty: what steps send to it is kept
    /// ([`queue_messages`](Self::queue_messages)).
    pub fn queue(self, binding: &str) -> Self {
        self.world.queues.borrow_mut().entry(binding.to_string()).or_default();
        self
    }

    /// A D1 binding: an in-memory SQLite database with the Worker's migrations applied
    /// (`migrations/*.sql` of the crate under test, by file name order, as wrangler applies
    /// them; put [`MIGRATION`](crate::MIGRATION), the library's tables, among them).
    pub fn d1(self, binding: &str) -> Self {
        self.d1_with_migrations(binding, default_migrations_dir())
    }

    /// A D1 binding with the migrations of another folder (a `migrations_dir` of
    /// wrangler.jsonc other than `migrations`).
    ///
    /// For the library's database (`DB`): a folder that holds one of the library's
    /// migrations must hold all of them ([`MIGRATIONS`](crate::MIGRATIONS)), else this
    /// panics naming the missing ones, as production would fail at the first use of
    /// their tables (a patch, a child) while this engine keeps some of that state itself.
    pub fn d1_with_migrations(self, binding: &str, dir: impl AsRef<std::path::Path>) -> Self {
        if binding == crate::INDEX_DATABASE {
            let has = |name: &str| dir.as_ref().join(name).is_file();
            let missing: Vec<&str> = crate::MIGRATIONS.iter().map(|m| m.file_name).filter(|name| !has(name)).collect();
            if missing.len() < crate::MIGRATIONS.len() && !missing.is_empty() {
                panic!(
                    "test engine: {} holds some of the library's migrations but not {}: copy them from worker-workflows' migrations/ (worker_workflows::MIGRATIONS)",
                    dir.as_ref().display(),
                    missing.join(", ")
                );
            }
        }
        self.world.d1.borrow_mut().insert(binding.to_string(), Rc::new(d1::SqliteD1::with_migrations(dir.as_ref())));
        self
    }

    /// A KV namespace binding, empty.
    pub fn kv(self, binding: &str) -> Self {
        self.world.kv.borrow_mut().entry(binding.to_string()).or_default();
        self
    }

    /// An R2 bucket binding, empty.
    pub fn r2(self, binding: &str) -> Self {
        self.world.r2.borrow_mut().entry(binding.to_string()).or_default();
        self
    }

    /// Makes every workflow of a Worker's registry (its `WORKFLOWS`) exist: a step may
    /// create instances of them (recorded; those registered with
    /// [`workflow`](Self::workflow) also run). Without it, only workflows registered with
    /// `workflow` exist, and creating another fails as the Worker does with a name no
    /// workflow has.
    pub fn registry(self, registry: &crate::registry::Registry) -> Self {
        self.world.known.borrow_mut().extend(registry.workflows().iter().map(|w| w.name.to_string()));
        self
    }

    /// Lets instances of `W` that a step creates (`Env::create_instance`) run here too,
    /// on the same clock. Without it they are only recorded.
    pub fn workflow<W: Registered>(self) -> Self
    where
        W::Params: 'static,
    {
        let name = workflow_name::<W>();
        let factory_name = name.clone();
        let factory: Factory = Rc::new(move |id: &str, params: &Value, created_at: u64| {
            // A cron's run carries its tick in an envelope, as the bridge reads it; fields
            // the type no longer has are dropped, as the Worker's run reads them.
            let (params, schedule) = crate::core::schedule::unwrap(params.clone());
            let payload = validate::typed_params_tolerant::<W::Params>(&params)
                .map_err(|e| format!("params do not match the workflow's params: {e}"))?
                .params;
            Ok(driver_for::<W>(&factory_name, id, payload, created_at, schedule))
        });
        self.world.runnable.borrow_mut().insert(name.clone());
        self.factories.borrow_mut().insert(name, factory);
        self
    }

    /// Seeds the engine's randomness: the UUIDs `Env::random_uuid` makes and how far a
    /// run's clock outside steps is ahead of the virtual time (0 to 999 ms, new for every
    /// run, as a real replay's clock is later than the wake that started it). Without it
    /// the seed is `WORKER_WORKFLOWS_SEED` from the environment, else new for every
    /// engine: a workflow that branches outside steps on a UUID or the clock is caught
    /// sooner or later, and the determinism check's message prints the seed to rerun it with.
    pub fn seed(self, seed: u64) -> Self {
        self.world.rng.reseed(seed);
        self
    }

    /// The seed of the engine's randomness (see [`seed`](Self::seed)).
    pub fn current_seed(&self) -> u64 {
        self.world.rng.seed()
    }

    /// Moves the virtual clock's start.
    pub fn start_time(self, at: SystemTime) -> Self {
        self.world.set_now_ms(at.duration_since(UNIX_EPOCH).map(duration::as_millis).unwrap_or(0));
        self
    }

    /// Allows one step name to be called more than once in a run (the engine keys such
    /// calls by their count, so their order must never change).
    pub fn allow_duplicate_step_names(self) -> Self {
        self.world.allow_duplicate_names.set(true);
        self
    }

    /// The `step.run` calls allowed in one run (the engine's default is 10,000).
    pub fn step_limit(self, limit: u32) -> Self {
        self.world.step_limit.set(limit);
        self
    }

    fn add_override(self, step: StepRef, kind: OverrideKind) -> Self {
        self.world.overrides.borrow_mut().push(StepOverride { name: step.name, count: step.count, kind });
        self
    }

    /// The first `times` attempts of the step fail with `error` without running its
    /// closure; the step retries per its config as usual.
    pub fn fail_step(self, step: impl Into<StepRef>, times: u32, error: StepError) -> Self {
        self.add_override(step.into(), OverrideKind::Fail { times, error })
    }

    /// The first `times` attempts of the step run its closure, then fail with `error`
    /// anyway: the work happened but the answer was lost. What a retry must be safe against.
    pub fn fail_step_after_running(self, step: impl Into<StepRef>, times: u32, error: StepError) -> Self {
        self.add_override(step.into(), OverrideKind::FailAfterRunning { times, error })
    }

    /// Every attempt of the step fails with `error`: it fails for good once its retries run out.
    pub fn fail_step_always(self, step: impl Into<StepRef>, error: StepError) -> Self {
        self.add_override(step.into(), OverrideKind::FailAlways(error))
    }

    /// The step returns `value` without running its closure.
    pub fn replace_step_result(self, step: impl Into<StepRef>, value: &impl Serialize) -> Self {
        let text = serde_json::to_string(value).expect("a replaced step result serialises");
        self.add_override(step.into(), OverrideKind::Result(text))
    }

    /// The first `times` attempts of the step hang until their timeout (`WorkflowTimeoutError`).
    pub fn time_out_step(self, step: impl Into<StepRef>, times: u32) -> Self {
        self.add_override(step.into(), OverrideKind::TimeOut { times })
    }

    // ----- instances

    /// Creates an instance of `W` and runs it (and whatever else is due on the clock)
    /// until it completes or errors. Panics when it breaks a replay rule.
    pub fn run<W: Registered>(&self, id: &str, params: W::Params) -> TestRun
    where
        W::Params: 'static,
    {
        self.try_run::<W>(id, params).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`run`](Self::run), returning a broken replay rule as an error.
    pub fn try_run<W: Registered>(&self, id: &str, params: W::Params) -> Result<TestRun, Nondeterminism>
    where
        W::Params: 'static,
    {
        self.create::<W>(id, params);
        self.try_finish(id)
    }

    /// Creates an instance of `W` and runs what is due now (its first run), without moving the clock.
    pub fn start<W: Registered>(&self, id: &str, params: W::Params) -> TestRun
    where
        W::Params: 'static,
    {
        self.create::<W>(id, params);
        self.drive(|_| false, Some(self.world.now_ms()));
        self.instance(id)
    }

    /// Creates an instance of `W`, queued: it runs on the next `send_event`, `advance` or `finish`.
    pub fn create<W: Registered>(&self, id: &str, params: W::Params)
    where
        W::Params: 'static,
    {
        self.create_with_schedule::<W>(id, params, None);
    }

    /// Creates an instance of `W` started by a cron tick, as the engine's `schedules` or the
    /// Worker's cron trigger start one: its event carries `schedule`. Queued like [`create`](Self::create).
    pub fn create_scheduled<W: Registered>(&self, id: &str, params: W::Params, schedule: ScheduledRun)
    where
        W::Params: 'static,
    {
        self.create_with_schedule::<W>(id, params, Some(schedule));
    }

    fn create_with_schedule<W: Registered>(&self, id: &str, params: W::Params, schedule: Option<ScheduledRun>)
    where
        W::Params: 'static,
    {
        validate::instance_id(id).unwrap_or_else(|e| panic!("test engine: {e}"));
        let workflow = workflow_name::<W>();
        assert!(
            self.world.instances.borrow_mut().insert((workflow.clone(), id.to_string())),
            "test engine: (instance.already_exists) Workflow instance with id {id:?} already exists"
        );
        let now = self.world.now_ms();
        let mut new_core = InstanceCore::new(&workflow, id, now);
        new_core.schedule = schedule.clone();
        let core = Rc::new(RefCell::new(new_core));
        let driver = driver_for::<W>(&workflow, id, params, now, schedule);
        self.world.family.borrow_mut().cores.insert((workflow.clone(), id.to_string()), Rc::clone(&core));
        self.slots.borrow_mut().push(Slot { workflow, core, driver: Some(driver) });
    }

    fn slot_index(&self, id: &str) -> usize {
        let slots = self.slots.borrow();
        let found: Vec<usize> = slots.iter().enumerate().filter(|(_, s)| s.core.borrow().id == id).map(|(i, _)| i).collect();
        match found.as_slice() {
            [one] => *one,
            [] => panic!("test engine: no instance {id:?}"),
            _ => panic!("test engine: several workflows have an instance {id:?}"),
        }
    }

    /// The instance as it stands now.
    pub fn instance(&self, id: &str) -> TestRun {
        let index = self.slot_index(id);
        let snapshot = self.slots.borrow()[index].core.borrow().snapshot();
        snapshot
    }

    /// Sends an event to an instance, as `instance.sendEvent` does: the first wait for
    /// its type gets it, or it is buffered for a later wait. Then runs what is due now.
    pub fn send_event(&self, id: &str, event_type: &str, payload: &impl Serialize) {
        validate::event_type(event_type).unwrap_or_else(|e| panic!("test engine: {e}"));
        let index = self.slot_index(id);
        let event = self.event(event_type, payload);
        self.slots.borrow()[index].core.borrow_mut().deliver(event);
        self.drive(|_| false, Some(self.world.now_ms()));
    }

    /// Sends an event once the clock has moved on by `after`.
    pub fn send_event_after(&self, after: impl IntoDuration, id: &str, event_type: &str, payload: &impl Serialize) {
        validate::event_type(event_type).unwrap_or_else(|e| panic!("test engine: {e}"));
        let after = after.into_duration().unwrap_or_else(|e| panic!("test engine: {e}"));
        let at = self.world.now_ms().saturating_add(duration::as_millis(after));
        let event = self.event(event_type, payload);
        self.scheduled.borrow_mut().push(ScheduledEvent { at, instance: id.to_string(), event });
    }

    fn event(&self, event_type: &str, payload: &impl Serialize) -> EventRecord {
        EventRecord {
            payload_json: serde_json::to_string(payload).expect("an event payload serialises"),
            event_type: event_type.to_string(),
            timestamp_millis: Some(self.world.now_ms()),
        }
    }

    /// Moves the clock on by `by`, running everything that comes due on the way.
    pub fn advance(&self, by: impl IntoDuration) {
        let by = by.into_duration().unwrap_or_else(|e| panic!("test engine: {e}"));
        let until = self.world.now_ms().saturating_add(duration::as_millis(by));
        self.drive(|_| false, Some(until));
        self.world.set_now_ms(until);
    }

    /// Runs until the instance completes or errors (other instances run on the same
    /// clock meanwhile). Panics when it breaks a replay rule.
    pub fn finish(&self, id: &str) -> TestRun {
        self.try_finish(id).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`finish`](Self::finish), returning a broken replay rule as an error.
    pub fn try_finish(&self, id: &str) -> Result<TestRun, Nondeterminism> {
        let index = self.slot_index(id);
        self.drive(|engine| engine.slots.borrow()[index].core.borrow().status.is_finished(), None);
        let run = self.instance(id);
        match &run.violation {
            Some(message) => Err(Nondeterminism { message: message.clone(), run: Box::new(run), seed: self.current_seed() }),
            None => Ok(run),
        }
    }

    /// Restarts the instance from the beginning with the same event, as `restart()`
    /// does: its step history and buffered events are wiped; the world (D1, R2, …)
    /// keeps what the first run did. Runs it until it finishes.
    pub fn restart(&self, id: &str) -> TestRun {
        let index = self.slot_index(id);
        self.slots.borrow()[index].core.borrow_mut().reset();
        self.finish(id)
    }

    /// Starts the instances steps created whose workflow can run here.
    fn start_children(&self) {
        let children: Vec<_> = self.world.to_start.borrow_mut().drain(..).collect();
        let now = self.world.now_ms();
        for (workflow, id, params) in children {
            // A child workflow's params come in the parent's envelope (`core::child`).
            let (params, _parent) = crate::core::child::unwrap(params);
            let core = Rc::new(RefCell::new(InstanceCore::new(&workflow, &id, now)));
            self.world.family.borrow_mut().cores.insert((workflow.clone(), id.clone()), Rc::clone(&core));
            let factory = self.factories.borrow().get(&workflow).cloned();
            let driver = match factory.map(|make| make(&id, &params, now)) {
                Some(Ok(driver)) => Some(driver),
                Some(Err(message)) => {
                    core.borrow_mut().errored_before_running(ErrorInfo { name: "NonRetryableError".into(), message }, now);
                    None
                }
                None => None,
            };
            self.slots.borrow_mut().push(Slot { workflow, core, driver });
        }
    }

    fn deliver_due_events(&self) {
        let now = self.world.now_ms();
        let due: Vec<ScheduledEvent> = {
            let mut scheduled = self.scheduled.borrow_mut();
            let (due, later) = scheduled.drain(..).partition(|e| e.at <= now);
            *scheduled = later;
            due
        };
        for event in due {
            let index = self.slot_index(&event.instance);
            self.slots.borrow()[index].core.borrow_mut().deliver(event.event);
        }
    }

    /// The scheduler: runs every instance that is due, moves the clock to the next wake
    /// (a sleep's end, a retry, a timeout, a scheduled event), and again, until `done`
    /// or nothing is left to happen before `until`.
    fn drive(&self, done: impl Fn(&Self) -> bool, until: Option<u64>) {
        let mut runs = 0;
        loop {
            self.start_children();
            self.deliver_due_events();
            let now = self.world.now_ms();
            let runnable = self.slots.borrow().iter().position(|s| s.driver.is_some() && s.core.borrow().runnable(now));
            if let Some(index) = runnable {
                let (mut driver, core) = {
                    let mut slots = self.slots.borrow_mut();
                    (slots[index].driver.take().expect("a runnable slot has its driver"), Rc::clone(&slots[index].core))
                };
                driver.run_once(&self.world, &core);
                self.slots.borrow_mut()[index].driver = Some(driver);
                self.notify_parent(&core);
                runs += 1;
                assert!(runs < MAX_RUNS_PER_DRIVE, "test engine: {} runs and the instances are not done (a loop that never ends?)", runs);
                continue;
            }
            if done(self) {
                return;
            }
            let next_wake = self
                .slots
                .borrow()
                .iter()
                .filter(|s| s.driver.is_some() && !s.core.borrow().status.is_finished())
                .filter_map(|s| s.core.borrow().next_wake)
                .chain(self.scheduled.borrow().iter().map(|e| e.at))
                .min();
            match next_wake {
                Some(at) if until.is_none_or(|until| at <= until) => self.world.set_now_ms(at.max(now)),
                _ => return,
            }
        }
    }

    // ----- the world

    /// The virtual time now.
    pub fn now(&self) -> SystemTime {
        World::time(self.world.now_ms())
    }

    /// Every request sent so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.world.requests()
    }

    /// The requests whose URL starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Request> {
        self.world.requests().into_iter().filter(|r| r.url.starts_with(prefix)).collect()
    }

    /// The instances steps created through `Env::create_instance`, in order.
    pub fn created_instances(&self) -> Vec<CreatedInstance> {
        self.world.created.borrow().clone()
    }

    fn database(&self, binding: &str) -> Rc<d1::SqliteD1> {
        self.world.d1.borrow().get(binding).cloned().unwrap_or_else(|| panic!("test engine: no D1 binding {binding} (TestEngine::d1)"))
    }

    /// Runs SQL on a D1 binding (setup or checks); panics on an SQL error.
    pub fn d1_execute(&self, binding: &str, sql: &str) {
        self.database(binding).execute_script(sql).unwrap_or_else(|e| panic!("test engine: {e}"));
    }

    /// The rows of a query on a D1 binding, as JSON objects.
    pub fn d1_rows(&self, binding: &str, sql: &str) -> Vec<Value> {
        let statement = crate::bridge::engine::SqlStatement { sql: sql.into(), params: Vec::new() };
        let rows = self.database(binding).rows(&statement).unwrap_or_else(|e| panic!("test engine: {e}"));
        rows.into_iter().map(Value::Object).collect()
    }

    /// The requests sent through the service binding `binding`, in order.
    pub fn service_requests(&self, binding: &str) -> Vec<Request> {
        self.world.requests().into_iter().filter(|r| matches!(&r.via, Via::Service(b) if b == binding)).collect()
    }

    /// The requests sent to objects of the Durable Object namespace `binding`, in order
    /// (each names its object in [`Request::via`]).
    pub fn durable_object_requests(&self, binding: &str) -> Vec<Request> {
        self.world.requests().into_iter().filter(|r| matches!(&r.via, Via::DurableObject { binding: b, .. } if b == binding)).collect()
    }

    /// The messages steps sent to the queue `binding`, in order.
    pub fn queue_messages(&self, binding: &str) -> Vec<SentMessage> {
        let queue = self.world.queues.borrow().get(binding).cloned();
        let queue = queue.unwrap_or_else(|| panic!("test engine: no queue binding {binding} (TestEngine::queue)"));
        let messages = queue.borrow().clone();
        messages
    }

    fn kv_namespace(&self, binding: &str) -> world::Namespace {
        self.world.kv.borrow().get(binding).cloned().unwrap_or_else(|| panic!("test engine: no KV binding {binding} (TestEngine::kv)"))
    }

    /// The value of a KV key, `None` when there is none or it expired (virtual time).
    pub fn kv_get(&self, binding: &str, key: &str) -> Option<String> {
        self.kv_entry(binding, key).map(|stored| stored.value)
    }

    /// A KV key's value with its expiry and metadata, `None` when there is none or it
    /// expired (virtual time).
    pub fn kv_entry(&self, binding: &str, key: &str) -> Option<StoredValue> {
        let now = self.world.now_ms();
        self.kv_namespace(binding).borrow().get(key).filter(|stored| !stored.is_expired(now)).cloned()
    }

    /// The keys of a KV namespace that have not expired, sorted.
    pub fn kv_keys(&self, binding: &str) -> Vec<String> {
        let now = self.world.now_ms();
        self.kv_namespace(binding).borrow().iter().filter(|(_, stored)| !stored.is_expired(now)).map(|(key, _)| key.clone()).collect()
    }

    /// Writes a KV key (setup), never expiring, without metadata.
    pub fn kv_put(&self, binding: &str, key: &str, value: &str) {
        let stored = StoredValue { value: value.to_string(), expiration: None, metadata: None };
        self.kv_namespace(binding).borrow_mut().insert(key.to_string(), stored);
    }

    fn bucket(&self, binding: &str) -> world::Objects {
        self.world.r2.borrow().get(binding).cloned().unwrap_or_else(|| panic!("test engine: no R2 binding {binding} (TestEngine::r2)"))
    }

    /// An R2 object, `None` when there is none.
    pub fn r2_get(&self, binding: &str, key: &str) -> Option<StoredObject> {
        self.bucket(binding).borrow().get(key).cloned()
    }

    /// The keys in an R2 bucket, sorted.
    pub fn r2_keys(&self, binding: &str) -> Vec<String> {
        self.bucket(binding).borrow().keys().cloned().collect()
    }

    /// Writes an R2 object (setup), without a content type, uploaded now (virtual time).
    pub fn r2_put(&self, binding: &str, key: &str, body: Vec<u8>) {
        let object = StoredObject { body, content_type: None, uploaded_millis: self.world.now_ms() };
        self.bucket(binding).borrow_mut().insert(key.to_string(), object);
    }
}

impl fmt::Debug for TestEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots = self.slots.borrow();
        let instances: Vec<String> =
            slots.iter().map(|s| format!("{} {}: {}", s.workflow, s.core.borrow().id, s.core.borrow().snapshot().summary())).collect();
        f.debug_struct("TestEngine").field("now", &self.now()).field("instances", &instances).finish()
    }
}
