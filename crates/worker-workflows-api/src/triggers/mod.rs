//! Starting instances without a request waiting: the `workflow-jobs` queue (`queue`,
//! with the job rules in `jobs`: instance ids, poison messages, dead letters, retry
//! delays) and cron triggers (`cron`). `jobs` is pure and host-tested; `queue` and
//! `cron` are the wasm edge.
//!
//! May depend on: the `worker_workflows` library only (never on the HTTP API).

pub mod jobs;

#[cfg(target_arch = "wasm32")]
pub mod cron;
#[cfg(target_arch = "wasm32")]
pub mod queue;
