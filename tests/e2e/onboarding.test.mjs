// user-onboarding, started through the seed demo's routes, on real local D1 and KV.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId } from "./harness.mjs";
import { root } from "./devserver.mjs";

const start = (body) => api("POST", "/api/workflow/start", body, { authorization: "" });
/// Through the token-checked API (not the demo's rate-limited route): the instance's id.
async function onboard(params) {
  const id = uniqueId("onb");
  const res = await createInstance("user-onboarding", { id, params });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return id;
}
const historyPath = (workflow, id) => `/workflows/${workflow}/instances/${id}/history`;
/// The events of an instance's history stream (`Accept: text/event-stream`), which ends when
/// the instance has; `workflow_started` carries its params.
async function streamEvents(workflow, id) {
  const res = await api("GET", historyPath(workflow, id), undefined, { accept: "text/event-stream" });
  assert.equal(res.status, 200);
  return { text: res.body, events: res.body.split("\n\n").map((b) => b.split("\n").find((l) => l.startsWith("data:"))).filter(Boolean).map((l) => JSON.parse(l.slice(5))) };
}
/// Every way an email could be written in what an instance shows: as given, and lower-cased.
const mentions = (text, email) => [email, email.toLowerCase(), email.trim().toLowerCase()].some((e) => text.includes(e));

describe("user-onboarding", { concurrency: true }, () => {
  it("creates the profile, sends the welcome email, writes settings and starts the lifecycle child", async () => {
    const { standin, d1, kvGet } = await worker();
    const tag = uniqueId("ada");
    const email = `${tag}@Example.com`;
    const res = await start({ email: `  ${email} `, name: " Ada Lovelace ", avatarUrl: "https://img.example.com/ada.png" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const id = res.body.workflowId;
    assert.ok(id);
    const done = await waitFor("user-onboarding", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    const { userId } = done.output;

    const rows = d1(`SELECT id, email, name, avatar_url, subscription_status FROM users WHERE id = '${userId}'`);
    assert.deepEqual(rows, [{ id: userId, email: email.toLowerCase(), name: "Ada Lovelace", avatar_url: "https://img.example.com/ada.png", subscription_status: "trial" }]);
    const settings = JSON.parse(kvGet(`settings:${userId}`));
    assert.equal(settings.language, "en");
    assert.equal(settings.notifications.email, true);
    const welcome = standin.callsTo("/notify/send", (c) => c.body?.userId === userId && c.body.message === "Welcome, Ada Lovelace!");
    assert.ok(welcome.length >= 1);

    const child = await waitFor("user-lifecycle", `lifecycle-${userId}`, (b) => ["running", "waiting", "queued"].includes(b.status));
    assert.equal(child.id, `lifecycle-${userId}`);
    const status = await api("GET", `/api/workflow/status/${id}`, undefined, { authorization: "" });
    assert.equal(status.status, 200);
    assert.deepEqual(status.body, { id, status: "complete" }, "the public status route shows no output");
    await api("POST", `/workflows/user-lifecycle/instances/lifecycle-${userId}/terminate`);
  });

  it("is idempotent on email: onboarding the same email twice gives one user", async () => {
    const { d1 } = await worker();
    const email = `${uniqueId("twice")}@example.com`;
    const ids = [];
    for (const name of ["First", "Second"]) {
      const res = await start({ email, name });
      assert.equal(res.status, 200);
      const done = await waitFor("user-onboarding", res.body.workflowId, finished);
      assert.equal(done.status, "complete", JSON.stringify(done));
      ids.push(done.output.userId);
    }
    assert.equal(ids[0], ids[1]);
    assert.equal(d1(`SELECT COUNT(*) AS n FROM users WHERE email = '${email}'`)[0].n, 1);
    await api("POST", `/workflows/user-lifecycle/instances/lifecycle-${ids[0]}/terminate`);
  });

  it("a malformed email is non-retryable: the instance errors with the reason and no user is created", async () => {
    const { d1 } = await worker();
    const bad = `${uniqueId("bad")}-at-example.com`;
    const res = await start({ email: bad, name: "X" });
    assert.equal(res.status, 200);
    const done = await waitFor("user-onboarding", res.body.workflowId, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.match(done.error.message, /invalid email/);
    assert.equal(d1(`SELECT COUNT(*) AS n FROM users WHERE email = '${bad}'`)[0].n, 0);
    // The public status route shows the status only, never the error's text.
    const pub = await api("GET", `/api/workflow/status/${res.body.workflowId}`, undefined, { authorization: "" });
    assert.deepEqual(pub.body, { id: res.body.workflowId, status: "errored" });
    const empty = await start({ email: `${uniqueId("e")}@example.com`, name: "   " });
    const failed = await waitFor("user-onboarding", empty.body.workflowId, finished);
    assert.equal(failed.status, "errored");
    assert.match(failed.error.message, /name must not be empty/);
  });

  it("the lifecycle child is given the user's id only: its status and history hold no email", async () => {
    const { standin } = await worker();
    const email = `${uniqueId("Child")}@Example.com`;
    const id = await onboard({ email, name: "Grace Hopper" });
    const done = await waitFor("user-onboarding", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    const child = `lifecycle-${done.output.userId}`;
    // The child has sent its welcome (to the address it read from D1) and sleeps its trial.
    const welcomes = () => standin.callsTo("/notify/send", (c) => new RegExp(`^${child}@\\d+:send-welcome-email:1$`).test(c.headers["idempotency-key"] ?? ""));
    await waitFor("user-lifecycle", child, () => welcomes().length === 1);
    const [welcome] = welcomes();
    assert.equal(welcome.body.email, email.toLowerCase(), "the address on file");
    // Terminated, so its history stream ends; nothing of what it shows names the address.
    assert.equal((await api("POST", `/workflows/user-lifecycle/instances/${child}/terminate`)).status, 200);
    await waitFor("user-lifecycle", child, finished);
    const status = await getInstance("user-lifecycle", child);
    assert.equal(status.status, 200);
    assert.ok(!mentions(JSON.stringify(status.body), email), JSON.stringify(status.body));
    const history = await api("GET", historyPath("user-lifecycle", child));
    assert.equal(history.status, 200);
    assert.ok(history.body.steps.some((s) => s.name === "send-welcome-email" && s.status === "complete"), JSON.stringify(history.body));
    assert.ok(!mentions(JSON.stringify(history.body), email), JSON.stringify(history.body));
    const stream = await streamEvents("user-lifecycle", child);
    const started = stream.events.find((e) => e.type === "workflow_started");
    assert.deepEqual(started?.params, { userId: done.output.userId }, JSON.stringify(started));
    assert.ok(!mentions(stream.text, email), stream.text);
  });

  it("onboarding an existing user's email again keeps the settings that user chose", async () => {
    const { kvGet, kvPut } = await worker();
    const email = `${uniqueId("settings")}@example.com`;
    const first = await waitFor("user-onboarding", await onboard({ email, name: "First" }), finished);
    assert.equal(first.status, "complete", JSON.stringify(first));
    const { userId } = first.output;
    assert.equal(JSON.parse(kvGet(`settings:${userId}`)).theme, "system", "a new user gets the defaults");
    const own = JSON.stringify({ theme: "dark", language: "fr", notifications: { email: false, product: false } });
    kvPut(`settings:${userId}`, own);
    const again = await waitFor("user-onboarding", await onboard({ email, name: "Someone Else" }), finished);
    assert.equal(again.status, "complete", JSON.stringify(again));
    assert.equal(again.output.userId, userId);
    assert.equal(kvGet(`settings:${userId}`), own, "the user's own settings stay");
    await api("POST", `/workflows/user-lifecycle/instances/lifecycle-${userId}/terminate`);
  });

  it("the demo routes refuse bodies that are not {email, name, avatarUrl?}", async () => {
    const res = await start({ email: "a@example.com" });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /name/);
    assert.equal((await api("GET", `/api/workflow/status/${uniqueId("none")}`, undefined, { authorization: "" })).status, 404);
  });
});

// On its own, after the suite above: it reads the Worker's log, in which no other test may
// then be failing an onboarding for its email meanwhile.
describe("user-onboarding's errors", () => {
  it("an invalid email errors without the value: not in the status, the history or the log", async () => {
    // The local runtime logs an instance's uncaught error (its message, without the instance).
    const log = () => readFileSync(path.join(root, "tests/.tmp/wrangler.log"), "utf8");
    const failures = () => log().split("\n").filter((l) => l.includes("Uncaught NonRetryableError: invalid email")).length;
    const before = failures();
    const bad = `${uniqueId("Grace")}.Hopper@nowhere`;
    const id = await onboard({ email: bad, name: "Grace Hopper" });
    const done = await waitFor("user-onboarding", id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.match(done.error.message, /^invalid email/);
    assert.ok(!mentions(JSON.stringify(done), bad), JSON.stringify(done));
    const history = await api("GET", historyPath("user-onboarding", id));
    assert.equal(history.body.steps.find((s) => s.name === "validate-user")?.status, "errored", JSON.stringify(history.body));
    assert.ok(!mentions(JSON.stringify(history.body), bad), JSON.stringify(history.body));
    // The stream's events other than the start, which carries the params as given.
    const { events } = await streamEvents("user-onboarding", id);
    const later = events.filter((e) => e.type !== "workflow_started");
    assert.ok(later.some((e) => e.error?.message?.startsWith("invalid email")), JSON.stringify(later));
    assert.ok(!mentions(JSON.stringify(later), bad), JSON.stringify(later));
    // This failure's log lines are there (the only onboarding failing now), and name no value.
    await waitFor("user-onboarding", id, () => failures() > before);
    assert.ok(!mentions(log(), bad), "the log names the address");
  });
});
