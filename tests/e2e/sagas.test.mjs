// Rollbacks (compensations) on the real engine: step-tour's compensated steps, the
// order saga's refund, terminate with rollback, and pause/resume, which runs none.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, sleep, lifeIn } from "./harness.mjs";
import { root } from "./devserver.mjs";

const tour = (id, actions) => createInstance("step-tour", { id, params: { actions } });
const control = (workflow, id, action, body) => api("POST", `/workflows/${workflow}/instances/${id}/${action}`, body);
const fast = { limit: 2, delay: "500 ms", backoff: "constant" };
const order = (orderId) => ({ orderId, userId: `user-${orderId}`, items: [{ productId: "p-1", quantity: 1 }], fulfillmentDelay: "1 second" });

/// The instance's step history (`GET …/history`, JSON).
async function steps(workflow, id) {
  const res = await api("GET", `/workflows/${workflow}/instances/${id}/history`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.steps;
}

/// Waits until the history shows a step of `type` named `name` in one of `statuses`.
async function untilStep(workflow, id, { name, type, statuses = ["complete"] }, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await steps(workflow, id)).find((s) => s.name === name && s.type === type && statuses.includes(s.status));
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`${workflow}/${id}: no ${type} step ${name} in ${statuses} within ${timeoutMs} ms`);
    await sleep(250);
  }
}

/// What each compensated step's rollback reported, in the order the stand-in got them.
async function undone(id) {
  const { standin } = await worker();
  return standin.calls.filter((c) => c.path.startsWith(`/call/${id}-undo`)).map((c) => c.body);
}

describe("rollbacks", { concurrency: true }, () => {
  it("rollbacks run in reverse start order with each step's typed output; the failed step is rolled back without one", async () => {
    const { standin } = await worker();
    const id = uniqueId("saga");
    const undoUrl = `${standin.url}/call/${id}-undo`;
    const actions = [
      { compensated: { name: "reserve-a", undoUrl } },
      { compensated: { name: "reserve-b", undoUrl } },
      { compensated: { name: "reserve-c", undoUrl, fail: true } },
      { call: { name: "after", url: `${standin.url}/call/${id}-after` } },
    ];
    assert.equal((await tour(id, actions)).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.equal(done.error.message, "reserve-c failed");
    const error = { name: "NonRetryableError", message: "reserve-c failed" };
    assert.deepEqual(await undone(id), [
      { step: "reserve-c", count: 1, attempt: 1, output: null, error },
      { step: "reserve-b", count: 1, attempt: 1, output: { step: "reserve-b", token: "reserve-b-token" }, error },
      { step: "reserve-a", count: 1, attempt: 1, output: { step: "reserve-a", token: "reserve-a-token" }, error },
    ]);
    assert.equal(standin.callsTo(`/call/${id}-after`).length, 0, "nothing after the failed step ran");
  });

  it("a failing rollback is retried per its own config with its attempts counted, and a panicking one is contained", async () => {
    const { standin } = await worker();
    const id = uniqueId("retried");
    standin.failNext(`call:${id}-undo-b`, 1);
    const actions = [
      { compensated: { name: "a", undoUrl: `${standin.url}/call/${id}-undo-a`, panics: 1, rollbackRetries: fast } },
      { compensated: { name: "b", undoUrl: `${standin.url}/call/${id}-undo-b`, rollbackRetries: fast } },
      { compensated: { name: "c", undoUrl: `${standin.url}/call/${id}-undo-c`, fail: true } },
    ];
    assert.equal((await tour(id, actions)).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.equal(done.error.message, "c failed", "the instance keeps its own error, not a rollback's");
    // c once; b failed at the service once, then succeeded; a panicked once, then reported attempt 2.
    assert.deepEqual((await undone(id)).map((b) => [b.step, b.attempt]), [["c", 1], ["b", 1], ["b", 2], ["a", 2]]);
    // b's rollback was retried under one Idempotency-Key, from the instance and the rolled-back step.
    const keys = standin.callsTo(`/call/${id}-undo-b`).map((c) => c.headers["idempotency-key"]);
    const life = lifeIn(keys[0], id);
    assert.deepEqual(keys, [`${life}:rollback%20of%20b:1`, `${life}:rollback%20of%20b:1`]);
    assert.equal((await api("GET", "/health")).status, 200, "the Worker keeps serving after a panic in a rollback");
  });

  it("a rollback that fails for good is logged, and the engine runs no rollback after it", async () => {
    const { standin } = await worker();
    const id = uniqueId("unrolled");
    standin.failNext(`call:${id}-undo-b`, 99);
    const actions = [
      { compensated: { name: "a", undoUrl: `${standin.url}/call/${id}-undo-a` } },
      { compensated: { name: "b", undoUrl: `${standin.url}/call/${id}-undo-b`, rollbackRetries: { limit: 1, delay: "200 ms" } } },
      { compensated: { name: "c", undoUrl: `${standin.url}/call/${id}-undo-c`, fail: true } },
    ];
    assert.equal((await tour(id, actions)).status, 201);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.deepEqual((await undone(id)).map((b) => [b.step, b.attempt]), [["c", 1], ["b", 1], ["b", 2]], "a is never rolled back");
    const log = () => readFileSync(path.join(root, "tests/.tmp/wrangler.log"), "utf8").split("\n");
    const reported = () => log().filter((l) => l.includes(`"instance":"${id}"`) && l.includes('"type":"rollback"'));
    await waitFor("step-tour", id, () => reported().some((l) => l.includes('"outcome":"failed"')));
    const failed = reported().find((l) => l.includes('"outcome":"failed"'));
    assert.match(failed, /"step":"b"/);
    assert.match(failed, /undo answered 503/);
  });

  it("terminate with rollback runs the compensations of a running instance once each, in reverse, and it goes no further", async () => {
    const { standin } = await worker();
    const id = uniqueId("term-saga");
    const undoUrl = `${standin.url}/call/${id}-undo`;
    const actions = [
      { compensated: { name: "a", undoUrl } },
      { compensated: { name: "b", undoUrl } },
      { sleep: { name: "nap", duration: "3 seconds" } },
      { call: { name: "after", url: `${standin.url}/call/${id}-after` } },
    ];
    assert.equal((await tour(id, actions)).status, 201);
    await untilStep("step-tour", id, { name: "nap", type: "sleep", statuses: ["running"] });
    // A twin with the same nap and call, started now: its nap ends after this one's would.
    const twin = `${id}-twin`;
    const twinActions = [actions[2], { call: { name: "after", url: `${standin.url}/call/${twin}-after` } }];
    assert.equal((await tour(twin, twinActions)).status, 201);
    const res = await control("step-tour", id, "terminate", { rollback: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    // The rollbacks ran inside the terminate call.
    const terminated = { name: "Terminated", message: "Instance terminated during rollback" };
    assert.deepEqual(await undone(id), [
      { step: "b", count: 1, attempt: 1, output: { step: "b", token: "b-token" }, error: terminated },
      { step: "a", count: 1, attempt: 1, output: { step: "a", token: "a-token" }, error: terminated },
    ]);
    assert.equal((await waitFor("step-tour", id, finished)).status, "terminated");
    // The twin woke from its nap and made its call, after the terminated one's nap would have
    // ended: had the terminated instance gone on, it would have called too.
    assert.equal((await waitFor("step-tour", twin, finished)).status, "complete");
    assert.equal(standin.callsTo(`/call/${twin}-after`).length, 1);
    assert.equal(standin.callsTo(`/call/${id}-after`).length, 0, "the workflow did not go on after its sleep");
    assert.equal((await undone(id)).length, 2, "no rollback ran twice");
  });

  it("a paused instance terminated with rollback runs its compensations", async () => {
    const { standin } = await worker();
    const id = uniqueId("paused-saga");
    const actions = [{ compensated: { name: "a", undoUrl: `${standin.url}/call/${id}-undo` } }, { sleep: { name: "nap", duration: "10 minutes" } }];
    assert.equal((await tour(id, actions)).status, 201);
    await untilStep("step-tour", id, { name: "nap", type: "sleep", statuses: ["running"] });
    assert.equal((await control("step-tour", id, "pause")).status, 200);
    await waitFor("step-tour", id, (b) => b.status === "paused");
    assert.deepEqual(await undone(id), [], "pausing runs no rollback");
    assert.equal((await control("step-tour", id, "terminate", { rollback: true })).status, 200);
    assert.deepEqual((await undone(id)).map((b) => [b.step, b.error.name]), [["a", "Terminated"]]);
    assert.equal((await getInstance("step-tour", id)).body.status, "terminated");
  });

  it("pausing and resuming an instance with rollbacks runs none of them", async () => {
    const { standin } = await worker();
    const id = uniqueId("pause-saga");
    const actions = [
      { compensated: { name: "a", undoUrl: `${standin.url}/call/${id}-undo` } },
      { sleep: { name: "nap", duration: "3 seconds" } },
      { call: { name: "after", url: `${standin.url}/call/${id}-after` } },
    ];
    assert.equal((await tour(id, actions)).status, 201);
    await untilStep("step-tour", id, { name: "a", type: "do" });
    assert.equal((await control("step-tour", id, "pause")).status, 200);
    await waitFor("step-tour", id, (b) => b.status === "paused");
    assert.equal((await control("step-tour", id, "resume")).status, 200);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.equal(standin.callsTo(`/call/${id}-after`).length, 1);
    assert.deepEqual(await undone(id), []);
  });
});

describe("the order saga", { concurrency: true }, () => {
  const refunds = (standin, orderId) => standin.callsTo("/payments/refund", (c) => c.body?.orderId === orderId);
  const calls = (standin, p, orderId) => standin.callsTo(p, (c) => c.body?.orderId === orderId || c.body?.userId === `user-${orderId}`).length;
  // The payment's rollback has ended: no refund comes after this.
  const refundDone = (orderId) => untilStep("order-processing", orderId, { name: "process-payment", type: "rollback", statuses: ["complete", "errored"] });

  it("a shipment the carrier refuses refunds the charge exactly once, and the order ends errored with nothing after it", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("refused");
    standin.shippingAnswers(orderId, 422);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    const done = await waitFor("order-processing", orderId, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.match(done.error.message, /shipping answered 422/);
    assert.equal((await refundDone(orderId)).status, "complete");
    const refund = refunds(standin, orderId);
    assert.equal(refund.length, 1);
    const chargeKey = standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId)[0].headers["idempotency-key"];
    const life = lifeIn(chargeKey, orderId, "order-payment-");
    assert.deepEqual(refund[0].body, { orderId, transactionId: `tx-${orderId}`, chargeIdempotencyKey: chargeKey });
    assert.deepEqual(refund[0].answer, { refunded: true, transactionId: `tx-${orderId}` });
    assert.equal(refund[0].headers["idempotency-key"], `order-refund-${life}`);
    assert.equal(calls(standin, "/payments/charge", orderId), 1);
    assert.equal(calls(standin, "/shipping/create", orderId), 1, "a 4xx is final");
    assert.equal(calls(standin, "/notify/send", orderId), 0, "no confirmation");
    // Its cached charge was refunded: restarting it (from a step or from the start)
    // would ship on a refunded payment, so the API refuses.
    const before = await steps("order-processing", orderId);
    for (const body of [{ from: { name: "create-shipment" } }, {}]) {
      const restart = await control("order-processing", orderId, "restart", body);
      assert.equal(restart.status, 409, JSON.stringify(restart.body));
      assert.equal(restart.body.error.code, "invalid_state");
      assert.match(restart.body.error.message, /compensations/);
    }
    // Refused before the engine was asked: the instance is as it was, errored, its history unchanged.
    assert.equal((await getInstance("order-processing", orderId)).body.status, "errored");
    assert.deepEqual(await steps("order-processing", orderId), before);
    assert.equal(calls(standin, "/shipping/create", orderId), 1, "not shipped again");
  });

  it("a shipment whose retries run out refunds the charge exactly once", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("unshippable");
    standin.shippingAnswers(orderId, 503);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    const done = await waitFor("order-processing", orderId, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.equal(calls(standin, "/shipping/create", orderId), 4, "3 retries");
    assert.equal((await refundDone(orderId)).attempts, 1);
    assert.equal(refunds(standin, orderId).length, 1);
    assert.equal(calls(standin, "/notify/send", orderId), 0);
  });

  it("a declined charge is not refunded", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("declined-saga");
    standin.paymentAnswers(orderId, 402);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    const done = await waitFor("order-processing", orderId, finished);
    assert.equal(done.status, "errored");
    assert.match(done.error.message, /payments answered 402/);
    // Its rollback ran, and ended without asking for a refund: the service declined the charge.
    assert.equal((await refundDone(orderId)).status, "complete");
    assert.equal(refunds(standin, orderId).length, 0);
  });

  it("a charge in flight when the instance is terminated with rollback is refunded by the charge's key", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("inflight");
    // The service makes the charge at once and answers 20 s later: the step is still running.
    standin.paymentTakes(orderId, 20_000);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    await waitFor("order-processing", orderId, () => calls(standin, "/payments/charge", orderId) === 1);
    const res = await control("order-processing", orderId, "terminate", { rollback: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((await waitFor("order-processing", orderId, finished)).status, "terminated");
    await refundDone(orderId);
    // No transaction id is known yet: the refund names the charge by its key, and the service finds it.
    const refund = refunds(standin, orderId);
    assert.equal(refund.length, 1, JSON.stringify(refund.map((r) => r.body)));
    const chargeKey = standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId)[0].headers["idempotency-key"];
    const life = lifeIn(chargeKey, orderId, "order-payment-");
    assert.deepEqual(refund[0].body, { orderId, chargeIdempotencyKey: chargeKey });
    assert.equal(refund[0].headers["idempotency-key"], `order-refund-${life}`);
    assert.deepEqual(refund[0].answer, { refunded: true, transactionId: `tx-${orderId}` });
    assert.equal(calls(standin, "/shipping/create", orderId), 0);
  });
});
