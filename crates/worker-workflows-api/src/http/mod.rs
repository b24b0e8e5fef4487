//! The HTTP API: a request's path from route to response. `routes` picks the handler,
//! `auth` checks the token, `api` holds the bodies and the one error type with its
//! mapping to status codes, `poll` the synchronous-poll pattern, `sse` the history's media
//! types and event framing, `restart` the check that refuses a restart once compensations
//! have started, `openapi` the served document, `schema` the params and event schemas a
//! Worker gives (for the dashboard's forms), `listing` the status filter and counts of
//! the instance listing, `dashboard` the page's files. Those are pure and
//! host-tested; `handler` is the wasm edge that serves them with the Workflow bindings.
//!
//! May depend on: `triggers` (jobs go through the queue's checks), and the
//! `worker_workflows` library.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod listing;
pub mod openapi;
pub mod poll;
pub mod restart;
pub mod routes;
pub mod schema;
pub mod sse;

#[cfg(target_arch = "wasm32")]
pub mod handler;

use worker_workflows::registry::Registry;

/// The HTTP API over a Worker's registered workflows. Make it a `static` and hand each
/// request to its `handle` method (wasm32):
///
/// ```ignore
/// static API: Api = Api::new(&WORKFLOWS);
///
/// #[event(fetch)]
/// async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
///     API.handle(req, env).await
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Api {
    /// The workflows it serves.
    pub workflows: &'static Registry,
    /// The Worker's own additions to the OpenAPI document (see [`openapi::document`]).
    pub openapi_extras: &'static [&'static str],
    /// The JSON Schemas of its workflows' params and events (see [`schema`]).
    pub schemas: &'static [schema::WorkflowSchemas],
}

impl Api {
    /// The API over these workflows.
    pub const fn new(workflows: &'static Registry) -> Self {
        Api { workflows, openapi_extras: &[], schemas: &[] }
    }

    /// With the Worker's own routes documented in the served OpenAPI document: JSON
    /// objects with `paths`, `components` and `tags` to merge into it.
    pub const fn with_openapi(mut self, extras: &'static [&'static str]) -> Self {
        self.openapi_extras = extras;
        self
    }

    /// With the JSON Schemas of its workflows' params and event payloads, which
    /// `GET /workflows/{name}` serves (the dashboard builds its forms from them). Check
    /// them against the types in a test with [`schema::problems`].
    pub const fn with_schemas(mut self, schemas: &'static [schema::WorkflowSchemas]) -> Self {
        self.schemas = schemas;
        self
    }

    /// The schemas given for a workflow.
    pub fn schemas_of(&self, workflow: &str) -> Option<&'static schema::WorkflowSchemas> {
        self.schemas.iter().find(|s| s.workflow == workflow)
    }

    /// Whether a path is one of the API's (so a Worker with routes of its own can send
    /// the rest elsewhere): `/health`, `/openapi.json`, `/workflows…` and `/jobs…`.
    pub fn serves_path(path: &str) -> bool {
        ["/health", "/openapi.json", "/workflows", "/jobs"]
            .iter()
            .any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }

    /// The OpenAPI document this API serves, for a deployment whose vars `var` reads (a
    /// development probe's name is listed only where it is enabled).
    pub fn openapi_document(&self, var: impl Fn(&str) -> Option<String>) -> String {
        let names: Vec<&str> = self.workflows.workflows().iter().filter(|w| w.is_enabled(&var)).map(|w| w.name).collect();
        openapi::document(&names, self.openapi_extras)
    }
}

#[cfg(test)]
mod tests {
    use super::Api;

    #[test]
    fn the_api_serves_its_own_paths_only() {
        for path in ["/health", "/openapi.json", "/workflows", "/workflows/x/instances", "/jobs", "/jobs/raw"] {
            assert!(Api::serves_path(path), "{path}");
        }
        for path in ["/", "/api/workflow/start", "/workflowsx", "/jobsite", "/dashboard", "/healthz"] {
            assert!(!Api::serves_path(path), "{path}");
        }
    }

    #[test]
    fn the_document_lists_only_enabled_workflows() {
        let api = Api::new(&crate::test_registry::WORKFLOWS);
        let served =
            |var: &dyn Fn(&str) -> Option<String>| -> serde_json::Value { serde_json::from_str(&api.openapi_document(var)).unwrap() };
        let names = |doc: serde_json::Value| doc["components"]["parameters"]["WorkflowName"]["schema"]["enum"].clone();
        assert_eq!(names(served(&|_| None)), serde_json::json!(["order-processing"]));
        assert_eq!(names(served(&|_| Some("true".into()))), serde_json::json!(["order-processing", "probe"]));
    }
}
