//! The bridge between the engine and workflows: the `Workflow` trait, the step handle
//! (`step`), the event (`event`), the environment (`env`: vars, secrets, D1, KV, R2,
//! queues, service bindings, Durable Objects, other workflows, clock), typed handles on
//! this Worker's workflows (`handles`), child workflows awaited from a step (`children`)
//! and calls to outside services (`outbound`). Workflows see only these
//! typed faces; behind them is the seam (`engine`) with two sides:
//! - the wasm edge (gated on `wasm32`): the real engine (`js_step`, with streamed step outputs in `js_bytes` and its promises and callbacks in `js_calls`) and the run that
//!   drives it and serves its rollbacks (`js_run`, polled by `js_task`), the Worker's bindings (`js_env`), the Workflow binding (`binding`), claimed creates through the
//!   instance index (`instances`), typed handles and children's notices (`js_handles`), webhook delivery, and JS values and errors (`js`);
//! - on the host, the test engine that runs the same workflow code under `cargo test`.
//!
//! May depend on: `core`, `registry`.

mod children;
pub mod engine;
pub mod env;
pub mod event;
pub mod handles;
pub mod outbound;
pub mod patch;
pub mod step;

#[cfg(target_arch = "wasm32")]
pub mod binding;
#[cfg(target_arch = "wasm32")]
pub mod instances;
#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
mod js_bytes;
#[cfg(target_arch = "wasm32")]
mod js_calls;
#[cfg(target_arch = "wasm32")]
pub mod js_env;
#[cfg(target_arch = "wasm32")]
mod js_handles;
#[cfg(target_arch = "wasm32")]
mod js_run;
#[cfg(target_arch = "wasm32")]
pub mod js_step;
#[cfg(target_arch = "wasm32")]
mod js_task;
#[cfg(target_arch = "wasm32")]
mod webhook_delivery;

pub use engine::{
    HttpMethod, KvKey, KvKeyList, KvPutOptions, ListOptions, ObjectInfo, ObjectList, OutboundRequest, OutboundResponse, Redirect, SqlValue,
    StepContext,
};
pub use env::{Bucket, Database, DurableObjectNamespace, Env, Fetcher, Kv, Queue, RunResult, Secret, Statement};
pub use event::WorkflowEvent;
pub use handles::{Created, InstanceHandle, InstancesBackend, TerminateOutcome, TerminatedInstance, TypedStatus, WorkflowHandle};
pub use patch::{D1Patches, PatchBackend, PatchContext};
pub use step::{InstanceFailure, ReceivedEvent, Rollback, RollbackContext, Step};

#[cfg(target_arch = "wasm32")]
pub use binding::{Instance, NewInstance, WorkflowBinding};
#[cfg(target_arch = "wasm32")]
pub use js_env::WorkflowEnv;
#[cfg(target_arch = "wasm32")]
pub use js_run::{dispatch, js_error_text, run_boxed, start, EngineValue, RunFn, RunPromise};

use crate::core::step_error::StepError;
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;

/// A workflow: typed params in, typed output out, steps in between.
///
/// Implement it on a type, and register the type in `build.rs` with
/// `worker-workflows-build` (which names the workflow, its JS class and binding).
pub trait Workflow: Sized + 'static {
    /// The params an instance is created with (the engine's `event.payload`).
    type Params: DeserializeOwned;
    /// What the workflow returns: the instance's output.
    type Output: Serialize;

    /// The fields of [`Params`](Self::Params) holding URLs the workflow fetches
    /// (dot-separated, `*` for every element of a list: `"actions.*.call.url"`): the HTTP
    /// API, the queue and crons check each against the URL policy
    /// ([`core::url_policy`](crate::core::url_policy)) before an instance is created.
    const URL_PARAMS: &'static [&'static str] = &[];

    /// The events this workflow waits for, with their payload types
    /// (`EventSpec::of::<ApprovalResponse>()`, the type implementing
    /// [`Event`](crate::core::events::Event)). `POST …/events/{type}` refuses an event
    /// type not listed and a payload that does not read as its type, so a malformed
    /// payload never reaches a waiting instance; a wait for a type not listed here fails
    /// the step at once, so a forgotten entry shows in the first test.
    const EVENTS: &'static [crate::core::events::EventSpec] = &[];

    /// Builds the workflow for one run, with the Worker's environment.
    fn new(env: Env) -> Self;

    /// The workflow itself. Everything with a side effect belongs in a step; code
    /// outside steps runs again whenever the engine replays the instance. `'w` is the
    /// lifetime of the workflow and its event: step code may borrow both.
    fn run<'w>(
        &'w self,
        event: &'w WorkflowEvent<Self::Params>,
        step: Step<'w>,
    ) -> impl Future<Output = Result<Self::Output, StepError>> + 'w;
}

/// Parses a URL as WHATWG `URL` does (the parser `fetch` uses): the runtime's own in the
/// Worker, the `url` crate (the same standard) on the host.
pub fn parse_url(url: &str) -> Result<crate::core::url_policy::UrlParts, String> {
    #[cfg(target_arch = "wasm32")]
    return js::parse_url(url);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
        Ok(crate::core::url_policy::UrlParts {
            href: parsed.as_str().to_string(),
            scheme: parsed.scheme().to_string(),
            username: parsed.username().to_string(),
            password: parsed.password().unwrap_or_default().to_string(),
            hostname: parsed.host_str().unwrap_or_default().to_string(),
        })
    }
}

/// The workflow's output as the JSON text the engine gets, checked against the engine's
/// 1 MiB limit like a step result.
pub fn output_text<T: Serialize>(output: &T) -> Result<String, StepError> {
    let text = serde_json::to_string(output).map_err(|e| StepError::Serialization(format!("workflow output cannot be serialised: {e}")))?;
    StepError::check_result_size(&text)?;
    Ok(text)
}
