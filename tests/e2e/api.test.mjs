// The HTTP API on the local runtime: auth, the four integration patterns, ids,
// batches, listing, and the error contract.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, sleep, WEBHOOK_SECRET, TOKEN } from "./harness.mjs";

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
    // The Idempotency-Key is the message's id: the same on the retry.
    assert.ok(calls[0].headers["idempotency-key"]);
    for (const call of calls) assert.equal(call.headers["idempotency-key"], call.headers["webhook-id"]);
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
    // Parsed by the runtime's URL: the message names the host, never the credentials or the rest.
    const res = await api("POST", "/workflows/step-tour/instances", { params: quick, callbackUrl: "https://user:s3cret@hooks.example.com/x" });
    assert.match(res.body.error.message, /URL must not contain a user name or password \(host "hooks\.example\.com"\)/);
    assert.doesNotMatch(res.body.error.message, /s3cret|user:/);
  });

  it("refuses private and special addresses for callbacks before any instance exists", async () => {
    // Each refusal is checked at create time: with no instance, nothing is ever sent there,
    // even if the refusal were broken (then the test fails on the 201 and terminates it).
    const { standin } = await worker();
    const port = new URL(standin.url).port;
    for (const callbackUrl of [
      "https://10.0.0.1/hook",
      "http://10.0.0.1/hook",
      "https://169.254.169.254/latest/meta-data",
      "https://localhost/hook",
      "https://[::1]/hook",
      "https://[::ffff:127.0.0.1]/hook",
      "https://[::ffff:10.0.0.1]/hook",
      "https://[2002:7f00:1::]/hook",
      "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
      "https://[64:ff9b::a00:1]/hook",
      "https://[fd00::1]/hook",
      `http://127.0.0.2:${port}/hooks/x`,
      `http://[::1]:${port}/hooks/x`,
    ]) {
      const id = uniqueId("ssrf");
      const res = await api("POST", "/workflows/step-tour/instances", { id, params: tourParams([{ sleep: { name: "hold", duration: "1 hour" } }]), callbackUrl });
      if (res.status < 300) await api("POST", `/workflows/step-tour/instances/${id}/terminate`);
      assert.equal(res.status, 400, `${callbackUrl}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, "invalid_callback_url");
      assert.match(res.body.error.message, /^callbackUrl: URL /);
      assert.equal((await getInstance("step-tour", id)).status, 404, `${callbackUrl}: no instance`);
    }
    assert.equal(standin.calls.filter((c) => c.path === "/hooks/x").length, 0);
  });

  it("checks the URLs in params with the same policy: data-pipeline's sourceUrl, step-tour's URLs", async () => {
    const { standin } = await worker();
    const port = new URL(standin.url).port;
    const hold = { sleep: { name: "hold", duration: "1 hour" } };
    const cases = [
      ["data-pipeline", { sourceUrl: "http://10.0.0.1/users.json" }, /^params do not match the workflow's params: sourceUrl: URL scheme "http" \(host "10\.0\.0\.1"\) is not allowed/],
      ["data-pipeline", { sourceUrl: "https://169.254.169.254/latest" }, /sourceUrl: URL .* not a public host \(a link-local address\)/],
      ["step-tour", { actions: [hold, { call: { name: "c", url: "https://[fd00::1]/x" } }] }, /actions\[1\]\.call\.url: URL/],
      ["step-tour", { actions: [hold, { download: { name: "d", url: "https://localhost/x" } }] }, /actions\[1\]\.download\.url: URL/],
      ["step-tour", { actions: [hold, { transform: { name: "t", url: "http://example.com/x" } }] }, /actions\[1\]\.transform\.url: URL .* only https/],
      ["step-tour", { actions: [hold, { parallel: { name: "p", count: 2, url: "https://[::ffff:192.168.0.1]/x" } }] }, /actions\[1\]\.parallel\.url: URL/],
      ["step-tour", { actions: [hold, { compensated: { name: "r", undoUrl: `https://127.0.0.2:${port}/call/x` } }] }, /actions\[1\]\.compensated\.undoUrl: URL .* not a public host \(a loopback address\)/],
    ];
    for (const [workflow, params, message] of cases) {
      const id = uniqueId("urlparam");
      const res = await api("POST", `/workflows/${workflow}/instances`, { id, params });
      if (res.status < 300) await api("POST", `/workflows/${workflow}/instances/${id}/terminate`);
      assert.equal(res.status, 400, `${JSON.stringify(params)}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, "invalid_params");
      assert.match(res.body.error.message, message);
      assert.equal((await getInstance(workflow, id)).status, 404);
    }
    const batch = await api("POST", "/workflows/data-pipeline/instances/batch", [{ params: { sourceUrl: "https://10.1.1.1/x" } }]);
    assert.equal(batch.status, 200, JSON.stringify(batch.body));
    assert.equal(batch.body.instances[0].error.code, "invalid_params");
    assert.match(batch.body.instances[0].error.message, /sourceUrl: URL points at host "10\.1\.1\.1", which is not a public host/);
    assert.equal(batch.body.instances[0].outcome, "failed", JSON.stringify(batch.body));
    const job = await api("POST", "/jobs", { workflow: "data-pipeline", params: { sourceUrl: "https://10.1.1.1/x" } });
    assert.equal(job.status, 400, JSON.stringify(job.body));
    assert.match(job.body.error.message, /job 0: sourceUrl: URL/);
  });

  it("a 401 names the scheme it wants: WWW-Authenticate: Bearer", async () => {
    for (const headers of [{ authorization: "" }, { authorization: "Bearer wrong" }, { authorization: "Bearer test-token-but-longer" }]) {
      const res = await api("GET", "/workflows", undefined, headers);
      assert.equal(res.status, 401);
      assert.equal(res.headers.get("www-authenticate"), "Bearer");
    }
  });

  it("a chunked body over 1 MiB is refused with 413 while it is still being sent", async () => {
    const { base } = await worker();
    const { hostname, port } = new URL(base);
    const answer = await new Promise((resolve, reject) => {
      const req = http.request({ hostname, port, method: "POST", path: "/workflows/step-tour/instances", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" } });
      req.on("error", (e) => (e.code === "ECONNRESET" || e.code === "EPIPE" ? null : reject(e)));
      req.on("response", (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          resolve({ status: res.status ?? res.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()), sent });
          req.destroy();
        });
      });
      // No Content-Length: node sends Transfer-Encoding: chunked. 1.25 MiB, then the
      // upload stays open: a Worker that read the body whole would never answer.
      let sent = 0;
      req.write('{"params": {"pad": "');
      const chunk = "x".repeat(64 * 1024);
      for (let i = 0; i < 20; i++) {
        req.write(chunk);
        sent += chunk.length;
      }
      setTimeout(() => reject(new Error("no answer while the upload was open")), 30_000).unref();
    });
    assert.equal(answer.status, 413, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, "payload_too_large");
  });

  it("rate-limits the public demo routes per client: 429 rate_limited with Retry-After", async () => {
    // Requests from one client address (as Cloudflare reports it in CF-Connecting-IP);
    // bodies that fail validation still count, so no instance is created here. The local
    // limiter counts in 60-second windows aligned to the clock, so a burst is counted only
    // when all of it, from its first request sent to its last answer, fell in one window;
    // one that straddled a boundary is sent again from a fresh client (it cannot tell the
    // limit from the reset). Each try starts early in a window, so a retry is rare.
    const window = (t) => Math.floor(t / 60_000);
    async function burst(n, send) {
      for (let attempt = 1; attempt <= 3; attempt++) {
        const left = 60_000 - (Date.now() % 60_000);
        if (left < 30_000) await sleep(left + 200);
        // An address of the IPv6 documentation prefix, new for every try.
        const client = `${Math.floor(Math.random() * 0xffff).toString(16)}:${Math.floor(Math.random() * 0xffff).toString(16)}`;
        const start = Date.now();
        const answers = await Promise.all(Array.from({ length: n }, () => send(client)));
        if (window(start) === window(Date.now())) return { answers, client };
      }
      throw new Error(`three bursts of ${n} requests each straddled a minute boundary`);
    }
    const start = (client) => api("POST", "/api/workflow/start", { email: "not-valid" }, { authorization: "", "cf-connecting-ip": `2001:db8:1:${client}::1` });
    const { answers: starts, client } = await burst(21, start);
    assert.deepEqual(starts.map((a) => a.status).sort(), [...Array(20).fill(400), 429], JSON.stringify(starts.map((a) => a.status)));
    const limited = starts.find((a) => a.status === 429);
    assert.equal(limited.body.error.code, "rate_limited");
    assert.equal(limited.headers.get("retry-after"), "60");
    // Another client is not affected (its first request: under the limit in any window).
    const other = await api("POST", "/api/workflow/start", { email: "not-valid" }, { authorization: "", "cf-connecting-ip": `2001:db8:2:${client}::1` });
    assert.equal(other.status, 400);

    const read = (reader) => api("GET", `/api/workflow/status/${uniqueId("none")}`, undefined, { authorization: "", "cf-connecting-ip": `2001:db8:3:${reader}::1` });
    const { answers: statuses } = await burst(121, read);
    assert.deepEqual(statuses.map((a) => a.status).sort(), [...Array(120).fill(404), 429], JSON.stringify(statuses.map((a) => a.status)));
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
