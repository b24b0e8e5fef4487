//! Typed handles and child workflows in the Worker: [`InstancesBackend`] over the Workflow
//! bindings and the D1 instance index (claimed creates, with a child's parent recorded),
//! [`Env::from_worker`] for a fetch handler, and the notice a child's run sends its parent
//! when it ends.

use super::engine::LocalBoxFuture;
use super::js_env::WorkerEnv;
use super::{instances, Env, InstancesBackend, NewInstance, Step, TerminatedInstance, WorkflowBinding};
use crate::core::child::{self, ChildNotice, InstanceRef};
use crate::core::engine_error::BindingError;
use crate::core::instance_batch::CreateEntry;
use crate::core::rollback::is_engine_abort;
use crate::core::status::InstanceStatus;
use crate::core::step_config::{Backoff, Retries, StepConfig};
use crate::core::step_error::StepError;
use crate::registry::{Registry, WorkflowSpec};
use serde_json::Value;
use std::rc::Rc;

impl Env {
    /// The env of a fetch (or queue, or scheduled) handler of this Worker, over its
    /// `worker::Env` and its registry (`WORKFLOWS`): what the typed handles need outside a
    /// workflow. `Env::from_worker(env, &WORKFLOWS).workflow::<OrderWorkflow>().create(id, &params)`.
    pub fn from_worker(env: worker::Env, registry: &'static Registry) -> Env {
        Env::new(Rc::new(WorkerEnv::new(env, registry)))
    }
}

impl WorkerEnv {
    fn spec(&self, workflow: &str) -> Result<&'static WorkflowSpec, BindingError> {
        self.registry
            .by_name(workflow)
            .ok_or_else(|| BindingError::MissingBinding(format!("(no workflow named {workflow:?} is registered)")))
    }
}

impl InstancesBackend for WorkerEnv {
    fn create<'a>(
        &'a self,
        workflow: &'a str,
        id: &'a str,
        params: &'a Value,
        parent: Option<&'a InstanceRef>,
    ) -> LocalBoxFuture<'a, Result<bool, BindingError>> {
        Box::pin(async move {
            let spec = self.spec(workflow)?;
            let created = match parent {
                Some(parent) => instances::create_child(&self.env, spec, id, params, parent).await?,
                None => instances::create(&self.env, spec, Some(id), params).await?,
            };
            Ok(created.created)
        })
    }

    fn create_batch<'a>(
        &'a self,
        workflow: &'a str,
        entries: Vec<(String, Value)>,
        parent: Option<&'a InstanceRef>,
    ) -> LocalBoxFuture<'a, Result<Vec<CreateEntry>, BindingError>> {
        Box::pin(async move {
            let spec = self.spec(workflow)?;
            let batch: Vec<NewInstance<Value>> = entries.into_iter().map(|(id, params)| NewInstance::new(params).with_id(id)).collect();
            match parent {
                Some(parent) => instances::create_child_batch(&self.env, spec, batch, parent).await,
                None => instances::create_batch(&self.env, spec, batch).await,
            }
        })
    }

    fn status<'a>(&'a self, workflow: &'a str, id: &'a str) -> LocalBoxFuture<'a, Result<InstanceStatus, BindingError>> {
        Box::pin(async move {
            let spec = self.spec(workflow)?;
            WorkflowBinding::from_env(&self.env, spec.binding)?.get(id).await?.status().await
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
            let spec = self.spec(workflow)?;
            let instance = WorkflowBinding::from_env(&self.env, spec.binding)?.get(id).await?;
            // The local engine stores an event to a finished instance and never reads it;
            // refused here as Cloudflare's engine refuses it.
            let state = instance.state().await?;
            if let Some(why) = crate::core::engine_error::state_refuses(crate::core::engine_error::InstanceAction::SendEvent, state) {
                return Err(BindingError::InvalidState { id: id.to_string(), message: why });
            }
            instance.send_event(event_type, payload).await
        })
    }

    fn terminate<'a>(
        &'a self,
        workflow: &'a str,
        id: &'a str,
        children: bool,
    ) -> LocalBoxFuture<'a, Result<Vec<TerminatedInstance>, BindingError>> {
        Box::pin(async move {
            let spec = self.spec(workflow)?;
            instances::terminate(&self.env, self.registry, spec, id, false, children).await
        })
    }
}

/// The config of the step that tells the parent: a few retries, so a brief outage of the
/// engine does not lose the notice (the parent's status checks would still find it).
fn notice_config() -> StepConfig {
    StepConfig::new().retries(Retries::new(4).delay("2 seconds").backoff(Backoff::Exponential)).timeout("1 minute")
}

/// A child's run ended (`outcome`: its output as JSON text, or its error): tells its parent
/// from a durable step, `notify-parent`, once per run. The instance's own outcome stays
/// what it was whether or not the parent could be told (the parent's checks find it
/// anyway); only an engine abort (pause, terminate) while telling stops the run.
pub(super) async fn notify_parent(
    step: &Step<'_>,
    env: &Env,
    spec: &WorkflowSpec,
    instance_id: &str,
    parent: Option<InstanceRef>,
    outcome: &Result<String, StepError>,
) -> Result<(), StepError> {
    let Some(parent) = parent else { return Ok(()) };
    if matches!(outcome, Err(e) if is_engine_abort(&e.to_string())) {
        return Ok(());
    }
    let child = InstanceRef::new(spec.name, instance_id);
    let notice = match outcome {
        Ok(text) => ChildNotice::completed(child.clone(), text),
        Err(e) => ChildNotice::errored(child.clone(), e.js_name(), &e.to_string()),
    };
    let Ok(payload) = serde_json::to_value(&notice) else { return Ok(()) };
    let event_type = child::notice_type(&child);
    let told = step
        .run_with("notify-parent", notice_config(), |_| async {
            Ok(env.instances()?.send_event(&parent.workflow, &parent.id, &event_type, &payload).await?)
        })
        .await;
    match told {
        Err(e) if is_engine_abort(&e.to_string()) => Err(e),
        _ => Ok(()),
    }
}
