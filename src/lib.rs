//! Cloudflare Workflows in Rust: one Worker with workflows, an HTTP API, a queue
//! consumer and cron triggers.
//!
//! Read top-down, the folders tell the story of a request and of a step:
//! - `entry`: the Worker's entry points (fetch, queue, scheduled, and `run_workflow`,
//!   which the shim's workflow classes call);
//! - `http`: the HTTP API, from route to response;
//! - `triggers`: instances started by the queue and by crons;
//! - `registry`: the one place a workflow is registered;
//! - `workflows`: one file per workflow;
//! - `bridge`: the engine and the outside world in Rust (steps, events, the Workflow
//!   binding, the env, outbound calls);
//! - `core`: the pure rules everything shares, tested on the host.
//!
//! Each folder's `mod.rs` says what it holds and what it may depend on; the
//! `layering` test holds them to it. Everything but the wasm edge (files gated on
//! `wasm32`) builds on the host, workflows included: they run there on the test engine.

#![warn(unused_crate_dependencies)]

pub mod bridge;
pub mod core;
pub mod http;
pub mod registry;
pub mod triggers;
pub mod workflows;

#[cfg(target_arch = "wasm32")]
mod entry;

#[cfg(test)]
mod layering;
