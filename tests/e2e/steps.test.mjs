// The step API on the real engine, through the step-tour workflow: sleeps, events,
// fan-out, non-retryable errors, panics, result limits, and instance control.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";
import { validSourceRecords } from "./standin.mjs";

const tour = (id, actions) => createInstance("step-tour", { id, params: { actions } });
const fastRetries = { limit: 2, delay: "1 second", backoff: "constant" };

describe("step API", { concurrency: true }, () => {
  it("sleep really waits", async () => {
    const id = uniqueId("sleep");
    const t0 = Date.now();
    assert.equal((await tour(id, [{ sleep: { name: "nap", duration: "3 seconds" } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, [{ name: "nap", slept: true }]);
    assert.ok(Date.now() - t0 >= 3000, `completed after ${Date.now() - t0} ms`);
  });

  it("sleep_until really waits until the given time", async () => {
    const id = uniqueId("until");
    // Far enough ahead that a slow create on a loaded machine still asks for a future time.
    const at = Date.now() + 10_000;
    assert.equal((await tour(id, [{ sleepUntil: { name: "alarm", at } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.ok(Date.now() >= at, `completed ${at - Date.now()} ms early`);
  });

  it("wait_for_event receives the payload of send_event", async () => {
    const id = uniqueId("event");
    const wait = { waitForEvent: { name: "approval", eventType: "approval-response", timeout: "2 minutes" } };
    assert.equal((await tour(id, [wait])).status, 201);
    await waitFor("step-tour", id, (b) => b.status === "waiting" || b.status === "running");
    await sleep(500);
    const sent = await api("POST", `/workflows/step-tour/instances/${id}/events/approval-response`, { approved: true, by: "ada" });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    assert.deepEqual(sent.body, { id, type: "approval-response" });
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output[0].received, { approved: true, by: "ada" });
    assert.equal(done.output[0].type, "approval-response");
  });

  it("a wait_for_event timeout lands in the workflow's catch path", async () => {
    const id = uniqueId("timeout");
    const actions = [
      { waitForEvent: { name: "approval", eventType: "approval-response", timeout: "2 seconds" } },
      { parallel: { name: "after", count: 1 } },
    ];
    assert.equal((await tour(id, actions)).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.equal(done.output[0].timedOut, true);
    assert.deepEqual(done.output[1], { name: "after", results: [0] });
  });

  it("several steps in flight at once, joined", async () => {
    const { standin } = await worker();
    const id = uniqueId("fanout");
    // Each step calls a stand-in that answers after a second: steps run one after
    // another would never be in flight at the stand-in together.
    assert.equal((await tour(id, [{ parallel: { name: "item", count: 8, url: `${standin.url}/slow/${id}` } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output[0].results, [0, 1, 2, 3, 4, 5, 6, 7]);
    const calls = standin.calls.filter((c) => c.path.startsWith(`/slow/${id}/`));
    assert.deepEqual(calls.map((c) => Number(c.path.split("/").pop())).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
    const firstAnswer = Math.min(...calls.map((c) => c.answeredAt));
    const inFlightTogether = calls.filter((c) => c.at < firstAnswer).length;
    assert.equal(inFlightTogether, 8, `only ${inFlightTogether} of 8 steps had started before the first one's call was answered`);
  });

  it("step-tour's numbers are capped: a value over its bound is refused naming the field", async () => {
    const cases = [
      [{ noop: { name: "n", count: 1001 } }, /actions\[0\]\.noop\.count: 1001 is more than the 1000 allowed/],
      [{ parallel: { name: "p", count: 101 } }, /actions\[0\]\.parallel\.count: 101 is more than the 100 allowed/],
      [{ oversized: { name: "o", bytes: 4_000_000_000 } }, /actions\[0\]\.oversized\.bytes: 4000000000 is more than the 2097152 allowed/],
      [{ transform: { name: "t", url: "https://example.com/x", repeat: 1_000_000 } }, /actions\[0\]\.transform\.repeat: 1000000 is more than the 20 allowed/],
    ];
    for (const [action, message] of cases) {
      const id = uniqueId("cap");
      const res = await tour(id, [action]);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, "invalid_params");
      assert.match(res.body.error.message, message);
      assert.equal((await getInstance("step-tour", id)).status, 404);
    }
    const many = await tour(uniqueId("cap"), Array.from({ length: 101 }, (_, i) => ({ sleep: { name: `s${i}`, duration: "1 second" } })));
    assert.equal(many.status, 400);
    assert.match(many.body.error.message, /actions: 101 items are more than the 100 allowed/);
    // The benchmarks' sizes pass: noop 200, transform repeat 11.
    const { standin } = await worker();
    const benchId = uniqueId("bench");
    const bench = await tour(benchId, [{ noop: { name: "n", count: 200 } }, { transform: { name: "t", url: `${standin.url}/source/${benchId}?n=5`, repeat: 11 } }]);
    assert.equal(bench.status, 201, JSON.stringify(bench.body));
    assert.equal((await waitFor("step-tour", benchId, finished, { timeoutMs: 120_000 })).status, "complete");
  });

  it("the benchmark's transform step normalises downloaded records, repeated, with the same counts", async () => {
    const { standin } = await worker();
    const id = uniqueId("transform");
    const n = 600;
    const url = `${standin.url}/source/${id}?n=${n}`;
    assert.equal((await tour(id, [{ transform: { name: "t1", url } }, { transform: { name: "t3", url, repeat: 3 } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    const counts = { records: validSourceRecords(n), dropped: n - validSourceRecords(n) };
    assert.deepEqual(done.output, [{ name: "t1", ...counts }, { name: "t3", ...counts }]);
  });

  it("a non-retryable error errors the instance with its message intact", async () => {
    const id = uniqueId("fatal");
    const actions = [{ nonRetryable: { name: "validate", message: "email is not valid: x@" } }, { sleep: { name: "never", duration: "1 second" } }];
    assert.equal((await tour(id, actions)).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.equal(done.error.message, "email is not valid: x@");
  });

  it("a retried step reads its attempt number; a service failing twice is called three times", async () => {
    const { standin } = await worker();
    const id = uniqueId("call");
    standin.failNext(`call:${id}`, 2);
    assert.equal((await tour(id, [{ call: { name: "fetch", url: `${standin.url}/call/${id}`, retries: fastRetries } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output[0].body, { key: id, attempt: 3 });
    assert.deepEqual(standin.callsTo(`/call/${id}`).map((c) => c.query.attempt), ["1", "2", "3"]);
  });

  it("a step result over 1 MiB is a clear error", async () => {
    const id = uniqueId("big");
    assert.equal((await tour(id, [{ oversized: { name: "blob", bytes: 1_100_000 } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.match(done.error.message, /1 MiB/);
  });

  it("a panic fails only its attempt and its instance; others in flight complete and the Worker keeps serving", async () => {
    const always = uniqueId("panic-always");
    const once = uniqueId("panic-once");
    const bystander = uniqueId("bystander");
    const created = await Promise.all([
      tour(always, [{ panic: { name: "boom", times: 99, retries: { limit: 1, delay: "1 second" } } }]),
      tour(once, [{ panic: { name: "boom", times: 1, retries: fastRetries } }, { sleep: { name: "rest", duration: "1 second" } }]),
      tour(bystander, [{ sleep: { name: "rest", duration: "4 seconds" } }, { parallel: { name: "work", count: 3 } }]),
    ]);
    for (const c of created) assert.equal(c.status, 201, JSON.stringify(c.body));
    const [a, o, b] = await Promise.all([always, once, bystander].map((id) => waitFor("step-tour", id, finished, { timeoutMs: 90_000 })));
    assert.equal(a.status, "errored", JSON.stringify(a));
    assert.match(a.error.message, /deliberate panic on attempt 2/);
    assert.equal(o.status, "complete", JSON.stringify(o));
    assert.deepEqual(o.output[0], { name: "boom", attempt: 2 });
    assert.equal(b.status, "complete", JSON.stringify(b));
    assert.deepEqual(b.output[1].results, [0, 1, 2]);
    assert.equal((await api("GET", "/health")).status, 200);
  });

  it("pause and resume", async () => {
    const id = uniqueId("pause");
    // The nap is long enough for the pause to arrive during it on a loaded machine; the
    // check waits until the nap would have ended, so completing while paused is caught.
    const t0 = Date.now();
    assert.equal((await tour(id, [{ sleep: { name: "nap", duration: "8 seconds" } }, { parallel: { name: "after", count: 2 } }])).status, 201);
    await waitFor("step-tour", id, (b) => b.status === "running" || b.status === "waiting");
    const paused = await api("POST", `/workflows/step-tour/instances/${id}/pause`);
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.id, id);
    await waitFor("step-tour", id, (b) => b.status === "paused");
    await sleep(Math.max(1000, t0 + 9000 - Date.now()));
    assert.equal((await getInstance("step-tour", id)).body.status, "paused", "a paused instance does not complete");
    assert.equal((await api("POST", `/workflows/step-tour/instances/${id}/resume`)).status, 200);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
  });

  it("terminate, a refused second terminate, and restart", async () => {
    const { standin } = await worker();
    const id = uniqueId("term");
    const actions = [{ call: { name: "fetch", url: `${standin.url}/call/${id}` } }, { sleep: { name: "long", duration: "1 hour" } }];
    assert.equal((await tour(id, actions)).status, 201);
    await waitFor("step-tour", id, () => standin.callsTo(`/call/${id}`).length === 1);
    const terminated = await api("POST", `/workflows/step-tour/instances/${id}/terminate`);
    assert.equal(terminated.status, 200, JSON.stringify(terminated.body));
    await waitFor("step-tour", id, (b) => b.status === "terminated");
    const again = await api("POST", `/workflows/step-tour/instances/${id}/terminate`);
    assert.equal(again.status, 409, JSON.stringify(again.body));
    assert.equal(again.body.error.code, "invalid_state");

    const restarted = await api("POST", `/workflows/step-tour/instances/${id}/restart`);
    assert.equal(restarted.status, 200, JSON.stringify(restarted.body));
    // A restart runs from the beginning: the first step calls the service again.
    await waitFor("step-tour", id, () => standin.callsTo(`/call/${id}`).length === 2);
    assert.equal((await api("POST", `/workflows/step-tour/instances/${id}/terminate`)).status, 200);
  });

  it("a malformed duration in params is refused before anything is created", async () => {
    const id = uniqueId("badsleep");
    const res = await tour(id, [{ sleep: { name: "nap", duration: "a while" } }]);
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /actions\[0\]\.sleep\.duration.*a while/);
    assert.equal((await getInstance("step-tour", id)).status, 404);
  });
});

// Alone, after the suite above: 2,700 steps load the engine enough to delay the other
// tests' instances by seconds (a sleep_until's time would pass before its run started).
describe("the engine's step limit", () => {
  it("a run past the step limit declared in build.rs (.step_limit(2500)) errors naming the limit", async () => {
    const id = uniqueId("limit");
    // 2,700 steps: within the engine's default limit, past the one step-tour declares.
    const noops = ["a", "b", "c"].map((name) => ({ noop: { name, count: 900 } }));
    assert.equal((await tour(id, noops)).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 240_000 });
    assert.equal(done.status, "errored", JSON.stringify(done).slice(0, 400));
    assert.match(JSON.stringify(done.error), /2500/, JSON.stringify(done.error));
  });
});
