//! The event a workflow instance runs with.

use crate::core::service::InstanceIdentity;
use std::time::{SystemTime, UNIX_EPOCH};

/// `WorkflowEvent<P>`: the typed params the instance was created with, and who it is.
#[derive(Debug, Clone)]
pub struct WorkflowEvent<P> {
    /// The params the instance was created with, read as the workflow's `Params`.
    pub payload: P,
    /// When the instance was created.
    pub timestamp: SystemTime,
    /// The instance's id.
    pub instance_id: String,
    /// The name of the workflow the instance belongs to.
    pub workflow_name: String,
    /// The cron tick that started the instance, when a schedule did: the engine's own
    /// (`Workflow::new(..).schedule(..)` in build.rs) or the Worker's scheduled handler
    /// (`.cron(..)`). `None` for an instance created any other way.
    pub schedule: Option<crate::core::schedule::ScheduledRun>,
}

impl<P> WorkflowEvent<P> {
    /// This life of this instance: its id and the engine's creation time, the base of the
    /// idempotency keys of its side effects (`ctx.idempotency_key(&event.identity())`, or
    /// `identity().key()` in a key of your own). Unique per instance life, stable across
    /// its retries, replays and restarts (see [`InstanceIdentity`]).
    pub fn identity(&self) -> InstanceIdentity<'_> {
        let created_at_ms = self.timestamp.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        InstanceIdentity { id: &self.instance_id, created_at_ms }
    }
}
