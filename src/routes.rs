//! Which handler a request goes to: method and path in, a typed route out.
//! Unknown paths are `NotFound`; known paths with the wrong method are
//! `MethodNotAllowed` with the methods that path does allow.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    CreateInstance { workflow: String },
    GetInstance { workflow: String, id: String },
    /// `POST …/instances/{id}/{pause|resume|terminate|restart}`
    Control { workflow: String, id: String, action: ControlAction },
    /// `POST …/instances/{id}/events/{type}`
    SendEvent { workflow: String, id: String, event_type: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    Pause,
    Resume,
    Terminate,
    Restart,
}

impl ControlAction {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pause" => ControlAction::Pause,
            "resume" => ControlAction::Resume,
            "terminate" => ControlAction::Terminate,
            "restart" => ControlAction::Restart,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed { allow: &'static str },
}

#[derive(Clone, Copy)]
enum PathKind {
    Health,
    Instances,
    Instance,
    InstanceControl,
    InstanceEvent,
}

fn router() -> matchit::Router<PathKind> {
    let mut r = matchit::Router::new();
    // Inserting fixed, distinct patterns cannot fail.
    let _ = r.insert("/health", PathKind::Health);
    let _ = r.insert("/workflows/:workflow/instances", PathKind::Instances);
    let _ = r.insert("/workflows/:workflow/instances/:id", PathKind::Instance);
    let _ = r.insert("/workflows/:workflow/instances/:id/:action", PathKind::InstanceControl);
    let _ = r.insert("/workflows/:workflow/instances/:id/events/:type", PathKind::InstanceEvent);
    r
}

pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let router = router();
    let found = router.at(path).map_err(|_| RouteError::NotFound)?;
    let param = |name: &str| found.params.get(name).unwrap_or_default().to_string();
    match (*found.value, method) {
        (PathKind::Health, "GET") => Ok(Route::Health),
        (PathKind::Health, _) => Err(RouteError::MethodNotAllowed { allow: "GET" }),
        (PathKind::Instances, "POST") => Ok(Route::CreateInstance { workflow: param("workflow") }),
        (PathKind::Instances, _) => Err(RouteError::MethodNotAllowed { allow: "POST" }),
        (PathKind::Instance, "GET") => Ok(Route::GetInstance { workflow: param("workflow"), id: param("id") }),
        (PathKind::Instance, _) => Err(RouteError::MethodNotAllowed { allow: "GET" }),
        (PathKind::InstanceControl, method) => {
            let action = ControlAction::parse(&param("action")).ok_or(RouteError::NotFound)?;
            if method != "POST" {
                return Err(RouteError::MethodNotAllowed { allow: "POST" });
            }
            Ok(Route::Control { workflow: param("workflow"), id: param("id"), action })
        }
        (PathKind::InstanceEvent, "POST") => {
            Ok(Route::SendEvent { workflow: param("workflow"), id: param("id"), event_type: param("type") })
        }
        (PathKind::InstanceEvent, _) => Err(RouteError::MethodNotAllowed { allow: "POST" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_routes() {
        assert_eq!(
            route("POST", "/workflows/order-processing/instances"),
            Ok(Route::CreateInstance { workflow: "order-processing".into() })
        );
        assert_eq!(
            route("GET", "/workflows/order-processing/instances/abc-1"),
            Ok(Route::GetInstance { workflow: "order-processing".into(), id: "abc-1".into() })
        );
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(
            route("POST", "/workflows/w/instances/i/terminate"),
            Ok(Route::Control { workflow: "w".into(), id: "i".into(), action: ControlAction::Terminate })
        );
        assert_eq!(
            route("POST", "/workflows/w/instances/i/events/approval-response"),
            Ok(Route::SendEvent { workflow: "w".into(), id: "i".into(), event_type: "approval-response".into() })
        );
        assert_eq!(route("POST", "/workflows/w/instances/i/explode"), Err(RouteError::NotFound));
        assert_eq!(route("GET", "/workflows/w/instances/i/pause"), Err(RouteError::MethodNotAllowed { allow: "POST" }));
    }

    #[test]
    fn wrong_method_names_the_allowed_ones() {
        assert_eq!(
            route("GET", "/workflows/order-processing/instances"),
            Err(RouteError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route("DELETE", "/workflows/x/instances/y"),
            Err(RouteError::MethodNotAllowed { allow: "GET" })
        );
    }

    #[test]
    fn unknown_paths() {
        for p in ["/", "/workflows", "/workflows/x", "/workflows/x/instances/y/z", "/nope"] {
            assert_eq!(route("GET", p), Err(RouteError::NotFound), "{p}");
        }
    }
}
