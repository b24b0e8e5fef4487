// The built Worker on the local workerd runtime (`wrangler dev`, fresh local state on
// free loopback ports), driven over the HTTP API as a client would: an approved claim
// completes with its output, a rejected one errors after its rollback ran.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const wrangler = path.join(root, "node_modules/.bin/wrangler");
const TOKEN = "e2e-token";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = net.createServer().once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

let base;
let child;

before(async () => {
  const [port, inspector] = [await freePort(), await freePort()];
  const persist = mkdtempSync(path.join(os.tmpdir(), "my-workflows-e2e-"));
  const env = { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" };
  execFileSync(wrangler, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], { cwd: root, env, stdio: "ignore", timeout: 120_000 });
  const envFile = path.join(persist, "empty.env");
  writeFileSync(envFile, "");
  mkdirSync(path.join(root, "tests/.tmp"), { recursive: true });
  const log = createWriteStream(path.join(root, "tests/.tmp/wrangler.log"));
  const args = ["dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", String(inspector), "--persist-to", persist,
    "--env-file", envFile, "--var", `API_TOKEN:${TOKEN}`];
  // Its own process group, so stopping it stops workerd too (which holds the log pipes open).
  child = spawn(wrangler, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  base = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 180_000; ; await sleep(250)) {
    if (child.exitCode !== null) throw new Error("wrangler dev exited; see tests/.tmp/wrangler.log");
    if (Date.now() > deadline) throw new Error("wrangler dev did not answer in 180 s; see tests/.tmp/wrangler.log");
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {}
  }
});

after(async () => {
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once("exit", r));
  process.kill(-child.pid, "SIGTERM");
  await Promise.race([gone, sleep(5000)]);
  if (child.exitCode === null) process.kill(-child.pid, "SIGKILL");
});

async function api(method, urlPath, body) {
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function until(id, wanted) {
  let last;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(250)) {
    last = (await api("GET", `/workflows/expense/instances/${id}`)).body;
    if (wanted.includes(last.status)) return last;
  }
  assert.fail(`instance ${id} never reached ${wanted}: ${JSON.stringify(last)}`);
}

/// Waits until the instance waits for its decision (its history shows the wait; the local
/// engine reports such an instance as "running", Cloudflare as "waiting").
async function waitingForDecision(id) {
  let steps;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(250)) {
    steps = (await api("GET", `/workflows/expense/instances/${id}/history`)).body.steps ?? [];
    if (steps.some((s) => s.type === "waitForEvent" && s.name === "manager decision")) return;
  }
  assert.fail(`instance ${id} never waited for its decision: ${JSON.stringify(steps)}`);
}

describe("the expense workflow on wrangler dev", () => {
  it("serves the dashboard as static assets, under its security headers", async () => {
    const page = await fetch(`${base}/dashboard/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="app.js"><\/script>/);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.equal((await fetch(`${base}/health`)).status, 200, "the API's paths still reach the Worker");
  });

  it("is listed, and an approved claim completes with its output", async () => {
    const listed = await api("GET", "/workflows");
    assert.deepEqual(listed.body.workflows.map((w) => w.name), ["expense"]);
    const created = await api("POST", "/workflows/expense/instances", { id: "claim-ok", params: { employee: "ada", amountCents: 4200 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await waitingForDecision("claim-ok");
    const sent = await api("POST", "/workflows/expense/instances/claim-ok/events/decision", { approved: true, by: "grace" });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const done = await until("claim-ok", ["complete", "errored"]);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.equal(done.output.approvedBy, "grace");
    assert.match(done.output.hold, /^claim-ok@\d+$/, "the hold is keyed by the instance's life");
  });

  it("refuses a decision that does not fit its type before the instance sees it", async () => {
    await api("POST", "/workflows/expense/instances", { id: "claim-typed", params: { employee: "ada", amountCents: 1 } });
    const bad = await api("POST", "/workflows/expense/instances/claim-typed/events/decision", { approved: "yes" });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.error.code, "invalid_event_payload");
  });

  it("errors a rejected claim after its rollback released the hold", async () => {
    await api("POST", "/workflows/expense/instances", { id: "claim-no", params: { employee: "ada", amountCents: 4200 } });
    await waitingForDecision("claim-no");
    await api("POST", "/workflows/expense/instances/claim-no/events/decision", { approved: false, by: "grace" });
    const done = await until("claim-no", ["errored", "complete"]);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.match(done.error.message, /rejected by grace/);
    const history = (await api("GET", "/workflows/expense/instances/claim-no/history")).body;
    const rollback = history.steps.find((s) => s.type === "rollback" && s.name === "hold budget");
    assert.equal(rollback?.status, "complete", JSON.stringify(history.steps));
  });
});
