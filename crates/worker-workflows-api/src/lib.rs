//! The HTTP API, queue consumer and cron triggers of a Worker built with
//! [`worker_workflows`], over the workflows it registers:
//!
//! - [`Api`]: the four integration patterns (a status endpoint, fire-and-forget with
//!   `Prefer: respond-async`, a synchronous poll with `?wait=`, webhook callbacks signed
//!   as Standard Webhooks), instance management (list, pause, resume, terminate with or
//!   without rollback, restart from a step, delete, batches, events checked against the
//!   workflow's declared types), history as JSON or Server-Sent Events, and an OpenAPI
//!   document naming the Worker's workflows; bearer-token auth (`API_TOKEN`), bodies and
//!   params bounded and checked before use, one error type mapped to HTTP once.
//! - [`triggers::queue`]: jobs queued on `JOBS` (`workflow-jobs`) become instances, one
//!   engine batch per workflow per queue batch, each id claimed once; poison and exhausted
//!   messages become dead letters in D1.
//! - [`triggers::cron`]: each cron tick starts the workflow registered with that cron,
//!   once per tick.
//!
//! Mounting it is a few lines in the Worker (README, "Use it in your own Worker"). The
//! pure parts (routes, auth, bodies, errors, polling, SSE framing, the OpenAPI document,
//! job rules) are host-tested; the wasm edge serves them.
//!
// `queue` and `cron` exist on wasm32 only; the host's documentation links them to `triggers`.
#![cfg_attr(target_arch = "wasm32", doc = "[`triggers::queue`]: triggers::queue\n[`triggers::cron`]: triggers::cron")]
#![cfg_attr(not(target_arch = "wasm32"), doc = "[`triggers::queue`]: triggers\n[`triggers::cron`]: triggers")]
#![warn(unused_crate_dependencies)]
#![warn(missing_docs)]

pub mod http;
pub mod triggers;

#[cfg(test)]
mod layering;
#[cfg(test)]
mod test_registry;

pub use http::Api;

/// The queue consumer export: defines `#[wasm_bindgen] pub fn queue(batch, env, ctx)`,
/// which the Worker's entry class serves as its `queue` handler, consuming `workflow-jobs`
/// and `workflow-jobs-dlq` for the workflows of `$registry` (its `WORKFLOWS`). Bound by
/// hand rather than with `#[event(queue)]`, to read each message's `attempts` and its body
/// as the producer sent it.
#[macro_export]
macro_rules! export_queue_consumer {
    ($registry:path) => {
        #[cfg(target_arch = "wasm32")]
        #[$crate::__private::wasm_bindgen::prelude::wasm_bindgen(wasm_bindgen = $crate::__private::wasm_bindgen)]
        pub fn queue(
            batch: $crate::__private::wasm_bindgen::JsValue,
            env: $crate::__private::wasm_bindgen::JsValue,
            _ctx: $crate::__private::wasm_bindgen::JsValue,
        ) -> $crate::__private::js_sys::Promise {
            $crate::triggers::queue::consume_promise(&$registry, batch, env)
        }
    };
}

/// What the exported macros name. Not part of the API.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use js_sys;
    #[cfg(target_arch = "wasm32")]
    pub use wasm_bindgen;
}
