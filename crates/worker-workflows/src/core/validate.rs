//! The engine's rules for names, checked in Rust so a bad one is a clear error
//! of ours rather than a JS exception from the engine.

/// A name the engine would refuse (or, for reserved ids, that this API keeps), holding it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// An instance id that is not 1 to [`MAX_INSTANCE_ID_LEN`] ASCII letters, digits, `-` and
    /// `_`, starting with a letter, digit or `_`.
    #[error("invalid instance id {0:?}: 1 to 100 characters, letters, digits, '-' and '_', not starting with '-'")]
    InstanceId(String),
    /// An instance id that is reserved ([`is_reserved_instance_id`]).
    #[error("instance id {0:?} is reserved (`batch` and `delete` are routes under /workflows/{{name}}/instances/, and the engine keeps `terminate`, `terminateAll` and `cf_` + 64 hex digits): choose another")]
    ReservedInstanceId(String),
    /// An event type that is not 1 to [`MAX_EVENT_TYPE_LEN`] ASCII letters, digits, `-` and
    /// `_`, starting with a letter, digit or `_`.
    #[error("invalid event type {0:?}: 1 to 100 characters, letters, digits, '-' and '_', not starting with '-'")]
    EventType(String),
    /// A step name that is empty, longer than [`MAX_STEP_NAME_LEN`] characters or holds a
    /// control character.
    #[error("invalid step name {0:?}: 1 to 256 characters without control characters")]
    StepName(String),
}

/// Params that do not fit a workflow's typed params, naming the field that does not
/// (`items[0].quantity: invalid type: string "two", expected u32`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamsMismatch(pub String);

/// Reads params as a workflow's typed params. The HTTP API (to answer 400 before an
/// instance exists) and the bridge (when the instance runs) both read params through
/// this one function, so each workflow's params deserializer is compiled once.
pub fn typed_params<P: serde::de::DeserializeOwned>(params: &serde_json::Value) -> Result<P, ParamsMismatch> {
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ParamsMismatch(if path == "." { inner.to_string() } else { format!("{path}: {inner}") })
    })
}

/// The longest instance id, in characters.
pub const MAX_INSTANCE_ID_LEN: usize = 100;
/// The longest event type, in characters.
pub const MAX_EVENT_TYPE_LEN: usize = 100;
/// The longest step name, in characters.
pub const MAX_STEP_NAME_LEN: usize = 256;

/// `^[a-zA-Z0-9_][a-zA-Z0-9-_]*$`, at most `max` characters: the engine's rule
/// for instance ids and event types.
fn is_engine_identifier(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    s.len() <= max && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Ids no instance may have: `batch` and `delete` are routes beside
/// `/workflows/{name}/instances/{id}` (so such an instance could never be read), and the
/// engine's batch create refuses `batch`, `terminate` and `terminateAll`.
pub const RESERVED_INSTANCE_IDS: &[&str] = &["batch", "delete", "terminate", "terminateAll"];

/// A reserved id: one of [`RESERVED_INSTANCE_IDS`], or `cf_` and 64 lower-case hex
/// digits, which the engine keeps for itself.
pub fn is_reserved_instance_id(id: &str) -> bool {
    RESERVED_INSTANCE_IDS.contains(&id)
        || id
            .strip_prefix("cf_")
            .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Checks an instance id: 1 to 100 ASCII letters, digits, `-` and `_`, not starting with
/// `-`, and not reserved.
pub fn instance_id(id: &str) -> Result<(), NameError> {
    if !is_engine_identifier(id, MAX_INSTANCE_ID_LEN) {
        Err(NameError::InstanceId(id.to_string()))
    } else if is_reserved_instance_id(id) {
        Err(NameError::ReservedInstanceId(id.to_string()))
    } else {
        Ok(())
    }
}

/// Checks an event type: 1 to 100 ASCII letters, digits, `-` and `_`, not starting with `-`.
pub fn event_type(kind: &str) -> Result<(), NameError> {
    if is_engine_identifier(kind, MAX_EVENT_TYPE_LEN) {
        Ok(())
    } else {
        Err(NameError::EventType(kind.to_string()))
    }
}

/// Step names are the cache keys of step results: at most 256 characters, no control characters.
pub fn step_name(name: &str) -> Result<(), NameError> {
    if !name.is_empty() && name.chars().count() <= MAX_STEP_NAME_LEN && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(NameError::StepName(name.to_string()))
    }
}

/// Longest value accepted as one path segment of a service URL.
pub const MAX_PATH_SEGMENT_LEN: usize = 256;

/// A value that goes into a service URL as one path segment, percent-encoded with
/// `service::encode_uri_component`. Encoding keeps `/`, `?`, `#` and `%` from changing
/// the URL, but `.` and `..` stay dot segments (a URL parser resolves them, so
/// `check/..` would call the service's parent path), so those are refused, as are an
/// empty value, control characters and more than [`MAX_PATH_SEGMENT_LEN`] characters.
pub fn path_segment(value: &str) -> Result<(), String> {
    if value.is_empty() {
        Err("must not be empty".into())
    } else if value == "." || value == ".." {
        Err(format!("{value:?} is not allowed: it would change the service URL's path"))
    } else if value.chars().count() > MAX_PATH_SEGMENT_LEN {
        Err(format!("is longer than {MAX_PATH_SEGMENT_LEN} characters"))
    } else if value.chars().any(char::is_control) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// [`path_segment`] as a serde `deserialize_with`, so a bad value is a params error
/// naming its field (`items[0].productId: ".." is not allowed: …`).
pub fn path_segment_param<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let value = <String as serde::Deserialize>::deserialize(deserializer)?;
    path_segment(&value).map_err(serde::de::Error::custom)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        for ok in ["p-1", "a/b?c#d", "%2e%2e", "...", ".x", "ü", &"x".repeat(256)] {
            assert_eq!(path_segment(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".", "..", "a\nb", &"x".repeat(257)] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Item {
            #[serde(deserialize_with = "path_segment_param")]
            id: String,
        }
        let err = typed_params::<Vec<Item>>(&serde_json::json!([{"id": "ok"}, {"id": ".."}])).unwrap_err();
        assert!(err.0.starts_with(r#"[1].id: ".." is not allowed"#), "{}", err.0);
    }

    #[test]
    fn instance_ids() {
        for ok in ["a", "order-1", "_x", "A_b-9", &"x".repeat(100)] {
            assert!(instance_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a b", "a/b", "ü", "a.b", &"x".repeat(101)] {
            assert_eq!(instance_id(bad), Err(NameError::InstanceId(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn reserved_instance_ids() {
        let engine_kept = format!("cf_{}", "0a".repeat(32));
        for reserved in ["batch", "delete", "terminate", "terminateAll", &engine_kept] {
            assert_eq!(instance_id(reserved), Err(NameError::ReservedInstanceId(reserved.to_string())), "{reserved}");
        }
        let message = NameError::ReservedInstanceId("delete".into()).to_string();
        assert!(message.contains("reserved") && message.contains("delete"), "{message}");
        for free in
            ["Batch", "batches", "deleted", "terminate-1", "cf_abc", &format!("cf_{}", "A".repeat(64)), &format!("cf_{}", "0".repeat(63))]
        {
            assert!(instance_id(free).is_ok(), "{free}");
        }
    }

    #[test]
    fn event_types() {
        assert!(event_type("approval-response").is_ok());
        assert!(event_type("stripe_webhook").is_ok());
        assert!(event_type("-x").is_err());
        assert!(event_type("a:b").is_err());
        assert!(event_type(&"e".repeat(101)).is_err());
    }

    #[test]
    fn step_names() {
        assert!(step_name("validate-inventory").is_ok());
        assert!(step_name("process item 7").is_ok());
        assert!(step_name(&"é".repeat(256)).is_ok());
        assert!(step_name(&"s".repeat(257)).is_err());
        assert!(step_name("a\nb").is_err());
        assert!(step_name("").is_err());
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn engine_rule(s: &str, max: usize) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
            && s.chars().count() <= max
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    proptest! {
        /// Ids and event types are accepted exactly when the engine's rule holds.
        #[test]
        fn ids_follow_the_engine_rule(id in "[a-zA-Z0-9_ .é/-]{0,110}") {
            prop_assert_eq!(instance_id(&id).is_ok(), engine_rule(&id, MAX_INSTANCE_ID_LEN));
            prop_assert_eq!(event_type(&id).is_ok(), engine_rule(&id, MAX_EVENT_TYPE_LEN));
        }

        #[test]
        fn any_text_is_answered(text in ".{0,300}") {
            let _ = instance_id(&text);
            let _ = event_type(&text);
            prop_assert_eq!(step_name(&text).is_ok(), !text.is_empty() && text.chars().count() <= MAX_STEP_NAME_LEN && !text.chars().any(char::is_control));
        }
    }
}
