//! Starting instances without a request waiting: the `workflow-jobs` queue (`queue`,
//! with the job rules in `jobs`: instance ids, poison messages, dead letters, retry
//! delays) and cron triggers (`cron`). `jobs` is pure and host-tested; `queue` and
//! `cron` are the wasm edge.
//!
//! May depend on: `core`, `registry`, `bridge`, and `workflows` (to check params).

pub mod jobs;

#[cfg(target_arch = "wasm32")]
pub(crate) mod cron;
#[cfg(target_arch = "wasm32")]
pub(crate) mod queue;
