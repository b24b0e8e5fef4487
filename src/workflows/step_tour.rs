//! `step-tour`: every step primitive, driven by params. A runnable tour of the
//! Rust step API, and the probe the integration tests use to show each primitive
//! on the real engine (retries, panics, sleeps, events, fan-out, limits).

use crate::bridge::{Env, Step, Workflow, WorkflowEvent};
use crate::core::bounded;
use crate::core::duration::DurationParam;
use crate::bridge::outbound::ServiceCall;
use crate::core::records;
use crate::core::step_config::{Backoff, Retries, StepConfig};
use crate::core::step_error::StepError;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TourParams {
    #[serde(deserialize_with = "bounded::list_of_at_most::<_, _, MAX_ACTIONS>")]
    pub actions: Vec<Action>,
}

// Ceilings on what params can ask for, so no request sizes an allocation or a loop without
// bound (the benchmarks use noop 200 and transform repeat 11).
const MAX_ACTIONS: usize = 100;
const MAX_PARALLEL: u64 = 100;
const MAX_NOOP: u64 = 1000;
const MAX_OVERSIZED_BYTES: u64 = 2 * 1024 * 1024;
const MAX_REPEAT: u64 = 20;

/// Retries of one step as params give them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryParams {
    pub limit: u32,
    pub delay: DurationParam,
    #[serde(default)]
    pub backoff: Backoff,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Action {
    /// A step that GETs `url` on every attempt; a non-2xx answer fails the attempt.
    /// `timeout` bounds each attempt.
    Call { name: String, url: String, retries: Option<RetryParams>, timeout: Option<DurationParam> },
    /// A step that panics on its first `times` attempts, then returns its attempt number.
    Panic { name: String, times: u32, retries: Option<RetryParams> },
    /// A step that fails with a non-retryable error.
    NonRetryable { name: String, message: String },
    Sleep { name: String, duration: DurationParam },
    /// Sleeps until a Unix time in milliseconds.
    SleepUntil { name: String, at: u64 },
    /// Waits for an event; a timeout is caught and reported, and the tour goes on.
    WaitForEvent { name: String, event_type: String, timeout: DurationParam },
    /// `count` steps named `"{name} {i}"`, in flight at once, joined; each GETs `{url}/{i}`
    /// first when `url` is given (so a stand-in can see them overlap).
    Parallel {
        name: String,
        #[serde(deserialize_with = "bounded::at_most::<_, _, MAX_PARALLEL>")]
        count: u32,
        #[serde(default)]
        url: Option<String>,
    },
    /// A step whose result is `bytes` long: over 1 MiB it is refused.
    Oversized {
        name: String,
        #[serde(deserialize_with = "bounded::at_most::<_, _, MAX_OVERSIZED_BYTES>")]
        bytes: usize,
    },
    /// `count` steps named `"{name} {i}"`, one after another, doing nothing: step overhead.
    Noop {
        name: String,
        #[serde(deserialize_with = "bounded::at_most::<_, _, MAX_NOOP>")]
        count: u32,
    },
    /// One step that downloads `url` and returns its size: the baseline of `transform`.
    Download { name: String, url: String },
    /// One step that downloads `url` (a JSON array of records) and normalises it with
    /// `records::transform`, `repeat` times over (default once; the benchmark repeats it
    /// so the computation outweighs the noise of timing a workflow from outside),
    /// returning the counts: a CPU-bound step.
    Transform {
        name: String,
        url: String,
        #[serde(default = "once", deserialize_with = "bounded::at_most::<_, _, MAX_REPEAT>")]
        repeat: u32,
    },
}

fn once() -> u32 {
    1
}

pub struct StepTourWorkflow {
    env: Env,
}

fn config(retries: Option<RetryParams>) -> StepConfig {
    match retries {
        Some(r) => StepConfig::new().retries(Retries::new(r.limit).delay(r.delay).backoff(r.backoff)),
        None => StepConfig::new(),
    }
}

impl Workflow for StepTourWorkflow {
    type Params = TourParams;
    type Output = Vec<Value>;

    fn new(env: Env) -> Self {
        StepTourWorkflow { env }
    }

    async fn run(&self, event: &WorkflowEvent<TourParams>, step: Step<'_>) -> Result<Vec<Value>, StepError> {
        let mut results = Vec::with_capacity(event.payload.actions.len());
        for action in &event.payload.actions {
            results.push(perform(&self.env, &step, action).await?);
        }
        Ok(results)
    }
}

async fn perform(env: &Env, step: &Step<'_>, action: &Action) -> Result<Value, StepError> {
    Ok(match action {
        Action::Call { name, url, retries, timeout } => {
            let config = match timeout {
                Some(timeout) => config(*retries).timeout(*timeout),
                None => config(*retries),
            };
            let body: Value = step
                .run_with(name, config, |ctx| async move {
                    let url = format!("{url}{}attempt={}", if url.contains('?') { '&' } else { '?' }, ctx.attempt);
                    ServiceCall::new(env, "service", url).get::<Value>().await
                })
                .await?;
            json!({"name": name, "body": body})
        }
        Action::Panic { name, times, retries } => {
            let attempt: u32 = step
                .run_with(name, config(*retries), |ctx| async move {
                    if ctx.attempt <= *times {
                        panic!("deliberate panic on attempt {}", ctx.attempt);
                    }
                    Ok(ctx.attempt)
                })
                .await?;
            json!({"name": name, "attempt": attempt})
        }
        Action::NonRetryable { name, message } => {
            step.run(name, |_| async { Err::<(), _>(StepError::non_retryable(message)) }).await?;
            json!({"name": name})
        }
        Action::Sleep { name, duration } => {
            step.sleep(name, *duration).await?;
            json!({"name": name, "slept": true})
        }
        Action::SleepUntil { name, at } => {
            step.sleep_until(name, *at).await?;
            json!({"name": name, "slept": true})
        }
        Action::WaitForEvent { name, event_type, timeout } => match step.wait_for_event::<Value>(name, event_type, *timeout).await {
            Ok(event) => json!({"name": name, "received": event.payload, "type": event.event_type}),
            Err(StepError::Timeout(message)) => json!({"name": name, "timedOut": true, "message": message}),
            Err(other) => return Err(other),
        },
        Action::Parallel { name, count, url } => {
            let names: Vec<String> = (0..*count).map(|i| format!("{name} {i}")).collect();
            let steps = names.iter().enumerate().map(|(i, step_name)| {
                step.run(step_name, move |_| async move {
                    if let Some(url) = url {
                        ServiceCall::new(env, "service", format!("{url}/{i}")).get::<Value>().await?;
                    }
                    Ok(i)
                })
            });
            let results: Vec<usize> = try_join_all(steps).await?;
            json!({"name": name, "results": results})
        }
        Action::Noop { name, count } => {
            for i in 0..*count {
                step.run(&format!("{name} {i}"), |_| async { Ok(()) }).await?;
            }
            json!({"name": name, "steps": count})
        }
        Action::Download { name, url } => {
            let bytes: usize = step.run(name, |_| async { Ok(ServiceCall::new(env, "source", url.clone()).get_bytes().await?.len()) }).await?;
            json!({"name": name, "bytes": bytes})
        }
        Action::Transform { name, url, repeat } => {
            let (records, dropped): (usize, usize) = step
                .run(name, |_| async {
                    let body = ServiceCall::new(env, "source", url.clone()).get_bytes().await?;
                    let mut counts = (0, 0);
                    for _ in 0..(*repeat).max(1) {
                        let transformed = records::transform(&body).map_err(|e| StepError::non_retryable(format!("not a JSON array of records: {e}")))?;
                        counts = (transformed.records.len(), transformed.dropped);
                    }
                    Ok(counts)
                })
                .await?;
            json!({"name": name, "records": records, "dropped": dropped})
        }
        Action::Oversized { name, bytes } => {
            let value: String = step.run(name, |_| async { Ok("x".repeat(*bytes)) }).await?;
            json!({"name": name, "bytes": value.len()})
        }
    })
}
