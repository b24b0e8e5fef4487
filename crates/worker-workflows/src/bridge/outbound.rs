//! Calls from steps to outside services, through the env's `fetch` (the runtime's in
//! the Worker, the test engine's router on the host) or through a service binding or a
//! Durable Object stub ([`ServiceCall::through`]), with their answers mapped to step
//! outcomes by `service::check_status`.
//!
//! Every call keeps the same rules: redirects are never followed (a 3xx fails the step,
//! non-retryable); the answer's body is read up to a cap (1 MiB unless the call sets
//! another) and never further; a URL a caller gave is checked against the URL policy
//! right before each fetch; and a call with a side effect (`POST`, `PATCH`, and `PUT`
//! or `DELETE` unless the service makes repeats harmless) carries an `Idempotency-Key`,
//! since a step's retry sends it again.

use super::engine::{HttpMethod, OutboundRequest, OutboundResponse, Redirect};
use super::{Env, Fetcher};
use crate::core::service::{self, check_status, ClientErrors, MAX_SERVICE_ANSWER_BYTES};
use crate::core::step_error::StepError;
use crate::core::url_policy::{self, PrivateHosts};
use serde::{de::DeserializeOwned, Serialize};

/// A request to one service, named for error messages.
pub struct ServiceCall<'a> {
    env: &'a Env,
    /// Sent through this service binding or Durable Object stub instead of `fetch`.
    through: Option<&'a Fetcher>,
    /// The service's name, for error messages.
    pub service: &'a str,
    /// The URL to call.
    pub url: String,
    /// Whether a 4xx answer is final or retried.
    pub client_errors: ClientErrors,
    /// Headers sent with the request, in order.
    pub headers: Vec<(&'a str, String)>,
    /// The most bytes of the answer's body read ([`MAX_SERVICE_ANSWER_BYTES`] unless set).
    pub max_response_bytes: usize,
    /// The var that set `max_response_bytes`, named when an answer is over it.
    limit_var: Option<&'static str>,
    /// The URL came from a caller (params, a callback): checked against the URL policy
    /// right before each fetch, however the instance was created.
    pub caller_given_url: bool,
}

impl<'a> ServiceCall<'a> {
    /// A call to `url` of the service named `service`, through the runtime's `fetch`:
    /// answers read up to 1 MiB, 4xx answers retried (see
    /// [`client_errors_are_final`](Self::client_errors_are_final)).
    pub fn new(env: &'a Env, service: &'a str, url: String) -> Self {
        ServiceCall {
            env,
            through: None,
            service,
            url,
            client_errors: ClientErrors::Retry,
            headers: Vec::new(),
            max_response_bytes: MAX_SERVICE_ANSWER_BYTES,
            limit_var: None,
            caller_given_url: false,
        }
    }

    /// A GET of a data source a caller named (data-pipeline's `sourceUrl`, step-tour's
    /// downloads): the URL policy applies, and the body is read up to the var
    /// `MAX_SOURCE_BYTES` (10 MiB when unset). A var that does not read is a
    /// non-retryable error naming it.
    pub fn data_source(env: &'a Env, url: String) -> Result<Self, StepError> {
        let max = service::max_source_bytes(env.var(service::MAX_SOURCE_BYTES_VAR).as_deref()).map_err(StepError::NonRetryable)?;
        let mut call = ServiceCall::new(env, "source", url).caller_given_url().max_response_bytes(max);
        call.limit_var = Some(service::MAX_SOURCE_BYTES_VAR);
        Ok(call)
    }

    /// 4xx answers fail the step without retries.
    pub fn client_errors_are_final(mut self) -> Self {
        self.client_errors = ClientErrors::Final;
        self
    }

    /// Sends the call through a service binding ([`Env::service`]) or a Durable Object
    /// stub ([`DurableObjectNamespace::get_by_name`](super::DurableObjectNamespace::get_by_name))
    /// instead of the runtime's `fetch`, with every other rule as it was.
    pub fn through(mut self, fetcher: &'a Fetcher) -> Self {
        self.through = Some(fetcher);
        self
    }

    /// Adds a header (`authorization` with a [`Secret`](super::Secret)'s value, say).
    pub fn header(mut self, name: &'a str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The `Idempotency-Key` header: the same on every attempt of the step, so the service
    /// performs the side effect once however often the call is repeated
    /// (`StepContext::idempotency_key` derives one from the instance and the step).
    pub fn idempotency_key(self, key: String) -> Self {
        self.header("idempotency-key", key)
    }

    /// Reads at most `bytes` of the answer's body; a 2xx answer with a longer one fails
    /// the step (non-retryable) where its body is used.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The URL came from a caller: checked against the URL policy (https to a public
    /// host, or a host in `ALLOW_PRIVATE_HOSTS`) right before each fetch; a refused URL
    /// fails the step (non-retryable) without a request.
    pub fn caller_given_url(mut self) -> Self {
        self.caller_given_url = true;
        self
    }

    /// GETs the answer as JSON `T`.
    pub async fn get<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        let response = self.send(HttpMethod::Get, None).await?;
        read_json(self.service, &self.whole_body(response)?)
    }

    /// GETs the body as bytes, unparsed (a large source goes to storage as it came).
    pub async fn get_bytes(&self) -> Result<Vec<u8>, StepError> {
        let response = self.send(HttpMethod::Get, None).await?;
        self.whole_body(response)
    }

    /// POSTs `body` as JSON and reads the answer as JSON `T`. A side effect: give the call
    /// an [`idempotency_key`](Self::idempotency_key).
    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(&self, body: &B) -> Result<T, StepError> {
        let body = serde_json::to_string(body)?;
        self.post_text(body).await
    }

    /// POSTs JSON text exactly as given (a signed body must be sent byte for byte).
    pub async fn post_text<T: DeserializeOwned>(&self, body: String) -> Result<T, StepError> {
        let response = self.send(HttpMethod::Post, Some(body)).await?;
        read_json(self.service, &self.whole_body(response)?)
    }

    /// POSTs JSON and needs only the answer's status: a 2xx is success whatever its body
    /// (read at most up to the cap, for the message of a failure).
    pub async fn post_for_status<B: Serialize + ?Sized>(&self, body: &B) -> Result<(), StepError> {
        self.post_text_for_status(serde_json::to_string(body)?).await
    }

    /// [`post_for_status`](Self::post_for_status) with JSON text sent exactly as given.
    pub async fn post_text_for_status(&self, body: String) -> Result<(), StepError> {
        self.send(HttpMethod::Post, Some(body)).await.map(drop)
    }

    /// PUTs `body` as JSON and reads the answer as JSON `T` (`()` when only the status
    /// matters and the answer is small). Replacing a whole resource is harmless to repeat
    /// by HTTP's rules; a service that does more than that wants an
    /// [`idempotency_key`](Self::idempotency_key).
    pub async fn put<T: DeserializeOwned, B: Serialize + ?Sized>(&self, body: &B) -> Result<T, StepError> {
        let response = self.send(HttpMethod::Put, Some(serde_json::to_string(body)?)).await?;
        read_json(self.service, &self.whole_body(response)?)
    }

    /// PATCHes with `body` as JSON and reads the answer as JSON `T`. A side effect that
    /// may not be harmless to repeat: give the call an
    /// [`idempotency_key`](Self::idempotency_key).
    pub async fn patch<T: DeserializeOwned, B: Serialize + ?Sized>(&self, body: &B) -> Result<T, StepError> {
        let response = self.send(HttpMethod::Patch, Some(serde_json::to_string(body)?)).await?;
        read_json(self.service, &self.whole_body(response)?)
    }

    /// DELETEs the resource and reads the answer as JSON `T` (an empty body reads as
    /// null, so `()` fits a 204). A retry after a lost answer may meet a 404: make 4xx
    /// answers final with [`client_errors_are_final`](Self::client_errors_are_final) only
    /// when the service answers a repeat with a 2xx.
    pub async fn delete<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        let response = self.send(HttpMethod::Delete, None).await?;
        read_json(self.service, &self.whole_body(response)?)
    }

    /// [`put`](Self::put), needing only the answer's status: a 2xx is success whatever
    /// its body (read at most up to the cap).
    pub async fn put_for_status<B: Serialize + ?Sized>(&self, body: &B) -> Result<(), StepError> {
        self.send(HttpMethod::Put, Some(serde_json::to_string(body)?)).await.map(drop)
    }

    /// [`patch`](Self::patch), needing only the answer's status.
    pub async fn patch_for_status<B: Serialize + ?Sized>(&self, body: &B) -> Result<(), StepError> {
        self.send(HttpMethod::Patch, Some(serde_json::to_string(body)?)).await.map(drop)
    }

    /// [`delete`](Self::delete), needing only the answer's status.
    pub async fn delete_for_status(&self) -> Result<(), StepError> {
        self.send(HttpMethod::Delete, None).await.map(drop)
    }

    /// The body of a 2xx answer, which must have been read whole.
    fn whole_body(&self, response: OutboundResponse) -> Result<Vec<u8>, StepError> {
        if response.body_over_limit {
            return Err(service::body_too_large(self.service, response.status, self.max_response_bytes, self.limit_var));
        }
        Ok(response.body)
    }

    /// The URL to fetch: checked against the URL policy when a caller gave it.
    fn url(&self) -> Result<String, StepError> {
        if !self.caller_given_url {
            return Ok(self.url.clone());
        }
        let allowed = PrivateHosts::parse(&self.env.var(url_policy::ALLOW_PRIVATE_HOSTS_VAR).unwrap_or_default());
        url_policy::check(&self.url, super::parse_url, &allowed).map_err(|e| StepError::NonRetryable(format!("{}: {e}", self.service)))
    }

    /// The request a call sends: redirects never followed ([`Redirect::Manual`]), so a
    /// URL the policy passed cannot lead the Worker anywhere else.
    pub(crate) fn request(&self, method: HttpMethod, body: Option<String>) -> Result<OutboundRequest, StepError> {
        let url = self.url()?;
        let mut headers: Vec<(String, String)> = self.headers.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        Ok(OutboundRequest {
            method,
            url,
            headers,
            body: body.map(String::into_bytes),
            max_response_bytes: self.max_response_bytes,
            redirect: Redirect::Manual,
        })
    }

    async fn send(&self, method: HttpMethod, body: Option<String>) -> Result<OutboundResponse, StepError> {
        let request = self.request(method, body)?;
        let sent = match self.through {
            Some(fetcher) => fetcher.fetch(request).await,
            None => self.env.fetch(request).await,
        };
        let response = sent.map_err(|e| match e {
            StepError::Failed(m) => StepError::Failed(format!("{} unreachable: {m}", self.service)),
            other => other,
        })?;
        if (300..400).contains(&response.status) {
            return Err(service::redirect_refused(self.service, response.status, response.location.as_deref()));
        }
        let excerpt = String::from_utf8_lossy(&response.body[..response.body.len().min(200)]);
        check_status(self.service, response.status, &excerpt, self.client_errors, response.retry_after)?;
        Ok(response)
    }
}

/// A 2xx body as JSON; an empty body reads as null, and a receiver that answers 2xx with
/// a body that is not JSON still received the call, so that reads as null too when `T`
/// accepts it.
fn read_json<T: DeserializeOwned>(service: &str, body: &[u8]) -> Result<T, StepError> {
    let text = String::from_utf8_lossy(body);
    let text = if text.trim().is_empty() { "null" } else { &text };
    serde_json::from_str(text)
        .or_else(|e| serde_json::from_str("null").map_err(|_| StepError::Failed(format!("{service} answered with unexpected JSON: {e}"))))
}
