// user-onboarding, started through the seed demo's routes, on real local D1 and KV.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, getInstance, waitFor, finished, uniqueId } from "./harness.mjs";

const start = (body) => api("POST", "/api/workflow/start", body, { authorization: "" });

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

  it("the demo routes refuse bodies that are not {email, name, avatarUrl?}", async () => {
    const res = await start({ email: "a@example.com" });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /name/);
    assert.equal((await api("GET", `/api/workflow/status/${uniqueId("none")}`, undefined, { authorization: "" })).status, 404);
  });
});
