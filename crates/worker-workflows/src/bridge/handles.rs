//! Typed handles on this Worker's workflows: `env.workflow::<OrderWorkflow>()` creates
//! instances with the workflow's own `Params`, reads their status with its own `Output`,
//! and sends only events its `Workflow::EVENTS` declares. The workflow's name and binding
//! come from its registration ([`Registered`]), never from a string in user code.
//!
//! The same handles work inside a workflow (from [`Env`], through claimed creates, as
//! [`Env::create_instance`] does), in a fetch handler of the Worker
//! (`Env::from_worker(env, &WORKFLOWS)`, wasm32) and on the test engine. Behind them is
//! [`InstancesBackend`], which each of those implements.

use super::engine::LocalBoxFuture;
use super::Env;
use crate::core::child::InstanceRef;
use crate::core::engine_error::BindingError;
use crate::core::events::{self, Event};
use crate::core::instance_batch::CreateEntry;
use crate::core::status::{InstanceError, InstanceState, InstanceStatus};
use crate::core::validate;
use crate::registry::Registered;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::marker::PhantomData;

/// What a terminate did to one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminateOutcome {
    /// It was running (or waiting, paused, queued) and is terminated now.
    Terminated,
    /// It had ended already, in this state; nothing was done to it.
    Ended(InstanceState),
    /// The engine has no such instance (deleted, or expired from its retention).
    NotFound,
    /// Terminating it failed; the message says why.
    Failed(String),
}

impl TerminateOutcome {
    /// The outcome's name, as the HTTP API writes it (`terminated`, `ended`, `notFound`, `failed`).
    pub fn as_str(&self) -> &'static str {
        match self {
            TerminateOutcome::Terminated => "terminated",
            TerminateOutcome::Ended(_) => "ended",
            TerminateOutcome::NotFound => "notFound",
            TerminateOutcome::Failed(_) => "failed",
        }
    }
}

/// One instance a terminate reached: the instance itself (first) or one of its
/// descendants, children before grandchildren.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminatedInstance {
    /// The instance.
    pub instance: InstanceRef,
    /// What the terminate did to it.
    pub outcome: TerminateOutcome,
}

/// `{"workflow", "id", "outcome", "status"?, "error"?}`.
impl Serialize for TerminatedInstance {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::json!({"workflow": self.instance.workflow, "id": self.instance.id, "outcome": self.outcome.as_str()});
        match &self.outcome {
            TerminateOutcome::Ended(state) => value["status"] = state.as_str().into(),
            TerminateOutcome::Failed(message) => value["error"] = message.as_str().into(),
            _ => {}
        }
        value.serialize(serializer)
    }
}

/// The most instances one terminate with children reaches (the instance and its
/// descendants): each costs a few calls to the engine, and an invocation's are bounded.
pub const MAX_TERMINATED: usize = 200;

/// This Worker's workflows as instances: what the typed handles and child workflows use.
/// The Worker's env implements it with the Workflow bindings and claimed creates; the test
/// engine with its own instances. Values cross as JSON, so it is compiled once.
pub trait InstancesBackend {
    /// Creates instance `id` of `workflow` (a registered name) with `params`, claimed first
    /// so that of racing creates of one id exactly one reports it created; `parent`, for a
    /// child workflow, is recorded with it (the params carry it already). True when this
    /// call created it, false when the id existed.
    fn create<'a>(
        &'a self,
        workflow: &'a str,
        id: &'a str,
        params: &'a Value,
        parent: Option<&'a InstanceRef>,
    ) -> LocalBoxFuture<'a, Result<bool, BindingError>>;

    /// Creates up to 100 instances in one call, claimed as [`create`](Self::create) claims
    /// one, answering per entry in order.
    fn create_batch<'a>(
        &'a self,
        workflow: &'a str,
        entries: Vec<(String, Value)>,
        parent: Option<&'a InstanceRef>,
    ) -> LocalBoxFuture<'a, Result<Vec<CreateEntry>, BindingError>>;

    /// The instance's status, output and error ([`BindingError::NotFound`] when there is none).
    fn status<'a>(&'a self, workflow: &'a str, id: &'a str) -> LocalBoxFuture<'a, Result<InstanceStatus, BindingError>>;

    /// Sends the instance an event (checked by the caller against its workflow's events).
    fn send_event<'a>(
        &'a self,
        workflow: &'a str,
        id: &'a str,
        event_type: &'a str,
        payload: &'a Value,
    ) -> LocalBoxFuture<'a, Result<(), BindingError>>;

    /// Terminates the instance unless it has ended and, with `children`, every descendant
    /// (the child workflows it started, theirs, …) that has not ended, up to
    /// [`MAX_TERMINATED`] in all; a parent waiting for the instance is told it was
    /// terminated. Answers for the instance first, then for each descendant reached.
    fn terminate<'a>(
        &'a self,
        workflow: &'a str,
        id: &'a str,
        children: bool,
    ) -> LocalBoxFuture<'a, Result<Vec<TerminatedInstance>, BindingError>>;
}

impl Env {
    /// A handle on the workflow `W` of this Worker, typed by it: creates take its
    /// `Params`, statuses give its `Output`, and only the events it declares can be sent.
    ///
    /// ```
    /// # use worker_workflows::{Env, StepError, Workflow, WorkflowEvent, Step};
    /// # struct Invoice; impl Workflow for Invoice { type Params = u32; type Output = String;
    /// #   fn new(_: Env) -> Self { Invoice }
    /// #   async fn run(&self, _: &WorkflowEvent<u32>, _: Step<'_>) -> Result<String, StepError> { Ok(String::new()) } }
    /// # impl worker_workflows::Registered for Invoice { const SETTINGS: worker_workflows::WorkflowSettings = worker_workflows::WorkflowSettings::new("invoice", "Invoice").binding("INVOICE"); }
    /// async fn bill(env: &Env) -> Result<Option<String>, worker_workflows::core::engine_error::BindingError> {
    ///     let invoices = env.workflow::<Invoice>();
    ///     let created = invoices.create("invoice-42", &42).await?;
    ///     let status = created.instance.status().await?; // TypedStatus<String>
    ///     Ok(status.output)
    /// }
    /// ```
    pub fn workflow<W: Registered>(&self) -> WorkflowHandle<W> {
        WorkflowHandle { env: self.clone(), workflow: PhantomData }
    }
}

fn params_json<P: Serialize + ?Sized>(params: &P) -> Result<Value, BindingError> {
    serde_json::to_value(params).map_err(|e| BindingError::Serialization(format!("params cannot be serialised: {e}")))
}

/// A workflow of this Worker, typed by its type `W` ([`Env::workflow`]). Cheap to clone.
pub struct WorkflowHandle<W> {
    env: Env,
    workflow: PhantomData<fn() -> W>,
}

impl<W> Clone for WorkflowHandle<W> {
    fn clone(&self) -> Self {
        WorkflowHandle { env: self.env.clone(), workflow: PhantomData }
    }
}

impl<W: Registered> fmt::Debug for WorkflowHandle<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowHandle").field("workflow", &W::SETTINGS.name).finish()
    }
}

/// An instance a handle created: its handle, and whether this call created it (false:
/// the id existed, and that instance was not started again).
pub struct Created<W> {
    /// The instance.
    pub instance: InstanceHandle<W>,
    /// Whether this call created it.
    pub created: bool,
}

impl<W: Registered> fmt::Debug for Created<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Created").field("instance", &self.instance).field("created", &self.created).finish()
    }
}

impl<W: Registered> WorkflowHandle<W> {
    /// The workflow's name, as registered.
    pub fn name(&self) -> &'static str {
        W::SETTINGS.name
    }

    /// Creates instance `id` with `params`, started and not awaited (a workflow that must
    /// wait for it uses [`Step::child`](super::Step::child) instead). The id is claimed
    /// first, so of any number of racing creates of one id exactly one reports it created,
    /// and an id that exists is not started again. Inside a workflow, call it from a step:
    /// outside one it runs again on every replay.
    pub async fn create(&self, id: &str, params: &W::Params) -> Result<Created<W>, BindingError>
    where
        W::Params: Serialize,
    {
        validate::instance_id(id)?;
        let params = params_json(params)?;
        let created = self.env.instances()?.create(self.name(), id, &params, None).await?;
        Ok(Created { instance: self.instance(id), created })
    }

    /// Creates 1 to 100 instances in one call, each claimed as [`create`](Self::create)
    /// claims one, and answers per entry, in order: created, already existed, or failed
    /// with a code. Only a failure of the whole call is an `Err`.
    pub async fn create_batch(&self, entries: &[(&str, &W::Params)]) -> Result<Vec<CreateEntry>, BindingError>
    where
        W::Params: Serialize,
    {
        BindingError::check_batch_size(entries.len())?;
        let entries =
            entries.iter().map(|(id, params)| Ok((id.to_string(), params_json(*params)?))).collect::<Result<Vec<_>, BindingError>>()?;
        self.env.instances()?.create_batch(self.name(), entries, None).await
    }

    /// The instance with this id, or [`BindingError::NotFound`].
    pub async fn get(&self, id: &str) -> Result<InstanceHandle<W>, BindingError> {
        validate::instance_id(id)?;
        self.env.instances()?.status(self.name(), id).await?;
        Ok(self.instance(id))
    }

    fn instance(&self, id: &str) -> InstanceHandle<W> {
        InstanceHandle { env: self.env.clone(), id: id.to_string(), workflow: PhantomData }
    }
}

/// An instance's status with its workflow's output type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedStatus<O> {
    /// Where the instance stands.
    pub status: InstanceState,
    /// Its output, once complete.
    pub output: Option<O>,
    /// Its error, once errored.
    pub error: Option<InstanceError>,
}

impl<O> TypedStatus<O> {
    /// The instance will not run again unless restarted.
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

impl<O: DeserializeOwned> TypedStatus<O> {
    /// Reads an engine status as `O`: an output that does not read as `O` is
    /// [`BindingError::Serialization`]; a status other than complete has none.
    pub fn from_status(status: InstanceStatus) -> Result<Self, BindingError> {
        let output =
            match (status.status, status.output) {
                (InstanceState::Complete, Some(output)) => Some(serde_json::from_value(output).map_err(|e| {
                    BindingError::Serialization(format!("the instance's output does not read as its workflow's output: {e}"))
                })?),
                _ => None,
            };
        Ok(TypedStatus { status: status.status, output, error: status.error })
    }
}

/// One instance of the workflow `W` ([`WorkflowHandle::get`], [`Created::instance`]).
pub struct InstanceHandle<W> {
    env: Env,
    id: String,
    workflow: PhantomData<fn() -> W>,
}

impl<W> Clone for InstanceHandle<W> {
    fn clone(&self) -> Self {
        InstanceHandle { env: self.env.clone(), id: self.id.clone(), workflow: PhantomData }
    }
}

impl<W: Registered> fmt::Debug for InstanceHandle<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceHandle").field("workflow", &W::SETTINGS.name).field("id", &self.id).finish()
    }
}

impl<W: Registered> InstanceHandle<W> {
    /// The instance's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The instance's status, its output read as `W::Output`.
    pub async fn status(&self) -> Result<TypedStatus<W::Output>, BindingError>
    where
        W::Output: DeserializeOwned,
    {
        TypedStatus::from_status(self.env.instances()?.status(W::SETTINGS.name, &self.id).await?)
    }

    /// Sends the instance an event of type `E::TYPE` with `payload`. `E` must be one of
    /// the events `W` declares (`Workflow::EVENTS`): a send of an event type it does not
    /// declare does not compile, and one declared with another payload type is
    /// [`BindingError::UndeclaredEvent`], before anything is sent.
    ///
    /// ```compile_fail
    /// # use worker_workflows::{Env, Event, InstanceHandle, StepError, Workflow, WorkflowEvent, Step};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Approval { approved: bool }
    /// impl Event for Approval { const TYPE: &'static str = "approval"; }
    /// struct Quiet; // declares no events
    /// impl Workflow for Quiet { type Params = (); type Output = ();
    ///   fn new(_: Env) -> Self { Quiet }
    ///   async fn run(&self, _: &WorkflowEvent<()>, _: Step<'_>) -> Result<(), StepError> { Ok(()) } }
    /// impl worker_workflows::Registered for Quiet { const SETTINGS: worker_workflows::WorkflowSettings = worker_workflows::WorkflowSettings::new("quiet", "Quiet").binding("QUIET"); }
    /// async fn approve(quiet: InstanceHandle<Quiet>) {
    ///     quiet.send(&Approval { approved: true }).await.unwrap(); // Quiet does not wait for "approval"
    /// }
    /// # fn poll(quiet: InstanceHandle<Quiet>) {
    /// #     let _ = std::pin::pin!(approve(quiet)).as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    /// # }
    /// # fn main() { let _: fn(InstanceHandle<Quiet>) = poll; }
    /// # use std::future::Future;
    /// ```
    ///
    /// The same send to a workflow that declares the event compiles:
    ///
    /// ```
    /// # use worker_workflows::{Env, Event, EventSpec, InstanceHandle, StepError, Workflow, WorkflowEvent, Step};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Approval { approved: bool }
    /// impl Event for Approval { const TYPE: &'static str = "approval"; }
    /// struct Waits;
    /// impl Workflow for Waits { type Params = (); type Output = ();
    ///   const EVENTS: &'static [EventSpec] = &[EventSpec::of::<Approval>()];
    ///   fn new(_: Env) -> Self { Waits }
    ///   async fn run(&self, _: &WorkflowEvent<()>, _: Step<'_>) -> Result<(), StepError> { Ok(()) } }
    /// impl worker_workflows::Registered for Waits { const SETTINGS: worker_workflows::WorkflowSettings = worker_workflows::WorkflowSettings::new("waits", "Waits").binding("WAITS"); }
    /// async fn approve(waits: InstanceHandle<Waits>) {
    ///     waits.send(&Approval { approved: true }).await.unwrap();
    /// }
    /// # fn poll(waits: InstanceHandle<Waits>) {
    /// #     let _ = std::pin::pin!(approve(waits)).as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    /// # }
    /// # fn main() { let _: fn(InstanceHandle<Waits>) = poll; }
    /// # use std::future::Future;
    /// ```
    pub async fn send<E: Event + Serialize>(&self, payload: &E) -> Result<(), BindingError> {
        const {
            assert!(
                events::declares_type(W::EVENTS, E::TYPE),
                "InstanceHandle::send: the workflow does not declare this event type in its Workflow::EVENTS"
            )
        };
        validate::event_type(E::TYPE)?;
        events::declares::<E>(W::EVENTS, E::TYPE).map_err(BindingError::UndeclaredEvent)?;
        let payload =
            serde_json::to_value(payload).map_err(|e| BindingError::Serialization(format!("the event cannot be serialised: {e}")))?;
        self.env.instances()?.send_event(W::SETTINGS.name, &self.id, E::TYPE, &payload).await
    }

    /// Terminates the instance (a parent waiting for it as a child is told so). Its
    /// children keep running: see [`terminate_with_children`](Self::terminate_with_children).
    pub async fn terminate(&self) -> Result<(), BindingError> {
        let reached = self.env.instances()?.terminate(W::SETTINGS.name, &self.id, false).await?;
        match reached.into_iter().next().map(|t| t.outcome) {
            Some(TerminateOutcome::Ended(state)) => Err(BindingError::InvalidState {
                id: self.id.clone(),
                message: format!("the instance cannot be terminated: it has finished ({})", state.as_str()),
            }),
            Some(TerminateOutcome::NotFound) => Err(BindingError::NotFound(self.id.clone())),
            Some(TerminateOutcome::Failed(message)) => Err(BindingError::Engine { name: "Error".into(), message }),
            _ => Ok(()),
        }
    }

    /// Terminates the instance unless it has ended, and every child workflow it started
    /// (and theirs) that has not ended, so nothing it started is left running: what
    /// happened to each, the instance first. At most [`MAX_TERMINATED`] instances.
    pub async fn terminate_with_children(&self) -> Result<Vec<TerminatedInstance>, BindingError> {
        self.env.instances()?.terminate(W::SETTINGS.name, &self.id, true).await
    }
}
