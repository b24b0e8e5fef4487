//! Every catalogue workflow on the test engine (`bridge::testing`): the same workflow
//! code the Worker runs, natively, with replays, retries and timeouts on a virtual
//! clock and in-memory services. `tests/e2e` proves the bridge on the real runtime;
//! these prove the workflows' logic, branch by branch, in milliseconds.
//! Host only: the test engine is not part of the wasm build.
#![cfg(not(target_arch = "wasm32"))]

#[path = "workflows/approval.rs"]
mod approval;
#[path = "workflows/children.rs"]
mod children;
#[path = "workflows/cleanup.rs"]
mod cleanup;
#[path = "workflows/lifecycle.rs"]
mod lifecycle;
#[path = "workflows/nondeterministic.rs"]
mod nondeterministic;
#[path = "workflows/onboarding.rs"]
mod onboarding;
#[path = "workflows/order.rs"]
mod order;
#[path = "workflows/parity.rs"]
mod parity;
#[path = "workflows/pipeline.rs"]
mod pipeline;
#[path = "workflows/replay.rs"]
mod replay;
#[path = "workflows/schemas.rs"]
mod schemas;
#[path = "workflows/services.rs"]
mod services;

/// README's "Testing a workflow" example, extracted by build.rs: it runs with the rest,
/// so it cannot drift from the API.
mod readme_example {
    include!(concat!(env!("OUT_DIR"), "/readme_testing_example.rs"));
}
