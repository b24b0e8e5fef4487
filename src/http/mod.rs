//! The HTTP API: a request's path from route to response. `routes` picks the handler,
//! `auth` checks the token, `api` holds the bodies and the one error type with its
//! mapping to status codes, `poll` the synchronous-poll pattern, `sse` the history's media
//! types and event framing, `openapi` the served document. Those are pure and host-tested; `handler` is the wasm edge that serves
//! them with the Workflow bindings.
//!
//! May depend on: everything else (it is the outermost layer).

pub mod api;
pub mod auth;
pub mod openapi;
pub mod poll;
pub mod routes;
pub mod sse;

#[cfg(target_arch = "wasm32")]
pub(crate) mod handler;
