// order-processing end to end on the local runtime, against loopback stand-ins.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, lifeIn } from "./harness.mjs";

const order = (orderId, extra = {}) => ({
  orderId,
  userId: `user-${orderId}`,
  items: [{ productId: `${orderId}-a`, quantity: 2 }, { productId: `${orderId}-b`, quantity: 1 }],
  fulfillmentDelay: "1 second",
  ...extra,
});

describe("order-processing", { concurrency: true }, () => {
  it("completes with the services' results in its output, after really sleeping", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("ok");
    const created = await createInstance("order-processing", { id: orderId, params: order(orderId, { fulfillmentDelay: "2 seconds" }) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.id, orderId);
    assert.equal(created.body.workflow, "order-processing");
    assert.equal(created.body.statusUrl, `/workflows/order-processing/instances/${orderId}`);
    assert.equal(created.headers.get("location"), created.body.statusUrl);
    assert.ok(["queued", "running"].includes(created.body.status), created.body.status);

    const done = await waitFor("order-processing", orderId, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { status: "completed", transactionId: `tx-${orderId}`, trackingNumber: `trk-${orderId}`, confirmation: "sent" });

    const charge = standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId);
    assert.equal(charge.length, 1);
    // Every key is of this instance's life: its id and the engine's creation time.
    const life = lifeIn(charge[0].headers["idempotency-key"], orderId, "order-payment-");
    const ship = standin.callsTo("/shipping/create", (c) => c.body?.orderId === orderId);
    assert.equal(ship.length, 1);
    assert.deepEqual(ship[0].body.items, order(orderId).items);
    assert.ok(ship[0].at - charge[0].at >= 2000, `slept only ${ship[0].at - charge[0].at} ms`);
    const confirm = standin.callsTo("/notify/send", (c) => c.body?.userId === `user-${orderId}`);
    assert.equal(confirm.length, 1);
    assert.equal(confirm[0].body.message, `Order ${orderId} shipped! Tracking: trk-${orderId}`);
    assert.equal(ship[0].headers["idempotency-key"], `${life}:create-shipment:1`);
    assert.equal(confirm[0].headers["idempotency-key"], `${life}:send-confirmation:1`);
    // Every item was checked, each once, inside the one validate-inventory step.
    for (const item of order(orderId).items) assert.equal(standin.callsTo(`/inventory/check/${item.productId}`).length, 1, item.productId);
  });

  it("after the shipment it only goes forward: a confirmation that cannot be sent leaves the order complete, and says so", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("noconfirm");
    standin.notifyAnswers(`user-${orderId}`, 503);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    // 4 retries of the confirmation: 2 + 4 + 8 + 16 s.
    const done = await waitFor("order-processing", orderId, finished, { timeoutMs: 120_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { status: "completed", transactionId: `tx-${orderId}`, trackingNumber: `trk-${orderId}`, confirmation: "failed" });
    const confirms = standin.callsTo("/notify/send", (c) => c.body?.userId === `user-${orderId}`);
    const life = lifeIn(confirms[0]?.headers["idempotency-key"], orderId);
    assert.deepEqual(confirms.map((c) => c.headers["idempotency-key"]), Array(5).fill(`${life}:send-confirmation:1`));
    // Complete is final: no rollback ran, and none will.
    const history = await api("GET", `/workflows/order-processing/instances/${orderId}/history`);
    assert.equal(history.status, 200);
    assert.deepEqual(history.body.steps.filter((s) => s.type === "rollback"), [], JSON.stringify(history.body.steps));
    assert.equal(history.body.steps.find((s) => s.name === "send-confirmation")?.status, "errored", JSON.stringify(history.body.steps));
    assert.equal(standin.callsTo("/payments/refund", (c) => c.body?.orderId === orderId).length, 0, "the shipped order is not refunded");
    assert.equal(standin.callsTo("/shipping/create", (c) => c.body?.orderId === orderId).length, 1);
  });

  it("cancels and notifies when an item is out of stock, without charging", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("oos");
    const params = order(orderId, { items: [{ productId: `${orderId}-a`, quantity: 1 }, { productId: `oos-${orderId}`, quantity: 1 }] });
    assert.equal((await createInstance("order-processing", { id: orderId, params })).status, 201);
    const done = await waitFor("order-processing", orderId, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { status: "cancelled", reason: "out_of_stock" });
    const notes = standin.callsTo("/notify/send", (c) => c.body?.userId === `user-${orderId}`);
    assert.deepEqual(notes.map((c) => c.body.message), ["Items out of stock"]);
    assert.equal(standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId).length, 0);
    assert.equal(standin.callsTo(`/inventory/check/oos-${orderId}`).length, 1);
    assert.equal(standin.callsTo(`/inventory/check/${orderId}-a`).length, 1);
  });

  it("retries a payment service that fails twice: it is called exactly three times", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("flaky");
    standin.failNext(`payments:${orderId}`, 2);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    const done = await waitFor("order-processing", orderId, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.equal(done.output.transactionId, `tx-${orderId}`);
    const charges = standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId);
    assert.equal(charges.length, 3);
    const life = lifeIn(charges[0].headers["idempotency-key"], orderId, "order-payment-");
    assert.deepEqual(new Set(charges.map((c) => c.headers["idempotency-key"])), new Set([`order-payment-${life}`]));
  });

  it("retries a shipment that fails once under the same Idempotency-Key, derived from the instance and step", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("shipflaky");
    standin.failNext(`shipping:${orderId}`, 1);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    const done = await waitFor("order-processing", orderId, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    const ships = standin.callsTo("/shipping/create", (c) => c.body?.orderId === orderId);
    assert.equal(ships.length, 2, "failed once, then retried");
    const life = lifeIn(ships[0].headers["idempotency-key"], orderId);
    assert.deepEqual(ships.map((c) => c.headers["idempotency-key"]), [`${life}:create-shipment:1`, `${life}:create-shipment:1`]);
  });

  it("errors after one attempt when payments answers 4xx, with the message in status.error", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("declined");
    standin.paymentAnswers(orderId, 402);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    const done = await waitFor("order-processing", orderId, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.match(done.error.message, /payments answered 402: .*card declined/);
    assert.equal(done.output, undefined);
    assert.equal(standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId).length, 1);
    assert.equal(standin.callsTo("/shipping/create", (c) => c.body?.orderId === orderId).length, 0);
  });

  it("creating with an id that exists returns it and does not start a second run", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("dup");
    const first = await createInstance("order-processing", { id: orderId, params: order(orderId) });
    assert.equal(first.status, 201);
    assert.equal(first.body.created, true);
    const again = await Promise.all([1, 2, 3].map(() => createInstance("order-processing", { id: orderId, params: order(orderId) })));
    for (const r of again) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.created, false);
      assert.equal(r.body.id, orderId);
    }
    const done = await waitFor("order-processing", orderId, finished);
    assert.equal(done.status, "complete");
    assert.equal(standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId).length, 1);
  });

  it("refuses params that do not match OrderParams, naming the field", async () => {
    const res = await createInstance("order-processing", { params: { orderId: "x", userId: "u", items: [{ productId: "p", quantity: "two" }] } });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /items\[0\]\.quantity/);
    // A product id is one path segment of the inventory URL: a dot segment would change the path.
    const traversal = await createInstance("order-processing", { params: { orderId: "x", userId: "u", items: [{ productId: "p", quantity: 1 }, { productId: "..", quantity: 1 }] } });
    assert.equal(traversal.status, 400, JSON.stringify(traversal.body));
    assert.equal(traversal.body.error.code, "invalid_params");
    assert.match(traversal.body.error.message, /items\[1\]\.productId: "\.\." is not allowed/);
    const bad = await createInstance("order-processing", { params: { orderId: "x", userId: "u", items: [], fulfillmentDelay: "eventually" } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /fulfillmentDelay.*eventually/);
  });

  it("refuses an order of more than 50 items before anything is created, naming the field", async () => {
    const items = (n) => Array.from({ length: n }, (_, i) => ({ productId: `p-${i}`, quantity: 1 }));
    const id = uniqueId("toomany");
    const res = await createInstance("order-processing", { id, params: { orderId: id, userId: "u", items: items(51) } });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /items: 51 items are more than the 50 allowed/);
    assert.equal((await getInstance("order-processing", id)).status, 404, "no instance was created");
    const fifty = uniqueId("fifty");
    const ok = await createInstance("order-processing", { id: fifty, params: { orderId: fifty, userId: "u", items: items(50), fulfillmentDelay: "1 second" } });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal((await waitFor("order-processing", fifty, finished)).status, "complete");
  });

  it("sends a product id with /, ? and # as one encoded path segment of the inventory URL", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("segment");
    const productId = `${orderId}/../../payments/refund?x=1#y`;
    const params = order(orderId, { items: [{ productId, quantity: 1 }] });
    assert.equal((await createInstance("order-processing", { id: orderId, params })).status, 201);
    const done = await waitFor("order-processing", orderId, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.equal(standin.callsTo(`/inventory/check/${encodeURIComponent(productId)}`).length, 1);
    assert.equal(standin.callsTo("/payments/refund", (c) => c.query.x !== undefined).length, 0);
  });

  it("answers 404 JSON for a missing instance and 400 for a malformed id", async () => {
    const missing = await getInstance("order-processing", uniqueId("nope"));
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, "instance_not_found");
    const bad = await createInstance("order-processing", { id: "-bad id", params: order("x") });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, "invalid_id");
    const unknown = await createInstance("no-such-workflow", { params: {} });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, "workflow_not_found");
  });

  it("keys side effects by the instance's life: a restart presents the same keys, a new instance of a deleted id new ones", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("life");
    const chargeKeys = () => standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId).map((c) => c.headers["idempotency-key"]);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    assert.equal((await waitFor("order-processing", orderId, finished)).status, "complete");
    const [first] = chargeKeys();
    lifeIn(first, orderId, "order-payment-");

    // The same life run again from the start: the charge goes out under the same key.
    assert.equal((await api("POST", `/workflows/order-processing/instances/${orderId}/restart`)).status, 200);
    await waitFor("order-processing", orderId, () => chargeKeys().length === 2);
    assert.equal((await waitFor("order-processing", orderId, finished)).status, "complete");
    assert.deepEqual(chargeKeys(), [first, first]);

    // Deleted, then created again with the id: another life, whose keys a service has never seen.
    assert.equal((await api("DELETE", `/workflows/order-processing/instances/${orderId}`)).status, 204);
    assert.equal((await createInstance("order-processing", { id: orderId, params: order(orderId) })).status, 201);
    assert.equal((await waitFor("order-processing", orderId, finished)).status, "complete");
    const keys = chargeKeys();
    assert.equal(keys.length, 3);
    lifeIn(keys[2], orderId, "order-payment-");
    assert.notEqual(keys[2], first, "a new life presents a new charge key");
  });
});
