//! Child workflows awaited durably: [`Step::child`] starts one instance of another
//! workflow of this Worker and suspends the parent until it ends, returning its typed
//! output; [`Step::children`] starts up to [`MAX_CHILDREN`] and awaits them all.
//!
//! How a call runs, as steps of the parent (each durable, so a replay, retry or restart
//! repeats none of their effects):
//! 1. `{name}`: creates the children with derived ids ([`child::child_id`]), claimed in the
//!    instance index, their params in the parent envelope. A retry, replay or restart finds
//!    them created and starts nothing; a child that had ended already (a restarted parent)
//!    is noted, and its outcome read in step 4.
//! 2. `{name}: wait {k}` (`{name} #{i}: wait {k}` in a fan-out): a `waitForEvent` of the
//!    child's notice type, all children at once, for one slice of the deadline. When a
//!    child's run ends, the bridge sends its parent the notice ([`ChildNotice`]).
//! 3. `{name}: check {k}`, after a slice in which some notice did not come: one step reads
//!    the status of every child still awaited, so a lost notice costs one slice; then the
//!    next slice. After the last slice, `{name}: deadline` does the same and terminates
//!    (with their own children) those still running, unless the options keep them.
//! 4. `{name}: result` (`{name} #{i}: result`): the output of a child found complete by a
//!    check, or whose notice could not carry it, read from its status.

use super::{Env, Step, TerminateOutcome, WorkflowEvent};
use crate::core::child::{self, ChildEnd, ChildError, ChildNotice, ChildOptions, ChildRef, InstanceRef, MAX_CHILDREN};
use crate::core::instance_batch::CreateOutcome;
use crate::core::step_config::{Backoff, Retries, StepConfig};
use crate::core::step_error::StepError;
use crate::core::validate;
use crate::registry::Registered;
use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::rc::Rc;

/// The instance a step handle drives and its env: what starting children needs.
pub struct StepInstance {
    env: Env,
    parent: InstanceRef,
    created_at_ms: u64,
}

/// What the start step stores per child: its id, whether this call created it, and
/// whether it had ended already when found (a restarted parent's child).
#[derive(Debug, Serialize, Deserialize)]
struct Started {
    id: String,
    created: bool,
    ended: bool,
}

/// A child's outcome before its output is typed.
type Settled = Result<(ChildRef, Value), ChildError>;

/// The config of the call's own steps (start, checks, results): calls to the engine and
/// D1, which a retry usually gets through.
fn call_config() -> StepConfig {
    StepConfig::new().retries(Retries::new(5).delay("2 seconds").backoff(Backoff::Exponential)).timeout("2 minutes")
}

fn to_json<P: Serialize>(params: &P) -> Result<Value, StepError> {
    serde_json::to_value(params).map_err(|e| StepError::Serialization(format!("child params cannot be serialised: {e}")))
}

/// A settled child's output read as `O`.
fn typed<O: DeserializeOwned>(settled: Settled) -> Result<O, ChildError> {
    let (child, output) = settled?;
    serde_json::from_value(output).map_err(|e| ChildError::OutputMismatch { child, detail: e.to_string() })
}

/// A notice as the wait received it, checked to be about the child it waited for.
fn read_notice(payload_json: &str, child: &ChildRef) -> Result<ChildNotice, StepError> {
    let notice: ChildNotice = serde_json::from_str(payload_json)
        .map_err(|e| StepError::Serialization(format!("the notice of {child} does not read as one: {e}")))?;
    if notice.child != child.instance {
        return Err(StepError::NonRetryable(format!("the notice awaited for {child} is about {}", notice.child)));
    }
    Ok(notice)
}

impl<'w> Step<'w> {
    /// Lets this step handle start child workflows ([`child`](Self::child),
    /// [`children`](Self::children)): the env they are created through and the instance
    /// they belong to (its workflow, id and creation time). The engines call it.
    pub fn with_instance<P>(mut self, env: Env, event: &WorkflowEvent<P>) -> Self {
        let parent = InstanceRef::new(event.workflow_name.as_str(), event.instance_id.as_str());
        let created_at_ms = event.identity().created_at_ms;
        self.instance = Some(Rc::new(StepInstance { env, parent, created_at_ms }));
        self
    }

    /// Starts an instance of the workflow `C` with `params` as this instance's child and
    /// waits until it ends, with the default [`ChildOptions`] (a deadline of 24 hours, a
    /// status check after each hour without news): its output, or a [`ChildError`] when it
    /// errored, was terminated or did not end in time. The child is started exactly once:
    /// its id is derived from this instance's identity and `name` (a replay, a retry or a
    /// restart of this instance finds it and starts nothing), and the parent does not poll:
    /// the child's run tells the parent when it ends, and the waiting parent is suspended
    /// like any `wait_for_event`.
    ///
    /// ```
    /// # use worker_workflows::{Env, Step, StepError, Workflow, WorkflowEvent};
    /// # struct Chunk; impl Workflow for Chunk { type Params = Vec<u32>; type Output = u64;
    /// #   fn new(_: Env) -> Self { Chunk }
    /// #   async fn run(&self, e: &WorkflowEvent<Vec<u32>>, _: Step<'_>) -> Result<u64, StepError> { Ok(e.payload.iter().map(|&n| u64::from(n)).sum()) } }
    /// # impl worker_workflows::Registered for Chunk { const SETTINGS: worker_workflows::WorkflowSettings = worker_workflows::WorkflowSettings::new("chunk", "Chunk").binding("CHUNK"); }
    /// async fn total(step: Step<'_>) -> Result<u64, StepError> {
    ///     let sum: u64 = step.child::<Chunk>("sum numbers", &vec![1, 2, 3]).await?;
    ///     let sums: Vec<u64> = step.children::<Chunk>("sum chunks", &[vec![1, 2], vec![3]]).await?; // in the order given
    ///     Ok(sum + sums.iter().sum::<u64>())
    /// }
    /// ```
    pub async fn child<C: Registered>(&self, name: &str, params: &C::Params) -> Result<C::Output, ChildError>
    where
        C::Params: Serialize,
        C::Output: DeserializeOwned,
    {
        self.child_with::<C>(name, params, ChildOptions::new()).await
    }

    /// [`child`](Self::child) with a deadline and check interval of its own.
    pub async fn child_with<C: Registered>(&self, name: &str, params: &C::Params, options: ChildOptions) -> Result<C::Output, ChildError>
    where
        C::Params: Serialize,
        C::Output: DeserializeOwned,
    {
        let params = vec![to_json(params)?];
        let settled = self.await_children(name, C::SETTINGS.name, params, &options, false).await?;
        let settled = settled.into_iter().next().ok_or_else(|| StepError::Serialization("the child's outcome is missing".into()))?;
        typed(settled)
    }

    /// Starts one instance of `C` per params, 1 to [`MAX_CHILDREN`], as this instance's
    /// children (in one batch), and waits until every one has ended: their outputs in the
    /// order given, or the error of the first child, in that order, that did not complete
    /// (naming it: its index and id). Every child has ended (or, past the deadline, been
    /// terminated) when this returns, whatever the others did.
    pub async fn children<C: Registered>(&self, name: &str, params: &[C::Params]) -> Result<Vec<C::Output>, ChildError>
    where
        C::Params: Serialize,
        C::Output: DeserializeOwned,
    {
        self.children_with::<C>(name, params, ChildOptions::new()).await
    }

    /// [`children`](Self::children) with a deadline and check interval of its own.
    pub async fn children_with<C: Registered>(
        &self,
        name: &str,
        params: &[C::Params],
        options: ChildOptions,
    ) -> Result<Vec<C::Output>, ChildError>
    where
        C::Params: Serialize,
        C::Output: DeserializeOwned,
    {
        self.children_settled::<C>(name, params, options).await?.into_iter().collect()
    }

    /// [`children_with`](Self::children_with), answering per child: its output or its
    /// [`ChildError`], in the order given. Only a failure of the call's own steps (or the
    /// engine stopping the run) is the outer `Err`.
    pub async fn children_settled<C: Registered>(
        &self,
        name: &str,
        params: &[C::Params],
        options: ChildOptions,
    ) -> Result<Vec<Result<C::Output, ChildError>>, StepError>
    where
        C::Params: Serialize,
        C::Output: DeserializeOwned,
    {
        let params = params.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
        let settled = self.await_children(name, C::SETTINGS.name, params, &options, true).await?;
        Ok(settled.into_iter().map(typed).collect())
    }

    /// The untyped call, compiled once: starts the children, waits for their notices slice
    /// by slice with a status check between slices, and reads what the notices could not
    /// carry. Per child, in order: its output, or why there is none.
    async fn await_children(
        &self,
        name: &str,
        workflow: &'static str,
        params: Vec<Value>,
        options: &ChildOptions,
        fan_out: bool,
    ) -> Result<Vec<Settled>, StepError> {
        let instance = self.instance.clone().ok_or_else(|| {
            StepError::Invalid(
                "this step handle cannot start child workflows: its engine did not give it its instance (Step::with_instance)".into(),
            )
        })?;
        let n = params.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if n > MAX_CHILDREN {
            return Err(StepError::Invalid(format!("one call starts at most {MAX_CHILDREN} child workflows, not {n}")));
        }
        let slices = options.slices()?;
        let label = |i: usize| if fan_out { format!("{name} #{i}") } else { name.to_string() };
        // Every name the call may use, checked before anything starts.
        for step_name in [
            name.to_string(),
            format!("{}: wait {}", label(n - 1), slices.len()),
            format!("{}: result", label(n - 1)),
            format!("{name}: check {}", slices.len()),
            format!("{name}: deadline"),
        ] {
            validate::step_name(&step_name)?;
        }
        let (env, parent, created_at_ms) = (&instance.env, &instance.parent, instance.created_at_ms);

        // 1. Start them, exactly once.
        let started: Vec<Started> = self
            .run_with(name, call_config(), |ctx| {
                let params = &params;
                async move {
                    let backend = env.instances()?;
                    let ids: Vec<String> = (0..n).map(|i| child::child_id(parent, created_at_ms, name, ctx.count, i)).collect();
                    let created: Vec<bool> = if n == 1 {
                        vec![backend.create(workflow, &ids[0], &child::wrap(params[0].clone(), parent), Some(parent)).await?]
                    } else {
                        let entries = ids.iter().zip(params).map(|(id, p)| (id.clone(), child::wrap(p.clone(), parent))).collect();
                        let answered = backend.create_batch(workflow, entries, Some(parent)).await?;
                        let mut created = vec![false; n];
                        for entry in answered {
                            match entry.outcome {
                                CreateOutcome::Created => created[entry.index] = true,
                                CreateOutcome::AlreadyExists => {}
                                // A retry of the step creates what is missing; the rest say existed.
                                CreateOutcome::Failed(e) => {
                                    return Err(StepError::failed(format!("starting child {} ({workflow}): {}", entry.index, e.message)))
                                }
                            }
                        }
                        created
                    };
                    let mut started = Vec::with_capacity(n);
                    for (id, created) in ids.into_iter().zip(created) {
                        let ended = !created && ChildEnd::of(backend.status(workflow, &id).await?.status).is_some();
                        started.push(Started { id, created, ended });
                    }
                    Ok(started)
                }
            })
            .await?;
        if started.len() != n {
            return Err(StepError::Serialization(format!("the start of {name:?} stored {} children for {n}", started.len())));
        }
        let children: Vec<ChildRef> = started
            .iter()
            .enumerate()
            .map(|(index, s)| ChildRef { instance: InstanceRef::new(workflow, s.id.as_str()), index, of: n })
            .collect();

        let mut outcomes: Vec<Option<Settled>> = (0..n).map(|_| None).collect();
        // Children that ended with an output no notice carried: read from their status (4.).
        let mut unread: Vec<usize> = Vec::new();
        let settle = |i: usize, notice: ChildNotice, outcomes: &mut Vec<Option<Settled>>, unread: &mut Vec<usize>| {
            let child = children[i].clone();
            outcomes[i] = match (notice.status, notice.output) {
                (ChildEnd::Complete, Some(output)) if !notice.output_omitted => Some(Ok((child, output))),
                (ChildEnd::Complete, _) => {
                    unread.push(i);
                    None
                }
                (ChildEnd::Errored, _) => Some(Err(ChildError::Failed {
                    child,
                    error: notice.error.unwrap_or(crate::core::status::InstanceError { name: "Error".into(), message: String::new() }),
                })),
                (ChildEnd::Terminated, _) => Some(Err(ChildError::Terminated { child })),
            };
        };
        let mut pending: Vec<usize> = Vec::new();
        for (i, s) in started.iter().enumerate() {
            if s.ended {
                unread.push(i);
            } else {
                pending.push(i);
            }
        }

        // 2. and 3. Wait for their notices, slice by slice, checking between slices.
        for (k, slice) in slices.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            let k = k + 1;
            let names: Vec<String> = pending.iter().map(|&i| format!("{}: wait {k}", label(i))).collect();
            let types: Vec<String> = pending.iter().map(|&i| child::notice_type(&children[i].instance)).collect();
            let waits = names.iter().zip(&types).map(|(name, event_type)| self.engine.wait_for_event(name, event_type, *slice));
            let received = join_all(waits).await;
            let mut still = Vec::new();
            for (&i, result) in pending.iter().zip(received) {
                match result {
                    Ok(record) => settle(i, read_notice(&record.payload_json, &children[i])?, &mut outcomes, &mut unread),
                    Err(StepError::Timeout(_)) => still.push(i),
                    Err(other) => return Err(other),
                }
            }
            pending = still;
            if pending.is_empty() || k == slices.len() {
                break;
            }
            let checked = self.check_children(&format!("{name}: check {k}"), env, &children, &pending, false).await?;
            pending = self.take_ended(&pending, checked, &children, &mut |i, notice| settle(i, notice, &mut outcomes, &mut unread))?;
        }
        if !pending.is_empty() {
            let checked =
                self.check_children(&format!("{name}: deadline"), env, &children, &pending, options.terminates_on_deadline()).await?;
            let deadline = options.checked_deadline()?;
            for i in self.take_ended(&pending, checked, &children, &mut |i, notice| settle(i, notice, &mut outcomes, &mut unread))? {
                outcomes[i] = Some(Err(ChildError::DeadlineExceeded { child: children[i].clone(), deadline }));
            }
        }

        // 4. The outputs no notice carried.
        unread.sort_unstable();
        for i in unread {
            let child = &children[i];
            let notice: ChildNotice = self
                .run_with(&format!("{}: result", label(i)), call_config(), |_| async {
                    let status = env.instances()?.status(workflow, &child.instance.id).await?;
                    ChildNotice::from_status(child.instance.clone(), &status)
                        .ok_or_else(|| StepError::failed(format!("{child} has not ended ({})", status.status.as_str())))
                })
                .await?;
            outcomes[i] = Some(match (notice.status, notice.output) {
                (ChildEnd::Complete, Some(output)) => Ok((child.clone(), output)),
                (ChildEnd::Complete, None) => Ok((child.clone(), Value::Null)),
                (ChildEnd::Errored, _) => Err(ChildError::Failed {
                    child: child.clone(),
                    error: notice.error.unwrap_or(crate::core::status::InstanceError { name: "Error".into(), message: String::new() }),
                }),
                (ChildEnd::Terminated, _) => Err(ChildError::Terminated { child: child.clone() }),
            });
        }
        outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| o.ok_or_else(|| StepError::Serialization(format!("no outcome for {}", children[i]))))
            .collect()
    }

    /// One step reading the status of the children at `indices`: for each, its notice
    /// (without the output) when it has ended, `None` while it runs. With `terminate`,
    /// those still running are terminated, with their own children.
    async fn check_children(
        &self,
        step_name: &str,
        env: &Env,
        children: &[ChildRef],
        indices: &[usize],
        terminate: bool,
    ) -> Result<Vec<Option<ChildNotice>>, StepError> {
        self.run_with(step_name, call_config(), |_| async move {
            let backend = env.instances()?;
            let mut checked = Vec::with_capacity(indices.len());
            for &i in indices {
                let child = &children[i].instance;
                let status = backend.status(&child.workflow, &child.id).await?;
                let mut notice = ChildNotice::from_status(child.clone(), &status).map(|n| n.without_output());
                if notice.is_none() && terminate {
                    let reached = backend.terminate(&child.workflow, &child.id, true).await?;
                    // It ended between the status and the terminate: its own outcome stands.
                    if matches!(reached.first().map(|t| &t.outcome), Some(TerminateOutcome::Ended(_))) {
                        let status = backend.status(&child.workflow, &child.id).await?;
                        notice = ChildNotice::from_status(child.clone(), &status).map(|n| n.without_output());
                    }
                }
                checked.push(notice);
            }
            Ok(checked)
        })
        .await
    }

    /// Settles the children a check found ended; the ones still running, in order.
    fn take_ended(
        &self,
        pending: &[usize],
        checked: Vec<Option<ChildNotice>>,
        children: &[ChildRef],
        settle: &mut dyn FnMut(usize, ChildNotice),
    ) -> Result<Vec<usize>, StepError> {
        if checked.len() != pending.len() {
            return Err(StepError::Serialization(format!("a check stored {} statuses for {} children", checked.len(), pending.len())));
        }
        let mut running = Vec::new();
        for (&i, notice) in pending.iter().zip(checked) {
            match notice {
                Some(notice) if notice.child == children[i].instance => settle(i, notice),
                Some(notice) => return Err(StepError::NonRetryable(format!("the check of {} read {}", children[i], notice.child))),
                None => running.push(i),
            }
        }
        Ok(running)
    }
}
