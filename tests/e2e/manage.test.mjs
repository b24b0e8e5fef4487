// Managing instances on the local runtime: restart from a step, terminate with rollback.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId } from "./harness.mjs";

const order = (orderId) => ({
  orderId,
  userId: `user-${orderId}`,
  items: [{ productId: "p-1", quantity: 1 }],
  fulfillmentDelay: "1 second",
});
const control = (workflow, id, action, body) => api("POST", `/workflows/${workflow}/instances/${id}/${action}`, body);

describe("managing instances", { concurrency: true }, () => {
  it("restarting a completed order from create-shipment ships again but does not charge again", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("reship");
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    const first = await waitFor("order-processing", orderId, finished);
    assert.equal(first.status, "complete", JSON.stringify(first));
    const count = (path) => standin.callsTo(path, (c) => c.body?.orderId === orderId || c.body?.userId === `user-${orderId}`).length;
    assert.deepEqual([count("/payments/charge"), count("/shipping/create"), count("/notify/send")], [1, 1, 1]);

    const restarted = await control("order-processing", orderId, "restart", { from: { name: "create-shipment" } });
    assert.equal(restarted.status, 200, JSON.stringify(restarted.body));
    const again = await waitFor("order-processing", orderId, (b) => b.status === "complete" && count("/notify/send") === 2);
    assert.deepEqual(again.output, first.output, "the cached payment result is reused");
    assert.equal(count("/shipping/create"), 2, "create-shipment ran again");
    assert.equal(count("/payments/charge"), 1, "process-payment did not run again");
  });

  it("restart from a sleep by its type; an unknown step is 409 step_not_found; a malformed body is 400; no body restarts from the start", async () => {
    const { standin } = await worker();
    const key = uniqueId("rs");
    const params = { actions: [
      { call: { name: "before", url: `${standin.url}/call/${key}-before` } },
      { sleep: { name: "nap", duration: "1 second" } },
      { call: { name: "after", url: `${standin.url}/call/${key}-after` } },
    ] };
    const id = uniqueId("restart-from");
    assert.equal((await createInstance("step-tour", { id, params })).status, 201);
    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    const calls = () => [standin.callsTo(`/call/${key}-before`).length, standin.callsTo(`/call/${key}-after`).length];
    assert.deepEqual(calls(), [1, 1]);

    // Refused requests change nothing.
    const unknown = await control("step-tour", id, "restart", { from: { name: "no-such-step" } });
    assert.equal(unknown.status, 409, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.code, "step_not_found");
    assert.match(unknown.body.error.message, /no-such-step/);
    // "nap" is a sleep: without `type` the engine looks for a step.do named "nap".
    const wrongKind = await control("step-tour", id, "restart", { from: { name: "nap" } });
    assert.equal(wrongKind.status, 409, JSON.stringify(wrongKind.body));
    assert.equal(wrongKind.body.error.code, "step_not_found");
    for (const bad of [{ from: { name: "nap", type: "nap" } }, { from: { name: "nap", count: 0 } }, { from: {} }, { form: { name: "nap" } }, "{not json", "[]"]) {
      const res = await control("step-tour", id, "restart", bad);
      assert.equal(res.status, 400, `${JSON.stringify(bad)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, "invalid_json");
    }
    assert.equal((await getInstance("step-tour", id)).body.status, "complete");
    assert.deepEqual(calls(), [1, 1], "no refused restart ran anything");

    const fromNap = await control("step-tour", id, "restart", { from: { name: "nap", type: "sleep" } });
    assert.equal(fromNap.status, 200, JSON.stringify(fromNap.body));
    await waitFor("step-tour", id, (b) => b.status === "complete" && calls()[1] === 2);
    assert.deepEqual(calls(), [1, 2], "only the steps from the sleep on ran again");

    const fromStart = await control("step-tour", id, "restart");
    assert.equal(fromStart.status, 200, JSON.stringify(fromStart.body));
    await waitFor("step-tour", id, (b) => b.status === "complete" && calls()[1] === 3);
    assert.deepEqual(calls(), [2, 3], "without a body every step ran again");
  });

  it("a finished instance's status is answered from its index row; a restart and a delete through the API are seen at the next read", async () => {
    const { d1 } = await worker();
    const id = uniqueId("final");
    const params = { actions: [{ sleep: { name: "nap", duration: "2 seconds" } }] };
    const row = () => d1(`SELECT final_status, generation FROM instances WHERE workflow = 'step-tour' AND id = '${id}'`)[0];
    assert.equal((await createInstance("step-tour", { id, params })).status, 201);
    const first = await waitFor("step-tour", id, finished);
    assert.equal(first.status, "complete", JSON.stringify(first));
    // The read that found it finished recorded it in the row.
    assert.equal(JSON.parse(row().final_status).status, "complete", JSON.stringify(row()));
    // Later reads are the row's, not the engine's: a marker written into it is what they answer.
    d1(`UPDATE instances SET final_status = '{"status":"complete","output":"from-the-row"}' WHERE workflow = 'step-tour' AND id = '${id}'`);
    assert.equal((await getInstance("step-tour", id)).body.output, "from-the-row");

    // A restart through the API clears the record: the very next read is the engine's, with
    // the instance napping again, and nothing recorded until it has finished again.
    const restarted = await control("step-tour", id, "restart");
    assert.equal(restarted.status, 200, JSON.stringify(restarted.body));
    const next = await getInstance("step-tour", id);
    assert.equal(next.status, 200, JSON.stringify(next.body));
    assert.notEqual(next.body.output, "from-the-row");
    assert.notEqual(next.body.status, "complete", `read right after the restart: ${JSON.stringify(next.body)}`);
    assert.deepEqual(row(), { final_status: null, generation: 1 });
    const again = await waitFor("step-tour", id, finished);
    assert.equal(again.status, "complete", JSON.stringify(again));
    assert.deepEqual(again.output, first.output);
    assert.equal(JSON.parse(row().final_status).status, "complete");

    // A delete removes the row; a new instance under the same id shows its own status.
    assert.equal((await api("DELETE", `/workflows/step-tour/instances/${id}`)).status, 204);
    assert.equal((await getInstance("step-tour", id)).status, 404);
    assert.equal((await createInstance("step-tour", { id, params })).status, 201);
    const reborn = await getInstance("step-tour", id);
    assert.notEqual(reborn.body.status, "complete", JSON.stringify(reborn.body));
    assert.equal(row().final_status, null);
  });

  it("the terminate body is checked: a malformed one is 400 and terminates nothing, {rollback: true} ends the instance terminated (its compensations: sagas.test.mjs)", async () => {
    const id = uniqueId("term-rb");
    const params = { actions: [{ sleep: { name: "long", duration: "10 minutes" } }] };
    assert.equal((await createInstance("step-tour", { id, params })).status, 201);
    await waitFor("step-tour", id, (b) => b.status === "running");
    for (const bad of [{ rollback: "yes" }, { rolback: true }, { rollback: null }, [true], "{"]) {
      const res = await control("step-tour", id, "terminate", bad);
      assert.equal(res.status, 400, `${JSON.stringify(bad)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, "invalid_json");
    }
    assert.equal((await getInstance("step-tour", id)).body.status, "running", "a refused terminate left it running");
    const res = await control("step-tour", id, "terminate", { rollback: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((await waitFor("step-tour", id, finished)).status, "terminated");
    const again = await control("step-tour", id, "terminate", { rollback: true });
    assert.equal(again.status, 409, JSON.stringify(again.body));
    assert.equal(again.body.error.code, "invalid_state");
  });
});
