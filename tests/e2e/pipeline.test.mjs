// data-pipeline end to end on the local runtime: a stand-in source, the Worker's
// local R2 bucket, and its local D1 (read back with wrangler d1 execute).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { worker, api, createInstance, getInstance, waitFor, finished, uniqueId, sleep } from "./harness.mjs";
import { validSourceRecords } from "./standin.mjs";

const WORKFLOW = "data-pipeline";

/// Creates a pipeline instance whose id is also the source key (record ids are `{id}-{i}`).
async function startPipeline(id, sourceUrl) {
  const created = await createInstance(WORKFLOW, { id, params: { sourceUrl } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body;
}

/// Runs SQL on the local D1, trying again briefly if the database is busy with the
/// Worker's own writes (a 50,000-row load runs alongside the other tests).
async function query(sql) {
  const { d1 } = await worker();
  for (let attempt = 1; ; attempt++) {
    try {
      return d1(sql);
    } catch (e) {
      if (attempt >= 5) throw e;
      await sleep(500 * attempt);
    }
  }
}

const rowsFrom = async (source) => (await query(`SELECT COUNT(*) AS n FROM records WHERE source = '${source}'`))[0].n;

describe("data-pipeline", { concurrency: true }, () => {
  it("moves 50,000 records through R2 into D1 in one run, normalised, dropping the invalid ones", async () => {
    const { standin } = await worker();
    const id = uniqueId("pipe");
    const n = 50_000;
    await startPipeline(id, `${standin.url}/source/${id}?n=${n}`);

    const done = await waitFor(WORKFLOW, id, finished, { timeoutMs: 240_000, intervalMs: 1000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    const valid = validSourceRecords(n);
    assert.deepEqual(done.output, { key: `processed/${id}.json`, records: valid, dropped: n - valid });
    assert.equal(await rowsFrom(id), valid);
    assert.equal(standin.callsTo(`/source/${id}`).length, 1);

    // One record in each of the stand-in's date formats (ISO, RFC 2822, epoch ms), normalised.
    const rows = await query(`SELECT id, name, email, created_at, source FROM records WHERE id IN ('${id}-0', '${id}-1', '${id}-2') ORDER BY id`);
    assert.deepEqual(rows, [
      { id: `${id}-0`, name: "User 0", email: "user0@example.com", created_at: "2024-01-01T00:00:00.000Z", source: id },
      { id: `${id}-1`, name: "User 1", email: "user1@example.com", created_at: "2024-01-01T00:01:00.000Z", source: id },
      { id: `${id}-2`, name: "User 2", email: "user2@example.com", created_at: "2024-01-01T00:02:00.000Z", source: id },
    ]);
    // Invalid records (a bad email, an unreadable date) were dropped, not loaded.
    const invalid = await query(`SELECT COUNT(*) AS n FROM records WHERE id IN ('${id}-19', '${id}-59')`);
    assert.equal(invalid[0].n, 0);
  });

  it("retries a source that fails twice: it is fetched exactly three times and the run completes", async () => {
    const { standin } = await worker();
    const id = uniqueId("flaky-src");
    const n = 200;
    standin.failNext(`source:${id}`, 2);
    await startPipeline(id, `${standin.url}/source/${id}?n=${n}`);

    const done = await waitFor(WORKFLOW, id, finished, { timeoutMs: 90_000 });
    assert.equal(done.status, "complete", JSON.stringify(done));
    assert.deepEqual(done.output, { key: `processed/${id}.json`, records: validSourceRecords(n), dropped: n - validSourceRecords(n) });
    assert.equal(standin.callsTo(`/source/${id}`).length, 3);
    assert.equal(await rowsFrom(id), validSourceRecords(n));
  });

  it("a restarted run loads again without duplicating rows", async () => {
    const { standin } = await worker();
    const id = uniqueId("reload");
    const n = 300;
    const valid = validSourceRecords(n);
    await startPipeline(id, `${standin.url}/source/${id}?n=${n}`);
    const first = await waitFor(WORKFLOW, id, finished, { timeoutMs: 90_000 });
    assert.equal(first.status, "complete", JSON.stringify(first));
    assert.equal(await rowsFrom(id), valid);

    const restarted = await api("POST", `/workflows/${WORKFLOW}/instances/${id}/restart`);
    assert.equal(restarted.status, 200, JSON.stringify(restarted.body));
    // A restart re-runs every step, so the source is fetched a second time; the status
    // alone could still be the first run's "complete".
    const second = await waitFor(WORKFLOW, id, (b) => standin.callsTo(`/source/${id}`).length >= 2 && finished(b), { timeoutMs: 90_000 });
    assert.equal(second.status, "complete", JSON.stringify(second));
    assert.deepEqual(second.output, first.output);
    assert.equal(standin.callsTo(`/source/${id}`).length, 2);

    assert.equal(await rowsFrom(id), valid);
    const byId = await query(`SELECT COUNT(*) AS n FROM records WHERE id LIKE '${id}-%'`);
    assert.equal(byId[0].n, valid);
  });

  it("errors, without loading anything, when the source is not a JSON array", async () => {
    const { standin } = await worker();
    const id = uniqueId("not-array");
    // The stand-in's generic call service answers a JSON object.
    await startPipeline(id, `${standin.url}/call/${id}`);

    const done = await waitFor(WORKFLOW, id, finished);
    assert.equal(done.status, "errored", JSON.stringify(done));
    assert.match(done.error.message, /not a JSON array of records/);
    assert.equal(done.output, undefined);
    assert.equal(standin.callsTo(`/call/${id}`).length, 1);
    assert.equal(await rowsFrom(id), 0);
  });

  it("refuses params that do not match PipelineParams, and a source URL that is not https to a public host, before anything is created", async () => {
    const missing = await createInstance(WORKFLOW, { params: {} });
    assert.equal(missing.status, 400, JSON.stringify(missing.body));
    assert.equal(missing.body.error.code, "invalid_params");
    assert.match(missing.body.error.message, /sourceUrl/);
    const extra = await createInstance(WORKFLOW, { params: { sourceUrl: "http://127.0.0.1/source/x", limit: 5 } });
    assert.equal(extra.status, 400, JSON.stringify(extra.body));
    assert.equal(extra.body.error.code, "invalid_params");

    const id = uniqueId("ftp-src");
    const ftp = await createInstance(WORKFLOW, { id, params: { sourceUrl: "ftp://example.com/records.json" } });
    assert.equal(ftp.status, 400, JSON.stringify(ftp.body));
    assert.equal(ftp.body.error.code, "invalid_params");
    assert.match(ftp.body.error.message, /sourceUrl: URL scheme "ftp" \(host "example\.com"\) is not allowed/);
    assert.equal((await getInstance(WORKFLOW, id)).status, 404);
  });
});
