// The step context and dynamic retry delays on the real engine, through step-tour.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, createInstance, waitFor, finished, uniqueId } from "./harness.mjs";

const tour = (id, actions) => createInstance("step-tour", { id, params: { actions } });

describe("step context and retry delays", { concurrency: true }, () => {
  it("the step context shows each step's count and the config the engine resolved for it", async () => {
    const id = uniqueId("ctx");
    const actions = [
      { context: { name: "probe", count: 2 } },
      { context: { name: "tuned", retries: { limit: 2, delay: "3 seconds", backoff: "linear" }, timeout: "30 seconds" } },
      { context: { name: "dynamic", retries: { limit: 1, delay: "1 second", retryAfter: true } } },
    ];
    const created = await tour(id, actions);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    // The engine's defaults for a step without config: 5 retries from 1 s, exponential, "10 minutes".
    const defaults = { timeoutMs: 600_000, retries: { limit: 5, delayMs: 1000, backoff: "exponential" }, sensitive: false };
    assert.deepEqual(done.output[0].contexts, [
      { name: "probe", count: 1, attempt: 1, config: defaults },
      { name: "probe", count: 2, attempt: 1, config: defaults },
    ]);
    assert.deepEqual(done.output[1].contexts, [
      { name: "tuned", count: 1, attempt: 1, config: { timeoutMs: 30_000, retries: { limit: 2, delayMs: 3000, backoff: "linear" }, sensitive: false } },
    ]);
    // A delay function: the engine reports no delay, and the backoff defaults to constant.
    assert.deepEqual(done.output[2].contexts[0].config.retries, { limit: 1, delayMs: null, backoff: "constant" });
  });

  it("a retry delay function honours the service's Retry-After: the gaps between attempts follow it", async () => {
    const { standin } = await worker();
    const key = uniqueId("ratelimited");
    standin.rateLimitNext(key, [1, 3]);
    const retries = { limit: 3, delay: "100 ms", retryAfter: true };
    assert.equal((await tour(key, [{ call: { name: "fetch", url: `${standin.url}/call/${key}`, retries } }])).status, 201);
    const done = await waitFor("step-tour", key, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output[0].body, { key, attempt: 3 });
    const at = standin.callsTo(`/call/${key}`).map((c) => c.at);
    assert.equal(at.length, 3);
    const [first, second] = [at[1] - at[0], at[2] - at[1]];
    // The static delay would be 100 ms then 200 ms; Retry-After asked for 1 s, then 3 s.
    assert.ok(first >= 1000, `first gap ${first} ms`);
    assert.ok(second >= 3000, `second gap ${second} ms`);
    // Constant backoff by default for a delay function: exponential would double it to 6 s.
    assert.ok(second < 5500, `second gap ${second} ms`);
  });
});
