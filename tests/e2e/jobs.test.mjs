// Queue and cron triggers on the local runtime: jobs become instances exactly once,
// poison messages become dead letters, crons start their workflow once per tick.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";

const until = async (what, check, timeoutMs = 60_000, intervalMs = 250) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
};
const retrying = async () => (await api("GET", "/jobs/retrying?limit=100")).body.retrying;
/// Queues a marker job and waits until its instance has completed. The local queue delivers
/// in order, one batch at a time, and a batch's jobs of one workflow are created in one
/// call: once the marker's instance exists, every message queued before it has been
/// consumed, and the instances they made exist. What a negative check waits on.
async function queuedBeforeMarker() {
  const marker = uniqueId("marker");
  assert.equal((await api("POST", "/jobs", { workflow: "step-tour", id: marker, params: { actions: [] } })).status, 202);
  assert.equal((await waitFor("step-tour", marker, finished)).status, "complete");
}
/// The instances of jobs without an id (`job-{message id}`) listed since `since`, each once
/// finished, with their outputs.
async function anonymousJobsSince(since) {
  const listed = [];
  // Newest first: page until the listing reaches instances older than `since`.
  for (let cursor = null, page = 0; page < 50; page++) {
    const res = (await api("GET", `/workflows/step-tour/instances?limit=100${cursor ? `&cursor=${cursor}` : ""}`)).body;
    listed.push(...res.instances);
    cursor = res.cursor;
    if (!cursor || res.instances.some((i) => i.createdAt < since)) break;
  }
  const ours = listed.filter((i) => i.id.startsWith("job-") && i.createdAt >= since);
  return Promise.all(ours.map((i) => waitFor("step-tour", i.id, finished)));
}
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
    for (const [bad, status] of [[{ workflow: "nope", params: {} }, 404], [{ workflow: "step-tour", id: "-x", params }, 400], [{ workflow: "step-tour", params: { actions: 1 } }, 400]]) {
      const res = await api("POST", "/jobs", [{ workflow: "step-tour", id: good, params }, bad]);
      assert.equal(res.status, status, JSON.stringify(res.body));
    }
    // A job over the queue's 128 KB message limit: 413 with its own code, and none of its siblings queued.
    const big = await api("POST", "/jobs", [{ workflow: "step-tour", id: good, params }, { workflow: "approval", params: { userId: "x".repeat(200_000) } }]);
    assert.equal(big.status, 413, JSON.stringify(big.body));
    assert.equal(big.body.error.code, "job_too_large");
    assert.match(big.body.error.message, /job 1 is \d+ bytes/);
    await queuedBeforeMarker();
    assert.equal((await getInstance("step-tour", good)).status, 404, "the good job of a refused request was not queued");
    assert.equal(standin.callsTo(`/call/${good}`).length, 0);
  });

  it("a job without an id keeps its instance id across a real redelivery: one instance, one run", async () => {
    const { standin } = await worker();
    // The consumer creates this job's instance, then asks for a redelivery anyway (a test
    // fault, as a lost ack would), listing it under GET /jobs/retrying with the instance's
    // id; TEST_FLAKY_JOB_ATTEMPTS=2: deliveries 1 and 2 do so, the third is acked.
    const key = uniqueId("redeliver-after-create");
    const params = { actions: [{ call: { name: "c", url: `${standin.url}/call/${key}` } }] };
    assert.equal((await api("POST", "/jobs", { workflow: "step-tour", params })).status, 202);
    const seen = new Map();
    await until("the third delivery", async () => {
      const rows = (await retrying()).filter((r) => r.reason.startsWith("simulated redelivery after creating job-"));
      for (const r of rows) seen.set(r.attempts, r.reason);
      return seen.has(2) && rows.length === 0;
    }, 90_000);
    assert.equal(seen.get(1), seen.get(2), `every delivery named one instance: ${JSON.stringify([...seen])}`);
    const id = seen.get(1).split(" ").pop();
    // Every delivery is over (the third was acked), and each created or found this one
    // instance before it settled; once it is complete its calls are all made.
    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    assert.equal(standin.callsTo(`/call/${key}`).length, 1, "one run");
    const [step] = await api("GET", `/workflows/step-tour/instances/${id}/history`).then((r) => r.body.steps);
    assert.deepEqual([step.name, step.status, step.attempts], ["c", "complete", 1]);
  });

  it("the same job delivered twice runs once; a job without an id gets a stable one", async () => {
    const { standin } = await worker();
    const id = uniqueId("twice");
    const params = { actions: [{ call: { name: "c", url: `${standin.url}/call/${id}` } }] };
    await api("POST", "/jobs", { workflow: "step-tour", id, params });
    await api("POST", "/jobs", { workflow: "step-tour", id, params });
    // Both messages have been consumed once a job queued after them has run.
    await queuedBeforeMarker();
    assert.equal((await waitFor("step-tour", id, finished)).status, "complete");
    assert.equal(standin.callsTo(`/call/${id}`).length, 1);

    const anon = uniqueId("anon");
    const since = Date.now();
    await api("POST", "/jobs", { workflow: "step-tour", params: { actions: [{ call: { name: "c", url: `${standin.url}/call/${anon}` } }] } });
    await until("the anonymous job's call", () => standin.callsTo(`/call/${anon}`).length === 1);
    // Its batch has been dispatched (its instance ran), so a marker goes in a later one: once
    // the marker ran, every instance the anonymous job made is listed. Exactly one is its.
    await queuedBeforeMarker();
    const made = (await anonymousJobsSince(since)).filter((i) => i.output?.[0]?.body?.key === anon);
    assert.equal(made.length, 1, JSON.stringify(made));
    assert.equal(standin.callsTo(`/call/${anon}`).length, 1);
  });

  it("a job whose create fails transiently is retried and then succeeds", async () => {
    const { standin } = await worker();
    const id = uniqueId("flaky");
    const t0 = Date.now();
    const res = await api("POST", "/jobs", { workflow: "step-tour", id, params: { actions: [{ call: { name: "c", url: `${standin.url}/call/${id}` } }] } });
    assert.equal(res.status, 202);
    const done = await waitFor("step-tour", id, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "complete");
    // Two failed deliveries (TEST_FLAKY_JOB_ATTEMPTS=2), retried after 5 s and 10 s.
    const [call] = standin.callsTo(`/call/${id}`);
    assert.ok(call.at - t0 >= 15_000, `the instance ran ${call.at - t0} ms after the job was queued`);
    assert.equal(await deadLetter((d) => d.body.includes(id))(), undefined);
  });

  it("a dead letter whose recording fails is retried with a delay, then recorded", async () => {
    const marker = uniqueId("unrecordable");
    const t0 = Date.now();
    assert.equal((await api("POST", "/jobs/raw", `not json ${marker}`, { "content-type": "text/plain" })).status, 202);
    const letter = await until("the dead letter", deadLetter((d) => d.body === `not json ${marker}`));
    assert.equal(letter.attempts, 2, "recorded on the redelivery after the failed write");
    assert.ok(letter.recordedAt - t0 >= 5000, `recorded ${letter.recordedAt - t0} ms after it was queued: the retry waited 5 s`);
  });

  it("a job that exhausts its retries is a dead letter with its original reason and real attempt count", { timeout: 400_000 }, async () => {
    // Fails every delivery (a test fault): 6 deliveries over 5+10+20+40+80 s, then the
    // dead-letter queue, whose first recording also fails (an "unrecordable" body).
    const id = uniqueId("doomed-unrecordable");
    assert.equal((await api("POST", "/jobs", { workflow: "step-tour", id, params: { actions: [] } })).status, 202);
    // A twin whose dead letter is recorded on the dead-letter queue's first delivery.
    const twin = uniqueId("doomed");
    assert.equal((await api("POST", "/jobs", { workflow: "step-tour", id: twin, params: { actions: [] } })).status, 202);
    // Six deliveries, 5+10+20+40+80 s apart; the last failure stays listed as retrying
    // until the dead letter is recorded.
    let lastFailure;
    const letter = await until("the dead letter", async () => {
      const row = (await retrying()).find((r) => r.reason.includes(id));
      if (row) lastFailure = row;
      return deadLetter((d) => d.queue === "workflow-jobs-dlq" && d.body.includes(id))();
    }, 360_000, 500);
    assert.equal(letter.attempts, 6, JSON.stringify(letter));
    assert.equal(letter.reason, `retries exhausted after 6 attempts; last error: simulated transient failure creating ${id}`);
    // Its first write on the dead-letter queue failed and was retried 5 s later.
    assert.equal(lastFailure?.attempts, 6, JSON.stringify(lastFailure));
    assert.ok(letter.recordedAt - lastFailure.failedAt >= 5000, `recorded ${letter.recordedAt - lastFailure.failedAt} ms after the last failure`);
    assert.equal((await retrying()).find((r) => r.reason.includes(id)), undefined, "no longer listed as retrying once recorded");
    assert.equal((await getInstance("step-tour", id)).status, 404);
    const twinLetter = await until("the twin's dead letter", deadLetter((d) => d.queue === "workflow-jobs-dlq" && d.body.includes(twin)), 60_000, 500);
    assert.equal(twinLetter.attempts, 6, JSON.stringify(twinLetter));
    assert.equal((await retrying()).find((r) => r.reason.includes(twin)), undefined, "recorded at once, and no longer listed as retrying");
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
    // The tick reached the run typed (event.schedule), and its envelope stays out of the params.
    assert.equal(done.output.scheduledBy, "0 3 * * *");
    const stream = await api("GET", `/workflows/daily-cleanup/instances/${id}/history`, undefined, { accept: "text/event-stream" });
    const started = stream.body.split("\n\n").map((b) => b.split("\n").find((l) => l.startsWith("data:"))).filter(Boolean).map((l) => JSON.parse(l.slice(5))).find((e) => e.type === "workflow_started");
    assert.deepEqual(started?.params, { scheduledTime: time, cron: "0 3 * * *" }, stream.body.slice(0, 600));
    // The scheduled handler answers once its create has answered: had the second tick
    // started another run (a restart), the instance would be queued or running now.
    assert.equal((await tick()).status, 200);
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
