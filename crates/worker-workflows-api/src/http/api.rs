//! The HTTP API's request and response bodies, and its one error type with the
//! single mapping from error to status code and JSON body.

use crate::triggers::jobs::{Job, Poison};
use serde::{Deserialize, Serialize};
use worker_workflows::core::callback::DeliveryOutcome;
use worker_workflows::core::engine_error::BindingError;
use worker_workflows::core::events::EventProblem;
use worker_workflows::core::instance_batch::{codes, EntryError};
use worker_workflows::core::instance_options::{RestartFrom, Retention};
use worker_workflows::core::platform_limits::PlatformLimit;
use worker_workflows::core::status::{InstanceError, InstanceState};
use worker_workflows::core::validate::{serde_message, NameError};

/// The largest request body accepted (the engine's limit on params and event payloads).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `POST /workflows/{name}/instances`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateRequest {
    /// The instance id; absent, a UUID.
    #[serde(default)]
    pub id: Option<String>,
    /// The params; absent reads as JSON `null`.
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    /// Webhook-callback pattern: POSTed to when the instance ends.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// `{successRetention?, errorRetention?}`, read by [`parse_retention`].
    #[serde(default)]
    pub retention: Option<serde_json::Value>,
}

/// Reads a request's `retention` (absent: none); a bad one is 400 `invalid_retention`.
pub fn parse_retention(value: Option<&serde_json::Value>) -> Result<Retention, ApiError> {
    value.map_or(Ok(Retention::new()), |v| Retention::from_json(v).map_err(|e| ApiError::InvalidRetention(e.to_string())))
}

/// One item of `POST /workflows/{name}/instances/batch`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    /// The instance id; absent, a UUID.
    #[serde(default)]
    pub id: Option<String>,
    /// The params; absent reads as JSON `null`.
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    /// `{successRetention?, errorRetention?}`, read by [`parse_retention`].
    #[serde(default)]
    pub retention: Option<serde_json::Value>,
}

/// A batch entry that passed every check here, ready for the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedItem {
    /// The instance id, checked; `None` gets a UUID.
    pub id: Option<String>,
    /// The params, checked against the workflow's typed params.
    pub params: serde_json::Value,
    /// The retention, checked.
    pub retention: Retention,
}

/// Reads a create batch's body: an array of 1 to 100 entries, each read on its own by
/// [`check_batch_item`] so that one bad entry never hides the others' results.
pub fn parse_batch(body: &[u8]) -> Result<Vec<serde_json::Value>, ApiError> {
    let items: Vec<serde_json::Value> = match parse_body::<serde_json::Value>(body)? {
        serde_json::Value::Array(items) => items,
        _ => return Err(ApiError::InvalidJson("a batch is a JSON array of {id?, params?, retention?}".into())),
    };
    BindingError::check_batch_size(items.len()).map_err(|e| ApiError::InvalidBatch(e.to_string()))?;
    Ok(items)
}

/// Checks one entry of a create batch: its shape, id (valid, not reserved, not in
/// `seen`, the ids of the entries before it), params (`check_params`: the workflow's
/// typed params) and retention. A failure comes with the entry's id, if it gave one.
pub fn check_batch_item(
    raw: serde_json::Value,
    check_params: impl Fn(&serde_json::Value) -> Result<(), String>,
    seen: &mut std::collections::HashSet<String>,
) -> Result<CheckedItem, (Option<String>, EntryError)> {
    // The id as given, for the answer (cut short: it may be anything).
    let given_id = raw.get("id").and_then(serde_json::Value::as_str).map(|id| id.chars().take(128).collect::<String>());
    let fail = |code: &str, message: String| (given_id.clone(), EntryError::new(code, message));
    let item: BatchItem = match raw {
        serde_json::Value::Object(_) => {
            serde_json::from_value(raw).map_err(|e| fail(codes::INVALID_JSON, serde_message(&e.to_string())))?
        }
        _ => return Err(fail(codes::INVALID_JSON, "an entry is an object {id?, params?, retention?}".into())),
    };
    if let Some(id) = &item.id {
        worker_workflows::core::validate::instance_id(id).map_err(|e| fail(codes::INVALID_ID, e.to_string()))?;
        if seen.contains(id) {
            return Err(fail(codes::INVALID_ID, format!("instance id {id:?} appears twice in the batch")));
        }
    }
    let params = item.params.unwrap_or(serde_json::Value::Null);
    check_params(&params).map_err(|e| fail(codes::INVALID_PARAMS, format!("params do not match the workflow's params: {e}")))?;
    let retention = parse_retention(item.retention.as_ref()).map_err(|e| fail(codes::INVALID_RETENTION, e.to_string()))?;
    if let Some(id) = &item.id {
        seen.insert(id.clone());
    }
    Ok(CheckedItem { id: item.id, params, retention })
}

/// `POST /workflows/{name}/instances/delete`: `{"ids": [...]}`, 1 to 100.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteBatchRequest {
    /// The instance ids, 1 to 100.
    pub ids: Vec<String>,
}

impl DeleteBatchRequest {
    /// Reads and checks the body: a malformed one is `invalid_json`, a list of fewer than 1
    /// or more than 100 ids `invalid_batch`.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let request: DeleteBatchRequest = parse_object_body(body)?;
        BindingError::check_batch_size(request.ids.len()).map_err(|e| ApiError::InvalidBatch(e.to_string()))?;
        Ok(request)
    }
}

/// `POST …/instances/{id}/restart`: no body (or `{}`) restarts from the start.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartRequest {
    /// The step to restart from; `None` restarts from the start.
    #[serde(default)]
    pub from: Option<RestartFrom>,
}

impl RestartRequest {
    /// Reads and checks the body: a malformed one is `invalid_json`, saying what is wrong.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let request: RestartRequest = parse_object_body(body)?;
        if let Some(from) = &request.from {
            from.check().map_err(|e| ApiError::InvalidJson(format!("from: {e}")))?;
        }
        Ok(request)
    }
}

/// `POST …/instances/{id}/terminate`: `{"rollback": true}` runs the steps' rollbacks first;
/// `{"children": true}` terminates the child workflows it started too (and theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminateRequest {
    /// Whether to run the steps' rollbacks before the instance ends.
    #[serde(default)]
    pub rollback: bool,
    /// Whether to terminate, after the instance, every child workflow it started (and
    /// theirs) that has not ended.
    #[serde(default)]
    pub children: bool,
}

impl TerminateRequest {
    /// Reads the body: a malformed one is `invalid_json`.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        parse_object_body(body)
    }
}

/// The answer to a create (`201`, or `200` when the id existed).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedResponse {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The instance's state when answered.
    pub status: InstanceState,
    /// Where to read its status: [`status_url`].
    pub status_url: String,
    /// False when an instance with this id already existed and was returned instead.
    pub created: bool,
}

/// `GET /workflows/{name}/instances/{id}`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceResponse {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The instance's state.
    pub status: InstanceState,
    /// The output, once complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The error, once errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<InstanceError>,
    /// How its callback's delivery ended, for an instance created with a `callbackUrl`
    /// whose run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<DeliveryOutcome>,
    /// The instance that started it as a child workflow and awaits it, if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<worker_workflows::core::child::InstanceRef>,
}

/// The path of an instance's status: `/workflows/{workflow}/instances/{id}`.
pub fn status_url(workflow: &str, id: &str) -> String {
    format!("/workflows/{workflow}/instances/{id}")
}

/// Every way a request can fail, each with its status and stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON of the expected shape, or a field of it is malformed.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// An instance id that is malformed or reserved.
    #[error("{0}")]
    InvalidId(String),
    /// An event type that is malformed.
    #[error("{0}")]
    InvalidEventType(String),
    /// An event type the workflow does not wait for (not in its `Workflow::EVENTS`).
    #[error("{0}")]
    UnknownEventType(String),
    /// An event payload that does not read as the type the workflow declares for it.
    #[error("{0}")]
    InvalidEventPayload(String),
    /// A `callbackUrl` the URL policy refuses.
    #[error("{0}")]
    InvalidCallbackUrl(String),
    /// A `?wait=` that is not a duration of at most five minutes.
    #[error("{0}")]
    InvalidWait(String),
    /// A query parameter out of bounds (`limit`, `cursor`).
    #[error("{0}")]
    InvalidQuery(String),
    /// A retention that was refused.
    #[error("{0}")]
    InvalidRetention(String),
    /// A batch (of creates or deletes) that is empty or holds more than 100 entries.
    #[error("{0}")]
    InvalidBatch(String),
    /// An `Accept` header that allows none of the media types a route serves.
    #[error("{0}")]
    InvalidAccept(String),
    /// A `Last-Event-ID` header that is not an event id.
    #[error("{0}")]
    InvalidLastEventId(String),
    /// No bearer token, or a wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// Params that do not read as the workflow's params, naming the field.
    #[error("params do not match the workflow's params: {0}")]
    InvalidParams(String),
    /// No route for the path.
    #[error("no route for this path")]
    NotFound,
    /// No workflow of that name is registered.
    #[error("no workflow named {}", worker_workflows::core::validate::excerpt(.0))]
    WorkflowNotFound(String),
    /// The workflow has no instance of that id.
    #[error("no instance {id:?} of workflow {workflow:?}")]
    InstanceNotFound {
        /// The workflow's name.
        workflow: String,
        /// The instance id.
        id: String,
    },
    /// The instance's state does not allow the operation.
    #[error("{0}")]
    InvalidState(String),
    /// `restart` from a step the instance's history does not hold.
    #[error("{0}")]
    StepNotFound(String),
    /// The route does not take the method.
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed {
        /// The methods the route takes (the `Allow` header).
        allow: &'static str,
    },
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    /// A job larger than the queue accepts.
    #[error("{0}")]
    JobTooLarge(String),
    /// Too many requests: from this client (the demo routes' limiter) or to the engine or
    /// queue. `retry_after` is in seconds.
    #[error("{message}")]
    RateLimited {
        /// What is rate limited, for the client.
        message: String,
        /// Seconds to wait before retrying (`Retry-After`).
        retry_after: u32,
    },
    /// The engine or queue is briefly unavailable; the request may be retried.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable, for the client.
        message: String,
        /// Seconds to wait before retrying (`Retry-After`).
        retry_after: u32,
    },
    /// Callbacks cannot be signed on this deployment (WEBHOOK_SECRET missing or unusable).
    #[error("callbacks are not available: {0}")]
    CallbacksUnavailable(String),
    /// The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status the error answers with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidId(_)
            | ApiError::InvalidEventType(_)
            | ApiError::UnknownEventType(_)
            | ApiError::InvalidEventPayload(_)
            | ApiError::InvalidParams(_)
            | ApiError::InvalidCallbackUrl(_)
            | ApiError::InvalidWait(_)
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidRetention(_)
            | ApiError::InvalidBatch(_)
            | ApiError::InvalidAccept(_)
            | ApiError::InvalidLastEventId(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::NotFound | ApiError::WorkflowNotFound(_) | ApiError::InstanceNotFound { .. } => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::InvalidState(_) | ApiError::StepNotFound(_) => 409,
            ApiError::PayloadTooLarge | ApiError::JobTooLarge(_) => 413,
            ApiError::RateLimited { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable { .. } | ApiError::CallbacksUnavailable(_) => 503,
        }
    }

    /// The stable code the error body carries (`invalid_json`, …).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidId(_) => "invalid_id",
            ApiError::InvalidEventType(_) => "invalid_event_type",
            ApiError::UnknownEventType(_) => "unknown_event_type",
            ApiError::InvalidEventPayload(_) => "invalid_event_payload",
            ApiError::InvalidCallbackUrl(_) => "invalid_callback_url",
            ApiError::InvalidWait(_) => "invalid_wait",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::InvalidRetention(_) => "invalid_retention",
            ApiError::InvalidBatch(_) => "invalid_batch",
            ApiError::InvalidAccept(_) => "invalid_accept",
            ApiError::InvalidLastEventId(_) => "invalid_last_event_id",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::InvalidParams(_) => "invalid_params",
            ApiError::NotFound => "not_found",
            ApiError::WorkflowNotFound(_) => "workflow_not_found",
            ApiError::InstanceNotFound { .. } => "instance_not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::InvalidState(_) => "invalid_state",
            ApiError::StepNotFound(_) => "step_not_found",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::JobTooLarge(_) => "job_too_large",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "temporarily_unavailable",
            ApiError::CallbacksUnavailable(_) => "callbacks_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Headers the answer carries besides its body: `Allow` on a 405, `WWW-Authenticate`
    /// on a 401, `Retry-After` (seconds) on a 429 or a 503 that may pass.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::MethodNotAllowed { allow } => vec![("allow", allow.to_string())],
            ApiError::Unauthorized(_) => vec![("www-authenticate", crate::http::auth::CHALLENGE.to_string())],
            ApiError::RateLimited { retry_after, .. } | ApiError::Unavailable { retry_after, .. } => {
                vec![("retry-after", retry_after.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// A platform error (the engine's or the queue's, by its message) as the answer it
    /// deserves: a rate limit is a 429, an overload a 503 and an oversized message a 413,
    /// each with its own code; anything else is an internal error (logged, not shown).
    pub fn from_platform(what: &str, message: &str) -> Self {
        match worker_workflows::core::platform_limits::classify(message) {
            Some(PlatformLimit::RateLimited) => ApiError::RateLimited {
                message: format!("{what} is rate limited; retry shortly"),
                retry_after: worker_workflows::core::platform_limits::RATE_LIMIT_RETRY_AFTER_SECONDS,
            },
            Some(PlatformLimit::Unavailable) => ApiError::Unavailable {
                message: format!("{what} is briefly unavailable; retry shortly"),
                retry_after: worker_workflows::core::platform_limits::UNAVAILABLE_RETRY_AFTER_SECONDS,
            },
            Some(PlatformLimit::TooLarge) => ApiError::JobTooLarge(format!(
                "a job is larger than the queue accepts ({} bytes per message, {} per request); keep large data in R2 and pass its key",
                crate::triggers::jobs::MAX_MESSAGE_BYTES,
                crate::triggers::jobs::MAX_BATCH_BYTES
            )),
            None => ApiError::Internal(format!("{what}: {message}")),
        }
    }

    /// `{"error": {"code", "message"}}`
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}})
    }
}

impl ApiError {
    /// One error of each kind, for the check that every code is documented.
    #[cfg(test)]
    pub(crate) fn one_of_each() -> Vec<ApiError> {
        let all = vec![
            ApiError::InvalidJson(String::new()),
            ApiError::InvalidId(String::new()),
            ApiError::InvalidEventType(String::new()),
            ApiError::UnknownEventType(String::new()),
            ApiError::InvalidEventPayload(String::new()),
            ApiError::InvalidCallbackUrl(String::new()),
            ApiError::InvalidWait(String::new()),
            ApiError::InvalidQuery(String::new()),
            ApiError::InvalidRetention(String::new()),
            ApiError::InvalidBatch(String::new()),
            ApiError::InvalidAccept(String::new()),
            ApiError::InvalidLastEventId(String::new()),
            ApiError::Unauthorized(String::new()),
            ApiError::InvalidParams(String::new()),
            ApiError::NotFound,
            ApiError::WorkflowNotFound(String::new()),
            ApiError::InstanceNotFound { workflow: String::new(), id: String::new() },
            ApiError::InvalidState(String::new()),
            ApiError::StepNotFound(String::new()),
            ApiError::MethodNotAllowed { allow: "GET" },
            ApiError::PayloadTooLarge,
            ApiError::JobTooLarge(String::new()),
            ApiError::RateLimited { message: String::new(), retry_after: 1 },
            ApiError::Unavailable { message: String::new(), retry_after: 1 },
            ApiError::CallbacksUnavailable(String::new()),
            ApiError::Internal(String::new()),
        ];
        // A new variant stops this from compiling until it is matched here (and listed above).
        for error in &all {
            match error {
                ApiError::InvalidJson(_)
                | ApiError::InvalidId(_)
                | ApiError::InvalidEventType(_)
                | ApiError::UnknownEventType(_)
                | ApiError::InvalidEventPayload(_)
                | ApiError::InvalidCallbackUrl(_)
                | ApiError::InvalidWait(_)
                | ApiError::InvalidQuery(_)
                | ApiError::InvalidRetention(_)
                | ApiError::InvalidBatch(_)
                | ApiError::InvalidAccept(_)
                | ApiError::InvalidLastEventId(_)
                | ApiError::Unauthorized(_)
                | ApiError::InvalidParams(_)
                | ApiError::NotFound
                | ApiError::WorkflowNotFound(_)
                | ApiError::InstanceNotFound { .. }
                | ApiError::InvalidState(_)
                | ApiError::StepNotFound(_)
                | ApiError::MethodNotAllowed { .. }
                | ApiError::PayloadTooLarge
                | ApiError::JobTooLarge(_)
                | ApiError::RateLimited { .. }
                | ApiError::Unavailable { .. }
                | ApiError::CallbacksUnavailable(_)
                | ApiError::Internal(_) => {}
            }
        }
        all
    }

    /// What an event the workflow does not take answers.
    pub fn from_event_problem(problem: EventProblem) -> Self {
        match problem {
            EventProblem::UnknownType { .. } => ApiError::UnknownEventType(problem.to_string()),
            EventProblem::InvalidPayload { .. } => ApiError::InvalidEventPayload(problem.to_string()),
        }
    }

    /// The one mapping from a binding error to what the API answers.
    pub fn from_binding(workflow: &str, error: BindingError) -> Self {
        match error {
            BindingError::NotFound(id) => ApiError::InstanceNotFound { workflow: workflow.to_string(), id },
            BindingError::InvalidName(e @ (NameError::InstanceId(_) | NameError::ReservedInstanceId(_))) => {
                ApiError::InvalidId(e.to_string())
            }
            BindingError::InvalidName(NameError::EventType(t)) => ApiError::InvalidEventType(NameError::EventType(t).to_string()),
            BindingError::InvalidName(other) => ApiError::InvalidJson(other.to_string()),
            BindingError::InvalidState { message, .. } => ApiError::InvalidState(message),
            BindingError::StepNotFound { message, .. } => ApiError::StepNotFound(message),
            BindingError::InvalidRestartFrom(e) => ApiError::InvalidJson(format!("from: {e}")),
            BindingError::BatchSize(_) => ApiError::InvalidBatch(error.to_string()),
            BindingError::InvalidRetention(e) => ApiError::InvalidRetention(e.to_string()),
            BindingError::UndeclaredEvent(message) => ApiError::UnknownEventType(message),
            BindingError::Engine { ref message, .. } if worker_workflows::core::platform_limits::classify(message).is_some() => {
                ApiError::from_platform("the workflow engine", message)
            }
            BindingError::AlreadyExists(_)
            | BindingError::MissingBinding(_)
            | BindingError::Serialization(_)
            | BindingError::Engine { .. } => ApiError::Internal(error.to_string()),
        }
    }
}

/// Adds a chunk of a request body being streamed in, refusing it as soon as the body
/// would pass [`MAX_BODY_BYTES`], so an endless chunked upload is never read whole.
pub fn append_chunk(body: &mut Vec<u8>, chunk: &[u8]) -> Result<(), ApiError> {
    if body.len().saturating_add(chunk.len()) > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// Whether a declared `Content-Length` already says the body is too large.
pub fn declared_too_large(content_length: Option<&str>) -> bool {
    content_length.and_then(|v| v.trim().parse::<u64>().ok()).is_some_and(|n| n > MAX_BODY_BYTES as u64)
}

/// The rate-limit key of a client: its address as Cloudflare saw it (`CF-Connecting-IP`),
/// for a Worker's public routes limited per client with the Rate Limiting binding.
/// An IPv4 client is keyed by its address (`ip:203.0.113.7`); an IPv6 client by its /64
/// (`ip6:2001:db8:1:2::/64`), the smallest block a network hands one subscriber, so one
/// client cannot get a fresh bucket per address of its prefix. An IPv4-mapped IPv6
/// address (`::ffff:203.0.113.7`) is the IPv4 client it carries. Text that is not an
/// address (Cloudflare always sends one) is keyed as given, cut to 64 characters.
pub fn client_key(connecting_ip: Option<&str>) -> String {
    use std::net::{IpAddr, Ipv6Addr};
    let Some(text) = connecting_ip.map(str::trim).filter(|ip| !ip.is_empty()) else {
        return "ip:unknown".to_string();
    };
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => format!("ip:{v4}"),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip6:{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Err(_) => format!("ip:{}", text.chars().take(64).collect::<String>()),
    }
}

/// Reads a JSON body, mapping every failure to a 400 or 413 that says what is wrong.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(serde_message(&e.to_string())))
}

/// Reads a JSON body that must be an object (serde would also read a struct from an
/// array, so `[true]` would pass as `{"rollback": true}`).
pub fn parse_object_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    match parse_body::<serde_json::Value>(body)? {
        value @ serde_json::Value::Object(_) => {
            serde_json::from_value(value).map_err(|e| ApiError::InvalidJson(serde_message(&e.to_string())))
        }
        _ => Err(ApiError::InvalidJson("expected a JSON object".into())),
    }
}

/// Reads params as a workflow's typed params, naming the field that does not fit
/// (`items[0].quantity: invalid type: string "two", expected u32`; a longer string is
/// not repeated: `validate::serde_message`).
pub fn check_params<P: serde::de::DeserializeOwned>(params: &serde_json::Value) -> Result<P, ApiError> {
    Ok(worker_workflows::core::validate::typed_params(params)?)
}

impl From<worker_workflows::core::validate::ParamsMismatch> for ApiError {
    fn from(e: worker_workflows::core::validate::ParamsMismatch) -> Self {
        ApiError::InvalidParams(e.0)
    }
}

/// `POST /jobs` takes one job or an array of up to 100.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum JobsRequest {
    /// A single job.
    One(Job),
    /// A list of jobs.
    Many(Vec<Job>),
}

/// The most jobs one `POST /jobs` may hold.
pub const MAX_JOBS_PER_REQUEST: usize = 100;

impl JobsRequest {
    /// The jobs, or `invalid_json` when there are none or more than [`MAX_JOBS_PER_REQUEST`].
    pub fn into_jobs(self) -> Result<Vec<Job>, ApiError> {
        let jobs = match self {
            JobsRequest::One(job) => vec![job],
            JobsRequest::Many(jobs) => jobs,
        };
        if jobs.is_empty() || jobs.len() > MAX_JOBS_PER_REQUEST {
            return Err(ApiError::InvalidJson(format!("send 1 to {MAX_JOBS_PER_REQUEST} jobs, not {}", jobs.len())));
        }
        Ok(jobs)
    }
}

impl From<crate::http::sse::HistoryRequestError> for ApiError {
    fn from(e: crate::http::sse::HistoryRequestError) -> Self {
        use crate::http::sse::HistoryRequestError::*;
        match e {
            Unacceptable(_) => ApiError::InvalidAccept(e.to_string()),
            LastEventId(_) => ApiError::InvalidLastEventId(e.to_string()),
            UnknownFormat(_) => ApiError::InvalidQuery(e.to_string()),
        }
    }
}

impl From<Poison> for ApiError {
    fn from(p: Poison) -> Self {
        match p {
            Poison::NotAJob(m) => ApiError::InvalidJson(m),
            Poison::UnknownWorkflow(name) => ApiError::WorkflowNotFound(name),
            Poison::InvalidId(m) => ApiError::InvalidId(m),
            Poison::InvalidParams(m) => ApiError::InvalidParams(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_request_bodies() {
        let r: CreateRequest = parse_body(br#"{"id":"o-1","params":{"a":1}}"#).unwrap();
        assert_eq!(r.id.as_deref(), Some("o-1"));
        assert_eq!(r.params, Some(json!({"a": 1})));
        let empty: CreateRequest = parse_body(b"{}").unwrap();
        assert_eq!(empty, CreateRequest { id: None, params: None, callback_url: None, retention: None });
        let cb: CreateRequest = parse_body(br#"{"callbackUrl":"https://h.example.com"}"#).unwrap();
        assert_eq!(cb.callback_url.as_deref(), Some("https://h.example.com"));
        let typo = parse_body::<CreateRequest>(br#"{"param":{}}"#).unwrap_err();
        assert_eq!(typo.code(), "invalid_json");
        assert!(typo.to_string().contains("param"), "{typo}");
        assert_eq!(parse_body::<CreateRequest>(b"{not json").unwrap_err().status(), 400);
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(parse_body::<CreateRequest>(&big).unwrap_err(), ApiError::PayloadTooLarge);
    }

    #[test]
    fn errors_map_to_status_code_and_body() {
        let e = ApiError::InstanceNotFound { workflow: "w".into(), id: "x".into() };
        assert_eq!((e.status(), e.code()), (404, "instance_not_found"));
        assert_eq!(e.body()["error"]["code"], "instance_not_found");
        let internal = ApiError::Internal("js stack with secrets".into());
        assert_eq!(internal.status(), 500);
        assert!(!internal.body().to_string().contains("secrets"));
        assert_eq!(ApiError::MethodNotAllowed { allow: "GET" }.status(), 405);
        assert_eq!(ApiError::PayloadTooLarge.status(), 413);
    }

    #[test]
    fn events_a_workflow_does_not_take_are_400_with_their_own_codes() {
        let unknown = ApiError::from_event_problem(EventProblem::UnknownType { event_type: "x".into(), expected: "\"y\"".into() });
        assert_eq!((unknown.status(), unknown.code()), (400, "unknown_event_type"));
        assert!(unknown.to_string().contains("\"x\""), "{unknown}");
        let invalid = ApiError::from_event_problem(EventProblem::InvalidPayload { event_type: "y".into(), detail: "approved: bad".into() });
        assert_eq!((invalid.status(), invalid.code()), (400, "invalid_event_payload"));
        assert!(invalid.to_string().ends_with("approved: bad"), "{invalid}");
    }

    #[test]
    fn responses_use_the_documented_field_names() {
        let created = CreatedResponse {
            id: "o-1".into(),
            workflow: "order-processing".into(),
            status: InstanceState::Queued,
            status_url: status_url("order-processing", "o-1"),
            created: true,
        };
        assert_eq!(
            serde_json::to_value(created).unwrap(),
            json!({"id": "o-1", "workflow": "order-processing", "status": "queued",
                   "statusUrl": "/workflows/order-processing/instances/o-1", "created": true})
        );
        let running = InstanceResponse {
            id: "o-1".into(),
            workflow: "w".into(),
            status: InstanceState::Running,
            output: None,
            error: None,
            callback: None,
            parent: None,
        };
        assert_eq!(serde_json::to_value(&running).unwrap(), json!({"id": "o-1", "workflow": "w", "status": "running"}));
        let child = InstanceResponse { parent: Some(worker_workflows::core::child::InstanceRef::new("data-pipeline", "p-1")), ..running };
        assert_eq!(serde_json::to_value(child).unwrap()["parent"], json!({"workflow": "data-pipeline", "id": "p-1"}));
    }

    #[test]
    fn params_are_checked_against_the_typed_params_naming_the_field() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        #[serde(rename_all = "camelCase")]
        struct Item {
            product_id: String,
            quantity: u32,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        #[serde(rename_all = "camelCase")]
        struct Params {
            order_id: String,
            items: Vec<Item>,
        }
        assert!(check_params::<Params>(&json!({"orderId": "o", "items": [{"productId": "p", "quantity": 1}]})).is_ok());
        let err = check_params::<Params>(&json!({"orderId": "o", "items": [{"productId": "p", "quantity": "two"}]})).unwrap_err();
        assert_eq!(err.code(), "invalid_params");
        assert!(err.to_string().contains("items[0].quantity"), "{err}");
        let missing = check_params::<Params>(&json!({"items": []})).unwrap_err();
        assert!(missing.to_string().contains("orderId"), "{missing}");
        assert!(check_params::<Params>(&serde_json::Value::Null).is_err());
    }

    #[test]
    fn binding_errors_map_to_api_errors() {
        let e = ApiError::from_binding("w", BindingError::NotFound("x".into()));
        assert_eq!(e, ApiError::InstanceNotFound { workflow: "w".into(), id: "x".into() });
        let e = ApiError::from_binding("w", BindingError::InvalidState { id: "x".into(), message: "cannot".into() });
        assert_eq!((e.status(), e.code()), (409, "invalid_state"));
        let e = ApiError::from_binding("w", BindingError::InvalidName(NameError::InstanceId("-".into())));
        assert_eq!(e.code(), "invalid_id");
        let e = ApiError::from_binding("w", BindingError::Engine { name: "TypeError".into(), message: "secret detail".into() });
        assert_eq!(e.status(), 500);
        assert!(!e.body().to_string().contains("secret"));
    }

    #[test]
    fn restart_and_terminate_bodies() {
        assert_eq!(RestartRequest::parse(b"{}").unwrap(), RestartRequest { from: None });
        let from = RestartRequest::parse(br#"{"from": {"name": "create-shipment"}}"#).unwrap();
        assert_eq!(from.from, Some(RestartFrom::step("create-shipment")));
        let sleep = RestartRequest::parse(br#"{"from": {"name": "nap", "count": 2, "type": "sleep"}}"#).unwrap();
        assert_eq!(sleep.from, Some(RestartFrom::sleep("nap").count(2)));
        for bad in [
            &br#"{"from": {"name": "a", "type": "loop"}}"#[..],
            br#"{"from": {"name": 7}}"#,
            br#"{"from": {"name": "a", "count": 0}}"#,
            br#"{"from": {"name": ""}}"#,
            br#"{"form": {"name": "a"}}"#,
            br#"{"from": "a"}"#,
            br#"[{"name": "a"}]"#,
            b"restart please",
        ] {
            let e = RestartRequest::parse(bad).unwrap_err();
            assert_eq!((e.status(), e.code()), (400, "invalid_json"), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(TerminateRequest::parse(b"{}").unwrap(), TerminateRequest { rollback: false, children: false });
        assert_eq!(TerminateRequest::parse(br#"{"rollback": true}"#).unwrap(), TerminateRequest { rollback: true, children: false });
        assert_eq!(TerminateRequest::parse(br#"{"children": true}"#).unwrap(), TerminateRequest { rollback: false, children: true });
        for bad in
            [&br#"{"rollback": "yes"}"#[..], br#"{"rolback": true}"#, br#"{"rollback": null}"#, br#"{"children": 1}"#, b"[]", b"[true]"]
        {
            assert_eq!(TerminateRequest::parse(bad).unwrap_err().code(), "invalid_json", "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn an_unknown_restart_step_is_its_own_409() {
        let e = ApiError::from_binding(
            "w",
            BindingError::StepNotFound {
                id: "i".into(),
                message: r#"(instance.cannot_restart) Step "x" not found in execution history"#.into(),
            },
        );
        assert_eq!((e.status(), e.code()), (409, "step_not_found"));
        assert!(e.to_string().contains(r#""x""#), "{e}");
    }

    #[test]
    fn batches_are_checked_entry_by_entry() {
        assert_eq!(parse_batch(b"[]").unwrap_err().code(), "invalid_batch");
        let too_many = serde_json::to_vec(&vec![json!({}); 101]).unwrap();
        assert_eq!(parse_batch(&too_many).unwrap_err().code(), "invalid_batch");
        assert_eq!(parse_batch(br#"{"id": "a"}"#).unwrap_err().code(), "invalid_json");
        let items = parse_batch(
            br#"[{"id": "a", "params": {"n": 1}}, {"id": "-a"}, {"id": "a"}, {"params": "bad"}, {"id": "r", "retention": {"errorRetention": "5 fortnights"}},
                 {"id": "b", "param": {}}, 7, {"id": "delete"}, {"retention": {"successRetention": "1 day"}}]"#,
        )
        .unwrap();
        let params_ok = |p: &serde_json::Value| if p.is_string() { Err("expected an object".to_string()) } else { Ok(()) };
        let mut seen = std::collections::HashSet::new();
        let results: Vec<_> = items.into_iter().map(|raw| check_batch_item(raw, params_ok, &mut seen)).collect();
        let code = |i: usize| results[i].as_ref().err().map(|(_, e)| e.code.as_str());
        assert_eq!(results[0].as_ref().unwrap().id.as_deref(), Some("a"));
        assert_eq!(code(1), Some("invalid_id"));
        assert_eq!(results[2].as_ref().unwrap_err().1.message, "instance id \"a\" appears twice in the batch");
        assert_eq!(code(3), Some("invalid_params"));
        assert_eq!(code(4), Some("invalid_retention"));
        assert_eq!(results[4].as_ref().unwrap_err().0.as_deref(), Some("r"), "a failed entry names its id");
        assert_eq!(code(5), Some("invalid_json"));
        assert_eq!(code(6), Some("invalid_json"));
        assert_eq!(code(7), Some("invalid_id"), "a reserved id");
        let last = results[8].as_ref().unwrap();
        assert_eq!((last.id.as_deref(), last.retention.to_engine().unwrap().success_retention), (None, Some(86_400_000)));
    }

    #[test]
    fn delete_batches() {
        assert_eq!(DeleteBatchRequest::parse(br#"{"ids": ["a", "b"]}"#).unwrap().ids, ["a", "b"]);
        assert_eq!(DeleteBatchRequest::parse(br#"{"ids": []}"#).unwrap_err().code(), "invalid_batch");
        let many = serde_json::to_vec(&json!({"ids": vec!["x"; 101]})).unwrap();
        assert_eq!(DeleteBatchRequest::parse(&many).unwrap_err().code(), "invalid_batch");
        for bad in [&br#"["a"]"#[..], br#"{"ids": "a"}"#, br#"{"id": ["a"]}"#, br#"{"ids": [1]}"#] {
            assert_eq!(DeleteBatchRequest::parse(bad).unwrap_err().code(), "invalid_json", "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn retention_in_a_create_request() {
        let r: CreateRequest = parse_body(br#"{"retention": {"successRetention": "2 days"}}"#).unwrap();
        assert_eq!(parse_retention(r.retention.as_ref()).unwrap().to_engine().unwrap().success_retention, Some(2 * 86_400_000));
        assert_eq!(parse_retention(None).unwrap(), Retention::new());
        let bad = parse_retention(Some(&json!({"successRetention": "5 fortnights"}))).unwrap_err();
        assert_eq!((bad.status(), bad.code()), (400, "invalid_retention"));
        assert!(bad.to_string().contains("fortnights"), "{bad}");
        let e = ApiError::from_binding("w", BindingError::BatchSize(101));
        assert_eq!((e.status(), e.code()), (400, "invalid_batch"));
    }

    #[test]
    fn requests_of_one_or_many() {
        let one: JobsRequest = serde_json::from_value(json!({"workflow": "w", "params": {}})).unwrap();
        assert_eq!(one.into_jobs().unwrap().len(), 1);
        let many: JobsRequest = serde_json::from_value(json!([{"workflow": "w"}, {"workflow": "v", "id": "x"}])).unwrap();
        assert_eq!(many.into_jobs().unwrap().len(), 2);
        let none: JobsRequest = serde_json::from_value(json!([])).unwrap();
        assert!(none.into_jobs().is_err());
        let too_many: JobsRequest = serde_json::from_value(serde_json::Value::Array(vec![json!({"workflow": "w"}); 101])).unwrap();
        assert!(too_many.into_jobs().is_err());
    }

    #[test]
    fn history_request_errors_are_400_with_their_code() {
        let e = ApiError::from(crate::http::sse::negotiate(Some("text/html")).unwrap_err());
        assert_eq!((e.status(), e.code()), (400, "invalid_accept"));
        let e = ApiError::from(crate::http::sse::last_event_id(Some("x")).unwrap_err());
        assert_eq!((e.status(), e.code()), (400, "invalid_last_event_id"));
        let e = ApiError::from(crate::http::sse::choose(Some("yaml"), None).unwrap_err());
        assert_eq!((e.status(), e.code()), (400, "invalid_query"));
        assert!(e.to_string().contains("format must be \"replay\""), "{e}");
    }

    #[test]
    fn poison_jobs_map_to_api_errors() {
        assert_eq!(ApiError::from(Poison::UnknownWorkflow("x".into())).code(), "workflow_not_found");
    }

    #[test]
    fn answers_carry_their_headers() {
        assert_eq!(ApiError::Unauthorized("x".into()).headers(), [("www-authenticate", "Bearer".to_string())]);
        assert_eq!(ApiError::MethodNotAllowed { allow: "GET" }.headers(), [("allow", "GET".to_string())]);
        let limited = ApiError::RateLimited { message: "slow down".into(), retry_after: 60 };
        assert_eq!((limited.status(), limited.code()), (429, "rate_limited"));
        assert_eq!(limited.headers(), [("retry-after", "60".to_string())]);
        assert!(ApiError::NotFound.headers().is_empty());
    }

    #[test]
    fn platform_limits_are_not_internal_errors() {
        let e = ApiError::from_platform("the job queue", "Queue sendBatch failed: Payload Too Large");
        assert_eq!((e.status(), e.code()), (413, "job_too_large"));
        let e = ApiError::from_platform("the job queue", "Queue send failed: Too Many Requests");
        assert_eq!((e.status(), e.code()), (429, "rate_limited"));
        assert_eq!(e.headers(), [("retry-after", "1".to_string())]);
        let e = ApiError::from_binding("w", BindingError::Engine { name: "Error".into(), message: "Network connection lost.".into() });
        assert_eq!((e.status(), e.code()), (503, "temporarily_unavailable"));
        assert!(!e.headers().is_empty());
        let e = ApiError::from_binding(
            "w",
            BindingError::Engine { name: "Error".into(), message: "(rate_limited) too many instance creations".into() },
        );
        assert_eq!(e.status(), 429);
        let e = ApiError::from_platform("the job queue", "TypeError: something else");
        assert_eq!((e.status(), e.code()), (500, "internal"));
        assert_eq!(ApiError::CallbacksUnavailable("no".into()).status(), 503);
    }

    #[test]
    fn bodies_are_capped_while_streaming() {
        let mut body = Vec::new();
        assert!(append_chunk(&mut body, &vec![b'x'; MAX_BODY_BYTES - 1]).is_ok());
        assert!(append_chunk(&mut body, b"y").is_ok());
        assert_eq!(body.len(), MAX_BODY_BYTES);
        assert_eq!(append_chunk(&mut body, b"z"), Err(ApiError::PayloadTooLarge));
        assert_eq!(body.len(), MAX_BODY_BYTES, "the refused chunk is not kept");
        assert!(declared_too_large(Some("1048577")));
        assert!(!declared_too_large(Some("1048576")));
        assert!(!declared_too_large(Some("nonsense")));
        assert!(!declared_too_large(None));
        // A length that does not even fit a u64 is left to the streaming cap.
        assert!(!declared_too_large(Some("99999999999999999999999")));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let key = client_key(Some("2001:db8:1:2:3:4:5:6"));
        assert_eq!(key, "ip6:2001:db8:1:2::/64");
        // Every address of the /64, however it is written, is the same client.
        for same in ["2001:db8:1:2::1", "2001:0db8:0001:0002:ffff:ffff:ffff:ffff", "2001:DB8:1:2::", " [2001:db8:1:2::9] "] {
            assert_eq!(client_key(Some(same)), key, "{same}");
        }
        // The next /64, the one before and another network are other clients.
        for other in ["2001:db8:1:3::1", "2001:db8:1:1::1", "2001:db9:1:2::1"] {
            assert_ne!(client_key(Some(other)), key, "{other}");
        }
        assert_eq!(client_key(Some("::1")), "ip6:::/64");
        assert_eq!(client_key(Some("fe80::1:2")), "ip6:fe80::/64");
        // An IPv4-mapped address is its IPv4 client, keyed by the whole address.
        assert_eq!(client_key(Some("::ffff:203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(client_key(Some("::ffff:cb00:7107")), "ip:203.0.113.7");
        assert_ne!(client_key(Some("::ffff:203.0.113.8")), client_key(Some("::ffff:203.0.113.7")));
    }

    #[test]
    fn clients_are_keyed_by_address() {
        assert_eq!(client_key(Some("203.0.113.7")), "ip:203.0.113.7");
        assert_ne!(client_key(Some("203.0.113.8")), client_key(Some("203.0.113.7")));
        assert_eq!(client_key(Some(" ")), "ip:unknown");
        assert_eq!(client_key(None), "ip:unknown");
        assert_eq!(client_key(Some(&"a".repeat(500))).len(), 3 + 64);
        // A multi-byte character across the 64th byte is kept whole, never split (a panic).
        assert_eq!(client_key(Some(&format!("{}é", "a".repeat(63)))), format!("ip:{}é", "a".repeat(63)));
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    proptest! {
        /// Two IPv6 addresses share a key exactly when they share their first 64 bits,
        /// whatever their last 64 bits and however they are written.
        #[test]
        fn ipv6_keys_are_their_64(a in any::<u128>(), b in any::<u128>(), low in any::<u64>()) {
            let (a6, b6) = (Ipv6Addr::from(a), Ipv6Addr::from(b));
            prop_assume!(a6.to_ipv4_mapped().is_none() && b6.to_ipv4_mapped().is_none());
            let same_64 = Ipv6Addr::from((a & !u128::from(u64::MAX)) | u128::from(low));
            prop_assume!(same_64.to_ipv4_mapped().is_none());
            prop_assert_eq!(client_key(Some(&a6.to_string())), client_key(Some(&same_64.to_string())));
            let full = format!("{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}:{:04x}",
                a6.segments()[0], a6.segments()[1], a6.segments()[2], a6.segments()[3],
                a6.segments()[4], a6.segments()[5], a6.segments()[6], a6.segments()[7]);
            prop_assert_eq!(client_key(Some(&full)), client_key(Some(&a6.to_string())));
            prop_assert_eq!(client_key(Some(&a6.to_string())) == client_key(Some(&b6.to_string())), a >> 64 == b >> 64);
        }

        /// IPv4 clients are keyed by the whole address, written plainly or IPv4-mapped.
        #[test]
        fn ipv4_keys_are_the_address(a in any::<u32>(), b in any::<u32>()) {
            let (a4, b4) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
            prop_assert_eq!(client_key(Some(&a4.to_string())), format!("ip:{a4}"));
            prop_assert_eq!(client_key(Some(&a4.to_ipv6_mapped().to_string())), format!("ip:{a4}"));
            prop_assert_eq!(client_key(Some(&a4.to_string())) == client_key(Some(&b4.to_string())), a == b);
        }

        /// Every engine refusal of a caller's mistake (a missing instance, a state that does
        /// not allow the operation, an unknown restart step, a refused id), however the
        /// engine words around it, answers 4xx with its code, never a 500.
        #[test]
        fn caller_mistakes_are_4xx(
            (words, code) in prop_oneof![
                Just(("(instance.not_found) Instance does not exist", "instance_not_found")),
                Just(("instance.not_found", "instance_not_found")),
                Just(("(instance.cannot_terminate) Cannot terminate instance since its on a finite state", "invalid_state")),
                Just((r#"(instance.cannot_resume) Cannot resume instance with status "running""#, "invalid_state")),
                Just(("(instance.cannot_pause) Cannot pause instance", "invalid_state")),
                Just(("Cannot send event: instance has finished", "invalid_state")),
                Just(("instance is already running", "invalid_state")),
                Just(("instance is not paused", "invalid_state")),
                Just((r#"(instance.cannot_restart) Step "x" not found in execution history"#, "step_not_found")),
                Just(("(instance.invalid_id) Instance ID is invalid", "invalid_id")),
            ],
            name in prop_oneof![Just("WorkflowError"), Just("Error"), Just("TypeError")],
            before in "[a-zA-Z: ]{0,20}",
            after in "[a-zA-Z0-9 .]{0,20}",
        ) {
            let message = format!("{before}{words}{after}");
            let e = ApiError::from_binding("w", BindingError::from_engine("i-1", name, &message));
            prop_assert!((400..500).contains(&e.status()), "{} -> {} {}", message, e.status(), e.code());
            prop_assert_eq!(e.code(), code, "{}", message);
        }

        /// A message the engine writes for no caller's mistake stays an internal error,
        /// and its words never reach the caller.
        #[test]
        fn other_engine_errors_stay_internal(message in "[a-z0-9]{1,12} [a-z0-9]{1,12}") {
            prop_assume!(worker_workflows::core::engine_error::classify_engine_error(&message)
                == worker_workflows::core::engine_error::EngineErrorKind::Other);
            prop_assume!(worker_workflows::core::platform_limits::classify(&message).is_none());
            let e = ApiError::from_binding("w", BindingError::from_engine("i-1", "Error", &message));
            prop_assert_eq!((e.status(), e.code()), (500, "internal"));
            prop_assert!(!e.body().to_string().contains(&message));
        }

        /// Any header text gets a bounded key, never a panic.
        #[test]
        fn any_text_gets_a_bounded_key(text in ".{0,200}") {
            prop_assert!(client_key(Some(&text)).chars().count() <= 3 + 64);
        }
    }
}
