//! The engine's rules for names, checked in Rust so a bad one is a clear error
//! of ours rather than a JS exception from the engine.

/// A name the engine would refuse (or, for reserved ids, that this API keeps). Errors
/// are shown to callers and logged, so a refused name is shown as an [`excerpt`]: a
/// caller's megabyte of "id" is not repeated back whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// An instance id that is not 1 to [`MAX_INSTANCE_ID_LEN`] ASCII letters, digits, `-` and
    /// `_`, starting with a letter, digit or `_`.
    #[error("invalid instance id {}: 1 to 100 characters, letters, digits, '-' and '_', not starting with '-'", excerpt(.0))]
    InstanceId(String),
    /// An instance id that is reserved ([`is_reserved_instance_id`]).
    #[error("instance id {0:?} is reserved (`batch` and `delete` are routes under /workflows/{{name}}/instances/, and the engine keeps `terminate`, `terminateAll` and `cf_` + 64 hex digits): choose another")]
    ReservedInstanceId(String),
    /// An event type that is not 1 to [`MAX_EVENT_TYPE_LEN`] ASCII letters, digits, `-` and
    /// `_`, starting with a letter, digit or `_`.
    #[error("invalid event type {}: 1 to 100 characters, letters, digits, '-' and '_', not starting with '-'", excerpt(.0))]
    EventType(String),
    /// A step name that is empty, longer than [`MAX_STEP_NAME_LEN`] characters or holds a
    /// control character.
    #[error("invalid step name {}: 1 to 256 characters without control characters", excerpt(.0))]
    StepName(String),
}

/// The most characters of a caller's value an error repeats ([`excerpt`]).
pub const MAX_EXCERPT_CHARS: usize = 32;

/// A caller's value as an error may show it: quoted and escaped, cut to
/// [`MAX_EXCERPT_CHARS`] characters with its length when longer
/// (`"aaaa…" (500 characters)`).
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((end, _)) => format!("{:?} ({} characters)", format!("{}…", &text[..end]), text.chars().count()),
        None => format!("{text:?}"),
    }
}

/// A serde error message with the caller's values cut short: a string value longer than
/// 8 characters (`invalid type: string "…"`) becomes `a string of N characters`, and an
/// unknown field or variant name is cut to [`MAX_EXCERPT_CHARS`]. What is wrong and where
/// stays; a secret sent in the wrong field is not repeated back.
pub fn serde_message(message: &str) -> String {
    const SHOWN_STRING_CHARS: usize = 8;
    let mut out = String::with_capacity(message.len().min(512));
    let mut rest = message;
    loop {
        let string_at = rest.find("string \"");
        let name_at = ["unknown field `", "unknown variant `"].iter().filter_map(|m| rest.find(m).map(|i| (i, m.len()))).min();
        match (string_at, name_at) {
            (Some(i), name) if name.is_none_or(|(j, _)| i < j) => {
                // A Debug-quoted string: it ends at the first quote not escaped.
                let body = &rest[i + 8..];
                let mut end = None;
                let mut escaped = false;
                for (k, c) in body.char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(k);
                            break;
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    out.push_str(rest);
                    break;
                };
                let quoted = &body[..end];
                out.push_str(&rest[..i]);
                let chars = quoted.chars().count();
                if chars <= SHOWN_STRING_CHARS {
                    out.push_str(&rest[i..i + 8 + end + 1]);
                } else {
                    out.push_str(&format!("a string of about {chars} characters"));
                }
                rest = &body[end + 1..];
            }
            (_, Some((j, len))) => {
                let body = &rest[j + len..];
                let end = body.find("`, ").or_else(|| body.rfind('`')).unwrap_or(body.len());
                out.push_str(&rest[..j + len]);
                let name = &body[..end];
                match name.char_indices().nth(MAX_EXCERPT_CHARS) {
                    Some((cut, _)) => out.push_str(&format!("{}…", &name[..cut])),
                    None => out.push_str(name),
                }
                rest = &body[end..];
            }
            _ => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
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
    serde_path_to_error::deserialize(params).map_err(params_mismatch)
}

/// Params read as a run reads them ([`typed_params_tolerant`]): the typed params, and the
/// fields that were dropped because the type no longer has them (paths as serde names
/// them: `legacyField`, `items[0].note`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tolerated<P> {
    /// The params, typed.
    pub params: P,
    /// The fields dropped to read them, in the order they were found.
    pub ignored: Vec<String>,
}

/// The most unknown fields [`typed_params_tolerant`] drops before it gives up.
pub const MAX_IGNORED_FIELDS: usize = 256;

/// Reads params as a *run* of an instance does, which may be long after they were
/// checked: tolerant of fields the type no longer has. A deploy that removes a field (from
/// a type with `#[serde(deny_unknown_fields)]`, which [`typed_params`] and so every
/// create keep strict) must not break the instances created before it, whose params
/// still hold the field and are read again on every replay. So an `unknown field` error
/// drops that field (wherever it is: nested structs, list items and enum variants
/// included) and reads again, up to [`MAX_IGNORED_FIELDS`] times. Every other mismatch
/// is an error, as with [`typed_params`]: a field *added* without a default
/// (`#[serde(default)]` or an `Option`) cannot be made up for an instance created without
/// it.
pub fn typed_params_tolerant<P: serde::de::DeserializeOwned>(params: &serde_json::Value) -> Result<Tolerated<P>, ParamsMismatch> {
    let mut trimmed: Option<serde_json::Value> = None;
    let mut ignored = Vec::new();
    loop {
        let current = trimmed.as_ref().unwrap_or(params);
        let error = match serde_path_to_error::deserialize::<_, P>(current) {
            Ok(params) => return Ok(Tolerated { params, ignored }),
            Err(error) => error,
        };
        let unknown = unknown_field_name(&error.inner().to_string());
        if let (Some(field), true) = (unknown, ignored.len() < MAX_IGNORED_FIELDS) {
            let mut value = trimmed.take().unwrap_or_else(|| params.clone());
            if remove_field(&mut value, error.path(), &field) {
                ignored.push(error.path().to_string());
                trimmed = Some(value);
                continue;
            }
        }
        return Err(params_mismatch(error));
    }
}

fn params_mismatch(e: serde_path_to_error::Error<serde_json::Error>) -> ParamsMismatch {
    let path = e.path().to_string();
    let inner = serde_message(&e.into_inner().to_string());
    ParamsMismatch(if path == "." { inner } else { format!("{path}: {inner}") })
}

/// The field an `unknown field `x`, expected …` error names.
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find("`, expected").or_else(|| rest.find("`, there are no fields")).or_else(|| rest.rfind('`'))?;
    Some(rest[..end].to_string())
}

/// Removes `field` from the object `path` leads to (its last segment is the field
/// itself); false when the path does not lead to such an object in `value`.
fn remove_field(value: &mut serde_json::Value, path: &serde_path_to_error::Path, field: &str) -> bool {
    use serde_json::Value;
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else { return false };
    if key != field {
        return false;
    }
    let mut current = value;
    for segment in parents {
        current = match segment {
            Segment::Seq { index } => match current.get_mut(*index) {
                Some(item) => item,
                None => return false,
            },
            Segment::Map { key } => match current.get_mut(key.as_str()) {
                Some(item) => item,
                None => return false,
            },
            // An externally tagged variant is a one-key object; other representations
            // keep the variant's fields where they are.
            Segment::Enum { variant } if current.get(variant.as_str()).is_some() => match current.get_mut(variant.as_str()) {
                Some(item) => item,
                None => return false,
            },
            Segment::Enum { .. } => current,
            Segment::Unknown => return false,
        };
    }
    match current {
        Value::Object(map) => map.remove(field).is_some(),
        _ => false,
    }
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
    fn refused_names_are_shown_as_excerpts() {
        assert_eq!(excerpt("short"), "\"short\"");
        let long = "a".repeat(500);
        assert_eq!(excerpt(&long), format!("\"{}…\" (500 characters)", "a".repeat(MAX_EXCERPT_CHARS)));
        assert_eq!(excerpt("a\nb"), "\"a\\nb\"");
        let e = instance_id(&format!("-{}", "s".repeat(1000))).unwrap_err().to_string();
        assert!(e.len() < 200 && e.contains("1001 characters"), "{e}");
        assert!(step_name(&"x".repeat(300)).unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn serde_messages_keep_the_problem_but_not_long_values() {
        assert_eq!(serde_message(r#"invalid type: string "two", expected u32"#), r#"invalid type: string "two", expected u32"#);
        assert_eq!(
            serde_message(r#"invalid type: string "hunter2-password", expected u32 at line 1 column 9"#),
            "invalid type: a string of about 16 characters, expected u32 at line 1 column 9"
        );
        // Escaped quotes inside the value do not end it early.
        assert_eq!(
            serde_message(r#"invalid value: string "ab\"cdef\"gh", expected x"#),
            "invalid value: a string of about 12 characters, expected x"
        );
        let long = "k".repeat(100);
        assert_eq!(
            serde_message(&format!("unknown field `{long}`, expected `id` or `params`")),
            format!("unknown field `{}…`, expected `id` or `params`", "k".repeat(MAX_EXCERPT_CHARS))
        );
        assert_eq!(serde_message("unknown variant `loop`, expected one of `do`"), "unknown variant `loop`, expected one of `do`");
        assert_eq!(serde_message("missing field `orderId`"), "missing field `orderId`");
        // Through typed params: where, what, never the long value.
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct P {
            n: u32,
        }
        let e = typed_params::<P>(&serde_json::json!({"n": "sk_live_0123456789abcdef"})).unwrap_err().0;
        assert_eq!(e, "n: invalid type: a string of about 24 characters, expected u32");
    }

    #[test]
    fn a_run_reads_params_whose_fields_a_deploy_removed_and_a_create_refuses_them() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Item {
            product_id: String,
        }
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase", rename_all_fields = "camelCase")]
        enum Action {
            Call { name: String },
            Wait,
        }
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Params {
            order_id: String,
            items: Vec<Item>,
            actions: Vec<Action>,
            #[serde(default)]
            priority: Option<u8>,
        }
        // Created before a deploy that removed `giftWrap`, an item's `note` and a call's `legacy`.
        let old = serde_json::json!({
            "orderId": "o-1",
            "giftWrap": true,
            "items": [{"productId": "p-1"}, {"productId": "p-2", "note": "fragile"}],
            "actions": [{"call": {"name": "n", "legacy": 1}}, "wait"],
        });
        let read = typed_params_tolerant::<Params>(&old).unwrap();
        assert_eq!(
            read.params,
            Params {
                order_id: "o-1".into(),
                items: vec![Item { product_id: "p-1".into() }, Item { product_id: "p-2".into() }],
                actions: vec![Action::Call { name: "n".into() }, Action::Wait],
                priority: None,
            }
        );
        assert_eq!(read.ignored, ["actions[0].call.legacy", "giftWrap", "items[1].note"]);
        // A create is strict: the same params are refused, naming the field.
        let refused = typed_params::<Params>(&old).unwrap_err().0;
        assert!(refused.starts_with("actions[0].call.legacy: unknown field `legacy`"), "{refused}");
        // Params that fit are read with nothing dropped (and nothing copied).
        let fit = typed_params_tolerant::<Params>(&serde_json::json!({"orderId": "o", "items": [], "actions": []})).unwrap();
        assert!(fit.ignored.is_empty());
        // Only unknown fields are tolerated: a wrong type, or a field added without a default, is not.
        let wrong = typed_params_tolerant::<Params>(&serde_json::json!({"orderId": 7, "items": [], "actions": []})).unwrap_err().0;
        assert_eq!(wrong, "orderId: invalid type: integer `7`, expected a string");
        let missing = typed_params_tolerant::<Params>(&serde_json::json!({"orderId": "o", "gone": 1, "actions": []})).unwrap_err().0;
        assert_eq!(missing, "missing field `items`");
    }

    #[test]
    fn dropping_unknown_fields_is_bounded() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Tiny {
            a: u8,
        }
        let mut many = serde_json::Map::new();
        many.insert("a".into(), 1.into());
        for i in 0..MAX_IGNORED_FIELDS {
            many.insert(format!("f{i}"), i.into());
        }
        assert_eq!(typed_params_tolerant::<Tiny>(&serde_json::Value::Object(many.clone())).unwrap().ignored.len(), MAX_IGNORED_FIELDS);
        many.insert("one-too-many".into(), 0.into());
        let e = typed_params_tolerant::<Tiny>(&serde_json::Value::Object(many)).unwrap_err().0;
        assert!(e.contains("unknown field"), "{e}");
        assert_eq!(unknown_field_name("unknown field `x`, there are no fields"), Some("x".into()));
        assert_eq!(unknown_field_name("missing field `x`"), None);
    }

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

        /// A string longer than 8 characters in a serde error is never repeated, and the
        /// rest of the message is kept.
        #[test]
        fn serde_messages_never_repeat_long_strings(value in ".{9,60}", before in "[a-z :]{0,20}") {
            let message = format!("{before}invalid type: string {value:?}, expected u32");
            let shown = serde_message(&message);
            prop_assert!(!shown.contains(&value), "{}", shown);
            prop_assert!(shown.starts_with(&before) && shown.ends_with(", expected u32"), "{}", shown);
        }

        /// Fields a deploy removed, anywhere, never change what a run reads: the tolerant
        /// read of params with extra fields is the strict read of the params without them.
        #[test]
        fn extra_fields_are_dropped_and_nothing_else_changes(
            names in proptest::collection::vec("[a-z]{1,8}", 0..4),
            extra in proptest::collection::btree_map("[a-z]{1,6}x", any::<u32>(), 0..4),
            nested in proptest::collection::btree_map("[a-z]{1,6}y", any::<bool>(), 0..3),
        ) {
            #[derive(Debug, PartialEq, serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Item { name: String }
            #[derive(Debug, PartialEq, serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Params { items: Vec<Item>, n: u32 }
            let clean = serde_json::json!({"n": 3, "items": names.iter().map(|n| serde_json::json!({"name": n})).collect::<Vec<_>>()});
            let mut grown = clean.clone();
            for (k, v) in &extra {
                grown[k] = (*v).into();
            }
            if let Some(items) = grown["items"].as_array_mut() {
                for item in items.iter_mut() {
                    for (k, v) in &nested {
                        item[k] = (*v).into();
                    }
                }
            }
            let read = typed_params_tolerant::<Params>(&grown).unwrap();
            prop_assert_eq!(read.params, typed_params::<Params>(&clean).unwrap());
            prop_assert_eq!(read.ignored.len(), extra.len() + nested.len() * names.len());
        }

        #[test]
        fn any_message_is_answered(text in ".{0,200}") {
            let _ = serde_message(&text);
        }

        #[test]
        fn any_text_is_answered(text in ".{0,300}") {
            let _ = instance_id(&text);
            let _ = event_type(&text);
            prop_assert_eq!(step_name(&text).is_ok(), !text.is_empty() && text.chars().count() <= MAX_STEP_NAME_LEN && !text.chars().any(char::is_control));
        }
    }
}
