// The HTTP API on the local runtime: auth, the four integration patterns, ids,
// batches, listing, and the error contract.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, WEBHOOK_SECRET } from "./harness.mjs";

const tourParams = (actions) => ({ actions });
const quick = tourParams([{ parallel: { name: "work", count: 2 } }]);

/// Standard Webhooks verification written here, independently of the Worker's Rust code.
function verifyWebhook(call) {
  const key = Buffer.from(WEBHOOK_SECRET.slice("whsec_".length), "base64");
  const id = call.headers["webhook-id"];
  const ts = call.headers["webhook-timestamp"];
  const expected = crypto.createHmac("sha256", key).update(`${id}.${ts}.${call.raw}`).digest("base64");
  const given = call.headers["webhook-signature"].split(" ").map((s) => s.split(",")[1]);
  return given.some((sig) => sig && crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(expected)));
}

describe("HTTP API", { concurrency: true }, () => {
  it("requires the bearer token on /workflows, not on /health, /openapi.json or the demo routes", async () => {
    for (const headers of [{ authorization: "" }, { authorization: "Bearer wrong" }, { authorization: "Basic dGVzdA==" }]) {
      const res = await api("GET", "/workflows", undefined, headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.equal(res.body.error.code, "unauthorized");
    }
    const create = await api("POST", "/workflows/step-tour/instances", { params: quick }, { authorization: "Bearer nope" });
    assert.equal(create.status, 401);
    assert.equal((await api("GET", "/health", undefined, { authorization: "" })).status, 200);
    assert.equal((await api("GET", "/openapi.json", undefined, { authorization: "" })).status, 200);
    const demo = await api("POST", "/api/workflow/start", { email: `${uniqueId("pub")}@example.com`, name: "A" }, { authorization: "" });
    assert.equal(demo.status, 200, JSON.stringify(demo.body));
    assert.ok(demo.body.workflowId);
  });

  it("lists the workflows with their class names and bindings", async () => {
    const res = await api("GET", "/workflows");
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.workflows.find((w) => w.name === "order-processing"), { name: "order-processing", className: "OrderWorkflow", binding: "ORDER_WORKFLOW" });
    assert.ok(res.body.workflows.some((w) => w.name === "step-tour"));
  });

  it("fire-and-forget: Prefer: respond-async answers 202 at once", async () => {
    const id = uniqueId("ff");
    const res = await api("POST", "/workflows/step-tour/instances", { id, params: tourParams([{ sleep: { name: "nap", duration: "1 second" } }]) }, { prefer: "respond-async" });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.deepEqual(res.body, { id, statusUrl: `/workflows/step-tour/instances/${id}` });
    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
  });

  it("synchronous poll: 200 with the output when it completes in time", async () => {
    const id = uniqueId("sync");
    const res = await api("POST", "/workflows/step-tour/instances?wait=30s", { id, params: quick });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { id, workflow: "step-tour", status: "complete", output: [{ name: "work", results: [0, 1] }] });
  });

  it("synchronous poll: 500 with the error when it fails", async () => {
    const id = uniqueId("syncfail");
    const res = await api("POST", "/workflows/step-tour/instances?wait=30%20seconds", { id, params: tourParams([{ nonRetryable: { name: "v", message: "bad input" } }]) });
    assert.equal(res.status, 500, JSON.stringify(res.body));
    assert.equal(res.body.status, "errored");
    assert.equal(res.body.error.message, "bad input");
    assert.equal(res.body.id, id);
  });

  it("synchronous poll: 202 with the status URL when the wait runs out", async () => {
    const id = uniqueId("syncslow");
    const t0 = Date.now();
    const res = await api("POST", "/workflows/step-tour/instances?wait=2s", { id, params: tourParams([{ sleep: { name: "nap", duration: "2 minutes" } }]) });
    const took = Date.now() - t0;
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.statusUrl, `/workflows/step-tour/instances/${id}`);
    assert.ok(!["complete", "errored", "terminated"].includes(res.body.status));
    // It answered when its wait ran out, not when the two-minute instance finished (the
    // margin is wide because a loaded machine slows the local runtime a lot).
    assert.ok(took >= 2000 && took < 120_000, `answered after ${took} ms`);
    await api("POST", `/workflows/step-tour/instances/${id}/terminate`);
  });

  it("refuses a malformed or too long wait before creating anything", async () => {
    for (const wait of ["10%20minutes", "soonish"]) {
      const id = uniqueId("badwait");
      const res = await api("POST", `/workflows/step-tour/instances?wait=${wait}`, { id, params: quick });
      assert.equal(res.status, 400, wait);
      assert.equal(res.body.error.code, "invalid_wait");
      assert.equal((await getInstance("step-tour", id)).status, 404);
    }
  });

  it("webhook callback on success: signed per Standard Webhooks, verified independently", async () => {
    const { standin } = await worker();
    const id = uniqueId("hook");
    const res = await api("POST", "/workflows/step-tour/instances", { id, params: quick, callbackUrl: `${standin.url}/hooks/${id}` });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "complete");
    assert.deepEqual(done.output, [{ name: "work", results: [0, 1] }], "the callback envelope is not part of the workflow's view");
    await waitFor("step-tour", id, () => standin.callsTo(`/hooks/${id}`).length === 1);
    const [call] = standin.callsTo(`/hooks/${id}`);
    assert.ok(verifyWebhook(call), "signature verifies");
    assert.ok(Math.abs(Number(call.headers["webhook-timestamp"]) - Date.now() / 1000) < 300);
    assert.deepEqual(call.body, { id, workflow: "step-tour", status: "complete", output: [{ name: "work", results: [0, 1] }] });
    const tampered = { ...call, raw: call.raw.replace("complete", "errored") };
    assert.ok(!verifyWebhook(tampered), "a changed body does not verify");
  });

  it("webhook callback on failure: retried with a stable webhook-id, and the instance stays errored", async () => {
    const { standin } = await worker();
    const id = uniqueId("hookfail");
    standin.failNext(`hooks:${id}`, 1);
    const params = tourParams([{ nonRetryable: { name: "charge", message: "card declined" } }]);
    const res = await api("POST", "/workflows/step-tour/instances", { id, params, callbackUrl: `${standin.url}/hooks/${id}` });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await waitFor("step-tour", id, () => standin.callsTo(`/hooks/${id}`).length === 2, { timeoutMs: 60_000 });
    const calls = standin.callsTo(`/hooks/${id}`);
    assert.equal(calls[0].headers["webhook-id"], calls[1].headers["webhook-id"]);
    for (const call of calls) assert.ok(verifyWebhook(call));
    assert.deepEqual(calls[1].body, { id, workflow: "step-tour", status: "errored", error: { name: "NonRetryableError", message: "card declined" } });
    const done = await waitFor("step-tour", id, finished);
    assert.equal(done.status, "errored");
    assert.equal(done.error.message, "card declined");
  });

  it("refuses callback URLs it may not call", async () => {
    for (const callbackUrl of ["ftp://hooks.example.com/x", "not a url", "https://user:pw@hooks.example.com/"]) {
      const res = await api("POST", "/workflows/step-tour/instances", { params: quick, callbackUrl });
      assert.equal(res.status, 400, callbackUrl);
      assert.equal(res.body.error.code, "invalid_callback_url");
    }
    // Parsed by the runtime's URL: the message names the URL without its credentials.
    const res = await api("POST", "/workflows/step-tour/instances", { params: quick, callbackUrl: "https://user:s3cret@hooks.example.com/x" });
    assert.match(res.body.error.message, /"https:\/\/hooks\.example\.com\/x" must not contain a user name or password/);
    assert.doesNotMatch(res.body.error.message, /s3cret|user:/);
  });

  it("many concurrent creates with one id: one instance, one run", async () => {
    const { standin } = await worker();
    const id = uniqueId("race");
    const params = tourParams([{ call: { name: "once", url: `${standin.url}/call/${id}` } }]);
    const answers = await Promise.all(Array.from({ length: 12 }, () => createInstance("step-tour", { id, params })));
    for (const a of answers) assert.ok([200, 201].includes(a.status), JSON.stringify(a.body));
    assert.equal(answers.filter((a) => a.body.created === true).length, 1);
    assert.ok(answers.every((a) => a.body.id === id));
    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    assert.equal(standin.callsTo(`/call/${id}`).length, 1);
  });

  it("batch create, and a second batch that repeats an id", async () => {
    const a = uniqueId("ba"), b = uniqueId("bb"), c = uniqueId("bc");
    const first = await api("POST", "/workflows/step-tour/instances/batch", [{ id: a, params: quick }, { id: b, params: quick }, { params: quick }]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.instances.length, 3);
    assert.deepEqual(first.body.instances.slice(0, 2), [{ index: 0, id: a, outcome: "created" }, { index: 1, id: b, outcome: "created" }]);
    assert.equal(first.body.instances[2].outcome, "created");
    const second = await api("POST", "/workflows/step-tour/instances/batch", [{ id: a, params: quick }, { id: c, params: quick }]);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.deepEqual(second.body.instances, [{ index: 0, id: a, outcome: "existed" }, { index: 1, id: c, outcome: "created" }]);
    for (const id of [a, b, c, first.body.instances[2].id]) assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    const bad = await api("POST", "/workflows/step-tour/instances/batch", []);
    assert.equal(bad.status, 400);
    const badParams = await api("POST", "/workflows/step-tour/instances/batch", [{ params: { actions: "no" } }]);
    assert.equal(badParams.status, 200);
    assert.equal(badParams.body.instances[0].error.code, "invalid_params");
  });

  it("lists instances newest first, paginated with a cursor", async () => {
    const ids = [];
    for (const n of [1, 2, 3]) {
      const id = uniqueId(`list${n}`);
      assert.equal((await createInstance("step-tour", { id, params: quick })).status, 201);
      ids.push(id);
    }
    const all = await api("GET", "/workflows/step-tour/instances?limit=100");
    assert.equal(all.status, 200, JSON.stringify(all.body));
    const ours = all.body.instances.filter((i) => ids.includes(i.id));
    assert.deepEqual(ours.map((i) => i.id), [...ids].reverse());
    assert.ok(ours.every((i) => typeof i.createdAt === "number" && typeof i.status === "string"));
    const seen = [];
    let cursor = null;
    for (let page = 0; page < 200; page++) {
      const res = await api("GET", `/workflows/step-tour/instances?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.instances.length <= 2);
      seen.push(...res.body.instances);
      cursor = res.body.cursor;
      if (!cursor) break;
    }
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1].createdAt >= seen[i].createdAt, "newest first");
    assert.equal(new Set(seen.map((i) => i.id)).size, seen.length, "no instance twice");
    for (const id of ids) assert.ok(seen.some((i) => i.id === id), id);
    assert.equal((await api("GET", "/workflows/step-tour/instances?limit=0")).body.error.code, "invalid_query");
    assert.equal((await api("GET", "/workflows/step-tour/instances?cursor=bogus")).body.error.code, "invalid_query");
  });

  it("answers every error as JSON with the right status", async () => {
    const big = JSON.stringify({ params: { actions: [], pad: "x".repeat(1024 * 1024) } });
    const tooLarge = await api("POST", "/workflows/step-tour/instances", big);
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body.error.code, "payload_too_large");
    const notJson = await api("POST", "/workflows/step-tour/instances", "{nope");
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.error.code, "invalid_json");
    const method = await api("DELETE", "/workflows");
    assert.equal(method.status, 405);
    assert.equal(method.body.error.code, "method_not_allowed");
    assert.equal(method.headers.get("allow"), "GET");
    const unknown = await api("GET", "/nowhere");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, "not_found");
    const noWorkflow = await api("GET", "/workflows/nope/instances/x");
    assert.equal(noWorkflow.body.error.code, "workflow_not_found");
    const id = uniqueId("evt");
    await createInstance("step-tour", { id, params: quick });
    const badType = await api("POST", `/workflows/step-tour/instances/${id}/events/bad.type`, {});
    assert.equal(badType.status, 400);
    assert.equal(badType.body.error.code, "invalid_event_type");
    const missing = await api("POST", `/workflows/step-tour/instances/${uniqueId("none")}/pause`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, "instance_not_found");
  });
});
