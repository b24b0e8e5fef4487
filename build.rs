//! The catalogue Worker's workflows, registered once (worker-workflows-build checks them
//! against wrangler.jsonc and src/workflows/, and generates the registry and the shim's
//! classes), and README's examples, extracted to be compiled with the crate:
//! - `$OUT_DIR/readme_example.rs`: README's "Writing a workflow" example;
//!   `$OUT_DIR/readme_saga_example.rs`: its "Sagas and compensation" example; likewise
//!   "Typed handles", "Child workflows" and "Changing a workflow safely";
//! - `$OUT_DIR/readme_testing_example.rs`: README's "Testing a workflow" example, run by
//!   `cargo test` (`tests/workflows.rs`).

use std::path::Path;
use worker_workflows_build::{codegen::markdown_rust_block, write_if_changed, Workflow, Workflows};

fn main() {
    // `cfg(probe)`: step-tour's code is built (see the `probe` feature in Cargo.toml).
    println!("cargo:rustc-check-cfg=cfg(probe)");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    if !wasm || std::env::var_os("CARGO_FEATURE_PROBE").is_some() {
        println!("cargo:rustc-cfg=probe");
    }

    Workflows::new()
        .workflow(Workflow::new("order-processing", "OrderWorkflow").retention("7 days", "30 days"))
        // Every step primitive, driven by params: the tests' probe and a tour of the API.
        // It fetches caller-given URLs and allocates caller-sized values, so it exists only
        // where ENABLE_STEP_TOUR is "true" (development and tests).
        // The engine's step limit is set low enough for the tests to reach (2 noop actions of 1000 steps and more).
        .workflow(Workflow::new("step-tour", "StepTourWorkflow").enabled_by("ENABLE_STEP_TOUR").step_limit(2500))
        .workflow(Workflow::new("daily-cleanup", "CleanupWorkflow").cron("0 3 * * *").retention("3 days", "30 days").concurrency(1))
        .workflow(Workflow::new("user-onboarding", "OnboardingWorkflow"))
        .workflow(Workflow::new("approval", "ApprovalWorkflow"))
        .workflow(Workflow::new("data-pipeline", "DataPipelineWorkflow"))
        // A chunk of a large data-pipeline source: a child workflow the pipeline awaits.
        .workflow(Workflow::new("data-chunk", "DataChunkWorkflow"))
        .workflow(Workflow::new("user-lifecycle", "UserLifecycleWorkflow"))
        .modules_in("src/workflows")
        .generate();

    println!("cargo:rerun-if-changed=README.md");
    let readme = std::fs::read_to_string("README.md").expect("build.rs: cannot read README.md");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for (heading, file) in [
        ("## Writing a workflow", "readme_example.rs"),
        ("## Testing a workflow", "readme_testing_example.rs"),
        ("## Sagas and compensation", "readme_saga_example.rs"),
        ("### Typed handles", "readme_typed_handles_example.rs"),
        ("### Child workflows", "readme_children_example.rs"),
        ("## Changing a workflow safely", "readme_patch_example.rs"),
        ("### Workflow settings in build.rs", "readme_settings_example.rs"),
    ] {
        let example = markdown_rust_block(&readme, heading).unwrap_or_else(|| panic!("README.md has no ```rust block under {heading:?}"));
        write_if_changed(&Path::new(&out_dir).join(file), &example);
    }
}
