//! data-pipeline: extract to R2, normalise, load into D1 idempotently.

use crate::services::from_json;
use rust_workflows::workflows::data_chunk::ChunkOutput;
use rust_workflows::workflows::data_pipeline::{PipelineOutput, PipelineParams};
use rust_workflows::workflows::{DataChunkWorkflow, DataPipelineWorkflow};
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use worker_workflows::testing::{Request, Response, Status, TestEngine};

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
    assert_eq!(
        run.output::<PipelineOutput>(),
        PipelineOutput { key: "processed/pipe-1.json".into(), records: 8, dropped: 2, chunks: vec![] }
    );
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
    use worker_workflows::core::step_error::StepError;
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
fn a_source_of_the_wrong_shape_is_named_in_the_error_without_quoting_its_values() {
    // serde's own message quotes what it read (`invalid type: string "…"`): records are
    // personal data, and the error goes to the status, the history and the log.
    for (body, problem) in [
        (json!("grace@example.com"), "JSON of the wrong shape at line 1 column 19"),
        (json!({"email": "grace@example.com"}), "JSON of the wrong shape at line 1 column 0"),
    ] {
        let engine = pipeline(body, 0);
        let run = engine.run::<DataPipelineWorkflow>("pipe-pii", params());
        assert_eq!(run.status, Status::Errored);
        assert_eq!(run.error().message, format!("the source data (raw/pipe-pii.json) is not a JSON array of records: {problem}"));
        assert!(!run.error().message.contains("grace"), "{}", run.error().message);
    }
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
fn a_source_url_that_is_not_http_fails_the_extract_without_a_request() {
    let engine = pipeline(records(1), 0);
    let run = engine.run::<DataPipelineWorkflow>("pipe-6", from_json(json!({"sourceUrl": "ftp://source.test/x"})));
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(run.error().message.starts_with(r#"source: URL scheme "ftp" (host "source.test") is not allowed"#), "{}", run.error().message);
    assert_eq!(run.step("extract").attempts.len(), 1);
    assert!(engine.requests().is_empty());
}

// The URL policy holds inside the step, right before the fetch, for a URL that reached
// the workflow without the API's check (straight through the binding, the queue or a
// cron). Safe: the test engine's fetch never leaves the process.
#[test]
fn a_private_source_url_given_straight_to_the_workflow_is_refused_at_fetch_time() {
    let engine = pipeline(records(1), 0).route("https://10.1.2.3/", |_: &Request| Response::ok(&json!([])));
    for (id, url) in
        [("pipe-7", "https://10.1.2.3/users.json"), ("pipe-8", "https://169.254.169.254/latest"), ("pipe-9", "https://[::ffff:10.1.2.3]/x")]
    {
        let run = engine.run::<DataPipelineWorkflow>(id, from_json(json!({"sourceUrl": url})));
        assert_eq!(run.error().name, "NonRetryableError", "{url}");
        assert!(run.error().message.contains("which is not a public host"), "{url}: {}", run.error().message);
        assert_eq!(run.step("extract").attempts.len(), 1, "{url}: refused, not retried");
    }
    assert!(engine.requests().is_empty(), "no request was sent");
}

#[test]
fn a_private_host_named_in_allow_private_hosts_is_fetched() {
    let engine =
        pipeline(records(1), 0).var("ALLOW_PRIVATE_HOSTS", "10.1.2.3").route("http://10.1.2.3/", |_: &Request| Response::ok(&records(3)));
    let run = engine.run::<DataPipelineWorkflow>("pipe-10", from_json(json!({"sourceUrl": "http://10.1.2.3/users.json"})));
    assert_eq!(run.output::<PipelineOutput>().records, 3);
}

#[test]
fn a_source_over_max_source_bytes_fails_the_extract_once_and_stores_nothing() {
    let body = records(100);
    let size = serde_json::to_vec(&body).unwrap().len();
    assert!(size > 2048);
    let engine = pipeline(body, 0).var("MAX_SOURCE_BYTES", "2048");
    let run = engine.run::<DataPipelineWorkflow>("pipe-11", params());
    assert_eq!(run.error().name, "NonRetryableError");
    assert_eq!(
        run.error().message,
        "source answered 200 with a body over the 2048-byte limit (set by MAX_SOURCE_BYTES); it was not read further"
    );
    assert_eq!(engine.requests_to(SOURCE).len(), 1, "not retried");
    assert!(engine.r2_keys("DATA").is_empty());
    // Under the default cap (10 MiB) the same source loads.
    let engine = pipeline(records(100), 0);
    assert_eq!(engine.run::<DataPipelineWorkflow>("pipe-12", params()).status, Status::Complete);
}

#[test]
fn a_max_source_bytes_that_does_not_read_fails_naming_the_var() {
    let engine = pipeline(records(1), 0).var("MAX_SOURCE_BYTES", "10 MiB");
    let run = engine.run::<DataPipelineWorkflow>("pipe-13", params());
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(
        run.error().message.starts_with("MAX_SOURCE_BYTES must be a whole number of bytes from 1024 to 33554432"),
        "{}",
        run.error().message
    );
    assert!(engine.requests().is_empty());
}

#[test]
fn a_redirecting_source_is_not_followed() {
    let engine = TestEngine::new()
        .d1("DB")
        .r2("DATA")
        .route(SOURCE, |_: &Request| Response::redirect(302, "https://elsewhere.test/users.json"))
        .route("https://elsewhere.test/", |_: &Request| Response::ok(&records(1)));
    let run = engine.run::<DataPipelineWorkflow>("pipe-14", params());
    assert_eq!(run.error().name, "NonRetryableError");
    assert_eq!(run.error().message, "source answered 302 (redirects are not followed; it points to https://elsewhere.test/users.json)");
    assert_eq!(engine.requests_to(SOURCE).len(), 1, "not retried");
    assert!(engine.requests_to("https://elsewhere.test/").is_empty(), "the target was never requested");
}

// ----- a large source split into child instances (`chunkRecords`)

fn chunked(id_records: usize, per_chunk: u32, max_dropped: Option<u64>) -> (TestEngine, PipelineParams) {
    let engine = pipeline(records(id_records), 0).workflow::<DataChunkWorkflow>();
    let mut params = json!({"sourceUrl": SOURCE, "chunkRecords": per_chunk});
    if let Some(max) = max_dropped {
        params["maxDroppedPerChunk"] = json!(max);
    }
    (engine, from_json(params))
}

/// The instances the pipeline started as its children, in order.
fn chunk_ids(engine: &TestEngine) -> Vec<String> {
    engine.created_instances().into_iter().filter(|c| c.created).map(|c| c.id).collect()
}

#[test]
fn a_large_source_is_split_into_child_instances_whose_typed_outputs_add_up() {
    let (engine, params) = chunked(50, 10, None);
    let run = engine.run::<DataPipelineWorkflow>("pipe-c1", params);
    assert_eq!(run.status, Status::Complete, "{}", run.summary());
    let ids = chunk_ids(&engine);
    assert_eq!(ids.len(), 5);
    let chunks: Vec<ChunkOutput> = (0..5)
        .map(|i| ChunkOutput { instance: ids[i].clone(), key: format!("processed/pipe-c1/{i}.json"), records: 8, dropped: 2 })
        .collect();
    assert_eq!(
        run.output::<PipelineOutput>(),
        PipelineOutput { key: "processed/pipe-c1/".into(), records: 40, dropped: 10, chunks: chunks.clone() }
    );
    for (id, chunk) in ids.iter().zip(&chunks) {
        assert_eq!(engine.status::<DataChunkWorkflow>(id).output.as_ref(), Some(chunk), "each child's typed status");
    }
    for created in engine.created_instances() {
        assert_eq!(created.parent.map(|p| (p.workflow, p.id)), Some(("data-pipeline".to_string(), "pipe-c1".to_string())));
    }
    assert_eq!(
        run.step_names(),
        [
            "extract",
            "split",
            "process chunks",
            "process chunks #0: wait 1",
            "process chunks #1: wait 1",
            "process chunks #2: wait 1",
            "process chunks #3: wait 1",
            "process chunks #4: wait 1"
        ]
    );
    // The same rows as the source loaded in one run.
    let whole = pipeline(records(50), 0);
    whole.run::<DataPipelineWorkflow>("pipe-c1", self::params());
    assert_eq!(loaded(&engine), loaded(&whole));
    assert_eq!(engine.requests_to(SOURCE).len(), 1);
}

#[test]
fn a_chunk_over_its_drop_limit_fails_the_pipeline_naming_the_chunk() {
    // Only the third chunk (records 20..30) holds bad records: three of them.
    let mut body: Vec<Value> = (0..50)
        .map(|i| json!({"id": format!("r-{i}"), "name": "N", "email": format!("u{i}@example.com"), "createdAt": 1_704_067_200_000_u64}))
        .collect();
    for i in [21, 22, 23] {
        body[i]["email"] = json!("not-an-email");
    }
    let engine = pipeline(Value::Array(body), 0).workflow::<DataChunkWorkflow>();
    let params = from_json(json!({"sourceUrl": SOURCE, "chunkRecords": 10, "maxDroppedPerChunk": 1}));
    let run = engine.run::<DataPipelineWorkflow>("pipe-c2", params);
    assert_eq!(run.status, Status::Errored);
    let ids = chunk_ids(&engine);
    assert_eq!(
        run.error().message,
        format!(
            "child 2 of 5 (data-chunk instance {}) errored: NonRetryableError: chunk chunks/pipe-c2/2.json: 3 of 10 records could not be normalised, over the limit of 1",
            ids[2]
        )
    );
    // The other chunks ended, loaded; none is left running.
    for id in &ids {
        assert!(engine.instance(id).status.is_finished());
    }
    assert_eq!(loaded(&engine).len(), 40);
}

#[test]
fn a_restarted_chunked_pipeline_starts_no_second_child_and_duplicates_no_rows() {
    let (engine, params) = chunked(50, 10, None);
    let first = engine.run::<DataPipelineWorkflow>("pipe-c3", params);
    let again = engine.restart("pipe-c3");
    assert_eq!(again.output::<PipelineOutput>(), first.output::<PipelineOutput>());
    assert_eq!(chunk_ids(&engine).len(), 5, "the restart found its children");
    assert_eq!(engine.created_instances().len(), 10, "five creates that found them");
    // Found ended: their outputs read from their status, no waiting.
    let reads: Vec<String> = (0..5).map(|i| format!("process chunks #{i}: result")).collect();
    assert_eq!(again.step_names()[3..], reads[..]);
    assert_eq!(loaded(&engine).len(), 40);
    assert_eq!(engine.requests_to(SOURCE).len(), 2, "the restart ran from the start");
}

#[test]
fn lost_notices_of_the_chunks_are_found_by_the_pipelines_check() {
    let (engine, params) = chunked(50, 10, None);
    let engine = engine.lose_child_notices();
    let run = engine.run::<DataPipelineWorkflow>("pipe-c4", params);
    assert_eq!(run.output::<PipelineOutput>().records, 40);
    assert_eq!(run.elapsed(), Some(Duration::from_secs(5 * 60)), "one check interval late");
    assert!(run.has_step("process chunks: check 1") && run.has_step("process chunks #4: result"));
}

#[test]
fn a_source_of_more_than_a_hundred_chunks_is_split_into_larger_ones() {
    let (engine, params) = chunked(250, 2, None);
    let run = engine.run::<DataPipelineWorkflow>("pipe-c5", params);
    let output = run.output::<PipelineOutput>();
    assert_eq!(output.chunks.len(), 84, "3 records a chunk: at most 100 children");
    assert_eq!((output.records, output.dropped), (200, 50));
}
