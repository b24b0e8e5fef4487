// Batches answered per entry, deletes, retention and reserved ids on the local runtime;
// the queue consumer settling each message by its own entry of a batch.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { root } from "./devserver.mjs";
import { api, createInstance, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";

const quick = { actions: [{ parallel: { name: "w", count: 1 } }] };
const long = { actions: [{ sleep: { name: "long", duration: "10 minutes" } }] };
const batch = (workflow, entries) => api("POST", `/workflows/${workflow}/instances/batch`, entries);
/// The listing's row for `id`, or null. Listing is newest first, so paging stops at the
/// first row older than `notBefore` (the row's createdAt, once known).
const listed = async (workflow, id, notBefore = -Infinity) => {
  for (let cursor = null, page = 0; page < 500; page++) {
    const res = await api("GET", `/workflows/${workflow}/instances?limit=100${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(res.status, 200);
    const row = res.body.instances.find((i) => i.id === id);
    if (row) return row;
    cursor = res.body.cursor;
    if (!cursor || res.body.instances.some((i) => i.createdAt < notBefore)) return null;
  }
  throw new Error("listing did not end");
};

describe("batches, deletes and retention", { concurrency: true }, () => {
  it("a batch with one bad and two good entries reports each, and creates the good ones", async () => {
    const [a, b] = [uniqueId("bg-a"), uniqueId("bg-b")];
    const res = await batch("step-tour", [{ id: a, params: quick }, { id: `-${a}`, params: quick }, { id: b, params: quick }]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const [first, bad, second] = res.body.instances;
    assert.deepEqual(first, { index: 0, id: a, outcome: "created" });
    assert.equal(bad.index, 1);
    assert.equal(bad.outcome, "failed");
    assert.equal(bad.error.code, "invalid_id");
    assert.deepEqual(second, { index: 2, id: b, outcome: "created" });
    for (const id of [a, b]) assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    assert.equal((await getInstance("step-tour", `-${a}`)).status, 400);
  });

  it("every kind of entry gets its own result: existed, reserved, repeated, bad params, bad retention, not an object, no id", async () => {
    const existing = uniqueId("bx-old");
    assert.equal((await createInstance("step-tour", { id: existing, params: quick })).status, 201);
    const fresh = uniqueId("bx-new");
    const res = await batch("step-tour", [
      { id: existing, params: quick },
      { id: "batch", params: quick },
      { id: fresh, params: quick, retention: { successRetention: "1 day", errorRetention: 3_600_000 } },
      { id: fresh, params: quick },
      { id: uniqueId("bx-params"), params: { actions: "none" } },
      { id: uniqueId("bx-ret"), params: quick, retention: { successRetention: "5 fortnights" } },
      "not an entry",
      { params: quick },
    ]);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const results = res.body.instances;
    assert.deepEqual(results.map((r) => r.index), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(results.map((r) => r.outcome), ["existed", "failed", "created", "failed", "failed", "failed", "failed", "created"]);
    assert.deepEqual(results.map((r) => r.error?.code ?? null), [null, "invalid_id", null, "invalid_id", "invalid_params", "invalid_retention", "invalid_json", null]);
    assert.match(results[1].error.message, /reserved/);
    assert.match(results[3].error.message, /twice/);
    assert.match(results[5].error.message, /fortnights/);
    assert.ok(results[7].id, "an entry without an id gets one");
    for (const id of [fresh, results[7].id]) assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    for (const r of [results[4], results[5]]) assert.equal((await getInstance("step-tour", r.id)).status, 404, `${r.id} was not created`);
    // The workflow's registry default retention reaches the engine's batch create, which checks it.
    const order = uniqueId("bx-order");
    const orders = await batch("order-processing", [{ id: order, params: { orderId: order, userId: "u", items: [{ productId: "p-1", quantity: 1 }], fulfillmentDelay: "1 second" } }]);
    assert.deepEqual(orders.body.instances, [{ index: 0, id: order, outcome: "created" }]);
    assert.equal((await waitFor("order-processing", order, finished)).status, "complete");
  });

  it("refuses an empty batch, one over 100 and a body that is not an array with 400 invalid_batch / invalid_json", async () => {
    assert.equal((await batch("step-tour", [])).body.error.code, "invalid_batch");
    const tooMany = await batch("step-tour", Array.from({ length: 101 }, () => ({ params: quick })));
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.error.code, "invalid_batch");
    const notArray = await batch("step-tour", { id: "x", params: quick });
    assert.equal(notArray.status, 400);
    assert.equal(notArray.body.error.code, "invalid_json");
  });

  it("delete removes the instance from status and listing, also while it runs", async () => {
    const done = uniqueId("del-done");
    const running = uniqueId("del-run");
    assert.equal((await createInstance("step-tour", { id: done, params: quick })).status, 201);
    assert.equal((await createInstance("step-tour", { id: running, params: long })).status, 201);
    assert.equal((await waitFor("step-tour", done, finished)).status, "complete");
    await waitFor("step-tour", running, (b) => b.status === "running");
    for (const id of [done, running]) {
      const row = await listed("step-tour", id);
      assert.ok(row, `${id} is listed before the delete`);
      const res = await api("DELETE", `/workflows/step-tour/instances/${id}`);
      assert.equal(res.status, 204, JSON.stringify(res.body));
      assert.equal(res.body, null, "204 has no body");
      const gone = await getInstance("step-tour", id);
      assert.equal(gone.status, 404);
      assert.equal(gone.body.error.code, "instance_not_found");
      assert.equal(await listed("step-tour", id, row.createdAt), null, `${id} is not listed after the delete`);
      const again = await api("DELETE", `/workflows/step-tour/instances/${id}`);
      assert.equal(again.status, 404);
      assert.equal(again.body.error.code, "instance_not_found");
    }
    assert.equal((await api("DELETE", "/workflows/step-tour/instances/-bad")).body.error.code, "invalid_id");
  });

  it("a delete batch answers per id and unlists what it deleted; bad batches are 400 invalid_batch", async () => {
    const [a, b] = [uniqueId("dbat-a"), uniqueId("dbat-b")];
    const rows = {};
    for (const id of [a, b]) {
      assert.equal((await createInstance("step-tour", { id, params: long })).status, 201);
      rows[id] = await listed("step-tour", id);
      assert.ok(rows[id], `${id} is listed`);
    }
    const missing = uniqueId("dbat-none");
    const res = await api("POST", "/workflows/step-tour/instances/delete", { ids: [a, missing, b, "-bad"] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.results.map((r) => [r.index, r.id, r.outcome]), [[0, a, "deleted"], [1, missing, "not_found"], [2, b, "deleted"], [3, "-bad", "failed"]]);
    assert.equal(res.body.results[3].error.code, "invalid_id");
    for (const id of [a, b]) {
      assert.equal((await getInstance("step-tour", id)).status, 404);
      assert.equal(await listed("step-tour", id, rows[id].createdAt), null, `${id} is not listed after the delete`);
    }
    for (const body of [{ ids: [] }, { ids: Array.from({ length: 101 }, (_, i) => `x${i}`) }]) {
      const bad = await api("POST", "/workflows/step-tour/instances/delete", body);
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, "invalid_batch");
    }
    for (const body of [{ ids: "a" }, { id: [a] }, [a]]) {
      const bad = await api("POST", "/workflows/step-tour/instances/delete", body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.error.code, "invalid_json");
    }
  });

  it("retention: accepted on create; a bad one is 400 invalid_retention and creates nothing", async () => {
    const id = uniqueId("ret");
    const ok = await createInstance("step-tour", { id, params: quick, retention: { successRetention: "2 days", errorRetention: 60_000 } });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    for (const retention of [{ successRetention: "5 fortnights" }, { errorRetention: 0 }, { errorRetention: "400 days" }, { keep: "1 day" }, "7 days", { successRetention: 1.5 }]) {
      const bad = uniqueId("ret-bad");
      const res = await createInstance("step-tour", { id: bad, params: quick, retention });
      assert.equal(res.status, 400, JSON.stringify(retention));
      assert.equal(res.body.error.code, "invalid_retention", JSON.stringify(res.body));
      assert.equal((await getInstance("step-tour", bad)).status, 404, "nothing was created");
    }
  });

  it("ids that a route shadows or the engine keeps are refused at create, saying why", async () => {
    for (const id of ["batch", "delete", "terminate", `cf_${"ab".repeat(32)}`]) {
      const res = await createInstance("step-tour", { id, params: quick });
      assert.equal(res.status, 400, id);
      assert.equal(res.body.error.code, "invalid_id");
      assert.match(res.body.error.message, /reserved/);
      const job = await api("POST", "/jobs", { workflow: "step-tour", id, params: quick });
      assert.equal(job.status, 400, `job ${id}`);
    }
  });
});

describe("queue batches", () => {
  it("one failing create in a consumer batch retries that message only, not its siblings", async () => {
    const flaky = uniqueId("flaky-sib");
    const [a, b] = [uniqueId("sib-a"), uniqueId("sib-b")];
    const res = await api("POST", "/jobs", [flaky, a, b].map((id) => ({ workflow: "step-tour", id, params: quick })));
    assert.equal(res.status, 202, JSON.stringify(res.body));
    for (const id of [a, b]) assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    assert.equal((await waitFor("step-tour", flaky, finished, { timeoutMs: 90_000 })).status, "complete");
    // The consumer logs one warning per retried job, naming the jobs of its batch it acked.
    const log = path.join(root, "tests/.tmp/wrangler.log");
    let retried = [];
    for (let i = 0; i < 20 && retried.length < 2; i++) {
      retried = readFileSync(log, "utf8").split("\n").filter((l) => l.includes('"job retried"')).map((l) => JSON.parse(l.slice(l.indexOf("{"), l.lastIndexOf("}") + 1)));
      await sleep(250);
    }
    const flakyRetries = retried.filter((r) => r.instance === flaky);
    assert.equal(flakyRetries.length, 2, "the failing job was retried on each of its two failing deliveries");
    assert.deepEqual(flakyRetries.map((r) => r.attempts), [1, 2]);
    assert.ok(flakyRetries[0].ackedInSameBatch.includes(a) && flakyRetries[0].ackedInSameBatch.includes(b), JSON.stringify(flakyRetries[0]));
    assert.deepEqual(retried.filter((r) => r.instance === a || r.instance === b), [], "the siblings were not retried");
  });
});
