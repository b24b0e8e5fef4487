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

/// A development probe: a workflow that only exists where its var is `"true"` (set for
/// local development and tests, never in wrangler.jsonc). Elsewhere every route that names
/// it (HTTP, batch, jobs, the queue consumer) answers as if it were not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevProbe {
    pub workflow: &'static str,
    pub enabled_by: &'static str,
}

/// `step-tour` fetches caller-given URLs, allocates caller-sized strings and burns
/// caller-sized CPU: a probe for tests and a tour of the API, not a production workflow.
pub const DEV_PROBES: &[DevProbe] = &[DevProbe { workflow: "step-tour", enabled_by: "ENABLE_STEP_TOUR" }];

/// Params fields holding URLs a workflow will fetch, checked against the URL policy
/// (`core::url_policy`) when an instance is requested: dot-separated field names, `*`
/// for every element of a list.
pub const URL_PARAMS: &[(&str, &[&str])] = &[
    ("data-pipeline", &["sourceUrl"]),
    (
        "step-tour",
        &[
            "actions.*.call.url",
            "actions.*.download.url",
            "actions.*.transform.url",
            "actions.*.parallel.url",
            "actions.*.compensated.undoUrl",
        ],
    ),
];

/// The URL fields of a workflow's params.
pub fn url_params(workflow: &str) -> &'static [&'static str] {
    URL_PARAMS.iter().find(|(w, _)| *w == workflow).map_or(&[], |(_, paths)| paths)
}

/// The registry entry of a workflow this deployment serves: every registered workflow,
/// except a development probe whose var (read with `var`) is not `"true"`.
pub fn available_workflow(name: &str, var: impl Fn(&str) -> Option<String>) -> Option<&'static WorkflowSpec> {
    let spec = workflow_by_name(name)?;
    match DEV_PROBES.iter().find(|p| p.workflow == spec.name) {
        Some(probe) if var(probe.enabled_by).as_deref() != Some("true") => None,
        _ => Some(spec),
    }
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
    fn a_dev_probe_exists_only_where_its_var_is_true() {
        let vars =
            |value: Option<&'static str>| move |name: &str| (name == "ENABLE_STEP_TOUR").then_some(value).flatten().map(str::to_string);
        assert_eq!(available_workflow("step-tour", vars(Some("true"))).map(|w| w.name), Some("step-tour"));
        for off in [None, Some("false"), Some("TRUE"), Some("1"), Some("")] {
            assert!(available_workflow("step-tour", vars(off)).is_none(), "{off:?}");
        }
        // Production workflows do not depend on any var.
        assert_eq!(available_workflow("order-processing", vars(None)).map(|w| w.name), Some("order-processing"));
        assert!(available_workflow("nope", vars(Some("true"))).is_none());
        for probe in DEV_PROBES {
            assert!(workflow_by_name(probe.workflow).is_some(), "{}", probe.workflow);
        }
    }

    #[test]
    fn url_params_name_registered_workflows() {
        for (workflow, paths) in URL_PARAMS {
            assert!(workflow_by_name(workflow).is_some(), "{workflow}");
            assert!(!paths.is_empty() && paths.iter().all(|p| !p.is_empty() && !p.starts_with('.')), "{workflow}");
        }
        assert_eq!(url_params("data-pipeline"), ["sourceUrl"]);
        assert!(url_params("order-processing").is_empty());
    }

    #[test]
    fn names_are_unique_and_valid() {
        for (i, w) in WORKFLOWS.iter().enumerate() {
            assert!(w.name.len() <= 64, "{}", w.name);
            assert!(WORKFLOWS[i + 1..].iter().all(|o| o.name != w.name && o.class_name != w.class_name && o.binding != w.binding));
        }
    }
}
