//! The API's OpenAPI 3.1 document, served at `GET /openapi.json`.
//!
//! The base is hand-written JSON (`src/http/openapi.json`) embedded at compile time,
//! minified by `build.rs` (the same document, about 33 KB less to upload). What is served
//! is that base with the Worker's own: the names of the workflows it serves as the
//! `{name}` parameter's values, and the paths, components and tags of routes the Worker
//! adds itself ([`Api::with_openapi`](crate::Api::with_openapi)).
//! The tests here keep the base honest: it documents exactly the operations in
//! [`crate::http::routes::ROUTES`], each with its responses (405 included), bearer
//! security on `/workflows…` and none on the public routes, and every `$ref` resolves.

use serde_json::Value;

/// The base document, minified.
pub const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.min.json"));

/// The served document: [`DOCUMENT`] with `workflows` as the values of the `{name}` path
/// parameter, and each of `extras` (JSON objects with any of `paths`, `components` (by
/// section) and `tags`) merged in. An extra that is not such JSON is skipped and named in
/// the document's `x-skipped-extras`, so a mistake shows in the document rather than
/// failing every request for it.
pub fn document(workflows: &[&str], extras: &[&str]) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(DOCUMENT) else { return DOCUMENT.to_string() };
    if let Some(schema) = doc.pointer_mut("/components/parameters/WorkflowName/schema") {
        schema["enum"] = workflows.iter().map(|w| Value::from(*w)).collect();
    }
    let mut skipped = Vec::new();
    for (i, extra) in extras.iter().enumerate() {
        match serde_json::from_str::<Value>(extra) {
            Ok(Value::Object(extra)) => merge_extra(&mut doc, extra),
            _ => skipped.push(i),
        }
    }
    if !skipped.is_empty() {
        doc["x-skipped-extras"] = skipped.into();
    }
    doc.to_string()
}

fn merge_extra(doc: &mut Value, extra: serde_json::Map<String, Value>) {
    for (key, value) in extra {
        match (key.as_str(), value) {
            ("paths", Value::Object(paths)) => {
                if let Some(doc_paths) = doc["paths"].as_object_mut() {
                    doc_paths.extend(paths);
                }
            }
            ("components", Value::Object(sections)) => {
                for (section, items) in sections {
                    if let (Some(doc_section), Value::Object(items)) = (doc["components"][&section].as_object_mut(), &items) {
                        doc_section.extend(items.clone());
                    } else {
                        doc["components"][section] = items;
                    }
                }
            }
            ("tags", Value::Array(tags)) => {
                if let Some(doc_tags) = doc["tags"].as_array_mut() {
                    doc_tags.extend(tags);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;
    use crate::http::routes::ROUTES;
    use serde_json::Value;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    fn doc() -> Value {
        serde_json::from_str(DOCUMENT).expect("src/http/openapi.json is valid JSON")
    }

    /// Every `(method, template, operation)` the document declares.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let paths = doc["paths"].as_object().expect("paths is an object");
        let mut ops = Vec::new();
        for (template, item) in paths {
            let item = item.as_object().unwrap_or_else(|| panic!("path item {template} is an object"));
            for (key, op) in item {
                if METHODS.contains(&key.as_str()) {
                    ops.push((key.to_uppercase(), template.clone(), op.clone()));
                }
            }
        }
        ops
    }

    /// The routes anyone may call; everything else needs the API token.
    fn is_public(template: &str) -> bool {
        ["/health", "/openapi.json"].contains(&template)
    }

    fn has_bearer(op: &Value) -> bool {
        op["security"].as_array().is_some_and(|reqs| reqs.iter().any(|r| r.as_object().is_some_and(|r| r.contains_key("bearerAuth"))))
    }

    #[test]
    fn the_served_document_is_the_one_on_disk_minified() {
        let disk: Value = serde_json::from_str(include_str!("openapi.json")).expect("src/http/openapi.json is valid JSON");
        assert_eq!(doc(), disk);
        assert!(DOCUMENT.len() < include_str!("openapi.json").len() * 2 / 3, "{} bytes", DOCUMENT.len());
        assert!(!DOCUMENT.contains("\n  "), "the served document is minified");
    }

    #[test]
    fn parses_as_openapi_3_1() {
        let doc = doc();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
        assert_eq!(doc["info"]["title"], "Rust Workflows API");
        assert_eq!(doc["info"]["version"], "0.1.0");
        assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["type"], "http");
        assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
    }

    #[test]
    fn every_route_is_documented() {
        let doc = doc();
        for (method, template) in ROUTES {
            let op = &doc["paths"][*template][method.to_lowercase()];
            assert!(op.is_object(), "{method} {template} is not in the OpenAPI document");
        }
    }

    #[test]
    fn every_documented_operation_is_a_route() {
        for (method, template, _) in operations(&doc()) {
            assert!(
                ROUTES.iter().any(|(m, t)| *m == method && *t == template),
                "the OpenAPI document has {method} {template}, which ROUTES lacks"
            );
        }
        assert_eq!(operations(&doc()).len(), ROUTES.len());
    }

    #[test]
    fn every_operation_has_responses_including_405() {
        for (method, template, op) in operations(&doc()) {
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {template} has no responses"));
            assert!(!responses.is_empty(), "{method} {template} has no responses");
            assert!(responses.contains_key("405"), "{method} {template} does not document 405");
            assert!(responses.keys().any(|code| code.starts_with('2')), "{method} {template} documents no success response");
        }
    }

    #[test]
    fn path_parameters_are_declared() {
        let doc = doc();
        for (method, template, op) in operations(&doc) {
            let item = &doc["paths"][template.as_str()];
            let declared: Vec<String> = [&item["parameters"], &op["parameters"]]
                .into_iter()
                .filter_map(Value::as_array)
                .flatten()
                .map(|p| resolve_param(&doc, p))
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(String::from))
                .collect();
            for segment in template.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_start_matches('{').trim_end_matches('}');
                assert!(declared.iter().any(|d| d == name), "{method} {template} does not declare path parameter {name}");
            }
        }
    }

    fn resolve_param(doc: &Value, p: &Value) -> Value {
        match p["$ref"].as_str() {
            Some(r) => doc.pointer(r.trim_start_matches('#')).cloned().unwrap_or(Value::Null),
            None => p.clone(),
        }
    }

    #[test]
    fn workflows_routes_need_the_bearer_token_and_public_ones_do_not() {
        let doc = doc();
        // No document-wide default that would apply to the public routes.
        assert!(!has_bearer(&doc), "top-level security must not require bearerAuth");
        for (method, template, op) in operations(&doc) {
            if is_public(&template) {
                assert!(!has_bearer(&op), "{method} {template} is public but documents bearer security");
                assert!(!op["responses"].as_object().is_some_and(|r| r.contains_key("401")), "{method} {template} is public");
            } else {
                assert!(has_bearer(&op), "{method} {template} lacks bearer security");
                assert!(op["responses"]["401"].is_object(), "{method} {template} does not document 401");
            }
        }
    }

    #[test]
    fn public_operations_match_the_router() {
        for (method, template) in ROUTES {
            let path = template.replace("{name}", "w").replace("{id}", "i").replace("{type}", "t");
            let route = crate::http::routes::route(method, &path).unwrap();
            assert_eq!(route.requires_auth(), !is_public(template), "{method} {template}");
        }
    }

    fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if key == "$ref" {
                        out.push(v.as_str().expect("$ref is a string"));
                    } else {
                        collect_refs(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves_within_the_document() {
        let doc = doc();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("$ref {r} points outside the document"));
            assert!(doc.pointer(pointer).is_some(), "$ref {r} does not resolve");
        }
    }

    #[test]
    fn every_response_body_is_json_and_errors_use_the_error_schema() {
        let doc = doc();
        for (method, template, op) in operations(&doc) {
            for (code, response) in op["responses"].as_object().unwrap() {
                let response = resolve_param(&doc, response);
                if code == "204" {
                    assert!(response.get("content").is_none(), "{method} {template} 204 documents a body");
                    continue;
                }
                let content = response["content"].as_object().unwrap_or_else(|| panic!("{method} {template} {code} has no body"));
                // JSON everywhere; the history's 200 may also be an event stream.
                assert!(content.contains_key("application/json"), "{method} {template} {code} has no JSON body");
                for media in content.keys() {
                    let event_stream = media == "text/event-stream" && code == "200" && template.ends_with("/history");
                    assert!(media == "application/json" || event_stream, "{method} {template} {code} serves {media}");
                }
                if code.starts_with('4') {
                    assert_eq!(content["application/json"]["schema"]["$ref"], "#/components/schemas/Error", "{method} {template} {code}");
                }
            }
        }
        assert_eq!(doc["paths"]["/workflows"]["get"]["responses"]["405"]["$ref"], "#/components/responses/MethodNotAllowed");
        assert_eq!(doc["components"]["responses"]["MethodNotAllowed"]["headers"]["Allow"]["required"], true);
    }

    #[test]
    fn the_served_document_names_the_workflows_and_merges_a_workers_own_routes() {
        let extra = r#"{"paths": {"/hello": {"get": {"responses": {"200": {"description": "hi"}}}}},
                        "components": {"schemas": {"Hello": {"type": "string"}}}, "tags": [{"name": "mine"}]}"#;
        let served: Value = serde_json::from_str(&super::document(&["order", "approval"], &[extra, "not json"])).unwrap();
        assert_eq!(served["components"]["parameters"]["WorkflowName"]["schema"]["enum"], serde_json::json!(["order", "approval"]));
        assert_eq!(served["paths"]["/hello"]["get"]["responses"]["200"]["description"], "hi");
        assert!(served["paths"]["/workflows"].is_object(), "the base paths stay");
        assert_eq!(served["components"]["schemas"]["Hello"]["type"], "string");
        assert!(served["components"]["schemas"]["Error"].is_object(), "the base schemas stay");
        assert!(served["tags"].as_array().unwrap().iter().any(|t| t["name"] == "mine"));
        assert_eq!(served["x-skipped-extras"], serde_json::json!([1]));
        let plain: Value = serde_json::from_str(&super::document(&[], &[])).unwrap();
        assert!(plain.get("x-skipped-extras").is_none());
    }

    #[test]
    fn instance_status_lists_every_engine_status() {
        use worker_workflows::core::status::InstanceState::*;
        let doc = doc();
        let documented: Vec<&str> =
            doc["components"]["schemas"]["InstanceStatus"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        for state in [Queued, Running, Paused, Errored, Terminated, Complete, Waiting, WaitingForPause, RollingBack, Unknown] {
            assert!(documented.contains(&state.as_str()), "{} is not in InstanceStatus", state.as_str());
        }
        assert_eq!(documented.len(), 10);
    }

    #[test]
    fn the_history_documents_its_event_stream() {
        let doc = doc();
        let ok = &doc["paths"]["/workflows/{name}/instances/{id}/history"]["get"]["responses"]["200"]["content"];
        assert!(ok["text/event-stream"]["schema"].is_object());
        assert!(ok["text/event-stream"]["example"].as_str().is_some_and(|e| e.starts_with("id: ")));
        // Every event type the Rust side decodes is listed for clients.
        let listed = doc["components"]["schemas"]["InstanceEvent"]["description"].as_str().unwrap();
        for t in worker_workflows::core::instance_events::EVENT_TYPES {
            assert!(listed.contains(&format!(" {t},")) || listed.contains(&format!(" {t} ")), "{t} is not listed in InstanceEvent");
        }
    }

    #[test]
    fn the_history_documents_format_replay_with_every_field_the_rust_type_writes() {
        use worker_workflows::core::instance_events::{EventKind, InstanceEvent, StepOutput, StepRef};
        use worker_workflows::core::replay_history::{ReplayHistoryFold, FORMAT, VERSION};
        let doc = doc();
        let op = &doc["paths"]["/workflows/{name}/instances/{id}/history"]["get"];
        let format = op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "format").expect("the format parameter");
        assert_eq!((format["in"].as_str(), format["schema"]["enum"].clone()), (Some("query"), serde_json::json!(["replay"])));
        let json = &op["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"];
        assert!(json.as_array().unwrap().iter().any(|s| s["$ref"] == "#/components/schemas/ReplayHistory"));
        let schema = &doc["components"]["schemas"]["ReplayHistory"];
        assert_eq!(
            (schema["properties"]["format"]["const"].as_str(), schema["properties"]["version"]["const"].as_u64()),
            (Some(FORMAT), Some(u64::from(VERSION)))
        );
        // A history with every optional field set: each key it serialises is documented.
        let step = |name: &str| StepRef { name: name.into(), count: 1 };
        let error = worker_workflows::core::status::InstanceError { name: "Error".into(), message: "m".into() };
        let mut fold = ReplayHistoryFold::new("w", "i");
        for (i, kind) in [
            EventKind::WorkflowQueued,
            EventKind::WorkflowStarted { params: Some(StepOutput::Omitted { chars: 5 }) },
            EventKind::StepStarted { step: step("a"), config: None },
            EventKind::AttemptErrored { step: step("a"), attempt: 1, error: error.clone(), retry_delay_ms: None },
            EventKind::StepCompleted { step: step("a"), output: Some(StepOutput::Value(serde_json::json!(1))) },
            EventKind::StepStarted { step: step("b"), config: None },
            EventKind::StepCompleted { step: step("b"), output: Some(StepOutput::Redacted) },
            EventKind::StepStarted { step: step("c"), config: None },
            EventKind::StepCompleted { step: step("c"), output: Some(StepOutput::Stream) },
            EventKind::StepStarted { step: step("d"), config: None },
            EventKind::StepCompleted { step: step("d"), output: Some(StepOutput::Omitted { chars: 9 }) },
            EventKind::StepStarted { step: step("e"), config: None },
            EventKind::AttemptErrored { step: step("e"), attempt: 1, error: error.clone(), retry_delay_ms: None },
            EventKind::StepErrored { step: step("e") },
            EventKind::SleepStarted { step: step("f"), duration_ms: 5 },
            EventKind::WaitStarted { step: step("g"), event_type: "t".into() },
            EventKind::WorkflowErrored { error },
        ]
        .into_iter()
        .enumerate()
        {
            fold.apply(&InstanceEvent { event_id: i as u64, timestamp: 1, kind });
        }
        let mut history = serde_json::to_value(fold.finish(false)).unwrap();
        history["params"] = serde_json::json!({});
        history["output"] = serde_json::json!({});
        let documented = |schema: &Value, key: &str| schema["properties"].get(key).is_some();
        for key in history.as_object().unwrap().keys() {
            assert!(documented(schema, key), "ReplayHistory does not document {key}");
        }
        let step_schema = &doc["components"]["schemas"]["ReplayStep"];
        let mut seen = std::collections::BTreeSet::new();
        for step in history["steps"].as_array().unwrap() {
            for key in step.as_object().unwrap().keys() {
                assert!(documented(step_schema, key), "ReplayStep does not document {key}");
                seen.insert(key.clone());
            }
        }
        assert_eq!(seen.len(), step_schema["properties"].as_object().unwrap().len(), "every documented field was written: {seen:?}");
    }

    #[test]
    fn every_error_code_is_documented() {
        let doc = doc();
        let listed = doc["components"]["schemas"]["Error"]["description"].as_str().unwrap();
        // The repository's README, the user's manual of this crate too.
        let readme = include_str!("../../../../README.md");
        for error in crate::http::api::ApiError::one_of_each() {
            let code = format!("`{}`", error.code());
            assert!(listed.contains(&code), "the Error schema's description does not list {code}");
            assert!(readme.contains(&code), "README.md does not list {code}");
        }
    }
}
