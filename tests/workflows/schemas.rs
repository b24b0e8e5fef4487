//! The schemas the catalogue serves for its forms (src/schemas.rs) are true to the
//! workflows' types: each example passes the typed check, and every field's required-ness,
//! type, enum and closedness is what the type does with it.

use rust_workflows::schemas::SCHEMAS;
use rust_workflows::WORKFLOWS;
use worker_workflows_api::http::schema::problems;

#[test]
fn every_schema_is_true_to_its_workflow() {
    for schemas in &SCHEMAS {
        let spec = WORKFLOWS.by_name(schemas.workflow).unwrap_or_else(|| panic!("{} is not registered", schemas.workflow));
        let problems = problems(spec, schemas);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn every_declared_event_type_has_a_schema() {
    for spec in WORKFLOWS.workflows() {
        for event_type in spec.events.iter().filter_map(|e| e.event_type) {
            let given = SCHEMAS.iter().find(|s| s.workflow == spec.name).and_then(|s| s.event(event_type));
            assert!(given.is_some(), "{} waits for {event_type:?} events: give their payload's schema in src/schemas.rs", spec.name);
        }
    }
}
