//! The event a workflow instance runs with.

use std::time::SystemTime;

/// `WorkflowEvent<P>`: the typed params the instance was created with, and who it is.
#[derive(Debug, Clone)]
pub struct WorkflowEvent<P> {
    pub payload: P,
    /// When the instance was created.
    pub timestamp: SystemTime,
    pub instance_id: String,
    pub workflow_name: String,
}
