//! The registry: the one place a workflow is registered, and the crons that start them.
//!
//! Adding a workflow is a file `src/workflows/<name with _ for ->.rs` holding a type
//! named like `class_name`, one `WorkflowSpec` line below, and the `workflows` entry
//! in `wrangler.jsonc` that wrangler itself needs. `build.rs` reads this file and
//! generates the rest: the Rust module declarations and dispatch
//! (`src/workflows/mod.rs` includes them) and the shim's `WorkflowEntrypoint` classes
//! (`build/workflows.mjs`); it fails the build, printing the exact JSON to paste, when
//! `wrangler.jsonc` lacks or contradicts an entry.
//!
//! Plain data with no dependencies (build.rs includes this file). The checks
//! (`config_check`) and the generators (`codegen`) run in build.rs and host tests only.

#[cfg(not(target_arch = "wasm32"))]
pub mod codegen;
#[cfg(not(target_arch = "wasm32"))]
pub mod config_check;

/// One workflow: its name (as in `wrangler.jsonc` and the HTTP API), the JS class
/// the shim exports (also the name of the Rust type implementing it), and the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowSpec {
    pub name: &'static str,
    pub class_name: &'static str,
    pub binding: &'static str,
}

pub const WORKFLOWS: &[WorkflowSpec] = &[
    WorkflowSpec { name: "order-processing", class_name: "OrderWorkflow", binding: "ORDER_WORKFLOW" },
    WorkflowSpec { name: "step-tour", class_name: "StepTourWorkflow", binding: "STEP_TOUR_WORKFLOW" },
    WorkflowSpec { name: "daily-cleanup", class_name: "CleanupWorkflow", binding: "CLEANUP_WORKFLOW" },
    WorkflowSpec { name: "user-onboarding", class_name: "OnboardingWorkflow", binding: "ONBOARDING_WORKFLOW" },
    WorkflowSpec { name: "approval", class_name: "ApprovalWorkflow", binding: "APPROVAL_WORKFLOW" },
    WorkflowSpec { name: "data-pipeline", class_name: "DataPipelineWorkflow", binding: "DATA_PIPELINE_WORKFLOW" },
    WorkflowSpec { name: "user-lifecycle", class_name: "UserLifecycleWorkflow", binding: "USER_LIFECYCLE_WORKFLOW" },
];

/// How long the engine keeps a workflow's finished instances when a create does not say
/// (each part a duration as the HTTP API takes it; a create's own `retention` overrides
/// it part by part; unset parts, and workflows not listed, keep the account's default).
/// A host test checks every entry names a registered workflow and parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDefault {
    pub workflow: &'static str,
    /// For instances that completed.
    pub success: Option<&'static str>,
    /// For instances that errored or were terminated: kept longer, to find out why.
    pub error: Option<&'static str>,
}

pub const RETENTION: &[RetentionDefault] = &[
    RetentionDefault { workflow: "order-processing", success: Some("7 days"), error: Some("30 days") },
    RetentionDefault { workflow: "daily-cleanup", success: Some("3 days"), error: Some("30 days") },
];

/// The registry's retention default for a workflow, if it has one.
pub fn retention_default(workflow: &str) -> Option<&'static RetentionDefault> {
    RETENTION.iter().find(|r| r.workflow == workflow)
}

/// One cron trigger: the expression as in wrangler.jsonc `triggers.crons`, and the
/// workflow each tick starts (instance `cron-{workflow}-{scheduledTime}`, params
/// `{scheduledTime, cron}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronSpec {
    pub cron: &'static str,
    pub workflow: &'static str,
}

pub const CRONS: &[CronSpec] = &[CronSpec { cron: "0 3 * * *", workflow: "daily-cleanup" }];

/// The registry entry for a cron expression.
pub fn cron(expression: &str) -> Option<&'static CronSpec> {
    CRONS.iter().find(|c| c.cron == expression.trim())
}

/// The registry entry for a workflow name.
pub fn workflow_by_name(name: &str) -> Option<&'static WorkflowSpec> {
    WORKFLOWS.iter().find(|w| w.name == name)
}

/// The registry entry for a shim class name.
pub fn workflow_by_class(class_name: &str) -> Option<&'static WorkflowSpec> {
    WORKFLOWS.iter().find(|w| w.class_name == class_name)
}

/// The Rust module (file in `src/workflows/`) of a workflow: its name with `_` for `-`.
pub fn module_name(workflow_name: &str) -> String {
    workflow_name.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(workflow_by_name("order-processing").map(|w| w.class_name), Some("OrderWorkflow"));
        assert_eq!(workflow_by_class("OrderWorkflow").map(|w| w.binding), Some("ORDER_WORKFLOW"));
        assert!(workflow_by_name("nope").is_none());
        assert_eq!(module_name("order-processing"), "order_processing");
    }

    #[test]
    fn every_cron_starts_a_registered_workflow() {
        for c in CRONS {
            assert!(workflow_by_name(c.workflow).is_some(), "{}", c.workflow);
        }
        assert_eq!(cron("0 3 * * *").map(|c| c.workflow), Some("daily-cleanup"));
        assert!(cron("* * * * *").is_none());
    }

    #[test]
    fn retention_defaults_name_registered_workflows_once() {
        for (i, r) in RETENTION.iter().enumerate() {
            assert!(workflow_by_name(r.workflow).is_some(), "{}", r.workflow);
            assert!(RETENTION[i + 1..].iter().all(|o| o.workflow != r.workflow), "{} twice", r.workflow);
        }
        assert_eq!(retention_default("order-processing").and_then(|r| r.error), Some("30 days"));
        assert!(retention_default("step-tour").is_none());
    }

    #[test]
    fn names_are_unique_and_valid() {
        for (i, w) in WORKFLOWS.iter().enumerate() {
            assert!(w.name.len() <= 64, "{}", w.name);
            assert!(WORKFLOWS[i + 1..].iter().all(|o| o.name != w.name && o.class_name != w.class_name && o.binding != w.binding));
        }
    }
}
