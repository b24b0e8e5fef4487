//! The pure core: the rules every other part shares. Durations, step config, step
//! context and step errors, what rollbacks need besides the engine, the engine's names,
//! statuses and error codes, what managing an instance takes (retention, restart points,
//! terminate options) and per-entry batch results, an instance's typed events and the step
//! history folded from them, the callback envelope, child workflows (ids, the parent's
//! envelope, notices, waits and their errors), webhook signing, the policy for URLs a
//! caller gives, bounds on params and on what is sent to KV, R2 and queues, what a
//! service's answer means, the pipeline's record normalisation, retention, the
//! instance index's SQL, and patches (the rule and the SQL behind `Step::patched`).
//!
//! May depend on: nothing in this crate outside `core`. Never imports `worker`,
//! `js_sys` or `wasm_bindgen`, so all of it is tested on the host (`cargo test`).

pub mod binding_limits;
pub mod bounded;
pub mod callback;
pub mod child;
pub mod duration;
pub mod engine_error;
pub mod events;
pub mod history;
pub mod instance_batch;
pub mod instance_events;
pub mod instance_index;
pub mod instance_options;
pub mod patch;
pub mod platform_limits;
pub mod replay_history;
pub mod retention;
pub mod rollback;
pub mod schedule;
pub mod service;
pub mod status;
pub mod step_config;
pub mod step_context;
pub mod step_error;
pub mod url_policy;
pub mod validate;
pub mod webhook;
