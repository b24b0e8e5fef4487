//! The webhook-callback pattern: an instance created with a `callbackUrl` POSTs
//! `{id, workflow, status, output | error}` to it when it ends, from a durable step.
//! The URL travels with the instance in an envelope around its params
//! (`{"$callback": url, "$params": params}`), which the bridge unwraps before the
//! workflow sees its typed params, so no workflow has to know about callbacks.

use serde_json::{json, Value};

const URL_KEY: &str = "$callback";
const PARAMS_KEY: &str = "$params";

/// The engine payload for params with a callback.
pub fn wrap(params: Value, url: &str) -> Value {
    json!({ URL_KEY: url, PARAMS_KEY: params })
}

/// Splits an engine payload into the workflow's params and the callback URL, if any.
pub fn unwrap(payload: Value) -> (Value, Option<String>) {
    match payload {
        Value::Object(mut map) if map.len() == 2 && map.contains_key(PARAMS_KEY) => match map.remove(URL_KEY) {
            Some(Value::String(url)) => (map.remove(PARAMS_KEY).unwrap_or(Value::Null), Some(url)),
            Some(other) => {
                map.insert(URL_KEY.to_string(), other);
                (Value::Object(map), None)
            }
            None => (Value::Object(map), None),
        },
        other => (other, None),
    }
}

/// How the instance ended, as the callback reports it.
pub enum Outcome<'a> {
    Complete(&'a Value),
    Errored { name: &'a str, message: &'a str },
}

/// The callback body: `{id, workflow, status, output}` or `{id, workflow, status, error}`.
pub fn body(instance_id: &str, workflow: &str, outcome: &Outcome) -> String {
    let body = match outcome {
        Outcome::Complete(output) => json!({"id": instance_id, "workflow": workflow, "status": "complete", "output": output}),
        Outcome::Errored { name, message } => {
            json!({"id": instance_id, "workflow": workflow, "status": "errored", "error": {"name": name, "message": message}})
        }
    };
    body.to_string()
}

/// `webhook-id`: the same for every delivery attempt of one instance's callback, so
/// receivers can drop duplicates.
pub fn message_id(workflow: &str, instance_id: &str) -> String {
    format!("msg_{workflow}_{instance_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_unwrap() {
        let params = json!({"orderId": "1"});
        let wrapped = wrap(params.clone(), "https://h.example.com/x");
        assert_eq!(unwrap(wrapped), (params, Some("https://h.example.com/x".into())));
        assert_eq!(unwrap(wrap(Value::Null, "u")), (Value::Null, Some("u".into())));
        // Params that merely look similar pass through untouched.
        let plain = json!({"$params": 1});
        assert_eq!(unwrap(plain.clone()), (plain, None));
        let odd = json!({"$params": 1, "$callback": 2});
        assert_eq!(unwrap(odd.clone()), (odd, None));
        assert_eq!(unwrap(json!([1])), (json!([1]), None));
    }

    #[test]
    fn bodies() {
        let out = json!({"a": 1});
        let b: Value = serde_json::from_str(&body("i", "w", &Outcome::Complete(&out))).unwrap();
        assert_eq!(b, json!({"id": "i", "workflow": "w", "status": "complete", "output": {"a": 1}}));
        let b: Value = serde_json::from_str(&body("i", "w", &Outcome::Errored { name: "NonRetryableError", message: "no" })).unwrap();
        assert_eq!(b["error"], json!({"name": "NonRetryableError", "message": "no"}));
        assert_eq!(message_id("w", "i"), "msg_w_i");
    }
}
