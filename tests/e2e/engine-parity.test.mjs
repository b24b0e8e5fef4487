// The points where the host test engine (src/bridge/testing) could disagree with the
// real engine, pinned on the real one: retry counting and default delays, event
// buffering, and the wording of timeouts and errors. Errors cross JS RPC between the
// Worker and the engine, and a custom name (PanicError, WorkflowTimeoutError,
// NonRetryableError) survives only in the message, "<name>: <message>": the bridge reads
// NonRetryableError and WorkflowTimeoutError back from it (StepError::from_engine). Each case has a host twin in
// src/bridge/testing/tests.rs asserting the same counts and the same words.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, waitFor, finished, uniqueId } from "./harness.mjs";

const tour = (id, actions) => createInstance("step-tour", { id, params: { actions } });

describe("engine behaviour the test engine copies", { concurrency: true }, () => {
  it("events sent before their wait are buffered per type and received in order", async () => {
    const id = uniqueId("buffered");
    const actions = [
      { sleep: { name: "nap", duration: "5 seconds" } },
      { waitForEvent: { name: "first", eventType: "decision", timeout: "1 minute" } },
      { waitForEvent: { name: "second", eventType: "decision", timeout: "1 minute" } },
    ];
    assert.equal((await tour(id, actions)).status, 201);
    // Both sent during the sleep, before either wait exists.
    for (const n of [1, 2]) {
      const sent = await api("POST", `/workflows/step-tour/instances/${id}/events/decision`, { n });
      assert.equal(sent.status, 202, JSON.stringify(sent.body));
    }
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output.slice(1).map((o) => o.received), [{ n: 1 }, { n: 2 }]);
  });

  it("a wait that runs out throws WorkflowTimeoutError: 'Execution timed out after <ms>ms'", async () => {
    const id = uniqueId("wait-timeout");
    assert.equal((await tour(id, [{ waitForEvent: { name: "approval", eventType: "decision", timeout: "2 seconds" } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output[0], { name: "approval", timedOut: true, message: "Execution timed out after 2000ms" });
  });

  it("a step without config retries after the local default of 1 second, doubling", async () => {
    const { standin } = await worker();
    const id = uniqueId("defaults");
    standin.failNext(`call:${id}`, 2);
    assert.equal((await tour(id, [{ call: { name: "fetch", url: `${standin.url}/call/${id}` } }])).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 60_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    const at = standin.callsTo(`/call/${id}`).map((c) => c.at);
    assert.equal(at.length, 3);
    const [first, second] = [at[1] - at[0], at[2] - at[1]];
    assert.ok(first >= 1000 && first < 9000, `first retry after ${first} ms: 1 s locally (the docs say 10 s)`);
    assert.ok(second >= 2000, `second retry after ${second} ms: exponential`);
  });

  it("a step makes limit + 1 attempts, then its last error errors the instance as it was", async () => {
    const { standin } = await worker();
    const id = uniqueId("exhausted");
    standin.failNext(`call:${id}`, 10);
    const retries = { limit: 2, delay: 300, backoff: "constant" };
    assert.equal((await tour(id, [{ call: { name: "fetch", url: `${standin.url}/call/${id}`, retries } }])).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 60_000 });
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.deepEqual(done.error, { name: "Error", message: 'service answered 503: {"error":"try again"}' });
    assert.equal(standin.callsTo(`/call/${id}`).length, 3);
  });

  it("an attempt over its timeout fails with 'Execution timed out after 1000ms', named only in the message", async () => {
    const { standin } = await worker();
    const id = uniqueId("attempt-timeout");
    const call = { name: "slow", url: `${standin.url}/slow/${id}?ms=4000`, retries: { limit: 0, delay: 0 }, timeout: "1 second" };
    assert.equal((await tour(id, [{ call }])).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 60_000 });
    assert.equal(done.status, "errored", JSON.stringify(done));
    // The workflow gets StepError::Timeout; uncaught, it crosses RPC back to the engine,
    // which keeps its name only in the message.
    assert.deepEqual(done.error, { name: "Error", message: "WorkflowTimeoutError: Execution timed out after 1000ms" });
  });

  it("a panic that exhausts the retries errors the instance with its message, named only in the message", async () => {
    const id = uniqueId("panic");
    assert.equal((await tour(id, [{ panic: { name: "boom", times: 99, retries: { limit: 1, delay: 300 } } }])).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 60_000 });
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.deepEqual(done.error, { name: "Error", message: "PanicError: step panicked: deliberate panic on attempt 2" });
  });

  it("an uncaught non-retryable error errors the instance by its name, with its message", async () => {
    const id = uniqueId("fatal");
    assert.equal((await tour(id, [{ nonRetryable: { name: "validate", message: "email is not valid: x@" } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.deepEqual(done.error, { name: "NonRetryableError", message: "email is not valid: x@" });
  });

  it("sleep_until a time in the past errors with the engine's message", async () => {
    const id = uniqueId("past");
    assert.equal((await tour(id, [{ sleepUntil: { name: "then", at: 1000 } }])).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.deepEqual(done.error, { name: "Error", message: "You can't sleep until a time in the past, time-traveler" });
  });
});
