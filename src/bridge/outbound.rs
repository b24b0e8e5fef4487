//! Calls from steps to outside services, through the env's `fetch` (the runtime's in
//! the Worker, the test engine's router on the host), with their answers mapped to step
//! outcomes by `service::check_status`.

use super::engine::{HttpMethod, OutboundRequest, OutboundResponse};
use super::Env;
use crate::core::service::{check_status, ClientErrors};
use crate::core::step_error::StepError;
use serde::{de::DeserializeOwned, Serialize};

/// A request to one service, named for error messages.
pub struct ServiceCall<'a> {
    env: &'a Env,
    pub service: &'a str,
    pub url: String,
    pub client_errors: ClientErrors,
    pub headers: Vec<(&'a str, String)>,
}

impl<'a> ServiceCall<'a> {
    pub fn new(env: &'a Env, service: &'a str, url: String) -> Self {
        ServiceCall { env, service, url, client_errors: ClientErrors::Retry, headers: Vec::new() }
    }

    /// 4xx answers fail the step without retries.
    pub fn client_errors_are_final(mut self) -> Self {
        self.client_errors = ClientErrors::Final;
        self
    }

    pub fn header(mut self, name: &'a str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub async fn get<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        let response = self.send(HttpMethod::Get, None).await?;
        read_json(self.service, &response.body)
    }

    /// GETs the body as bytes, unparsed (a large source goes to storage as it came).
    pub async fn get_bytes(&self) -> Result<Vec<u8>, StepError> {
        Ok(self.send(HttpMethod::Get, None).await?.body)
    }

    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(&self, body: &B) -> Result<T, StepError> {
        let body = serde_json::to_string(body)?;
        self.post_text(body).await
    }

    /// POSTs JSON text exactly as given (a signed body must be sent byte for byte).
    pub async fn post_text<T: DeserializeOwned>(&self, body: String) -> Result<T, StepError> {
        let response = self.send(HttpMethod::Post, Some(body)).await?;
        read_json(self.service, &response.body)
    }

    async fn send(&self, method: HttpMethod, body: Option<String>) -> Result<OutboundResponse, StepError> {
        let mut headers: Vec<(String, String)> = self.headers.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        let request = OutboundRequest { method, url: self.url.clone(), headers, body: body.map(String::into_bytes) };
        let response = self.env.fetch(request).await.map_err(|e| match e {
            StepError::Failed(m) => StepError::Failed(format!("{} unreachable: {m}", self.service)),
            other => other,
        })?;
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
