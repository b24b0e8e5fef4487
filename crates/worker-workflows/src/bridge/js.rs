//! Values and errors across the JS boundary. Values cross as JSON text
//! (`serde_json` on our side, `JSON.parse`/`JSON.stringify` on theirs): maps
//! become objects, `None` becomes null, and the serialised size is known exactly,
//! which the 1 MiB step-result limit needs.

use crate::core::step_error::StepError;
use js_sys::{Error as JsError, Reflect, JSON};
use serde::{de::DeserializeOwned, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen]
extern "C" {
    /// `crypto.randomUUID()`: ids the engine would make itself, made up front.
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    pub fn random_uuid() -> String;
}

/// Parses a URL with the runtime's WHATWG `URL`, the parser `fetch` itself uses.
pub fn parse_url(url: &str) -> Result<crate::core::url_policy::UrlParts, String> {
    let parsed = web_sys::Url::new(url).map_err(|e| error_message(&e))?;
    let protocol = parsed.protocol();
    Ok(crate::core::url_policy::UrlParts {
        href: parsed.href(),
        scheme: protocol.strip_suffix(':').unwrap_or(&protocol).to_string(),
        username: parsed.username(),
        password: parsed.password(),
        hostname: parsed.hostname(),
    })
}

/// A Rust value as a plain JS value, plus its JSON size in bytes.
pub fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<(JsValue, usize), StepError> {
    let text = serde_json::to_string(value).map_err(|e| StepError::Serialization(format!("cannot serialise value: {e}")))?;
    Ok((parse_json_text(&text)?, text.len()))
}

/// JSON text serde_json wrote, as the plain JS value it stands for.
pub fn parse_json_text(text: &str) -> Result<JsValue, StepError> {
    JSON::parse(text).map_err(|e| StepError::Serialization(error_message(&e)))
}

/// The JSON text of a JS value; `undefined` reads as null, so `()` and `Option` work.
pub fn json_text(value: &JsValue) -> Result<String, StepError> {
    if value.is_undefined() {
        return Ok("null".to_string());
    }
    Ok(JSON::stringify(value).map_err(|e| StepError::Serialization(error_message(&e)))?.as_string().unwrap_or_else(|| "null".to_string()))
}

/// A JS value as a Rust value; `undefined` reads as null, so `()` and `Option` work.
pub fn from_js<T: DeserializeOwned>(value: &JsValue) -> Result<T, StepError> {
    let text = json_text(value)?;
    serde_json::from_str(&text)
        .map_err(|e| StepError::Serialization(format!("unexpected value from the engine ({e}): {}", truncate(&text, 200))))
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A real JS `Error` with the given name: the engine reads `name` to tell a
/// non-retryable error from a retryable one.
pub fn js_error(name: &str, message: &str) -> JsValue {
    let error = JsError::new(message);
    error.set_name(name);
    error.into()
}

impl From<StepError> for JsValue {
    fn from(e: StepError) -> Self {
        js_error(e.js_name(), &e.to_string())
    }
}

/// `name` of a thrown JS value ("Error" for anything that is not an Error).
pub fn error_name(value: &JsValue) -> String {
    value
        .dyn_ref::<JsError>()
        .and_then(|e| e.name().as_string())
        .or_else(|| Reflect::get(value, &"name".into()).ok().and_then(|n| n.as_string()))
        .unwrap_or_else(|| "Error".to_string())
}

/// `message` of a thrown JS value, or its string form.
pub fn error_message(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<JsError>() {
        if let Some(m) = e.message().as_string() {
            return m;
        }
    }
    if let Some(s) = value.as_string() {
        return s;
    }
    Reflect::get(value, &"message".into()).ok().and_then(|m| m.as_string()).unwrap_or_else(|| format!("{value:?}"))
}

/// A rejection from the engine as a typed step error.
pub fn step_error_from_js(value: &JsValue) -> StepError {
    StepError::from_engine(&error_name(value), &error_message(value))
}

/// Reads a property, `undefined` when absent.
pub fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}
