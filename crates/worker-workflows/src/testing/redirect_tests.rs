//! Redirects on the test engine, as the runtime's `fetch` treats them: a request follows
//! them unless it asks for `Redirect::Manual`, and a `ServiceCall` always asks for it, so
//! a URL the policy passed cannot lead a step anywhere else.

use super::*;
use crate::bridge::engine::{OutboundRequest, Redirect};
use crate::bridge::outbound::ServiceCall;
use crate::bridge::{Env, HttpMethod, Step};
use crate::core::step_config::{Retries, StepConfig};
use serde::Deserialize;
use serde_json::json;

/// GETs a source with a `ServiceCall`, as the catalogue's pipeline does.
struct Source {
    env: Env,
}

impl Workflow for Source {
    type Params = ();
    type Output = Value;
    fn new(env: Env) -> Self {
        Source { env }
    }
    async fn run(&self, _: &WorkflowEvent<()>, step: Step<'_>) -> Result<Value, StepError> {
        step.run_with("extract", StepConfig::new().retries(Retries::none()), |_| async {
            ServiceCall::new(&self.env, "source", "https://source.test/users.json".to_string()).get::<Value>().await
        })
        .await
    }
}

#[test]
fn a_service_call_never_follows_a_redirect() {
    let engine = TestEngine::new()
        .route("https://source.test/", |_: &Request| Response::redirect(302, "https://elsewhere.test/users.json"))
        .route("https://elsewhere.test/", |_: &Request| Response::ok(&json!([{"id": 1}])));
    let run = engine.run::<Source>("no-follow", ());
    assert_eq!(run.error().name, "NonRetryableError");
    assert_eq!(run.error().message, "source answered 302 (redirects are not followed; it points to https://elsewhere.test/users.json)");
    // The router follows whatever does not ask for manual: this fails if the call stops asking.
    assert!(engine.requests_to("https://elsewhere.test/").is_empty(), "the target was never requested");
    assert_eq!(engine.requests_to("https://source.test/").len(), 1);
}

#[test]
fn every_service_call_asks_for_manual_redirects() {
    let engine = TestEngine::new();
    let env = Env::new(Rc::new(world::TestEnv { world: Rc::clone(&engine.world) }));
    let call = ServiceCall::new(&env, "svc", "https://svc.test/x".to_string()).idempotency_key("k".into());
    for method in [HttpMethod::Get, HttpMethod::Post, HttpMethod::Put, HttpMethod::Patch, HttpMethod::Delete] {
        let request = call.request(method, Some("{}".into())).expect("a request");
        assert_eq!(request.redirect, Redirect::Manual, "{method:?}");
    }
    let source = ServiceCall::data_source(&env, "https://svc.test/data".to_string()).expect("a source");
    assert_eq!(source.request(HttpMethod::Get, None).expect("a request").redirect, Redirect::Manual);
    // A plain request does not follow either, unless it asks to.
    assert_eq!(OutboundRequest::get("https://svc.test/").redirect, Redirect::Manual);
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct Fetch {
    method: String,
    url: String,
    manual: bool,
    body: Option<String>,
}

/// Sends one plain request through the service binding `SVC`; answers (status, body,
/// location).
struct Plain {
    env: Env,
}

impl Workflow for Plain {
    type Params = Fetch;
    type Output = (u16, String, Option<String>);
    fn new(env: Env) -> Self {
        Plain { env }
    }
    async fn run(&self, event: &WorkflowEvent<Fetch>, step: Step<'_>) -> Result<Self::Output, StepError> {
        let f = &event.payload;
        step.run_with("fetch", StepConfig::new().retries(Retries::none()), |_| async {
            let method = if f.method == "POST" { HttpMethod::Post } else { HttpMethod::Get };
            let mut request = OutboundRequest::new(method, &f.url).header("authorization", "Bearer t0ken");
            if let Some(body) = &f.body {
                request = request.header("content-type", "application/json").body(body.clone());
            }
            request = request.redirect(if f.manual { Redirect::Manual } else { Redirect::Follow });
            let answer = self.env.service("SVC")?.fetch(request).await?;
            Ok((answer.status, answer.text(), answer.location))
        })
        .await
    }
}

fn hops() -> TestEngine {
    TestEngine::new().service("SVC", |r: &Request| match r.path().as_str() {
        "/old" => Response::redirect(302, "/new?from=old"),
        "/see-other" => Response::redirect(303, "https://svc.test/new"),
        "/temporary" => Response::redirect(307, "https://svc.test/new"),
        "/away" => Response::redirect(301, "https://other.test/new"),
        "/loop" => Response::redirect(302, "/loop"),
        "/nowhere" => Response::redirect(302, "http://[::1"),
        "/new" => Response::ok(&json!({"method": r.method.as_str(), "body": r.body_text(), "auth": r.header("authorization")})),
        _ => Response::status(404),
    })
}

fn fetch(method: HttpMethod, path: &str, manual: bool, body: Option<&str>) -> Fetch {
    Fetch { method: method.as_str().to_string(), url: format!("https://svc.test{path}"), manual, body: body.map(str::to_string) }
}

#[test]
fn a_plain_request_follows_redirects_recording_each_hop() {
    let engine = hops();
    let run = engine.run::<Plain>("follow", fetch(HttpMethod::Get, "/old", false, None));
    let (status, body, location) = run.output::<(u16, String, Option<String>)>();
    assert_eq!((status, location), (200, None));
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"method": "GET", "body": "", "auth": "Bearer t0ken"}));
    let urls: Vec<String> = engine.service_requests("SVC").iter().map(|r| r.url.clone()).collect();
    assert_eq!(urls, ["https://svc.test/old", "https://svc.test/new?from=old"]);
    assert!(engine.service_requests("SVC").iter().all(|r| r.step.as_ref().is_some_and(|s| s.step == "fetch")));
}

#[test]
fn a_manual_request_gets_the_redirect() {
    let engine = hops();
    let run = engine.run::<Plain>("manual", fetch(HttpMethod::Get, "/old", true, None));
    assert_eq!(run.output::<(u16, String, Option<String>)>(), (302, String::new(), Some("/new?from=old".into())));
    assert_eq!(engine.service_requests("SVC").len(), 1);
}

#[test]
fn redirects_change_the_method_and_drop_credentials_as_fetch_does() {
    let engine = hops();
    let answer = |id: &str, f: Fetch| {
        let (_, body, _) = engine.run::<Plain>(id, f).output::<(u16, String, Option<String>)>();
        serde_json::from_str::<Value>(&body).unwrap()
    };
    // 303: a GET without the body.
    assert_eq!(
        answer("303", fetch(HttpMethod::Post, "/see-other", false, Some("{\"a\":1}"))),
        json!({"method": "GET", "body": "", "auth": "Bearer t0ken"})
    );
    // 307: the same method and body.
    assert_eq!(
        answer("307", fetch(HttpMethod::Post, "/temporary", false, Some("{\"a\":1}"))),
        json!({"method": "POST", "body": "{\"a\":1}", "auth": "Bearer t0ken"})
    );
    // 302 of a POST: a GET, and its content-type goes with the body.
    let _ = answer("302", fetch(HttpMethod::Post, "/old", false, Some("{}")));
    let last = engine.service_requests("SVC").pop().unwrap();
    assert_eq!((last.method, last.body.is_none(), last.header("content-type")), (HttpMethod::Get, true, None));
    // To another origin: no Authorization.
    assert_eq!(answer("301", fetch(HttpMethod::Get, "/away", false, None)), json!({"method": "GET", "body": "", "auth": null}));
}

#[test]
fn redirects_are_followed_at_most_20_times() {
    let engine = hops();
    let run = engine.run::<Plain>("loop", fetch(HttpMethod::Get, "/loop", false, None));
    assert_eq!(run.error().message, "GET https://svc.test/loop: more than 20 redirects");
    assert_eq!(engine.service_requests("SVC").len(), 21, "the first request and 20 redirects");
    let bad = hops().run::<Plain>("nowhere", fetch(HttpMethod::Get, "/nowhere", false, None));
    assert!(bad.error().message.starts_with("a redirect to a location that is not a URL"), "{}", bad.error().message);
}

crate::registered_for_tests!(Source, Plain);
