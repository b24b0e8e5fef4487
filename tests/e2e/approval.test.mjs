// approval end to end on the local runtime: a pending row in D1, an approval-response
// event (or none), and the decision in the output and in the row.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";

const approval = (id, params) => createInstance("approval", { id, params: { userId: `user-${id}`, ...params } });
const respond = (id, payload) => api("POST", `/workflows/approval/instances/${id}/events/approval-response`, payload);

/// The approval's D1 row (ids from uniqueId need no quoting).
async function row(id) {
  const { d1 } = await worker();
  const rows = d1(`SELECT id, user_id, status, decided_by, decided_at FROM approvals WHERE id = '${id}'`);
  assert.equal(rows.length, 1, `approval rows for ${id}: ${JSON.stringify(rows)}`);
  return rows[0];
}

/// Waits until the instance is at its wait (the pending row is written before it), then a little more.
async function waitingForResponse(id) {
  await waitFor("approval", id, (b) => b.status === "waiting" || b.status === "running");
  await sleep(1000);
}

describe("approval", { concurrency: true }, () => {
  it("approved: the response's approver is recorded", async () => {
    const id = uniqueId("approve");
    const created = await approval(id, { timeout: "2 minutes" });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await waitingForResponse(id);
    const sent = await respond(id, { approved: true, by: "ada" });
    assert.equal(sent.status, 202, JSON.stringify(sent.body));
    const done = await waitFor("approval", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { decision: "approved" });
    const r = await row(id);
    assert.equal(r.user_id, `user-${id}`);
    assert.equal(r.status, "approved");
    assert.equal(r.decided_by, "ada");
    assert.equal(typeof r.decided_at, "number");
  });

  it("rejected: a response with approved false", async () => {
    const id = uniqueId("reject");
    assert.equal((await approval(id, { timeout: "2 minutes" })).status, 201);
    await waitingForResponse(id);
    assert.equal((await respond(id, { approved: false })).status, 202);
    const done = await waitFor("approval", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { decision: "rejected" });
    const r = await row(id);
    assert.equal(r.status, "rejected");
    assert.equal(r.decided_by, null);
    assert.equal(typeof r.decided_at, "number");
  });

  it("timed out: no response within the timeout auto-rejects", async () => {
    const id = uniqueId("noreply");
    const t0 = Date.now();
    assert.equal((await approval(id, { timeout: "2 seconds" })).status, 201);
    const done = await waitFor("approval", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { decision: "auto-rejected" });
    assert.ok(Date.now() - t0 >= 2000, `decided after ${Date.now() - t0} ms`);
    const r = await row(id);
    assert.equal(r.status, "auto-rejected");
    assert.equal(r.decided_by, "system");
    assert.equal(typeof r.decided_at, "number");
  });

  it("a malformed approval-response is 400 naming the field and the instance keeps waiting; a good one then completes it", async () => {
    const id = uniqueId("badevent");
    assert.equal((await approval(id, { timeout: "2 minutes" })).status, 201);
    await waitingForResponse(id);
    for (const [payload, field] of [[{ approved: "yes", by: "eve" }, /^the approval-response event's payload does not fit: approved: invalid type: string "yes", expected a boolean/], [{ by: "eve" }, /missing field `approved`/], ["null", /invalid type: null/]]) {
      const res = await respond(id, payload);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, "invalid_event_payload");
      assert.match(res.body.error.message, field);
    }
    const unknown = await api("POST", `/workflows/approval/instances/${id}/events/approval`, { approved: true });
    assert.equal(unknown.status, 400, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.code, "unknown_event_type");
    assert.match(unknown.body.error.message, /"approval-response"/);
    // Refused events never reached it: it is still at its wait, not errored, not decided.
    await sleep(1000);
    const still = await getInstance("approval", id);
    assert.ok(["waiting", "running"].includes(still.body.status), JSON.stringify(still.body));
    assert.equal((await row(id)).status, "pending");

    assert.equal((await respond(id, { approved: true, by: "ada" })).status, 202);
    const done = await waitFor("approval", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { decision: "approved" });
    assert.equal((await row(id)).decided_by, "ada");
  });

  it("refuses a malformed timeout in params, naming the field, before anything is created", async () => {
    const id = uniqueId("badtimeout");
    const res = await approval(id, { timeout: "soon" });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "invalid_params");
    assert.match(res.body.error.message, /timeout.*soon/);
    assert.equal((await getInstance("approval", id)).status, 404);
  });
});
