//! daily-cleanup: delete index rows and dead letters past retention, in bounded batches.

use rust_workflows::workflows::daily_cleanup::{CleanupOutput, CleanupParams};
use rust_workflows::workflows::CleanupWorkflow;
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};
use worker_workflows::testing::{Status, TestEngine};
use worker_workflows::ScheduledRun;

const DAY: i64 = 24 * 3600 * 1000;
const NOW: i64 = 1_767_225_600_000;

fn seeded(old_instances: usize, new_instances: usize, old_letters: usize) -> TestEngine {
    let engine = TestEngine::new().d1("DB");
    let mut sql = String::new();
    for i in 0..old_instances {
        sql += &format!("INSERT INTO instances (workflow, id, created_at) VALUES ('order-processing', 'old-{i}', {});", NOW - 40 * DAY);
    }
    for i in 0..new_instances {
        sql += &format!("INSERT INTO instances (workflow, id, created_at) VALUES ('order-processing', 'new-{i}', {});", NOW - DAY);
    }
    for i in 0..old_letters {
        sql += &format!("INSERT INTO dead_letters VALUES ('m-{i}', 'jobs', '{{}}', 'poison', 1, {});", NOW - 31 * DAY);
    }
    engine.d1_execute("DB", &sql);
    engine
}

fn params() -> CleanupParams {
    crate::services::from_json(json!({"scheduledTime": NOW, "cron": "0 3 * * *"}))
}

fn count(engine: &TestEngine, table: &str) -> u64 {
    engine.d1_rows("DB", &format!("SELECT count(*) AS n FROM {table}"))[0]["n"].as_u64().unwrap()
}

#[test]
fn it_deletes_only_what_is_past_retention() {
    let engine = seeded(3, 2, 4);
    let run = engine.run::<CleanupWorkflow>("cleanup-1", params());
    assert_eq!(
        run.output::<CleanupOutput>(),
        CleanupOutput { cutoff: NOW - 30 * DAY, instances_deleted: 3, dead_letters_deleted: 4, scheduled_by: None }
    );
    assert_eq!((count(&engine, "instances"), count(&engine, "dead_letters")), (2, 0));
    assert_eq!(run.step_names(), ["cutoff", "delete instances 0", "delete dead-letters 0"]);
}

#[test]
fn a_large_backlog_goes_in_batches_one_step_each() {
    let engine = seeded(1_201, 0, 0);
    let run = engine.run::<CleanupWorkflow>("cleanup-2", params());
    assert_eq!(run.output::<CleanupOutput>().instances_deleted, 1_201);
    let batches: Vec<u64> =
        ["delete instances 0", "delete instances 1", "delete instances 2"].iter().map(|s| run.step(s).value::<u64>()).collect();
    assert_eq!(batches, [500, 500, 201]);
}

#[test]
fn retention_days_come_from_the_var_and_a_bad_value_is_final() {
    let engine = seeded(0, 2, 0).var("RETENTION_DAYS", "0");
    let run = engine.run::<CleanupWorkflow>("cleanup-3", params());
    assert_eq!(run.status, Status::Errored);
    assert_eq!(run.error().message, "RETENTION_DAYS must be a whole number of days, at least 1, not \"0\"");
    assert_eq!(run.step("cutoff").attempts.len(), 1);
    assert_eq!(count(&engine, "instances"), 2);

    let engine = seeded(3, 2, 0).var("RETENTION_DAYS", "45");
    let run = engine.run::<CleanupWorkflow>("cleanup-4", params());
    assert_eq!(
        run.output::<CleanupOutput>(),
        CleanupOutput { cutoff: NOW - 45 * DAY, instances_deleted: 0, dead_letters_deleted: 0, scheduled_by: None }
    );
    assert_eq!(count(&engine, "instances"), 5);
}

#[test]
fn a_scheduled_run_cleans_up_against_its_ticks_time() {
    let engine = seeded(3, 2, 0);
    // The engine's schedules give the run no params of their own, only the tick.
    let tick = ScheduledRun { cron: "0 3 * * *".into(), scheduled_time: UNIX_EPOCH + Duration::from_millis(NOW as u64) };
    let empty: CleanupParams = crate::services::from_json(json!({}));
    engine.create_scheduled::<CleanupWorkflow>("cleanup-tick", empty, tick);
    let run = engine.finish("cleanup-tick");
    assert_eq!(run.output::<CleanupOutput>().cutoff, NOW - 30 * DAY);
    assert_eq!(run.output::<CleanupOutput>().instances_deleted, 3);
    assert_eq!(run.output::<CleanupOutput>().scheduled_by.as_deref(), Some("0 3 * * *"));
}

#[test]
fn a_run_created_by_hand_with_no_time_cleans_up_against_its_creation() {
    let engine = seeded(0, 0, 0).start_time(UNIX_EPOCH + Duration::from_millis(NOW as u64 + DAY as u64));
    let empty: CleanupParams = crate::services::from_json(json!({}));
    let run = engine.run::<CleanupWorkflow>("cleanup-hand", empty);
    assert_eq!(run.output::<CleanupOutput>().cutoff, NOW + DAY - 30 * DAY);
}
