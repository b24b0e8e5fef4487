//! The fetch handler: routes requests (`routes`), answers in JSON (`api`), and
//! logs one structured line per request.

use crate::api::{self, ApiError, CreateRequest, CreatedResponse, InstanceResponse, MAX_BODY_BYTES};
use crate::bridge::WorkflowBinding;
use crate::engine_error::BindingError;
use crate::registry::{self, WorkflowSpec};
use crate::routes::{self, ControlAction, Route, RouteError};
use crate::validate;
use crate::workflows;
use serde::Serialize;
use worker::{console_log, Env, Headers, Request, Response};

pub async fn handle(mut req: Request, env: Env) -> worker::Result<Response> {
    let started = js_sys::Date::now();
    let method = req.method().to_string();
    let path = req.path();
    let outcome = match routes::route(&method, &path) {
        Ok(route) => serve(route, &mut req, &env).await,
        Err(RouteError::NotFound) => Err(ApiError::NotFound),
        Err(RouteError::MethodNotAllowed { allow }) => Err(ApiError::MethodNotAllowed { allow }),
    };
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            if let ApiError::Internal(detail) = &error {
                console_log!("{}", serde_json::json!({"level": "error", "method": method, "path": path, "error": detail}));
            }
            error_response(&error)?
        }
    };
    console_log!(
        "{}",
        serde_json::json!({"type": "request", "method": method, "path": path, "status": response.status_code(), "ms": js_sys::Date::now() - started})
    );
    Ok(response)
}

fn json<T: Serialize>(status: u16, body: &T) -> Result<Response, ApiError> {
    Response::from_json(body).map(|r| r.with_status(status)).map_err(|e| ApiError::Internal(e.to_string()))
}

fn error_response(error: &ApiError) -> worker::Result<Response> {
    let mut response = Response::from_json(&error.body())?.with_status(error.status());
    if let ApiError::MethodNotAllowed { allow } = error {
        response.headers_mut().set("allow", allow)?;
    }
    Ok(response)
}

async fn serve(route: Route, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    match route {
        Route::Health => json(200, &serde_json::json!({"ok": true, "version": env!("CARGO_PKG_VERSION")})),
        Route::CreateInstance { workflow } => create_instance(&workflow, req, env).await,
        Route::GetInstance { workflow, id } => get_instance(&workflow, &id, env).await,
        Route::Control { workflow, id, action } => control_instance(&workflow, &id, action, env).await,
        Route::SendEvent { workflow, id, event_type } => send_event(&workflow, &id, &event_type, req, env).await,
    }
}

fn workflow_spec(name: &str) -> Result<&'static WorkflowSpec, ApiError> {
    registry::workflow_by_name(name).ok_or_else(|| ApiError::WorkflowNotFound(name.to_string()))
}

fn binding(spec: &WorkflowSpec, env: &Env) -> Result<WorkflowBinding, ApiError> {
    WorkflowBinding::from_env(env, spec.binding).map_err(|e| ApiError::from_binding(spec.name, e))
}

/// The body, refused over 1 MiB (by Content-Length before reading when it is given).
async fn read_body(req: &mut Request) -> Result<Vec<u8>, ApiError> {
    let declared = req.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let body = req.bytes().await.map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(body)
}

async fn create_instance(workflow: &str, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    let body = read_body(req).await?;
    let request: CreateRequest = if body.iter().all(u8::is_ascii_whitespace) { api::parse_body(b"{}")? } else { api::parse_body(&body)? };
    if let Some(id) = &request.id {
        validate::instance_id(id).map_err(|e| ApiError::InvalidId(e.to_string()))?;
    }
    let params = request.params.unwrap_or(serde_json::Value::Null);
    workflows::check_workflow_params(spec.class_name, &params)?;
    let binding = binding(spec, env)?;
    let (instance, created) = match binding.create(request.id.as_deref(), &params).await {
        Ok(instance) => (instance, true),
        // The engine refuses a second create of an id atomically: answer with the instance that won.
        Err(BindingError::AlreadyExists(id)) => (binding.get(&id).await.map_err(|e| ApiError::from_binding(spec.name, e))?, false),
        Err(e) => return Err(ApiError::from_binding(spec.name, e)),
    };
    let status = instance.status().await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    let body = CreatedResponse {
        id: instance.id().to_string(),
        workflow: spec.name.to_string(),
        status: status.status,
        status_url: api::status_url(spec.name, instance.id()),
        created,
    };
    let mut response = json(if created { 201 } else { 200 }, &body)?;
    let headers: &mut Headers = response.headers_mut();
    headers.set("location", &body.status_url).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(response)
}

async fn get_instance(workflow: &str, id: &str, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    validate::instance_id(id).map_err(|e| ApiError::InvalidId(e.to_string()))?;
    let binding = binding(spec, env)?;
    let instance = binding.get(id).await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    let status = instance.status().await.map_err(|e| ApiError::from_binding(spec.name, e))?;
    json(
        200,
        &InstanceResponse {
            id: id.to_string(),
            workflow: spec.name.to_string(),
            status: status.status,
            output: status.output.filter(|_| status.status == crate::status::InstanceState::Complete),
            error: status.error,
        },
    )
}

async fn control_instance(workflow: &str, id: &str, action: ControlAction, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    validate::instance_id(id).map_err(|e| ApiError::InvalidId(e.to_string()))?;
    let fail = |e| ApiError::from_binding(spec.name, e);
    let instance = binding(spec, env)?.get(id).await.map_err(fail)?;
    match action {
        ControlAction::Pause => instance.pause().await,
        ControlAction::Resume => instance.resume().await,
        ControlAction::Terminate => instance.terminate().await,
        ControlAction::Restart => instance.restart().await,
    }
    .map_err(fail)?;
    let status = instance.status().await.map_err(fail)?;
    json(200, &serde_json::json!({"id": id, "status": status.status}))
}

async fn send_event(workflow: &str, id: &str, event_type: &str, req: &mut Request, env: &Env) -> Result<Response, ApiError> {
    let spec = workflow_spec(workflow)?;
    validate::instance_id(id).map_err(|e| ApiError::InvalidId(e.to_string()))?;
    validate::event_type(event_type).map_err(|e| ApiError::InvalidEventType(e.to_string()))?;
    let body = read_body(req).await?;
    let payload: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) { serde_json::Value::Null } else { api::parse_body(&body)? };
    let fail = |e| ApiError::from_binding(spec.name, e);
    let instance = binding(spec, env)?.get(id).await.map_err(fail)?;
    instance.send_event(event_type, &payload).await.map_err(fail)?;
    json(202, &serde_json::json!({"id": id, "type": event_type}))
}
