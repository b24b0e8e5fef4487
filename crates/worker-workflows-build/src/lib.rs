//! The `build.rs` side of [worker-workflows](https://docs.rs/worker-workflows): a Worker
//! registers its workflows once, here, and the build does the rest.
//!
//! ```no_run
//! // build.rs
//! use worker_workflows_build::{Workflow, Workflows};
//!
//! fn main() {
//!     Workflows::new()
//!         .workflow(Workflow::new("order-processing", "OrderWorkflow").retention("7 days", "30 days"))
//!         .workflow(Workflow::new("daily-cleanup", "CleanupWorkflow").cron("0 3 * * *"))
//!         .generate();
//! }
//! ```
//!
//! and, where the types are in scope (`src/lib.rs`, or the module holding the workflows),
//! `worker_workflows::include_workflows!();`.
//!
//! [`Workflows::generate`]:
//! - checks `wrangler.jsonc` against the registrations and fails the build naming every
//!   disagreement, with the exact `workflows` entry to paste where one is missing or wrong
//!   (and the crons missing from `triggers.crons`);
//! - writes `$OUT_DIR/worker_workflows.rs`, which `include_workflows!` brings in: an
//!   implementation of `worker_workflows::Registered` for each type, `pub static
//!   WORKFLOWS: worker_workflows::Registry`, the `run_workflow` export the shim calls, and a
//!   test that the registry is sound (names, retention durations);
//! - for wasm32 builds, writes `build/workflows.mjs` beside worker-build's output: one
//!   `WorkflowEntrypoint` class per workflow forwarding `run(event, step)` to Rust, and the
//!   Worker's default export. `wrangler.jsonc`'s `main` re-exports it (`shim/index.mjs`:
//!   `export { default } from "../build/index.js"; export * from "../build/workflows.mjs";`).
//!
//! With [`Workflows::modules_in`] it also declares one module per workflow from its file
//! (`src/workflows/order_processing.rs` for `order-processing`) and fails when a file is
//! missing or a file there is not registered: one workflow per file, checked.
//!
//! [`layering`] holds the scanners a crate's tests use to keep its folders honest.

#![warn(missing_docs)]

pub mod codegen;
pub mod config_check;
pub mod layering;

use std::path::{Path, PathBuf};
use std::{env, fs};

/// One workflow of the Worker, as `build.rs` registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// The workflow's name (in wrangler.jsonc, the engine and the HTTP API's paths).
    pub name: String,
    /// The Rust type implementing `worker_workflows::Workflow`, also the shim's JS class.
    pub class_name: String,
    /// The Workflow binding; by default the class name in upper snake case
    /// (`OrderWorkflow` → `ORDER_WORKFLOW`).
    pub binding: String,
    /// Default retention of completed instances (a duration such as `"7 days"`).
    pub success_retention: Option<String>,
    /// Default retention of errored or terminated instances.
    pub error_retention: Option<String>,
    /// Crons in wrangler.jsonc's `triggers.crons` whose ticks start this workflow.
    pub crons: Vec<String>,
    /// The var that must be `"true"` for this workflow to exist (a development probe).
    pub enabled_by: Option<String>,
    /// The engine's own cron schedules (wrangler.jsonc `schedules` on the workflow): the
    /// engine starts an instance on each tick, without the Worker's scheduled handler.
    pub schedules: Vec<String>,
    /// At most this many instances run at once (`concurrency.limit`); the rest queue.
    pub concurrency: Option<u32>,
    /// At most this many steps per instance (`limits.steps`, 1 to 25,000).
    pub step_limit: Option<u32>,
    /// Where the engine should run the instances this Worker creates (a create's
    /// `locationHint`: `wnam`, `weur`, `enam`, `eeur`, `apac`, `apac-ne`, `apac-se`, `oc`,
    /// `sam`, `afr`, `me`).
    pub location_hint: Option<String>,
    /// Where the instances run and keep their data (`jurisdiction`: `eu`, `fedramp`, `us`;
    /// set when the workflow is first deployed, never changed after).
    pub jurisdiction: Option<String>,
}

impl Workflow {
    /// A workflow with its name and the type (the JS class) that implements it.
    pub fn new(name: &str, class_name: &str) -> Self {
        Workflow {
            name: name.to_string(),
            class_name: class_name.to_string(),
            binding: default_binding(class_name),
            success_retention: None,
            error_retention: None,
            crons: Vec::new(),
            enabled_by: None,
            schedules: Vec::new(),
            concurrency: None,
            step_limit: None,
            location_hint: None,
            jurisdiction: None,
        }
    }

    /// Another binding name than the class name implies.
    pub fn binding(mut self, binding: &str) -> Self {
        self.binding = binding.to_string();
        self
    }

    /// How long the engine keeps finished instances when a create does not say:
    /// completed ones, and errored or terminated ones (durations such as `"7 days"`, at
    /// most 365 days; checked by the generated registry test). Sent with every create
    /// through this library, and the workflow's `default_retention` in wrangler.jsonc, so
    /// instances started elsewhere (the dashboard, wrangler's CLI, `schedules`) keep it too.
    pub fn retention(mut self, success: &str, error: &str) -> Self {
        self.success_retention = Some(success.to_string());
        self.error_retention = Some(error.to_string());
        self
    }

    /// A cron (as written in wrangler.jsonc's `triggers.crons`) whose every tick starts an
    /// instance `cron-{name}-{scheduledTime}` with params `{scheduledTime, cron}` (and the
    /// cron's hash after it when the workflow has several crons).
    pub fn cron(mut self, expression: &str) -> Self {
        self.crons.push(expression.trim().to_string());
        self
    }

    /// Makes the workflow a development probe: it exists only where the var is `"true"`.
    pub fn enabled_by(mut self, var: &str) -> Self {
        self.enabled_by = Some(var.to_string());
        self
    }

    /// A cron schedule the engine itself runs (wrangler.jsonc `schedules` on the
    /// workflow): each tick starts an instance, whose event carries the cron and the time
    /// (`WorkflowEvent::schedule`). Unlike [`cron`](Self::cron), no scheduled handler of the
    /// Worker is involved.
    pub fn schedule(mut self, expression: &str) -> Self {
        self.schedules.push(expression.trim().to_string());
        self
    }

    /// At most `limit` instances run at once; the engine queues the rest.
    pub fn concurrency(mut self, limit: u32) -> Self {
        self.concurrency = Some(limit);
        self
    }

    /// At most `steps` steps per instance (the engine's default is 10,000; at most 25,000).
    pub fn step_limit(mut self, steps: u32) -> Self {
        self.step_limit = Some(steps);
        self
    }

    /// Asks the engine to run instances this Worker creates near a region.
    pub fn location_hint(mut self, hint: &str) -> Self {
        self.location_hint = Some(hint.to_string());
        self
    }

    /// Keeps the instances and their data in a jurisdiction.
    pub fn jurisdiction(mut self, jurisdiction: &str) -> Self {
        self.jurisdiction = Some(jurisdiction.to_string());
        self
    }

    /// The `workflows` entry of wrangler.jsonc this registration needs: its name, binding
    /// and class, and every setting the engine reads from the configuration.
    pub fn wrangler_entry(&self) -> serde_json::Value {
        let mut entry = serde_json::json!({"name": self.name, "binding": self.binding, "class_name": self.class_name});
        if !self.schedules.is_empty() {
            entry["schedules"] = self.schedules.clone().into();
        }
        if let Some(limit) = self.concurrency {
            entry["concurrency"] = serde_json::json!({ "limit": limit });
        }
        if let Some(steps) = self.step_limit {
            entry["limits"] = serde_json::json!({ "steps": steps });
        }
        if self.success_retention.is_some() || self.error_retention.is_some() {
            let mut retention = serde_json::Map::new();
            if let Some(success) = &self.success_retention {
                retention.insert("success_retention".into(), success.clone().into());
            }
            if let Some(error) = &self.error_retention {
                retention.insert("error_retention".into(), error.clone().into());
            }
            entry["default_retention"] = retention.into();
        }
        if let Some(jurisdiction) = &self.jurisdiction {
            entry["jurisdiction"] = jurisdiction.clone().into();
        }
        entry
    }
}

/// `OrderWorkflow` → `ORDER_WORKFLOW`: the binding a class name implies.
pub fn default_binding(class_name: &str) -> String {
    let mut out = String::with_capacity(class_name.len() + 4);
    let chars: Vec<char> = class_name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = c.is_ascii_uppercase()
            && i > 0
            && (chars[i - 1].is_ascii_lowercase()
                || chars[i - 1].is_ascii_digit()
                || (chars[i - 1].is_ascii_uppercase() && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())));
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The Worker's workflows: register each, then [`generate`](Self::generate).
#[derive(Debug, Clone, Default)]
pub struct Workflows {
    workflows: Vec<Workflow>,
    modules_dir: Option<String>,
    wrangler_config: Option<String>,
}

/// What [`Workflows::check_and_render`] makes: the Rust to include and the JS classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// `$OUT_DIR/worker_workflows.rs`.
    pub rust: String,
    /// `build/workflows.mjs`.
    pub js: String,
}

impl Workflows {
    /// No workflows yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a workflow.
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        self.workflows.push(workflow);
        self
    }

    /// One file per workflow in `dir` (relative to the crate): the generated code declares
    /// `pub mod order_processing;` from `dir/order_processing.rs` for `order-processing`,
    /// re-exports its type, and the build fails when a file is missing or a file in `dir`
    /// (other than `mod.rs`) is not registered.
    pub fn modules_in(mut self, dir: &str) -> Self {
        self.modules_dir = Some(dir.to_string());
        self
    }

    /// Another wrangler config than `wrangler.jsonc` (relative to the crate).
    pub fn wrangler_config(mut self, path: &str) -> Self {
        self.wrangler_config = Some(path.to_string());
        self
    }

    /// The registered workflows.
    pub fn registered(&self) -> &[Workflow] {
        &self.workflows
    }

    /// Checks everything against the crate at `manifest_dir` and renders the generated
    /// files, or returns every problem found, each a message saying what to do.
    pub fn check_and_render(&self, manifest_dir: &Path) -> Result<Generated, Vec<String>> {
        let config_name = self.wrangler_config.as_deref().unwrap_or("wrangler.jsonc");
        let wrangler = fs::read_to_string(manifest_dir.join(config_name)).map_err(|e| vec![format!("cannot read {config_name}: {e}")])?;
        let mut problems = config_check::registry_problems(&self.workflows, self.modules_dir.is_some());
        problems.extend(config_check::settings_problems(&self.workflows));
        let configured = config_check::configured_workflows(&wrangler).map_err(|e| vec![e])?;
        problems.extend(config_check::mismatches(&self.workflows, &configured));
        let crons = config_check::configured_crons(&wrangler).map_err(|e| vec![e])?;
        problems.extend(config_check::cron_problems(&self.workflows, &crons));
        let modules_dir = self.modules_dir.as_ref().map(|dir| manifest_dir.join(dir));
        if let (Some(dir), Some(relative)) = (&modules_dir, &self.modules_dir) {
            let files: Vec<String> = match fs::read_dir(dir) {
                Ok(entries) => entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect(),
                Err(e) => return Err(vec![format!("cannot read {relative}: {e}")]),
            };
            problems.extend(config_check::file_problems(&self.workflows, relative, &files));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Generated {
            rust: codegen::rust_registry(&self.workflows, modules_dir.as_deref().map(Path::to_string_lossy).as_deref()),
            js: codegen::js_classes(&self.workflows),
        })
    }

    /// Checks and generates, as `build.rs` should: panics (failing the build) naming every
    /// problem, each also printed as a cargo warning; writes the generated files only when
    /// they change, and tells cargo what to watch.
    pub fn generate(&self) {
        let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for build.rs"));
        let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR for build.rs"));
        println!("cargo:rerun-if-changed=build.rs");
        println!("cargo:rerun-if-changed={}", self.wrangler_config.as_deref().unwrap_or("wrangler.jsonc"));
        if let Some(dir) = &self.modules_dir {
            println!("cargo:rerun-if-changed={dir}");
        }
        let generated = match self.check_and_render(&manifest_dir) {
            Ok(generated) => generated,
            Err(problems) => {
                for p in &problems {
                    println!("cargo:warning={}", p.replace('\n', " "));
                }
                panic!("the workflows registered in build.rs disagree with the crate or wrangler.jsonc:\n  {}", problems.join("\n  "));
            }
        };
        write_if_changed(&out_dir.join("worker_workflows.rs"), &generated.rust);
        // Only the Worker build needs the shim's classes; host builds leave build/ alone.
        if env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
            // A deleted build/ (a missing file counts as changed) makes this run again.
            println!("cargo:rerun-if-changed=build/workflows.mjs");
            write_if_changed(&manifest_dir.join("build/workflows.mjs"), &generated.js);
        }
    }
}

/// Writes `contents` to `path` unless it already holds them (an unchanged file keeps its
/// mtime, so nothing downstream rebuilds). Panics naming the path when it cannot.
pub fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return;
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    }
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binding_a_class_name_implies() {
        assert_eq!(default_binding("OrderWorkflow"), "ORDER_WORKFLOW");
        assert_eq!(default_binding("DataPipelineWorkflow"), "DATA_PIPELINE_WORKFLOW");
        assert_eq!(default_binding("HTTPFetchWorkflow"), "HTTP_FETCH_WORKFLOW");
        assert_eq!(default_binding("Step2Workflow"), "STEP2_WORKFLOW");
        assert_eq!(default_binding("X"), "X");
    }

    fn crate_dir(wrangler: &str, files: &[&str]) -> PathBuf {
        let dir = env::temp_dir().join(format!("wwb-{}-{}", std::process::id(), files.len() + wrangler.len()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("src/workflows")).unwrap();
        fs::write(dir.join("wrangler.jsonc"), wrangler).unwrap();
        for f in files {
            fs::write(dir.join("src/workflows").join(f), "").unwrap();
        }
        dir
    }

    #[test]
    fn a_registration_that_agrees_renders_the_registry_and_the_classes() {
        let dir = crate_dir(
            r#"{ "workflows": [{"name": "order", "binding": "ORDER_WORKFLOW", "class_name": "OrderWorkflow"}], // the shim's
                 "triggers": {"crons": ["0 3 * * *"]} }"#,
            &["mod.rs", "order.rs"],
        );
        let generated = Workflows::new()
            .workflow(Workflow::new("order", "OrderWorkflow").cron("0 3 * * *"))
            .modules_in("src/workflows")
            .check_and_render(&dir)
            .unwrap();
        assert!(generated.rust.contains("pub mod order;"), "{}", generated.rust);
        assert!(generated.rust.contains("impl ::worker_workflows::Registered for OrderWorkflow"), "{}", generated.rust);
        assert!(generated.js.contains("export class OrderWorkflow extends rustWorkflow(\"OrderWorkflow\") {}"), "{}", generated.js);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_disagreement_is_a_problem_with_what_to_do() {
        let dir = crate_dir(r#"{ "workflows": [], "triggers": {"crons": []} }"#, &["mod.rs", "stray.rs"]);
        let problems = Workflows::new()
            .workflow(Workflow::new("order", "OrderWorkflow").cron("0 3 * * *"))
            .modules_in("src/workflows")
            .check_and_render(&dir)
            .unwrap_err();
        let all = problems.join("\n");
        assert!(all.contains(r#"{ "name": "order", "binding": "ORDER_WORKFLOW", "class_name": "OrderWorkflow" }"#), "{all}");
        assert!(all.contains("\"0 3 * * *\""), "{all}");
        assert!(all.contains("src/workflows/order.rs is missing"), "{all}");
        assert!(all.contains("src/workflows/stray.rs is not registered"), "{all}");
        fs::remove_dir_all(dir).unwrap();
    }
}
