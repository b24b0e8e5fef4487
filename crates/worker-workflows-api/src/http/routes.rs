//! Which handler a request goes to: method and path in, a typed route out.
//! Unknown paths are `NotFound`; known paths with the wrong method are
//! `MethodNotAllowed` with the methods that path does allow. `ROUTES` lists every
//! route once, in OpenAPI's path syntax, so the OpenAPI document can be checked against it.

/// A request's handler, with the path's parameters (as given; the handlers check them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /health`
    Health,
    /// `GET /openapi.json`
    OpenApi,
    /// `GET /workflows`
    ListWorkflows,
    /// `GET /workflows/{name}`: the workflow, its schemas and its instances' counts by status.
    GetWorkflow {
        /// The workflow's name (`{name}`).
        workflow: String,
    },
    /// `GET /workflows/{name}/instances`: a page of instances, newest first.
    ListInstances {
        /// The workflow's name (`{name}`).
        workflow: String,
    },
    /// `POST /workflows/{name}/instances`
    CreateInstance {
        /// The workflow's name (`{name}`).
        workflow: String,
    },
    /// `POST /workflows/{name}/instances/batch`
    CreateBatch {
        /// The workflow's name (`{name}`).
        workflow: String,
    },
    /// `POST …/instances/delete` with `{ids}`.
    DeleteBatch {
        /// The workflow's name (`{name}`).
        workflow: String,
    },
    /// `GET /workflows/{name}/instances/{id}`
    GetInstance {
        /// The workflow's name (`{name}`).
        workflow: String,
        /// The instance id (`{id}`).
        id: String,
    },
    /// `DELETE /workflows/{name}/instances/{id}`
    DeleteInstance {
        /// The workflow's name (`{name}`).
        workflow: String,
        /// The instance id (`{id}`).
        id: String,
    },
    /// `GET …/instances/{id}/history`: JSON steps, or an SSE stream of events.
    History {
        /// The workflow's name (`{name}`).
        workflow: String,
        /// The instance id (`{id}`).
        id: String,
    },
    /// `POST …/instances/{id}/{pause|resume|terminate|restart}`
    Control {
        /// The workflow's name (`{name}`).
        workflow: String,
        /// The instance id (`{id}`).
        id: String,
        /// What to do.
        action: ControlAction,
    },
    /// `POST …/instances/{id}/events/{type}`
    SendEvent {
        /// The workflow's name (`{name}`).
        workflow: String,
        /// The instance id (`{id}`).
        id: String,
        /// The event type (`{type}`).
        event_type: String,
    },
    /// `POST /jobs`: one job or up to 100, queued on `JOBS`.
    SubmitJobs,
    /// `POST /jobs/raw`: one message body as given (when `ENABLE_RAW_JOBS` is "true").
    SubmitRawJob,
    /// `GET /jobs/dead-letters`
    ListDeadLetters,
    /// `GET /jobs/retrying`: jobs whose delivery failed and that the queue is retrying.
    ListRetrying,
}

impl Route {
    /// Routes under `/workflows` and `/jobs` need the API token; health and the OpenAPI
    /// document are public.
    pub fn requires_auth(&self) -> bool {
        !matches!(self, Route::Health | Route::OpenApi)
    }
}

/// What `POST …/instances/{id}/{action}` does to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    /// Pauses it.
    Pause,
    /// Resumes it.
    Resume,
    /// Terminates it (with `{"rollback": true}`, after its steps' rollbacks).
    Terminate,
    /// Restarts it (from the start, or from the step in `{"from": …}`).
    Restart,
}

impl ControlAction {
    /// Every action.
    pub const ALL: [ControlAction; 4] = [ControlAction::Pause, ControlAction::Resume, ControlAction::Terminate, ControlAction::Restart];

    /// The action as it is written in the path.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlAction::Pause => "pause",
            ControlAction::Resume => "resume",
            ControlAction::Terminate => "terminate",
            ControlAction::Restart => "restart",
        }
    }
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No route has this path: a 404.
    NotFound,
    /// The path's route does not take the method: a 405.
    MethodNotAllowed {
        /// The methods the path takes, comma-separated (the `Allow` header).
        allow: &'static str,
    },
}

/// Every route: method and path template (OpenAPI syntax).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/workflows"),
    ("GET", "/workflows/{name}"),
    ("GET", "/workflows/{name}/instances"),
    ("POST", "/workflows/{name}/instances"),
    ("POST", "/workflows/{name}/instances/batch"),
    ("POST", "/workflows/{name}/instances/delete"),
    ("GET", "/workflows/{name}/instances/{id}"),
    ("DELETE", "/workflows/{name}/instances/{id}"),
    ("GET", "/workflows/{name}/instances/{id}/history"),
    ("POST", "/workflows/{name}/instances/{id}/pause"),
    ("POST", "/workflows/{name}/instances/{id}/resume"),
    ("POST", "/workflows/{name}/instances/{id}/terminate"),
    ("POST", "/workflows/{name}/instances/{id}/restart"),
    ("POST", "/workflows/{name}/instances/{id}/events/{type}"),
    ("POST", "/jobs"),
    ("POST", "/jobs/raw"),
    ("GET", "/jobs/dead-letters"),
    ("GET", "/jobs/retrying"),
];

#[derive(Clone, Copy)]
enum PathKind {
    Health,
    OpenApi,
    Workflows,
    Workflow,
    Instances,
    Batch,
    DeleteBatch,
    Instance,
    History,
    InstanceControl,
    InstanceEvent,
    Jobs,
    RawJob,
    DeadLetters,
    Retrying,
}

fn router() -> matchit::Router<PathKind> {
    let mut r = matchit::Router::new();
    // Fixed, distinct patterns: inserting them cannot fail.
    for (pattern, kind) in [
        ("/health", PathKind::Health),
        ("/openapi.json", PathKind::OpenApi),
        ("/workflows", PathKind::Workflows),
        ("/workflows/:name", PathKind::Workflow),
        ("/workflows/:name/instances", PathKind::Instances),
        ("/workflows/:name/instances/batch", PathKind::Batch),
        ("/workflows/:name/instances/delete", PathKind::DeleteBatch),
        ("/workflows/:name/instances/:id", PathKind::Instance),
        ("/workflows/:name/instances/:id/history", PathKind::History),
        ("/workflows/:name/instances/:id/:action", PathKind::InstanceControl),
        ("/workflows/:name/instances/:id/events/:type", PathKind::InstanceEvent),
        ("/jobs", PathKind::Jobs),
        ("/jobs/raw", PathKind::RawJob),
        ("/jobs/dead-letters", PathKind::DeadLetters),
        ("/jobs/retrying", PathKind::Retrying),
    ] {
        let _ = r.insert(pattern, kind);
    }
    r
}

/// The route for a request's method and path (without its query).
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let router = router();
    let path = if path.len() > 1 { path.trim_end_matches('/') } else { path };
    let found = router.at(path).map_err(|_| RouteError::NotFound)?;
    let param = |name: &str| found.params.get(name).unwrap_or_default().to_string();
    let only = |allowed: &'static str, route: Route| {
        if method == allowed {
            Ok(route)
        } else {
            Err(RouteError::MethodNotAllowed { allow: allowed })
        }
    };
    match *found.value {
        PathKind::Health => only("GET", Route::Health),
        PathKind::OpenApi => only("GET", Route::OpenApi),
        PathKind::Workflows => only("GET", Route::ListWorkflows),
        PathKind::Workflow => only("GET", Route::GetWorkflow { workflow: param("name") }),
        PathKind::Instances => match method {
            "GET" => Ok(Route::ListInstances { workflow: param("name") }),
            "POST" => Ok(Route::CreateInstance { workflow: param("name") }),
            _ => Err(RouteError::MethodNotAllowed { allow: "GET, POST" }),
        },
        PathKind::Batch => only("POST", Route::CreateBatch { workflow: param("name") }),
        PathKind::DeleteBatch => only("POST", Route::DeleteBatch { workflow: param("name") }),
        PathKind::Instance => match method {
            "GET" => Ok(Route::GetInstance { workflow: param("name"), id: param("id") }),
            "DELETE" => Ok(Route::DeleteInstance { workflow: param("name"), id: param("id") }),
            _ => Err(RouteError::MethodNotAllowed { allow: "GET, DELETE" }),
        },
        PathKind::History => only("GET", Route::History { workflow: param("name"), id: param("id") }),
        PathKind::InstanceControl => {
            let action = param("action");
            let action = ControlAction::ALL.into_iter().find(|a| a.as_str() == action).ok_or(RouteError::NotFound)?;
            only("POST", Route::Control { workflow: param("name"), id: param("id"), action })
        }
        PathKind::InstanceEvent => only("POST", Route::SendEvent { workflow: param("name"), id: param("id"), event_type: param("type") }),
        PathKind::Jobs => only("POST", Route::SubmitJobs),
        PathKind::RawJob => only("POST", Route::SubmitRawJob),
        PathKind::DeadLetters => only("GET", Route::ListDeadLetters),
        PathKind::Retrying => only("GET", Route::ListRetrying),
    }
}

/// The query parameters of a serialised URL, decoded (`+` and `%xx`); a repeated
/// name keeps its last value. The fragment is not part of the query.
pub fn query_pairs(url: &str) -> std::collections::HashMap<String, String> {
    let Some((_, rest)) = url.split_once('?') else {
        return Default::default();
    };
    let query = rest.split_once('#').map_or(rest, |(query, _)| query);
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concrete path for a template: `{name}` → `w`, `{id}` → `i`, `{type}` → `t`.
    fn sample(template: &str) -> String {
        template.replace("{name}", "w").replace("{id}", "i").replace("{type}", "t")
    }

    #[test]
    fn every_listed_route_resolves_and_other_methods_are_405() {
        for (method, template) in ROUTES {
            let path = sample(template);
            assert!(route(method, &path).is_ok(), "{method} {path}");
            let allowed: Vec<&str> = ROUTES.iter().filter(|(_, t)| t == template).map(|(m, _)| *m).collect();
            for other in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
                if !allowed.contains(&other) {
                    assert!(matches!(route(other, &path), Err(RouteError::MethodNotAllowed { .. })), "{other} {path}");
                }
            }
        }
    }

    #[test]
    fn instance_routes() {
        assert_eq!(
            route("POST", "/workflows/order-processing/instances"),
            Ok(Route::CreateInstance { workflow: "order-processing".into() })
        );
        assert_eq!(route("GET", "/workflows/w/instances/"), Ok(Route::ListInstances { workflow: "w".into() }));
        assert_eq!(
            route("GET", "/workflows/order-processing/instances/abc-1"),
            Ok(Route::GetInstance { workflow: "order-processing".into(), id: "abc-1".into() })
        );
        assert_eq!(route("POST", "/workflows/w/instances/batch"), Ok(Route::CreateBatch { workflow: "w".into() }));
        assert_eq!(route("POST", "/workflows/w/instances/delete"), Ok(Route::DeleteBatch { workflow: "w".into() }));
        assert_eq!(route("DELETE", "/workflows/w/instances/i"), Ok(Route::DeleteInstance { workflow: "w".into(), id: "i".into() }));
        assert_eq!(
            route("POST", "/workflows/w/instances/i/terminate"),
            Ok(Route::Control { workflow: "w".into(), id: "i".into(), action: ControlAction::Terminate })
        );
        assert_eq!(
            route("POST", "/workflows/w/instances/i/events/approval-response"),
            Ok(Route::SendEvent { workflow: "w".into(), id: "i".into(), event_type: "approval-response".into() })
        );
        assert_eq!(route("GET", "/workflows/w/instances/i/history"), Ok(Route::History { workflow: "w".into(), id: "i".into() }));
        assert_eq!(route("POST", "/workflows/w/instances/i/history"), Err(RouteError::MethodNotAllowed { allow: "GET" }));
    }

    #[test]
    fn wrong_method_names_the_allowed_ones() {
        assert_eq!(route("DELETE", "/workflows/w/instances"), Err(RouteError::MethodNotAllowed { allow: "GET, POST" }));
        assert_eq!(route("PUT", "/workflows/x/instances/y"), Err(RouteError::MethodNotAllowed { allow: "GET, DELETE" }));
        assert_eq!(route("GET", "/workflows/w/instances/i/pause"), Err(RouteError::MethodNotAllowed { allow: "POST" }));
    }

    /// A route beside `…/instances/{id}` shadows the instance of that id: no instance may have it.
    #[test]
    fn no_instance_id_is_shadowed_by_a_route() {
        for (_, template) in ROUTES {
            let Some(rest) = template.strip_prefix("/workflows/{name}/instances/") else { continue };
            let segment = rest.split('/').next().unwrap_or_default();
            if !segment.starts_with('{') {
                assert!(
                    worker_workflows::core::validate::instance_id(segment).is_err(),
                    "{template} shadows instance id {segment:?}: add it to validate::RESERVED_INSTANCE_IDS"
                );
            }
        }
    }

    #[test]
    fn unknown_paths() {
        assert_eq!(route("GET", "/workflows/x"), Ok(Route::GetWorkflow { workflow: "x".into() }));
        for p in ["/", "/workflows/x/y", "/workflows/x/instances/y/explode", "/workflows/x/instances/y/z/w", "/nope", "/api/workflow"] {
            assert_eq!(route("GET", p), Err(RouteError::NotFound), "{p}");
        }
    }

    #[test]
    fn auth_covers_the_workflows_api_only() {
        assert!(route("GET", "/workflows").unwrap().requires_auth());
        assert!(route("POST", "/workflows/w/instances/i/pause").unwrap().requires_auth());
        assert!(!route("GET", "/health").unwrap().requires_auth());
        assert!(!route("GET", "/openapi.json").unwrap().requires_auth());
        assert_eq!(route("POST", "/api/workflow/start"), Err(RouteError::NotFound), "the catalogue's demo routes are not the library's");
        assert!(route("POST", "/jobs").unwrap().requires_auth());
        assert!(route("GET", "/jobs/dead-letters").unwrap().requires_auth());
        assert!(route("GET", "/jobs/retrying").unwrap().requires_auth());
    }

    #[test]
    fn query_pairs_decode_and_ignore_the_fragment() {
        let q = query_pairs("https://w.example.com/workflows/a/instances?wait=5%20seconds&x=a+b&x=c#wait=no");
        assert_eq!(q.get("wait").map(String::as_str), Some("5 seconds"));
        assert_eq!(q.get("x").map(String::as_str), Some("c"));
        assert_eq!(q.len(), 2);
        assert!(query_pairs("https://w.example.com/").is_empty());
        assert!(query_pairs("https://w.example.com/?").is_empty());
    }
}
