//! The catalogue Worker: this repository's example workflows, served with the HTTP API,
//! the queue consumer and crons of `worker-workflows-api`, built on `worker-workflows`
//! exactly as any user's Worker would be.
//!
//! - `entry`: the Worker's entry points (fetch, queue, scheduled; `run_workflow`, which
//!   the shim's workflow classes call, is generated from `build.rs`);
//! - `demo`: the seed demo's public routes (`/api/workflow/*`), beside the API;
//! - `workflows`: one file per workflow, registered in `build.rs`;
//! - `records`: the data pipeline's record normalisation (pure);
//! - `schemas`: the JSON Schemas of the workflows' params and events (the dashboard's forms).
//!
//! Each folder's `mod.rs` says what it may depend on; the `layering` test holds it to it.

#![warn(unused_crate_dependencies)]

pub mod demo;
pub mod records;
pub mod schemas;
pub mod workflows;

pub use workflows::WORKFLOWS;

#[cfg(target_arch = "wasm32")]
mod entry;

#[cfg(test)]
mod layering;
