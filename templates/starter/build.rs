//! The Worker's workflows, registered once: worker-workflows-build checks them against
//! wrangler.jsonc (printing the entry to paste when one is missing) and generates the
//! registry (`include_workflows!` in src/workflows/mod.rs) and the shim's classes.

use worker_workflows_build::{Workflow, Workflows};

fn main() {
    Workflows::new()
        .workflow(Workflow::new("expense", "ExpenseWorkflow").retention("7 days", "30 days"))
        .modules_in("src/workflows")
        .generate();
}
