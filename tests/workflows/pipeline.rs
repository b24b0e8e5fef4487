//! data-pipeline: extract to R2, normalise, load into D1 idempotently.

use crate::services::from_json;
use rust_workflows::bridge::testing::{Request, Response, Status, TestEngine};
use rust_workflows::workflows::data_pipeline::{PipelineOutput, PipelineParams};
use rust_workflows::workflows::DataPipelineWorkflow;
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

const SOURCE: &str = "https://source.test/users.json";

/// `n` source records; every 5th is invalid, cycling through a bad email, no id, a bad date.
fn records(n: usize) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = json!({"id": format!("r-{i}"), "name": format!("  User {i} "), "email": format!(" User{i}@Example.COM "), "createdAt": 1_704_067_200_000_u64 + i as u64});
            match (i % 5 == 4).then_some(i % 3) {
                Some(0) => r["email"] = json!("not-an-email"),
                Some(1) => drop(r.as_object_mut().unwrap().remove("id")),
                Some(_) => r["createdAt"] = json!("sometime"),
                None => {}
            }
            r
        })
        .collect();
    Value::Array(records)
}

fn pipeline(body: Value, failures: u32) -> TestEngine {
    let left = Rc::new(Cell::new(failures));
    TestEngine::new().d1("DB").r2("DATA").route(SOURCE, move |_: &Request| {
        if left.get() > 0 {
            left.set(left.get() - 1);
            return Response::json(503, &json!({"error": "source warming up"}));
        }
        Response::ok(&body)
    })
}

fn params() -> PipelineParams {
    from_json(json!({"sourceUrl": SOURCE}))
}

fn loaded(engine: &TestEngine) -> Vec<Value> {
    engine.d1_rows("DB", "SELECT id, name, email, created_at, source FROM records ORDER BY created_at")
}

#[test]
fn bad_records_are_dropped_and_the_rest_normalised_into_d1() {
    let engine = pipeline(records(10), 0);
    let run = engine.run::<DataPipelineWorkflow>("pipe-1", params());
    assert_eq!(run.output::<PipelineOutput>(), PipelineOutput { key: "processed/pipe-1.json".into(), records: 8, dropped: 2 });
    let rows = loaded(&engine);
    assert_eq!(rows.len(), 8);
    assert_eq!(
        rows[0],
        json!({"id": "r-0", "name": "User 0", "email": "user0@example.com", "created_at": "2024-01-01T00:00:00.000Z", "source": "pipe-1"})
    );
    assert_eq!(engine.r2_keys("DATA"), ["processed/pipe-1.json", "raw/pipe-1.json"]);
    let processed: Vec<Value> = serde_json::from_slice(&engine.r2_get("DATA", "processed/pipe-1.json").unwrap().body).unwrap();
    assert_eq!(processed.len(), 8);
    assert_eq!(run.step_names(), ["extract", "transform", "load"]);
}

#[test]
fn many_rows_load_in_batches_of_multi_row_inserts() {
    let engine = pipeline(records(1_234), 0);
    let run = engine.run::<DataPipelineWorkflow>("pipe-big", params());
    let output = run.output::<PipelineOutput>();
    assert_eq!((output.records, output.dropped), (988, 246));
    assert_eq!(engine.d1_rows("DB", "SELECT count(*) AS n FROM records WHERE source = 'pipe-big'"), [json!({"n": 988})]);
}

#[test]
fn a_restart_loads_again_without_duplicating_rows() {
    let engine = pipeline(records(10), 0);
    engine.run::<DataPipelineWorkflow>("pipe-2", params());
    let again = engine.restart("pipe-2");
    assert_eq!(again.output::<PipelineOutput>().records, 8, "every row of the file was inserted again, or skipped");
    assert_eq!(engine.requests_to(SOURCE).len(), 2, "the restart really ran from the start");
    assert_eq!(loaded(&engine).len(), 8);
}

#[test]
fn a_load_attempt_that_fails_midway_is_retried_without_duplicating_rows() {
    use rust_workflows::core::step_error::StepError;
    let engine = pipeline(records(300), 0).fail_step_after_running("load", 2, StepError::failed("D1 batch answer lost"));
    let run = engine.run::<DataPipelineWorkflow>("pipe-3", params());
    assert_eq!(run.step("load").attempts.len(), 3);
    assert_eq!(run.step("load").retry_delays(), [Duration::from_secs(10), Duration::from_secs(20)]);
    assert_eq!(loaded(&engine).len(), 240);
}

#[test]
fn a_source_failing_twice_is_fetched_three_times() {
    let engine = pipeline(records(10), 2);
    let run = engine.run::<DataPipelineWorkflow>("pipe-4", params());
    assert_eq!(run.status, Status::Complete);
    assert_eq!(run.step("extract").attempts.len(), 3);
    assert_eq!(run.step("extract").retry_delays(), [Duration::from_secs(2), Duration::from_secs(4)]);
    assert_eq!(engine.requests_to(SOURCE).len(), 3);
}

#[test]
fn a_source_that_is_not_a_json_array_errors_without_loading_or_retrying() {
    let engine = pipeline(json!({"not": "an array"}), 0);
    let run = engine.run::<DataPipelineWorkflow>("pipe-5", params());
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(run.error().message.starts_with("the source data (raw/pipe-5.json) is not a JSON array of records"), "{}", run.error().message);
    assert_eq!(run.step("transform").attempts.len(), 1);
    assert!(!run.has_step("load"));
    assert!(loaded(&engine).is_empty());
}

#[test]
fn a_source_url_that_is_not_http_fails_before_any_step() {
    let engine = pipeline(records(1), 0);
    let run = engine.run::<DataPipelineWorkflow>("pipe-6", from_json(json!({"sourceUrl": "ftp://source.test/x"})));
    assert_eq!(run.error().message, "sourceUrl must be http or https, not ftp");
    assert!(run.steps.is_empty());
}
