//! The event a workflow instance runs with.

use std::time::SystemTime;

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
}
