//! Typed handles and child workflows on the test engine: the instances steps (or the test,
//! through [`TestEngine::env`]) create, read, send events to and terminate, as the
//! Worker's bridge does them; and the notice a child sends its parent when it ends,
//! delivered by the engine when the child's run ends ([`TestEngine::lose_child_notices`]
//! loses them all, for the parent's fallback to find).

use super::replay::InstanceCore;
use super::world::{CreatedInstance, TestEnv, World};
use super::{ErrorInfo, Status, TestEngine, TestRun};
use crate::bridge::engine::{EventRecord, LocalBoxFuture};
use crate::bridge::{Env, InstancesBackend, TerminateOutcome, TerminatedInstance, TypedStatus};
use crate::core::child::{self, ChildNotice, InstanceRef};
use crate::core::engine_error::BindingError;
use crate::core::instance_batch::{codes, CreateEntry, CreateOutcome, EntryError};
use crate::core::status::{InstanceError, InstanceState, InstanceStatus};
use crate::core::validate;
use crate::registry::Registered;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Instances by (workflow, id), the parent of each child, and the notices sent.
#[derive(Default)]
pub(crate) struct Family {
    /// Every instance that has a state here.
    pub cores: BTreeMap<(String, String), Rc<RefCell<InstanceCore>>>,
    /// The parent of every child workflow.
    pub parents: BTreeMap<(String, String), InstanceRef>,
    /// The children whose end has been told to their parent (this life).
    pub notified: BTreeSet<(String, String)>,
    /// Every notice is lost ([`TestEngine::lose_child_notices`]).
    pub lose_notices: bool,
}

fn key(workflow: &str, id: &str) -> (String, String) {
    (workflow.to_string(), id.to_string())
}

/// An instance's state as the Workflow binding's `status()` reports it (an instance
/// stopped for breaking a replay rule reads as errored, with the rule as its message).
fn status_of(core: &InstanceCore) -> InstanceStatus {
    let error = |e: &ErrorInfo| InstanceError { name: e.name.clone(), message: e.message.clone() };
    match core.status {
        Status::Queued => InstanceStatus { status: InstanceState::Queued, error: None, output: None },
        Status::Running => InstanceStatus { status: InstanceState::Running, error: None, output: None },
        Status::Waiting => InstanceStatus { status: InstanceState::Waiting, error: None, output: None },
        Status::Complete => InstanceStatus { status: InstanceState::Complete, error: None, output: core.output.clone() },
        Status::Errored => InstanceStatus { status: InstanceState::Errored, error: core.error.as_ref().map(error), output: None },
        Status::Terminated => InstanceStatus { status: InstanceState::Terminated, error: None, output: None },
        Status::NonDeterministic => InstanceStatus {
            status: InstanceState::Errored,
            error: Some(InstanceError { name: "NonDeterministic".into(), message: core.violation.clone().unwrap_or_default() }),
            output: None,
        },
    }
}

/// The notice a child that ended sends its parent, from its state.
fn notice_of(core: &InstanceCore) -> Option<ChildNotice> {
    let child = InstanceRef::new(core.workflow.as_str(), core.id.as_str());
    let status = status_of(core);
    match status.status {
        InstanceState::Complete => Some(ChildNotice::completed(child, &status.output.unwrap_or(Value::Null).to_string())),
        InstanceState::Errored => {
            let error = status.error.unwrap_or(InstanceError { name: "Error".into(), message: String::new() });
            Some(ChildNotice::errored(child, &error.name, &error.message))
        }
        InstanceState::Terminated => Some(ChildNotice::terminated(child)),
        _ => None,
    }
}

/// Sends `notice` to `parent` as the bridge does (an event of the child's notice type),
/// unless notices are lost. A finished parent ignores it, as the engine does.
fn send_notice(world: &World, parent: &InstanceRef, notice: &ChildNotice) {
    let family = world.family.borrow();
    if family.lose_notices {
        return;
    }
    let Some(core) = family.cores.get(&key(&parent.workflow, &parent.id)).cloned() else { return };
    drop(family);
    let event = EventRecord {
        payload_json: serde_json::to_string(notice).unwrap_or_default(),
        event_type: child::notice_type(&notice.child),
        timestamp_millis: Some(world.now_ms()),
    };
    core.borrow_mut().deliver(event);
}

/// Ends an instance as terminated, now.
fn mark_terminated(world: &World, core: &RefCell<InstanceCore>) {
    let mut core = core.borrow_mut();
    core.status = Status::Terminated;
    core.finished_at = Some(world.now_ms());
    core.next_wake = None;
}

/// Terminates `root` (unless it ended) and, with `children`, its descendants that have
/// not ended, children before grandchildren, in the order they were created.
pub(crate) fn terminate(world: &World, root: InstanceRef, children: bool) -> Result<Vec<TerminatedInstance>, BindingError> {
    let core = world.family.borrow().cores.get(&key(&root.workflow, &root.id)).cloned();
    let Some(core) = core else {
        return match world.instances.borrow().contains(&key(&root.workflow, &root.id)) {
            // Created, not started yet: it ends before it runs.
            true => Ok(vec![TerminatedInstance { instance: root, outcome: TerminateOutcome::Terminated }]),
            false => Err(BindingError::NotFound(root.id)),
        };
    };
    let mut reached = Vec::new();
    let state = status_of(&core.borrow()).status;
    if state.is_finished() {
        reached.push(TerminatedInstance { instance: root.clone(), outcome: TerminateOutcome::Ended(state) });
    } else {
        mark_terminated(world, &core);
        let parent = world.family.borrow().parents.get(&key(&root.workflow, &root.id)).cloned();
        if let Some(parent) = parent {
            world.family.borrow_mut().notified.insert(key(&root.workflow, &root.id));
            send_notice(world, &parent, &ChildNotice::terminated(root.clone()));
        }
        reached.push(TerminatedInstance { instance: root.clone(), outcome: TerminateOutcome::Terminated });
    }
    if !children {
        return Ok(reached);
    }
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(parent) = queue.pop_front() {
        let kids: Vec<InstanceRef> = world
            .created
            .borrow()
            .iter()
            .filter(|c| c.created && c.parent.as_ref() == Some(&parent))
            .map(|c| InstanceRef::new(c.workflow.as_str(), c.id.as_str()))
            .collect();
        for kid in kids {
            if reached.len() >= crate::bridge::handles::MAX_TERMINATED {
                return Ok(reached);
            }
            let core = world.family.borrow().cores.get(&key(&kid.workflow, &kid.id)).cloned();
            let outcome = match core {
                None => TerminateOutcome::NotFound,
                Some(core) => {
                    let state = status_of(&core.borrow()).status;
                    if state.is_finished() {
                        TerminateOutcome::Ended(state)
                    } else {
                        mark_terminated(world, &core);
                        // Its parent is being terminated: no notice.
                        world.family.borrow_mut().notified.insert(key(&kid.workflow, &kid.id));
                        TerminateOutcome::Terminated
                    }
                }
            };
            reached.push(TerminatedInstance { instance: kid.clone(), outcome });
            queue.push_back(kid);
        }
    }
    Ok(reached)
}

impl TestEnv {
    fn exists(&self, workflow: &str) -> Result<(), BindingError> {
        if self.world.known.borrow().contains(workflow) || self.world.runnable.borrow().contains(workflow) {
            Ok(())
        } else {
            Err(BindingError::MissingBinding(format!(
                "(no workflow named {workflow:?} on the test engine: TestEngine::workflow or registry)"
            )))
        }
    }

    /// Creates one instance (checked already), recording it as a step's create is recorded.
    fn create_one(&self, workflow: &str, id: &str, params: &Value, parent: Option<&InstanceRef>) -> bool {
        let world = &self.world;
        world.effect(|| format!("create_instance {workflow} {id}"));
        let created = world.instances.borrow_mut().insert(key(workflow, id));
        if created {
            world.to_start.borrow_mut().push((workflow.to_string(), id.to_string(), params.clone()));
            if let Some(parent) = parent {
                world.family.borrow_mut().parents.insert(key(workflow, id), parent.clone());
            }
        }
        world.created.borrow_mut().push(CreatedInstance {
            workflow: workflow.to_string(),
            id: id.to_string(),
            params: child::unwrap(params.clone()).0,
            created,
            by: world.current_attempt(),
            parent: parent.cloned(),
        });
        created
    }

    fn core(&self, workflow: &str, id: &str) -> Result<Option<Rc<RefCell<InstanceCore>>>, BindingError> {
        if let Some(core) = self.world.family.borrow().cores.get(&key(workflow, id)) {
            return Ok(Some(Rc::clone(core)));
        }
        match self.world.instances.borrow().contains(&key(workflow, id)) {
            true => Ok(None),
            false => Err(BindingError::NotFound(id.to_string())),
        }
    }
}

impl InstancesBackend for TestEnv {
    fn create<'a>(
        &'a self,
        workflow: &'a str,
        id: &'a str,
        params: &'a Value,
        parent: Option<&'a InstanceRef>,
    ) -> LocalBoxFuture<'a, Result<bool, BindingError>> {
        Box::pin(async move {
            self.exists(workflow)?;
            validate::instance_id(id)?;
            Ok(self.create_one(workflow, id, params, parent))
        })
    }

    fn create_batch<'a>(
        &'a self,
        workflow: &'a str,
        entries: Vec<(String, Value)>,
        parent: Option<&'a InstanceRef>,
    ) -> LocalBoxFuture<'a, Result<Vec<CreateEntry>, BindingError>> {
        Box::pin(async move {
            self.exists(workflow)?;
            BindingError::check_batch_size(entries.len())?;
            let mut seen = BTreeSet::new();
            let answered = entries
                .iter()
                .enumerate()
                .map(|(index, (id, params))| {
                    let outcome = match validate::instance_id(id) {
                        Err(e) => CreateOutcome::Failed(EntryError::new(codes::INVALID_ID, e.to_string())),
                        Ok(()) if !seen.insert(id.clone()) => CreateOutcome::Failed(EntryError::new(
                            codes::INVALID_ID,
                            format!("instance id {id:?} appears twice in the batch"),
                        )),
                        Ok(()) if self.create_one(workflow, id, params, parent) => CreateOutcome::Created,
                        Ok(()) => CreateOutcome::AlreadyExists,
                    };
                    CreateEntry { index, id: Some(id.clone()), outcome }
                })
                .collect();
            Ok(answered)
        })
    }

    fn status<'a>(&'a self, workflow: &'a str, id: &'a str) -> LocalBoxFuture<'a, Result<InstanceStatus, BindingError>> {
        Box::pin(async move {
            Ok(match self.core(workflow, id)? {
                Some(core) => status_of(&core.borrow()),
                None => InstanceStatus { status: InstanceState::Queued, error: None, output: None },
            })
        })
    }

    fn send_event<'a>(
        &'a self,
        workflow: &'a str,
        id: &'a str,
        event_type: &'a str,
        payload: &'a Value,
    ) -> LocalBoxFuture<'a, Result<(), BindingError>> {
        Box::pin(async move {
            validate::event_type(event_type)?;
            self.world.effect(|| format!("send_event {event_type} to {workflow} {id}"));
            let Some(core) = self.core(workflow, id)? else {
                return Err(BindingError::InvalidState { id: id.to_string(), message: "the instance has not started".into() });
            };
            let state = status_of(&core.borrow()).status;
            if let Some(why) = crate::core::engine_error::state_refuses(crate::core::engine_error::InstanceAction::SendEvent, state) {
                return Err(BindingError::InvalidState { id: id.to_string(), message: why });
            }
            let event = EventRecord {
                payload_json: payload.to_string(),
                event_type: event_type.to_string(),
                timestamp_millis: Some(self.world.now_ms()),
            };
            core.borrow_mut().deliver(event);
            Ok(())
        })
    }

    fn terminate<'a>(
        &'a self,
        workflow: &'a str,
        id: &'a str,
        children: bool,
    ) -> LocalBoxFuture<'a, Result<Vec<TerminatedInstance>, BindingError>> {
        Box::pin(async move {
            validate::instance_id(id)?;
            self.world.effect(|| format!("terminate {workflow} {id}"));
            terminate(&self.world, InstanceRef::new(workflow, id), children)
        })
    }
}

/// Polls a future the test engine's backends answer at once.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("test engine: block_on: the future awaits something the test engine does not answer at once"),
    }
}

impl TestEngine {
    /// Every notice a child workflow sends its parent when it ends is lost: the parent
    /// finds the child's outcome by its status checks ([`ChildOptions::check_every`](crate::ChildOptions::check_every)).
    pub fn lose_child_notices(self) -> Self {
        self.world.family.borrow_mut().lose_notices = true;
        self
    }

    /// An env over this engine's world, as a fetch handler of the Worker would have one:
    /// its handles (`env.workflow::<W>()`) create instances here (started on the next
    /// `finish`, `advance` or `send_event`), read them and terminate them. Their futures
    /// are answered at once: run them with [`block_on`](Self::block_on).
    pub fn env(&self) -> Env {
        Env::new(Rc::new(TestEnv { world: Rc::clone(&self.world) }))
    }

    /// Runs a future of this engine's handles ([`env`](Self::env)) to its end. Panics
    /// when it waits for anything else.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        ready(future)
    }

    /// The status of instance `id` of `W`, its output typed, as
    /// `env.workflow::<W>().get(id).status()` reads it. Panics when there is no such
    /// instance or its output does not read as `W::Output`.
    pub fn status<W: Registered>(&self, id: &str) -> TypedStatus<W::Output>
    where
        W::Output: DeserializeOwned,
    {
        let status = ready(TestEnv { world: Rc::clone(&self.world) }.status(W::SETTINGS.name, id))
            .unwrap_or_else(|e| panic!("test engine: {} {id}: {e}", W::SETTINGS.name));
        TypedStatus::from_status(status).unwrap_or_else(|e| panic!("test engine: {} {id}: {e}", W::SETTINGS.name))
    }

    /// Terminates the instance, as `instance.terminate()` does: it stops where it is and
    /// ends `Terminated` (rollbacks are not run); a parent waiting for it as a child is
    /// told. Its own children keep running ([`terminate_with_children`](Self::terminate_with_children)).
    pub fn terminate(&self, id: &str) -> TestRun {
        let workflow = self.instance(id).workflow;
        terminate(&self.world, InstanceRef::new(workflow, id), false).unwrap_or_else(|e| panic!("test engine: {e}"));
        self.instance(id)
    }

    /// Terminates the instance and every child workflow it started (and theirs) that has
    /// not ended: what happened to each, the instance first.
    pub fn terminate_with_children(&self, id: &str) -> Vec<TerminatedInstance> {
        let workflow = self.instance(id).workflow;
        terminate(&self.world, InstanceRef::new(workflow, id), true).unwrap_or_else(|e| panic!("test engine: {e}"))
    }

    /// After a run of an instance: a child that ended tells its parent, once per life.
    pub(super) fn notify_parent(&self, core: &Rc<RefCell<InstanceCore>>) {
        let (child_key, notice, first_run) = {
            let core = core.borrow();
            (key(&core.workflow, &core.id), notice_of(&core), core.runs == 1)
        };
        let mut family = self.world.family.borrow_mut();
        let Some(parent) = family.parents.get(&child_key).cloned() else { return };
        let Some(notice) = notice else {
            // Running again (a restart): its next end is told again.
            family.notified.remove(&child_key);
            return;
        };
        if !family.notified.insert(child_key) && !first_run {
            return;
        }
        drop(family);
        send_notice(&self.world, &parent, &notice);
    }
}
