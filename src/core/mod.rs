//! The pure core: the rules every other part shares. Durations, step config and
//! step errors, the engine's names, statuses and error codes, what managing an instance
//! takes (retention, restart points, terminate options) and per-entry batch results, the callback envelope,
//! webhook signing and the callback URL policy, what a service's answer means, the
//! pipeline's record normalisation, retention, and the instance index's SQL.
//!
//! May depend on: nothing in this crate outside `core`. Never imports `worker`,
//! `js_sys` or `wasm_bindgen`, so all of it is tested on the host (`cargo test`).

pub mod callback;
pub mod callback_url;
pub mod duration;
pub mod engine_error;
pub mod instance_batch;
pub mod instance_index;
pub mod instance_options;
pub mod records;
pub mod retention;
pub mod service;
pub mod status;
pub mod step_config;
pub mod step_error;
pub mod validate;
pub mod webhook;
