//! Cloudflare Workflows in Rust.
//!
//! The pure core (every module not under `#[cfg(target_arch = "wasm32")]`) holds
//! the logic and is tested on the host with `cargo test`; the wasm edge
//! (`bridge`, `http`, `workflows`, `entry`) is a thin layer over it.

pub mod api;
#[cfg(not(target_arch = "wasm32"))]
pub mod config_check;
pub mod duration;
pub mod registry;
pub mod routes;
pub mod status;
pub mod step_config;
pub mod validate;
