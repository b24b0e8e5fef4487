//! The Rust registry: every workflow this Worker defines, and the crons that start them.
//!
//! This file is plain data with no dependencies, because `build.rs` includes it too
//! and checks it against `wrangler.jsonc` and the classes in `shim/index.mjs`:
//! the three must agree or the build fails naming the mismatch.

/// One workflow: its name (as in `wrangler.jsonc` and the HTTP API), the JS class
/// the shim exports (also the name of the Rust type implementing it), and the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowSpec {
    pub name: &'static str,
    pub class_name: &'static str,
    pub binding: &'static str,
}

pub const WORKFLOWS: &[WorkflowSpec] = &[WorkflowSpec {
    name: "order-processing",
    class_name: "OrderWorkflow",
    binding: "ORDER_WORKFLOW",
}];

/// The registry entry for a workflow name.
pub fn workflow_by_name(name: &str) -> Option<&'static WorkflowSpec> {
    WORKFLOWS.iter().find(|w| w.name == name)
}

/// The registry entry for a shim class name.
pub fn workflow_by_class(class_name: &str) -> Option<&'static WorkflowSpec> {
    WORKFLOWS.iter().find(|w| w.class_name == class_name)
}
