//! Cloudflare Workflows in Rust, for any [workers-rs](https://github.com/cloudflare/workers-rs)
//! Worker: durable multi-step programs whose steps retry independently, whose step results
//! are persisted, that sleep for days, wait for outside events and roll back as sagas,
//! written as ordinary async Rust.
//!
//! - Write a workflow: a type implementing [`Workflow`], with typed params and output;
//!   every step is a closure run through [`Step`] (`step.run`, `run_with`,
//!   `run_with_rollback`, `run_stream`, `sleep`, `sleep_until`, `wait_for`), reaching the
//!   outside world through [`Env`] and [`ServiceCall`].
//! - Register it in `build.rs` with the `worker-workflows-build` crate, which checks
//!   `wrangler.jsonc` and generates the JS shim's `WorkflowEntrypoint` classes, and bring
//!   the generated registry into the crate with [`include_workflows!`].
//! - Start, read and signal this Worker's workflows with typed handles
//!   (`env.workflow::<OrderWorkflow>()`: [`WorkflowHandle`], [`InstanceHandle`]), from a
//!   workflow or a fetch handler, and await child workflows durably from a step
//!   ([`Step::child`], [`Step::children`]); manage any instance with [`WorkflowBinding`] (wasm32).
//! - Test it with `cargo test` on the test engine (`testing`, feature `testing`): the
//!   same code on a simulated engine with a virtual clock, replays and a determinism check.
//!
//! The HTTP API, queue consumer and crons over the registered workflows are in the
//! `worker-workflows-api` crate.
//!
//! The modules, by role:
//! - [`core`]: the pure rules (durations, step config, errors, names, statuses, the URL
//!   policy, webhook signing, …), free of Workers code and tested on the host;
//! - [`bridge`]: the engine and the outside world in Rust (steps, events, the env, the
//!   Workflow binding, outbound calls); its wasm edge is compiled for `wasm32` only;
//! - [`registry`]: the table of a Worker's registered workflows;
//! - `testing`: the test engine (host, feature `testing`).
//!
//! Each folder's `mod.rs` says what it holds and what it may depend on; a test holds them
//! to it and keeps Workers code out of the pure parts.
//!
// `WorkflowBinding` exists on wasm32 only; the host's documentation links it to `bridge`.
#![cfg_attr(target_arch = "wasm32", doc = "[`WorkflowBinding`]: bridge::WorkflowBinding")]
#![cfg_attr(not(target_arch = "wasm32"), doc = "[`WorkflowBinding`]: bridge")]
#![warn(unused_crate_dependencies)]
#![warn(missing_docs)]

pub mod bridge;
pub mod core;
pub mod registry;

#[cfg(all(feature = "testing", not(target_arch = "wasm32")))]
pub mod testing;

#[cfg(test)]
mod layering;

pub use bridge::outbound::ServiceCall;
pub use bridge::{Env, Rollback, RollbackContext, Step, StepContext, Workflow, WorkflowEvent};
pub use bridge::{InstanceHandle, TypedStatus, WorkflowHandle};
pub use core::child::{ChildError, ChildOptions};
pub use core::events::{Event, EventSpec};
pub use core::schedule::ScheduledRun;
pub use core::step_config::{Backoff, Retries, StepConfig};
pub use core::step_error::StepError;
pub use registry::{Registered, Registry, WorkflowSettings, WorkflowSpec};

#[cfg(target_arch = "wasm32")]
pub use bridge::{Instance, NewInstance, WorkflowBinding};

/// The schema of the tables this library keeps in the Worker's D1 database `DB` (the
/// instance index, claimed creates and callback outcomes, the queue's dead letters and
/// failures): the first of [`MIGRATIONS`], to put in the Worker's D1 `migrations_dir` as
/// `0000_worker_workflows.sql` (the starter has it). The test engine's D1 applies the
/// Worker's own migrations directory, and says so when this schema is missing from it.
pub const MIGRATION: Migration =
    Migration { file_name: "0000_worker_workflows.sql", sql: include_str!("../migrations/0000_worker_workflows.sql") };

/// The second of [`MIGRATIONS`]: the parent of every child workflow in the instance index
/// (`Step::child`, `Step::children`; the status route's `parent`, terminate with children),
/// as `0001_worker_workflows_children.sql`.
pub const CHILD_MIGRATION: Migration =
    Migration { file_name: "0001_worker_workflows_children.sql", sql: include_str!("../migrations/0001_worker_workflows_children.sql") };

/// The table of first sightings of patches ([`Step::patched`](bridge::Step::patched)),
/// in the Worker's D1 database `DB`: a third migration, to put beside the others as
/// `0002_worker_workflows_patches.sql` (the starter has it). A new migration rather than
/// a change to the first, so a database that applied the first gets it as wrangler
/// applies any migration it has not applied yet.
pub const PATCHES_MIGRATION: Migration =
    Migration { file_name: "0002_worker_workflows_patches.sql", sql: include_str!("../migrations/0002_worker_workflows_patches.sql") };

/// The fourth of [`MIGRATIONS`]: the status route's copy of a finished instance's status
/// (served without calling the engine; cleared by a restart or terminate through the API),
/// as `0003_worker_workflows_status.sql`.
pub const STATUS_MIGRATION: Migration =
    Migration { file_name: "0003_worker_workflows_status.sql", sql: include_str!("../migrations/0003_worker_workflows_status.sql") };

/// Every migration this library needs in the Worker's D1 `migrations_dir`, in the order
/// they apply (by file name, as wrangler applies them).
pub const MIGRATIONS: &[Migration] = &[MIGRATION, CHILD_MIGRATION, PATCHES_MIGRATION, STATUS_MIGRATION];

/// A D1 migration this library needs in the Worker's migrations directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The file name it should have there.
    pub file_name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// The name of the D1 binding the instance index lives in.
pub const INDEX_DATABASE: &str = "DB";

/// Brings in what `build.rs` generated with `worker-workflows-build`: the modules it was
/// told to declare, an implementation of [`Registered`] for every registered workflow,
/// `pub static WORKFLOWS: Registry`, and (for wasm32) the `run_workflow` export the shim's
/// classes call. Invoke it once, where the registered types are in scope.
#[macro_export]
macro_rules! include_workflows {
    () => {
        include!(concat!(env!("OUT_DIR"), "/worker_workflows.rs"));
    };
}

/// The `run_workflow` export the shim's `WorkflowEntrypoint` classes call with their class
/// name and the engine's `event` and `step`: dispatches to the registry's workflow. The
/// code [`include_workflows!`] brings in invokes it; nothing else should.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_run_workflow {
    ($registry:path) => {
        #[cfg(target_arch = "wasm32")]
        #[$crate::__private::wasm_bindgen::prelude::wasm_bindgen(wasm_bindgen = $crate::__private::wasm_bindgen)]
        pub fn run_workflow(
            class_name: ::std::string::String,
            event: $crate::__private::wasm_bindgen::JsValue,
            step: $crate::__private::wasm_bindgen::JsValue,
            env: $crate::__private::wasm_bindgen::JsValue,
            _ctx: $crate::__private::wasm_bindgen::JsValue,
        ) -> $crate::__private::js_sys::Promise {
            $crate::bridge::dispatch(&$registry, class_name, event, step, env)
        }
    };
}

/// What the generated code and the exported macros name. Not part of the API.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use js_sys;
    #[cfg(target_arch = "wasm32")]
    pub use wasm_bindgen;
}
