// Webhook callbacks never lose a result: a delivery that fails leaves the instance as its
// workflow ended it, and the instance status shows how the delivery went. The test Worker
// retries deliveries twice from 1 s (CALLBACK_RETRY_LIMIT / CALLBACK_RETRY_DELAY in harness.mjs).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, waitFor, finished, uniqueId } from "./harness.mjs";

const quick = { actions: [{ parallel: { name: "work", count: 2 } }] };
const output = [{ name: "work", results: [0, 1] }];

async function createWithCallback(standin, id, params = quick) {
  const res = await api("POST", "/workflows/step-tour/instances", { id, params, callbackUrl: `${standin.url}/hooks/${id}` });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

describe("webhook callbacks", { concurrency: true }, () => {
  it("a receiver that always fails leaves the instance complete with its output; the status shows the failed delivery", async () => {
    const { standin } = await worker();
    const id = uniqueId("hookdown");
    standin.hookAnswers(id, 500);
    await createWithCallback(standin, id);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, output);
    assert.equal(done.error, undefined);
    const calls = standin.callsTo(`/hooks/${id}`);
    assert.equal(calls.length, 3, "the first attempt and two retries");
    assert.equal(done.callback.state, "failed", JSON.stringify(done.callback));
    assert.equal(done.callback.attempts, 3);
    assert.match(done.callback.lastError, /callback receiver answered 500/);
    assert.doesNotMatch(done.callback.lastError, /^attempt \d/, "the attempt tag is not part of the error shown");
    assert.equal(done.callback.webhookId, calls[0].headers["webhook-id"]);
    // The configured delay, 1 s doubling: the retries came after about 1 s and 2 s.
    const gaps = [calls[1].at - calls[0].at, calls[2].at - calls[1].at];
    assert.ok(gaps[0] >= 900 && gaps[1] >= 1900, `gaps ${gaps}`);
  });

  it("a receiver that refuses (410) is retried like any other answer but a 2xx, then recorded as failed; the instance completes", async () => {
    const { standin } = await worker();
    const id = uniqueId("hookgone");
    standin.hookAnswers(id, 410);
    await createWithCallback(standin, id);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, output);
    assert.equal(standin.callsTo(`/hooks/${id}`).length, 3);
    assert.deepEqual({ state: done.callback.state, attempts: done.callback.attempts }, { state: "failed", attempts: 3 });
    assert.match(done.callback.lastError, /callback receiver answered 410/);
  });

  it("a delivered callback shows delivered with its attempts; an instance without one shows none", async () => {
    const { standin } = await worker();
    const id = uniqueId("hookok");
    standin.failNext(`hooks:${id}`, 1);
    await createWithCallback(standin, id);
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete");
    assert.deepEqual(done.output, output);
    const calls = standin.callsTo(`/hooks/${id}`);
    assert.equal(calls.length, 2);
    assert.deepEqual(done.callback, { state: "delivered", attempts: 2, webhookId: calls[1].headers["webhook-id"] });

    const plain = uniqueId("nohook");
    assert.equal((await api("POST", "/workflows/step-tour/instances", { id: plain, params: quick })).status, 201);
    const plainDone = await waitFor("step-tour", plain, finished);
    assert.equal(plainDone.status, "complete");
    assert.equal(plainDone.callback, undefined);
  });

  it("webhook-id is one per run: a restart sends a new one, its retries and a replay of the run keep it", async () => {
    const { standin } = await worker();
    const id = uniqueId("hookrun");
    const hooks = () => standin.callsTo(`/hooks/${id}`);
    const webhookIds = () => hooks().map((c) => c.headers["webhook-id"]);
    const restart = async (body) => {
      const res = await api("POST", `/workflows/step-tour/instances/${id}/restart`, body);
      assert.equal(res.status, 200, JSON.stringify(res.body));
    };
    await createWithCallback(standin, id);
    await waitFor("step-tour", id, (b) => b.status === "complete" && b.callback && hooks().length === 1);

    // A full restart is a new run: its delivery fails once and is retried.
    standin.failNext(`hooks:${id}`, 1);
    await restart(undefined);
    await waitFor("step-tour", id, (b) => b.status === "complete" && b.callback?.webhookId !== webhookIds()[0] && hooks().length === 3);
    const [first, second, retried] = webhookIds();
    assert.notEqual(second, first, "the restarted run's callback has its own id");
    assert.equal(retried, second, "a retry within the run keeps its id");
    assert.match(second, new RegExp(`^msg_step-tour_${id}_`));

    // Restarting from send-callback replays the run up to it: its id is the stored one.
    await restart({ from: { name: "send-callback" } });
    await waitFor("step-tour", id, () => hooks().length === 4);
    assert.equal(webhookIds()[3], second);
    const done = await waitFor("step-tour", id, (b) => b.status === "complete" && b.callback?.attempts === 1);
    assert.deepEqual(done.callback, { state: "delivered", attempts: 1, webhookId: second });
    for (const call of hooks()) assert.deepEqual(call.body.output, output);
  });
});
