// Queue and cron triggers on the local runtime: jobs become instances exactly once,
// poison messages become dead letters, crons start their workflow once per tick.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";

const until = async (what, check, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
};
const deadLetter = (pred) => async () => (await api("GET", "/jobs/dead-letters?limit=100")).body.deadLetters.find(pred);

describe("queue and cron", { concurrency: true }, () => {
  it("POST /jobs queues jobs that become completed instances", async () => {
    const a = uniqueId("job-a"), b = uniqueId("job-b");
    const params = { actions: [{ parallel: { name: "w", count: 1 } }] };
    const res = await api("POST", "/jobs", [{ workflow: "step-tour", id: a, params }, { workflow: "step-tour", id: b, params }]);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.deepEqual(res.body, { queued: 2 });
    for (const id of [a, b]) assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    const one = await api("POST", "/jobs", { workflow: "step-tour", params });
    assert.deepEqual(one.body, { queued: 1 });
  });

  it("refuses bad jobs with 400 and queues none of them", async () => {
    const { standin } = await worker();
    const good = uniqueId("good");
    const params = { actions: [{ call: { name: "c", url: `${standin.url}/call/${good}` } }] };
    for (const bad of [{ workflow: "nope", params: {} }, { workflow: "step-tour", id: "-x", params }, { workflow: "step-tour", params: { actions: 1 } }]) {
      const res = await api("POST", "/jobs", [{ workflow: "step-tour", id: good, params }, bad]);
      assert.equal(res.status, 400, JSON.stringify(res.body));
    }
    await sleep(4000);
    assert.equal((await getInstance("step-tour", good)).status, 404, "the good job of a refused request was not queued");
    assert.equal(standin.callsTo(`/call/${good}`).length, 0);
  });

  it("the same job delivered twice runs once; a job without an id gets a stable one", async () => {
    const { standin } = await worker();
    const id = uniqueId("twice");
    const params = { actions: [{ call: { name: "c", url: `${standin.url}/call/${id}` } }] };
    await api("POST", "/jobs", { workflow: "step-tour", id, params });
    await api("POST", "/jobs", { workflow: "step-tour", id, params });
    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    await sleep(3000);
    assert.equal(standin.callsTo(`/call/${id}`).length, 1);

    const anon = uniqueId("anon");
    await api("POST", "/jobs", { workflow: "step-tour", params: { actions: [{ call: { name: "c", url: `${standin.url}/call/${anon}` } }] } });
    await until("the anonymous job's call", () => standin.callsTo(`/call/${anon}`).length === 1);
    await sleep(3000);
    assert.equal(standin.callsTo(`/call/${anon}`).length, 1);
  });

  it("a job whose create fails transiently is retried and then succeeds", async () => {
    const id = uniqueId("flaky");
    const res = await api("POST", "/jobs", { workflow: "step-tour", id, params: { actions: [] } });
    assert.equal(res.status, 202);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "complete");
    assert.equal(await deadLetter((d) => d.body.includes(id))(), undefined);
  });

  it("poison messages become dead letters with their reason, not endless retries", async () => {
    const marker = uniqueId("poison");
    assert.equal((await api("POST", "/jobs/raw", `not json ${marker}`, { "content-type": "text/plain" })).status, 202);
    assert.equal((await api("POST", "/jobs/raw", JSON.stringify({ workflow: "no-such-workflow", id: marker, params: {} }))).status, 202);
    const notJson = await until("the not-JSON dead letter", deadLetter((d) => d.body === `not json ${marker}`));
    assert.match(notJson.reason, /^not a job/);
    assert.equal(notJson.queue, "workflow-jobs");
    assert.equal(notJson.attempts, 1, "recorded on its first delivery");
    const unknown = await until("the unknown-workflow dead letter", deadLetter((d) => d.body.includes(marker) && d.body.includes("no-such-workflow")));
    assert.equal(unknown.reason, 'no workflow named "no-such-workflow"');
    const all = (await api("GET", "/jobs/dead-letters?limit=100")).body.deadLetters;
    for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].recordedAt >= all[i].recordedAt, "newest first");
  });

  it("a cron tick starts its workflow once, as cron-{workflow}-{scheduledTime}", async () => {
    const { base } = await worker();
    const time = Date.now() - Math.floor(Math.random() * 1e6);
    const tick = () => fetch(`${base}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent("0 3 * * *")}&time=${time}`);
    assert.equal((await tick()).status, 200);
    const id = `cron-daily-cleanup-${time}`;
    const done = await waitFor("daily-cleanup", id, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.equal(done.output.cutoff, time - 30 * 86_400_000);
    assert.equal((await tick()).status, 200);
    await sleep(2000);
    const again = await getInstance("daily-cleanup", id);
    assert.deepEqual(again.body, done, "the second tick did not start another run");
    const listed = (await api("GET", "/workflows/daily-cleanup/instances?limit=100")).body.instances.filter((i) => i.id === id);
    assert.equal(listed.length, 1);
  });
});

describe("daily-cleanup", () => {
  it("deletes only what is past retention", async () => {
    const { base, d1 } = await worker();
    const now = Date.now();
    const day = 86_400_000;
    const tag = uniqueId("ret");
    d1(`INSERT INTO instances (workflow, id, created_at) VALUES ('step-tour', '${tag}-old', ${now - 40 * day}), ('step-tour', '${tag}-new', ${now - 10 * day})`);
    d1(`INSERT INTO dead_letters (message_id, queue, body, reason, attempts, recorded_at) VALUES ('${tag}-old', 'workflow-jobs', '{}', 'test', 1, ${now - 31 * day}), ('${tag}-new', 'workflow-jobs', '{}', 'test', 1, ${now - 29 * day})`);
    const res = await fetch(`${base}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent("0 3 * * *")}&time=${now}`);
    assert.equal(res.status, 200);
    const done = await waitFor("daily-cleanup", `cron-daily-cleanup-${now}`, finished);
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.ok(done.output.instancesDeleted >= 1 && done.output.deadLettersDeleted >= 1, JSON.stringify(done.output));
    const left = d1(`SELECT id FROM instances WHERE id LIKE '${tag}-%' ORDER BY id`).map((r) => r.id);
    assert.deepEqual(left, [`${tag}-new`]);
    const lettersLeft = d1(`SELECT message_id FROM dead_letters WHERE message_id LIKE '${tag}-%'`).map((r) => r.message_id);
    assert.deepEqual(lettersLeft, [`${tag}-new`]);
  });
});
