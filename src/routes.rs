//! Which handler a request goes to: method and path in, a typed route out.
//! Unknown paths are `NotFound`; known paths with the wrong method are
//! `MethodNotAllowed` with the methods that path does allow.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    CreateInstance { workflow: String },
    GetInstance { workflow: String, id: String },
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
}

fn router() -> matchit::Router<PathKind> {
    let mut r = matchit::Router::new();
    // Inserting fixed, distinct patterns cannot fail.
    let _ = r.insert("/health", PathKind::Health);
    let _ = r.insert("/workflows/:workflow/instances", PathKind::Instances);
    let _ = r.insert("/workflows/:workflow/instances/:id", PathKind::Instance);
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
