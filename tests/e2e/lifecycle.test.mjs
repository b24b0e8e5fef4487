// user-lifecycle end to end on the local runtime: the welcome email, a real trial
// period, the conversion check against local D1, and the trial-expiration email, each
// sent to the address D1 has for the user (params carry the user's id only).
import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { worker, createInstance, waitFor, finished, uniqueId } from "./harness.mjs";

// The two emails, told apart by their text (src/workflows/user_lifecycle.rs).
const WELCOME = "Welcome! Your free trial has started.";
const TRIAL_EXPIRED = "Your free trial has ended. Subscribe to keep your account.";

const lifecycle = (userId) =>
  createInstance("user-lifecycle", { id: userId, params: { userId, trialPeriod: "2 seconds" } });

/// A users row for `userId` (ids from uniqueId need no quoting).
async function insertUser(userId, subscriptionStatus) {
  const { d1 } = await worker();
  d1(
    `INSERT INTO users (id, email, name, subscription_status, created_at) ` +
      `VALUES ('${userId}', '${userId}@example.com', 'Test User', '${subscriptionStatus}', ${Date.now()})`,
  );
}

/// The emails the stand-in received for `userId`, in order.
async function emailsTo(userId) {
  const { standin } = await worker();
  return standin.callsTo("/notify/send", (c) => c.body?.userId === userId);
}

/// Runs a lifecycle that should not convert and checks both emails, the second after the trial.
async function expectNotConverted(userId) {
  const created = await lifecycle(userId);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const done = await waitFor("user-lifecycle", userId, finished);
  assert.equal(done.status, "complete", JSON.stringify(done));
  assert.deepEqual(done.output, { converted: false });
  const emails = await emailsTo(userId);
  assert.deepEqual(emails.map((c) => c.body.message), [WELCOME, TRIAL_EXPIRED]);
  assert.equal(emails[0].body.email, `${userId}@example.com`);
  assert.equal(emails[1].body.email, `${userId}@example.com`);
  const gap = emails[1].at - emails[0].at;
  assert.ok(gap >= 2000, `the trial-expiration email came ${gap} ms after the welcome`);
}

describe("user-lifecycle", { concurrency: true }, () => {
  // The users rows are written before the tests start: the harness's d1 blocks this
  // process while wrangler runs, and requests of concurrent tests in flight meanwhile
  // would time out.
  const active = uniqueId("lc-active");
  const trial = uniqueId("lc-trial");
  before(async () => {
    await insertUser(active, "active");
    await insertUser(trial, "trial");
  });

  it("converted: an active subscription gets the welcome email only", async () => {
    const userId = active;
    const created = await lifecycle(userId);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const done = await waitFor("user-lifecycle", userId, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { converted: true });
    const emails = await emailsTo(userId);
    assert.deepEqual(emails.map((c) => c.body.message), [WELCOME]);
    assert.equal(emails[0].body.email, `${userId}@example.com`);
  });

  it("not converted: a user still on trial gets the trial-expiration email after the trial", async () => {
    await expectNotConverted(trial);
  });

  it("not converted: a user with no row is not converted, and gets no email: there is no address", async () => {
    const userId = uniqueId("lc-none");
    assert.equal((await lifecycle(userId)).status, 201);
    const done = await waitFor("user-lifecycle", userId, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { converted: false });
    // Complete is final: no email comes later.
    assert.deepEqual(await emailsTo(userId), []);
  });

  it("refuses a malformed trialPeriod in params, naming the field", async () => {
    const userId = uniqueId("lc-bad");
    const res = await createInstance("user-lifecycle", { id: userId, params: { userId, trialPeriod: "a fortnight" } });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /trialPeriod.*a fortnight/);
  });

  it("refuses an email in params: the address is read from D1, never carried in params", async () => {
    const userId = uniqueId("lc-email");
    const res = await createInstance("user-lifecycle", { id: userId, params: { userId, email: `${userId}@example.com` } });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /unknown field `email`/);
    assert.doesNotMatch(res.body.error.message, /example\.com/, "the refusal does not echo the value");
  });
});
