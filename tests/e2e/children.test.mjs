// Child workflows on the local runtime (wrangler dev): data-pipeline splitting a source into
// data-chunk children and adding up their typed outputs; a chunk's failure reaching the
// pipeline typed and named; step-tour's `children` action for a terminated child and for
// terminate with children; the parent in a child's status. The host twins are
// tests/workflows/children.rs and tests/workflows/pipeline.rs.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";
import { validSourceRecords } from "./standin.mjs";

const historyOf = async (workflow, id) => {
  const res = await api("GET", `/workflows/${workflow}/instances/${id}/history`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
};

/// The child instances the index records for a parent, oldest first.
async function childrenOf(parentId, expected, timeoutMs = 30_000) {
  const { d1 } = await worker();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let rows = [];
    try {
      rows = d1(`SELECT workflow, id, parent_workflow, parent_id FROM instances WHERE parent_id = '${parentId}' ORDER BY created_at, id`);
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    if (rows.length >= expected) return rows;
    if (Date.now() > deadline) throw new Error(`${parentId} has ${rows.length} children in the index, not ${expected}`);
    await sleep(500);
  }
}

const tour = (id, actions) => createInstance("step-tour", { id, params: { actions } });

describe("child workflows", { concurrency: true }, () => {
  it("data-pipeline splits a source into data-chunk children, awaits them and adds up their typed outputs", async (t) => {
    const { standin, d1 } = await worker();
    const id = uniqueId("chunked");
    const n = 50;
    const started = Date.now();
    const created = await createInstance("data-pipeline", { id, params: { sourceUrl: `${standin.url}/source/${id}?n=${n}`, chunkRecords: 10 } });
    assert.equal(created.status, 201, JSON.stringify(created.body));

    const done = await waitFor("data-pipeline", id, finished, { timeoutMs: 120_000, intervalMs: 500 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    const valid = validSourceRecords(n);
    assert.equal(done.output.key, `processed/${id}/`);
    assert.deepEqual([done.output.records, done.output.dropped], [valid, n - valid]);
    assert.equal(done.output.chunks.length, 5);
    // Every 20th source record is invalid: records 19 and 39, in chunks 1 and 3.
    assert.deepEqual(done.output.chunks.map((c) => [c.key, c.records, c.dropped]), [
      [`processed/${id}/0.json`, 10, 0],
      [`processed/${id}/1.json`, 9, 1],
      [`processed/${id}/2.json`, 10, 0],
      [`processed/${id}/3.json`, 9, 1],
      [`processed/${id}/4.json`, 10, 0],
    ]);
    // Woken by the children's notices: no status check (the first comes after 5 minutes).
    assert.ok(Date.now() - started < 120_000);
    const history = await historyOf("data-pipeline", id);
    const steps = history.steps.map((s) => s.name);
    assert.deepEqual(steps.slice(0, 3), ["extract", "split", "process chunks"]);
    assert.deepEqual(steps.slice(3).sort(), [0, 1, 2, 3, 4].map((i) => `process chunks #${i}: wait 1`));

    // Each chunk is a child instance: its status names the pipeline, and its run told it.
    const children = await childrenOf(id, 5);
    assert.deepEqual(children.map((c) => c.id), done.output.chunks.map((c) => c.instance));
    for (const chunk of done.output.chunks) {
      const status = await getInstance("data-chunk", chunk.instance);
      assert.equal(status.status, 200, JSON.stringify(status.body));
      assert.equal(status.body.status, "complete");
      assert.deepEqual(status.body.parent, { workflow: "data-pipeline", id });
      assert.deepEqual(status.body.output, chunk, "the typed output the pipeline got");
      const childHistory = await historyOf("data-chunk", chunk.instance);
      assert.deepEqual(childHistory.steps.map((s) => s.name), ["transform", "load", "notify-parent"]);
      // The parent's wait for this child ended once the child told it (measured: how long a notice takes).
      const { startedAt: telling, endedAt: told } = childHistory.steps[2];
      const woke = history.steps.find((s) => s.name === `process chunks #${done.output.chunks.indexOf(chunk)}: wait 1`).endedAt;
      assert.ok(woke >= telling, `woke at ${woke}, began telling at ${telling}`);
      t.diagnostic(`notice of ${chunk.key}: the parent's wait ended ${woke - telling} ms after notify-parent began (which took ${told - telling} ms)`);
    }
    assert.equal((await getInstance("data-pipeline", id)).body.parent, undefined, "not a child");
    assert.equal(d1(`SELECT COUNT(*) AS n FROM records WHERE source = '${id}'`)[0].n, valid);
  });

  it("a chunk over its drop limit fails the pipeline, typed, naming the chunk; the other chunks ended", async () => {
    const { standin } = await worker();
    const id = uniqueId("gated");
    const params = { sourceUrl: `${standin.url}/source/${id}?n=50`, chunkRecords: 10, maxDroppedPerChunk: 0 };
    assert.equal((await createInstance("data-pipeline", { id, params })).status, 201);
    const done = await waitFor("data-pipeline", id, finished, { timeoutMs: 120_000, intervalMs: 500 });
    assert.equal(done.status, "errored", JSON.stringify(done));
    const children = await childrenOf(id, 5);
    assert.equal(done.error.name, "NonRetryableError");
    assert.equal(
      done.error.message,
      `child 1 of 5 (data-chunk instance ${children[1].id}) errored: NonRetryableError: chunk chunks/${id}/1.json: 1 of 10 records could not be normalised, over the limit of 0`,
    );
    const states = await Promise.all(children.map(async (c) => (await getInstance("data-chunk", c.id)).body.status));
    assert.deepEqual(states, ["complete", "errored", "complete", "errored", "complete"], "every chunk ended before the pipeline did");
  });

  it("step-tour children: outputs in order, a failure typed with its index and id", async () => {
    const id = uniqueId("kids");
    const runs = [
      { actions: [{ sleep: { name: "nap", duration: "1 second" } }] },
      { actions: [{ nonRetryable: { name: "refuse", message: "no thanks" } }] },
    ];
    assert.equal((await tour(id, [{ children: { name: "kids", runs } }])).status, 201);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 60_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    const children = await childrenOf(id, 2);
    assert.deepEqual(done.output, [{
      name: "kids",
      children: [
        { output: [{ name: "nap", slept: true }] },
        { error: { kind: "failed", child: { index: 1, id: children[1].id }, message: `child 1 of 2 (step-tour instance ${children[1].id}) errored: NonRetryableError: no thanks` } },
      ],
    }]);
  });

  it("a child terminated through the API wakes its parent at once, typed", async () => {
    const id = uniqueId("kid-term");
    const runs = [{ actions: [{ waitForEvent: { name: "never", eventType: "go", timeout: "1 day" } }] }];
    assert.equal((await tour(id, [{ children: { name: "kids", runs } }])).status, 201);
    const [child] = await childrenOf(id, 1);
    await waitFor("step-tour", child.id, (b) => ["running", "waiting"].includes(b.status));
    await sleep(1000); // the child is in its wait
    const terminated = await api("POST", `/workflows/step-tour/instances/${child.id}/terminate`);
    assert.equal(terminated.status, 200, JSON.stringify(terminated.body));
    // The parent checks only after an hour: the terminate's notice woke it.
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 30_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output[0].children[0].error, { kind: "terminated", child: { index: 0, id: child.id }, message: `child step-tour instance ${child.id} was terminated` });
  });

  it("terminate with children terminates the parent, then its running children; each child's status names its parent", async () => {
    const id = uniqueId("tree");
    const runs = [
      { actions: [{ sleep: { name: "long", duration: "1 hour" } }] },
      { actions: [{ waitForEvent: { name: "never", eventType: "go", timeout: "1 day" } }] },
    ];
    assert.equal((await tour(id, [{ children: { name: "kids", runs } }])).status, 201);
    const children = await childrenOf(id, 2);
    for (const c of children) {
      await waitFor("step-tour", c.id, (b) => ["running", "waiting"].includes(b.status));
      assert.deepEqual((await getInstance("step-tour", c.id)).body.parent, { workflow: "step-tour", id });
    }
    const res = await api("POST", `/workflows/step-tour/instances/${id}/terminate`, { children: true });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.status, "terminated");
    assert.deepEqual(res.body.children, children.map((c) => ({ workflow: "step-tour", id: c.id, outcome: "terminated" })));
    for (const c of children) assert.equal((await getInstance("step-tour", c.id)).body.status, "terminated");
    // Again: the parent has finished, and so have its children; nothing left to do.
    const again = await api("POST", `/workflows/step-tour/instances/${id}/terminate`, { children: true });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual(again.body.children.map((c) => [c.outcome, c.status]), [["ended", "terminated"], ["ended", "terminated"]]);
    // Without children, a finished instance is still refused.
    assert.equal((await api("POST", `/workflows/step-tour/instances/${id}/terminate`)).status, 409);
  });

  it("a parent terminated without children leaves them running (the engine has no parent-child link); with children, a finished parent's are terminated", async () => {
    const id = uniqueId("orphan");
    const runs = [{ actions: [{ waitForEvent: { name: "never", eventType: "go", timeout: "1 day" } }] }];
    assert.equal((await tour(id, [{ children: { name: "kids", runs } }])).status, 201);
    const [child] = await childrenOf(id, 1);
    await waitFor("step-tour", child.id, (b) => ["running", "waiting"].includes(b.status));
    const res = await api("POST", `/workflows/step-tour/instances/${id}/terminate`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.children, undefined);
    await sleep(2000);
    assert.ok(["running", "waiting"].includes((await getInstance("step-tour", child.id)).body.status), "the child runs on");
    const tree = await api("POST", `/workflows/step-tour/instances/${id}/terminate`, { children: true });
    assert.equal(tree.status, 200, JSON.stringify(tree.body));
    assert.deepEqual(tree.body.children, [{ workflow: "step-tour", id: child.id, outcome: "terminated" }]);
    assert.equal((await getInstance("step-tour", child.id)).body.status, "terminated");
  });

  it("the API refuses to send the notices children send their parents", async () => {
    const id = uniqueId("forge");
    assert.equal((await tour(id, [{ waitForEvent: { name: "w", eventType: "x", timeout: "1 minute" } }])).status, 201);
    const res = await api("POST", `/workflows/step-tour/instances/${id}/events/child-done-0123456789abcdef0123456789abcdef`, { status: "complete" });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, "unknown_event_type");
    assert.equal((await api("POST", `/workflows/step-tour/instances/${id}/terminate`)).status, 200);
  });
});
