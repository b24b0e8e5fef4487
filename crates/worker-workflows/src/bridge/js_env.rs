//! The Worker's real environment behind [`Env`](super::Env): vars and secrets, D1, KV,
//! R2, queues, service bindings, Durable Object stubs, `fetch`, other workflows (claimed
//! creates through the instance index), the clock and `crypto.randomUUID()`; and
//! [`Env::raw`](super::Env::raw), the Worker's own `worker::Env` for anything else.
//! Also `WorkflowEnv`, the same conveniences on `worker::Env` for the HTTP handler and
//! the triggers.
//!
//! Every request, through `fetch` or a binding, is sent with `redirect: "manual"` and its
//! answer read up to its cap, never further (`read_response`).

use super::engine::{
    BucketBackend, DatabaseBackend, DurableObjectBackend, EnvBackend, FetcherBackend, HttpMethod, KvBackend, KvKey, KvKeyList,
    KvPutOptions, ListOptions, LocalBoxFuture, ObjectInfo, ObjectList, OutboundRequest, OutboundResponse, QueueBackend, Redirect, SqlRow,
    SqlStatement, SqlValue,
};
use super::js;
use crate::core::service::CappedBody;
use crate::core::step_error::StepError;
use crate::registry::Registry;
use futures_util::StreamExt;
use js_sys::Reflect;
use serde_json::Value;
use std::any::Any;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasm_bindgen::JsValue;
use worker::{
    D1Database, D1PreparedStatement, Fetch, Headers, HttpMetadata, Method, QueueContentType, RawMessageBuilder, Request, RequestInit,
    RequestRedirect, SendMessage,
};

/// Conveniences on `worker::Env` for the HTTP handler and the triggers.
pub trait WorkflowEnv {
    /// A switch var: on only when set to "true".
    fn flag(&self, name: &str) -> bool;
}

impl WorkflowEnv for worker::Env {
    /// On only when the var is the string "true".
    fn flag(&self, name: &str) -> bool {
        self.var(name).map(|v| v.to_string() == "true").unwrap_or(false)
    }
}

/// The Worker's `env`, as workflows reach it.
pub struct WorkerEnv {
    pub(super) env: worker::Env,
    /// The Worker's workflows, which `create_instance` looks names up in.
    pub(super) registry: &'static Registry,
}

impl WorkerEnv {
    /// The env of a run of one of `registry`'s workflows.
    pub fn new(env: worker::Env, registry: &'static Registry) -> Self {
        WorkerEnv { env, registry }
    }
}

/// The Worker's own `worker::Env`, for what [`Env`](super::Env) does not reach.
impl super::Env {
    /// The Worker's raw `worker::Env`, for bindings and calls the typed env does not
    /// cover (Workers AI, Hyperdrive, a Durable Object by id, RPC, …). Wasm only: it does
    /// not exist on the host, so code that uses it cannot run on the test engine, and
    /// what it does is outside the engine's view (no fakes, no records, no determinism
    /// check). Keep it inside steps, behind a small function the tests can do without.
    /// Fails (non-retryable) when this env is not the Worker's (a custom backend).
    pub fn raw(&self) -> Result<&worker::Env, StepError> {
        self.backend()
            .as_any()
            .downcast_ref::<WorkerEnv>()
            .map(|worker_env| &worker_env.env)
            .ok_or_else(|| StepError::non_retryable("Env::raw: this env is not the Worker's (no worker::Env behind it)"))
    }
}

/// A binding `env` lacks, or one of another kind: configuration no retry can fix.
fn binding_missing(kind: &str, binding: &str, e: impl std::fmt::Display) -> StepError {
    StepError::non_retryable(format!("the {kind} binding {binding}: {e}"))
}

impl EnvBackend for WorkerEnv {
    fn var(&self, name: &str) -> Option<String> {
        // Vars and secrets are both strings on `env`.
        Reflect::get(&self.env, &JsValue::from_str(name)).ok().and_then(|v| v.as_string())
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.env.secret(name).ok().map(|secret| secret.to_string())
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

    fn queue(&self, binding: &str) -> Result<Rc<dyn QueueBackend>, StepError> {
        let queue = self.env.queue(binding).map_err(|e| binding_missing("queue", binding, e))?;
        Ok(Rc::new(WorkerQueue { queue, binding: binding.to_string() }))
    }

    fn service(&self, binding: &str) -> Result<Rc<dyn FetcherBackend>, StepError> {
        let fetcher = self.env.service(binding).map_err(|e| binding_missing("service", binding, e))?;
        Ok(Rc::new(WorkerService { fetcher }))
    }

    fn durable_object(&self, binding: &str) -> Result<Rc<dyn DurableObjectBackend>, StepError> {
        let namespace = self.env.durable_object(binding).map_err(|e| binding_missing("Durable Object", binding, e))?;
        Ok(Rc::new(WorkerDurableObjects { namespace, binding: binding.to_string() }))
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

    fn instances(&self) -> Option<&dyn super::InstancesBackend> {
        Some(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A failed call to the runtime, as a (retryable) step failure.
fn failed(e: worker::Error) -> StepError {
    StepError::Failed(e.to_string())
}

/// The runtime's `Request` for `request`, its `redirect` from the request's
/// ([`Redirect::Manual`]: a 3xx is the answer rather than followed).
fn js_request(request: &OutboundRequest) -> Result<Request, StepError> {
    let headers = Headers::new();
    for (name, value) in &request.headers {
        headers.set(name, value).map_err(failed)?;
    }
    let mut init = RequestInit::new();
    init.with_method(match request.method {
        HttpMethod::Get => Method::Get,
        HttpMethod::Post => Method::Post,
        HttpMethod::Put => Method::Put,
        HttpMethod::Patch => Method::Patch,
        HttpMethod::Delete => Method::Delete,
    });
    if let Some(body) = &request.body {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    init.with_headers(headers);
    init.with_redirect(match request.redirect {
        Redirect::Follow => RequestRedirect::Follow,
        Redirect::Manual => RequestRedirect::Manual,
    });
    Request::new_with_init(&request.url, &init).map_err(failed)
}

/// One request through the runtime's `fetch`.
async fn fetch(request: OutboundRequest) -> Result<OutboundResponse, StepError> {
    let response = Fetch::Request(js_request(&request)?).send().await.map_err(failed)?;
    read_response(response, request.max_response_bytes).await
}

/// An answer as plain data: the body read chunk by chunk up to `max_bytes`, never whole:
/// past the cap (or with a `Content-Length` over it) the rest of the body is cancelled
/// unread, and a redirect's body is never read.
async fn read_response(mut response: worker::Response, max_bytes: usize) -> Result<OutboundResponse, StepError> {
    let status = response.status_code();
    let header = |name: &str| response.headers().get(name).ok().flatten();
    let now = UNIX_EPOCH + Duration::from_millis(js_sys::Date::now() as u64);
    let retry_after = header("retry-after").and_then(|value| crate::core::service::parse_retry_after(&value, now));
    let redirect = (300..400).contains(&status);
    let location = header("location").filter(|_| redirect).map(|l| l.chars().take(256).collect::<String>());
    let mut body = CappedBody::new(max_bytes, header("content-length").as_deref());
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

/// A service binding.
struct WorkerService {
    fetcher: worker::Fetcher,
}

impl FetcherBackend for WorkerService {
    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>> {
        Box::pin(async move {
            let response = self.fetcher.fetch_request(js_request(&request)?).await.map_err(failed)?;
            read_response(response, request.max_response_bytes).await
        })
    }
}

/// A Durable Object namespace binding.
struct WorkerDurableObjects {
    namespace: worker::ObjectNamespace,
    binding: String,
}

impl DurableObjectBackend for WorkerDurableObjects {
    fn get_by_name(&self, name: &str) -> Result<Rc<dyn FetcherBackend>, StepError> {
        let stub =
            self.namespace.get_by_name(name).map_err(|e| StepError::failed(format!("Durable Object {} {name:?}: {e}", self.binding)))?;
        Ok(Rc::new(WorkerStub { stub }))
    }
}

/// A Durable Object's stub.
struct WorkerStub {
    stub: worker::Stub,
}

impl FetcherBackend for WorkerStub {
    fn fetch(&self, request: OutboundRequest) -> LocalBoxFuture<'_, Result<OutboundResponse, StepError>> {
        Box::pin(async move {
            let response = self.stub.fetch_with_request(js_request(&request)?).await.map_err(failed)?;
            read_response(response, request.max_response_bytes).await
        })
    }
}

/// A queue producer binding: bodies go as JSON messages (`contentType: "json"`), parsed
/// from the JSON text `Queue` made.
struct WorkerQueue {
    queue: worker::Queue,
    binding: String,
}

impl WorkerQueue {
    /// A JSON message of `body_json`.
    fn message(&self, body_json: &str) -> Result<SendMessage<JsValue>, StepError> {
        let value = js::parse_json_text(body_json)?;
        Ok(RawMessageBuilder::new(value).build_with_content_type(QueueContentType::Json))
    }

    /// A failed send, as a (retryable) step failure naming the queue.
    fn failed(&self, e: worker::Error) -> StepError {
        StepError::failed(format!("queue {}: {e}", self.binding))
    }
}

impl QueueBackend for WorkerQueue {
    fn send(&self, body_json: String) -> LocalBoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            let message = self.message(&body_json)?;
            self.queue.send_raw(message).await.map_err(|e| self.failed(e))
        })
    }

    fn send_batch(&self, bodies_json: Vec<String>) -> LocalBoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            let messages = bodies_json.iter().map(|body| self.message(body)).collect::<Result<Vec<_>, _>>()?;
            self.queue.send_raw_batch(messages).await.map_err(|e| self.failed(e))
        })
    }
}

/// A D1 database binding.
struct WorkerDatabase {
    db: D1Database,
}

/// A failed D1 call, as a (retryable) step failure.
fn d1_failed(e: worker::Error) -> StepError {
    StepError::failed(format!("D1: {e}"))
}

impl WorkerDatabase {
    /// The statement prepared, with its values bound.
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

/// A KV namespace binding.
struct WorkerKv {
    kv: worker::kv::KvStore,
}

/// A failed KV call, as a (retryable) step failure.
fn kv_failed(e: worker::kv::KvError) -> StepError {
    StepError::failed(format!("KV: {e}"))
}

impl KvBackend for WorkerKv {
    fn get<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<String>, StepError>> {
        Box::pin(async move { self.kv.get(key).text().await.map_err(kv_failed) })
    }

    fn put<'a>(&'a self, key: &'a str, value: &'a str, options: &'a KvPutOptions) -> LocalBoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let mut put = self.kv.put(key, value).map_err(kv_failed)?;
            if let Some(ttl) = options.expiration_ttl {
                put = put.expiration_ttl(ttl);
            }
            if let Some(at) = options.expiration {
                put = put.expiration(at);
            }
            if let Some(metadata) = &options.metadata {
                put = put.metadata(metadata).map_err(kv_failed)?;
            }
            put.execute().await.map_err(kv_failed)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move { self.kv.delete(key).await.map_err(kv_failed) })
    }

    fn list<'a>(&'a self, options: &'a ListOptions) -> LocalBoxFuture<'a, Result<KvKeyList, StepError>> {
        Box::pin(async move {
            let mut list = self.kv.list().limit(u64::from(options.effective_limit()));
            if let Some(prefix) = &options.prefix {
                list = list.prefix(prefix.clone());
            }
            if let Some(cursor) = &options.cursor {
                list = list.cursor(cursor.clone());
            }
            let page = list.execute().await.map_err(kv_failed)?;
            Ok(KvKeyList {
                keys: page.keys.into_iter().map(|k| KvKey { name: k.name, expiration: k.expiration, metadata: k.metadata }).collect(),
                list_complete: page.list_complete,
                cursor: page.cursor.filter(|c| !c.is_empty() && !page.list_complete),
            })
        })
    }
}

/// An R2 bucket binding.
struct WorkerBucket {
    bucket: worker::Bucket,
    binding: String,
}

/// An object's metadata as plain data (`with_content_type`: from its HTTP metadata,
/// which a list does not carry).
fn object_info(object: &worker::Object, with_content_type: bool) -> ObjectInfo {
    ObjectInfo {
        key: object.key(),
        size: object.size(),
        etag: object.etag(),
        uploaded_millis: object.uploaded().as_millis(),
        content_type: if with_content_type { object.http_metadata().content_type } else { None },
    }
}

impl WorkerBucket {
    /// A failed call, as a (retryable) step failure naming the operation and the object.
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

    fn head<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<Option<ObjectInfo>, StepError>> {
        Box::pin(async move {
            let object = self.bucket.head(key).await.map_err(|e| self.failed("head", key, e))?;
            Ok(object.map(|object| object_info(&object, true)))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> LocalBoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move { self.bucket.delete(key).await.map_err(|e| self.failed("delete", key, e)) })
    }

    fn list<'a>(&'a self, options: &'a ListOptions) -> LocalBoxFuture<'a, Result<ObjectList, StepError>> {
        Box::pin(async move {
            let mut list = self.bucket.list().limit(options.effective_limit());
            if let Some(prefix) = &options.prefix {
                list = list.prefix(prefix.clone());
            }
            if let Some(cursor) = &options.cursor {
                list = list.cursor(cursor.clone());
            }
            let prefix = options.prefix.as_deref().unwrap_or_default();
            let page = list.execute().await.map_err(|e| self.failed("list", prefix, e))?;
            let truncated = page.truncated();
            Ok(ObjectList {
                objects: page.objects().iter().map(|object| object_info(object, false)).collect(),
                truncated,
                cursor: page.cursor().filter(|c| !c.is_empty() && truncated),
            })
        })
    }
}
