//! The Worker's real environment behind [`Env`](super::Env): vars and secrets, D1, KV,
//! R2, `fetch`, other workflows (claimed creates through the instance index), the clock
//! and `crypto.randomUUID()`. Also `WorkflowEnv`, the same conveniences on `worker::Env`
//! for the HTTP handler and the triggers.

use super::engine::{
    BucketBackend, DatabaseBackend, EnvBackend, HttpMethod, KvBackend, LocalBoxFuture, OutboundRequest, OutboundResponse, SqlRow,
    SqlStatement, SqlValue,
};
use super::js;
use crate::core::service::CappedBody;
use crate::core::step_error::StepError;
use crate::registry::Registry;
use futures_util::StreamExt;
use js_sys::Reflect;
use serde_json::Value;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Fetch, Headers, HttpMetadata, Method, Request, RequestInit, RequestRedirect};

/// Conveniences on `worker::Env` for the HTTP handler and the triggers.
pub trait WorkflowEnv {
    /// A switch var: on only when set to "true".
    fn flag(&self, name: &str) -> bool;
}

impl WorkflowEnv for worker::Env {
    fn flag(&self, name: &str) -> bool {
        self.var(name).map(|v| v.to_string() == "true").unwrap_or(false)
    }
}

/// The Worker's `env`, as workflows reach it.
pub struct WorkerEnv {
    env: worker::Env,
    /// The Worker's workflows, which `create_instance` looks names up in.
    registry: &'static Registry,
}

impl WorkerEnv {
    /// The env of a run of one of `registry`'s workflows.
    pub fn new(env: worker::Env, registry: &'static Registry) -> Self {
        WorkerEnv { env, registry }
    }
}

fn binding_missing(kind: &str, binding: &str, e: impl std::fmt::Display) -> StepError {
    StepError::non_retryable(format!("the {kind} binding {binding}: {e}"))
}

impl EnvBackend for WorkerEnv {
    fn var(&self, name: &str) -> Option<String> {
        // Vars and secrets are both strings on `env`.
        Reflect::get(&self.env, &JsValue::from_str(name)).ok().and_then(|v| v.as_string())
    }

    fn database(&self, binding: &str) -> Result<Rc<dyn DatabaseBackend>, StepError> {
        let db = self.env.d1(binding).map_err(|e| binding_missing("D1", binding, e))?;
        Ok(Rc::new(WorkerDatabase { db }))
    }

    fn kv(&self, binding: &str) -> Result<Rc<dyn KvBackend>, StepError> {
        let kv = self.env.kv(binding).map_err(|e| binding_missing("KV", binding, e))?;
        Ok(Rc::new(WorkerKv { kv }))
    }

    fn bucket(&self, binding: &str) -> Result<Rc<dyn BucketBackend>, StepError> {
        let bucket = self.env.bucket(binding).map_err(|e| binding_missing("R2", binding, e))?;
        Ok(Rc::new(WorkerBucket { bucket, binding: binding.to_string() }))
    }

    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>> {
        Box::pin(fetch(request))
    }

    fn create_instance<'a>(&'a self, workflow: &'a str, id: &'a str, params: &'a Value) -> LocalBoxFuture<'a, Result<bool, StepError>> {
        Box::pin(async move {
            let spec =
                self.registry.by_name(workflow).ok_or_else(|| StepError::non_retryable(format!("no workflow named {workflow:?}")))?;
            super::instances::create(&self.env, spec, Some(id), params)
                .await
                .map(|created| created.created)
                .map_err(|e| StepError::failed(format!("starting {workflow} instance {id}: {e}")))
        })
    }

    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(js_sys::Date::now() as u64)
    }

    fn random_uuid(&self) -> String {
        js::random_uuid()
    }
}

/// One request through the runtime's `fetch`: redirects are not followed (`redirect:
/// "manual"`, so a 3xx is the answer), and the body is read chunk by chunk up to the
/// request's cap, never whole: past the cap (or with a `Content-Length` over it) the rest
/// of the body is cancelled unread.
async fn fetch(request: OutboundRequest) -> Result<OutboundResponse, StepError> {
    let failed = |e: worker::Error| StepError::Failed(e.to_string());
    let headers = Headers::new();
    for (name, value) in &request.headers {
        headers.set(name, value).map_err(failed)?;
    }
    let mut init = RequestInit::new();
    init.with_method(match request.method {
        HttpMethod::Get => Method::Get,
        HttpMethod::Post => Method::Post,
    });
    if let Some(body) = &request.body {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    init.with_headers(headers);
    init.with_redirect(RequestRedirect::Manual);
    let js_request = Request::new_with_init(&request.url, &init).map_err(failed)?;
    let mut response = Fetch::Request(js_request).send().await.map_err(failed)?;
    let status = response.status_code();
    let header = |name: &str| response.headers().get(name).ok().flatten();
    let now = UNIX_EPOCH + Duration::from_millis(js_sys::Date::now() as u64);
    let retry_after = header("retry-after").and_then(|value| crate::core::service::parse_retry_after(&value, now));
    let redirect = (300..400).contains(&status);
    let location = header("location").filter(|_| redirect).map(|l| l.chars().take(256).collect::<String>());
    let mut body = CappedBody::new(request.max_response_bytes, header("content-length").as_deref());
    // No body (a 204, say) is not a stream; a redirect's body is never read.
    if let Ok(mut stream) = response.stream() {
        if !redirect {
            while !body.is_over() {
                let Some(chunk) = stream.next().await else { break };
                body.push(&chunk.map_err(failed)?);
            }
        }
        // Dropping the stream cancels whatever is left of the body.
        drop(stream);
    }
    let (body, body_over_limit) = body.finish();
    Ok(OutboundResponse { status, body, body_over_limit, retry_after, location })
}

struct WorkerDatabase {
    db: D1Database,
}

fn d1_failed(e: worker::Error) -> StepError {
    StepError::failed(format!("D1: {e}"))
}

impl WorkerDatabase {
    fn bind(&self, statement: &SqlStatement<'_>) -> Result<D1PreparedStatement, StepError> {
        let values: Vec<JsValue> = statement
            .params
            .iter()
            .map(|value| match value {
                SqlValue::Null => JsValue::NULL,
                SqlValue::Integer(n) => JsValue::from_f64(*n as f64),
                SqlValue::Real(n) => JsValue::from_f64(*n),
                SqlValue::Text(s) => JsValue::from_str(s),
            })
            .collect();
        self.db.prepare(statement.sql.as_ref()).bind(&values).map_err(d1_failed)
    }
}

impl DatabaseBackend for WorkerDatabase {
    fn run<'a>(&'a self, statement: &'a SqlStatement<'a>) -> LocalBoxFuture<'a, Result<u64, StepError>> {
        Box::pin(async move {
            let result = self.bind(statement)?.run().await.map_err(d1_failed)?;
            Ok(result.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0) as u64)
        })
    }

    fn rows<'a>(&'a self, statement: &'a SqlStatement<'a>) -> LocalBoxFuture<'a, Result<Vec<SqlRow>, StepError>> {
        Box::pin(async move { self.bind(statement)?.all().await.map_err(d1_failed)?.results::<SqlRow>().map_err(d1_failed) })
    }

    fn batch<'a>(&'a self, statements: &'a [SqlStatement<'a>]) -> LocalBoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let prepared = statements.iter().map(|s| self.bind(s)).collect::<Result<Vec<_>, _>>()?;
            self.db.batch(prepared).await.map_err(d1_failed)?;
            Ok(())
        })
    }
}

struct WorkerKv {
    kv: worker::kv::KvStore,
}

impl KvBackend for WorkerKv {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move { self.kv.get(key).text().await.map_err(|e| StepError::failed(format!("KV: {e}"))) })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let failed = |e: worker::kv::KvError| StepError::failed(format!("KV: {e}"));
            self.kv.put(key, value).map_err(failed)?.execute().await.map_err(failed)
        })
    }
}

struct WorkerBucket {
    bucket: worker::Bucket,
    binding: String,
}

impl WorkerBucket {
    fn failed(&self, operation: &str, key: &str, e: worker::Error) -> StepError {
        StepError::failed(format!("R2 {operation} of {key} in bucket {} failed: {e}", self.binding))
    }
}

impl BucketBackend for WorkerBucket {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<Vec<u8>>, StepError>> {
        Box::pin(async move {
            let Some(object) = self.bucket.get(key).execute().await.map_err(|e| self.failed("get", key, e))? else {
                return Ok(None);
            };
            let body =
                object.body().ok_or_else(|| StepError::failed(format!("R2 get of {key} in bucket {} returned no body", self.binding)))?;
            body.bytes().await.map(Some).map_err(|e| self.failed("read", key, e))
        })
    }

    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>, content_type: Option<&'a str>) -> LocalBoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let metadata = HttpMetadata { content_type: content_type.map(str::to_string), ..HttpMetadata::default() };
            self.bucket.put(key, body).http_metadata(metadata).execute().await.map_err(|e| self.failed("put", key, e))?;
            Ok(())
        })
    }
}
