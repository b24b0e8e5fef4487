//! Calls from steps to outside services over `fetch`, with their answers mapped
//! to step outcomes by `service::check_status`.

use crate::core::service::{check_status, ClientErrors};
use crate::core::step_error::StepError;
use serde::{de::DeserializeOwned, Serialize};
use worker::{Fetch, Headers, Method, Request, RequestInit};

/// A request to one service, named for error messages.
pub struct ServiceCall<'a> {
    pub service: &'a str,
    pub url: String,
    pub client_errors: ClientErrors,
    pub headers: Vec<(&'a str, String)>,
}

impl<'a> ServiceCall<'a> {
    pub fn new(service: &'a str, url: String) -> Self {
        ServiceCall { service, url, client_errors: ClientErrors::Retry, headers: Vec::new() }
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
        self.send(Method::Get, None).await
    }

    /// GETs the body as bytes, unparsed (a large source goes to storage as it came).
    pub async fn get_bytes(&self) -> Result<Vec<u8>, StepError> {
        let failed = |e: worker::Error| StepError::Failed(format!("{} unreachable: {e}", self.service));
        let request = Request::new(&self.url, Method::Get).map_err(failed)?;
        let mut response = Fetch::Request(request).send().await.map_err(failed)?;
        let body = response.bytes().await.map_err(failed)?;
        let excerpt = String::from_utf8_lossy(&body[..body.len().min(200)]);
        check_status(self.service, response.status_code(), &excerpt, self.client_errors)?;
        Ok(body)
    }

    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(&self, body: &B) -> Result<T, StepError> {
        let body = serde_json::to_string(body)?;
        self.send(Method::Post, Some(body)).await
    }

    /// POSTs JSON text exactly as given (a signed body must be sent byte for byte).
    pub async fn post_text<T: DeserializeOwned>(&self, body: String) -> Result<T, StepError> {
        self.send(Method::Post, Some(body)).await
    }

    async fn send<T: DeserializeOwned>(&self, method: Method, body: Option<String>) -> Result<T, StepError> {
        let failed = |e: worker::Error| StepError::Failed(format!("{} unreachable: {e}", self.service));
        let headers = Headers::new();
        for (name, value) in &self.headers {
            headers.set(name, value).map_err(failed)?;
        }
        let mut init = RequestInit::new();
        init.with_method(method);
        if let Some(body) = body {
            headers.set("content-type", "application/json").map_err(failed)?;
            init.with_body(Some(body.into()));
        }
        init.with_headers(headers);
        let request = Request::new_with_init(&self.url, &init).map_err(failed)?;
        let mut response = Fetch::Request(request).send().await.map_err(failed)?;
        let text = response.text().await.map_err(failed)?;
        check_status(self.service, response.status_code(), &text, self.client_errors)?;
        let text = if text.trim().is_empty() { "null" } else { &text };
        serde_json::from_str(text).or_else(|e| {
            // A receiver that answers 2xx with a non-JSON body still received the call.
            serde_json::from_str("null").map_err(|_| StepError::Failed(format!("{} answered with unexpected JSON: {e}", self.service)))
        })
    }
}
