// Changing a workflow safely, on the local runtime: a patch (step.patched) answered from
// the instance's creation time and the patch's first sighting in D1; params with a field
// the code no longer has, refused at create and read by a run; and a history recorded
// with GET …/history?format=replay, replayed against today's code by `cargo test`.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { worker, api, createInstance, waitFor, finished, uniqueId } from "./harness.mjs";
import { root } from "./devserver.mjs";

const historyPath = (workflow, id) => `/workflows/${workflow}/instances/${id}/history`;
const tour = (id, actions, extra = {}) => createInstance("step-tour", { id, params: { actions, ...extra } });

/// Runs `cargo test` with `env` set; resolves with its exit code and output.
function cargoTest(args, env) {
  return new Promise((resolve) => {
    execFile("cargo", ["test", "--quiet", ...args], { cwd: root, env: { ...process.env, ...env }, timeout: 280_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error ? (error.code ?? 1) : 0, output: `${stdout}\n${stderr}` }),
    );
  });
}

describe("changing a workflow safely", { concurrency: true }, () => {
  it("a patch is false for an instance created before its first sighting and true after: one D1 row, a durable step", async () => {
    const { d1 } = await worker();
    const patch = uniqueId("refund-before-ship");
    // The first instance to ask records the sighting, after its own creation: the old path.
    const before = uniqueId("patch-old");
    assert.equal((await tour(before, [{ patched: { id: patch } }])).status, 201);
    const old = await waitFor("step-tour", before, finished);
    assert.equal(old.status, "complete", JSON.stringify(old));
    assert.deepEqual(old.output, [{ patch, patched: false }]);
    const rows = d1(`SELECT workflow, patch, first_seen FROM workflow_patches WHERE patch = '${patch}'`);
    assert.equal(rows.length, 1, JSON.stringify(rows));
    assert.equal(rows[0].workflow, "step-tour");
    const firstSeen = rows[0].first_seen;

    // Created after the sighting: the new path. And the row stays as the first run wrote it.
    const after = uniqueId("patch-new");
    assert.equal((await tour(after, [{ patched: { id: patch } }, { sleep: { name: "nap", duration: "1 second" } }, { patched: { id: patch } }])).status, 201);
    const fresh = await waitFor("step-tour", after, finished);
    assert.equal(fresh.status, "complete", JSON.stringify(fresh));
    assert.deepEqual(fresh.output, [{ patch, patched: true }, { name: "nap", slept: true }, { patch, patched: true }]);
    assert.deepEqual(d1(`SELECT first_seen FROM workflow_patches WHERE patch = '${patch}'`), [{ first_seen: firstSeen }]);

    // The answer is a step of its own, run once (its replay after the sleep got it back).
    const replay = await api("GET", `${historyPath("step-tour", after)}?format=replay`);
    assert.equal(replay.status, 200, JSON.stringify(replay.body));
    const patchSteps = replay.body.steps.filter((s) => s.name === `patched:${patch}`);
    assert.deepEqual(patchSteps.map((s) => [s.type, s.count, s.status, s.attempts, s.output]), [["do", 1, "complete", 1, true]]);
    assert.ok(replay.body.createdAt >= firstSeen, `${replay.body.createdAt} >= ${firstSeen}`);
    const oldReplay = (await api("GET", `${historyPath("step-tour", before)}?format=replay`)).body;
    assert.ok(oldReplay.createdAt < firstSeen, `${oldReplay.createdAt} < ${firstSeen}`);
    assert.equal(oldReplay.steps.find((s) => s.name === `patched:${patch}`)?.output, false);
  });

  it("params with a field the workflow no longer has are refused at create, and an instance created with them runs", async () => {
    const parent = uniqueId("spawner");
    const child = uniqueId("old-params");
    const params = { actions: [{ noop: { name: "work", count: 1 } }], removedByADeploy: { since: "v2" } };
    const refused = await createInstance("step-tour", { id: uniqueId("strict"), params });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, "invalid_params");
    assert.match(refused.body.error.message, /removedByADeploy/);
    // As the engine holds the params of an instance created before the deploy: unchecked.
    assert.equal((await tour(parent, [{ spawn: { name: "start", workflow: "step-tour", id: child, params } }])).status, 201);
    assert.equal((await waitFor("step-tour", parent, finished)).status, "complete");
    const done = await waitFor("step-tour", child, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, [{ name: "work", steps: 1 }]);
  });

  it("format=replay carries what a replay needs, marks a sensitive output without copying it, and refuses another format", async () => {
    const res = await api("POST", "/api/workflow/start", { email: ` ${uniqueId("replay")}@EXAMPLE.com `, name: "Ada" }, { authorization: "" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const id = res.body.workflowId;
    const done = await waitFor("user-onboarding", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    const history = await api("GET", `${historyPath("user-onboarding", id)}?format=replay`);
    assert.equal(history.status, 200, JSON.stringify(history.body));
    assert.match(history.headers.get("content-type"), /application\/json/);
    const h = history.body;
    assert.deepEqual([h.format, h.version, h.workflow, h.id, h.status, h.truncated], ["worker-workflows/replay-history", 1, "user-onboarding", id, "complete", false]);
    assert.equal(h.params.name, "Ada");
    assert.deepEqual(h.output, done.output);
    const validate = h.steps.find((s) => s.name === "validate-user");
    assert.equal(validate.outputRedacted, true, JSON.stringify(validate));
    assert.ok(!("output" in validate));
    assert.ok(!JSON.stringify(h).toLowerCase().includes("@example.com\""), "the validated email is never copied");
    assert.equal(h.steps.find((s) => s.name === "create-profile")?.output, done.output.userId, "other outputs are");
    await api("POST", `/workflows/user-lifecycle/instances/lifecycle-${done.output.userId}/terminate`);

    const other = await api("GET", `${historyPath("user-onboarding", id)}?format=yaml`);
    assert.equal(other.status, 400);
    assert.equal(other.body.error.code, "invalid_query");
    const stream = await api("GET", `${historyPath("user-onboarding", id)}?format=replay`, undefined, { accept: "text/event-stream" });
    assert.equal(stream.status, 400);
    assert.equal(stream.body.error.code, "invalid_accept");
  });

  it("an order's history recorded here replays against today's code in cargo test", async () => {
    const { standin } = await worker();
    const orderId = uniqueId("recorded");
    standin.failNext(`payments:${orderId}`, 1);
    const params = { orderId, userId: `user-${orderId}`, items: [{ productId: "p-1", quantity: 2 }], fulfillmentDelay: "2 seconds" };
    assert.equal((await createInstance("order-processing", { id: orderId, params })).status, 201);
    const done = await waitFor("order-processing", orderId, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    const res = await api("GET", `${historyPath("order-processing", orderId)}?format=replay`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const h = res.body;
    assert.deepEqual(h.steps.map((s) => [s.name, s.type, s.status]), [
      ["validate-inventory", "do", "complete"],
      ["process-payment", "do", "complete"],
      ["wait-before-fulfillment", "sleep", "complete"],
      ["create-shipment", "do", "complete"],
      ["send-confirmation", "do", "complete"],
    ]);
    assert.equal(h.steps[1].attempts, 2);
    assert.equal(h.steps[1].output.transactionId, done.output.transactionId, "the charge's output, as stored");
    assert.equal(h.steps[2].durationMs, 2000);
    assert.equal(h.steps[4].output, null, "a null output is an output");
    assert.deepEqual(h.params, params);
    // The engine's creation time is the idempotency keys' (`{id}@{createdAtMs}`): within milliseconds of the history's.
    const charge = standin.callsTo("/payments/charge", (c) => c.body?.orderId === orderId)[0];
    const keyTime = Number(charge.headers["idempotency-key"].split("@")[1]);
    assert.ok(Math.abs(keyTime - h.createdAt) < 1000, `createdAt ${h.createdAt}, the event's timestamp ${keyTime}`);

    const dir = path.join(root, "tests/.tmp/recorded");
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `order-processing-${orderId}.json`);
    writeFileSync(file, JSON.stringify(h, null, 2) + "\n");
    // RECORD_FIXTURES=1 refreshes the fixture the host tests replay on every `cargo test`.
    if (process.env.RECORD_FIXTURES === "1") writeFileSync(path.join(root, "tests/fixtures/histories/order-processing.json"), JSON.stringify(h, null, 2) + "\n");
    const run = await cargoTest(["--test", "workflows", "--", "--ignored", "--exact", "replay::a_history_just_recorded_on_wrangler_dev_replays"], { RECORDED_HISTORY: file });
    assert.equal(run.code, 0, run.output);
    assert.match(run.output, /1 passed/);
  });
});
