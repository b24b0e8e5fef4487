//! The seed demo's public routes, served beside the HTTP API: `POST /api/workflow/start`
//! `{email, name, avatarUrl?}` starts user-onboarding and answers `{workflowId}`; `GET
//! /api/workflow/status/{id}` answers its status only (never the output or an error's
//! text). They need no token, so they exist only where `ENABLE_DEMO_ROUTES` is `"true"`
//! and each client (by `CF-Connecting-IP`) gets what its rate limiter allows
//! (`DEMO_START_LIMITER`, `DEMO_STATUS_LIMITER`). `handler` is the wasm edge.
//!
//! May depend on: `workflows` (the onboarding workflow it starts) and the libraries.

#[cfg(target_arch = "wasm32")]
pub mod handler;

/// The routes' part of the OpenAPI document, merged into the API's.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The workflow behind the demo's routes.
pub const WORKFLOW: &str = "user-onboarding";

/// The rate limiters' period: what a limited client is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u32 = 60;

/// A demo route: which one, for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoRoute {
    /// `POST /api/workflow/start`
    Start,
    /// `GET /api/workflow/status/{id}`
    Status { id: String },
}

/// Whether a path is under the demo's `/api/workflow/`.
pub fn serves_path(path: &str) -> bool {
    path == "/api/workflow" || path.starts_with("/api/workflow/")
}

/// The demo route of a method and path: `Ok(None)` for a path that is none of them (404),
/// `Err(allow)` for a known path with another method (405 with `Allow`).
pub fn route(method: &str, path: &str) -> Result<Option<DemoRoute>, &'static str> {
    let path = path.trim_end_matches('/');
    if path == "/api/workflow/start" {
        return if method == "POST" { Ok(Some(DemoRoute::Start)) } else { Err("POST") };
    }
    match path.strip_prefix("/api/workflow/status/") {
        Some(id) if !id.is_empty() && !id.contains('/') => {
            if method == "GET" {
                Ok(Some(DemoRoute::Status { id: id.to_string() }))
            } else {
                Err("GET")
            }
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_routes() {
        assert_eq!(route("POST", "/api/workflow/start"), Ok(Some(DemoRoute::Start)));
        assert_eq!(route("GET", "/api/workflow/start"), Err("POST"));
        assert_eq!(route("GET", "/api/workflow/status/x-1"), Ok(Some(DemoRoute::Status { id: "x-1".into() })));
        assert_eq!(route("POST", "/api/workflow/status/x-1"), Err("GET"));
        for other in ["/api/workflow", "/api/workflow/status/", "/api/workflow/status/a/b", "/api/workflow/nope"] {
            assert_eq!(route("GET", other), Ok(None), "{other}");
        }
        assert!(serves_path("/api/workflow/start") && serves_path("/api/workflow") && !serves_path("/api/workflowz"));
        assert!(!serves_path("/workflows"));
    }

    #[test]
    fn the_openapi_part_documents_both_routes_publicly() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for (path, method) in [("/api/workflow/start", "post"), ("/api/workflow/status/{id}", "get")] {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path}");
            assert!(op.get("security").is_none_or(|s| s.as_array().is_some_and(|a| a.is_empty())), "{method} {path} is public");
        }
    }
}
