// The API's guards on the local runtime: a restart refused while compensations run,
// caller's mistakes answered 409 rather than 500, errors that never repeat credentials,
// and one instance and one run for racing batch creates and queue jobs of one id.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";

const control = (workflow, id, action, body) => api("POST", `/workflows/${workflow}/instances/${id}/${action}`, body);
const quick = { actions: [{ parallel: { name: "w", count: 1 } }] };
const hold = { sleep: { name: "hold", duration: "1 hour" } };
const until = async (what, check, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
};

describe("guards", { concurrency: true }, () => {
  it("a restart is refused while the instance's rollbacks run (status running on this runtime), and after", async () => {
    const { standin } = await worker();
    const id = uniqueId("rb-restart");
    // Each rollback POSTs to a stand-in route that answers after 4 s: the instance rolls back for about 8 s.
    const undoUrl = `${standin.url}/slow/${id}-undo?ms=4000`;
    const actions = [
      { compensated: { name: "a", undoUrl } },
      { call: { name: "mark", url: `${standin.url}/call/${id}-ran` } },
      { compensated: { name: "b", undoUrl, fail: true } },
    ];
    assert.equal((await createInstance("step-tour", { id, params: { actions } })).status, 201);
    const undos = () => standin.callsTo(`/slow/${id}-undo`);
    await until("the first rollback", () => undos().length >= 1);
    const during = await getInstance("step-tour", id);
    assert.ok(!finished(during.body), `still rolling back: ${JSON.stringify(during.body)}`);
    const refused = await control("step-tour", id, "restart");
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, "invalid_state");
    assert.match(refused.body.error.message, /compensations \(rollbacks\) have started/);
    const fromStep = await control("step-tour", id, "restart", { from: { name: "mark" } });
    assert.equal(fromStep.status, 409, JSON.stringify(fromStep.body));

    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.equal(done.error.message, "b failed");
    const after = await control("step-tour", id, "restart");
    assert.equal(after.status, 409, JSON.stringify(after.body));
    await sleep(1500);
    assert.deepEqual(undos().map((c) => c.body.step), ["b", "a"], "each rollback ran once");
    assert.equal(standin.callsTo(`/call/${id}-ran`).length, 1, "no refused restart ran a step again");
    assert.equal((await getInstance("step-tour", id)).body.status, "errored");
  });

  it("operations the instance's state does not allow are 409 invalid_state, never 2xx or 500", async () => {
    const expect409 = async (what, res) => {
      assert.equal(res.status, 409, `${what}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, "invalid_state", what);
    };
    // A complete instance: an event would be stored and never read; pause, resume and terminate change nothing.
    const complete = uniqueId("st-done");
    assert.equal((await createInstance("step-tour", { id: complete, params: quick })).status, 201);
    assert.equal((await waitFor("step-tour", complete, finished)).status, "complete");
    await expect409("event to a complete instance", await api("POST", `/workflows/step-tour/instances/${complete}/events/ping`, { n: 1 }));
    await expect409("pause a complete instance", await control("step-tour", complete, "pause"));
    await expect409("resume a complete instance", await control("step-tour", complete, "resume"));
    await expect409("terminate a complete instance", await control("step-tour", complete, "terminate"));
    assert.match((await control("step-tour", complete, "resume")).body.error.message, /cannot be resumed: it is not paused \(complete\)/);

    // An errored one.
    const errored = uniqueId("st-err");
    assert.equal((await createInstance("step-tour", { id: errored, params: { actions: [{ nonRetryable: { name: "x", message: "no" } }] } })).status, 201);
    assert.equal((await waitFor("step-tour", errored, finished)).status, "errored");
    await expect409("event to an errored instance", await api("POST", `/workflows/step-tour/instances/${errored}/events/ping`, {}));
    await expect409("pause an errored instance", await control("step-tour", errored, "pause"));

    // A running one: resume is refused (it is not paused); pause, then resume, then terminate are fine.
    const live = uniqueId("st-live");
    assert.equal((await createInstance("step-tour", { id: live, params: { actions: [hold] } })).status, 201);
    await waitFor("step-tour", live, (b) => b.status === "running" || b.status === "waiting");
    await expect409("resume a running instance", await control("step-tour", live, "resume"));
    assert.equal((await api("POST", `/workflows/step-tour/instances/${live}/events/ping`, {})).status, 202, "a live instance takes events");
    assert.equal((await control("step-tour", live, "pause")).status, 200);
    await waitFor("step-tour", live, (b) => b.status === "paused");
    assert.equal((await control("step-tour", live, "pause")).status, 200, "pausing a paused instance changes nothing");
    assert.equal((await control("step-tour", live, "resume")).status, 200);
    assert.equal((await control("step-tour", live, "terminate")).status, 200);
    assert.equal((await waitFor("step-tour", live, finished)).status, "terminated");
    await expect409("event to a terminated instance", await api("POST", `/workflows/step-tour/instances/${live}/events/ping`, {}));
    await expect409("resume a terminated instance", await control("step-tour", live, "resume"));
  });

  it("create errors name the field and the problem, never the credentials or the whole value", async () => {
    const secrets = /secret|hunter2|alice|u:|token=|sk_live/;
    const cases = [
      [{ params: { actions: [hold] }, callbackUrl: "https://u:secret@exa mple.com" }, 400, "invalid_callback_url", /^callbackUrl: URL is not a valid URL/],
      [{ params: { actions: [hold] }, callbackUrl: "ftp://alice:hunter2@hooks.example.com/x?token=abc" }, 400, "invalid_callback_url", /^callbackUrl: URL scheme "ftp" \(host "hooks\.example\.com"\) is not allowed/],
      [{ params: { actions: [hold] }, callbackUrl: "https://alice:hunter2@hooks.example.com/x?token=abc" }, 400, "invalid_callback_url", /^callbackUrl: URL must not contain a user name or password \(host "hooks\.example\.com"\)$/],
      [{ params: { actions: [hold, { call: { name: "c", url: "https://alice:hunter2@10.0.0.1/x?token=abc" } }] } }, 400, "invalid_params", /actions\[1\]\.call\.url: URL must not contain a user name or password \(host "10\.0\.0\.1"\)/],
      [{ params: { actions: [hold, { call: { name: "c", url: "https://10.0.0.1/x?token=abc" } }] } }, 400, "invalid_params", /actions\[1\]\.call\.url: URL points at host "10\.0\.0\.1", which is not a public host/],
      [{ params: { actions: "sk_live_0123456789abcdef" } }, 400, "invalid_params", /actions: invalid type: a string of about 24 characters/],
    ];
    for (const [body, status, code, message] of cases) {
      const id = uniqueId("echo");
      const res = await api("POST", "/workflows/step-tour/instances", { id, ...body });
      // Were the refusal broken, the instance only sleeps until it is terminated here.
      if (res.status < 300) await control("step-tour", id, "terminate");
      assert.equal(res.status, status, `${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, code);
      assert.match(res.body.error.message, message);
      assert.doesNotMatch(res.body.error.message, secrets);
    }
    // A megabyte-sized id is named, not repeated.
    const long = await api("POST", "/workflows/step-tour/instances", { id: `-${"x".repeat(100_000)}`, params: quick });
    assert.equal(long.status, 400);
    assert.equal(long.body.error.code, "invalid_id");
    assert.ok(long.body.error.message.length < 300, long.body.error.message.slice(0, 300));
    assert.match(long.body.error.message, /100001 characters/);
  });

  it("racing batch creates, single creates and queue jobs of one id make one instance and one run, listed once", async () => {
    const { standin } = await worker();
    const id = uniqueId("race");
    const params = { actions: [{ call: { name: "c", url: `${standin.url}/call/${id}` } }] };
    const started = Date.now();
    const batches = Array.from({ length: 6 }, () => api("POST", "/workflows/step-tour/instances/batch", [{ id, params }]));
    const singles = Array.from({ length: 2 }, () => createInstance("step-tour", { id, params }));
    const jobs = Array.from({ length: 3 }, () => api("POST", "/jobs", { workflow: "step-tour", id, params }));
    const [batchAnswers, singleAnswers, jobAnswers] = await Promise.all([Promise.all(batches), Promise.all(singles), Promise.all(jobs)]);
    for (const res of jobAnswers) assert.equal(res.status, 202, JSON.stringify(res.body));
    const outcomes = batchAnswers.map((res) => {
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.instances[0].outcome;
    });
    for (const res of singleAnswers) assert.ok([200, 201].includes(res.status), JSON.stringify(res.body));
    assert.deepEqual(outcomes.filter((o) => o !== "created" && o !== "existed"), [], `no failures: ${JSON.stringify(outcomes)}`);
    const created = outcomes.filter((o) => o === "created").length + singleAnswers.filter((r) => r.status === 201).length;
    assert.ok(created <= 1, `at most one request created it: ${JSON.stringify(outcomes)} ${singleAnswers.map((r) => r.status)}`);

    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    // The queue's jobs are consumed (acked as existed) within a few seconds.
    await until("the jobs to be consumed", async () => !(await api("GET", "/jobs/retrying?limit=100")).body.retrying.some((r) => r.reason.includes(id)), 30_000);
    await sleep(5000);
    assert.equal(standin.callsTo(`/call/${id}`).length, 1, "one run");
    let seen = 0;
    for (let cursor = null, page = 0; page < 50; page++) {
      const res = await api("GET", `/workflows/step-tour/instances?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
      assert.equal(res.status, 200);
      seen += res.body.instances.filter((i) => i.id === id).length;
      cursor = res.body.cursor;
      if (!cursor || res.body.instances.some((i) => i.createdAt < started - 60_000)) break;
    }
    assert.equal(seen, 1, "listed once");
  });
});
