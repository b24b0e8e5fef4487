//! The JSON Schemas a Worker gives for its workflows' params and event payloads
//! ([`Api::with_schemas`](crate::Api::with_schemas)), served by `GET /workflows/{name}`
//! so that a client (the dashboard) can build forms and check input before it sends it.
//!
//! They are JSON text the Worker writes, not derived from the Rust types: a derive
//! (`schemars`) would add a dependency and its code to every Worker's Wasm, for forms
//! only a few workflows need. What keeps the text true to the types is [`problems`], a
//! check for the Worker's tests: it runs the workflow's own typed checks (the ones every
//! create and event goes through) on the schema's `examples` and on variants of them
//! that the schema says must fail or pass (a required field taken out, an optional one
//! taken out, a field of the wrong type, a value outside an `enum`, a field the schema
//! does not name), so a schema that drifts from its type fails a test.
//!
//! The keywords the dashboard reads, and [`problems`] checks: `type`, `properties`,
//! `required`, `additionalProperties: false`, `items`, `enum`, `description`, `examples`
//! (and `minimum`, `maximum`, `minLength`, `maxLength`, `minItems`, `maxItems`, which the
//! dashboard checks and the Worker checks again).

use serde_json::{json, Value};
use worker_workflows::registry::WorkflowSpec;

/// The schemas of one workflow: its params and the payloads of the events it waits for,
/// each a JSON Schema as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowSchemas {
    /// The workflow's name.
    pub workflow: &'static str,
    /// Its params' schema.
    pub params: Option<&'static str>,
    /// `(event type, payload schema)` for the events it waits for.
    pub events: &'static [(&'static str, &'static str)],
}

impl WorkflowSchemas {
    /// No schemas yet for this workflow.
    pub const fn new(workflow: &'static str) -> Self {
        WorkflowSchemas { workflow, params: None, events: &[] }
    }

    /// With its params' schema.
    pub const fn params(mut self, schema: &'static str) -> Self {
        self.params = Some(schema);
        self
    }

    /// With the payload schemas of its events, by type.
    pub const fn events(mut self, events: &'static [(&'static str, &'static str)]) -> Self {
        self.events = events;
        self
    }

    /// The schema of an event type's payload.
    pub fn event(&self, event_type: &str) -> Option<&'static str> {
        self.events.iter().find(|(t, _)| *t == event_type).map(|(_, s)| *s)
    }
}

/// The description `GET /workflows/{name}` answers with (but the counts): name, class,
/// binding, the params' schema (`null` when the Worker gives none) and one entry per
/// declared event type with its payload's schema (`type` `null`: events of any type).
pub fn describe(spec: &WorkflowSpec, schemas: Option<&WorkflowSchemas>) -> Value {
    let parse = |text: Option<&str>| text.and_then(|t| serde_json::from_str::<Value>(t).ok()).unwrap_or(Value::Null);
    let events: Vec<Value> = spec
        .events
        .iter()
        .map(|e| json!({"type": e.event_type, "schema": parse(e.event_type.and_then(|t| schemas.and_then(|s| s.event(t))))}))
        .collect();
    json!({
        "name": spec.name,
        "className": spec.class_name,
        "binding": spec.binding,
        "params": parse(schemas.and_then(|s| s.params)),
        "events": events,
    })
}

/// Everything wrong with a workflow's schemas, checked against its typed params and
/// events (empty: none found). For the Worker's tests:
/// `assert!(schema::problems(spec, &schemas).is_empty())`.
pub fn problems(spec: &WorkflowSpec, schemas: &WorkflowSchemas) -> Vec<String> {
    let mut problems = Vec::new();
    if schemas.workflow != spec.name {
        problems.push(format!("schemas of {:?} checked against workflow {:?}", schemas.workflow, spec.name));
    }
    if let Some(text) = schemas.params {
        conforms(&format!("{} params", spec.name), text, &|v| spec.check_params(v).map_err(|e| e.0), &mut problems);
    }
    for (event_type, text) in schemas.events {
        if !spec.events.iter().any(|e| e.event_type.is_none_or(|t| t == *event_type)) {
            problems.push(format!("{}: event {event_type:?} is not one the workflow declares (Workflow::EVENTS)", spec.name));
            continue;
        }
        let check = |v: &Value| spec.check_event(event_type, v).map_err(|e| e.to_string());
        conforms(&format!("{} event {event_type}", spec.name), text, &check, &mut problems);
    }
    problems
}

type Check<'a> = &'a dyn Fn(&Value) -> Result<(), String>;

fn conforms(what: &str, text: &str, check: Check, problems: &mut Vec<String>) {
    let schema: Value = match serde_json::from_str(text) {
        Ok(schema) => schema,
        Err(e) => return problems.push(format!("{what}: the schema is not JSON: {e}")),
    };
    let examples = schema["examples"].as_array().cloned().unwrap_or_default();
    if examples.is_empty() {
        problems.push(format!("{what}: the schema has no `examples` to check it with"));
    }
    for (i, example) in examples.iter().enumerate() {
        if let Err(e) = check(example) {
            problems.push(format!("{what}: examples[{i}] is refused by the workflow's type: {e}"));
        }
        if i == 0 {
            variants(what, &schema, example, "", example, check, problems);
        }
    }
}

/// A value of a JSON type other than every one `types` lists.
fn other_type(types: &[&str]) -> Value {
    [json!("not-the-declared-type"), json!(12345), json!(true), json!([]), json!({})]
        .into_iter()
        .find(|v| !types.iter().any(|t| type_matches(t, v)))
        .unwrap_or(Value::Null)
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn types_of(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The whole example with the value at `pointer` replaced (`None`: removed).
fn with(root: &Value, pointer: &str, replacement: Option<Value>) -> Value {
    let mut copy = root.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let key = key.replace("~1", "/").replace("~0", "~");
    match (copy.pointer_mut(parent), replacement) {
        (Some(Value::Object(map)), Some(value)) => {
            map.insert(key, value);
        }
        (Some(Value::Object(map)), None) => {
            map.remove(&key);
        }
        (Some(Value::Array(items)), Some(value)) => {
            if let Some(slot) = key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = value;
            }
        }
        _ => {}
    }
    copy
}

/// Checks what the schema says at `pointer` (whose example value is `value`) against the
/// type: each variant the schema refuses must be refused, each it allows accepted.
fn variants(what: &str, schema: &Value, value: &Value, pointer: &str, root: &Value, check: Check, problems: &mut Vec<String>) {
    let at = if pointer.is_empty() { "the top".to_string() } else { pointer.to_string() };
    let expect = |problems: &mut Vec<String>, variant: Value, refused: bool, why: String| {
        if check(&variant).is_ok() == refused {
            let verdict = if refused { "accepts" } else { "refuses" };
            problems.push(format!("{what}: the schema says {why} at {at}, but the workflow's type {verdict} it ({variant})"));
        }
    };
    let types = types_of(schema);
    if !types.is_empty() && !pointer.is_empty() {
        expect(problems, with(root, pointer, Some(other_type(&types))), true, format!("a value of another type than {types:?} is refused"));
    }
    if schema["enum"].is_array() && !pointer.is_empty() {
        expect(problems, with(root, pointer, Some(json!("\u{1}not-in-the-enum"))), true, "a value outside the enum is refused".into());
    }
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object()) {
        let required: Vec<&str> = schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        for (name, property) in properties {
            let child = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
            match object.get(name) {
                Some(child_value) => {
                    let is_required = required.contains(&name.as_str());
                    let why = if is_required { format!("{name:?} is required") } else { format!("{name:?} is optional") };
                    expect(problems, with(root, &child, None), is_required, why);
                    variants(what, property, child_value, &child, root, check, problems);
                }
                None if required.contains(&name.as_str()) => {
                    problems.push(format!("{what}: the example leaves out {name:?}, which the schema requires, at {at}"))
                }
                None => {}
            }
        }
        let unknown = "notAFieldOfTheSchema";
        let closed = schema["additionalProperties"] == Value::Bool(false);
        let why = if closed {
            "fields it does not name are refused"
        } else {
            "fields it does not name are accepted (no additionalProperties: false)"
        };
        expect(problems, with(root, &format!("{pointer}/{unknown}"), Some(json!("x"))), closed, why.into());
    }
    if let (Some(items), Some(first)) = (schema.get("items").filter(|i| i.is_object()), value.as_array().and_then(|a| a.first())) {
        variants(what, items, first, &format!("{pointer}/0"), root, check, problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use worker_workflows::{Env, Event, EventSpec, Registered, Step, StepError, Workflow, WorkflowEvent, WorkflowSettings};

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct ShopParams {
        order_id: String,
        items: Vec<Item>,
        #[serde(default)]
        note: Option<String>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Item {
        sku: String,
        quantity: u32,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Decision {
        approved: bool,
    }

    impl Event for Decision {
        const TYPE: &'static str = "decision";
    }

    struct Shop;

    impl Workflow for Shop {
        type Params = ShopParams;
        type Output = ();
        const EVENTS: &'static [EventSpec] = &[EventSpec::of::<Decision>()];
        fn new(_env: Env) -> Self {
            Shop
        }
        async fn run(&self, _event: &WorkflowEvent<ShopParams>, _step: Step<'_>) -> Result<(), StepError> {
            Ok(())
        }
    }

    impl Registered for Shop {
        const SETTINGS: WorkflowSettings = WorkflowSettings::new("order-processing", "Shop").binding("SHOP");
    }

    static SPEC: WorkflowSpec = WorkflowSpec::of::<Shop>();

    fn spec() -> &'static WorkflowSpec {
        &SPEC
    }

    const GOOD: &str = r#"{
        "type": "object",
        "properties": {
            "orderId": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}}, "required": ["sku", "quantity"]}},
            "note": {"type": "string"}
        },
        "required": ["orderId", "items"],
        "examples": [{"orderId": "42", "items": [{"sku": "p-1", "quantity": 2}], "note": "gift"}]
    }"#;

    #[test]
    fn a_schema_true_to_its_type_has_no_problems() {
        let problems = problems(spec(), &WorkflowSchemas::new("order-processing").params(GOOD));
        assert_eq!(problems, Vec::<String>::new());
    }

    #[test]
    fn drift_is_found() {
        let check = |schema: String| problems(spec(), &WorkflowSchemas::new("order-processing").params(Box::leak(schema.into_boxed_str())));
        // A required field the schema calls optional.
        let p = check(GOOD.replace(r#""required": ["orderId", "items"]"#, r#""required": ["items"]"#));
        assert!(p.iter().any(|p| p.contains(r#""orderId" is optional"#)), "{p:?}");
        // An optional field the schema calls required.
        let p = check(GOOD.replace(r#""required": ["orderId", "items"]"#, r#""required": ["orderId", "items", "note"]"#));
        assert!(p.iter().any(|p| p.contains(r#""note" is required"#)), "{p:?}");
        // A wrong type, nested in an array's items.
        let p = check(GOOD.replace(r#""quantity": {"type": "integer"}"#, r#""quantity": {"type": "string"}"#));
        assert!(p.iter().any(|p| p.contains("/items/0/quantity")), "{p:?}");
        // Closed where the type is open.
        let p = check(GOOD.replacen(
            r#""required": ["orderId", "items"]"#,
            r#""required": ["orderId", "items"], "additionalProperties": false"#,
            1,
        ));
        assert!(p.iter().any(|p| p.contains("fields it does not name are refused")), "{p:?}");
        // An example the type refuses, and none at all.
        let p = check(GOOD.replace(r#""quantity": 2"#, r#""quantity": "two""#));
        assert!(p.iter().any(|p| p.contains("examples[0] is refused")), "{p:?}");
        let p = check(GOOD.replace(r#""examples""#, r#""x-examples""#));
        assert!(p.iter().any(|p| p.contains("no `examples`")), "{p:?}");
        // Not JSON; another workflow's schemas.
        assert!(check("{".into()).iter().any(|p| p.contains("not JSON")));
        assert!(!problems(spec(), &WorkflowSchemas::new("probe").params(GOOD)).is_empty());
    }

    #[test]
    fn events_must_be_declared_and_true_to_their_type() {
        let declared = WorkflowSchemas::new("order-processing").events(&[("nudge", r#"{"type": "object", "examples": [{}]}"#)]);
        assert!(problems(spec(), &declared)[0].contains("not one the workflow declares"), "{:?}", problems(spec(), &declared));
        const GOOD_EVENT: &str = r#"{"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"], "additionalProperties": false, "examples": [{"approved": true}]}"#;
        assert_eq!(problems(spec(), &WorkflowSchemas::new("order-processing").events(&[("decision", GOOD_EVENT)])), Vec::<String>::new());
        const OPEN_EVENT: &str = r#"{"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"], "examples": [{"approved": true}]}"#;
        let p = problems(spec(), &WorkflowSchemas::new("order-processing").events(&[("decision", OPEN_EVENT)]));
        assert!(p.iter().any(|p| p.contains("are accepted")), "{p:?}");
    }

    #[test]
    fn the_description_carries_the_schemas_parsed() {
        let schemas = WorkflowSchemas::new("order-processing").params(GOOD);
        let described = describe(spec(), Some(&schemas));
        assert_eq!(described["name"], "order-processing");
        assert_eq!(described["params"]["required"], json!(["orderId", "items"]));
        assert_eq!(describe(spec(), None)["params"], Value::Null);
        assert_eq!(described["events"], json!([{"type": "decision", "schema": null}]));
    }
}
