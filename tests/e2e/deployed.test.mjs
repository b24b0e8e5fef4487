// A Worker started with wrangler.jsonc's own vars, as a deployment runs it: no var is
// given but the secrets (API_TOKEN, and an unusable WEBHOOK_SECRET), so every default here
// is the one a fresh deploy gets: no ENABLE_STEP_TOUR, no ALLOW_PRIVATE_HOSTS, no demo
// routes, no raw jobs. One check needs a message on the queue that the API would refuse,
// which only POST /jobs/raw can put there: it runs on a second Worker that has those same
// defaults plus ENABLE_RAW_JOBS, and says so. Nothing here is ever sent anywhere but
// loopback: the refused callbacks are refused before an instance exists, and an instance
// that slipped through would wait an hour for an event before calling back, and is
// terminated at once.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { startDevServer, root, sleep } from "./devserver.mjs";
import { TOKEN, uniqueId } from "./harness.mjs";

let server;
let rawJobsServer;

async function call(method, urlPath, body, headers = {}, on = server) {
  const res = await fetch(`${on.base}${urlPath}`, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  return { status: res.status, headers: res.headers, body: json };
}

const tour = { actions: [{ parallel: { name: "w", count: 1 } }] };
const waitingApproval = (userId) => ({ userId, timeout: "1 hour" });

describe("deployed defaults", { concurrency: true }, () => {
  // Started for this suite only, and stopped when it ends.
  before(async () => {
    const started = (log, vars) => startDevServer({ migrate: true, readyPath: "/health", log: path.join(root, `tests/.tmp/${log}`), vars });
    // "short", 5 bytes: a key Standard Webhooks does not allow.
    const secrets = { API_TOKEN: TOKEN, WEBHOOK_SECRET: "whsec_c2hvcnQ=" };
    [server, rawJobsServer] = await Promise.all([
      started("wrangler-deployed.log", secrets),
      started("wrangler-deployed-raw-jobs.log", { ...secrets, ENABLE_RAW_JOBS: "true" }),
    ]);
  });
  after(async () => {
    await Promise.all([server?.stop(), rawJobsServer?.stop()]);
  });

  it("step-tour, the probe, does not exist by any route without ENABLE_STEP_TOUR", async () => {
    const listed = await call("GET", "/workflows");
    assert.equal(listed.status, 200);
    assert.ok(listed.body.workflows.some((w) => w.name === "order-processing"));
    assert.ok(!listed.body.workflows.some((w) => w.name === "step-tour"), JSON.stringify(listed.body));

    const id = uniqueId("probe");
    const attempts = [
      await call("POST", "/workflows/step-tour/instances", { id, params: tour }),
      await call("POST", "/workflows/step-tour/instances/batch", [{ id, params: tour }]),
      await call("POST", "/jobs", { workflow: "step-tour", id, params: tour }),
      await call("GET", `/workflows/step-tour/instances/${id}`),
    ];
    for (const res of attempts) {
      assert.equal(res.status, 404, JSON.stringify(res.body));
      assert.equal(res.body.error.code, "workflow_not_found");
    }
  });

  it("POST /jobs/raw, which queues a body unchecked, does not exist", async () => {
    const queued = await call("POST", "/jobs/raw", JSON.stringify({ workflow: "step-tour", id: uniqueId("raw"), params: tour }));
    assert.equal(queued.status, 404, JSON.stringify(queued.body));
    assert.equal(queued.body.error.code, "not_found");
  });

  it("with those defaults and ENABLE_RAW_JOBS, a step-tour job from another producer on the queue becomes a dead letter", async () => {
    const id = uniqueId("probe");
    const on = rawJobsServer;
    assert.ok(!(await call("GET", "/workflows", undefined, {}, on)).body.workflows.some((w) => w.name === "step-tour"));
    const queued = await call("POST", "/jobs/raw", JSON.stringify({ workflow: "step-tour", id, params: tour }), {}, on);
    assert.equal(queued.status, 202);
    const deadline = Date.now() + 60_000;
    let letter;
    while (!letter && Date.now() < deadline) {
      letter = (await call("GET", "/jobs/dead-letters?limit=100", undefined, {}, on)).body.deadLetters.find((d) => d.body.includes(id));
      if (!letter) await sleep(250);
    }
    assert.ok(letter, "the step-tour job became a dead letter");
    assert.equal(letter.reason, 'no workflow named "step-tour"');
    assert.equal((await call("GET", `/workflows/step-tour/instances/${id}`, undefined, {}, on)).status, 404);
  });

  it("the demo routes are off: wrangler.jsonc does not turn them on", async () => {
    const start = await call("POST", "/api/workflow/start", { email: `${uniqueId("d")}@example.com`, name: "A" }, { authorization: "" });
    assert.equal(start.status, 404, JSON.stringify(start.body));
    assert.equal(start.body.error.code, "not_found");
    const status = await call("GET", `/api/workflow/status/${uniqueId("d")}`, undefined, { authorization: "" });
    assert.equal(status.status, 404);
    assert.equal(status.body.error.code, "not_found");
  });

  it("an unusable WEBHOOK_SECRET refuses a callback at create time, not when the instance ends", async () => {
    const id = uniqueId("badsecret");
    const res = await call("POST", "/workflows/approval/instances", { id, params: waitingApproval(id), callbackUrl: "https://hooks.example.com/x" });
    if (res.status < 300) await call("POST", `/workflows/approval/instances/${id}/terminate`);
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "callbacks_unavailable");
    assert.match(res.body.error.message, /WEBHOOK_SECRET|key is 5 bytes/);
    assert.doesNotMatch(res.body.error.message, /c2hvcnQ/);
    assert.equal((await call("GET", `/workflows/approval/instances/${id}`)).status, 404, "no instance was created");
  });

  it("without ALLOW_PRIVATE_HOSTS even loopback callbacks are refused", async () => {
    for (const callbackUrl of ["http://127.0.0.1:9/x", "https://127.0.0.1:9/x", "https://localhost/x"]) {
      const id = uniqueId("loop");
      const res = await call("POST", "/workflows/approval/instances", { id, params: waitingApproval(id), callbackUrl });
      if (res.status < 300) await call("POST", `/workflows/approval/instances/${id}/terminate`);
      assert.equal(res.status, 400, `${callbackUrl}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, "invalid_callback_url");
      assert.equal((await call("GET", `/workflows/approval/instances/${id}`)).status, 404);
    }
  });
});
