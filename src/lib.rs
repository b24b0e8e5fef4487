//! Cloudflare Workflows in Rust.
//!
//! The pure core (every module not gated on `wasm32`) holds the logic and is
//! tested on the host with `cargo test`; the wasm edge (`bridge`, `outbound`,
//! `workflows`, `http`, `entry`) is a thin layer over it.

// Pure core.
pub mod api;
pub mod auth;
pub mod callback;
pub mod callback_url;
#[cfg(not(target_arch = "wasm32"))]
pub mod config_check;
pub mod duration;
pub mod engine_error;
pub mod instance_index;
pub mod jobs;
pub mod openapi;
pub mod poll;
pub mod registry;
pub mod retention;
pub mod records;
pub mod routes;
pub mod service;
pub mod status;
pub mod step_config;
pub mod step_error;
pub mod validate;
pub mod webhook;

// Wasm edge.
#[cfg(target_arch = "wasm32")]
pub mod bridge;
#[cfg(target_arch = "wasm32")]
mod cron;
#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
pub mod instances;
#[cfg(target_arch = "wasm32")]
pub mod outbound;
#[cfg(target_arch = "wasm32")]
mod queue;
#[cfg(target_arch = "wasm32")]
pub mod workflows;
