//! The env's wider reach, each driven through a workflow on the test engine: KV deletes,
//! lists and expiring writes, R2 heads, deletes and lists, PUT/PATCH/DELETE calls, queue
//! producers, service bindings, Durable Object stubs and secrets; each call reported
//! when made outside a step, and secrets kept out of what the engine writes.

use super::*;
use crate::bridge::engine::{KvKeyList, KvPutOptions, ListOptions, ObjectInfo, ObjectList, OutboundRequest};
use crate::bridge::outbound::ServiceCall;
use crate::bridge::{Env, HttpMethod, Step, StepContext};
use crate::core::step_config::{Retries, StepConfig};
use serde_json::json;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The virtual clock's start, in Unix seconds.
const START_SECONDS: u64 = world::DEFAULT_START_MILLIS / 1000;

fn no_retries() -> StepConfig {
    StepConfig::new().retries(Retries::none())
}

// ----- KV

/// Writes a session key with a TTL and another with an absolute expiration, then reads
/// both after 30 minutes and again after 61 minutes.
struct KvExpiry {
    env: Env,
}

impl Workflow for KvExpiry {
    type Params = ();
    type Output = Vec<(Option<String>, Option<String>)>;
    fn new(env: Env) -> Self {
        KvExpiry { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<Self::Output, StepError> {
        step.run("write", |_| async {
            let kv = self.env.kv("CACHE")?;
            kv.put_with("session", "token-1", KvPutOptions::new().expiration_ttl(3600).metadata(json!({"user": "u1"}))).await?;
            kv.put_with("promo", "10%", KvPutOptions::new().expiration(START_SECONDS + 2 * 3600)).await?;
            // Both set: the TTL wins, as on the platform.
            kv.put_with("both", "x", KvPutOptions::new().expiration_ttl(60).expiration(START_SECONDS + 9999)).await
        })
        .await?;
        let read = |name: &'static str| {
            step.run(name, |_| async {
                let kv = self.env.kv("CACHE")?;
                Ok((kv.get("session").await?, kv.get("promo").await?))
            })
        };
        step.sleep("half an hour", "30 minutes").await?;
        let first = read("read early").await?;
        step.sleep("an hour on", "31 minutes").await?;
        let second = read("read late").await?;
        step.sleep("another hour", "1 hour").await?;
        let third = read("read last").await?;
        Ok(vec![first, second, third])
    }
}

#[test]
fn kv_keys_expire_on_the_virtual_clock_by_ttl_or_absolute_time() {
    let engine = TestEngine::new().kv("CACHE");
    let run = engine.start::<KvExpiry>("expiry", ());
    assert_eq!(run.status, Status::Running, "sleeping");
    let session = engine.kv_entry("CACHE", "session").expect("written");
    assert_eq!(session.expiration, Some(START_SECONDS + 3600));
    assert_eq!(session.metadata, Some(json!({"user": "u1"})));
    assert_eq!(engine.kv_entry("CACHE", "promo").and_then(|p| p.expiration), Some(START_SECONDS + 7200));
    assert_eq!(engine.kv_entry("CACHE", "both").and_then(|p| p.expiration), Some(START_SECONDS + 60), "the TTL wins");

    let run = engine.finish("expiry");
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        run.output::<Vec<(Option<String>, Option<String>)>>(),
        [(some("token-1"), some("10%")), (None, some("10%")), (None, None)],
        "the TTL ran out after an hour, the absolute expiration after two"
    );
    assert_eq!(engine.kv_get("CACHE", "session"), None, "the test sees the same expiry");
    assert!(engine.kv_keys("CACHE").is_empty());
}

/// Lists `user:` keys two at a time, following the cursor, then deletes one and lists again.
struct KvPages {
    env: Env,
}

impl Workflow for KvPages {
    type Params = u32;
    type Output = (Vec<KvKeyList>, Vec<String>);
    fn new(env: Env) -> Self {
        KvPages { env }
    }
    async fn run(&self, event: &WorkflowEvent<u32>, step: Step<'_>) -> Result<Self::Output, StepError> {
        let pages = step
            .run("list", |_| async {
                let kv = self.env.kv("USERS")?;
                kv.put_with("user:4", "d", KvPutOptions::new().expiration_ttl(600).metadata(json!({"plan": "pro"}))).await?;
                let mut pages = Vec::new();
                let mut options = ListOptions::new().prefix("user:").limit(event.payload);
                loop {
                    let page = kv.list(options.clone()).await?;
                    let next = page.cursor.clone();
                    pages.push(page);
                    match next {
                        Some(cursor) => options = options.cursor(cursor),
                        None => break,
                    }
                }
                Ok(pages)
            })
            .await?;
        let after_delete = step
            .run("delete", |_| async {
                let kv = self.env.kv("USERS")?;
                kv.delete("user:2").await?;
                kv.delete("never-there").await?;
                let page = kv.list(ListOptions::new().prefix("user:")).await?;
                Ok(page.keys.into_iter().map(|k| k.name).collect::<Vec<_>>())
            })
            .await?;
        Ok((pages, after_delete))
    }
}

#[test]
fn kv_lists_page_by_prefix_limit_and_cursor_with_expiration_and_metadata_and_deletes_remove_keys() {
    let engine = TestEngine::new().kv("USERS");
    for (key, value) in [("user:1", "a"), ("user:2", "b"), ("user:3", "c"), ("user:5", "e"), ("other", "x")] {
        engine.kv_put("USERS", key, value);
    }
    let run = engine.run::<KvPages>("pages", 2);
    let (pages, after_delete) = run.output::<(Vec<KvKeyList>, Vec<String>)>();
    let names: Vec<Vec<&str>> = pages.iter().map(|p| p.keys.iter().map(|k| k.name.as_str()).collect()).collect();
    assert_eq!(names, [vec!["user:1", "user:2"], vec!["user:3", "user:4"], vec!["user:5"]]);
    assert_eq!(pages.iter().map(|p| p.list_complete).collect::<Vec<_>>(), [false, false, true]);
    assert!(pages[0].cursor.is_some() && pages[2].cursor.is_none());
    let written = &pages[1].keys[1];
    assert_eq!((written.expiration, written.metadata.clone()), (Some(START_SECONDS + 600), Some(json!({"plan": "pro"}))));
    assert_eq!((pages[0].keys[0].expiration, pages[0].keys[0].metadata.clone()), (None, None));
    assert_eq!(after_delete, ["user:1", "user:3", "user:4", "user:5"]);
    assert_eq!(engine.kv_get("USERS", "user:2"), None);
}

#[test]
fn a_kv_list_limit_is_clamped_to_the_platforms_1000() {
    let engine = TestEngine::new().kv("USERS");
    for i in 0..1005 {
        engine.kv_put("USERS", &format!("user:{i:04}"), "v");
    }
    let (pages, _) = engine.run::<KvPages>("clamped", 5000).output::<(Vec<KvKeyList>, Vec<String>)>();
    assert_eq!(pages.iter().map(|p| p.keys.len()).collect::<Vec<_>>(), [1000, 6], "1000 at most, however many were asked for");
}

/// Writes what its params say, once.
struct KvWrite {
    env: Env,
}

#[derive(serde::Deserialize)]
struct KvWriteParams {
    key: String,
    value_bytes: usize,
    ttl: Option<u64>,
    at: Option<u64>,
    metadata_bytes: Option<usize>,
}

impl Workflow for KvWrite {
    type Params = KvWriteParams;
    type Output = ();
    fn new(env: Env) -> Self {
        KvWrite { env }
    }
    async fn run(&self, event: &WorkflowEvent<KvWriteParams>, step: Step<'_>) -> Result<(), StepError> {
        let p = &event.payload;
        step.run("write", |_| async {
            let mut options = KvPutOptions::new();
            options.expiration_ttl = p.ttl;
            options.expiration = p.at;
            options.metadata = p.metadata_bytes.map(|n| json!("m".repeat(n)));
            self.env.kv("CACHE")?.put_with(&p.key, &"v".repeat(p.value_bytes), options).await
        })
        .await
    }
}

#[test]
fn kv_writes_over_the_platforms_limits_fail_at_once_without_writing() {
    let params = |key: &str, ttl, at, metadata_bytes| KvWriteParams { key: key.to_string(), value_bytes: 1, ttl, at, metadata_bytes };
    let cases = [
        (params("k", Some(59), None, None), "KV CACHE: an expiration TTL of 59 s is too short; KV takes at least 60 s"),
        (params("k", None, Some(START_SECONDS + 30), None), "is less than 60 s after now"),
        (params("k", None, None, Some(1100)), "1102 bytes as JSON; metadata has at most 1024"),
        (params("..", None, None, None), "the key \"..\" is not allowed"),
        (params(&"k".repeat(513), None, None, None), "513 bytes; a key has at most 512"),
    ];
    for (i, (p, expected)) in cases.into_iter().enumerate() {
        let engine = TestEngine::new().kv("CACHE");
        let run = engine.run::<KvWrite>(&format!("write-{i}"), p);
        assert_eq!(run.status, Status::Errored);
        assert_eq!(run.error().name, "NonRetryableError", "no retry can fix it");
        assert!(run.error().message.contains(expected), "{}", run.error().message);
        assert_eq!(run.step("write").attempts.len(), 1);
        assert!(engine.kv_keys("CACHE").is_empty(), "nothing was written");
    }
    let run = TestEngine::new().kv("CACHE").run::<KvWrite>("fits", params("k", Some(60), None, Some(1000)));
    assert_eq!(run.status, Status::Complete);
}

// ----- R2

/// Writes reports, heads one, lists them a page at a time and deletes one.
struct R2Tour {
    env: Env,
}

impl Workflow for R2Tour {
    type Params = u32;
    type Output = (Option<ObjectInfo>, Option<ObjectInfo>, Vec<ObjectList>, Vec<String>);
    fn new(env: Env) -> Self {
        R2Tour { env }
    }
    async fn run(&self, event: &WorkflowEvent<u32>, step: Step<'_>) -> Result<Self::Output, StepError> {
        step.run("write", |_| async {
            self.env.bucket("DATA")?.put("reports/b.json", b"{\"b\":2}".to_vec(), Some("application/json")).await
        })
        .await?;
        step.sleep("a minute", "1 minute").await?;
        step.run("inspect", |_| async {
            let bucket = self.env.bucket("DATA")?;
            let head = bucket.head("reports/b.json").await?;
            let missing = bucket.head("reports/none.json").await?;
            let mut pages = Vec::new();
            let mut options = ListOptions::new().prefix("reports/").limit(event.payload);
            loop {
                let page = bucket.list(options.clone()).await?;
                let next = page.cursor.clone();
                pages.push(page);
                match next {
                    Some(cursor) => options = options.cursor(cursor),
                    None => break,
                }
            }
            bucket.delete("reports/a.csv").await?;
            bucket.delete("reports/never.csv").await?;
            let left = bucket.list(ListOptions::new()).await?.objects.into_iter().map(|o| o.key).collect();
            Ok((head, missing, pages, left))
        })
        .await
    }
}

#[test]
fn r2_heads_lists_and_deletes_objects() {
    let engine = TestEngine::new().r2("DATA");
    engine.r2_put("DATA", "reports/a.csv", b"x,y\n1,2\n".to_vec());
    engine.r2_put("DATA", "reports/c.txt", b"c".to_vec());
    engine.r2_put("DATA", "raw/z", b"z".to_vec());
    let run = engine.run::<R2Tour>("tour", 2);
    let (head, missing, pages, left) = run.output::<(Option<ObjectInfo>, Option<ObjectInfo>, Vec<ObjectList>, Vec<String>)>();
    let head = head.expect("the object exists");
    assert_eq!(head.key, "reports/b.json");
    assert_eq!(head.size, 7);
    assert_eq!(head.content_type.as_deref(), Some("application/json"));
    assert_eq!(head.uploaded_millis, world::DEFAULT_START_MILLIS, "written before the minute's sleep, on the virtual clock");
    assert_eq!(head.etag, engine.r2_get("DATA", "reports/b.json").unwrap().etag());
    assert_eq!(missing, None);

    let keys: Vec<Vec<&str>> = pages.iter().map(|p| p.objects.iter().map(|o| o.key.as_str()).collect()).collect();
    assert_eq!(keys, [vec!["reports/a.csv", "reports/b.json"], vec!["reports/c.txt"]], "by prefix, two a page");
    assert_eq!(pages.iter().map(|p| p.truncated).collect::<Vec<_>>(), [true, false]);
    assert!(pages[1].cursor.is_none());
    let listed = &pages[0].objects[1];
    assert_eq!(
        (listed.size, listed.etag.as_str(), listed.content_type.as_deref()),
        (7, head.etag.as_str(), None),
        "lists carry no HTTP metadata"
    );
    assert_ne!(pages[0].objects[0].etag, head.etag, "another body, another etag");

    assert_eq!(left, ["raw/z", "reports/b.json", "reports/c.txt"]);
    assert_eq!(engine.r2_keys("DATA"), left);
}

#[test]
fn an_r2_list_limit_is_clamped_to_the_platforms_1000() {
    let engine = TestEngine::new().r2("DATA");
    for i in 0..1001 {
        engine.r2_put("DATA", &format!("reports/{i:04}"), Vec::new());
    }
    let (_, _, pages, _) =
        engine.run::<R2Tour>("many", u32::MAX).output::<(Option<ObjectInfo>, Option<ObjectInfo>, Vec<ObjectList>, Vec<String>)>();
    assert_eq!(pages.iter().map(|p| p.objects.len()).collect::<Vec<_>>(), [1000, 2]);
}

// ----- PUT, PATCH and DELETE

const API: &str = "https://api.test/";

/// Replaces, changes and deletes a resource, each with headers and an idempotency key.
struct Rest {
    env: Env,
}

impl Workflow for Rest {
    type Params = ();
    type Output = (Value, Value);
    fn new(env: Env) -> Self {
        Rest { env }
    }
    async fn run(&self, event: &WorkflowEvent<()>, step: Step<'_>) -> Result<(Value, Value), StepError> {
        let call = |ctx: StepContext, path: &str| {
            ServiceCall::new(&self.env, "api", format!("{API}{path}"))
                .header("x-tenant", "t1".to_string())
                .idempotency_key(ctx.idempotency_key(&event.identity()))
                .client_errors_are_final()
        };
        let put: Value = step.run("replace", |ctx| async move { call(ctx, "items/1").put(&json!({"name": "one"})).await }).await?;
        let patch: Value = step.run("change", |ctx| async move { call(ctx, "items/1").patch(&json!({"name": "uno"})).await }).await?;
        step.run("remove", |ctx| async move { call(ctx, "items/1").delete::<()>().await }).await?;
        step.run("remove again", |ctx| async move { call(ctx, "items/1").delete_for_status().await }).await?;
        step.run("put status", |ctx| async move { call(ctx, "items/2").put_for_status(&json!({})).await }).await?;
        step.run("patch status", |ctx| async move { call(ctx, "items/2").patch_for_status(&json!({})).await }).await?;
        Ok((put, patch))
    }
}

#[test]
fn put_patch_and_delete_carry_their_method_body_headers_and_idempotency_key() {
    let engine = TestEngine::new().route(API, |r| match r.method {
        HttpMethod::Put | HttpMethod::Patch => Response::ok(&json!({"method": r.method.as_str(), "got": r.json::<Value>()})),
        HttpMethod::Delete => Response::status(204),
        _ => Response::status(405),
    });
    let run = engine.run::<Rest>("rest", ());
    assert_eq!(
        run.output::<(Value, Value)>(),
        (json!({"method": "PUT", "got": {"name": "one"}}), json!({"method": "PATCH", "got": {"name": "uno"}}))
    );
    let sent: Vec<(HttpMethod, String, Option<String>)> =
        engine.requests().iter().map(|r| (r.method, r.path(), r.header("content-type").map(str::to_string))).collect();
    let json_type = Some("application/json".to_string());
    assert_eq!(
        sent,
        [
            (HttpMethod::Put, "/items/1".into(), json_type.clone()),
            (HttpMethod::Patch, "/items/1".into(), json_type.clone()),
            (HttpMethod::Delete, "/items/1".into(), None),
            (HttpMethod::Delete, "/items/1".into(), None),
            (HttpMethod::Put, "/items/2".into(), json_type.clone()),
            (HttpMethod::Patch, "/items/2".into(), json_type),
        ]
    );
    for request in engine.requests() {
        assert_eq!(request.header("x-tenant"), Some("t1"));
        assert_eq!(request.via, Via::Fetch);
        let step = request.step.clone().expect("sent from a step");
        assert_eq!(
            request.header("idempotency-key"),
            Some(format!("rest@{}:{}:1", world::DEFAULT_START_MILLIS, crate::core::service::encode_uri_component(&step.step)).as_str())
        );
    }
}

#[test]
fn put_patch_and_delete_keep_the_rules_of_every_call() {
    // A redirect is refused, not followed.
    let engine = TestEngine::new().route(API, |_| Response::redirect(307, "http://127.0.0.1/admin"));
    let run = engine.run::<Rest>("redirected", ());
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(run.error().message.contains("api answered 307 (redirects are not followed"), "{}", run.error().message);
    assert_eq!(engine.requests().len(), 1, "one request, no retry, no follow");

    // A final 4xx fails the step without retrying; a 5xx is retried.
    let engine =
        TestEngine::new().route(API, |r| if r.method == HttpMethod::Patch { Response::status(409) } else { Response::ok(&json!({})) });
    let run = engine.run::<Rest>("conflict", ());
    assert_eq!(run.step("change").attempts.len(), 1);
    assert!(run.error().message.starts_with("api answered 409"), "{}", run.error().message);
}

/// DELETEs a URL its params give, and PUTs a capped answer.
struct CallerGiven {
    env: Env,
}

impl Workflow for CallerGiven {
    type Params = String;
    type Output = Value;
    fn new(env: Env) -> Self {
        CallerGiven { env }
    }
    async fn run(&self, event: &WorkflowEvent<String>, step: Step<'_>) -> Result<Value, StepError> {
        step.run_with("delete", no_retries(), |_| async {
            ServiceCall::new(&self.env, "target", event.payload.clone()).caller_given_url().max_response_bytes(16).delete::<Value>().await
        })
        .await
    }
}

#[test]
fn a_caller_given_delete_url_meets_the_url_policy_and_its_answer_is_capped() {
    let engine = TestEngine::new().route("http://127.0.0.1/", |_| Response::ok(&json!({})));
    let run = engine.run::<CallerGiven>("private", "http://127.0.0.1/users/1".to_string());
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(run.error().message.starts_with("target: "), "{}", run.error().message);
    assert!(engine.requests().is_empty(), "refused before any request");

    let engine = TestEngine::new().route("https://public.test/", |_| Response::ok(&json!({"deleted": "x".repeat(100)})));
    let run = engine.run::<CallerGiven>("capped", "https://public.test/users/1".to_string());
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(run.error().message.contains("with a body over the 16-byte limit"), "{}", run.error().message);
}

// ----- queues

/// Sends one job and a batch, from steps.
struct Producer {
    env: Env,
}

#[derive(serde::Deserialize)]
struct ProducerParams {
    batch: usize,
    body_bytes: usize,
}

impl Workflow for Producer {
    type Params = ProducerParams;
    type Output = ();
    fn new(env: Env) -> Self {
        Producer { env }
    }
    async fn run(&self, event: &WorkflowEvent<ProducerParams>, step: Step<'_>) -> Result<(), StepError> {
        let p = &event.payload;
        step.run("send one", |_| async { self.env.queue("JOBS")?.send(&json!({"job": "first", "pad": "x".repeat(p.body_bytes)})).await })
            .await?;
        step.run_with("send batch", no_retries(), |_| async {
            let bodies: Vec<Value> = (0..p.batch).map(|i| json!({"job": i})).collect();
            self.env.queue("JOBS")?.send_batch(&bodies).await
        })
        .await
    }
}

#[test]
fn queue_messages_are_recorded_with_the_step_that_sent_them() {
    let engine = TestEngine::new().queue("JOBS");
    let run = engine.run::<Producer>("producer", ProducerParams { batch: 3, body_bytes: 0 });
    assert_eq!(run.status, Status::Complete);
    let sent = engine.queue_messages("JOBS");
    let bodies: Vec<Value> = sent.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, [json!({"job": "first", "pad": ""}), json!({"job": 0}), json!({"job": 1}), json!({"job": 2})]);
    assert_eq!(sent.iter().map(|m| m.batch).collect::<Vec<_>>(), [false, true, true, true]);
    assert_eq!(sent[0].step.as_ref().map(|s| s.step.as_str()), Some("send one"));
    assert_eq!(sent[3].step.as_ref().map(|s| s.step.as_str()), Some("send batch"));
    assert_eq!(sent[1].json::<BTreeMap<String, u32>>()["job"], 0);
}

#[test]
fn queue_messages_and_batches_over_the_platforms_limits_are_refused_before_sending() {
    // A message over 128 KB.
    let engine = TestEngine::new().queue("JOBS");
    let run = engine.run::<Producer>("big", ProducerParams { batch: 1, body_bytes: 128_000 });
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(
        run.error().message.starts_with("queue JOBS: the message is 128024 bytes as JSON; a queue message holds at most 128000"),
        "{}",
        run.error().message
    );
    assert_eq!(run.step("send one").attempts.len(), 1, "not retried");
    assert!(engine.queue_messages("JOBS").is_empty());

    // A batch of more than 100 messages: none of it is sent.
    let engine = TestEngine::new().queue("JOBS");
    let run = engine.run::<Producer>("many", ProducerParams { batch: 101, body_bytes: 0 });
    assert!(run.error().message.contains("a batch of 101 messages; a batch holds at most 100"), "{}", run.error().message);
    assert_eq!(engine.queue_messages("JOBS").len(), 1, "only the single message went");

    // Without the binding, configuration no retry can fix.
    let run = TestEngine::new().run::<Producer>("unbound", ProducerParams { batch: 1, body_bytes: 0 });
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(run.error().message.contains("the queue binding JOBS: not configured on the test engine (TestEngine::queue)"));
}

// ----- service bindings and Durable Objects

/// Verifies a token through the AUTH service, then counts through a Durable Object per user.
struct Bound {
    env: Env,
}

impl Workflow for Bound {
    type Params = String;
    type Output = (Value, u64, u64, bool);
    fn new(env: Env) -> Self {
        Bound { env }
    }
    async fn run(&self, event: &WorkflowEvent<String>, step: Step<'_>) -> Result<Self::Output, StepError> {
        let user = &event.payload;
        let verdict: Value = step
            .run("verify", |_| async {
                let auth = self.env.service("AUTH")?;
                ServiceCall::new(&self.env, "auth", "https://auth/verify".to_string())
                    .through(&auth)
                    .client_errors_are_final()
                    .post(&json!({"user": user}))
                    .await
            })
            .await?;
        let count = |name: &'static str| {
            step.run(name, |_| async {
                let counter = self.env.durable_object("COUNTER")?.get_by_name(user)?;
                let answer = counter.fetch(OutboundRequest::post("https://counter/increment").json(&json!({"by": 1}))?).await?;
                if !answer.is_success() {
                    return Err(StepError::failed(format!("counter answered {}", answer.status)));
                }
                answer.json::<u64>()
            })
        };
        let first = count("count").await?;
        let second = count("count again").await?;
        let capped = step
            .run("capped", |_| async {
                let auth = self.env.service("AUTH")?;
                let answer = auth.fetch(OutboundRequest::get("https://auth/big").max_response_bytes(8)).await?;
                Ok(answer.body_over_limit && answer.body.len() == 8 && answer.json::<Value>().is_err())
            })
            .await?;
        Ok((verdict, first, second, capped))
    }
}

fn bound_engine() -> TestEngine {
    let counts = Rc::new(RefCell::new(BTreeMap::<String, u64>::new()));
    TestEngine::new()
        .service("AUTH", |r| match r.path().as_str() {
            "/verify" => Response::ok(&json!({"ok": true, "user": r.json::<Value>()["user"]})),
            _ => Response::text(200, "x".repeat(1000)),
        })
        .durable_object("COUNTER", move |name, _| {
            let mut counts = counts.borrow_mut();
            let n = counts.entry(name.to_string()).or_default();
            *n += 1;
            Response::ok(n)
        })
}

#[test]
fn service_bindings_and_durable_objects_answer_through_their_handlers_and_are_recorded() {
    let engine = bound_engine();
    let run = engine.run::<Bound>("bound-a", "alice".to_string());
    assert_eq!(run.output::<(Value, u64, u64, bool)>(), (json!({"ok": true, "user": "alice"}), 1, 2, true));
    let other = engine.run::<Bound>("bound-b", "bob".to_string());
    assert_eq!(other.output::<(Value, u64, u64, bool)>().1, 1, "another name, another object");

    let auth = engine.service_requests("AUTH");
    assert_eq!(
        auth.iter().map(|r| (r.method, r.path())).collect::<Vec<_>>()[..2],
        [(HttpMethod::Post, "/verify".into()), (HttpMethod::Get, "/big".into())]
    );
    assert_eq!(auth[0].via, Via::Service("AUTH".into()));
    assert_eq!(auth[0].step.as_ref().map(|s| s.step.as_str()), Some("verify"));
    let counter = engine.durable_object_requests("COUNTER");
    let names: Vec<&Via> = counter.iter().map(|r| &r.via).collect();
    let object = |name: &str| Via::DurableObject { binding: "COUNTER".into(), name: name.into() };
    assert_eq!(names, [&object("alice"), &object("alice"), &object("bob"), &object("bob")]);
    assert_eq!(counter[0].json::<Value>(), json!({"by": 1}));
    assert!(engine.requests_to("https://").len() == engine.requests().len(), "every request is in requests() too");
}

#[test]
fn a_service_call_through_a_binding_keeps_the_status_rules() {
    let engine = TestEngine::new()
        .service("AUTH", |_| Response::json(403, &json!({"error": "denied"})))
        .durable_object("COUNTER", |_, _| Response::ok(&0));
    let run = engine.run::<Bound>("denied", "mallory".to_string());
    assert_eq!(run.error().name, "NonRetryableError");
    assert!(run.error().message.starts_with("auth answered 403"), "{}", run.error().message);
    assert_eq!(run.step("verify").attempts.len(), 1);

    let unbound = TestEngine::new().durable_object("COUNTER", |_, _| Response::ok(&0)).run::<Bound>("unbound", "x".to_string());
    assert!(unbound.error().message.contains("the service binding AUTH: not configured on the test engine (TestEngine::service)"));
}

// ----- side effects outside steps

/// Reaches every new binding outside any step.
struct Careless {
    env: Env,
}

impl Workflow for Careless {
    type Params = ();
    type Output = ();
    fn new(env: Env) -> Self {
        Careless { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, _: Step<'_>) -> Result<(), StepError> {
        let kv = self.env.kv("CACHE")?;
        kv.put_with("k", "v", KvPutOptions::new().expiration_ttl(60)).await?;
        kv.list(ListOptions::new()).await?;
        kv.delete("k").await?;
        let bucket = self.env.bucket("DATA")?;
        bucket.head("a").await?;
        bucket.list(ListOptions::new().prefix("p/")).await?;
        bucket.delete("a").await?;
        self.env.queue("JOBS")?.send(&1).await?;
        self.env.queue("JOBS")?.send_batch(&[1, 2]).await?;
        self.env.service("AUTH")?.fetch(OutboundRequest::get("https://auth/me")).await?;
        self.env.durable_object("COUNTER")?.get_by_name("c")?.fetch(OutboundRequest::delete("https://counter/")).await?;
        ServiceCall::new(&self.env, "api", format!("{API}x")).put_for_status(&1).await?;
        Ok(())
    }
}

#[test]
fn every_new_call_outside_a_step_is_reported() {
    let engine = TestEngine::new()
        .kv("CACHE")
        .r2("DATA")
        .queue("JOBS")
        .service("AUTH", |_| Response::ok(&1))
        .durable_object("COUNTER", |_, _| Response::ok(&1))
        .route(API, |_| Response::ok(&1));
    let error = engine.try_run::<Careless>("careless", ()).unwrap_err();
    for effect in [
        "KV CACHE put k",
        "KV CACHE list \"\"",
        "KV CACHE delete k",
        "R2 DATA head a",
        "R2 DATA list \"p/\"",
        "R2 DATA delete a",
        "queue JOBS send,",
        "queue JOBS send_batch of 2 messages",
        "fetch GET https://auth/me through service AUTH",
        "fetch DELETE https://counter/ through Durable Object COUNTER \"c\"",
        "fetch PUT https://api.test/x",
    ] {
        assert!(error.message.contains(effect), "{effect:?} missing from: {error}");
    }
}

// ----- secrets

const SECRET: &str = "s3cr3t-VALUE";

/// Uses a secret in a step, and (deliberately) outside one.
struct Secretive {
    env: Env,
}

impl Workflow for Secretive {
    type Params = bool;
    type Output = String;
    fn new(env: Env) -> Self {
        Secretive { env }
    }
    async fn run(&self, event: &WorkflowEvent<bool>, step: Step<'_>) -> Result<String, StepError> {
        let key = self.env.secret("API_KEY")?;
        if event.payload {
            // A side effect outside any step, with the secret in its URL.
            ServiceCall::new(&self.env, "api", format!("{API}leak?key={}", key.expose())).get::<Value>().await?;
        }
        step.run_with("call", no_retries(), |_| async {
            ServiceCall::new(&self.env, "api", format!("{API}me"))
                .header("authorization", format!("Bearer {}", key.expose()))
                .post_for_status(&json!({}))
                .await?;
            // Nothing routes here: the engine's own error names the URL.
            ServiceCall::new(&self.env, "api", format!("https://nowhere.test/?key={}", key.expose())).get::<String>().await
        })
        .await
        .or_else(|e| Ok::<_, StepError>(e.to_string()))
        .map(|message| format!("{message} / {key:?}"))
    }
}

#[test]
fn a_secret_reaches_the_request_yet_never_what_the_engine_writes() {
    let engine = TestEngine::new().secret("API_KEY", SECRET).route(API, |_| Response::ok(&json!({})));
    let run = engine.run::<Secretive>("secret", false);
    let output = run.output::<String>();
    assert!(output.contains("[secret API_KEY]") && output.ends_with("/ Secret(***)"), "{output}");
    assert!(!output.contains(SECRET), "{output}");
    assert_eq!(engine.requests_to(API)[0].header("authorization"), Some(format!("Bearer {SECRET}").as_str()), "it was sent");

    let error = engine.try_run::<Secretive>("leak", true).unwrap_err();
    assert!(error.message.contains("fetch GET https://api.test/leak?key=[secret API_KEY]"), "{error}");
    assert!(!error.message.contains(SECRET) && !format!("{:?}", error.run).contains(SECRET), "{error}");
}

#[test]
fn a_secret_must_be_set_as_a_secret() {
    let run = TestEngine::new().var("API_KEY", SECRET).run::<Secretive>("as-var", false);
    assert_eq!(run.error(), &ErrorInfo { name: "NonRetryableError".into(), message: "the secret API_KEY is not set".into() });
    let run = TestEngine::new().run::<Secretive>("unset", false);
    assert_eq!(run.error().message, "the secret API_KEY is not set");
}

/// Reads a secret as a var, as the platform allows.
struct SecretAsVar {
    env: Env,
}

impl Workflow for SecretAsVar {
    type Params = ();
    type Output = bool;
    fn new(env: Env) -> Self {
        SecretAsVar { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, _: Step<'_>) -> Result<bool, StepError> {
        Ok(self.env.var("API_KEY").as_deref() == Some(SECRET) && self.env.secret("API_KEY")?.expose() == SECRET)
    }
}

#[test]
fn a_secret_reads_as_a_var_too_as_on_the_platform() {
    assert!(TestEngine::new().secret("API_KEY", SECRET).run::<SecretAsVar>("both", ()).output::<bool>());
}

crate::registered_for_tests!(KvExpiry, KvPages, KvWrite, R2Tour, Rest, CallerGiven, Producer, Bound, Careless, Secretive, SecretAsVar);
